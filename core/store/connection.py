"""The database file: its schema (one DDL, one version), opening it, transactions, and publishing the copy
the dashboard reads.

Locking: DuckDB lets one process open a file read-write OR many processes read-only, never both.
Jobs write to the main file (``reviews.duckdb``); when a job finishes it *publishes* a copy
(``reviews.view.duckdb``, replaced atomically by rename). The dashboard only ever opens the
published copy read-only, so it shows the last finished results and can never block a job.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from core.errors import StoreError
from core.store import summaries, summarise, texts

# The version of the tables a published view holds, for the dashboard: raise it with any change of the schema
# or of the summaries' layout that the dashboard's reads depend on; a view of another version is refused with
# one line (re-run any job to republish), so no read keeps a branch for older files.
SCHEMA_VERSION = 4

SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_info (  -- one row: the SCHEMA_VERSION of the code that last published
    version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS corpora (
    corpus      VARCHAR PRIMARY KEY,
    source      VARCHAR,          -- file path, or 'builtin:imdb'
    details     VARCHAR,          -- JSON: cleaning counts; input files: {"files": {fingerprint: {path, columns}}}
    created_at  TIMESTAMP DEFAULT current_timestamp
);
-- reviews, review_fields and predictions have no PRIMARY KEY: each row is unique because the ingest stores
-- only reviews and predictions it found missing (core.ingest). A key's index would check that again per row at
-- a cost that grows with the table, and take as much disk as the rows (_drop_keys removes it from older files).
CREATE TABLE IF NOT EXISTS reviews (       -- one row per (corpus, review_id)
    corpus      VARCHAR NOT NULL,
    review_id   VARCHAR NOT NULL,     -- its text is in review_texts or a Parquet part (core.store.texts)
    label       VARCHAR,          -- 'positive' | 'negative' | 'neutral' | NULL (unlabelled)
    split       VARCHAR,          -- 'train' | 'validation' | 'test'; NULL: unlabelled, or never split (core.splits)
    source_row  BIGINT,           -- position of the row in its input file (resume + duplicate checks)
    n_chars     INTEGER,
    source      VARCHAR,          -- fingerprint of the input file (core.ingest)
    rid         INTEGER           -- the review's number in its corpus, in the order stored (below)
);
CREATE TABLE IF NOT EXISTS review_fields (   -- the input file's other columns, one row per review and column
    corpus      VARCHAR NOT NULL,
    review_id   VARCHAR NOT NULL,
    field       VARCHAR NOT NULL,  -- the column's name in the file
    kind        VARCHAR NOT NULL,  -- core.columns: boolean | numeric | datetime | categorical | text
    text_value  VARCHAR,           -- categorical/text; or the raw cell of a typed column that did not parse
    num_value   DOUBLE,            -- numeric; boolean as 1 / 0
    time_value  TIMESTAMP          -- datetime (UTC)
);
CREATE TABLE IF NOT EXISTS predictions (   -- one row per (corpus, review_id, model)
    corpus      VARCHAR NOT NULL,
    review_id   VARCHAR NOT NULL,
    model       VARCHAR NOT NULL,
    p_positive  DOUBLE NOT NULL,
    predicted   VARCHAR NOT NULL,  -- 'positive' | 'negative' (threshold 0.5)
    run_id      VARCHAR
);
CREATE TABLE IF NOT EXISTS rejects (
    corpus      VARCHAR NOT NULL,
    location    VARCHAR NOT NULL,  -- 'row 17' (data row) or 'line 42' (unparseable CSV line)
    review_id   VARCHAR,
    reason      VARCHAR NOT NULL,
    excerpt     VARCHAR,           -- first 200 characters of the raw row
    run_id      VARCHAR,
    PRIMARY KEY (corpus, location)
);
CREATE TABLE IF NOT EXISTS runs (
    run_id      VARCHAR PRIMARY KEY,
    job         VARCHAR,
    corpus      VARCHAR,
    input       VARCHAR,
    models      VARCHAR,
    started_at  TIMESTAMP,
    finished_at TIMESTAMP,
    rows_read   BIGINT,
    rows_scored BIGINT,
    rows_rejected BIGINT,
    seconds     DOUBLE,
    status      VARCHAR
);
-- where a scoring run's time went (added after the first release: ALTER keeps older files working)
ALTER TABLE reviews ADD COLUMN IF NOT EXISTS source VARCHAR;
ALTER TABLE reviews ADD COLUMN IF NOT EXISTS rid INTEGER;      -- the review's number in its corpus, in the order
--   stored (0, 1, ...; gaps where a duplicate was skipped): the summaries' integer key; only grows, so the
--   reviews a job added are those above the last publish's largest rid
ALTER TABLE runs ADD COLUMN IF NOT EXISTS read_seconds DOUBLE;   -- reading + cleaning the input
ALTER TABLE runs ADD COLUMN IF NOT EXISTS model_seconds DOUBLE;  -- predicting, all models (per model: model_speed)
ALTER TABLE runs ADD COLUMN IF NOT EXISTS db_seconds DOUBLE;     -- DuckDB: resume checks + writes
ALTER TABLE runs ADD COLUMN IF NOT EXISTS engine VARCHAR;        -- 'local' | 'ray'
ALTER TABLE runs ADD COLUMN IF NOT EXISTS arithmetic VARCHAR;    -- JSON: the CPU, the kernel plan and why, each
--                                                                  model's precision (core.kernels)
CREATE TABLE IF NOT EXISTS models (
    model         VARCHAR PRIMARY KEY,
    kind          VARCHAR,
    preset        VARCHAR,
    hyperparams   VARCHAR,         -- JSON
    n_params      BIGINT,
    bytes_on_disk BIGINT,
    train_seconds DOUBLE,
    device        VARCHAR,
    trained_at    TIMESTAMP,
    train_rows    BIGINT
);
-- where a model comes from (added with training on user corpora; older files: every trained model was imdb's)
ALTER TABLE models ADD COLUMN IF NOT EXISTS trained_on VARCHAR;   -- corpus whose train split it learnt from
ALTER TABLE models ADD COLUMN IF NOT EXISTS train_classes VARCHAR; -- JSON: train reviews offered per label, e.g.
--   {"negative": 800, "positive": 800} (a preset may take a random train_rows of them)
UPDATE models SET trained_on = 'imdb' WHERE trained_on IS NULL AND kind <> 'vader';
CREATE TABLE IF NOT EXISTS training_log (
    model       VARCHAR,
    epoch       INTEGER,
    train_loss  DOUBLE,
    val_loss    DOUBLE,
    train_acc   DOUBLE,
    val_acc     DOUBLE,
    seconds     DOUBLE,
    PRIMARY KEY (model, epoch)
);
CREATE TABLE IF NOT EXISTS training_terms (  -- the loss curve within training, each term of the loss apart
    model    VARCHAR,                         --   (bitbert: ce; distilling, the weighted of kl, hidden, attn + total)
    step     INTEGER,                         -- optimizer steps so far
    examples BIGINT,                          -- training examples seen so far
    term     VARCHAR,
    value    DOUBLE,                          -- the term's mean over the steps since the previous point
    PRIMARY KEY (model, step, term)
);
CREATE TABLE IF NOT EXISTS model_speed (
    model          VARCHAR,
    corpus         VARCHAR,
    rows           BIGINT,
    seconds        DOUBLE,
    rows_per_s     DOUBLE,
    peak_rss_mb    DOUBLE,
    measured_at    TIMESTAMP DEFAULT current_timestamp
);
CREATE TABLE IF NOT EXISTS metrics (
    corpus      VARCHAR,
    split       VARCHAR,           -- 'test', 'validation' or 'all' (user corpora)
    model       VARCHAR,
    n           BIGINT,
    accuracy DOUBLE, precision DOUBLE, recall DOUBLE, f1 DOUBLE,
    roc_auc DOUBLE, pr_auc DOUBLE, brier DOUBLE, ece DOUBLE,
    accuracy_lo DOUBLE, accuracy_hi DOUBLE, roc_auc_lo DOUBLE, roc_auc_hi DOUBLE,
    tn BIGINT, fp BIGINT, fn BIGINT, tp BIGINT,
    evaluated_at TIMESTAMP DEFAULT current_timestamp,
    PRIMARY KEY (corpus, split, model)
);
CREATE TABLE IF NOT EXISTS curves (
    corpus VARCHAR, split VARCHAR, model VARCHAR,
    curve  VARCHAR,                -- 'roc' (x=fpr, y=tpr) | 'pr' (x=recall, y=precision) | 'calibration'
    x DOUBLE, y DOUBLE, threshold DOUBLE
);
"""


def view_path(db: Path) -> Path:
    """The published, read-only copy of ``db`` that the dashboard opens."""
    db = Path(db)
    return db.with_name(db.stem + ".view" + db.suffix)


@contextmanager
def connect(db: Path, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open ``db`` (creating the schema when writable); wrap DuckDB errors into StoreError."""
    db = Path(db)
    if db.is_dir():
        raise StoreError(f"{db} is a directory, not a DuckDB file")
    try:
        if not read_only:
            db.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StoreError(f"cannot create the folder {db.parent} for the database {db.name}: {e}") from e
    try:
        con = duckdb.connect(str(db), read_only=read_only)
    except duckdb.IOException as e:
        if "lock" in str(e).lower():
            raise StoreError(f"{db} is open read-write in another process (a job is running?): {e}") from e
        raise StoreError(f"cannot open database {db}: {e}") from e
    except duckdb.Error as e:
        raise StoreError(f"cannot open database {db}: {e}") from e
    try:
        if not read_only:
            con.execute(SCHEMA + texts.SCHEMA + summaries.SCHEMA)
            _move_texts_out(con)
            _drop_keys(con)
            _number_reviews(con)
            texts.remove_orphans(con)
        yield con
    except duckdb.Error as e:
        raise StoreError(f"DuckDB error on {db}: {e}") from e
    finally:
        con.close()


_UNKEYED = ("reviews", "review_fields", "predictions")  # the big tables, whose rows the ingest keeps unique


def _drop_keys(con: duckdb.DuckDBPyConnection) -> None:
    """Rewrite a big table that an older file made with a PRIMARY KEY as SCHEMA makes it now, without one
    (DuckDB cannot drop a key): once per file, a copy of the table's rows."""
    keyed = [t for (t,) in con.execute(
        "SELECT DISTINCT table_name FROM duckdb_constraints() WHERE database_name = current_database() "
        "AND constraint_type = 'PRIMARY KEY' AND list_contains($tables, table_name)",
        {"tables": list(_UNKEYED)}).fetchall()]
    for table in keyed:
        with transaction(con):
            _rebuild(con, table)


def _rebuild(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """Replace ``table`` by one made as SCHEMA makes it now, holding its rows' columns that SCHEMA keeps."""
    columns = re.search(rf"CREATE TABLE IF NOT EXISTS {table} \(.*?\n(.*?)\n\);", SCHEMA, re.DOTALL).group(1)
    con.execute(f"CREATE TABLE _rebuilt (\n{columns}\n)")
    kept = [c for (c,) in con.execute("SELECT column_name FROM duckdb_columns() WHERE database_name = "
                                      "current_database() AND table_name = '_rebuilt'").fetchall()]
    con.execute(f"INSERT INTO _rebuilt BY NAME SELECT {', '.join(kept)} FROM {table}")
    con.execute(f"DROP TABLE {table}")
    con.execute(f"ALTER TABLE _rebuilt RENAME TO {table}")


def _move_texts_out(con: duckdb.DuckDBPyConnection) -> None:
    """Move the texts of a file written before core.store.texts out of its reviews table into parts: once."""
    if not con.execute("SELECT count(*) FROM duckdb_columns() WHERE database_name = current_database() "
                       "AND table_name = 'reviews' AND column_name = 'text'").fetchall()[0][0]:
        return
    _number_reviews(con)
    with transaction(con):
        con.execute("INSERT INTO review_texts SELECT corpus, rid, review_id, text FROM reviews")
        _rebuild(con, "reviews")
        texts.spill(con, 0)


def _number_reviews(con: duckdb.DuckDBPyConnection) -> None:
    """Give reviews stored before ``rid`` existed their number: review_id order within the corpus, after any
    number already given (the order the summaries used before)."""
    if con.execute("SELECT count(*) FROM reviews WHERE rid IS NULL").fetchall()[0][0]:
        con.execute("""UPDATE reviews SET rid = n.rid FROM (
                SELECT corpus, review_id, (SELECT coalesce(max(rid), -1) FROM reviews m WHERE m.corpus = r.corpus)
                       + row_number() OVER (PARTITION BY corpus ORDER BY review_id) AS rid
                FROM reviews r WHERE rid IS NULL) n
            WHERE reviews.corpus = n.corpus AND reviews.review_id = n.review_id""")


class OutdatedView(StoreError):
    """The view was published by another version of this code (``version``: its SCHEMA_VERSION, or None)."""

    def __init__(self, path: str, version: int | None):
        super().__init__(f"{path} holds schema version {version or 'unrecorded'}, this code reads {SCHEMA_VERSION}")
        self.version = version


def open_view(path: str) -> duckdb.DuckDBPyConnection:
    """A read-only connection to a published view: an in-memory database with the file ATTACHed read-only
    as ``db`` (so a replaced file is never served from DuckDB's per-path instance cache). Raises
    OutdatedView when the file holds another SCHEMA_VERSION, StoreError when it cannot be read."""
    con = duckdb.connect(":memory:")
    try:
        # ATTACH takes no parameters: the path is quoted (it comes from the environment, never from a page)
        con.execute(f"ATTACH '{path.replace(chr(39), chr(39) * 2)}' AS db (READ_ONLY)")
        con.execute("USE db")
        version = con.execute("SELECT max(version) FROM schema_info").fetchall()[0][0]
    except duckdb.CatalogException:
        version = None  # published before the version was recorded
    except duckdb.Error as e:
        con.close()
        raise StoreError(f"Cannot open `{path}`: {e}") from e
    if version != SCHEMA_VERSION:
        con.close()
        raise OutdatedView(path, version)
    return con


@contextmanager
def view_cursor(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """A cursor of ``open_view``'s connection for one read (thread-safe across the dashboard's sessions),
    with DuckDB's errors as StoreError."""
    cur = con.cursor()
    try:
        cur.execute("USE db")  # a cursor starts in the in-memory catalog
        yield cur
    except duckdb.CatalogException as e:
        raise StoreError(f"the view does not hold the expected tables ({e})") from e
    except duckdb.Error as e:
        raise StoreError(f"reading the view failed: {e}") from e
    finally:
        cur.close()


def publish(db: Path, log: Callable[[str], None] | None = None) -> Path:
    """Bring the dashboard's summaries of the corpora that changed up to date (core.store.summarise), then copy
    the closed database to its view file atomically (the dashboard reads that copy).

    Call only after the writing connection is closed: then the main file holds every commit.
    """
    db, dest = Path(db), view_path(db)
    _remove_dead_copies(dest)
    tmp = dest.with_name(dest.name + f".tmp{os.getpid()}")
    with connect(db) as con:
        with transaction(con):
            texts.spill(con, 0)  # the view copies no text: every one is in a part
        summarise.refresh(con, log)
        with transaction(con):
            con.execute("DELETE FROM schema_info")
            con.execute("INSERT INTO schema_info VALUES (?)", [SCHEMA_VERSION])
        con.execute("CHECKPOINT")  # fold the write-ahead log into the file before copying
    t = time.perf_counter()
    try:
        shutil.copyfile(db, tmp)
        os.replace(tmp, dest)
        if log:
            log(f"{dest.name} published: {db.stat().st_size / 2**20:,.0f} MiB copied in {time.perf_counter() - t:.1f} s")
    except OSError as e:  # disk full, typically: never leave a half copy behind to fill the disk
        tmp.unlink(missing_ok=True)
        raise StoreError(f"every result is saved in {db}, but copying it to {dest} for the dashboard failed "
                         f"({e}); free some space and run any job again to publish it") from e
    return dest


def _remove_dead_copies(dest: Path) -> None:
    """Delete half-written copies left by a publish whose process died (their name ends in its pid)."""
    for tmp in dest.parent.glob(dest.name + ".tmp*"):
        pid = tmp.name.rsplit(".tmp", 1)[1]
        if pid.isdigit() and not _alive(int(pid)):
            tmp.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists (PermissionError: it does, not ours)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def tune_for_bulk_writes(con: duckdb.DuckDBPyConnection, checkpoint_threshold: str = "128MB",
                         memory_limit: str = "512MB") -> None:
    """Checkpoint less often during a long scoring run.

    DuckDB checkpoints when the write-ahead log passes ``checkpoint_threshold`` (16 MB by default): with a
    commit per chunk of review texts that is a checkpoint every few chunks. A larger threshold makes them
    rarer; the price is up to that much uncheckpointed data in memory and a longer log replay after a crash.
    """
    con.execute("SET checkpoint_threshold = ?", [checkpoint_threshold])
    con.execute("SET memory_limit = ?", [memory_limit])


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    con.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


@contextmanager
def registered(con: duckdb.DuckDBPyConnection, name: str, frame) -> Iterator[None]:
    """``frame`` (a DataFrame or an Arrow table) readable as the view ``name`` for the block, then dropped."""
    con.register(name, frame)
    try:
        yield
    finally:
        con.unregister(name)
