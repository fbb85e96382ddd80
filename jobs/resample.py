"""Resampling a pool of stored reviews into a corpus of any size, for the benchmark jobs (jobs.make_corpus,
jobs.bench_dashboard): a deterministic hash of the row number picks each row's pool review, so the same seed
gives the same rows and row i is the same in a file of 1k rows and one of 1M. Everything is vectorised in
numpy and pyarrow, one chunk of rows at a time: memory stays flat at any number of rows."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_MASK = (1 << 64) - 1
T = TypeVar("T")
R = TypeVar("R")


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser on uint64 (wraps modulo 2**64): every input bit reaches every output bit."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def hash64(i: np.ndarray, *keys: int) -> np.ndarray:
    """A 64-bit hash of each row number of ``i`` and the integer ``keys`` (a seed, a model number, a stream):
    the same on every run and machine, independent for each different key."""
    h = np.asarray(i, dtype=np.int64).astype(np.uint64)
    for key in keys:
        k = _mix(np.array([(key + 0x9E3779B97F4A7C15) & _MASK], dtype=np.uint64))  # a negative seed wraps
        h = _mix(h ^ k)
    return h


def uniform(h: np.ndarray) -> np.ndarray:
    """Floats in [0, 1) from hashes (their top 53 bits)."""
    return (h >> np.uint64(11)).astype(np.float64) * 2.0 ** -53


def skewed(h: np.ndarray, n: int = 20) -> np.ndarray:
    """Values 0..n-1 from hashes, exponentially skewed (0 the most common): a synthetic category's codes."""
    return np.minimum(np.floor(-np.log1p(-uniform(h)) * 5), n - 1).astype(np.int64)


def picks(start: int, stop: int, n: int, seed: int) -> np.ndarray:
    """The pool row (0..n-1) of each output row start..stop-1: ``hash64(i, seed) mod n``, with replacement."""
    return (hash64(np.arange(start, stop), seed) % np.uint64(n)).astype(np.int64)


def numbered_ids(prefix: str, start: int, stop: int, digits: int) -> pa.Array:
    """Ids ``prefix`` + row number zero-padded to ``digits`` (longer numbers keep all theirs): b0000042."""
    numbers = pc.cast(pa.array(np.arange(start, stop)), pa.string())
    return pc.binary_join_element_wise(prefix, pc.utf8_lpad(numbers, digits, "0"), "")


def chunks(rows: int, chunk_rows: int) -> Iterator[tuple[int, int]]:
    """(start, stop) of consecutive chunks of at most ``chunk_rows`` covering rows 0..rows-1."""
    return ((start, min(start + chunk_rows, rows)) for start in range(0, rows, chunk_rows))


def ahead(items: Iterable[T], make: Callable[[T], R], depth: int = 1) -> Iterator[R]:
    """``make(item)`` of each item, in order, made in threads up to ``depth`` items ahead of the caller (numpy
    and pyarrow release the GIL): writing one batch overlaps making the next, and at most depth + 1 are held."""
    with ThreadPoolExecutor(depth) as pool:
        pending: deque[Future[R]] = deque()
        for item in items:
            pending.append(pool.submit(make, item))
            if len(pending) > depth:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
