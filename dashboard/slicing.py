"""The reads behind slicing: the kept columns of a corpus, their values, per-slice metrics and the series
over time. Read from the summaries published with the view (core.summaries), so they cost the same at 10
million reviews as at 1,000; computed from the rows, with the same SQL, while the sidebar filters on a kept
column or where the view has no summaries. Cached like dashboard.data."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core import summaries
from core.summaries import MISSING, OTHER, FieldFilter, SliceDef, Where
from dashboard.aggregates import binned_metrics, models, summarised, wide
from dashboard.db import CACHE, Source, local, query, rows_of

PERIODS = {"day": "day", "week": "week", "month": "month", "quarter": "quarter", "year": "year"}


def _run(src: Source):
    return lambda sql, params: query(src, sql, params)


@st.cache_data(**CACHE)
def fields(src: Source, corpus: str) -> pd.DataFrame:
    """field, kind of every kept column of ``corpus`` (in the file's order), 'text' columns included."""
    kinds = summaries.field_kinds(_run(src), corpus)
    return pd.DataFrame({"field": list(kinds), "kind": list(kinds.values())}, dtype=object)


def sliceable(src: Source, corpus: str) -> pd.DataFrame:
    f = fields(src, corpus)
    return f[f["kind"].isin(summaries.SLICED)].reset_index(drop=True)


@st.cache_data(**CACHE)
def values(src: Source, corpus: str, field: str, kind: str) -> pd.DataFrame:
    """value, n: a categorical/boolean column's most frequent values (summaries.VALUES of them), a numeric
    column's values or buckets, a datetime column's years."""
    if summarised(src, corpus):
        return query(src, "SELECT value, n FROM summary_values WHERE corpus = $corpus AND field = $field "
                          "ORDER BY ord", {"corpus": corpus, "field": field})
    sql, params = summaries.values_sql(slice_def(src, corpus, field, kind))
    return query(src, sql, {**params, "corpus": corpus})


@st.cache_data(**CACHE)
def bounds(src: Source, corpus: str, field: str) -> tuple:
    """(min, max) of a numeric column's numbers, or of a datetime column's days (as datetime.date)."""
    row = query(src, "SELECT min(num_value) AS lo_n, max(num_value) AS hi_n, min(time_value)::DATE AS lo_t, "
                     "max(time_value)::DATE AS hi_t FROM review_fields WHERE corpus = $corpus AND field = $field",
                {"corpus": corpus, "field": field}).iloc[0]
    if pd.notna(row["lo_t"]):
        return pd.Timestamp(row["lo_t"]).date(), pd.Timestamp(row["hi_t"]).date()
    return (float(row["lo_n"]), float(row["hi_n"])) if pd.notna(row["lo_n"]) else (0.0, 0.0)


@st.cache_data(**CACHE)
def slice_def(src: Source, corpus: str, field: str, kind: str) -> SliceDef:
    """How the column is cut into slices (decided on the whole corpus, as at publish time: the summaries
    record it)."""
    recorded = wide(src, corpus).slice_def(field) if wide(src, corpus) else None
    return recorded or summaries.slice_def(_run(src), corpus, field, kind)


def slice_filter(src: Source, corpus: str, field: str, kind: str, value: str) -> FieldFilter | None:
    """The filter selecting one slice's reviews (None for '(missing)')."""
    return slice_def(src, corpus, field, kind).slice_filter(value)


@st.cache_data(**CACHE)
def _slice_cube(src: Source, corpus: str, split: str, field: str, kind: str, where: Where) -> pd.DataFrame:
    """value, model, label, bin, n, sum_p of the column's slices."""
    if not where and summarised(src, corpus):
        return query(src, "SELECT value, model, label, bin, n, sum_p FROM summary_slices "
                          "WHERE corpus = $corpus AND split = $split AND field = $field",
                     {"corpus": corpus, "split": split, "field": field})
    sql, params = summaries.slices_sql(slice_def(src, corpus, field, kind), split, where,
                                       rows_of(summarised(src, corpus)), wide(src, corpus))
    return query(src, sql, {**params, "corpus": corpus, "split": split, "names": models(src, corpus)})


@st.cache_data(**CACHE)
def slices(src: Source, corpus: str, split: str, models: tuple[str, ...], field: str, kind: str, top: int = 10,
           where: Where = ()) -> pd.DataFrame:
    """Per slice and model: binned_metrics (reviews, accuracy, ROC-AUC, predicted-positive share, each with
    its 95% interval) and ``order`` (slices by size; '(other)' then '(missing)' last). Categorical columns
    keep their ``top`` largest slices; the rest are merged into '(other)'."""
    frame = _slice_cube(src, corpus, split, field, kind, where)
    if frame.empty:
        return frame
    size = frame[frame["model"] == frame["model"].iloc[0]].groupby("value")["n"].sum()
    named = [v for v in size.index if v not in (OTHER, MISSING)]
    if kind in ("categorical", "boolean"):
        named = sorted(named, key=lambda v: (-size[v], v))
        keep = set(named[:top])
        frame = frame.assign(value=frame["value"].where(frame["value"].isin(keep | {MISSING}), OTHER))
        named = named[:top]
    else:  # numbers and years in their own order, as slice_def lists them
        order = {v: k for k, v in enumerate(values(src, corpus, field, kind)["value"])}
        named = sorted(named, key=lambda v: order.get(v, len(order)))
    ranked = {v: k for k, v in enumerate([*named, OTHER, MISSING])}
    out = binned_metrics(frame, models, by_value=True)
    return out.assign(order=out["value"].map(ranked)).sort_values(["order", "model"]).reset_index(drop=True)


@st.cache_data(**CACHE)
def over_time(src: Source, corpus: str, split: str, models: tuple[str, ...], field: str, period: str = "month",
              where: Where = ()) -> pd.DataFrame:
    """Per period (its first day) and model: reviews, predicted-positive share, and where labels exist the
    labelled reviews, the labels' positive share and the accuracy at 0.5."""
    if not where and summarised(src, corpus):
        days = query(src, "SELECT day, model, label, positive, n FROM summary_time WHERE corpus = $corpus "
                          "AND split = $split AND field = $field AND list_contains($models, model)",
                     {"corpus": corpus, "split": split, "field": field, "models": list(models)})
    else:
        sql, params = summaries.time_sql(field, split, where, rows_of(summarised(src, corpus)), wide(src, corpus))
        days = query(src, sql, {**params, "corpus": corpus, "split": split, "names": list(models)})
    return local(f"""
        SELECT date_trunc('{PERIODS[period]}', day)::DATE AS period, model, sum(n)::BIGINT AS reviews,
               coalesce(sum(n) FILTER (WHERE positive), 0) / sum(n) AS positive_share,
               coalesce(sum(n) FILTER (WHERE label IN ('positive', 'negative')), 0)::BIGINT AS labelled,
               coalesce(sum(n) FILTER (WHERE label = 'positive'), 0)
                   / sum(n) FILTER (WHERE label IN ('positive', 'negative')) AS true_share,
               coalesce(sum(n) FILTER (WHERE label = 'positive' AND positive OR label = 'negative' AND NOT positive), 0)
                   / sum(n) FILTER (WHERE label IN ('positive', 'negative')) AS accuracy
        FROM days WHERE list_contains($models, model) GROUP BY ALL ORDER BY period, model""",
                  {"models": list(models)}, days=days)
