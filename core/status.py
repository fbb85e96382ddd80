"""Which models are training now, for the dashboard: while ``jobs.train`` trains NAME it keeps a small file
``.NAME.training.json`` in the models folder (the kind, the preset, when it started, its process id and its
last progress line, which carries the share done and the time left), and removes it when it ends.

A file whose process is gone (a killed job) is not a training: ``training_now`` skips it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

EVERY = 2.0  # seconds between two writes of the file


def _path(root: Path, name: str) -> Path:
    return Path(root) / f".{name}.training.json"


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


@contextmanager
def training(root: Path, name: str, kind: str, preset: str) -> Iterator[Callable[[str], None]]:
    """Record NAME as training for the body; yields ``note(line)``, which keeps the last progress line."""
    path = _path(root, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"name": name, "kind": kind, "preset": preset, "started": time.time(), "pid": os.getpid(), "last": ""}
    written = 0.0

    def write() -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        tmp.replace(path)  # whole or not at all: the dashboard never reads half a file

    def note(line: str) -> None:
        nonlocal written
        state["last"] = line
        if time.monotonic() - written >= EVERY:
            written = time.monotonic()
            write()

    write()
    try:
        yield note
    finally:
        path.unlink(missing_ok=True)


def training_now(root: Path) -> list[dict]:
    """The models training now (oldest first): name, kind, preset, started (Unix time), last progress line."""
    found = []
    for path in sorted(Path(root).glob(".*.training.json")) if Path(root).is_dir() else []:
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # gone or being replaced meanwhile
        if _alive(int(state.get("pid", -1))):
            found.append(state)
    return sorted(found, key=lambda s: s["started"])
