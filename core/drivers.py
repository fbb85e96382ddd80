"""What drives the sentiment of a set of reviews: the terms (words and two-word phrases) most associated with
one group of reviews against another (predicted negative against predicted positive, a slice against the
rest), ranked by the log-odds ratio with an informative Dirichlet prior (Monroe, Colaresi and Quinn 2008,
"Fightin' Words", as scattertext ranks terms): each term's counts in both groups are smoothed by its count
in both together, so a rare term cannot top the list on a handful of uses, and the ratio comes with its
variance, hence a z-score and a 95% interval.
"""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

TOKEN_SPLIT = r"[^\pL\pN']+"  # words (with their apostrophes: "didn't"), as a reader sees them
_STOP_WORDS = ("a an and are as at be been but by for from had has have he her his i if in into is it its me my of "
               "on or our she so than that the their them then there these they this to too us was we were what "
               "when which who will with you your")
STOP = frozenset(_STOP_WORDS.split(" "))  # function words: never a driver (negations are kept: "not", "no")


def term_counts(texts: list[str], bigrams: bool = True) -> Counter:
    """How often each term occurs in ``texts``: lower-cased words of two characters or more that are not
    stop words, and (``bigrams``) each pair of such words that stand next to each other.

    >>> sorted(term_counts(["Not good. Not good at all!"]).items())
    [('all', 1), ('good', 2), ('good not', 1), ('not', 2), ('not good', 2)]
    """
    words = pc.split_pattern_regex(pc.utf8_lower(pa.array(texts, type=pa.string())), TOKEN_SPLIT)
    counts: Counter = Counter()
    for review in words.to_pylist():
        terms = [w.strip("'") for w in review]
        terms = [w if len(w) >= 2 and w not in STOP else None for w in terms]  # None: not a term
        counts.update(w for w in terms if w)
        if bigrams:
            counts.update(f"{a} {b}" for a, b in itertools.pairwise(terms) if a and b)
    return counts


def log_odds(a: Counter, b: Counter, min_count: int = 5, prior_mass: float | None = None) -> pd.DataFrame:
    """Per term seen at least ``min_count`` times in both groups together: count_a, count_b, the log-odds
    ratio delta (> 0: the term is more typical of group ``a``), its 95% interval and z = delta / sd.

    The prior of a term is its share of both groups' counts times ``prior_mass`` (by default the two
    groups' total count, so the prior weighs as much as the data)."""
    terms = [t for t in set(a) | set(b) if a.get(t, 0) + b.get(t, 0) >= min_count]
    ya = np.array([a.get(t, 0) for t in terms], dtype=np.float64)
    yb = np.array([b.get(t, 0) for t in terms], dtype=np.float64)
    na, nb = float(sum(a.values())), float(sum(b.values()))
    mass = prior_mass if prior_mass is not None else na + nb
    alpha = (ya + yb) / max(ya.sum() + yb.sum(), 1.0) * mass  # (terms,)
    alpha0 = alpha.sum()
    delta = (np.log((ya + alpha) / (na + alpha0 - ya - alpha)) - np.log((yb + alpha) / (nb + alpha0 - yb - alpha)))
    sd = np.sqrt(1.0 / (ya + alpha) + 1.0 / (yb + alpha))
    out = pd.DataFrame({"term": terms, "count_a": ya.astype(np.int64), "count_b": yb.astype(np.int64),
                        "delta": delta, "lo": delta - 1.96 * sd, "hi": delta + 1.96 * sd, "z": delta / sd})
    return out.sort_values(["z", "term"], ascending=[False, True]).reset_index(drop=True)
