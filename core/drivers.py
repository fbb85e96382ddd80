"""What drives the sentiment of a set of reviews: the terms (words and two-word phrases) most associated with
one group of reviews against another (predicted negative against predicted positive, a slice against the
rest), ranked by the log-odds ratio with an informative Dirichlet prior (Monroe, Colaresi and Quinn 2008,
"Fightin' Words", as scattertext ranks terms): each term's counts in both groups are smoothed by its count
in both together, so a rare term cannot top the list on a handful of uses, and the ratio comes with its
variance, hence a z-score and a 95% interval.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from core.metrics import wilson_interval
from core.store import review_rows
from core.store.summaries import FieldFilter, Where

TOKEN_SPLIT = r"[^\pL\pN']+"  # words (with their apostrophes: "didn't"), as a reader sees them
_STOP_WORDS = ("a an and are as at be been but by for from had has have he her his i if in into is it its me my of "
               "on or our she so than that the their them then there these they this to too us was we were what "
               "when which who will with you your")
STOP = frozenset(_STOP_WORDS.split(" "))  # function words: never a driver (negations are kept: "not", "no")
_STOPS = pa.array(sorted(STOP))
SAMPLE = 5_000  # reviews each side of a comparison is counted on: a uniform sample of that side's reviews
TREND_SAMPLE = 20_000  # reviews a term's share over time is counted on


def _tokens(texts: list[str]) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """Every word of ``texts`` in order (lower-cased, outer apostrophes stripped), the review each belongs
    to, and whether it is a term (two characters or more, not a stop word)."""
    words = pc.split_pattern_regex(pc.utf8_lower(pa.array(texts, type=pa.string())), TOKEN_SPLIT)
    flat = pc.utf8_trim(words.flatten(), "'")  # (words,)
    review = words.value_parent_indices().to_numpy()  # (words,)
    is_term = pc.and_(pc.greater_equal(pc.utf8_length(flat), 2), pc.invert(pc.is_in(flat, value_set=_STOPS)))
    return flat, review, is_term.to_numpy(zero_copy_only=False)



def _terms(texts: list[str], bigrams: bool = True) -> tuple[pa.Array, np.ndarray]:
    """Each use of a term in ``texts`` (words, then the pairs of terms that stand next to each other) and
    the review it is in."""
    flat, review, is_term = _tokens(texts)
    words, where = flat.filter(pa.array(is_term)), review[is_term]
    if not bigrams or len(flat) < 2:
        return words, where
    pair = is_term[:-1] & is_term[1:] & (review[:-1] == review[1:])  # (words - 1,): a term beside a term
    joined = pc.binary_join_element_wise(flat[:-1].filter(pa.array(pair)), flat[1:].filter(pa.array(pair)), " ")
    return pa.concat_arrays([words, joined]), np.concatenate([where, review[:-1][pair]])


def term_counts(texts: list[str], bigrams: bool = True) -> pd.Series:
    """How often each term occurs in ``texts``: lower-cased words of two characters or more that are not
    stop words, and (``bigrams``) each pair of such words that stand next to each other. Vectorised over
    the whole list (Arrow's C++ kernels): no Python call per review.

    >>> term_counts(["Not good. Not good at all!"]).sort_index().to_dict()
    {'all': 1, 'good': 2, 'good not': 1, 'not': 2, 'not good': 2}
    """
    terms, _ = _terms(texts, bigrams)
    counts = pc.value_counts(terms)
    return pd.Series(counts.field("counts").to_numpy(), index=counts.field("values").to_pandas(), dtype=np.int64)


def uses(texts: list[str], term: str) -> np.ndarray:
    """Whether each text uses ``term`` (a word or two-word phrase, as term_counts counts them).

    >>> uses(["Not good at all", "good, not bad", "goods"], "not good").tolist()
    [True, False, False]
    """
    terms, review = _terms(texts, bigrams=" " in term)
    hit = np.zeros(len(texts), dtype=bool)
    hit[review[pc.equal(terms, term.lower()).to_numpy(zero_copy_only=False)]] = True
    return hit


def log_odds(a: pd.Series, b: pd.Series, min_count: int = 5, prior_mass: float | None = None) -> pd.DataFrame:
    """Per term seen at least ``min_count`` times in both groups together (``a``, ``b``: term_counts):
    count_a, count_b, the log-odds ratio delta (> 0: the term is more typical of group ``a``), its 95%
    interval and z = delta / sd.

    The prior of a term is its share of both groups' counts times ``prior_mass`` (by default the two
    groups' total count, so the prior weighs as much as the data)."""
    # aligned by Arrow's hash join (pandas' index alignment costs several times more at 10^5 terms)
    def table(counts: pd.Series, name: str) -> pa.Table:
        return pa.table({"term": pa.array(counts.index.to_numpy(), pa.string()),
                         name: pa.array(counts.to_numpy(), pa.int64())})

    both = table(a, "a").join(table(b, "b"), "term", join_type="full outer")
    ya, yb = (pc.fill_null(both[c], 0).to_numpy().astype(np.float64) for c in ("a", "b"))  # (terms,)
    kept = ya + yb >= min_count
    terms, ya, yb = both["term"].filter(pa.array(kept)), ya[kept], yb[kept]
    na, nb = float(a.sum()), float(b.sum())
    mass = prior_mass if prior_mass is not None else na + nb
    alpha = (ya + yb) / max(ya.sum() + yb.sum(), 1.0) * mass  # (terms,)
    alpha0 = alpha.sum()
    delta = (np.log((ya + alpha) / (na + alpha0 - ya - alpha)) - np.log((yb + alpha) / (nb + alpha0 - yb - alpha)))
    sd = np.sqrt(1.0 / (ya + alpha) + 1.0 / (yb + alpha))
    out = pd.DataFrame({"term": terms.to_pandas(), "count_a": ya.astype(np.int64),
                        "count_b": yb.astype(np.int64), "delta": delta, "lo": delta - 1.96 * sd,
                        "hi": delta + 1.96 * sd, "z": delta / sd})
    return out.sort_values(["z", "term"], ascending=[False, True]).reset_index(drop=True)


# ---------------------------------------------------------------- comparisons of two groups of reviews


@dataclass(frozen=True)
class Group:
    """One side of a comparison: the reviews of a corpus split that pass ``where`` (and that ``outside``
    does not keep, where given: the rest of a slice), only those on one ``side`` ('negative' or 'positive',
    by the model's prediction or the label) or both (None)."""

    where: Where = ()
    outside: FieldFilter | None = None
    side: str | None = None


def compare(con, corpus: str, split: str, model: str, a: Group, b: Group, by: str = "predicted",
            n: int = SAMPLE) -> tuple[pd.DataFrame, dict]:
    """log_odds of group ``a``'s terms against group ``b``'s (delta > 0: typical of ``a``), each group
    counted on a uniform sample of at most ``n`` of its reviews; and the two samples' sizes."""
    samples = [review_rows.sample_texts(con, corpus, split, model, n, seed, g.where, g.outside, g.side, by)
               for seed, g in enumerate((a, b))]
    counts = [term_counts(s["text"].tolist()) for s in samples]
    return log_odds(*counts), {"a": len(samples[0]), "b": len(samples[1])}


def period_start(days: pd.Series, period: str) -> pd.Series:
    """The first day of each day's period (day, week from Monday, month, quarter, year), as DuckDB's
    date_trunc puts it."""
    freq = {"day": "D", "week": "W-SUN", "month": "M", "quarter": "Q", "year": "Y"}[period]
    return pd.to_datetime(days).dt.to_period(freq).dt.start_time


def period_bounds(start, period: str) -> tuple[str, str]:
    """[first day, first day of the next period) of the period that starts on ``start``, as ISO dates.

    >>> period_bounds("2016-10-01", "quarter")
    ('2016-10-01', '2017-01-01')
    """
    step = {"day": pd.DateOffset(days=1), "week": pd.DateOffset(weeks=1), "month": pd.DateOffset(months=1),
            "quarter": pd.DateOffset(months=3), "year": pd.DateOffset(years=1)}[period]
    first = pd.Timestamp(start)
    return first.date().isoformat(), (first + step).date().isoformat()


def period_label(start, period: str) -> str:
    """How a period is named: 2016, 2016 Q4, Oct 2016, or its first day.

    >>> period_label("2016-10-01", "quarter")
    '2016 Q4'
    """
    first = pd.Timestamp(start)
    return {"year": f"{first.year}", "quarter": f"{first.year} Q{first.quarter}",
            "month": first.strftime("%b %Y")}.get(period, first.date().isoformat())


def term_trend(con, corpus: str, split: str, model: str, term: str, field: str, period: str,
               where: Where = (), by: str = "predicted", n: int = TREND_SAMPLE) -> tuple[pd.DataFrame, int]:
    """Per period of the datetime column ``field``: of a uniform sample of at most ``n`` of the filtered
    reviews, how many there are and how many are negative (by the model or the label), how many use
    ``term`` and how many of those are negative; both negative shares with their 95% Wilson intervals
    (negative_share, term_share, their _lo/_hi). And the sample's size."""
    sample = review_rows.sample_texts(con, corpus, split, model, n, 2, where, by=by, date_field=field)
    sample = sample.dropna(subset=["day"])
    frame = pd.DataFrame({"period": period_start(sample["day"], period),
                          "negative": (sample[by] == "negative").to_numpy(),
                          "uses": uses(sample["text"].tolist(), term)})
    frame["term_negative"] = frame["negative"] & frame["uses"]
    out = frame.groupby("period").agg(reviews=("negative", "size"), negative=("negative", "sum"),
                                      term_reviews=("uses", "sum"), term_negative=("term_negative", "sum"))
    out = out.reset_index()
    for share, k, total in (("negative_share", "negative", "reviews"), ("term_share", "term_negative", "term_reviews")):
        kk, nn = out[k].to_numpy(np.float64), out[total].to_numpy(np.float64)
        lo, hi = wilson_interval(kk, nn)
        out[share] = np.where(nn > 0, kk / np.maximum(nn, 1), np.nan)
        out[f"{share}_lo"], out[f"{share}_hi"] = lo, hi
    return out, len(sample)
