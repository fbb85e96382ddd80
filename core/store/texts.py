"""Review texts, kept beside the database file in Parquet parts rather than in it.

A job stages each chunk's texts in the table ``review_texts``, in the chunk's own transaction, so a kill loses
nothing that was committed and a resumed job finds what it needs. Once ``PART_ROWS`` texts of a corpus wait,
and whenever a job publishes, they are written to a new Parquet part (rid-sorted) in the folder
``<db>.texts/`` and, in one transaction, named in ``text_parts`` and removed from ``review_texts``. A part
that no row of ``text_parts`` names is a write a kill interrupted; the next job removes it. Parts are never
changed once named.

Why: the dashboard's view is a copy of the database, and the texts were most of it. Now the copy holds only
the staged texts (none, after a publish), and the jobs and the dashboard read the same parts: Parquet files
take no lock. Every read of a text goes through ``source`` or ``texts_of``.
"""

from __future__ import annotations

import bisect
import os
import re
import shutil
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.parquet as pq

PART_ROWS = 200_000  # staged texts of a corpus written out as one part
ROW_GROUP = 1_000  # rows per Parquet row group: a lookup of a rid decompresses its group's texts
_PART = re.compile(r"^\d{6}\.parquet$")

SCHEMA = """
CREATE TABLE IF NOT EXISTS review_texts (   -- texts stored since the last part was written (core.store.texts)
    corpus      VARCHAR NOT NULL,
    rid         INTEGER NOT NULL,
    review_id   VARCHAR NOT NULL,
    text        VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS text_parts (     -- the Parquet parts that hold every other text
    part        INTEGER PRIMARY KEY,
    corpus      VARCHAR NOT NULL,
    file        VARCHAR NOT NULL,  -- its name in the folder <database>.texts beside the file
    min_rid     INTEGER NOT NULL,
    max_rid     INTEGER NOT NULL,
    n           BIGINT NOT NULL
);
"""


def folder(db: Path) -> Path:
    """The folder of ``db``'s text parts; a published view (core.store.connection.view_path) reads its
    main file's: ``reviews.duckdb`` and ``reviews.view.duckdb`` both read ``reviews.texts``."""
    db = Path(db)
    return db.with_name(db.stem.removesuffix(".view") + ".texts")


def _db_file(con: duckdb.DuckDBPyConnection) -> Path | None:
    (path,) = con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchone()
    return Path(path) if path else None


def parts(con: duckdb.DuckDBPyConnection, corpus: str, rids: list[int] | None = None,
          span: tuple[int, int] | None = None) -> list[str]:
    """The paths of the corpus's parts, in rid order; with ``rids``, only those holding one of them; with
    ``span`` = (lo, hi), only those holding a rid in [lo, hi)."""
    db = _db_file(con)
    rows = con.execute("SELECT file, min_rid, max_rid FROM text_parts WHERE corpus = $corpus ORDER BY min_rid",
                       {"corpus": corpus}).fetchall()
    if db is None:
        return []
    if rids is not None:  # a part holds one of them if the first rid at or above its smallest is within it
        ordered = sorted(rids)
        rows = [r for r in rows if (i := bisect.bisect_left(ordered, r[1])) < len(ordered) and ordered[i] <= r[2]]
    if span is not None:
        rows = [r for r in rows if r[1] < span[1] and r[2] >= span[0]]
    return [str(folder(db) / file) for file, _, _ in rows]


def source(con: duckdb.DuckDBPyConnection, corpus: str, rids: list[int] | None = None,
           span: tuple[int, int] | None = None) -> tuple[str, dict]:
    """A subquery of (rid, review_id, text) of every text of $corpus (with ``rids`` or ``span``: of the parts
    that may hold them, as ``parts`` picks them), and the parameters it binds besides $corpus."""
    staged = "SELECT rid, review_id, text FROM review_texts WHERE corpus = $corpus"
    files = parts(con, corpus, rids, span)
    if not files:
        return f"({staged})", {}
    return f"({staged} UNION ALL SELECT rid, review_id, text FROM read_parquet($text_parts))", {"text_parts": files}


def texts_of(con: duckdb.DuckDBPyConnection, corpus: str, rids: list[int]) -> pd.DataFrame:
    """rid, review_id, text of a few reviews by their rid: only the parts and row groups holding them are
    read (the parts are rid-sorted, so each row group's rid range skips the others)."""
    if not rids:
        return pd.DataFrame({"rid": pd.Series(dtype="int64"), "review_id": pd.Series(dtype=object),
                             "text": pd.Series(dtype=object)})
    sql, params = source(con, corpus, rids)
    return con.execute(f"SELECT rid, review_id, text FROM {sql} WHERE rid IN (SELECT unnest($rids))",
                       {"corpus": corpus, "rids": [int(r) for r in rids], **params}).df()


def every_text(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """corpus, rid, review_id, text of every stored review, of every corpus: all the parts, read whole."""
    frames = []
    for (corpus,) in con.execute("SELECT DISTINCT corpus FROM reviews ORDER BY corpus").fetchall():
        sql, params = source(con, corpus)
        frames.append(con.execute(f"SELECT $corpus AS corpus, rid, review_id, text FROM {sql}",
                                  {"corpus": corpus, **params}).df())
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["corpus", "rid", "review_id",
                                                                                     "text"])


def spill(con: duckdb.DuckDBPyConnection, min_rows: int | None = None) -> int:
    """Write the staged texts of each corpus with at least ``min_rows`` (default PART_ROWS; ``0``: any) of them
    waiting to a new part, name it and unstage them; returns the number of texts written. Run it inside the caller's
    transaction: a part whose naming is not committed is an orphan, removed by the next job. A database in
    memory keeps its texts staged."""
    db = _db_file(con)
    if db is None:
        return 0
    waiting = con.execute("SELECT corpus, count(*) FROM review_texts GROUP BY corpus HAVING count(*) >= $n",
                          {"n": max(PART_ROWS if min_rows is None else min_rows, 1)}).fetchall()
    written = 0
    for corpus, _ in waiting:
        table = con.sql("SELECT rid, review_id, text FROM review_texts WHERE corpus = $corpus ORDER BY rid",
                        params={"corpus": corpus}).to_arrow_table()
        part = con.execute("SELECT coalesce(max(part), 0) + 1 FROM text_parts").fetchall()[0][0]
        dest = folder(db) / f"{part:06d}.parquet"
        dest.parent.mkdir(exist_ok=True)
        tmp = dest.with_suffix(".tmp")
        pq.write_table(table, tmp, row_group_size=ROW_GROUP, compression="zstd")
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())  # on disk before the commit that names it
        os.replace(tmp, dest)
        lo, hi = table["rid"][0].as_py(), table["rid"][-1].as_py()
        con.execute("INSERT INTO text_parts VALUES ($part, $corpus, $file, $lo, $hi, $n)",
                    {"part": part, "corpus": corpus, "file": dest.name, "lo": lo, "hi": hi, "n": table.num_rows})
        con.execute("DELETE FROM review_texts WHERE corpus = $corpus AND rid <= $hi", {"corpus": corpus, "hi": hi})
        written += table.num_rows
    return written


def remove_orphans(con: duckdb.DuckDBPyConnection) -> None:
    """Delete the parts (and half-written parts) that the main file does not name: writes a kill cut short.
    Only a main file's writer may: a view names fewer parts than its main file."""
    db = _db_file(con)
    if db is None or db.stem.endswith(".view") or not folder(db).is_dir():
        return
    named = {f for (f,) in con.execute("SELECT file FROM text_parts").fetchall()}
    for path in folder(db).iterdir():
        if (_PART.match(path.name) and path.name not in named) or path.suffix == ".tmp":
            path.unlink(missing_ok=True)


def copy_database(src: Path, dst: Path) -> None:
    """Copy a closed database file and its text parts, so the copy reads the same texts."""
    shutil.copyfile(src, dst)
    if folder(src).is_dir():
        shutil.rmtree(folder(dst), ignore_errors=True)
        shutil.copytree(folder(src), folder(dst))


def parts_bytes(db: Path) -> int:
    """Bytes on disk of ``db``'s text parts."""
    return sum(p.stat().st_size for p in folder(db).glob("*.parquet")) if folder(db).is_dir() else 0


def remove_database(db: Path, view: Path) -> None:
    """Delete a database file, its log, its view ``view`` and its text parts (a benchmark starting afresh)."""
    for path in (db, db.with_name(db.name + ".wal"), view):
        path.unlink(missing_ok=True)
    shutil.rmtree(folder(db), ignore_errors=True)
