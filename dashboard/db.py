"""The dashboard's connection to the database and what every read shares: which file (``Source``), the
sidebar's choice (``Selection``), one read-only connection per file version, and ``read``, which runs one of
core.store's reads (store.reads, store.review_rows) on its own cursor. The dashboard writes no SQL.

The dashboard opens only the *published* copy of the database (``core.store.view_path``) read-only, so a
running job (which holds the main file read-write) is never blocked and the pages show the last finished
results. It never opens the main file, not even read-only: before a first publish it says so.

Caching: every read function takes a ``Source`` (path + mtime) as its first argument and is wrapped in
``st.cache_data``; when a job publishes a new view file its mtime changes, so the key changes and the
dashboard reopens the file and re-queries.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import streamlit as st

from core import status, store
from core.errors import StoreError
from core.paths import default_db, models_dir
from core.store.review_rows import TEXT_ROWS, ReviewFilter  # noqa: F401  (the pages' filter type)
from core.store.summaries import BINS, Where  # noqa: F401

CACHE = {"show_spinner": False, "max_entries": 512, "ttl": 3600}
CSV_MAX_ROWS = 100_000
# Reviews (in stored order) a text search reads per step: a fraction of a second of a full-text scan on 2 cores
# (docs/results/2026-12-02-dashboard-10m.md), so a search answers at once and the page offers to search further.
SEARCH_CHUNK = 500_000


class Source(NamedTuple):
    """Which database file the dashboard reads (the published view); the mtime makes it a cache key."""

    path: str
    mtime_ns: int


class Selection(NamedTuple):
    """The sidebar's choices, shared by every page (kept in st.session_state by Home.py)."""

    src: Source
    corpus: str
    split: str
    models: tuple[str, ...]
    where: Where = ()  # the sidebar's filters on kept columns (core.store.summaries.FieldFilter)


HINT = """\
make demo            # obtain IMDB, train the quick models, score + evaluate the test split
# or, step by step:
python -m jobs.train --model tfidf-lr --name tfidf-lr
python -m jobs.score --corpus imdb --split test --models all
python -m jobs.evaluate
# or score your own file:
python -m jobs.score reviews.csv --corpus mine --text-col text --label-col label --models tfidf-lr,vader"""


class Unavailable(Exception):
    """The database cannot be shown; the message says why and what to run."""


class Outdated(Unavailable):
    """The view holds results, published by another version of the code: any job republishes it."""


# ---------------------------------------------------------------- the file and its connection


def db_path() -> Path:
    return Path(os.environ.get("SENTIMENT_DB") or default_db())


def source() -> Source:
    """The published view of the database. Raises Unavailable before a first job has published one: the main
    file is never opened, not even read-only, because that would make a job starting now fail to lock it."""
    main = db_path()
    view = store.view_path(main)
    try:
        return Source(str(view), view.stat().st_mtime_ns)
    except FileNotFoundError:
        pass
    if main.exists():
        raise Unavailable(f"No published results in `{main.parent}` yet: a first job is still running (or was "
                          "stopped before it finished). Results appear here when a job finishes.")
    raise Unavailable(f"No database at `{main}` yet.")


def training_now() -> list[dict]:
    """The models a jobs.train is training now (core.status): name, kind, preset, started, last progress line."""
    return status.training_now(models_dir())


_lock = threading.Lock()
_connections: dict[str, tuple[int, Any]] = {}
T = TypeVar("T")


def _connection(src: Source):
    """One read-only connection per file version (store.open_view); a new version replaces it."""
    with _lock:
        held = _connections.get(src.path)
        if held and held[0] == src.mtime_ns:
            return held[1]
        try:
            con = store.open_view(src.path)
        except store.OutdatedView as e:
            raise Outdated(f"`{Path(src.path).name}` was published by {'another' if e.version else 'an older'} "
                           f"version of this tool (schema {e.version or 'unrecorded'}; this dashboard reads "
                           f"{store.SCHEMA_VERSION}): re-run any job, e.g. `python -m jobs.evaluate --db "
                           f"{db_path()}`, to republish it.") from e
        except StoreError as e:
            raise Unavailable(str(e)) from e
        _connections[src.path] = (src.mtime_ns, con)  # the old one closes once its cursors are gone
        return con


def read(src: Source, fn: Callable[..., T], *args, **kwargs) -> T:
    """``fn(cursor, *args, **kwargs)``: one of core.store's reads, on its own cursor of the file's connection
    (thread-safe across Streamlit sessions)."""
    try:
        with store.view_cursor(_connection(src)) as cur:
            return fn(cur, *args, **kwargs)
    except StoreError as e:
        raise Unavailable(f"`{src.path}`: {e}") from e


def clear_caches() -> None:
    """Forget every cached query result (the benchmark times cold queries)."""
    st.cache_data.clear()
