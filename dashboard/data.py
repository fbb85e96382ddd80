"""Every query the dashboard runs. Read-only, parameterised, cached, aggregated in DuckDB.

The dashboard opens only the *published* copy of the database (``core.store.view_path``) read-only, so a
running job (which holds the main file read-write) is never blocked and the pages show the last finished
results. It never opens the main file, not even read-only: before a first publish it says so.

Caching: every query function takes a ``Source`` (path + mtime) as its first argument and is wrapped in
``st.cache_data``; when a job publishes a new view file its mtime changes, so the key changes and the
dashboard reopens the file and re-queries. User values are always bound as ``$name`` parameters; the
only SQL fragments chosen at run time come from fixed dictionaries in this module.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import shlex
import threading
from pathlib import Path
from typing import NamedTuple

import duckdb
import pandas as pd
import pyarrow.csv as pa_csv
import streamlit as st

from core import store, summaries
from core.metrics import auc_interval, wilson_interval
from core.paths import default_db
from core.summaries import Where

CACHE = {"show_spinner": False, "max_entries": 512, "ttl": 3600}
CSV_MAX_ROWS = 100_000
TEXT_ROWS = 50  # reviews listed with their text at once (cell lists, disagreements, a page)


class Source(NamedTuple):
    """Which database file the dashboard reads (the published view); the mtime makes it a cache key."""

    path: str
    mtime_ns: int


class Selection(NamedTuple):
    """The sidebar's choices, shared by every page (kept in st.session_state by Home.py)."""

    src: Source
    corpus: str
    split: str
    models: tuple[str, ...]
    where: Where = ()  # the sidebar's filters on kept columns (core.summaries.FieldFilter)


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
    where: Where = ()


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
    """The published view of the database. Raises Unavailable before a first job has published one: the main
    file is never opened, not even read-only, because that would make a job starting now fail to lock it."""
    main = db_path()
    view = store.view_path(main)
    try:
        return Source(str(view), view.stat().st_mtime_ns)
    except FileNotFoundError:
        pass
    if main.exists():
        raise Unavailable(f"No published results in `{main.parent}` yet: a first job is still running (or was "
                          "stopped before it finished). Results appear here when a job finishes.")
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


# Predictions of one corpus joined to the reviews of one split ('all' = reviews without a split). The
# reviews side is filtered first and carries only the small columns (never the text): at 1M reviews x 6
# models this join is the dominant cost of most pages, so pages share a cached aggregate ("cube") of it.
JOIN = ("predictions p JOIN (SELECT review_id, label, n_chars FROM reviews "
        "WHERE corpus = $corpus AND coalesce(split, 'all') = $split) r USING (review_id)")
SCOPE = "p.corpus = $corpus AND list_contains($models, p.model)"


def _in_scope(where: Where) -> tuple[str, dict]:
    """The reviews of $corpus in $split that pass the sidebar's column filters, as a WHERE condition."""
    filt, params = summaries.where_sql(where)
    return "corpus = $corpus AND coalesce(split, 'all') = $split" + filt, params


def _join(where: Where) -> tuple[str, dict]:
    """JOIN, narrowed by the column filters."""
    cond, params = _in_scope(where)
    return f"predictions p JOIN (SELECT review_id, label, n_chars FROM reviews WHERE {cond}) r USING (review_id)", params
BINARY = "r.label IN ('positive', 'negative')"
BINS = 1000  # resolution of the cube: P(positive) in 1/1000 steps


def _scope(corpus: str, split: str, models: tuple[str, ...] | list[str]) -> dict:
    return {"corpus": corpus, "split": split, "models": list(models)}


def _texts(src: Source, corpus: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Add the text column to a small frame of review_ids (at most TEXT_ROWS: only the rows shown).

    One equality lookup per id, UNION ALL'ed: each is a selective scan that decompresses the text of one
    vector, where an IN-list or semi-join reads the text of every row group (0.35 s vs 0.9 s for 50
    scattered ids at 1M reviews)."""
    if frame.empty:
        return frame.assign(text=pd.Series(dtype=object))
    ids = frame["review_id"].tolist()[:TEXT_ROWS]
    sql = " UNION ALL ".join(
        f"SELECT review_id, text FROM reviews WHERE corpus = $corpus AND review_id = $id{i}" for i in range(len(ids)))
    texts = query(src, sql, {"corpus": corpus, **{f"id{i}": v for i, v in enumerate(ids)}})
    return frame.merge(texts.drop_duplicates("review_id"), on="review_id", how="left")


def _local(sql: str, params: dict | None = None, **frames: pd.DataFrame) -> pd.DataFrame:
    """Run SQL in a private in-memory DuckDB over small, already aggregated frames (e.g. the cube)."""
    con = duckdb.connect()
    try:
        for name, frame in frames.items():
            con.register(name, frame)
        return con.execute(sql, params or {}).df()
    finally:
        con.close()


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
    """Splits of ``corpus`` that have predictions ('all' = no split), test first. One early-exit probe per
    split (a corpus has a handful), far cheaper than a full semi-join at millions of predictions."""
    order = "ORDER BY CASE split WHEN 'test' THEN 0 WHEN 'validation' THEN 1 WHEN 'all' THEN 2 ELSE 3 END, split"
    if summarised(src, corpus):  # the summaries hold a cube for every split with predictions
        return query(src, f"SELECT DISTINCT split FROM summary_cube WHERE corpus = $corpus {order}",
                     {"corpus": corpus})["split"].tolist()
    candidates = query(src, f"SELECT DISTINCT coalesce(split, 'all') AS split FROM reviews WHERE corpus = $corpus "
                            f"{order}", {"corpus": corpus})["split"].tolist()
    return [s for s in candidates if not query(src, f"SELECT 1 AS hit FROM {JOIN} WHERE p.corpus = $corpus LIMIT 1",
                                               {"corpus": corpus, "split": s}).empty]


def _models_of(src: Source, corpus: str) -> list[str]:  # for functions whose `models` argument shadows models()
    return models(src, corpus)


@st.cache_data(**CACHE)
def models(src: Source, corpus: str) -> list[str]:
    return query(src, "SELECT DISTINCT model FROM predictions WHERE corpus = $corpus ORDER BY model",
                 {"corpus": corpus})["model"].tolist()


@st.cache_data(**CACHE)
def labelled_count(src: Source, corpus: str, split: str, where: Where = ()) -> int:
    """Reviews with a positive/negative label in this corpus and split (0: label pages show a note)."""
    cond, params = _in_scope(where)
    return int(query(src, f"SELECT count(*) AS n FROM reviews WHERE {cond} AND label IN ('positive', 'negative')",
                     {"corpus": corpus, "split": split, **params})["n"].iloc[0])


@st.cache_data(**CACHE)
def rejects(src: Source, corpus: str) -> pd.DataFrame:
    return query(src, "SELECT split_part(reason, ':', 1) AS reason, count(*) AS rows FROM rejects "
                      "WHERE corpus = $corpus GROUP BY 1 ORDER BY rows DESC", {"corpus": corpus})


# ---------------------------------------------------------------- where each model comes from

LEXICON = "— (lexicon)"        # trained_on of a model that learns nothing (vader)
UNRECORDED = "not recorded"    # trained_on of a model missing from the models table

# models.trained_on / train_classes came later (core.store adds them when a job next opens the file). In a
# view published before that, every trained model learnt from imdb and the lexicon from nothing: the same
# rule core.store applies to such a file.
_MODELS_TABLE = {
    True: "models",
    False: ("(SELECT *, CASE WHEN kind <> 'vader' THEN 'imdb' END AS trained_on, "
            "NULL::VARCHAR AS train_classes FROM models)"),
}

# Provenance columns of a model ``k`` (a row of the models table, LEFT JOINed), as every page shows them:
# trained_on (the corpus, LEXICON or UNRECORDED), train_rows (NULL where it learnt from nothing) and
# provenance ("trained on shop, 3,000 reviews"), a label for chart axes and legends.
_PROVENANCE = f"""
    CASE WHEN k.model IS NULL THEN '{UNRECORDED}' WHEN k.trained_on IS NULL THEN '{LEXICON}'
         ELSE k.trained_on END AS trained_on,
    CASE WHEN k.trained_on IS NOT NULL THEN k.train_rows END AS train_rows,
    CASE WHEN k.model IS NULL THEN 'provenance not recorded' WHEN k.trained_on IS NULL THEN 'lexicon, learns nothing'
         ELSE 'trained on ' || k.trained_on || coalesce(', ' || format('{{:,}}', k.train_rows) || ' reviews', '')
         END AS provenance"""


@st.cache_data(**CACHE)
def _models_table(src: Source) -> str:
    """The models table, or (in a view published before models.trained_on existed) a query that adds it."""
    columns = query(src, "SELECT column_name FROM information_schema.columns "
                         "WHERE table_catalog = current_database() AND table_name = 'models'")["column_name"]
    return _MODELS_TABLE["trained_on" in set(columns)]


@st.cache_data(**CACHE)
def model_facts(src: Source) -> pd.DataFrame:
    """model, trained_on, train_rows, provenance: one row per model in the models table."""
    return query(src, f"SELECT k.model, {_PROVENANCE} FROM {_models_table(src)} k ORDER BY k.model")


def with_provenance(src: Source, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` (one row per model, a ``model`` column) with trained_on and train_rows right after ``model``
    and provenance last; a model missing from the models table reads UNRECORDED."""
    facts = model_facts(src)
    out = frame.merge(facts, on="model", how="left")
    out["trained_on"] = out["trained_on"].fillna(UNRECORDED)
    out["provenance"] = out["provenance"].fillna("provenance not recorded")
    first = list(frame.columns[:list(frame.columns).index("model") + 1])
    rest = [c for c in frame.columns if c not in first]
    return out[[*first, "trained_on", "train_rows", *rest, "provenance"]]


@st.cache_data(**CACHE)
def leaderboard(src: Source, corpus: str, split: str, models: tuple[str, ...], where: Where = ()) -> pd.DataFrame:
    """Per model: where it was trained, metrics of this evaluation set (if evaluated; with column filters,
    of the filtered reviews, from the cube), size on disk, latest scoring speed."""
    board = query(src, f"""
        WITH chosen AS (SELECT unnest($models) AS model),
             speed AS (SELECT model, arg_max(rows_per_s, measured_at) AS rows_per_s
                       FROM model_speed GROUP BY model)
        SELECT c.model, {_PROVENANCE}, m.n, m.accuracy, m.accuracy_lo, m.accuracy_hi,
               m.roc_auc, m.roc_auc_lo, m.roc_auc_hi,
               printf('%.3f - %.3f', m.accuracy_lo, m.accuracy_hi) AS accuracy_ci,
               printf('%.3f - %.3f', m.roc_auc_lo, m.roc_auc_hi) AS roc_auc_ci,
               m.f1, m.precision, m.recall, m.ece, m.brier,
               k.kind, k.n_params, k.bytes_on_disk, k.train_seconds, s.rows_per_s
        FROM chosen c
        LEFT JOIN metrics m ON m.model = c.model AND m.corpus = $corpus AND m.split = $split
        LEFT JOIN {_models_table(src)} k ON k.model = c.model
        LEFT JOIN speed s ON s.model = c.model
        ORDER BY m.accuracy DESC NULLS LAST, c.model""", _scope(corpus, split, models))
    if not where:
        return board
    m = binned_metrics(cube(src, corpus, split, where), models).set_index("model")
    cols = ["n", "accuracy", "accuracy_lo", "accuracy_hi", "roc_auc", "roc_auc_lo", "roc_auc_hi", "f1",
            "precision", "recall", "ece"]
    board = board.drop(columns=cols + ["brier"]).join(m[cols], on="model")
    board["accuracy_ci"] = _ci_text(board["accuracy_lo"], board["accuracy_hi"])
    board["roc_auc_ci"] = _ci_text(board["roc_auc_lo"], board["roc_auc_hi"])
    return board.sort_values(["accuracy", "model"], ascending=[False, True], na_position="last").reset_index(drop=True)


def _ci_text(lo: pd.Series, hi: pd.Series) -> pd.Series:
    return [f"{a:.3f} - {b:.3f}" if pd.notna(a) and pd.notna(b) else None for a, b in zip(lo, hi, strict=True)]


_KEYS = {False: "", True: "value, "}  # binned_metrics per model, or per model and slice value


def binned_metrics(frame: pd.DataFrame, models: tuple[str, ...] | list[str], by_value: bool = False
                   ) -> pd.DataFrame:
    """Per model (and slice ``value``) of a cube-like frame (model, label, bin, n, sum_p): reviews, n
    (labelled positive/negative), accuracy, ROC-AUC, F1, precision, recall and ECE (10 bins) at threshold
    0.5, the predicted-positive share of every review and the labels' positive share, with 95% intervals
    (Wilson for shares, Hanley-McNeil for ROC-AUC).

    bin >= 500 is exactly P >= 0.5, so the counts at 0.5 are exact; ROC-AUC is the Mann-Whitney statistic
    over the 1/1000 bins (pairs within one bin count half), which equals scikit-learn's where no bin mixes
    different probabilities of both classes; for a model that piles both classes into the end bins it was
    within 0.005 of scikit-learn's on slices of 200-1,600 reviews (tests/test_slices.py)."""
    keys = _KEYS[by_value]
    out = _local(f"""
        WITH b AS (SELECT {keys}model, bin,
                          coalesce(sum(n) FILTER (WHERE label = 'positive'), 0) AS pos,
                          coalesce(sum(n) FILTER (WHERE label = 'negative'), 0) AS neg,
                          coalesce(sum(sum_p) FILTER (WHERE label IN ('positive', 'negative')), 0) AS sp,
                          sum(n) AS n_all
                   FROM cube WHERE list_contains($models, model) GROUP BY ALL),
        w AS (SELECT *, coalesce(sum(pos) OVER (PARTITION BY {keys}model ORDER BY bin DESC
                                                ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS above
              FROM b),
        e AS (SELECT {keys}model, sum(abs(pos - sp)) AS gap  -- ECE's 10 bins: sum |positives - sum of P|
              FROM (SELECT {keys}model, bin * 10 // {BINS} AS tenth, sum(pos) AS pos, sum(sp) AS sp FROM b GROUP BY ALL)
              GROUP BY ALL)
        SELECT {keys}model, sum(n_all)::BIGINT AS reviews, (sum(pos) + sum(neg))::BIGINT AS n,
               sum(pos)::BIGINT AS n_pos, sum(neg)::BIGINT AS n_neg,
               coalesce(sum(pos) FILTER (WHERE bin >= {BINS // 2}), 0)::BIGINT AS tp,
               coalesce(sum(neg) FILTER (WHERE bin >= {BINS // 2}), 0)::BIGINT AS fp,
               coalesce(sum(n_all) FILTER (WHERE bin >= {BINS // 2}), 0)::BIGINT AS predicted_positive,
               sum(neg * (above + pos / 2)) / nullif(sum(pos) * sum(neg), 0) AS roc_auc,
               any_value(e.gap) / nullif(sum(pos) + sum(neg), 0) AS ece
        FROM w JOIN e USING ({keys}model) GROUP BY ALL ORDER BY ALL""", {"models": list(models)}, cube=frame)
    tp, fp, fn, tn = out["tp"], out["fp"], out["n_pos"] - out["tp"], out["n_neg"] - out["fp"]
    labelled = out["n"].where(out["n"] > 0)
    out["accuracy"] = (tp + tn) / labelled
    out["accuracy_lo"], out["accuracy_hi"] = wilson_interval(tp + tn, out["n"])
    out["roc_auc_lo"], out["roc_auc_hi"] = auc_interval(out["roc_auc"], out["n_pos"], out["n_neg"])
    out["precision"] = tp / (tp + fp).where(tp + fp > 0)
    out["recall"] = tp / out["n_pos"].where(out["n_pos"] > 0)
    out["f1"] = 2 * tp / (2 * tp + fp + fn).where(2 * tp + fp + fn > 0)
    out["positive_share"] = out["predicted_positive"] / out["reviews"]
    out["positive_share_lo"], out["positive_share_hi"] = wilson_interval(out["predicted_positive"], out["reviews"])
    out["true_share"] = out["n_pos"] / labelled
    return out


# ---------------------------------------------------------------- trained on x evaluated on

MATRIX_METRICS = {"accuracy": "accuracy", "roc_auc": "ROC-AUC"}


@st.cache_data(**CACHE)
def cross_corpus(src: Source) -> pd.DataFrame:
    """The trained-on x evaluated-on matrix, one row per cell: every model (of the models table or the
    metrics) x every corpus evaluated on a test split or as a whole.

    Each corpus is read on one split for every model, so a column compares like with like: its 'test' split
    when the metrics hold one, else 'all' (a corpus without a split). Never 'train'; 'validation' neither
    (the models trained on that corpus were selected on it). Metric columns are NULL where the model was
    not evaluated on that split. Columns: model, trained_on, train_rows, provenance, corpus, split, n,
    accuracy(_lo, _hi), roc_auc(_lo, _hi), diagonal (the corpus the model was trained on)."""
    return query(src, f"""
        WITH k AS (SELECT * FROM {_models_table(src)}),
             sets AS (SELECT corpus, CASE WHEN bool_or(split = 'test') THEN 'test' ELSE 'all' END AS split
                      FROM metrics WHERE split IN ('test', 'all') GROUP BY corpus),
             names AS (SELECT model FROM k UNION SELECT model FROM metrics)
        SELECT n.model, {_PROVENANCE}, s.corpus, s.split, m.n, m.accuracy, m.accuracy_lo, m.accuracy_hi,
               m.roc_auc, m.roc_auc_lo, m.roc_auc_hi, coalesce(k.trained_on = s.corpus, false) AS diagonal
        FROM names n CROSS JOIN sets s
        LEFT JOIN metrics m ON m.model = n.model AND m.corpus = s.corpus AND m.split = s.split
        LEFT JOIN k ON k.model = n.model
        ORDER BY k.trained_on NULLS LAST, n.model, s.corpus""")


def matrix_table(cells: pd.DataFrame, metric: str) -> pd.DataFrame:
    """``cross_corpus`` as a table: one row per model (model, trained_on, train_rows), one column of
    ``metric`` per evaluated corpus, named 'corpus (split)'."""
    column = cells["corpus"] + " (" + cells["split"] + ")"
    wide = cells.assign(column=column).pivot(index="model", columns="column", values=metric)
    rows = cells.drop_duplicates("model")[["model", "trained_on", "train_rows"]]
    return rows.merge(wide[column.drop_duplicates().tolist()], left_on="model", right_index=True, how="left")


def fill_commands(cells: pd.DataFrame) -> str:
    """The commands that fill the empty cells of ``cross_corpus``: per corpus, score the split the matrix
    reads with the models missing there (the stored reviews; what is scored already is skipped), then
    evaluate; or jobs.evaluate --fill, which does both for every trained model. Names are shell-quoted:
    they are shown to be copied."""
    missing = cells[cells["n"].isna()]
    lines = []
    for corpus, group in missing.groupby("corpus", sort=False):
        split = " --split test" if group["split"].iloc[0] == "test" else ""
        models = shlex.quote(",".join(group["model"]))
        lines.append(f"python -m jobs.score --corpus {shlex.quote(corpus)}{split} --models {models}")
    if not lines:
        return ""
    return "\n".join(["# score what each corpus lacks, then evaluate:", *lines, "python -m jobs.evaluate",
                      "# or both at once, with every trained model:", "python -m jobs.evaluate --fill"])


# ---------------------------------------------------------------- the cube: one pass, many charts


@st.cache_data(**CACHE)
def summarised(src: Source, corpus: str) -> bool:
    """Whether the view holds current summaries of ``corpus`` (core.summaries; a view published by an older
    version has none: then every aggregate is computed from the rows)."""
    tables = query(src, "SELECT table_name FROM duckdb_tables() WHERE database_name = 'db'")["table_name"]
    if "summary_state" not in set(tables):
        return False
    return not query(src, "SELECT 1 AS hit FROM summary_state WHERE corpus = $corpus", {"corpus": corpus}).empty


@st.cache_data(**CACHE)
def cube(src: Source, corpus: str, split: str, where: Where = (), need_length: bool = False) -> pd.DataFrame:
    """Counts of every model's predictions by true label, length bucket and P(positive) bin (1/1000),
    with the sum of P per cell: at most models x 4 x 4 x 1000 rows. Distributions, ROC/PR curves,
    calibration and thresholds are aggregated (in DuckDB) from this. Read from the summaries published with
    the view: summary_cube, or under a filter on one column's named slices (the sidebar's usual 'category
    is X or Y') the sum of those slices' cubes, which have no length bucket (``need_length`` asks for it).
    Otherwise computed from the rows (one pass, core.summaries.cube_sql)."""
    if not where and summarised(src, corpus):
        return query(src, "SELECT model, label, length, bin, n, sum_p FROM summary_cube "
                          "WHERE corpus = $corpus AND split = $split", {"corpus": corpus, "split": split})
    if not need_length and _sliced(src, corpus, where):  # one column, named values: its slices' cubes
        f = where[0]
        return query(src, "SELECT model, label, NULL::VARCHAR AS length, bin, sum(n) AS n, sum(sum_p) AS sum_p "
                          "FROM summary_slices WHERE corpus = $corpus AND split = $split AND field = $field "
                          "AND list_contains($values, value) GROUP BY ALL",
                     {"corpus": corpus, "split": split, "field": f.field, "values": list(f.values)})
    sql, params = summaries.cube_sql(split, where)
    return query(src, sql, {"corpus": corpus, "split": split, "names": models(src, corpus), **params})


def _sliced(src: Source, corpus: str, where: Where) -> bool:
    """Whether ``where`` is one filter on values that are each a slice of their column in the summaries."""
    if len(where) != 1 or where[0].kind not in ("categorical", "boolean") or where[0].exclude:
        return False
    if not summarised(src, corpus):
        return False
    named = query(src, "SELECT value FROM summary_values WHERE corpus = $corpus AND field = $field AND sliced",
                  {"corpus": corpus, "field": where[0].field})["value"]
    return set(where[0].values) <= set(named) - {summaries.OTHER, summaries.MISSING}


GROUPS = {"none": "'all reviews'", "label": "coalesce(label, '(no label)')", "length": "length"}


@st.cache_data(**CACHE)
def shares(src: Source, corpus: str, split: str, models: tuple[str, ...], by: str = "none",
           where: Where = ()) -> pd.DataFrame:
    """model, group, predicted (P >= 0.5), n, share (within model and group)."""
    return _local(f"""
        SELECT model, {GROUPS[by]} AS "group",
               CASE WHEN bin >= {BINS // 2} THEN 'positive' ELSE 'negative' END AS predicted, sum(n) AS n,
               sum(n) / sum(sum(n)) OVER (PARTITION BY model, {GROUPS[by]}) AS share
        FROM cube WHERE list_contains($models, model) GROUP BY 1, 2, 3 ORDER BY 1, 2, 3""",
                  {"models": list(models)}, cube=cube(src, corpus, split, where, by == "length"))


@st.cache_data(**CACHE)
def histogram(src: Source, corpus: str, split: str, models: tuple[str, ...], by: str = "none",
              bins: int = 20, where: Where = ()) -> pd.DataFrame:
    """model, group, bin_start, bin_end, n, share (of the model's reviews in that group)."""
    return _local(f"""
        SELECT model, {GROUPS[by]} AS "group", (bin * $bins // {BINS}) / $bins AS bin_start,
               bin_start + 1 / $bins AS bin_end, sum(n) AS n,
               sum(n) / sum(sum(n)) OVER (PARTITION BY model, {GROUPS[by]}) AS share
        FROM cube WHERE list_contains($models, model) GROUP BY 1, 2, 3 ORDER BY 1, 2, 3""",
                  {"models": list(models), "bins": bins}, cube=cube(src, corpus, split, where, by == "length"))


@st.cache_data(**CACHE)
def roc_pr(src: Source, corpus: str, split: str, models: tuple[str, ...], step: int = 5,
           where: Where = ()) -> pd.DataFrame:
    """ROC and PR points per model at every step/1000 threshold with reviews in it (plus the (0, 0) start
    of each ROC curve); threshold = predict positive when P >= threshold. 200 points a model are plenty
    for a chart (the AUCs use every 1/1000 bin)."""
    return _local(_ROC_SQL + """
        UNION ALL SELECT DISTINCT model, 1.0, 0.0, 0.0, 0.0, NULL FROM cube
        WHERE list_contains($models, model) AND label IN ('positive', 'negative')
        ORDER BY model, threshold DESC""", {"models": list(models), "step": step}, cube=cube(src, corpus, split, where))


_ROC_SQL = f"""
    WITH b AS (SELECT model, bin // $step * $step AS bin,  -- 0, not NULL, in a bin without one class: a NULL
                      -- would make every cumulative precision above the first negative NULL and lose its area
                      coalesce(sum(n) FILTER (WHERE label = 'positive'), 0) AS pos,
                      coalesce(sum(n) FILTER (WHERE label = 'negative'), 0) AS neg
               FROM cube WHERE list_contains($models, model) AND label IN ('positive', 'negative') GROUP BY ALL)
    SELECT model, bin / {BINS} AS threshold,
           sum(neg) OVER w / sum(neg) OVER (PARTITION BY model) AS fpr,
           sum(pos) OVER w / sum(pos) OVER (PARTITION BY model) AS tpr,
           sum(pos) OVER w / sum(pos) OVER (PARTITION BY model) AS recall,
           sum(pos) OVER w / (sum(pos) OVER w + sum(neg) OVER w) AS precision
    FROM b WINDOW w AS (PARTITION BY model ORDER BY bin DESC)"""


@st.cache_data(**CACHE)
def aucs(src: Source, corpus: str, split: str, models: tuple[str, ...], where: Where = ()) -> pd.DataFrame:
    """model, roc_auc, pr_auc: from the metrics table when evaluated, else from the 1/1000-binned curves."""
    binned = _local(f"""
        WITH pts AS ({_ROC_SQL})
        SELECT model, sum((fpr - prev_fpr) * (tpr + prev_tpr) / 2) AS roc_auc,
               sum((recall - prev_recall) * precision) AS pr_auc
        FROM (SELECT *, lag(fpr, 1, 0) OVER w AS prev_fpr, lag(tpr, 1, 0) OVER w AS prev_tpr,
                     lag(recall, 1, 0) OVER w AS prev_recall
              FROM pts WINDOW w AS (PARTITION BY model ORDER BY threshold DESC))
        GROUP BY model ORDER BY model""", {"models": list(models), "step": 1}, cube=cube(src, corpus, split, where))
    stored = query(src, "SELECT model, roc_auc, pr_auc FROM metrics WHERE corpus = $corpus AND split = $split "
                        "AND list_contains($models, model) AND NOT $filtered",  # filtered: not what was evaluated
                   {**_scope(corpus, split, models), "filtered": bool(where)})
    return _local("SELECT b.model, coalesce(s.roc_auc, b.roc_auc) AS roc_auc, "
                  "coalesce(s.pr_auc, b.pr_auc) AS pr_auc FROM binned b LEFT JOIN stored s USING (model) "
                  "ORDER BY b.model", binned=binned, stored=stored)


@st.cache_data(**CACHE)
def calibration(src: Source, corpus: str, split: str, models: tuple[str, ...], bins: int = 10,
                where: Where = ()) -> pd.DataFrame:
    """model, bin, mean predicted P(positive), observed share of positives, n (labelled reviews)."""
    return _local(f"""
        SELECT model, bin * $bins // {BINS} AS bin, sum(sum_p) / sum(n) AS mean_p,
               sum(n) FILTER (WHERE label = 'positive') / sum(n) AS observed, sum(n) AS n
        FROM cube WHERE list_contains($models, model) AND label IN ('positive', 'negative') GROUP BY 1, 2 ORDER BY 1, 2""",
                  {"models": list(models), "bins": bins}, cube=cube(src, corpus, split, where))


# ---------------------------------------------------------------- confusion matrices and thresholds


def confusion(src: Source, corpus: str, split: str, models: tuple[str, ...], threshold: float = 0.5,
              where: Where = ()) -> pd.DataFrame:
    """Per model at ``threshold``: tn, fp, fn, tp, accuracy, precision, recall, f1 over the binary-labelled
    reviews (the Confusion page; the same numbers as the ROC page's slider)."""
    return confusion_at(src, corpus, split, models, threshold, where)


@st.cache_data(**CACHE)
def confusion_at(src: Source, corpus: str, split: str, models: tuple[str, ...], threshold: float = 0.5,
                 where: Where = ()) -> pd.DataFrame:
    """Same as ``confusion`` (exactly at ``threshold``), for the live threshold slider.

    Exact, and cheap enough for a live slider: every cube bin other than the threshold's own bin lies
    wholly on one side of it (bin = floor(P * 1000) is monotone in P), so those counts come from the
    cube; the reviews in the threshold's bin are compared with the threshold itself in SQL."""
    edge = min(math.floor(threshold * BINS), BINS - 1)  # the same arithmetic as the cube's bin
    cond, filt = _in_scope(where)
    inside = query(src, f"""
        WITH idx AS (SELECT unnest($models) AS model, (generate_subscripts($models, 1) - 1)::UTINYINT AS i),
        r AS (SELECT review_id, label = 'positive' AS y FROM reviews
              WHERE {cond} AND label IN ('positive', 'negative')),
        c AS (SELECT idx.i, count(*) FILTER (WHERE NOT y AND p.p_positive < $t) AS tn,
                     count(*) FILTER (WHERE NOT y AND p.p_positive >= $t) AS fp,
                     count(*) FILTER (WHERE y AND p.p_positive < $t) AS fn,
                     count(*) FILTER (WHERE y AND p.p_positive >= $t) AS tp
              FROM predictions p JOIN idx USING (model) JOIN r USING (review_id)
              WHERE p.corpus = $corpus AND p.p_positive >= $lo AND p.p_positive < $hi  -- a narrow range scan
                AND least(floor(p.p_positive * {BINS}), {BINS - 1}) = $edge GROUP BY idx.i)
        SELECT idx.model, tn, fp, fn, tp FROM c JOIN idx USING (i)""",
                   {**_scope(corpus, split, models), "t": threshold, "edge": edge, **filt,
                    "lo": (edge - 1) / BINS, "hi": 2.0 if edge == BINS - 1 else (edge + 2) / BINS})
    return _local("""
        WITH outside AS (
            SELECT model, coalesce(sum(n) FILTER (WHERE label = 'negative' AND bin < $edge), 0) AS tn,
                   coalesce(sum(n) FILTER (WHERE label = 'negative' AND bin > $edge), 0) AS fp,
                   coalesce(sum(n) FILTER (WHERE label = 'positive' AND bin < $edge), 0) AS fn,
                   coalesce(sum(n) FILTER (WHERE label = 'positive' AND bin > $edge), 0) AS tp
            FROM cube WHERE list_contains($models, model) AND label IN ('positive', 'negative') GROUP BY model),
        c AS (SELECT o.model, (o.tn + coalesce(i.tn, 0))::BIGINT AS tn, (o.fp + coalesce(i.fp, 0))::BIGINT AS fp,
                     (o.fn + coalesce(i.fn, 0))::BIGINT AS fn, (o.tp + coalesce(i.tp, 0))::BIGINT AS tp
              FROM outside o LEFT JOIN inside i USING (model))
        SELECT model, tn, fp, fn, tp, (tn + tp) / (tn + fp + fn + tp) AS accuracy,
               tp / nullif(tp + fp, 0) AS precision, tp / nullif(tp + fn, 0) AS recall,
               2 * tp / nullif(2 * tp + fp + fn, 0) AS f1
        FROM c ORDER BY model""", {"models": list(models), "edge": edge},
                  cube=cube(src, corpus, split, where), inside=inside)


CELLS = {  # cell -> (true label, predicted positive?)
    "tp": ("positive", True), "fn": ("positive", False), "fp": ("negative", True), "tn": ("negative", False),
}


@st.cache_data(**CACHE)
def cell_reviews(src: Source, corpus: str, split: str, model: str, cell: str, threshold: float = 0.5,
                 limit: int = TEXT_ROWS, where: Where = ()) -> pd.DataFrame:
    """Reviews in one confusion-matrix cell, the most confident first.

    At threshold 0.5 the cube says how far from 0.5 the ``limit`` most confident reviews of the cell lie, so
    only the predictions in that range of P (a few bins at the end) are joined with the reviews."""
    label, positive = CELLS[cell]
    join, filt = _join(where)
    lo, hi = _confident_range(cube(src, corpus, split, where), model, label, positive, limit) \
        if threshold == 0.5 else (-1.0, 2.0)
    rows = query(src, f"""
        SELECT p.review_id, r.label, p.p_positive, r.n_chars
        FROM {join} WHERE p.corpus = $corpus AND p.model = $model AND r.label = $label
                    AND (p.p_positive >= $t) = $positive AND p.p_positive >= $lo AND p.p_positive < $hi
        ORDER BY abs(p.p_positive - 0.5) DESC, p.review_id LIMIT $limit""",
                 {"corpus": corpus, "split": split, "model": model, "label": label, "positive": positive,
                  "t": threshold, "limit": limit, "lo": lo, "hi": hi, **filt})
    return _texts(src, corpus, rows)


def _confident_range(cube_frame: pd.DataFrame, model: str, label: str, positive: bool, limit: int
                     ) -> tuple[float, float]:
    """[lo, hi) of P that holds at least ``limit`` of the cell's reviews at threshold 0.5, taken from the end
    bins inwards (so it holds the ``limit`` furthest from 0.5); widened by 1e-9 against rounding."""
    cell = cube_frame[(cube_frame["model"] == model) & (cube_frame["label"] == label)]
    cell = cell[cell["bin"] >= BINS // 2] if positive else cell[cell["bin"] < BINS // 2]
    per_bin = cell.groupby("bin")["n"].sum().sort_index(ascending=not positive)  # most confident first
    reached = per_bin.cumsum() >= limit
    if not reached.any():
        return -1.0, 2.0
    edge = int(reached.idxmax())
    return (edge / BINS - 1e-9, 2.0) if positive else (-1.0, (edge + 1) / BINS + 1e-9)


# ---------------------------------------------------------------- disagreements

@st.cache_data(**CACHE)
def _disagreement_pass(src: Source, corpus: str, split: str, models: tuple[str, ...], limit: int,
                       where: Where = ()) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """One pass over the per-review aggregate: (top reviews by spread, top reviews every model gets
    wrong, ranked by mean confidence against the label, counts by bitmask/label), so the page's toggle
    costs nothing more. Read from the summaries for the default choice (every model, in order, no filter)."""
    if (not where and limit == summaries.DISAGREEMENTS and summarised(src, corpus)
            and list(models) == _models_of(src, corpus)):
        both = query(src, "SELECT part, review_id, spread, label, mask, all_contradict, n FROM summary_disagree "
                          "WHERE corpus = $corpus AND split = $split AND models = $key",
                     {"corpus": corpus, "split": split, "key": json.dumps(list(models))})
    else:
        sql, filt = summaries.disagreement_sql(where)
        both = query(src, sql, {**_scope(corpus, split, models), "limit": limit, **filt})
    spread = both[both["part"] == "spread"].sort_values(["spread", "review_id"], ascending=[False, True])
    wrong = both[both["part"] == "wrong"]  # UNION ALL keeps no order: re-rank after the text is fetched
    masks = both.loc[both["part"] == "mask", ["mask", "label", "all_contradict", "n"]]
    return spread.reset_index(drop=True), wrong.reset_index(drop=True), masks.reset_index(drop=True)


@st.cache_data(**CACHE)
def disagreements(src: Source, corpus: str, split: str, models: tuple[str, ...], contradict: bool = False,
                  limit: int = TEXT_ROWS, where: Where = ()) -> pd.DataFrame:
    """Reviews scored by every chosen model, ranked by max - min P(positive) (or, with ``contradict``,
    only those every model gets wrong, ranked by how confidently): review_id, spread, label, one column
    of P(positive) per model, text."""
    spread, wrong, _ = _disagreement_pass(src, corpus, split, models, limit, where)
    top = wrong if contradict else spread
    long = query(src, "SELECT review_id, model, p_positive FROM predictions WHERE corpus = $corpus "
                      "AND list_contains($models, model) AND list_contains($ids, review_id)",
                 {"corpus": corpus, "models": list(models), "ids": top["review_id"].tolist()})
    wide = long.pivot(index="review_id", columns="model", values="p_positive")  # <= 50 x models: a reshape
    table = top[["review_id", "spread", "label"]].merge(wide, left_on="review_id", right_index=True, how="left")
    table = table.reindex(columns=["review_id", "spread", "label", *models])
    if contradict and not table.empty:  # most confidently wrong first: mean P furthest from the label
        mean_p = table[list(models)].mean(axis=1)
        confidence = (mean_p - (table["label"] == "positive").astype(float)).abs()
        table = table.assign(_c=confidence).sort_values(["_c", "review_id"], ascending=[False, True])
        table = table.drop(columns="_c").reset_index(drop=True)
    return _texts(src, corpus, table)


def _masks(src: Source, corpus: str, split: str, models: tuple[str, ...], where: Where = ()) -> pd.DataFrame:
    return _disagreement_pass(src, corpus, split, models, TEXT_ROWS, where)[2]


@st.cache_data(**CACHE)
def agreement(src: Source, corpus: str, split: str, models: tuple[str, ...], where: Where = ()) -> pd.DataFrame:
    """model_a, model_b, agreement (share of reviews with the same predicted label), n."""
    return _local("""
        WITH idx AS (SELECT unnest($models) AS model, generate_subscripts($models, 1) - 1 AS i)
        SELECT a.model AS model_a, b.model AS model_b,
               coalesce(sum(n) FILTER (WHERE ((mask >> a.i) & 1) = ((mask >> b.i) & 1)), 0) / sum(n) AS agreement,
               sum(n) AS n
        FROM (SELECT mask::BIGINT AS mask, n FROM masks), idx a, idx b GROUP BY ALL ORDER BY ALL""",
                  {"models": list(models)}, masks=_masks(src, corpus, split, models, where))


@st.cache_data(**CACHE)
def disagreement_counts(src: Source, corpus: str, split: str, models: tuple[str, ...], where: Where = ()) -> dict:
    """reviews (scored by every chosen model), split_decisions (models differ), all_contradict."""
    row = _local("""
        SELECT coalesce(sum(n), 0) AS reviews,
               coalesce(sum(n) FILTER (WHERE mask::BIGINT <> 0
                                       AND mask::BIGINT <> (1::BIGINT << len($models)) - 1), 0) AS split_decisions,
               coalesce(sum(n) FILTER (WHERE all_contradict), 0) AS all_contradict
        FROM masks""", {"models": list(models)}, masks=_masks(src, corpus, split, models, where)).iloc[0]
    return {k: int(v) for k, v in row.items()}


# ---------------------------------------------------------------- reviews


def _review_from(f: ReviewFilter) -> tuple[str, dict]:
    """FROM + WHERE + parameters for a ReviewFilter; only fixed fragments, every value bound. Review-side
    conditions (split, label, length, text search) filter the reviews before the join."""
    scope, filt = _in_scope(f.where)
    inner = [scope]
    outer = ["p.corpus = $corpus", "p.model = $model", "p.p_positive BETWEEN $p_min AND $p_max"]
    params: dict = {"corpus": f.corpus, "split": f.split, "model": f.model, "p_min": f.p_min, "p_max": f.p_max,
                    **filt}
    if f.predicted:
        outer.append("p.predicted = $predicted")
        params["predicted"] = f.predicted
    if f.label == "none":
        inner.append("label IS NULL")
    elif f.label:
        inner.append("label = $label")
        params["label"] = f.label
    if f.correct is not None:
        inner.append("label IN ('positive', 'negative')")
        outer.append("(p.predicted = r.label) = $correct")
        params["correct"] = f.correct
    if f.chars_min is not None:
        inner.append("n_chars >= $chars_min")
        params["chars_min"] = f.chars_min
    if f.chars_max is not None:
        inner.append("n_chars <= $chars_max")
        params["chars_max"] = f.chars_max
    if f.search.strip():
        # Case-insensitive substring: ILIKE on a bound, escaped pattern decides; a regexp_matches(..., 'i')
        # prefilter on the same literal (RE2, about 3x faster than ILIKE over 1M reviews: 1.5 s vs 4.4 s
        # measured) lets ILIKE run only on the reviews that can match (CASE evaluates THEN only there).
        term = f.search.strip()
        inner.append("CASE WHEN regexp_matches(text, $regex, 'i') THEN text ILIKE $pattern ESCAPE '\\' "
                     "ELSE false END")
        params["regex"] = re.sub(r"([\\.^$|?*+()\[\]{}])", r"\\\1", term)
        params["pattern"] = "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    sql = (f"predictions p JOIN (SELECT review_id, label, n_chars FROM reviews WHERE {' AND '.join(inner)}) r "
           f"USING (review_id) WHERE {' AND '.join(outer)}")
    return sql, params


@st.cache_data(**CACHE)
def length_range(src: Source, corpus: str) -> tuple[int, int]:
    row = query(src, "SELECT coalesce(min(n_chars), 0) AS lo, coalesce(max(n_chars), 0) AS hi FROM reviews "
                     "WHERE corpus = $corpus", {"corpus": corpus}).iloc[0]
    return int(row["lo"]), int(row["hi"])


@st.cache_data(**CACHE)
def review_count(src: Source, f: ReviewFilter) -> int:
    where, params = _review_from(f)
    return int(query(src, f"SELECT count(*) AS n FROM {where}", params)["n"].iloc[0])


@st.cache_data(**CACHE)
def review_page(src: Source, f: ReviewFilter, limit: int = 50, offset: int = 0) -> tuple[int, pd.DataFrame]:
    """(number of matching reviews, one page of them in review_id order with their text). One pass over
    the filtered set (the count is a window over it); text is read only for the rows of the page."""
    where, params = _review_from(f)
    rows = query(src, f"""
        SELECT p.review_id, r.label, p.predicted, p.p_positive, r.n_chars, count(*) OVER () AS total
        FROM {where} ORDER BY p.review_id LIMIT $limit OFFSET $offset""", {**params, "limit": limit, "offset": offset})
    total = int(rows["total"].iloc[0]) if not rows.empty else (review_count(src, f) if offset else 0)
    return total, _texts(src, f.corpus, rows.drop(columns="total"))


def review_csv(src: Source, f: ReviewFilter, max_rows: int = CSV_MAX_ROWS) -> bytes:
    """The filtered reviews as CSV (at most ``max_rows``); built only when the download is clicked."""
    where, params = _review_from(f)
    table = query(src, f"""
        WITH page AS (SELECT p.review_id, r.label, p.model, p.predicted, p.p_positive, r.n_chars
                      FROM {where} ORDER BY p.review_id LIMIT $limit)
        SELECT page.*, t.text FROM page JOIN (SELECT review_id, text FROM reviews WHERE corpus = $corpus) t
        USING (review_id) ORDER BY page.review_id""", {**params, "limit": max_rows}, arrow=True)
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
    """One row per recorded model: where it learnt (trained_on, train_rows, train_classes as
    'negative 800 · positive 800'), what it is, its cost."""
    table = query(src, f"""
        SELECT k.model, {_PROVENANCE}, k.train_classes, k.kind, k.preset, k.n_params, k.bytes_on_disk,
               k.train_seconds, k.device, k.trained_at
        FROM {_models_table(src)} k ORDER BY k.model""")
    return table.assign(train_classes=table["train_classes"].map(_classes))


def _classes(raw: str | None) -> str | None:
    try:
        counts = json.loads(raw) if raw else None
    except (TypeError, ValueError):
        return raw
    if not isinstance(counts, dict):
        return raw
    return " · ".join(f"{label} {n:,}" if isinstance(n, int) else f"{label} {n}" for label, n in sorted(counts.items()))


def clear_caches() -> None:
    """Forget every cached query result (the benchmark times cold queries)."""
    st.cache_data.clear()
