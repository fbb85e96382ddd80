"""The dashboard's aggregate reads, cached (see dashboard.db): corpora, splits and models, the leaderboard and
the trained-on x evaluated-on matrix, and everything drawn from the cube (predictions counted by model,
label, length bucket and 1/1000 bin of P(positive)): distributions, ROC/PR, calibration, confusion matrices
at any threshold. The SQL is core.store's (store.reads, store.cube); this module chooses which read answers
(the summaries' cube, a slice's, or a live one under a column filter) and caches it."""

from __future__ import annotations

import json
import math
import shlex

import pandas as pd
import streamlit as st

from core.store import cube as cubes
from core.store import reads, review_rows
from core.store.reads import LEXICON, UNRECORDED  # noqa: F401
from core.store.summaries import Where, Wide
from dashboard.db import BINS, CACHE, Source, read

# ---------------------------------------------------------------- sidebar and overview


@st.cache_data(**CACHE)
def summary(src: Source) -> dict:
    return read(src, reads.counts)


@st.cache_data(**CACHE)
def corpora(src: Source) -> pd.DataFrame:
    """One row per corpus: reviews, labelled reviews, predictions, models, rejects."""
    return read(src, reads.corpora)


@st.cache_data(**CACHE)
def splits(src: Source, corpus: str) -> list[str]:
    """Splits of ``corpus`` that have predictions ('all' = no split), test first."""
    return read(src, reads.splits, corpus)


@st.cache_data(**CACHE)
def models(src: Source, corpus: str) -> list[str]:
    return read(src, reads.models, corpus)


@st.cache_data(**CACHE)
def labelled_count(src: Source, corpus: str, split: str, where: Where = ()) -> int:
    """Reviews with a positive/negative label in this corpus and split (0: label pages show a note). Where the
    cube comes from the summaries, the labelled reviews of the model that scored the most of them (a label no
    model scored is nothing a page can show); else counted in the reviews."""
    if not where or _sliced(src, corpus, where):
        c = cube(src, corpus, split, where)
        labelled = c[c["label"].isin(["positive", "negative"])].groupby("model")["n"].sum()
        return int(labelled.max()) if len(labelled) else 0
    return read(src, reads.labelled_reviews, corpus, split, where)


@st.cache_data(**CACHE)
def rejects(src: Source, corpus: str) -> pd.DataFrame:
    return read(src, reads.rejects, corpus)


# ---------------------------------------------------------------- where each model comes from


@st.cache_data(**CACHE)
def model_facts(src: Source) -> pd.DataFrame:
    """model, trained_on, train_rows, provenance: one row per model in the models table."""
    return read(src, reads.model_facts)


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
    board = read(src, reads.leaderboard, corpus, split, models)
    board["members"] = board["members"].fillna("")  # blank, not "None", for a model that is no stack
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


binned_metrics = cubes.metrics  # per model (and slice value) of a cube: accuracy, ROC-AUC, ... with intervals


# ---------------------------------------------------------------- trained on x evaluated on

MATRIX_METRICS = {"accuracy": "accuracy", "roc_auc": "ROC-AUC"}


@st.cache_data(**CACHE)
def cross_corpus(src: Source) -> pd.DataFrame:
    """The trained-on x evaluated-on matrix, one row per cell (core.store.reads.cross_corpus)."""
    return read(src, reads.cross_corpus)


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
def wide(src: Source, corpus: str) -> Wide | None:
    """The corpus's one-row-per-review table that the summaries hold (core.store.summaries.Wide): what an
    aggregate under a column filter reads."""
    return read(src, reads.wide, corpus)


@st.cache_data(**CACHE)
def cube(src: Source, corpus: str, split: str, where: Where = (), need_length: bool = False) -> pd.DataFrame:
    """Counts of every model's predictions by true label, length bucket and P(positive) bin (1/1000),
    with the sum of P per cell: at most models x 4 x 4 x 1000 rows; distributions, ROC/PR curves,
    calibration and thresholds are computed from it (core.store.cube). From the summaries published with
    the view: summary_cube, or under a filter on one column's named slices (the sidebar's usual 'category
    is X or Y') the sum of those slices' cubes, which have no length bucket (``need_length`` asks for it).
    Otherwise computed live from the summaries' rows."""
    if not where:
        return read(src, reads.cube, corpus, split)
    if not need_length and _sliced(src, corpus, where):
        return read(src, reads.sliced_cube, corpus, split, where[0])
    return read(src, reads.live_cube, corpus, split, where, models(src, corpus))


@st.cache_data(**CACHE)
def _named_slices(src: Source, corpus: str, field: str) -> set[str]:
    return read(src, reads.named_slices, corpus, field)


def _sliced(src: Source, corpus: str, where: Where) -> bool:
    """Whether ``where`` is one filter on values that are each a slice of their column in the summaries."""
    if len(where) != 1 or where[0].kind not in ("categorical", "boolean") or where[0].exclude:
        return False
    return set(where[0].values) <= _named_slices(src, corpus, where[0].field)


@st.cache_data(**CACHE)
def shares(src: Source, corpus: str, split: str, models: tuple[str, ...], by: str = "none",
           where: Where = ()) -> pd.DataFrame:
    """model, group, predicted (P >= 0.5), n, share (within model and group)."""
    return cubes.shares(cube(src, corpus, split, where, by == "length"), models, by)


@st.cache_data(**CACHE)
def histogram(src: Source, corpus: str, split: str, models: tuple[str, ...], by: str = "none",
              bins: int = 20, where: Where = ()) -> pd.DataFrame:
    """model, group, bin_start, bin_end, n, share (of the model's reviews in that group)."""
    return cubes.histogram(cube(src, corpus, split, where, by == "length"), models, by, bins)


@st.cache_data(**CACHE)
def roc_pr(src: Source, corpus: str, split: str, models: tuple[str, ...], step: int = 5,
           where: Where = ()) -> pd.DataFrame:
    """ROC and PR points per model at every step/1000 threshold with reviews in it (plus the (0, 0) start
    of each ROC curve). 200 points a model are plenty for a chart (the AUCs use every 1/1000 bin)."""
    return cubes.roc_pr(cube(src, corpus, split, where), models, step)


@st.cache_data(**CACHE)
def aucs(src: Source, corpus: str, split: str, models: tuple[str, ...], where: Where = ()) -> pd.DataFrame:
    """model, roc_auc, pr_auc: from the metrics table when evaluated (never under a filter: the filtered
    reviews are not what was evaluated), else from the 1/1000-binned curves."""
    stored = None if where else read(src, reads.stored_aucs, corpus, split, models)
    return cubes.aucs(cube(src, corpus, split, where), models, stored)


@st.cache_data(**CACHE)
def calibration(src: Source, corpus: str, split: str, models: tuple[str, ...], bins: int = 10,
                where: Where = ()) -> pd.DataFrame:
    """model, bin, mean predicted P(positive), observed share of positives, n (labelled reviews)."""
    return cubes.calibration(cube(src, corpus, split, where), models, bins)


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
    cube; the reviews in the threshold's bin are compared with the threshold itself."""
    edge = min(math.floor(threshold * BINS), BINS - 1)  # the same arithmetic as the cube's bin
    inside = read(src, review_rows.edge_counts, corpus, split, models, threshold, edge, where)
    return cubes.confusion(cube(src, corpus, split, where), models, edge, inside)


# ---------------------------------------------------------------- training


@st.cache_data(**CACHE)
def training_log(src: Source) -> pd.DataFrame:
    return read(src, reads.training_log)


@st.cache_data(**CACHE)
def training_terms(src: Source) -> pd.DataFrame:
    """model, step, examples, term, value: the loss curves by term."""
    return read(src, reads.training_terms)


@st.cache_data(**CACHE)
def trained_models(src: Source) -> pd.DataFrame:
    """One row per recorded model: where it learnt (trained_on, train_rows, train_classes as
    'negative 800 · positive 800'), what it is, its cost."""
    table = read(src, reads.trained_models)
    # a list, not Series.map: a string column's map leaves missing values missing, and a lexicon has none
    return table.assign(train_classes=[_classes(None if pd.isna(v) else v) for v in table["train_classes"]])


def _classes(raw: str | None) -> str:
    try:
        counts = json.loads(raw) if raw else None
    except (TypeError, ValueError):
        return raw
    if not isinstance(counts, dict):
        return raw or "—"  # a lexicon: no train reviews
    return " · ".join(f"{label} {n:,}" if isinstance(n, int) else f"{label} {n}" for label, n in sorted(counts.items()))
