"""What the dashboard draws from a cube: a small frame of predictions counted by model, label, length bucket
and 1/1000 bin of P(positive) (``model, label, length, bin, n, sum_p``; a slice's cube adds ``value``).
Metrics with their intervals, shares, histograms, ROC/PR curves and their areas, calibration, confusion
matrices, pairwise agreement and series per period are SQL over that frame in a private in-memory DuckDB:
their cost does not grow with the corpus. Pure functions of their frames."""

from __future__ import annotations

import duckdb
import pandas as pd

from core.store.summaries import BINS


def _over(sql: str, params: dict | None = None, **frames: pd.DataFrame) -> pd.DataFrame:
    """Run ``sql`` in a private in-memory DuckDB over small, already aggregated frames."""
    con = duckdb.connect()
    try:
        for name, frame in frames.items():
            con.register(name, frame)
        return con.execute(sql, params or {}).df()
    finally:
        con.close()


_KEYS = {False: "", True: "value, "}  # metrics per model, or per model and slice value


def metrics(cube: pd.DataFrame, models: tuple[str, ...] | list[str], by_value: bool = False) -> pd.DataFrame:
    """Per model (and slice ``value``) of a cube: reviews, n (labelled positive/negative), accuracy,
    ROC-AUC, F1, precision, recall and ECE (10 bins) at threshold 0.5, the predicted-positive share of every
    review and the labels' positive share, with 95% intervals (Wilson for shares, Hanley-McNeil for ROC-AUC).

    bin >= 500 is exactly P >= 0.5, so the counts at 0.5 are exact; ROC-AUC is the Mann-Whitney statistic
    over the 1/1000 bins (pairs within one bin count half), which equals scikit-learn's where no bin mixes
    different probabilities of both classes (tests/test_slices.py compares them)."""
    from core.metrics import auc_interval, wilson_interval  # (imports scikit-learn: only when drawn)

    keys = _KEYS[by_value]
    out = _over(f"""
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
        FROM w JOIN e USING ({keys}model) GROUP BY ALL ORDER BY ALL""", {"models": list(models)}, cube=cube)
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


GROUPS = {"none": "'all reviews'", "label": "coalesce(label, '(no label)')", "length": "length"}


def shares(cube: pd.DataFrame, models: tuple[str, ...], by: str = "none") -> pd.DataFrame:
    """model, group, predicted (P >= 0.5), n, share (within model and group); ``by`` one of GROUPS."""
    return _over(f"""
        SELECT model, {GROUPS[by]} AS "group",
               CASE WHEN bin >= {BINS // 2} THEN 'positive' ELSE 'negative' END AS predicted, sum(n) AS n,
               sum(n) / sum(sum(n)) OVER (PARTITION BY model, {GROUPS[by]}) AS share
        FROM cube WHERE list_contains($models, model) GROUP BY 1, 2, 3 ORDER BY 1, 2, 3""",
                 {"models": list(models)}, cube=cube)


def histogram(cube: pd.DataFrame, models: tuple[str, ...], by: str = "none", bins: int = 20) -> pd.DataFrame:
    """model, group, bin_start, bin_end, n, share (of the model's reviews in that group)."""
    return _over(f"""
        SELECT model, {GROUPS[by]} AS "group", (bin * $bins // {BINS}) / $bins AS bin_start,
               bin_start + 1 / $bins AS bin_end, sum(n) AS n,
               sum(n) / sum(sum(n)) OVER (PARTITION BY model, {GROUPS[by]}) AS share
        FROM cube WHERE list_contains($models, model) GROUP BY 1, 2, 3 ORDER BY 1, 2, 3""",
                 {"models": list(models), "bins": bins}, cube=cube)


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


def roc_pr(cube: pd.DataFrame, models: tuple[str, ...], step: int = 5) -> pd.DataFrame:
    """ROC and PR points per model at every step/1000 threshold with reviews in it (plus the (0, 0) start
    of each ROC curve); threshold = predict positive when P >= threshold."""
    return _over(_ROC_SQL + """
        UNION ALL SELECT DISTINCT model, 1.0, 0.0, 0.0, 0.0, NULL FROM cube
        WHERE list_contains($models, model) AND label IN ('positive', 'negative')
        ORDER BY model, threshold DESC""", {"models": list(models), "step": step}, cube=cube)


def aucs(cube: pd.DataFrame, models: tuple[str, ...], stored: pd.DataFrame | None = None) -> pd.DataFrame:
    """model, roc_auc, pr_auc: ``stored`` (jobs.evaluate's, model/roc_auc/pr_auc) where given, else the
    trapezoids of the 1/1000-binned curves."""
    binned = _over(f"""
        WITH pts AS ({_ROC_SQL})
        SELECT model, sum((fpr - prev_fpr) * (tpr + prev_tpr) / 2) AS roc_auc,
               sum((recall - prev_recall) * precision) AS pr_auc
        FROM (SELECT *, lag(fpr, 1, 0) OVER w AS prev_fpr, lag(tpr, 1, 0) OVER w AS prev_tpr,
                     lag(recall, 1, 0) OVER w AS prev_recall
              FROM pts WINDOW w AS (PARTITION BY model ORDER BY threshold DESC))
        GROUP BY model ORDER BY model""", {"models": list(models), "step": 1}, cube=cube)
    if stored is None:
        stored = pd.DataFrame({"model": pd.Series(dtype=object), "roc_auc": pd.Series(dtype=float),
                               "pr_auc": pd.Series(dtype=float)})
    return _over("SELECT b.model, coalesce(s.roc_auc, b.roc_auc) AS roc_auc, "
                 "coalesce(s.pr_auc, b.pr_auc) AS pr_auc FROM binned b LEFT JOIN stored s USING (model) "
                 "ORDER BY b.model", binned=binned, stored=stored)


def calibration(cube: pd.DataFrame, models: tuple[str, ...], bins: int = 10) -> pd.DataFrame:
    """model, bin, mean predicted P(positive), observed share of positives, n (labelled reviews)."""
    return _over(f"""
        SELECT model, bin * $bins // {BINS} AS bin, sum(sum_p) / sum(n) AS mean_p,
               sum(n) FILTER (WHERE label = 'positive') / sum(n) AS observed, sum(n) AS n
        FROM cube WHERE list_contains($models, model) AND label IN ('positive', 'negative') GROUP BY 1, 2 ORDER BY 1, 2""",
                 {"models": list(models), "bins": bins}, cube=cube)


def confusion(cube: pd.DataFrame, models: tuple[str, ...], edge: int, inside: pd.DataFrame) -> pd.DataFrame:
    """model, tn, fp, fn, tp, accuracy, precision, recall, f1 at a threshold in bin ``edge``: the cube's
    bins on either side of it, plus ``inside`` (model, tn, fp, fn, tp of the reviews in that bin, compared
    with the threshold itself: core.store.review_rows.edge_counts)."""
    return _over("""
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
        FROM c ORDER BY model""", {"models": list(models), "edge": edge}, cube=cube, inside=inside)


def agreement(masks: pd.DataFrame, models: tuple[str, ...]) -> pd.DataFrame:
    """model_a, model_b, agreement (share of reviews with the same predicted label), n; from ``masks``
    (mask: bit i set when the i-th model predicts positive, n reviews)."""
    return _over("""
        WITH idx AS (SELECT unnest($models) AS model, generate_subscripts($models, 1) - 1 AS i)
        SELECT a.model AS model_a, b.model AS model_b,
               coalesce(sum(n) FILTER (WHERE ((mask >> a.i) & 1) = ((mask >> b.i) & 1)), 0) / sum(n) AS agreement,
               sum(n) AS n
        FROM (SELECT mask::BIGINT AS mask, n FROM masks), idx a, idx b GROUP BY ALL ORDER BY ALL""",
                 {"models": list(models)}, masks=masks)


def disagreement_counts(masks: pd.DataFrame, models: tuple[str, ...]) -> dict:
    """reviews (scored by every model), split_decisions (models differ), all_contradict."""
    row = _over("""
        SELECT coalesce(sum(n), 0) AS reviews,
               coalesce(sum(n) FILTER (WHERE mask::BIGINT <> 0
                                       AND mask::BIGINT <> (1::BIGINT << len($models)) - 1), 0) AS split_decisions,
               coalesce(sum(n) FILTER (WHERE all_contradict), 0) AS all_contradict
        FROM masks""", {"models": list(models)}, masks=masks).iloc[0]
    return {k: int(v) for k, v in row.items()}


PERIODS = ("day", "week", "month", "quarter", "year")
THIN = 30  # reviews: a period with fewer is drawn as thin (its share swings on a handful of reviews)


def periods(days: pd.DataFrame, models: tuple[str, ...], period: str = "month") -> pd.DataFrame:
    """Per period (its first day) and model of ``days`` (day, model, label, positive, n): reviews, the
    predicted-positive share, the labelled reviews, the labels' positive share and the accuracy at 0.5, the
    two shares' 95% Wilson intervals (_lo, _hi), and ``thin``: fewer than THIN reviews."""
    from core.metrics import wilson_interval  # (imports scikit-learn: only when drawn)

    if period not in PERIODS:
        raise ValueError(f"period must be one of {PERIODS}, not {period!r}")
    out = _over(f"""
        SELECT date_trunc('{period}', day)::DATE AS period, model, sum(n)::BIGINT AS reviews,
               coalesce(sum(n) FILTER (WHERE positive), 0)::BIGINT AS positives,
               coalesce(sum(n) FILTER (WHERE label IN ('positive', 'negative')), 0)::BIGINT AS labelled,
               coalesce(sum(n) FILTER (WHERE label = 'positive'), 0)
                   / sum(n) FILTER (WHERE label IN ('positive', 'negative')) AS true_share,
               coalesce(sum(n) FILTER (WHERE label = 'positive' AND positive OR label = 'negative' AND NOT positive),
                        0)::BIGINT AS correct
        FROM days WHERE list_contains($models, model) GROUP BY ALL ORDER BY period, model""",
                 {"models": list(models)}, days=days)
    out["positive_share"] = out["positives"] / out["reviews"]
    out["positive_share_lo"], out["positive_share_hi"] = wilson_interval(out["positives"], out["reviews"])
    out["accuracy"] = out["correct"] / out["labelled"].where(out["labelled"] > 0)
    out["accuracy_lo"], out["accuracy_hi"] = wilson_interval(out["correct"], out["labelled"])
    out["thin"] = out["reviews"] < THIN
    return out.drop(columns=["positives", "correct"])


def finest_period(reviews_per_period: dict[str, pd.Series]) -> str:
    """The finest period in which at least half the periods hold THIN reviews or more (else 'year'), from
    each period's review counts.

    >>> finest_period({"day": pd.Series([3, 40]), "week": pd.Series([31, 45, 50]), "month": pd.Series([120])})
    'week'
    """
    for period in PERIODS:
        counts = reviews_per_period.get(period)
        if counts is not None and len(counts) and (counts >= THIN).mean() > 0.5:
            return period
    return "year"
