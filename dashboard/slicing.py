"""The dashboard's reads behind slicing, cached (see dashboard.db): the kept columns of a corpus, their values,
per-slice metrics and the series over time. Read from the summaries published with the view, so they cost
the same at 10 million reviews as at 1,000; computed live (core.store.reads) while the sidebar filters on a
kept column."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.store import cube as cubes
from core.store import reads
from core.store.summaries import MISSING, OTHER, SLICED, FieldFilter, SliceDef, Where
from dashboard.aggregates import binned_metrics, models
from dashboard.db import CACHE, Source, read

PERIODS = cubes.PERIODS  # the periods a series can be grouped by
THIN = cubes.THIN  # reviews: fewer make a thin period


@st.cache_data(**CACHE)
def fields(src: Source, corpus: str) -> pd.DataFrame:
    """field, kind of every kept column of ``corpus`` (in the file's order), 'text' columns included."""
    kinds = read(src, reads.field_kinds, corpus)
    return pd.DataFrame({"field": list(kinds), "kind": list(kinds.values())}, dtype=object)


def sliceable(src: Source, corpus: str) -> pd.DataFrame:
    f = fields(src, corpus)
    return f[f["kind"].isin(SLICED)].reset_index(drop=True)


@st.cache_data(**CACHE)
def values(src: Source, corpus: str, field: str, kind: str) -> pd.DataFrame:
    """value, n: a categorical/boolean column's most frequent values, a numeric column's values or buckets,
    a datetime column's years (as the publish listed them)."""
    return read(src, reads.values, corpus, field)


@st.cache_data(**CACHE)
def bounds(src: Source, corpus: str, field: str) -> tuple:
    """(min, max) of a numeric column's numbers, or of a datetime column's days (as datetime.date)."""
    return read(src, reads.bounds, corpus, field)


@st.cache_data(**CACHE)
def slice_def(src: Source, corpus: str, field: str, kind: str) -> SliceDef:
    """How the column is cut into slices (decided on the whole corpus, as at publish time: the summaries
    record it)."""
    return read(src, reads.slice_def, corpus, field, kind)


def slice_filter(src: Source, corpus: str, field: str, kind: str, value: str) -> FieldFilter | None:
    """The filter selecting one slice's reviews (None for '(missing)')."""
    return slice_def(src, corpus, field, kind).slice_filter(value)


@st.cache_data(**CACHE)
def _slice_cube(src: Source, corpus: str, split: str, field: str, kind: str, where: Where) -> pd.DataFrame:
    """value, model, label, bin, n, sum_p of the column's slices."""
    if not where:
        return read(src, reads.slice_cube, corpus, split, field)
    return read(src, reads.live_slice_cube, corpus, split, slice_def(src, corpus, field, kind), where,
                models(src, corpus))


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
    days = read(src, reads.days, corpus, split, field, list(models), where)
    return cubes.periods(days, models, period)


def default_period(src: Source, corpus: str, split: str, models: tuple[str, ...], field: str,
                   where: Where = ()) -> str:
    """The finest period in which most periods hold at least cube.THIN reviews (core.store.cube.finest_period)."""
    first = models[:1]
    counts = {p: over_time(src, corpus, split, first, field, p, where)["reviews"] for p in PERIODS}
    return cubes.finest_period(counts)
