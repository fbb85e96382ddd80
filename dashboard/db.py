"""The dashboard's connection to the database and what every read shares: which file (``Source``), the
sidebar's choice (``Selection``), one read-only connection per file version, ``query`` (bound parameters
only), ``local`` SQL over small frames, and the SQL fragments that scope a read to a corpus, a split and the
sidebar's column filters.

The dashboard opens only the *published* copy of the database (``core.store.view_path``) read-only, so a
running job (which holds the main file read-write) is never blocked and the pages show the last finished
results. It never opens the main file, not even read-only: before a first publish it says so.

Caching: every read function takes a ``Source`` (path + mtime) as its first argument and is wrapped in
``st.cache_data``; when a job publishes a new view file its mtime changes, so the key changes and the
dashboard reopens the file and re-queries. User values are always bound as ``$name`` parameters; the only
SQL fragments chosen at run time come from fixed dictionaries in these modules.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import NamedTuple

import duckdb
import pandas as pd
import streamlit as st

from core import status, store, summaries
from core.paths import default_db, models_dir
from core.summaries import Where

CACHE = {"show_spinner": False, "max_entries": 512, "ttl": 3600}
CSV_MAX_ROWS = 100_000
TEXT_ROWS = 50  # reviews listed with their text at once (cell lists, disagreements, a page)
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
    where: Where = ()  # the sidebar's filters on kept columns (core.summaries.FieldFilter)


class ReviewFilter(NamedTuple):
    """The Reviews page's filters. ``predicted``/``label``/``correct``: None means any."""

    corpus: str
    split: str
    model: str
    predicted: str | None = None  # 'positive' | 'negative'
    p_min: float = 0.0
    p_max: float = 1.0
    label: str | None = None  # 'positive' | 'negative' | 'none' (unlabelled)
    correct: bool | None = None
    chars_min: int | None = None
    chars_max: int | None = None
    search: str = ""
    search_steps: int | None = None  # search only that many SEARCH_CHUNKs of reviews (None: all at once)
    where: Where = ()


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
_connections: dict[str, tuple[int, duckdb.DuckDBPyConnection]] = {}


def _connection(src: Source) -> duckdb.DuckDBPyConnection:
    """One read-only connection per file version (an in-memory database with the file ATTACHed read-only,
    so a replaced file is never served from DuckDB's per-path instance cache)."""
    with _lock:
        held = _connections.get(src.path)
        if held and held[0] == src.mtime_ns:
            return held[1]
        con = duckdb.connect(":memory:")
        try:
            con.execute(f"ATTACH '{_sql_literal(src.path)}' AS db (READ_ONLY)")
            con.execute("USE db")
            version = con.execute("SELECT max(version) FROM schema_info").fetchone()[0]
        except duckdb.CatalogException:
            version = None  # published before the version was recorded
        except duckdb.Error as e:
            con.close()
            raise Unavailable(f"Cannot open `{src.path}`: {e}") from e
        if version != store.SCHEMA_VERSION:
            con.close()
            raise Outdated(f"`{Path(src.path).name}` was published by {'another' if version else 'an older'} "
                              f"version of this tool (schema {version or 'unrecorded'}; this dashboard reads "
                              f"{store.SCHEMA_VERSION}): re-run any job, e.g. `python -m jobs.evaluate --db "
                              f"{db_path()}`, to republish it.")
        _connections[src.path] = (src.mtime_ns, con)  # the old one closes once its cursors are gone
        return con


def _sql_literal(path: str) -> str:
    # ATTACH takes no parameters; the path comes from the environment, never from a page widget.
    return path.replace("'", "''")


def query(src: Source, sql: str, params: dict | None = None, arrow: bool = False) -> pd.DataFrame:
    """Run one read-only statement on its own cursor (thread-safe across Streamlit sessions)."""
    cur = _connection(src).cursor()
    try:
        cur.execute("USE db")  # a cursor starts in the in-memory catalog
        if arrow:
            return cur.sql(sql, params=params or {}).to_arrow_table()
        return cur.execute(sql, params or {}).df()
    except duckdb.CatalogException as e:
        raise Unavailable(f"`{src.path}` does not hold the expected tables ({e}).") from e
    finally:
        cur.close()


def in_scope(where: Where) -> tuple[str, dict]:
    """The reviews of $corpus in $split that pass the sidebar's column filters, as a WHERE condition."""
    filt, params = summaries.where_sql(where)
    return "corpus = $corpus AND coalesce(split, 'all') = $split" + filt, params


def rows_of(summarised: bool) -> summaries.Rows:
    """The rows every read computes from: the summaries' (keyed by an integer rid) or, in a view published
    before they existed, the same columns from the base tables."""
    return summaries.SUMMARY if summarised else summaries.BASE


def scoped_rows(where: Where, summarised: bool) -> tuple[str, dict]:
    """``<rows> p WHERE ...``: one prediction per row of $corpus in $split, passing the column filters, with
    the review's label and n_chars beside it (and rid, the order the lists page in). Extend with AND."""
    src = rows_of(summarised)
    filt, params = summaries.where_sql(where, key="p.rid", fields=src.fields)
    return f"{src.rows} p WHERE p.corpus = $corpus AND p.split = $split{filt}", params


BINS = summaries.BINS  # resolution of the cube: P(positive) in 1/1000 steps


def scope_params(corpus: str, split: str, models: tuple[str, ...] | list[str]) -> dict:
    return {"corpus": corpus, "split": split, "models": list(models)}


def with_texts(src: Source, corpus: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Add the text column to a small frame of review_ids (at most TEXT_ROWS: only the rows shown).

    One equality lookup per id, UNION ALL'ed: each is a selective scan that decompresses the text of one
    vector, where an IN-list or semi-join reads the text of every row group (0.35 s vs 0.9 s for 50
    scattered ids at 1M reviews)."""
    if frame.empty:
        return frame.assign(text=pd.Series(dtype=object))
    ids = frame["review_id"].tolist()[:TEXT_ROWS]
    sql = " UNION ALL ".join(
        f"SELECT review_id, text FROM reviews WHERE corpus = $corpus AND review_id = $id{i}" for i in range(len(ids)))
    texts = query(src, sql, {"corpus": corpus, **{f"id{i}": v for i, v in enumerate(ids)}})
    return frame.merge(texts.drop_duplicates("review_id"), on="review_id", how="left")


def local(sql: str, params: dict | None = None, **frames: pd.DataFrame) -> pd.DataFrame:
    """Run SQL in a private in-memory DuckDB over small, already aggregated frames (e.g. the cube)."""
    con = duckdb.connect()
    try:
        for name, frame in frames.items():
            con.register(name, frame)
        return con.execute(sql, params or {}).df()
    finally:
        con.close()


def clear_caches() -> None:
    """Forget every cached query result (the benchmark times cold queries)."""
    st.cache_data.clear()
