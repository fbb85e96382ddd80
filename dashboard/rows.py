"""The dashboard's row reads, cached (see dashboard.db): the reviews of a confusion-matrix cell, the reviews on
which the models disagree, and the Reviews page's filtered, paged list and CSV. The SQL is core.store's
(store.review_rows); text is fetched only for the rows shown."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from core import drivers as drivers_
from core.store import cube as cubes
from core.store import review_rows
from core.store.summaries import Where
from dashboard.aggregates import cube, wide
from dashboard.aggregates import models as corpus_models  # the reads' `models` argument shadows the name
from dashboard.db import BINS, CACHE, CSV_MAX_ROWS, SEARCH_CHUNK, TEXT_ROWS, ReviewFilter, Source, read

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
    p_range = _confident_range(cube(src, corpus, split, where), model, label, positive, limit) \
        if threshold == 0.5 else (-1.0, 2.0)
    return read(src, review_rows.cell_reviews, corpus, split, model, label, positive, threshold, p_range, limit, where)


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
    summaries (core.store.review_rows.disagreement_pass)."""
    every = len(models) > 1 and list(models) == corpus_models(src, corpus)
    key = json.dumps(list(models)) if every else None  # names the model set in the summaries
    table = wide(src, corpus) if every and where else None
    both = read(src, review_rows.disagreement_pass, corpus, split, models, limit, where, key, table)
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
    long = read(src, review_rows.predictions_of, corpus, models, top["review_id"].tolist())
    by_model = long.pivot(index="review_id", columns="model", values="p_positive")  # <= 50 x models: a reshape
    table = top[["review_id", "spread", "label"]].merge(by_model, left_on="review_id", right_index=True, how="left")
    table = table.reindex(columns=["review_id", "spread", "label", *models])
    if contradict and not table.empty:  # most confidently wrong first: mean P furthest from the label
        mean_p = table[list(models)].mean(axis=1)
        confidence = (mean_p - (table["label"] == "positive").astype(float)).abs()
        table = table.assign(_c=confidence).sort_values(["_c", "review_id"], ascending=[False, True])
        table = table.drop(columns="_c").reset_index(drop=True)
    return read(src, review_rows.with_texts, corpus, table)


def _masks(src: Source, corpus: str, split: str, models: tuple[str, ...], where: Where = ()) -> pd.DataFrame:
    return _disagreement_pass(src, corpus, split, models, TEXT_ROWS, where)[2]


@st.cache_data(**CACHE)
def agreement(src: Source, corpus: str, split: str, models: tuple[str, ...], where: Where = ()) -> pd.DataFrame:
    """model_a, model_b, agreement (share of reviews with the same predicted label), n."""
    return cubes.agreement(_masks(src, corpus, split, models, where), models)


@st.cache_data(**CACHE)
def disagreement_counts(src: Source, corpus: str, split: str, models: tuple[str, ...], where: Where = ()) -> dict:
    """reviews (scored by every chosen model), split_decisions (models differ), all_contradict."""
    return cubes.disagreement_counts(_masks(src, corpus, split, models, where), models)


# ---------------------------------------------------------------- reviews


def _hits(src: Source, f: ReviewFilter) -> list[str] | None:
    """The matches of the steps of a stepped text search read so far (each step cached), else None."""
    if not f.search.strip() or f.search_steps is None:
        return None
    return [h for k in range(f.search_steps) for h in _step_hits(src, f.corpus, f.search.strip(), k, SEARCH_CHUNK)]


@st.cache_data(**CACHE)
def _step_hits(src: Source, corpus: str, term: str, step: int, chunk: int) -> list[str]:
    """review_ids of the reviews stored in the ``step``-th ``chunk`` of rids whose text contains ``term``."""
    lo = search_span(src, corpus)[0] + step * chunk
    return read(src, review_rows.step_hits, corpus, term, lo, lo + chunk)


@st.cache_data(**CACHE)
def length_range(src: Source, corpus: str) -> tuple[int, int]:
    return read(src, review_rows.length_range, corpus)


@st.cache_data(**CACHE)
def search_span(src: Source, corpus: str) -> tuple[int, int]:
    """(first rid, last rid + 1) of the corpus's reviews: the range a text search walks in steps."""
    return read(src, review_rows.search_span, corpus)


def searched(src: Source, corpus: str, steps: int) -> tuple[int, int]:
    """(reviews that ``steps`` steps of a text search read, reviews of the corpus)."""
    return _searched(src, corpus, search_span(src, corpus)[0] + steps * SEARCH_CHUNK)


@st.cache_data(**CACHE)
def _searched(src: Source, corpus: str, upto: int) -> tuple[int, int]:
    return read(src, review_rows.searched, corpus, upto)


@st.cache_data(**CACHE)
def review_count(src: Source, f: ReviewFilter) -> int:
    return read(src, review_rows.review_count, f, _hits(src, f))


@st.cache_data(**CACHE)
def review_page(src: Source, f: ReviewFilter, limit: int = 50, offset: int = 0) -> tuple[int, pd.DataFrame]:
    """(number of matching reviews, one page of them in review_id order with their text)."""
    return read(src, review_rows.review_page, f, limit, offset, _hits(src, f))


def review_csv(src: Source, f: ReviewFilter, max_rows: int = CSV_MAX_ROWS) -> bytes:
    """The filtered reviews as CSV (at most ``max_rows``), in rid order; built only when the download is
    clicked."""
    return read(src, review_rows.review_csv, f, max_rows, _hits(src, f))


# ---------------------------------------------------------------- drivers

DRIVER_SAMPLE = drivers_.SAMPLE  # reviews each side of a Drivers table is counted on, at most
TREND_SAMPLE = drivers_.TREND_SAMPLE  # reviews a term's share over time is counted on, at most
DRIVER_SIDES = {"predicted": "by prediction", "label": "by true label"}  # what makes a review negative or positive
Group = drivers_.Group
period_bounds, period_label = drivers_.period_bounds, drivers_.period_label


@st.cache_data(**CACHE)
def drivers(src: Source, corpus: str, split: str, model: str, a: Group, b: Group, by: str = "predicted"
            ) -> tuple[pd.DataFrame, dict]:
    """The terms most typical of group ``a`` against group ``b`` (core.drivers.compare: delta > 0 is
    ``a``), each counted on a uniform sample of its reviews; and the two samples' sizes."""
    return read(src, drivers_.compare, corpus, split, model, a, b, by)


@st.cache_data(**CACHE)
def term_trend(src: Source, corpus: str, split: str, model: str, term: str, field: str, period: str,
               where: Where = (), by: str = "predicted") -> tuple[pd.DataFrame, int]:
    """Per period: the negative share of the reviews that use ``term`` and of all, on a uniform sample of the
    filtered reviews (core.drivers.term_trend); and the sample's size."""
    return read(src, drivers_.term_trend, corpus, split, model, term, field, period, where, by)
