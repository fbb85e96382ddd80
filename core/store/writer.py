"""A scoring run's writes, committed in a thread of their own while the run scores the next batch.

DuckDB releases the GIL while it inserts and checkpoints, so on two cores its time overlaps the models'.
Each write is one transaction on a cursor of the writer's own, in the order submitted: a chunk's reviews
are committed before its predictions, as the resume check needs. A read that must see the writes (an exact
duplicate check, which predictions a model lacks) calls ``flush`` first. A write that fails stops the ones
after it, and its error is raised to the caller at the next submit, flush or close. ``close`` commits every
write submitted before it, also when the caller stops on an error or Ctrl-C, so what the run handed over
is not lost; a killed process loses the queued writes, which the next run redoes.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

import duckdb

from core.store.connection import transaction


class Writer:
    def __init__(self, con: duckdb.DuckDBPyConnection, depth: int = 4):
        self.cursor = con.cursor()
        self.pending: queue.Queue = queue.Queue(maxsize=depth)  # at most ``depth`` writes wait, bounding memory
        self.error: BaseException | None = None
        self.raised = False
        self.thread = threading.Thread(target=self._run, name="duckdb writer", daemon=True)
        self.thread.start()

    def submit(self, write: Callable[..., None], *args) -> None:
        """Run ``write(cursor, *args)`` in one transaction, after every write submitted before it."""
        self._raise()
        self.pending.put((write, args))

    def flush(self) -> None:
        """Return once every submitted write is committed."""
        self.pending.join()
        self._raise()

    def close(self) -> None:
        """Commit what was submitted, stop the thread; raise a write's error unless it was raised already."""
        if self.thread.is_alive():
            self.pending.put(None)
            self.thread.join()
            self.cursor.close()
        self._raise()

    def _raise(self) -> None:
        if self.error is not None and not self.raised:
            self.raised = True
            raise self.error

    def _run(self) -> None:
        while True:
            item = self.pending.get()
            try:
                if item is None:
                    return
                if self.error is None:
                    write, args = item
                    with transaction(self.cursor):
                        write(self.cursor, *args)
            except BaseException as e:  # noqa: BLE001 - raised in the caller's thread, where it belongs
                self.error = e
            finally:
                self.pending.task_done()
