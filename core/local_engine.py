"""The local engine of a scoring run: in this process, each model predicts a chunk's missing reviews in
batches of about two seconds (Pacer), shortest review first, and hands each batch to ``Ingest.write``; the
progress line counts the share done in time (each model's remaining characters at its pace), not in rows."""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np

from core.ingest import Ingest
from core.progress import Progress


class Pacer:
    """Batches that keep a model busy for about ``seconds`` per call, so progress moves every few seconds
    even for a model that scores 25 reviews/s, while a fast model gets whole chunks. Speed is learnt in
    characters per second, because reviews are scored shortest first (see score_local)."""

    def __init__(self, seconds: float = 2.0, first: int = 32):
        self.seconds, self.first = seconds, first
        self.rate: float | None = None  # characters per second, once measured

    def batches(self, items: list, chars: list[int]) -> Iterator[list]:
        cum = np.cumsum(chars)  # (n,) characters up to and including each item
        start = 0
        while start < len(items):
            if self.rate is None:
                end = start + self.first
            else:
                done = cum[start - 1] if start else 0
                end = max(int(np.searchsorted(cum, done + self.rate * self.seconds, side="right")), start + 1)
            batch = items[start:end]
            t0 = time.perf_counter()
            yield batch
            self.rate = float(sum(chars[start:end])) / max(time.perf_counter() - t0, 1e-6)
            start = end


def reading_work(model, texts: list[str]) -> np.ndarray:
    """What scoring each text costs ``model``, in characters it reads: a model that truncates
    (``max_chars``) reads no more than that of a long review."""
    n = np.fromiter((len(t) for t in texts), dtype=np.float64, count=len(texts))
    cap = getattr(model, "max_chars", None)
    return np.minimum(n, cap) if cap else n


def score_local(ingest: Ingest, models: dict, progress: Progress | None = None, batch_seconds: float = 2.0) -> None:
    """In this process: per chunk, store reviews + rejects, then predict each model's missing reviews in
    batches of about ``batch_seconds``, storing each batch's predictions as it comes.

    The share done, hence the time left, is counted in time, not rows: each model's remaining work (the
    characters it reads: reading_work) at the speed it has shown, since reviews go shortest first and a row
    of BERT costs many of tf-idf."""
    progress = progress or Progress(f"score {ingest.corpus}")
    pacers = {name: Pacer(batch_seconds) for name in models}
    speed = {name: [0.0, 0.0] for name in models}  # characters read, seconds: each model's pace this run
    before = 0.0  # share of the input read before the chunk in hand
    stacks = any(getattr(m, "members", None) for m in models.values())  # computed from the others' predictions
    for work in ingest.work():
        total = max(work.predictions, 1)
        # shortest first: each batch then holds reviews of about one length, so models that pad a batch
        # to its longest review waste little (calls of ~2 s hold only ~50 BERT reviews)
        order = {name: sorted(work.todo[name], key=lambda i: len(work.texts[i])) for name in models}
        cost = {name: reading_work(models[name], [work.texts[i] for i in ids]) for name, ids in order.items()}
        left = {name: float(c.sum()) for name, c in cost.items()}
        started = time.perf_counter()
        made = {name: {} for name in models}  # review_id -> P(positive), this chunk's, for the stacks
        for name, model in models.items():
            ids, at = order[name], 0
            for batch in pacers[name].batches(ids, cost[name].tolist()):
                t0 = time.perf_counter()
                with ingest.tally.timings.phase(f"model:{name}"):
                    if getattr(model, "members", None):
                        p = stacked(ingest, model, batch, made, work.texts)
                    else:
                        p = model.predict_proba([work.texts[i] for i in batch])
                ingest.write(name, batch, p)
                if stacks:
                    made[name].update(zip(batch, p))
                read = float(cost[name][at:at + len(batch)].sum())
                at += len(batch)
                speed[name][0] += read
                speed[name][1] += time.perf_counter() - t0
                left[name] -= read
                fraction = None  # no share (nor time left) until every model with work left has shown its pace
                if work.fraction is not None and all(speed[m][1] > 0 for m, chars in left.items() if chars > 0):
                    spent = time.perf_counter() - started
                    within = spent / max(spent + _seconds_left(left, speed), 1e-9)
                    fraction = before + (work.fraction - before) * within
                # rows advance with the chunk's predictions; the fraction with its time
                progress.update(work.rows * len(batch) / total, fraction, f", {ingest.tally.rejected:,} rejected")
        if not work.predictions:
            progress.update(work.rows, work.fraction, f", {ingest.tally.rejected:,} rejected")
        before = work.fraction if work.fraction is not None else before


def stacked(ingest: Ingest, model, ids: list[str], made: dict[str, dict], texts: dict[str, str]) -> np.ndarray:
    """A stack's P(positive) of ``ids`` from its members' predictions: made in this chunk, else stored. A review
    that a member has no valid prediction of is scored by the stack itself (its members run on the text)."""
    probs = np.array([[made.get(m, {}).get(i, np.nan) for m in model.members] for i in ids], dtype=np.float64)
    if np.isnan(probs).any():
        stored = ingest.stored_probabilities([i for i, row in zip(ids, probs) if np.isnan(row).any()])
        found = dict(zip(zip(stored["review_id"], stored["model"]), stored["p_positive"]))
        for r, i in enumerate(ids):
            for j, m in enumerate(model.members):
                if np.isnan(probs[r, j]):
                    probs[r, j] = found.get((i, m), np.nan)
    n_chars = np.array([len(texts[i]) for i in ids])
    missing = np.isnan(probs).any(axis=1)
    p = np.empty(len(ids))
    p[~missing] = model.predict_from(probs[~missing], n_chars[~missing])
    if missing.any():
        p[missing] = model.predict_proba([texts[i] for i, m in zip(ids, missing) if m])
    return p


def _seconds_left(left: dict[str, float], speed: dict[str, list[float]]) -> float:
    """Seconds the chunk's remaining work takes at each model's pace so far."""
    return sum(chars * speed[name][1] / max(speed[name][0], 1e-9) for name, chars in left.items() if chars > 0)
