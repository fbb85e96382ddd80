"""The dashboard's row reads: the reviews of a confusion-matrix cell, the reviews on which the models
disagree, and the Reviews page's filtered, paged list and CSV. Text is fetched only for the rows shown.
Cached like every read (see dashboard.db)."""

from __future__ import annotations

import io
import json
import re

import pandas as pd
import pyarrow.csv as pa_csv
import streamlit as st

from core import summaries
from core.summaries import Where
from dashboard.aggregates import cube, summarised, wide
from dashboard.aggregates import models as corpus_models  # the reads' `models` argument shadows the name
from dashboard.db import (
    BINS,
    CACHE,
    CSV_MAX_ROWS,
    SEARCH_CHUNK,
    TEXT_ROWS,
    ReviewFilter,
    Source,
    local,
    query,
    rows_of,
    scoped_rows,
    with_texts,
)

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
    rows_where, filt = scoped_rows(where, summarised(src, corpus))
    lo, hi = _confident_range(cube(src, corpus, split, where), model, label, positive, limit) \
        if threshold == 0.5 else (-1.0, 2.0)
    rows = query(src, f"""
        SELECT p.review_id, p.label, p.p_positive, p.n_chars
        FROM {rows_where} AND p.model = $model AND p.label = $label
            AND (p.p_positive >= $t) = $positive AND p.p_positive >= $lo AND p.p_positive < $hi
        ORDER BY abs(p.p_positive - 0.5) DESC, p.rid LIMIT $limit""",
                 {"corpus": corpus, "split": split, "model": model, "label": label, "positive": positive,
                  "t": threshold, "limit": limit, "lo": lo, "hi": hi, **filt})
    return with_texts(src, corpus, rows)


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
    costs nothing more. For the default choice (every model of the corpus, in order) read from the
    summaries: summary_disagree itself, or under a filter summary_agree (one row per review, no grouping)."""
    every = len(models) > 1 and summarised(src, corpus) and list(models) == corpus_models(src, corpus)
    table = wide(src, corpus) if every and where else None  # every model's figures per review, one row each
    scope = {"corpus": corpus, "split": split}
    key = {"key": json.dumps(list(models))} if every else {}  # names the model set in the summaries
    if not where and limit == summaries.DISAGREEMENTS and every:
        both = query(src, "SELECT part, review_id, spread, label, mask, all_contradict, n FROM summary_disagree "
                          "WHERE corpus = $corpus AND split = $split AND models = $key", {**scope, **key})
    elif table is not None and table.covers(where):  # the filters are conditions on its columns: no join
        sql, filt = summaries.disagreement_sql(where, agree=True, wide=table)
        both = query(src, sql, {**scope, "names": list(models), "limit": limit, **filt})
    else:
        sql, filt = summaries.disagreement_sql(where, rows_of(summarised(src, corpus)), agree=every)
        both = query(src, sql, {**scope, **key, "names": list(models), "limit": limit, **filt})
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
    return with_texts(src, corpus, table)


def _masks(src: Source, corpus: str, split: str, models: tuple[str, ...], where: Where = ()) -> pd.DataFrame:
    return _disagreement_pass(src, corpus, split, models, TEXT_ROWS, where)[2]


@st.cache_data(**CACHE)
def agreement(src: Source, corpus: str, split: str, models: tuple[str, ...], where: Where = ()) -> pd.DataFrame:
    """model_a, model_b, agreement (share of reviews with the same predicted label), n."""
    return local("""
        WITH idx AS (SELECT unnest($models) AS model, generate_subscripts($models, 1) - 1 AS i)
        SELECT a.model AS model_a, b.model AS model_b,
               coalesce(sum(n) FILTER (WHERE ((mask >> a.i) & 1) = ((mask >> b.i) & 1)), 0) / sum(n) AS agreement,
               sum(n) AS n
        FROM (SELECT mask::BIGINT AS mask, n FROM masks), idx a, idx b GROUP BY ALL ORDER BY ALL""",
                  {"models": list(models)}, masks=_masks(src, corpus, split, models, where))


@st.cache_data(**CACHE)
def disagreement_counts(src: Source, corpus: str, split: str, models: tuple[str, ...], where: Where = ()) -> dict:
    """reviews (scored by every chosen model), split_decisions (models differ), all_contradict."""
    row = local("""
        SELECT coalesce(sum(n), 0) AS reviews,
               coalesce(sum(n) FILTER (WHERE mask::BIGINT <> 0
                                       AND mask::BIGINT <> (1::BIGINT << len($models)) - 1), 0) AS split_decisions,
               coalesce(sum(n) FILTER (WHERE all_contradict), 0) AS all_contradict
        FROM masks""", {"models": list(models)}, masks=_masks(src, corpus, split, models, where)).iloc[0]
    return {k: int(v) for k, v in row.items()}


# ---------------------------------------------------------------- reviews


def _review_from(src: Source, f: ReviewFilter) -> tuple[str, dict]:
    """FROM + WHERE + parameters for a ReviewFilter over one model's rows (dashboard.db.scoped_rows); only
    fixed fragments, every value bound."""
    rows_where, filt = scoped_rows(f.where, summarised(src, f.corpus))
    conds = [rows_where, "p.model = $model", "p.p_positive BETWEEN $p_min AND $p_max"]
    params: dict = {"corpus": f.corpus, "split": f.split, "model": f.model, "p_min": f.p_min, "p_max": f.p_max,
                    **filt}
    if f.predicted:
        conds.append("p.predicted = $predicted")
        params["predicted"] = f.predicted
    if f.label == "none":
        conds.append("p.label IS NULL")
    elif f.label:
        conds.append("p.label = $label")
        params["label"] = f.label
    if f.correct is not None:
        conds.append("p.label IN ('positive', 'negative') AND (p.predicted = p.label) = $correct")
        params["correct"] = f.correct
    if f.chars_min is not None:
        conds.append("p.n_chars >= $chars_min")
        params["chars_min"] = f.chars_min
    if f.chars_max is not None:
        conds.append("p.n_chars <= $chars_max")
        params["chars_max"] = f.chars_max
    if f.search.strip():
        # Case-insensitive substring: ILIKE on a bound, escaped pattern decides; a regexp_matches(..., 'i')
        # prefilter on the same literal (RE2, several times faster than ILIKE over many reviews) lets ILIKE
        # run only on the reviews that can match (CASE evaluates THEN only there).
        # The text is only in reviews: its matches are semi-joined to the rows. With search_steps, the
        # matches of the steps read so far (_step_hits, each cached).
        term = f.search.strip()
        if f.search_steps is None:
            match, mparams = _match(term)
            conds.append(f"p.review_id IN (SELECT review_id FROM reviews WHERE corpus = $corpus AND {match})")
            params.update(mparams)
        else:
            hits = [h for k in range(f.search_steps) for h in _step_hits(src, f.corpus, term, k, SEARCH_CHUNK)]
            conds.append("p.review_id IN (SELECT unnest($hits))")
            params["hits"] = hits
    return " AND ".join(conds), params


def _match(term: str) -> tuple[str, dict]:
    """Whether a review's text contains ``term``, case-insensitively, as SQL over reviews.text."""
    return ("CASE WHEN regexp_matches(text, $regex, 'i') THEN text ILIKE $pattern ESCAPE '\\' ELSE false END",
            {"regex": re.sub(r"([\\.^$|?*+()\[\]{}])", r"\\\1", term),
             "pattern": "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"})


@st.cache_data(**CACHE)
def _step_hits(src: Source, corpus: str, term: str, step: int, chunk: int) -> list[str]:
    """review_ids of the reviews stored in the ``step``-th ``chunk`` of rowids whose text contains ``term``:
    DuckDB skips the row groups outside the range, so a step reads ``chunk`` reviews' text, never more."""
    lo, _ = search_span(src, corpus)
    match, params = _match(term)
    return query(src, f"SELECT review_id FROM reviews WHERE corpus = $corpus AND rowid >= $a AND rowid < $b "
                      f"AND {match}", {"corpus": corpus, "a": lo + step * chunk, "b": lo + (step + 1) * chunk,
                                       **params})["review_id"].tolist()


@st.cache_data(**CACHE)
def length_range(src: Source, corpus: str) -> tuple[int, int]:
    row = query(src, "SELECT coalesce(min(n_chars), 0) AS lo, coalesce(max(n_chars), 0) AS hi FROM reviews "
                     "WHERE corpus = $corpus", {"corpus": corpus}).iloc[0]
    return int(row["lo"]), int(row["hi"])


@st.cache_data(**CACHE)
def search_span(src: Source, corpus: str) -> tuple[int, int]:
    """(first rowid, last rowid + 1) of the corpus's reviews: the range a text search walks in steps."""
    row = query(src, "SELECT coalesce(min(rowid), 0) AS lo, coalesce(max(rowid) + 1, 0) AS hi FROM reviews "
                     "WHERE corpus = $corpus", {"corpus": corpus}).iloc[0]
    return int(row["lo"]), int(row["hi"])


def searched(src: Source, corpus: str, steps: int) -> tuple[int, int]:
    """(reviews that ``steps`` steps of a text search read, reviews of the corpus)."""
    return _searched(src, corpus, search_span(src, corpus)[0] + steps * SEARCH_CHUNK)


@st.cache_data(**CACHE)
def _searched(src: Source, corpus: str, upto: int) -> tuple[int, int]:
    row = query(src, "SELECT count(*) FILTER (WHERE rowid < $upto) AS n, count(*) AS total FROM reviews "
                     "WHERE corpus = $corpus", {"corpus": corpus, "upto": upto}).iloc[0]
    return int(row["n"]), int(row["total"])


@st.cache_data(**CACHE)
def review_count(src: Source, f: ReviewFilter) -> int:
    where, params = _review_from(src, f)
    return int(query(src, f"SELECT count(*) AS n FROM {where}", params)["n"].iloc[0])


@st.cache_data(**CACHE)
def review_page(src: Source, f: ReviewFilter, limit: int = 50, offset: int = 0) -> tuple[int, pd.DataFrame]:
    """(number of matching reviews, one page of them in review_id order with their text). The count and
    the page are two scans of one model's rows (a top-N on the integer rid, not a sort of every match);
    text is read only for the rows of the page. Under a text search one scan gives both (the count is a
    window over the matches)."""
    where, params = _review_from(src, f)
    if f.search.strip():
        rows = query(src, f"""
            SELECT p.review_id, p.label, p.predicted, p.p_positive, p.n_chars, count(*) OVER () AS total
            FROM {where} ORDER BY p.rid LIMIT $limit OFFSET $offset""", {**params, "limit": limit, "offset": offset})
        if len(rows):
            total = int(rows["total"].iloc[0])
        else:  # no row on this page: a page past the last match, or no match at all
            total = review_count(src, f) if offset else 0
        return total, with_texts(src, f.corpus, rows.drop(columns="total"))
    rows = query(src, f"""
        SELECT p.review_id, p.label, p.predicted, p.p_positive, p.n_chars
        FROM {where} ORDER BY p.rid LIMIT $limit OFFSET $offset""", {**params, "limit": limit, "offset": offset})
    return review_count(src, f), with_texts(src, f.corpus, rows)


def review_csv(src: Source, f: ReviewFilter, max_rows: int = CSV_MAX_ROWS) -> bytes:
    """The filtered reviews as CSV (at most ``max_rows``), in rid order; built only when the download is
    clicked. Any ``max_rows`` matches (the first a scan streams: a LIMIT without ORDER BY stops early) have a
    largest rid, ``last``; the first ``max_rows`` matches in rid order all lie at or below it, so the sort
    reads only those rows, not every match (a top-N over all of them costs several times more at 10M)."""
    where, params = _review_from(src, f)
    last = query(src, f"SELECT max(rid) AS last FROM (SELECT p.rid FROM {where} LIMIT $limit)",
                 {**params, "limit": max_rows})["last"].tolist()[0]  # a Python int (or str: BASE's rid)
    if pd.isna(last):  # nothing matches: the header alone
        where, last = where + " AND false", None
    table = query(src, f"""
        WITH page AS (SELECT p.review_id, p.label, p.model, p.predicted, p.p_positive, p.n_chars, p.rid
                      FROM {where} AND p.rid <= $last ORDER BY p.rid LIMIT $limit)
        SELECT page.* EXCLUDE (rid), t.text FROM page JOIN (SELECT review_id, text FROM reviews WHERE corpus = $corpus) t
        USING (review_id) ORDER BY page.rid""", {**params, "limit": max_rows, "last": last}, arrow=True)
    out = io.BytesIO()
    pa_csv.write_csv(table, out)
    return out.getvalue()
