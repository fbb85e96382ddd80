"""The dashboard's aggregate reads: corpora, splits and models, the leaderboard and the trained-on x
evaluated-on matrix, and everything drawn from the cube (predictions counted by model, label, length bucket
and 1/1000 bin of P(positive)): distributions, ROC/PR, calibration, confusion matrices at any threshold.
The cube comes from the summaries published with the view (core.summaries) or, under a column filter, from
the rows. Cached like every read (see dashboard.db)."""

from __future__ import annotations

import json
import math
import shlex

import pandas as pd
import streamlit as st

from core import summaries
from core.metrics import auc_interval, wilson_interval
from core.summaries import Where
from dashboard.db import BINS, CACHE, Source, in_scope, local, query, rows_of, scope_params, scoped_rows

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
    rows, _ = scoped_rows((), False)
    return [s for s in candidates if not query(src, f"SELECT 1 AS hit FROM {rows} LIMIT 1",
                                               {"corpus": corpus, "split": s}).empty]


@st.cache_data(**CACHE)
def models(src: Source, corpus: str) -> list[str]:
    return query(src, "SELECT DISTINCT model FROM predictions WHERE corpus = $corpus ORDER BY model",
                 {"corpus": corpus})["model"].tolist()


@st.cache_data(**CACHE)
def labelled_count(src: Source, corpus: str, split: str, where: Where = ()) -> int:
    """Reviews with a positive/negative label in this corpus and split (0: label pages show a note). Where the
    cube comes from the summaries, the labelled reviews of the model that scored the most of them (a label no
    model scored is nothing a page can show); else counted in the reviews."""
    if summarised(src, corpus) and (not where or _sliced(src, corpus, where)):
        c = cube(src, corpus, split, where)
        labelled = c[c["label"].isin(["positive", "negative"])].groupby("model")["n"].sum()
        return int(labelled.max()) if len(labelled) else 0
    cond, params = in_scope(where)
    return int(query(src, f"SELECT count(*) AS n FROM reviews WHERE {cond} AND label IN ('positive', 'negative')",
                     {"corpus": corpus, "split": split, **params})["n"].iloc[0])


@st.cache_data(**CACHE)
def rejects(src: Source, corpus: str) -> pd.DataFrame:
    return query(src, "SELECT split_part(reason, ':', 1) AS reason, count(*) AS rows FROM rejects "
                      "WHERE corpus = $corpus GROUP BY 1 ORDER BY rows DESC", {"corpus": corpus})


# ---------------------------------------------------------------- where each model comes from

LEXICON = "— (lexicon)"        # trained_on of a model that learns nothing (vader)
UNRECORDED = "not recorded"    # trained_on of a model missing from the models table

# Provenance columns of a model ``k`` (a row of the models table, LEFT JOINed), as every page shows them:
# trained_on (the corpus, LEXICON or UNRECORDED), train_rows (0 for a lexicon, which learns from nothing) and
# provenance ("trained on shop, 3,000 reviews"), a label for chart axes and legends.
_PROVENANCE = f"""
    CASE WHEN k.model IS NULL THEN '{UNRECORDED}' WHEN k.trained_on IS NULL THEN '{LEXICON}'
         ELSE k.trained_on END AS trained_on,
    CASE WHEN k.trained_on IS NOT NULL THEN k.train_rows WHEN k.model IS NOT NULL THEN 0 END AS train_rows,
    CASE WHEN k.model IS NULL THEN 'provenance not recorded' WHEN k.trained_on IS NULL THEN 'lexicon, learns nothing'
         ELSE 'trained on ' || k.trained_on || coalesce(', ' || format('{{:,}}', k.train_rows) || ' reviews', '')
         END AS provenance"""


@st.cache_data(**CACHE)
def model_facts(src: Source) -> pd.DataFrame:
    """model, trained_on, train_rows, provenance: one row per model in the models table."""
    return query(src, f"SELECT k.model, {_PROVENANCE} FROM models k ORDER BY k.model")


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
        LEFT JOIN models k ON k.model = c.model
        LEFT JOIN speed s ON s.model = c.model
        ORDER BY m.accuracy DESC NULLS LAST, c.model""", scope_params(corpus, split, models))
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
    out = local(f"""
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
        WITH k AS (SELECT * FROM models),
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
def tables(src: Source) -> set[str]:
    """The tables the view holds (an older view lacks some)."""
    return set(query(src, "SELECT table_name FROM duckdb_tables() WHERE database_name = 'db'")["table_name"])


@st.cache_data(**CACHE)
def summarised(src: Source, corpus: str) -> bool:
    """Whether the view holds current summaries of ``corpus`` (core.summaries; a view published by an older
    version has none: then every aggregate is computed from the rows)."""
    if not {"summary_state", *summaries.TABLES} <= tables(src):
        return False
    return not query(src, "SELECT 1 AS hit FROM summary_state WHERE corpus = $corpus AND version = $v",
                     {"corpus": corpus, "v": summaries.VERSION}).empty


@st.cache_data(**CACHE)
def wide(src: Source, corpus: str) -> summaries.Wide | None:
    """The corpus's one-row-per-review table that the summaries hold (core.summaries.Wide): what an
    aggregate under a column filter reads."""
    if not summarised(src, corpus):
        return None
    return summaries.wide_of(lambda sql, params: query(src, sql, params), corpus)


@st.cache_data(**CACHE)
def cube(src: Source, corpus: str, split: str, where: Where = (), need_length: bool = False) -> pd.DataFrame:
    """Counts of every model's predictions by true label, length bucket and P(positive) bin (1/1000),
    with the sum of P per cell: at most models x 4 x 4 x 1000 rows. Distributions, ROC/PR curves,
    calibration and thresholds are aggregated (in DuckDB) from this. Read from the summaries published with
    the view: summary_cube, or under a filter on one column's named slices (the sidebar's usual 'category
    is X or Y') the sum of those slices' cubes, which have no length bucket (``need_length`` asks for it).
    Otherwise computed from the rows (one pass, core.summaries.cube_sql; from the summaries' one row per
    review where they hold it)."""
    if not where and summarised(src, corpus):
        return query(src, "SELECT model, label, length, bin, n, sum_p FROM summary_cube "
                          "WHERE corpus = $corpus AND split = $split", {"corpus": corpus, "split": split})
    if not need_length and _sliced(src, corpus, where):  # one column, named values: its slices' cubes
        f = where[0]
        return query(src, "SELECT model, label, NULL::VARCHAR AS length, bin, sum(n) AS n, sum(sum_p) AS sum_p "
                          "FROM summary_slices WHERE corpus = $corpus AND split = $split AND field = $field "
                          "AND list_contains($values, value) GROUP BY ALL",
                     {"corpus": corpus, "split": split, "field": f.field, "values": list(f.values)})
    sql, params = summaries.cube_sql(split, where, rows_of(summarised(src, corpus)), wide(src, corpus))
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
    return local(f"""
        SELECT model, {GROUPS[by]} AS "group",
               CASE WHEN bin >= {BINS // 2} THEN 'positive' ELSE 'negative' END AS predicted, sum(n) AS n,
               sum(n) / sum(sum(n)) OVER (PARTITION BY model, {GROUPS[by]}) AS share
        FROM cube WHERE list_contains($models, model) GROUP BY 1, 2, 3 ORDER BY 1, 2, 3""",
                  {"models": list(models)}, cube=cube(src, corpus, split, where, by == "length"))


@st.cache_data(**CACHE)
def histogram(src: Source, corpus: str, split: str, models: tuple[str, ...], by: str = "none",
              bins: int = 20, where: Where = ()) -> pd.DataFrame:
    """model, group, bin_start, bin_end, n, share (of the model's reviews in that group)."""
    return local(f"""
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
    return local(_ROC_SQL + """
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
    binned = local(f"""
        WITH pts AS ({_ROC_SQL})
        SELECT model, sum((fpr - prev_fpr) * (tpr + prev_tpr) / 2) AS roc_auc,
               sum((recall - prev_recall) * precision) AS pr_auc
        FROM (SELECT *, lag(fpr, 1, 0) OVER w AS prev_fpr, lag(tpr, 1, 0) OVER w AS prev_tpr,
                     lag(recall, 1, 0) OVER w AS prev_recall
              FROM pts WINDOW w AS (PARTITION BY model ORDER BY threshold DESC))
        GROUP BY model ORDER BY model""", {"models": list(models), "step": 1}, cube=cube(src, corpus, split, where))
    stored = query(src, "SELECT model, roc_auc, pr_auc FROM metrics WHERE corpus = $corpus AND split = $split "
                        "AND list_contains($models, model) AND NOT $filtered",  # filtered: not what was evaluated
                   {**scope_params(corpus, split, models), "filtered": bool(where)})
    return local("SELECT b.model, coalesce(s.roc_auc, b.roc_auc) AS roc_auc, "
                  "coalesce(s.pr_auc, b.pr_auc) AS pr_auc FROM binned b LEFT JOIN stored s USING (model) "
                  "ORDER BY b.model", binned=binned, stored=stored)


@st.cache_data(**CACHE)
def calibration(src: Source, corpus: str, split: str, models: tuple[str, ...], bins: int = 10,
                where: Where = ()) -> pd.DataFrame:
    """model, bin, mean predicted P(positive), observed share of positives, n (labelled reviews)."""
    return local(f"""
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
    rows, filt = scoped_rows(where, summarised(src, corpus))
    inside = query(src, f"""
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
                   {**scope_params(corpus, split, models), "t": threshold, "edge": edge, **filt,
                    "lo": (edge - 1) / BINS, "hi": 2.0 if edge == BINS - 1 else (edge + 2) / BINS})
    return local("""
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


# ---------------------------------------------------------------- training


@st.cache_data(**CACHE)
def training_log(src: Source) -> pd.DataFrame:
    return query(src, "SELECT model, epoch, train_loss, val_loss, train_acc, val_acc, seconds "
                      "FROM training_log ORDER BY model, epoch")


@st.cache_data(**CACHE)
def training_terms(src: Source) -> pd.DataFrame:
    """model, step, examples, term, value: the loss curves by term."""
    return query(src, "SELECT model, step, examples, term, value FROM training_terms ORDER BY model, term, step")


@st.cache_data(**CACHE)
def trained_models(src: Source) -> pd.DataFrame:
    """One row per recorded model: where it learnt (trained_on, train_rows, train_classes as
    'negative 800 · positive 800'), what it is, its cost."""
    table = query(src, f"""
        SELECT k.model, {_PROVENANCE}, k.train_classes, k.kind, k.preset, k.n_params, k.bytes_on_disk,
               k.train_seconds, k.device, k.trained_at
        FROM models k ORDER BY k.model""")
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
