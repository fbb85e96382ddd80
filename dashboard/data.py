"""Every query the dashboard runs. Read-only, parameterised, cached, aggregated in DuckDB.

The dashboard opens only the *published* copy of the database (``core.store.view_path``) read-only, so a
running job (which holds the main file read-write) is never blocked and the pages show the last finished
results. Only when no view file exists yet does it fall back to the main file, read-only.

Caching: every query function takes a ``Source`` (path + mtime) as its first argument and is wrapped in
``st.cache_data``; when a job publishes a new view file its mtime changes, so the key changes and the
dashboard reopens the file and re-queries. User values are always bound as ``$name`` parameters; the
only SQL fragments chosen at run time come from fixed dictionaries in this module.
"""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path
from typing import NamedTuple

import duckdb
import pandas as pd
import pyarrow.csv as pa_csv
import streamlit as st

from core import store
from core.paths import default_db

CACHE = {"show_spinner": False, "max_entries": 512, "ttl": 3600}
CSV_MAX_ROWS = 100_000


class Source(NamedTuple):
    """Which database file the dashboard reads; the mtime makes it a cache key."""

    path: str
    mtime_ns: int
    is_view: bool


class Selection(NamedTuple):
    """The sidebar's choices, shared by every page (kept in st.session_state by Home.py)."""

    src: Source
    corpus: str
    split: str
    models: tuple[str, ...]


class ReviewFilter(NamedTuple):
    """The Reviews page's filters. ``predicted``/``label``/``correct``: None means any."""

    corpus: str
    split: str
    model: str
    predicted: str | None = None  # 'positive' | 'negative'
    p_min: float = 0.0
    p_max: float = 1.0
    label: str | None = None  # 'positive' | 'negative' | 'none' (unlabelled)
    correct: bool | None = None
    chars_min: int | None = None
    chars_max: int | None = None
    search: str = ""


HINT = """\
make demo            # obtain IMDB, train the quick models, score + evaluate the test split
# or, step by step:
python -m jobs.train --model tfidf-lr --name tfidf-lr
python -m jobs.score --corpus imdb --split test --models all
python -m jobs.evaluate
# or score your own file:
python -m jobs.score reviews.csv --corpus mine --text-col text --label-col label --models tfidf-lr,vader"""


class Unavailable(Exception):
    """The database cannot be shown; the message says why and what to run."""


# ---------------------------------------------------------------- the file and its connection


def db_path() -> Path:
    return Path(os.environ.get("SENTIMENT_DB") or default_db())


def source() -> Source:
    """The file to read now: the published view, else the main file. Raises Unavailable."""
    main = db_path()
    view = store.view_path(main)
    for path, is_view in ((view, True), (main, False)):
        try:
            return Source(str(path), path.stat().st_mtime_ns, is_view)
        except FileNotFoundError:
            continue
    raise Unavailable(f"No database at `{main}` yet.")


_lock = threading.Lock()
_connections: dict[str, tuple[int, duckdb.DuckDBPyConnection]] = {}


def _connection(src: Source) -> duckdb.DuckDBPyConnection:
    """One read-only connection per file version (an in-memory database with the file ATTACHed read-only,
    so a replaced file is never served from DuckDB's per-path instance cache)."""
    with _lock:
        held = _connections.get(src.path)
        if held and held[0] == src.mtime_ns:
            return held[1]
        con = duckdb.connect(":memory:")
        try:
            con.execute(f"ATTACH '{_sql_literal(src.path)}' AS db (READ_ONLY)")
            con.execute("USE db")
        except duckdb.Error as e:
            con.close()
            if "lock" in str(e).lower():
                raise Unavailable(
                    f"`{src.path}` is being written by a job and no published view exists yet; "
                    "results appear here when the job finishes."
                ) from e
            raise Unavailable(f"Cannot open `{src.path}`: {e}") from e
        _connections[src.path] = (src.mtime_ns, con)  # the old one closes once its cursors are gone
        return con


def _sql_literal(path: str) -> str:
    # ATTACH takes no parameters; the path comes from the environment, never from a page widget.
    return path.replace("'", "''")


def query(src: Source, sql: str, params: dict | None = None, arrow: bool = False) -> pd.DataFrame:
    """Run one read-only statement on its own cursor (thread-safe across Streamlit sessions)."""
    cur = _connection(src).cursor()
    try:
        cur.execute("USE db")  # a cursor starts in the in-memory catalog
        if arrow:
            return cur.sql(sql, params=params or {}).to_arrow_table()
        return cur.execute(sql, params or {}).df()
    except duckdb.CatalogException as e:
        raise Unavailable(f"`{src.path}` does not hold the expected tables ({e}).") from e
    finally:
        cur.close()


# Shared WHERE clause: one corpus, one split ('all' = reviews without a split), the chosen models.
SCOPE = ("p.corpus = $corpus AND coalesce(r.split, 'all') = $split "
         "AND list_contains($models, p.model)")
JOIN = "predictions p JOIN reviews r ON r.corpus = p.corpus AND r.review_id = p.review_id"
BINARY = "r.label IN ('positive', 'negative')"


def _scope(sel_corpus: str, split: str, models: tuple[str, ...] | list[str]) -> dict:
    return {"corpus": sel_corpus, "split": split, "models": list(models)}


# ---------------------------------------------------------------- sidebar and overview


@st.cache_data(**CACHE)
def summary(src: Source) -> dict:
    row = query(src, "SELECT (SELECT count(*) FROM reviews) AS reviews, "
                     "(SELECT count(*) FROM predictions) AS predictions").iloc[0]
    return {k: int(v) for k, v in row.items()}


@st.cache_data(**CACHE)
def corpora(src: Source) -> pd.DataFrame:
    """One row per corpus: reviews, labelled reviews, predictions, models, rejects."""
    return query(src, """
        WITH r AS (SELECT corpus, count(*) AS reviews,
                          count(*) FILTER (WHERE label IN ('positive', 'negative')) AS labelled
                   FROM reviews GROUP BY corpus),
             p AS (SELECT corpus, count(*) AS predictions, count(DISTINCT model) AS models
                   FROM predictions GROUP BY corpus),
             j AS (SELECT corpus, count(*) AS rejects FROM rejects GROUP BY corpus)
        SELECT c.corpus, c.source, coalesce(r.reviews, 0) AS reviews, coalesce(r.labelled, 0) AS labelled,
               coalesce(p.predictions, 0) AS predictions, coalesce(p.models, 0) AS models,
               coalesce(j.rejects, 0) AS rejects
        FROM corpora c LEFT JOIN r USING (corpus) LEFT JOIN p USING (corpus) LEFT JOIN j USING (corpus)
        ORDER BY predictions = 0, c.corpus""")


@st.cache_data(**CACHE)
def splits(src: Source, corpus: str) -> list[str]:
    """Splits of ``corpus`` that have predictions ('all' = no split), test first."""
    df = query(src, """
        SELECT DISTINCT coalesce(r.split, 'all') AS split FROM reviews r
        WHERE r.corpus = $corpus
          AND EXISTS (SELECT 1 FROM predictions p WHERE p.corpus = r.corpus AND p.review_id = r.review_id)
        ORDER BY CASE split WHEN 'test' THEN 0 WHEN 'validation' THEN 1 WHEN 'all' THEN 2 ELSE 3 END, split""",
               {"corpus": corpus})
    return df["split"].tolist()


@st.cache_data(**CACHE)
def models(src: Source, corpus: str) -> list[str]:
    return query(src, "SELECT DISTINCT model FROM predictions WHERE corpus = $corpus ORDER BY model",
                 {"corpus": corpus})["model"].tolist()


@st.cache_data(**CACHE)
def labelled_count(src: Source, corpus: str, split: str) -> int:
    """Reviews with a positive/negative label in this corpus and split (0: label pages show a note)."""
    return int(query(src, f"SELECT count(*) AS n FROM reviews r WHERE r.corpus = $corpus "
                          f"AND coalesce(r.split, 'all') = $split AND {BINARY}",
                     {"corpus": corpus, "split": split})["n"].iloc[0])


@st.cache_data(**CACHE)
def rejects(src: Source, corpus: str) -> pd.DataFrame:
    return query(src, "SELECT split_part(reason, ':', 1) AS reason, count(*) AS rows FROM rejects "
                      "WHERE corpus = $corpus GROUP BY 1 ORDER BY rows DESC", {"corpus": corpus})


@st.cache_data(**CACHE)
def leaderboard(src: Source, corpus: str, split: str, models: tuple[str, ...]) -> pd.DataFrame:
    """Per model: metrics of this evaluation set (if evaluated), size on disk, latest scoring speed."""
    return query(src, """
        WITH chosen AS (SELECT unnest($models) AS model),
             speed AS (SELECT model, arg_max(rows_per_s, measured_at) AS rows_per_s
                       FROM model_speed GROUP BY model)
        SELECT c.model, m.n, m.accuracy, m.accuracy_lo, m.accuracy_hi, m.roc_auc, m.roc_auc_lo, m.roc_auc_hi,
               printf('%.3f - %.3f', m.accuracy_lo, m.accuracy_hi) AS accuracy_ci,
               printf('%.3f - %.3f', m.roc_auc_lo, m.roc_auc_hi) AS roc_auc_ci,
               m.f1, m.precision, m.recall, m.ece, m.brier,
               k.kind, k.n_params, k.bytes_on_disk, k.train_seconds, s.rows_per_s
        FROM chosen c
        LEFT JOIN metrics m ON m.model = c.model AND m.corpus = $corpus AND m.split = $split
        LEFT JOIN models k ON k.model = c.model
        LEFT JOIN speed s ON s.model = c.model
        ORDER BY m.accuracy DESC NULLS LAST, c.model""", _scope(corpus, split, models))


# ---------------------------------------------------------------- distributions

GROUPS = {  # how the Distributions page splits the reviews; fixed SQL, never user text
    "none": "'all reviews'",
    "label": "coalesce(r.label, '(no label)')",
    "length": ("CASE WHEN r.n_chars < 500 THEN '1: < 500 chars' WHEN r.n_chars < 1000 THEN '2: 500-999' "
               "WHEN r.n_chars < 2000 THEN '3: 1000-1999' ELSE '4: 2000+' END"),
}


@st.cache_data(**CACHE)
def shares(src: Source, corpus: str, split: str, models: tuple[str, ...], by: str = "none") -> pd.DataFrame:
    """model, group, predicted, n, share (within model and group)."""
    return query(src, f"""
        SELECT p.model, {GROUPS[by]} AS "group", p.predicted, count(*) AS n,
               count(*) / sum(count(*)) OVER (PARTITION BY p.model, {GROUPS[by]}) AS share
        FROM {JOIN} WHERE {SCOPE} GROUP BY 1, 2, 3 ORDER BY 1, 2, 3""", _scope(corpus, split, models))


@st.cache_data(**CACHE)
def histogram(src: Source, corpus: str, split: str, models: tuple[str, ...], by: str = "none",
              bins: int = 20) -> pd.DataFrame:
    """model, group, bin_start, bin_end, n, share (of the model's reviews in that group)."""
    return query(src, f"""
        SELECT p.model, {GROUPS[by]} AS "group",
               least(floor(p.p_positive * $bins), $bins - 1) / $bins AS bin_start,
               bin_start + 1 / $bins AS bin_end, count(*) AS n,
               count(*) / sum(count(*)) OVER (PARTITION BY p.model, {GROUPS[by]}) AS share
        FROM {JOIN} WHERE {SCOPE} GROUP BY 1, 2, 3 ORDER BY 1, 2, 3""", {**_scope(corpus, split, models), "bins": bins})


# ---------------------------------------------------------------- confusion matrices and thresholds


@st.cache_data(**CACHE)
def confusion(src: Source, corpus: str, split: str, models: tuple[str, ...], threshold: float = 0.5
              ) -> pd.DataFrame:
    """Per model at ``threshold``: tn, fp, fn, tp, accuracy, precision, recall, f1 (binary labels only)."""
    return query(src, f"""
        WITH c AS (
            SELECT p.model,
                   count(*) FILTER (WHERE r.label = 'negative' AND p.p_positive < $t) AS tn,
                   count(*) FILTER (WHERE r.label = 'negative' AND p.p_positive >= $t) AS fp,
                   count(*) FILTER (WHERE r.label = 'positive' AND p.p_positive < $t) AS fn,
                   count(*) FILTER (WHERE r.label = 'positive' AND p.p_positive >= $t) AS tp
            FROM {JOIN} WHERE {SCOPE} AND {BINARY} GROUP BY p.model)
        SELECT model, tn, fp, fn, tp, (tn + tp) / (tn + fp + fn + tp) AS accuracy,
               tp / nullif(tp + fp, 0) AS precision, tp / nullif(tp + fn, 0) AS recall,
               2 * tp / nullif(2 * tp + fp + fn, 0) AS f1
        FROM c ORDER BY model""", {**_scope(corpus, split, models), "t": threshold})


CELLS = {  # cell -> (true label, predicted positive?)
    "tp": ("positive", True), "fn": ("positive", False), "fp": ("negative", True), "tn": ("negative", False),
}


@st.cache_data(**CACHE)
def cell_reviews(src: Source, corpus: str, split: str, model: str, cell: str, threshold: float = 0.5,
                 limit: int = 200) -> pd.DataFrame:
    """Reviews in one confusion-matrix cell, the most confident first."""
    label, positive = CELLS[cell]
    return query(src, f"""
        SELECT r.review_id, r.label, p.p_positive, r.n_chars, r.text
        FROM {JOIN} WHERE {SCOPE} AND r.label = $label AND (p.p_positive >= $t) = $positive
        ORDER BY abs(p.p_positive - 0.5) DESC, r.review_id LIMIT $limit""",
                 {**_scope(corpus, split, [model]), "label": label, "positive": positive, "t": threshold,
                  "limit": limit})


# ---------------------------------------------------------------- ROC, precision-recall, calibration


_ROC_SQL = f"""
    WITH b AS (
        SELECT p.model, least(floor(p.p_positive * $bins), $bins - 1) AS b,
               count(*) FILTER (WHERE r.label = 'positive') AS pos,
               count(*) FILTER (WHERE r.label = 'negative') AS neg
        FROM {JOIN} WHERE {SCOPE} AND {BINARY} GROUP BY ALL)
    SELECT model, b / $bins AS threshold,
           sum(neg) OVER w / sum(neg) OVER (PARTITION BY model) AS fpr,
           sum(pos) OVER w / sum(pos) OVER (PARTITION BY model) AS tpr,
           sum(pos) OVER w / sum(pos) OVER (PARTITION BY model) AS recall,
           sum(pos) OVER w / (sum(pos) OVER w + sum(neg) OVER w) AS precision
    FROM b WINDOW w AS (PARTITION BY model ORDER BY b DESC)"""


@st.cache_data(**CACHE)
def roc_pr(src: Source, corpus: str, split: str, models: tuple[str, ...], bins: int = 1000
           ) -> pd.DataFrame:
    """ROC and PR points per model, probabilities binned at 1/bins (one point per non-empty bin),
    plus the (0, 0) start of each ROC curve; threshold = predict positive when P >= threshold."""
    return query(src, f"""
        SELECT * FROM ({_ROC_SQL})
        UNION ALL
        SELECT DISTINCT p.model, 1.0, 0.0, 0.0, 0.0, NULL FROM {JOIN} WHERE {SCOPE} AND {BINARY}
        ORDER BY model, threshold DESC""", {**_scope(corpus, split, models), "bins": bins})


@st.cache_data(**CACHE)
def aucs(src: Source, corpus: str, split: str, models: tuple[str, ...], bins: int = 1000) -> pd.DataFrame:
    """model, roc_auc, pr_auc: from the metrics table when evaluated, else from the binned curves."""
    return query(src, f"""
        WITH pts AS ({_ROC_SQL}),
        est AS (
            SELECT model,
                   sum((fpr - prev_fpr) * (tpr + prev_tpr) / 2) AS roc_auc,
                   sum((recall - prev_recall) * precision) FILTER (WHERE precision IS NOT NULL) AS pr_auc
            FROM (SELECT *, lag(fpr, 1, 0) OVER w AS prev_fpr, lag(tpr, 1, 0) OVER w AS prev_tpr,
                         lag(recall, 1, 0) OVER w AS prev_recall
                  FROM pts WINDOW w AS (PARTITION BY model ORDER BY threshold DESC))
            GROUP BY model)
        SELECT e.model, coalesce(m.roc_auc, e.roc_auc) AS roc_auc, coalesce(m.pr_auc, e.pr_auc) AS pr_auc
        FROM est e LEFT JOIN metrics m ON m.model = e.model AND m.corpus = $corpus AND m.split = $split
        ORDER BY e.model""", {**_scope(corpus, split, models), "bins": bins})





@st.cache_data(**CACHE)
def calibration(src: Source, corpus: str, split: str, models: tuple[str, ...], bins: int = 10
                ) -> pd.DataFrame:
    """model, bin, mean predicted P(positive), observed share of positives, n."""
    return query(src, f"""
        SELECT p.model, least(floor(p.p_positive * $bins), $bins - 1) AS bin,
               avg(p.p_positive) AS mean_p, avg((r.label = 'positive')::DOUBLE) AS observed, count(*) AS n
        FROM {JOIN} WHERE {SCOPE} AND {BINARY} GROUP BY ALL ORDER BY ALL""",
                 {**_scope(corpus, split, models), "bins": bins})


# ---------------------------------------------------------------- disagreements

_PER_REVIEW = f"""
    SELECT p.review_id, max(p.p_positive) - min(p.p_positive) AS spread, avg(p.p_positive) AS mean_p,
           any_value(r.label) AS label,
           min(p.predicted) <> max(p.predicted) AS split_decision,
           bool_and(r.label IN ('positive', 'negative') AND p.predicted <> r.label) AS all_contradict
    FROM {JOIN} WHERE {SCOPE} GROUP BY p.review_id HAVING count(*) = len($models)"""


@st.cache_data(**CACHE)
def disagreements(src: Source, corpus: str, split: str, models: tuple[str, ...], contradict: bool = False,
                  limit: int = 100) -> pd.DataFrame:
    """Reviews scored by every chosen model, ranked by max - min P(positive) (or, with ``contradict``,
    only those every model gets wrong, ranked by how confidently): one row per review and model."""
    order = "abs(mean_p - (label = 'positive')::DOUBLE) DESC" if contradict else "spread DESC"
    return query(src, f"""
        WITH top AS (
            SELECT *, row_number() OVER (ORDER BY {order}, review_id) AS rank
            FROM ({_PER_REVIEW}) WHERE NOT $contradict OR all_contradict
            ORDER BY rank LIMIT $limit)
        SELECT t.rank, t.review_id, t.spread, t.label, p.model, p.p_positive, r.text
        FROM top t JOIN predictions p ON p.corpus = $corpus AND p.review_id = t.review_id
                   JOIN reviews r ON r.corpus = $corpus AND r.review_id = t.review_id
        WHERE list_contains($models, p.model)
        ORDER BY t.rank, p.model""",
                 {**_scope(corpus, split, models), "contradict": contradict, "limit": limit})


@st.cache_data(**CACHE)
def agreement(src: Source, corpus: str, split: str, models: tuple[str, ...]) -> pd.DataFrame:
    """model_a, model_b, agreement (share of reviews with the same predicted label), n."""
    return query(src, f"""
        WITH idx AS (SELECT unnest($models) AS model, generate_subscripts($models, 1) - 1 AS i),
        per AS (
            SELECT p.review_id, sum(CASE WHEN p.predicted = 'positive' THEN 1::UBIGINT << i ELSE 0 END) AS mask
            FROM {JOIN} JOIN idx ON idx.model = p.model WHERE {SCOPE}
            GROUP BY p.review_id HAVING count(*) = len($models)),
        masks AS (SELECT mask, count(*) AS n FROM per GROUP BY mask)
        SELECT a.model AS model_a, b.model AS model_b,
               sum(n) FILTER (WHERE ((mask >> a.i) & 1) = ((mask >> b.i) & 1)) / sum(n) AS agreement,
               sum(n) AS n
        FROM masks, idx a, idx b GROUP BY ALL ORDER BY ALL""", _scope(corpus, split, models))


@st.cache_data(**CACHE)
def disagreement_counts(src: Source, corpus: str, split: str, models: tuple[str, ...]) -> dict:
    """reviews (scored by every chosen model), split_decisions (models differ), all_contradict."""
    row = query(src, f"""
        SELECT count(*) AS reviews, count(*) FILTER (WHERE split_decision) AS split_decisions,
               count(*) FILTER (WHERE all_contradict) AS all_contradict
        FROM ({_PER_REVIEW})""",
                _scope(corpus, split, models)).iloc[0]
    return {k: int(v) for k, v in row.items()}


# ---------------------------------------------------------------- reviews


def _review_where(f: ReviewFilter) -> tuple[str, dict]:
    """WHERE clause + parameters for a ReviewFilter; only fixed fragments, every value bound."""
    parts = ["p.corpus = $corpus", "coalesce(r.split, 'all') = $split", "p.model = $model",
             "p.p_positive BETWEEN $p_min AND $p_max"]
    params: dict = {"corpus": f.corpus, "split": f.split, "model": f.model, "p_min": f.p_min, "p_max": f.p_max}
    if f.predicted:
        parts.append("p.predicted = $predicted")
        params["predicted"] = f.predicted
    if f.label == "none":
        parts.append("r.label IS NULL")
    elif f.label:
        parts.append("r.label = $label")
        params["label"] = f.label
    if f.correct is not None:
        parts.append(f"{BINARY} AND (p.predicted = r.label) = $correct")
        params["correct"] = f.correct
    if f.chars_min is not None:
        parts.append("r.n_chars >= $chars_min")
        params["chars_min"] = f.chars_min
    if f.chars_max is not None:
        parts.append("r.n_chars <= $chars_max")
        params["chars_max"] = f.chars_max
    if f.search.strip():
        parts.append("r.text ILIKE $pattern ESCAPE '\\'")
        escaped = f.search.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        params["pattern"] = f"%{escaped}%"
    return " AND ".join(parts), params


@st.cache_data(**CACHE)
def length_range(src: Source, corpus: str) -> tuple[int, int]:
    row = query(src, "SELECT coalesce(min(n_chars), 0) AS lo, coalesce(max(n_chars), 0) AS hi FROM reviews "
                     "WHERE corpus = $corpus", {"corpus": corpus}).iloc[0]
    return int(row["lo"]), int(row["hi"])


@st.cache_data(**CACHE)
def review_count(src: Source, f: ReviewFilter) -> int:
    where, params = _review_where(f)
    return int(query(src, f"SELECT count(*) AS n FROM {JOIN} WHERE {where}", params)["n"].iloc[0])


@st.cache_data(**CACHE)
def review_page(src: Source, f: ReviewFilter, limit: int = 50, offset: int = 0) -> pd.DataFrame:
    where, params = _review_where(f)
    return query(src, f"""
        SELECT r.review_id, r.label, p.predicted, p.p_positive, r.n_chars, r.text
        FROM {JOIN} WHERE {where} ORDER BY r.review_id LIMIT $limit OFFSET $offset""",
                 {**params, "limit": limit, "offset": offset})


def review_csv(src: Source, f: ReviewFilter, max_rows: int = CSV_MAX_ROWS) -> bytes:
    """The filtered reviews as CSV (at most ``max_rows``); built only when the download is clicked."""
    where, params = _review_where(f)
    table = query(src, f"""
        SELECT r.review_id, r.label, p.model, p.predicted, p.p_positive, r.n_chars, r.text
        FROM {JOIN} WHERE {where} ORDER BY r.review_id LIMIT $limit""", {**params, "limit": max_rows},
                  arrow=True)
    out = io.BytesIO()
    pa_csv.write_csv(table, out)
    return out.getvalue()


# ---------------------------------------------------------------- training


@st.cache_data(**CACHE)
def training_log(src: Source) -> pd.DataFrame:
    return query(src, "SELECT model, epoch, train_loss, val_loss, train_acc, val_acc, seconds "
                      "FROM training_log ORDER BY model, epoch")


@st.cache_data(**CACHE)
def trained_models(src: Source) -> pd.DataFrame:
    return query(src, "SELECT model, kind, preset, n_params, bytes_on_disk, train_seconds, train_rows, "
                      "device, trained_at FROM models ORDER BY model")


def clear_caches() -> None:
    """Forget every cached query result (the benchmark times cold queries)."""
    st.cache_data.clear()
