"""Batch entry points: python -m jobs.train / jobs.score / jobs.evaluate / jobs.bench.

Ctrl-C while a job is still importing its libraries (torch takes seconds) ends it with one line instead of
a traceback; once ``jobs.common.run_main`` runs, it reports interruptions itself.
"""

import sys

_default_hook = sys.excepthook


def _quiet_interrupt(kind, value, tb) -> None:
    if issubclass(kind, KeyboardInterrupt):
        print("interrupted while starting: nothing was written", file=sys.stderr)
        return
    _default_hook(kind, value, tb)


sys.excepthook = _quiet_interrupt
