"""Reading ahead: a big file's chunks parsed and cleaned in a child process while the caller scores and
stores the chunks before them.

Parsing and cleaning are Python work that holds the GIL, and the models and DuckDB leave part of a second
core idle, so a thread would not overlap them but a process does. The child is a fresh interpreter
(``python -m core.readers.ahead``), not a fork (the caller holds DuckDB and torch threads) nor a
multiprocessing spawn (which re-runs the caller's main module). It sends the chunks down a pipe; a thread
of the caller's keeps at most ``depth`` of them, and the pipe's back-pressure stops the child beyond that,
so memory stays bounded. An error the reader raises (a missing column, a file that cannot be decoded) is
raised again in the caller with its own message; a child that dies is an error that says so; closing the
iterator (an error downstream, Ctrl-C) stops the child. A small file is read in the caller's process:
starting a child costs about a second.
"""

from __future__ import annotations

import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from core.errors import InputError
from core.readers import Chunk, Columns, Format, read_chunks

AHEAD_BYTES = 64 * 2**20  # files at least this big are read in a child process
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])  # the folder holding core/: the child runs this code


def read_ahead(path: Path, cols: Columns, chunk_rows: int, fmt: Format | None = None,
               extra: dict[str, str] | None = None, *, depth: int = 4,
               min_bytes: int = AHEAD_BYTES) -> Iterator[Chunk]:
    """``read_chunks(path, cols, chunk_rows, fmt, extra)``, the same chunks in the same order, read up to
    ``depth`` chunks ahead in a child process when the file has at least ``min_bytes``."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size < min_bytes:
        yield from read_chunks(path, cols, chunk_rows, fmt, extra)
        return
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [_PACKAGE_ROOT, os.environ.get("PYTHONPATH")]))}
    child = subprocess.Popen([sys.executable, "-m", "core.readers.ahead"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, env=env)
    try:
        pickle.dump((path, cols, chunk_rows, fmt, extra), child.stdin)
        child.stdin.close()
    except BrokenPipeError:  # it died starting (its traceback is on stderr): the receiver says so
        pass
    received: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    receiver = threading.Thread(target=_receive, args=(child, path, received, stop), daemon=True,
                                name=f"reader of {path.name}")
    receiver.start()
    try:
        while True:
            kind, item = received.get()
            if kind == "chunk":
                yield item
            elif kind == "error":
                raise item
            else:
                return
    finally:
        stop.set()
        child.kill()
        child.wait()
        receiver.join()
        child.stdout.close()


def _receive(child: subprocess.Popen, path: Path, received: queue.Queue, stop: threading.Event) -> None:
    """Unpickle what the child sends into ``received`` until its end, its error, or the caller stops."""
    while not stop.is_set():
        try:
            item = pickle.load(child.stdout)
        except Exception:  # noqa: BLE001 - the stream ended or broke: the child died, or was stopped
            if stop.is_set():
                return
            item = ("error", InputError(f"{path}: the process reading it stopped (exit code {child.wait()})"))
        while not stop.is_set():
            try:
                received.put(item, timeout=0.5)
                break
            except queue.Full:
                continue
        if item[0] != "chunk":
            return


def _child() -> None:
    """The child's side: read the arguments from stdin, send ("chunk", Chunk)... then ("end", None) or
    ("error", the exception) on the stdout it was given; its own prints go to stderr."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the caller's to handle; it stops this process
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything printed cannot break the stream
    path, cols, chunk_rows, fmt, extra = pickle.load(sys.stdin.buffer)
    try:
        for chunk in read_chunks(path, cols, chunk_rows, fmt, extra):
            pickle.dump(("chunk", chunk), out, protocol=pickle.HIGHEST_PROTOCOL)
            out.flush()
        item: tuple = ("end", None)
    except Exception as e:  # noqa: BLE001 - every error is the caller's to raise, with its type and message
        try:
            pickle.loads(pickle.dumps(e))
        except Exception:  # noqa: BLE001 - one that cannot cross processes goes as its text
            e = InputError(f"{path}: {type(e).__name__}: {e}")
        item = ("error", e)
    pickle.dump(item, out)
    out.flush()


if __name__ == "__main__":
    _child()
