"""Why a model gave its verdict: per review, the words (character spans of the text) and their signed
contribution to P(positive). Every model kind has ``explain(texts) -> list[Explanation]`` beside
``predict_proba``; this module holds what they share: the Explanation, the words of a text, leave-one-word-out
occlusion (the model-agnostic check) and the deletion test that measures whether an explanation is
faithful (deleting the words it ranks highest moves P(positive) more than deleting random words).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

WORD = re.compile(r"\w+(?:'\w+)*")  # a word, with its apostrophes ("didn't"), as a reader sees it


@dataclass
class Explanation:
    """One review's explanation. ``spans`` are (start, end, weight): text[start:end] moved P(positive) by
    ``weight`` (positive: towards positive). ``p`` is the model's P(positive) of the text and ``base`` its
    P(positive) of the reference input the weights are measured from (an empty review, or the method's
    baseline), so sum(weights) ~ p - base; ``delta`` is how far from that sum they are (a method's
    convergence error, 0 where the decomposition is exact)."""

    spans: list[tuple[int, int, float]]
    p: float
    base: float
    method: str
    delta: float = 0.0
    notes: list[str] = field(default_factory=list)

    def top(self, k: int, toward: float = 1.0) -> list[tuple[int, int, float]]:
        """The ``k`` spans that push hardest toward positive (``toward`` 1) or negative (-1)."""
        ranked = sorted((s for s in self.spans if s[2] * toward > 0), key=lambda s: -s[2] * toward)
        return ranked[:k]


def word_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of every word of ``text``.

    >>> word_spans("Not bad, didn't hate it")
    [(0, 3), (4, 7), (9, 15), (16, 20), (21, 23)]
    """
    return [m.span() for m in WORD.finditer(text)]


def without(text: str, spans: list[tuple[int, int]]) -> str:
    """``text`` with the characters of ``spans`` deleted.

    >>> without("a very good film", [(2, 6), (12, 16)])
    'a  good '
    """
    keep, last = [], 0
    for start, end in sorted(spans):
        keep.append(text[last:start])
        last = max(last, end)
    keep.append(text[last:])
    return "".join(keep)


def occlusion(predict_proba: Callable[[list[str]], np.ndarray], texts: list[str], max_words: int = 400,
              batch: int = 256) -> list[Explanation]:
    """Leave one word out: a word's weight is P(positive) of the text minus P(positive) without that word.
    Model-agnostic and exact about what it measures; costs one prediction per word (the first
    ``max_words`` words of a review are explained)."""
    base, out = float(predict_proba([""])[0]), []
    for text in texts:
        words = word_spans(text)[:max_words]
        variants = [text, *(without(text, [w]) for w in words)]
        p = np.concatenate([predict_proba(variants[i:i + batch]) for i in range(0, len(variants), batch)])
        spans = [(s, e, float(p[0] - q)) for (s, e), q in zip(words, p[1:], strict=True)]
        out.append(Explanation(spans, float(p[0]), base, "leave-one-word-out",
                               notes=["each weight is measured alone: they need not add up to p - base"]))
    return out


@dataclass
class Faithfulness:
    """The deletion test on n reviews: mean |change of P(positive)| when the k words with the largest
    attribution toward the predicted class are deleted, against k random words; and seconds per review."""

    n: int
    k: int
    top_shift: float
    random_shift: float
    seconds_per_review: float

    @property
    def ratio(self) -> float:
        return self.top_shift / self.random_shift if self.random_shift > 0 else float("inf")


def deletion_test(predict_proba: Callable[[list[str]], np.ndarray], explanations: list[Explanation],
                  texts: list[str], k: int = 5, seed: int = 0, seconds: float = 0.0) -> Faithfulness:
    """Delete from each text the ``k`` words that push hardest toward its predicted class, then ``k`` of its
    words drawn at random, and compare how far P(positive) moves."""
    rng = np.random.default_rng(seed)
    top_texts, random_texts, p = [], [], []
    for text, ex in zip(texts, explanations, strict=True):
        toward = 1.0 if ex.p >= 0.5 else -1.0
        top = [(s, e) for s, e, _ in ex.top(k, toward)]
        words = word_spans(text)
        pick = rng.choice(len(words), size=min(k, len(words)), replace=False) if words else []
        top_texts.append(without(text, top))
        random_texts.append(without(text, [words[i] for i in pick]))
        p.append(ex.p)
    p = np.asarray(p)
    top_shift = float(np.abs(p - predict_proba(top_texts)).mean())
    random_shift = float(np.abs(p - predict_proba(random_texts)).mean())
    return Faithfulness(len(texts), k, top_shift, random_shift, seconds / max(len(texts), 1))


def integrated_gradients(forward: Callable, layer, ids, baseline, extra: tuple = (), n_steps: int = 32,
                         max_steps: int = 256, tolerance: float = 0.05) -> tuple[np.ndarray, float, float, float]:
    """Integrated Gradients (Captum's LayerIntegratedGradients) of ``forward(ids, *extra) -> P(positive)``
    with respect to the output of ``layer`` (the token embeddings), from ``baseline`` ids to ``ids``, for
    one review ((1, T) tensors). Returns each token's attribution (T,), P of the review, P of the baseline
    and the convergence error |sum of attributions - (P - P_baseline)|.

    A network that saturates turns P from baseline to review within a short stretch of the path, which a
    few steps can miss: the steps double (up to ``max_steps``) until the error is within ``tolerance`` of
    |P - P_baseline|; the error that remains is returned, not hidden."""
    import torch
    from captum.attr import LayerIntegratedGradients

    with torch.no_grad():
        p, p_base = (float(forward(x, *extra)[0]) for x in (ids, baseline))
    lig = LayerIntegratedGradients(forward, layer)
    while True:
        attributions, delta = lig.attribute(ids, baselines=baseline, additional_forward_args=extra,
                                            n_steps=n_steps, internal_batch_size=min(n_steps, 64),
                                            return_convergence_delta=True)
        error = abs(float(delta[0]))
        if error <= tolerance * abs(p - p_base) + 1e-4 or n_steps >= max_steps:
            break
        n_steps *= 2
    per_token = attributions.sum(dim=-1)[0].detach().double().cpu().numpy()  # (T,): summed over the embedding
    return per_token, p, p_base, error


def to_words(text: str, offsets: list[tuple[int, int]], weights: np.ndarray) -> list[tuple[int, int, float]]:
    """Token weights (a token = the characters ``offsets`` of ``text``; (0, 0) for a special token) summed
    into the words of ``text`` that hold them; a token outside any word (punctuation) keeps its own span.

    >>> to_words("not bad!", [(0, 3), (4, 6), (6, 7), (7, 8)], np.array([-0.5, 0.25, 0.125, 0.0625]))
    [(0, 3, -0.5), (4, 7, 0.375), (7, 8, 0.0625)]
    """
    words = word_spans(text)
    starts = [s for s, _ in words]
    total: dict[tuple[int, int], float] = {}
    for (start, end), w in zip(offsets, weights, strict=True):
        if end <= start:
            continue
        k = bisect.bisect_right(starts, start) - 1
        span = words[k] if k >= 0 and words[k][0] <= start < words[k][1] else (start, end)
        total[span] = total.get(span, 0.0) + float(w)
    return [(s, e, w) for (s, e), w in sorted(total.items()) if w]
