"""The row reads of a published view: the reviews of a confusion-matrix cell, the reviews on which the models
disagree, the Reviews page's filtered list (count, page, CSV, text search), and the text of the few rows a
page shows. They read summary_rows (one prediction per row, beside its review's small columns, keyed by an
integer rid), filtered on kept columns through summary_fields; text comes from the text parts
(core.store.texts), only for the rows shown. Each function takes a connection (or a cursor); every value is bound as a ``$name`` parameter."""

from __future__ import annotations

import io
import re
from typing import NamedTuple

import duckdb
import pandas as pd
import pyarrow.csv as pa_csv

from core.store import summaries, texts
from core.store.summaries import BINS, FieldFilter, Where, Wide

Con = duckdb.DuckDBPyConnection
TEXT_ROWS = 50  # reviews listed with their text at once (cell lists, disagreements, a page)


def _df(con: Con, sql: str, params: dict | None = None) -> pd.DataFrame:
    return con.execute(sql, params or {}).df()


def scoped_rows(where: Where) -> tuple[str, dict]:
    """``summary_rows p WHERE ...``: one prediction per row of $corpus in $split, passing the column
    filters, with the review's label and n_chars beside it (and rid, the order the lists page in). Extend
    with AND."""
    filt, params = summaries.where_sql(where, key="p.rid", fields="summary_fields")
    return f"summary_rows p WHERE p.corpus = $corpus AND p.split = $split{filt}", params


def with_texts(con: Con, corpus: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Add the text column to a small frame of review_ids (at most TEXT_ROWS: only the rows shown): their rids
    from reviews (a scan of its review_id column), then the texts of those rids alone."""
    if frame.empty:
        return frame.assign(text=pd.Series(dtype=object))
    rids = _df(con, "SELECT rid FROM reviews WHERE corpus = $corpus AND review_id IN (SELECT unnest($ids))",
               {"corpus": corpus, "ids": frame["review_id"].tolist()[:TEXT_ROWS]})["rid"].tolist()
    found = texts.texts_of(con, corpus, rids)[["review_id", "text"]]
    return frame.merge(found.drop_duplicates("review_id"), on="review_id", how="left")


# ---------------------------------------------------------------- a confusion-matrix cell


def edge_counts(con: Con, corpus: str, split: str, models: tuple[str, ...], threshold: float, edge: int,
                where: Where = ()) -> pd.DataFrame:
    """model, tn, fp, fn, tp of the labelled reviews whose P(positive) lies in bin ``edge`` (the threshold's
    own bin), each compared with ``threshold`` itself: a narrow range scan, so a live threshold slider stays
    exact and cheap (core.store.cube.confusion adds the other bins from the cube)."""
    rows, filt = scoped_rows(where)
    return _df(con, f"""
        WITH idx AS (SELECT unnest($models) AS model, (generate_subscripts($models, 1) - 1)::UTINYINT AS i),
        c AS (SELECT idx.i, count(*) FILTER (WHERE NOT y AND p_positive < $t) AS tn,
                     count(*) FILTER (WHERE NOT y AND p_positive >= $t) AS fp,
                     count(*) FILTER (WHERE y AND p_positive < $t) AS fn,
                     count(*) FILTER (WHERE y AND p_positive >= $t) AS tp
              FROM (SELECT p.model, p.p_positive, p.label = 'positive' AS y FROM {rows}
                      AND p.label IN ('positive', 'negative')
                      AND p.p_positive >= $lo AND p.p_positive < $hi  -- a narrow range scan
                      AND least(floor(p.p_positive * {BINS}), {BINS - 1}) = $edge) p
              JOIN idx USING (model) GROUP BY idx.i)
        SELECT idx.model, tn, fp, fn, tp FROM c JOIN idx USING (i)""",
               {"corpus": corpus, "split": split, "models": list(models), "t": threshold, "edge": edge, **filt,
                "lo": (edge - 1) / BINS, "hi": 2.0 if edge == BINS - 1 else (edge + 2) / BINS})


def cell_reviews(con: Con, corpus: str, split: str, model: str, label: str, positive: bool, threshold: float,
                 p_range: tuple[float, float], limit: int = TEXT_ROWS, where: Where = ()) -> pd.DataFrame:
    """The ``limit`` reviews labelled ``label`` that ``model`` predicts positive (or not) at ``threshold``,
    the most confident first, with their text; only predictions in ``p_range`` = [lo, hi) are read."""
    rows_where, filt = scoped_rows(where)
    rows = _df(con, f"""
        SELECT p.review_id, p.label, p.p_positive, p.n_chars
        FROM {rows_where} AND p.model = $model AND p.label = $label
            AND (p.p_positive >= $t) = $positive AND p.p_positive >= $lo AND p.p_positive < $hi
        ORDER BY abs(p.p_positive - 0.5) DESC, p.rid LIMIT $limit""",
               {"corpus": corpus, "split": split, "model": model, "label": label, "positive": positive,
                "t": threshold, "limit": limit, "lo": p_range[0], "hi": p_range[1], **filt})
    return with_texts(con, corpus, rows)


# ---------------------------------------------------------------- disagreements


def disagreement_pass(con: Con, corpus: str, split: str, models: tuple[str, ...], limit: int, where: Where = (),
                      key: str | None = None, wide: Wide | None = None) -> pd.DataFrame:
    """part, review_id, spread, label, mask, all_contradict, n: summaries.disagreement_sql's one pass. ``key``
    (the JSON list of every model of the corpus, when ``models`` is that list) reads the summaries' copy:
    summary_disagree itself for the default page, else summary_agree, or ``wide`` under filters it covers."""
    scope = {"corpus": corpus, "split": split}
    if key is not None and not where and limit == summaries.DISAGREEMENTS:
        return _df(con, "SELECT part, review_id, spread, label, mask, all_contradict, n FROM summary_disagree "
                        "WHERE corpus = $corpus AND split = $split AND models = $key", {**scope, "key": key})
    if key is not None and wide is not None and where and wide.covers(where):  # no join: conditions on columns
        sql, filt = summaries.disagreement_sql(where, agree=True, wide=wide)
        return _df(con, sql, {**scope, "names": list(models), "limit": limit, **filt})
    sql, filt = summaries.disagreement_sql(where, agree=key is not None)
    return _df(con, sql, {**scope, **({"key": key} if key is not None else {}), "names": list(models),
                          "limit": limit, **filt})


def predictions_of(con: Con, corpus: str, models: tuple[str, ...], ids: list[str]) -> pd.DataFrame:
    """review_id, model, p_positive of a few reviews."""
    return _df(con, "SELECT review_id, model, p_positive FROM predictions WHERE corpus = $corpus "
                    "AND list_contains($models, model) AND list_contains($ids, review_id)",
               {"corpus": corpus, "models": list(models), "ids": ids})


# ---------------------------------------------------------------- the Reviews page


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
    search_steps: int | None = None  # search only that many steps of reviews (None: all at once)
    where: Where = ()


def _review_from(con: Con, f: ReviewFilter, hits: list[str] | None) -> tuple[str, dict]:
    """FROM + WHERE + parameters for a ReviewFilter over one model's rows; only fixed fragments, every value
    bound. ``hits``: the review_ids a stepped text search found so far (f.search_steps set)."""
    rows_where, filt = scoped_rows(f.where)
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
        # The text is only in the text parts: its matches are semi-joined to the rows; with search_steps, the
        # matches of the steps read so far (``hits``).
        if f.search_steps is None:
            match, mparams = _match(f.search.strip())
            text, tparams = texts.source(con, f.corpus)
            conds.append(f"p.rid IN (SELECT rid FROM {text} WHERE {match})")
            params.update(mparams, **tparams)
        else:
            conds.append("p.review_id IN (SELECT unnest($hits))")
            params["hits"] = hits or []
    return " AND ".join(conds), params


def _match(term: str) -> tuple[str, dict]:
    """Whether a review's text contains ``term``, case-insensitively, as SQL over a text: ILIKE on a
    bound, escaped pattern decides; a regexp_matches(..., 'i') prefilter on the same literal (RE2, several
    times faster than ILIKE over many reviews) lets ILIKE run only where it can match (CASE evaluates THEN
    only there)."""
    return ("CASE WHEN regexp_matches(text, $regex, 'i') THEN text ILIKE $pattern ESCAPE '\\' ELSE false END",
            {"regex": re.sub(r"([\\.^$|?*+()\[\]{}])", r"\\\1", term),
             "pattern": "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"})


def step_hits(con: Con, corpus: str, term: str, lo: int, hi: int) -> list[str]:
    """review_ids of the reviews with rids in [lo, hi) whose text contains ``term``: only the parts holding
    that range are read, and in them the row groups of the range, so a step reads about hi - lo reviews' text."""
    match, params = _match(term)
    text, tparams = texts.source(con, corpus, span=(lo, hi))
    return _df(con, f"SELECT review_id FROM {text} WHERE rid >= $a AND rid < $b AND {match}",
               {"corpus": corpus, "a": lo, "b": hi, **params, **tparams})["review_id"].tolist()


def length_range(con: Con, corpus: str) -> tuple[int, int]:
    """(shortest, longest) review of the corpus, in characters."""
    row = _df(con, "SELECT coalesce(min(n_chars), 0) AS lo, coalesce(max(n_chars), 0) AS hi FROM reviews "
                   "WHERE corpus = $corpus", {"corpus": corpus}).iloc[0]
    return int(row["lo"]), int(row["hi"])


def search_span(con: Con, corpus: str) -> tuple[int, int]:
    """(first rid, last rid + 1) of the corpus's reviews: the range a text search walks in steps."""
    row = _df(con, "SELECT coalesce(min(rid), 0) AS lo, coalesce(max(rid) + 1, 0) AS hi FROM reviews "
                   "WHERE corpus = $corpus", {"corpus": corpus}).iloc[0]
    return int(row["lo"]), int(row["hi"])


def searched(con: Con, corpus: str, upto: int) -> tuple[int, int]:
    """(reviews of the corpus with a rid below ``upto``, reviews of the corpus)."""
    row = _df(con, "SELECT count(*) FILTER (WHERE rid < $upto) AS n, count(*) AS total FROM reviews "
                   "WHERE corpus = $corpus", {"corpus": corpus, "upto": upto}).iloc[0]
    return int(row["n"]), int(row["total"])


def review_count(con: Con, f: ReviewFilter, hits: list[str] | None = None) -> int:
    where, params = _review_from(con, f, hits)
    return int(_df(con, f"SELECT count(*) AS n FROM {where}", params)["n"].iloc[0])


def review_page(con: Con, f: ReviewFilter, limit: int = 50, offset: int = 0, hits: list[str] | None = None
                ) -> tuple[int, pd.DataFrame]:
    """(number of matching reviews, one page of them in review_id order with their text). The count and
    the page are two scans of one model's rows (a top-N on the integer rid, not a sort of every match);
    text is read only for the rows of the page. Under a text search one scan gives both (the count is a
    window over the matches)."""
    where, params = _review_from(con, f, hits)
    if f.search.strip():
        rows = _df(con, f"""
            SELECT p.review_id, p.label, p.predicted, p.p_positive, p.n_chars, count(*) OVER () AS total
            FROM {where} ORDER BY p.rid LIMIT $limit OFFSET $offset""", {**params, "limit": limit, "offset": offset})
        if len(rows):
            total = int(rows["total"].iloc[0])
        else:  # no row on this page: a page past the last match, or no match at all
            total = review_count(con, f, hits) if offset else 0
        return total, with_texts(con, f.corpus, rows.drop(columns="total"))
    rows = _df(con, f"""
        SELECT p.review_id, p.label, p.predicted, p.p_positive, p.n_chars
        FROM {where} ORDER BY p.rid LIMIT $limit OFFSET $offset""", {**params, "limit": limit, "offset": offset})
    return review_count(con, f, hits), with_texts(con, f.corpus, rows)


def review_csv(con: Con, f: ReviewFilter, max_rows: int, hits: list[str] | None = None) -> bytes:
    """The filtered reviews as CSV (at most ``max_rows``), in rid order. Any ``max_rows`` matches (the first
    a scan streams: a LIMIT without ORDER BY stops early) have a largest rid, ``last``; the first
    ``max_rows`` matches in rid order all lie at or below it, so the sort reads only those rows, not every
    match."""
    where, params = _review_from(con, f, hits)
    last = _df(con, f"SELECT max(rid) AS last FROM (SELECT p.rid FROM {where} LIMIT $limit)",
               {**params, "limit": max_rows})["last"].tolist()[0]
    if pd.isna(last):  # nothing matches: the header alone
        where, last = where + " AND false", None
    text, tparams = texts.source(con, f.corpus)
    table = con.sql(f"""
        WITH page AS (SELECT p.review_id, p.label, p.model, p.predicted, p.p_positive, p.n_chars, p.rid
                      FROM {where} AND p.rid <= $last ORDER BY p.rid LIMIT $limit)
        SELECT page.* EXCLUDE (rid), t.text FROM page JOIN (SELECT rid, text FROM {text}) t
        USING (rid) ORDER BY page.rid""", params={**params, **tparams, "limit": max_rows, "last": last}
                    ).to_arrow_table()
    out = io.BytesIO()
    pa_csv.write_csv(table, out)
    return out.getvalue()


SIDES = ("predicted", "label")  # what puts a review on the negative or the positive side
POOL_ENOUGH = 200  # reviews of the pool in a sample: fewer, and a sample is drawn from the whole corpus
LIVE_MAX = 1_000  # reviews in a sample drawn from the whole corpus (their texts are read one row group at a time)


def sample_texts(con: Con, corpus: str, split: str, model: str, n: int, seed: int = 0, where: Where = (),
                 outside: FieldFilter | None = None, side: str | None = None, by: str = "predicted",
                 date_field: str | None = None) -> pd.DataFrame:
    """review_id, label, predicted, text of a uniform sample of at most ``n`` of the reviews of $corpus in
    $split that ``model`` scored and that pass the column filters ``where``; ``outside``: and that this
    filter does not keep; ``side``: and whose ``by`` (the model's prediction or the label) is ``side``. With
    ``date_field``, also ``day``: each review's date in that datetime column (NaT without).

    Drawn from summary_pool (a uniform sample of the corpus, with texts): its first ``n`` matches in hash
    order. Where the pool is not the whole corpus and holds fewer than POOL_ENOUGH matches (a narrow
    filter), from every matching review instead (reservoir, ``seed``; at most LIVE_MAX)."""
    if by not in SIDES:
        raise ValueError(f"by must be one of {SIDES}, not {by!r}")
    filt, params = summaries.where_sql(where, key="p.rid", fields="summary_fields", outside=outside)
    params |= {"corpus": corpus, "split": split, "model": model, "date_field": date_field}
    on_side = ""
    if side:
        on_side, params["side"] = f" AND p.{by} = $side", side
    rows = f"summary_rows p WHERE p.corpus = $corpus AND p.split = $split AND p.model = $model{on_side}{filt}"
    day = ("(SELECT f.time_value::DATE FROM summary_fields f WHERE f.corpus = $corpus AND f.field = $date_field "
           "AND f.rid = s.rid) AS day")  # looked up for the sampled reviews only
    pooled = _df(con, f"""SELECT s.review_id, s.label, s.predicted, s.text, {day} FROM (
        SELECT p.rid, p.review_id, p.label, p.predicted, s.text FROM summary_pool s, {rows}
        AND p.rid = s.rid AND s.corpus = $corpus ORDER BY s.h LIMIT $n) s""", {**params, "n": int(n)})
    whole = _df(con, "SELECT count(*) < $pool AS whole FROM summary_pool WHERE corpus = $corpus",
                {"corpus": corpus, "pool": summaries.POOL})["whole"].iloc[0]
    if whole or len(pooled) >= min(n, POOL_ENOUGH):
        return pooled.sort_values("review_id", ignore_index=True)
    # the sample is drawn from the filtered rows (a subquery: USING SAMPLE applies before its own WHERE); its
    # size and seed are integers, which the clause takes only as literals
    picked = _df(con, f"""SELECT s.rid, s.review_id, s.label, s.predicted, {day} FROM (SELECT * FROM (
        SELECT p.rid, p.review_id, p.label, p.predicted FROM {rows})
        USING SAMPLE reservoir({int(min(n, LIVE_MAX))} ROWS) REPEATABLE ({int(seed)})) s""", params)
    found = texts.texts_of(con, corpus, picked["rid"].tolist())[["review_id", "text"]]
    out = picked.merge(found, on="review_id", how="left")
    return out[["review_id", "label", "predicted", "text", "day"]].sort_values("review_id", ignore_index=True)
