"""A small progress line for long work: done/total, rows per second and time left, at most once a second."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable


def _fmt_seconds(s: float) -> str:
    s = int(max(s, 0))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class Progress:
    """Call update(n) as work finishes (n may be fractional: part of a chunk); ``fraction`` overrides the
    estimate when the total is unknown (a file read in chunks: the share of its bytes).

    Lines go to ``emit`` (default: stderr) at most once every ``every`` seconds, and when the total is reached.
    """

    def __init__(self, label: str, total: int | None = None, unit: str = "rows",
                 emit: Callable[[str], None] = _to_stderr, every: float = 1.0):
        self.label, self.total, self.unit, self.emit, self.every = label, total, unit, emit, every
        self.done = 0.0
        self.start = self._last = time.perf_counter()

    def update(self, n: float, fraction: float | None = None, extra: str = "") -> None:
        self.done += n
        now = time.perf_counter()
        if now - self._last >= self.every or (self.total is not None and self.done >= self.total):
            self._last = now
            self.emit(self.line(fraction, extra))

    def rate(self) -> float:
        return self.done / max(time.perf_counter() - self.start, 1e-9)

    def line(self, fraction: float | None = None, extra: str = "") -> str:
        elapsed = time.perf_counter() - self.start
        if fraction is None and self.total:
            fraction = self.done / self.total
        left = f", {_fmt_seconds(elapsed * (1 - fraction) / fraction)} left" if fraction else ""
        of = f"/{self.total:,}" if self.total else ""
        pct = f" ({fraction:.0%})" if fraction is not None else ""
        return (f"[{self.label}] {round(self.done):,}{of} {self.unit}{pct}, {self.rate():,.0f} {self.unit}/s, "
                f"{_fmt_seconds(elapsed)} elapsed{left}{extra}")
