"""The only module that speaks SQL to DuckDB. Every value is bound as a parameter.

Locking: DuckDB lets one process open a file read-write OR many processes read-only, never both.
Jobs write to the main file (``reviews.duckdb``); when a job finishes it *publishes* a copy
(``reviews.view.duckdb``, replaced atomically by rename). The dashboard only ever opens the
published copy read-only, so it shows the last finished results and can never block a job.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from core import summaries
from core.errors import InputError, StoreError

# The version of the tables a published view holds, for the dashboard: raise it with any change of the schema
# or of the summaries' layout that the dashboard's reads depend on; a view of another version is refused with
# one line (re-run any job to republish), so no read keeps a branch for older files.
SCHEMA_VERSION = 1

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
CREATE TABLE IF NOT EXISTS reviews (
    corpus      VARCHAR NOT NULL,
    review_id   VARCHAR NOT NULL,
    text        VARCHAR NOT NULL,
    label       VARCHAR,          -- 'positive' | 'negative' | 'neutral' | NULL (unlabelled)
    split       VARCHAR,          -- 'train' | 'validation' | 'test'; NULL: unlabelled, or never split (core.splits)
    source_row  BIGINT,           -- position of the row in its input file (resume + duplicate checks)
    n_chars     INTEGER,
    PRIMARY KEY (corpus, review_id)
);
CREATE TABLE IF NOT EXISTS review_fields (   -- the input file's other columns, one row per review and column
    corpus      VARCHAR NOT NULL,
    review_id   VARCHAR NOT NULL,
    field       VARCHAR NOT NULL,  -- the column's name in the file
    kind        VARCHAR NOT NULL,  -- core.columns: boolean | numeric | datetime | categorical | text
    text_value  VARCHAR,           -- categorical/text; or the raw cell of a typed column that did not parse
    num_value   DOUBLE,            -- numeric; boolean as 1 / 0
    time_value  TIMESTAMP,         -- datetime (UTC)
    PRIMARY KEY (corpus, review_id, field)
);
CREATE TABLE IF NOT EXISTS predictions (
    corpus      VARCHAR NOT NULL,
    review_id   VARCHAR NOT NULL,
    model       VARCHAR NOT NULL,
    p_positive  DOUBLE NOT NULL,
    predicted   VARCHAR NOT NULL,  -- 'positive' | 'negative' (threshold 0.5)
    run_id      VARCHAR,
    PRIMARY KEY (corpus, review_id, model)
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
ALTER TABLE reviews ADD COLUMN IF NOT EXISTS source VARCHAR;   -- fingerprint of the input file (core.ingest)
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
            con.execute(SCHEMA + summaries.SCHEMA)
        yield con
    except duckdb.Error as e:
        raise StoreError(f"DuckDB error on {db}: {e}") from e
    finally:
        con.close()


def publish(db: Path, log: Callable[[str], None] | None = None) -> Path:
    """Rebuild the dashboard's summaries of the corpora that changed (core.summaries), then copy the closed
    database to its view file atomically (the dashboard reads that copy).

    Call only after the writing connection is closed: then the main file holds every commit.
    """
    db, dest = Path(db), view_path(db)
    _remove_dead_copies(dest)
    tmp = dest.with_name(dest.name + f".tmp{os.getpid()}")
    with connect(db) as con:
        summaries.refresh(con, log)
        with transaction(con):
            con.execute("DELETE FROM schema_info")
            con.execute("INSERT INTO schema_info VALUES (?)", [SCHEMA_VERSION])
        con.execute("CHECKPOINT")  # fold the write-ahead log into the file before copying
    try:
        shutil.copyfile(db, tmp)
        os.replace(tmp, dest)
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

    DuckDB checkpoints when the write-ahead log passes ``checkpoint_threshold`` (16 MB by default), and a
    checkpoint costs more the bigger the tables (and their primary-key indexes) are: with a commit per chunk
    of review texts that is a checkpoint every few chunks, each costlier than the last, so a run's time grows
    faster than its rows. A larger threshold makes them rarer; the price is up to that much uncheckpointed
    data in memory and a longer log replay after a crash.
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


# ---------------------------------------------------------------- corpora and reviews


def upsert_corpus(con: duckdb.DuckDBPyConnection, corpus: str, source: str, details: dict) -> None:
    con.execute(
        "INSERT INTO corpora (corpus, source, details) VALUES (?, ?, ?) "
        "ON CONFLICT (corpus) DO UPDATE SET source = excluded.source, details = excluded.details",
        [corpus, source, json.dumps(details)],
    )


def corpus_files(con: duckdb.DuckDBPyConnection, corpus: str) -> dict[str, str]:
    """fingerprint -> path of every input file stored under ``corpus``."""
    return {fp: f["path"] for fp, f in corpus_details(con, corpus).get("files", {}).items()}


def record_corpus_file(con: duckdb.DuckDBPyConnection, corpus: str, path: str, fingerprint: str,
                       columns: dict) -> None:
    """Add an input file to the corpus's record (its latest file becomes the corpus's source)."""
    details = corpus_details(con, corpus)
    details.setdefault("files", {}).setdefault(fingerprint, {}).update({"path": path, "columns": columns})
    upsert_corpus(con, corpus, path, details)


def mark_file_read(con: duckdb.DuckDBPyConnection, corpus: str, fingerprint: str, records: int) -> None:
    """Record that every record of an input file has been stored (as a review or a reject)."""
    details = corpus_details(con, corpus)
    details.setdefault("files", {}).setdefault(fingerprint, {})["read"] = records
    upsert_corpus(con, corpus, corpus_source(con, corpus), details)


def corpus_source(con: duckdb.DuckDBPyConnection, corpus: str) -> str | None:
    row = con.execute("SELECT source FROM corpora WHERE corpus = ?", [corpus]).fetchone()
    return row[0] if row else None


def file_read(con: duckdb.DuckDBPyConnection, corpus: str, fingerprint: str) -> int | None:
    """The records of an input file stored to its end by an earlier run; None if no run read it whole."""
    return corpus_details(con, corpus).get("files", {}).get(fingerprint, {}).get("read")


def file_unscored(con: duckdb.DuckDBPyConnection, corpus: str, fingerprint: str, models: Sequence[str]) -> int:
    """How many (review, model) pairs of the reviews stored from one input file still lack a prediction."""
    if not models:
        return 0
    return con.execute(
        "SELECT count(*) FROM reviews r CROSS JOIN (SELECT unnest($models) AS model) m "
        "WHERE r.corpus = $corpus AND r.source = $fp AND NOT EXISTS (SELECT 1 FROM predictions p "
        "WHERE p.corpus = r.corpus AND p.review_id = r.review_id AND p.model = m.model)",
        {"models": list(models), "corpus": corpus, "fp": fingerprint}).fetchone()[0]


def corpus_details(con: duckdb.DuckDBPyConnection, corpus: str) -> dict:
    """The corpus's details (cleaning counts, input files, split recipe); {} for an unknown corpus."""
    row = con.execute("SELECT details FROM corpora WHERE corpus = ?", [corpus]).fetchone()
    return json.loads(row[0] or "{}") if row else {}


def _set_detail(con: duckdb.DuckDBPyConnection, corpus: str, key: str, value) -> None:
    details = corpus_details(con, corpus)
    details[key] = value
    con.execute("UPDATE corpora SET details = ? WHERE corpus = ?", [json.dumps(details), corpus])


def set_split_recipe(con: duckdb.DuckDBPyConnection, corpus: str, recipe: dict) -> None:
    """Record how the corpus's splits were made (core.splits): drawn with a seed, or a column of the file."""
    _set_detail(con, corpus, "split", recipe)


def unsplit_labelled(con: duckdb.DuckDBPyConnection, corpus: str) -> pd.DataFrame:
    """review_id and label of the labelled reviews that have no split yet."""
    return con.execute(
        "SELECT review_id, label FROM reviews WHERE corpus = ? AND split IS NULL AND label IS NOT NULL",
        [corpus]).df()


def _changed(con: duckdb.DuckDBPyConnection, corpus: str) -> None:
    """The corpus's summaries are out of date: the next publish rebuilds them (core.summaries.refresh)."""
    con.execute("DELETE FROM summary_state WHERE corpus = ?", [corpus])


def set_splits(con: duckdb.DuckDBPyConnection, corpus: str, splits: pd.DataFrame) -> None:
    """splits columns: review_id, split. Only reviews without a split get one: a split is never redrawn."""
    _changed(con, corpus)
    con.register("_splits", splits[["review_id", "split"]])
    try:
        con.execute(
            "UPDATE reviews SET split = s.split FROM _splits s "
            "WHERE reviews.corpus = ? AND reviews.review_id = s.review_id AND reviews.split IS NULL", [corpus])
    finally:
        con.unregister("_splits")


def split_counts(con: duckdb.DuckDBPyConnection, corpus: str) -> pd.DataFrame:
    """Reviews per split and label (split NULL: not in any split; label NULL: unlabelled)."""
    return con.execute(
        "SELECT split, label, count(*) AS n FROM reviews WHERE corpus = ? GROUP BY ALL ORDER BY ALL", [corpus]).df()


def corpus_exists(con: duckdb.DuckDBPyConnection, corpus: str) -> bool:
    return con.execute("SELECT count(*) FROM corpora WHERE corpus = ?", [corpus]).fetchone()[0] > 0


def insert_reviews(con: duckdb.DuckDBPyConnection, corpus: str, df: pd.DataFrame) -> None:
    """df columns: review_id, text, label, split, source_row and optionally source (the input file's
    fingerprint). Existing (corpus, review_id) rows are kept."""
    if df.empty:
        return
    _changed(con, corpus)
    frame = df.assign(corpus=corpus, source=df.get("source", None))[
        ["corpus", "review_id", "text", "label", "split", "source_row", "source"]]
    con.register("_new_reviews", frame)
    try:
        con.execute(
            "INSERT INTO reviews (corpus, review_id, text, label, split, source_row, n_chars, source) "
            "SELECT corpus, review_id, text, label, split, source_row, length(text), source "
            "FROM _new_reviews ON CONFLICT DO NOTHING"
        )
    finally:
        con.unregister("_new_reviews")


def insert_fields(con: duckdb.DuckDBPyConnection, corpus: str, df: pd.DataFrame) -> None:
    """df columns: review_id, field, kind, text_value, num_value, time_value (core.columns.long_form).
    Existing (corpus, review_id, field) rows are kept, so a resumed file adds nothing twice."""
    if df.empty:
        return
    _changed(con, corpus)
    con.register("_new_fields", df.assign(corpus=corpus)[
        ["corpus", "review_id", "field", "kind", "text_value", "num_value", "time_value"]])
    try:
        con.execute("INSERT INTO review_fields SELECT corpus, review_id, field, kind, text_value, num_value, "
                    "time_value FROM _new_fields ON CONFLICT DO NOTHING")
    finally:
        con.unregister("_new_fields")


def set_field_kinds(con: duckdb.DuckDBPyConnection, corpus: str, kinds: dict[str, dict]) -> None:
    """Record the kind (and datetime format) of each kept column, beside those already recorded: every later
    file of the corpus is read the same way."""
    _changed(con, corpus)
    _set_detail(con, corpus, "fields", {**corpus_details(con, corpus).get("fields", {}), **kinds})


def existing_reviews(con: duckdb.DuckDBPyConnection, corpus: str, ids: Sequence[str]) -> pd.DataFrame:
    """review_id, source_row and source of the given ids that are already stored for ``corpus``."""
    con.register("_ids", pd.DataFrame({"review_id": pd.Series(list(ids), dtype=object)}))
    try:
        return con.execute(
            "SELECT r.review_id, r.source_row, r.source FROM reviews r JOIN _ids USING (review_id) WHERE r.corpus = ?",
            [corpus],
        ).df()
    finally:
        con.unregister("_ids")


def stored_id_hashes(con: duckdb.DuckDBPyConnection, corpus: str) -> np.ndarray:
    """DuckDB's 64-bit hash of every review_id stored for ``corpus`` (8 bytes per review)."""
    return con.execute("SELECT hash(review_id) AS h FROM reviews WHERE corpus = ?", [corpus]).fetchnumpy()["h"]


def id_hashes(con: duckdb.DuckDBPyConnection, ids: Sequence[str]) -> np.ndarray:
    """DuckDB's 64-bit hash of each of ``ids``, in order (the same function as ``stored_id_hashes``)."""
    con.register("_ids", pd.DataFrame({"review_id": pd.Series(list(ids), dtype=object)}))
    try:
        return con.execute("SELECT hash(review_id) AS h FROM _ids").fetchnumpy()["h"]
    finally:
        con.unregister("_ids")


def iter_review_chunks(
    con: duckdb.DuckDBPyConnection, corpus: str, split: str | None, chunk_rows: int
) -> Iterator[pd.DataFrame]:
    """Stored reviews of a corpus (optionally one split) in source_row order, chunk by chunk."""
    last = -1
    while True:
        df = con.execute(
            "SELECT review_id, text, label, split, source_row FROM reviews "
            "WHERE corpus = ? AND (? IS NULL OR split = ?) AND source_row > ? "
            "ORDER BY source_row LIMIT ?",
            [corpus, split, split, last, chunk_rows],
        ).df()
        if df.empty:
            return
        last = int(df["source_row"].iloc[-1])
        yield df


def count_reviews(con: duckdb.DuckDBPyConnection, corpus: str, split: str | None = None) -> int:
    return con.execute(
        "SELECT count(*) FROM reviews WHERE corpus = ? AND (? IS NULL OR split = ?)", [corpus, split, split]
    ).fetchone()[0]


def load_split(con: duckdb.DuckDBPyConnection, corpus: str, split: str) -> pd.DataFrame:
    """review_id, text and y (1 = positive) of the binary-labelled reviews of one split, in a stable order."""
    return con.execute(
        "SELECT review_id, text, (label = 'positive')::INTEGER AS y FROM reviews "
        "WHERE corpus = ? AND split = ? AND label IN ('positive', 'negative') ORDER BY source_row",
        [corpus, split],
    ).df()


# ---------------------------------------------------------------- predictions and rejects


def models_done(con: duckdb.DuckDBPyConnection, corpus: str, model: str, ids: Sequence[str]) -> set[str]:
    """Which of ``ids`` already have a prediction from ``model`` (a resumed run skips them)."""
    con.register("_ids", pd.DataFrame({"review_id": pd.Series(list(ids), dtype=object)}))
    try:
        rows = con.execute(
            "SELECT p.review_id FROM predictions p JOIN _ids USING (review_id) WHERE p.corpus = ? AND p.model = ?",
            [corpus, model],
        ).fetchall()
    finally:
        con.unregister("_ids")
    return {r[0] for r in rows}


def insert_predictions(
    con: duckdb.DuckDBPyConnection, corpus: str, model: str, ids: Sequence[str], p: np.ndarray, run_id: str
) -> None:
    _changed(con, corpus)
    frame = pd.DataFrame({"review_id": pd.Series(list(ids), dtype=object), "p": np.asarray(p, dtype=np.float64)})
    con.register("_preds", frame)
    try:
        con.execute(
            "INSERT INTO predictions SELECT ?, review_id, ?, p, CASE WHEN p >= 0.5 THEN 'positive' "
            "ELSE 'negative' END, ? FROM _preds ON CONFLICT DO NOTHING",
            [corpus, model, run_id],
        )
    finally:
        con.unregister("_preds")


def insert_rejects(con: duckdb.DuckDBPyConnection, corpus: str, df: pd.DataFrame, run_id: str) -> None:
    """df columns: location, review_id, reason, excerpt."""
    if df.empty:
        return
    con.register("_rej", df[["location", "review_id", "reason", "excerpt"]])
    try:
        con.execute(
            "INSERT INTO rejects SELECT ?, location, review_id, reason, excerpt, ? FROM _rej ON CONFLICT DO NOTHING",
            [corpus, run_id],
        )
    finally:
        con.unregister("_rej")


def count_rejects(con: duckdb.DuckDBPyConnection, corpus: str) -> pd.DataFrame:
    return con.execute(
        "SELECT reason_kind, count(*) AS n FROM (SELECT split_part(reason, ':', 1) AS reason_kind FROM rejects "
        "WHERE corpus = ?) GROUP BY 1 ORDER BY n DESC",
        [corpus],
    ).df()


def prediction_counts(con: duckdb.DuckDBPyConnection, corpus: str) -> pd.DataFrame:
    return con.execute(
        "SELECT model, count(*) AS n FROM predictions WHERE corpus = ? GROUP BY model ORDER BY model", [corpus]
    ).df()


# ---------------------------------------------------------------- runs, models, training log, speed


def start_run(con: duckdb.DuckDBPyConnection, run_id: str, job: str, corpus: str, source: str, models: list[str]):
    con.execute(
        "INSERT INTO runs (run_id, job, corpus, input, models, started_at, status) "
        "VALUES (?, ?, ?, ?, ?, current_timestamp, 'running')",
        [run_id, job, corpus, source, ",".join(models)],
    )


def close_stale_runs(con: duckdb.DuckDBPyConnection) -> int:
    """Mark runs still 'running' as 'interrupted'; call only while holding the file read-write (then no
    other job can be writing it, so their process is gone). Returns how many there were."""
    return con.execute("UPDATE runs SET status = 'interrupted' WHERE status = 'running'").fetchone()[0]


def finish_run(con, run_id: str, rows_read: int, rows_scored: int, rows_rejected: int, seconds: float,
               status: str = "finished", timing: dict | None = None) -> None:
    """timing (optional) keys: read_seconds, model_seconds, db_seconds, engine, arithmetic (a dict)."""
    timing = timing or {}
    arithmetic = json.dumps(timing["arithmetic"]) if timing.get("arithmetic") else None
    con.execute(
        "UPDATE runs SET finished_at = current_timestamp, rows_read = ?, rows_scored = ?, rows_rejected = ?, "
        "seconds = ?, status = ?, read_seconds = ?, model_seconds = ?, db_seconds = ?, engine = ?, arithmetic = ? "
        "WHERE run_id = ?",
        [rows_read, rows_scored, rows_rejected, seconds, status, timing.get("read_seconds"),
         timing.get("model_seconds"), timing.get("db_seconds"), timing.get("engine"), arithmetic, run_id],
    )


def record_model(con: duckdb.DuckDBPyConnection, info: dict, history: list[dict],
                 terms: list[dict] | None = None) -> None:
    """info keys: model, kind, preset, hyperparams (dict), n_params, bytes_on_disk, train_seconds, device,
    train_rows, trained_on (a corpus; None for vader), train_classes (label -> train reviews offered).
    history: one dict per epoch with epoch, train_loss, val_loss, train_acc, val_acc, seconds.
    terms: the loss curve by term, dicts of step, examples, term, value (a model's ``loss_curve``)."""
    with transaction(con):
        for table in ("models", "training_log", "training_terms"):
            con.execute(f"DELETE FROM {table} WHERE model = ?", [info["model"]])
        con.execute(
            "INSERT INTO models (model, kind, preset, hyperparams, n_params, bytes_on_disk, train_seconds, device, "
            "trained_at, train_rows, trained_on, train_classes) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, coalesce(?::TIMESTAMP, current_timestamp), ?, ?, ?)",
            [info["model"], info["kind"], info.get("preset"), json.dumps(info.get("hyperparams") or {}),
             info.get("n_params"), info.get("bytes_on_disk"), info.get("train_seconds"), info.get("device"),
             info.get("trained_at"), info.get("train_rows"), info.get("trained_on"),
             json.dumps(info["train_classes"]) if info.get("train_classes") else None],
        )
        for h in history:
            con.execute(
                "INSERT INTO training_log VALUES (?, ?, ?, ?, ?, ?, ?)",
                [info["model"], h["epoch"], h.get("train_loss"), h.get("val_loss"), h.get("train_acc"),
                 h.get("val_acc"), h.get("seconds")],
            )
        if terms:
            con.executemany("INSERT INTO training_terms VALUES (?, ?, ?, ?, ?)",
                            [[info["model"], t["step"], t["examples"], t["term"], t["value"]] for t in terms])


def has_model(con: duckdb.DuckDBPyConnection, model: str) -> bool:
    return con.execute("SELECT count(*) FROM models WHERE model = ?", [model]).fetchone()[0] > 0


def record_speed(con, model: str, corpus: str, rows: int, seconds: float, peak_rss_mb: float | None) -> None:
    con.execute(
        "INSERT INTO model_speed (model, corpus, rows, seconds, rows_per_s, peak_rss_mb) VALUES (?, ?, ?, ?, ?, ?)",
        [model, corpus, rows, seconds, rows / seconds if seconds > 0 else None, peak_rss_mb],
    )


# ---------------------------------------------------------------- evaluation


def evaluation_sets(con: duckdb.DuckDBPyConnection, corpus: str | None) -> list[tuple[str, str]]:
    """(corpus, split) pairs that have binary labels and predictions; user corpora use split 'all'."""
    rows = con.execute(
        "SELECT DISTINCT r.corpus, coalesce(r.split, 'all') FROM reviews r "
        "JOIN predictions p ON p.corpus = r.corpus AND p.review_id = r.review_id "
        "WHERE r.label IN ('positive', 'negative') AND (? IS NULL OR r.corpus = ?) "
        "AND coalesce(r.split, 'all') <> 'train' ORDER BY 1, 2",
        [corpus, corpus],
    ).fetchall()
    return [(c, s) for c, s in rows]


def labelled_predictions(con: duckdb.DuckDBPyConnection, corpus: str, split: str) -> pd.DataFrame:
    """model, y (1 = positive), p_positive for one evaluation set, binary labels only."""
    return con.execute(
        "SELECT p.model, (r.label = 'positive')::TINYINT AS y, p.p_positive FROM predictions p "
        "JOIN reviews r ON p.corpus = r.corpus AND p.review_id = r.review_id "
        "WHERE p.corpus = ? AND coalesce(r.split, 'all') = ? AND r.label IN ('positive', 'negative') "
        "ORDER BY p.model, r.review_id",
        [corpus, split],
    ).df()


def replace_metrics(con, corpus: str, split: str, model: str, row: dict, curves: pd.DataFrame) -> None:
    """Store one model's metrics and curve points for one evaluation set, replacing older ones."""
    with transaction(con):
        con.execute("DELETE FROM metrics WHERE corpus = ? AND split = ? AND model = ?", [corpus, split, model])
        con.execute("DELETE FROM curves WHERE corpus = ? AND split = ? AND model = ?", [corpus, split, model])
        cols = ["n", "accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "brier", "ece",
                "accuracy_lo", "accuracy_hi", "roc_auc_lo", "roc_auc_hi", "tn", "fp", "fn", "tp"]
        con.execute(
            f"INSERT INTO metrics (corpus, split, model, {', '.join(cols)}) VALUES ({', '.join('?' * (len(cols) + 3))})",
            [corpus, split, model, *[row[c] for c in cols]],
        )
        frame = curves.assign(corpus=corpus, split=split, model=model)
        con.register("_curves", frame)
        try:
            con.execute("INSERT INTO curves SELECT corpus, split, model, curve, x, y, threshold FROM _curves")
        finally:
            con.unregister("_curves")


def leaderboard(con: duckdb.DuckDBPyConnection, corpus: str, split: str) -> pd.DataFrame:
    """Quality next to cost, per model: metrics of one evaluation set, size, training time, latest speed."""
    return con.execute(
        "WITH speed AS (SELECT model, arg_max(rows_per_s, measured_at) AS rows_per_s FROM model_speed "
        "GROUP BY model) "
        "SELECT m.model, m.n, m.accuracy, m.accuracy_lo, m.accuracy_hi, m.roc_auc, m.f1, m.ece, k.n_params, "
        "k.bytes_on_disk, k.train_seconds, k.trained_on, k.train_rows, s.rows_per_s FROM metrics m "
        "LEFT JOIN models k USING (model) LEFT JOIN speed s USING (model) "
        "WHERE m.corpus = ? AND m.split = ? ORDER BY m.accuracy DESC",
        [corpus, split],
    ).df()


def labelled_corpora(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str | None]]:
    """(corpus, split to evaluate on) for every corpus with binary labels: 'test' where it has a test
    split, None (all its reviews) where it has no split at all."""
    rows = con.execute(
        "SELECT corpus, bool_or(split = 'test') FROM reviews WHERE label IN ('positive', 'negative') "
        "GROUP BY corpus ORDER BY corpus").fetchall()
    return [(corpus, "test" if has_test else None) for corpus, has_test in rows]


def cross_corpus(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Every model on every corpus it was evaluated on, next to where it learnt: one row per (model, corpus)
    with the 'test' split's metrics where the corpus has one, else 'all' (never validation)."""
    return con.execute(
        "SELECT m.model, k.trained_on, k.train_rows, m.corpus AS evaluated_on, m.split, m.n, m.accuracy, "
        "m.accuracy_lo, m.accuracy_hi, m.roc_auc, m.roc_auc_lo, m.roc_auc_hi FROM metrics m "
        "LEFT JOIN models k USING (model) WHERE m.split IN ('test', 'all') "
        "QUALIFY row_number() OVER (PARTITION BY m.model, m.corpus ORDER BY m.split = 'test' DESC) = 1 "
        "ORDER BY k.trained_on NULLS LAST, m.model, m.corpus").df()


# ---------------------------------------------------------------- a big corpus resampled from imdb (jobs.make_corpus)

EXPORT_FORMATS = {".csv": "(FORMAT csv, HEADER true)", ".parquet": "(FORMAT parquet, COMPRESSION zstd)"}


def _attach_readable(con: duckdb.DuckDBPyConnection, db: Path, log: Callable[[str], None] | None) -> Path:
    """Attach ``db`` read-only as ``src``; fall back to its published view when a job has it locked."""
    for path in (db, view_path(db)):
        if not path.exists():
            continue
        try:
            # DuckDB cannot bind a parameter in ATTACH: the path is quoted (a path, never user data in SQL)
            con.execute(f"ATTACH '{str(path).replace(chr(39), chr(39) * 2)}' AS src (READ_ONLY)")
            return path
        except duckdb.IOException as e:
            if log:
                log(f"{path} is locked by another process ({str(e).splitlines()[0][:80]}...); trying its view copy")
    raise LookupError(f"cannot read {db} or its view copy")


@contextmanager
def _resampled_imdb(db: Path, rows: int, seed: int, log: Callable[[str], None] | None
                    ) -> Iterator[tuple[duckdb.DuckDBPyConnection, str, list, int]]:
    """A connection, the query of ``rows`` resampled reviews (id, review, sentiment), its parameters and n."""
    with duckdb.connect() as con:
        source = _attach_readable(con, Path(db), log)
        # a small numbered pool (~50k rows, ~65 MB of text) is the build side of the join;
        # the million output rows stream through it and straight into the file
        con.execute("CREATE TEMP TABLE pool AS SELECT row_number() OVER (ORDER BY review_id) - 1 AS k, text, label "
                    "FROM src.reviews WHERE corpus = 'imdb' AND label IN ('positive', 'negative')")
        n_pool = con.execute("SELECT count(*) FROM pool").fetchone()[0]
        if n_pool == 0:
            raise LookupError(f"{source} holds no imdb reviews")
        if log:
            log(f"resampling {rows:,} rows from {n_pool:,} imdb reviews in {source}")
        # No ORDER BY: sorting a million texts would hold them all in memory. Instead range() must stay the
        # probe side of the join, whose row order preserve_insertion_order keeps, so the file is the same
        # run to run and row i is the same in a 1k and a 1M file. The optimizers would make range() the
        # build side when it is the smaller one (seen at 100k rows), which scrambles the order: keep the
        # written join order (pool, on the right, is built).
        con.execute("SET preserve_insertion_order = true")
        con.execute("SET disabled_optimizers = 'join_order,build_side_probe_side'")
        query = (
            "SELECT 'big-' || lpad(i::VARCHAR, 9, '0') AS id, pool.text AS review, pool.label AS sentiment "
            "FROM range(?) r(i) JOIN pool ON pool.k = hash(i, ?::BIGINT) % ?::UBIGINT"
        )
        yield con, query, [rows, seed, n_pool], n_pool


def export_resampled_imdb(db: Path, out: Path, rows: int, seed: int, log: Callable[[str], None] | None = None) -> int:
    """Write ``rows`` reviews resampled (row i = stored labelled imdb review ``hash(i, seed) mod n``) to
    ``out`` (.csv or .parquet, EXPORT_FORMATS) as id, review, sentiment; return n. Streams: flat memory."""
    with _resampled_imdb(db, rows, seed, log) as (con, query, params, n_pool):
        out_sql = str(out).replace("'", "''")  # COPY takes no parameter for its file name
        con.execute(f"COPY ({query}) TO '{out_sql}' {EXPORT_FORMATS[out.suffix.lower()]}", params)
    return n_pool


def resampled_imdb_batches(db: Path, rows: int, seed: int, batch_rows: int = 50_000,
                           log: Callable[[str], None] | None = None) -> Iterator[pd.DataFrame]:
    """The rows of ``export_resampled_imdb`` (id, review, sentiment) in order, ``batch_rows`` at a time."""
    with _resampled_imdb(db, rows, seed, log) as (con, query, params, _):
        reader = con.sql(query, params=params).to_arrow_reader(batch_size=batch_rows)
        for batch in reader:
            yield batch.to_pandas()


# ---------------------------------------------------------------- a synthetic benchmark database (jobs.bench_dashboard)

BENCH_FIELDS = {"category": "categorical", "product_id": "categorical", "reviewed": "datetime"}  # synthetic kept columns


def build_bench_corpus(con: duckdb.DuckDBPyConnection, source: Path, rows: int, n_models: int,
                       score: Callable[[list[str]], tuple[str, np.ndarray]], log: Callable[[str], None]) -> None:
    """Fill an empty database with corpus imdb: ``rows`` reviews resampled from ``source``'s imdb reviews
    (row i = pool review ``hash(i) mod n``), ``n_models`` models' predictions of each and the BENCH_FIELDS
    kept columns (synthetic, a hash of the row number). The pool is the reviews every stored model scored, model j
    starting from stored model ``j mod k``; with none stored, the imdb test split, which ``score(texts)``
    scores (returning the model's name and P(positive)). Models past the k stored add their own noise in
    logit space (about N(0, 0.6), a hash of review and model)."""
    source = _attach_readable(con, source, log)
    stored = [r[0] for r in con.execute(
        "SELECT DISTINCT model FROM src.predictions WHERE corpus = 'imdb' ORDER BY model").fetchall()]
    # the pool: the reviews every stored model scored, or (none stored) the imdb test split
    scored_by_all = ("review_id IN (SELECT review_id FROM src.predictions WHERE corpus = 'imdb' "
                     "GROUP BY review_id HAVING count(DISTINCT model) = $k)")
    con.execute(f"""
        CREATE TEMP TABLE pool AS
        SELECT row_number() OVER (ORDER BY review_id) - 1 AS k, review_id, text, label, n_chars
        FROM src.reviews WHERE corpus = 'imdb' AND {scored_by_all if stored else "split = 'test'"}""",
                {"k": len(stored)} if stored else {})
    n_pool = con.execute("SELECT count(*) FROM pool").fetchone()[0]
    if n_pool == 0:
        raise InputError(f"{source} holds no imdb reviews: run `make pipeline` (or jobs.train) first")
    if stored:
        con.execute("""CREATE TEMP TABLE pool_p AS
            SELECT pool.k, p.model, p.p_positive FROM pool JOIN src.predictions p
            ON p.corpus = 'imdb' AND p.review_id = pool.review_id""")
        how = f"stored predictions of {', '.join(stored)}"
    else:
        pool = con.execute("SELECT k, text FROM pool ORDER BY k").df()
        name, p = score(pool["text"].tolist())
        con.register("_pool_p", pool[["k"]].assign(model=name, p_positive=p))
        con.execute("CREATE TEMP TABLE pool_p AS SELECT * FROM _pool_p")
        con.unregister("_pool_p")
        stored, how = [name], f"{name} predictions on the unique texts"
    log(f"pool: {n_pool:,} real IMDB reviews; probabilities from {how}")

    bases = [stored[j % len(stored)] for j in range(n_models)]  # the stored model each bench model starts from
    names = [base if j < len(stored) else f"{base}-v{j}" for j, base in enumerate(bases)]
    con.execute("CREATE TEMP TABLE bench_models AS SELECT unnest($names) AS model, "
                "unnest($bases) AS base, unnest(range($n)) AS j", {"names": names, "bases": bases, "n": n_models})
    con.execute("CREATE TEMP TABLE pick AS SELECT i, hash(i, 'bench') % $n AS k FROM range($rows) t(i)",
                {"n": n_pool, "rows": rows})
    upsert_corpus(con, "imdb", f"bench: {rows:,} reviews resampled from {source}", {"bench": True})
    t = time.perf_counter()
    con.execute("""
        INSERT INTO reviews (corpus, review_id, text, label, split, source_row, n_chars)
        SELECT 'imdb', printf('b%07d', pick.i), pool.text, pool.label, 'test', pick.i, pool.n_chars
        FROM pick JOIN pool USING (k) ORDER BY pick.i""")
    log(f"reviews: {rows:,} rows in {time.perf_counter() - t:.1f} s")
    t = time.perf_counter()
    con.execute("""
        INSERT INTO predictions
        SELECT 'imdb', printf('b%07d', pick.i), m.model, q.p,
               CASE WHEN q.p >= 0.5 THEN 'positive' ELSE 'negative' END, 'bench'
        FROM pick CROSS JOIN bench_models m
        JOIN pool_p ON pool_p.k = pick.k AND pool_p.model = m.base,
        LATERAL (SELECT CASE WHEN m.j < $k THEN pool_p.p_positive ELSE  -- a stored model as is
            1 / (1 + exp(-(ln(c / (1 - c)) + 1.2 * ((hash(pick.i, m.j, 1) % 10000 + hash(pick.i, m.j, 2)
                 % 10000 + hash(pick.i, m.j, 3) % 10000) / 10000.0 - 1.5))))  -- logit + ~N(0, 0.6)
            END AS p FROM (SELECT greatest(least(pool_p.p_positive, 1 - 1e-6), 1e-6) AS c)) q
        ORDER BY pick.i, m.model""", {"k": len(stored)})
    log(f"predictions: {rows * n_models:,} rows in {time.perf_counter() - t:.1f} s")
    t = time.perf_counter()
    con.execute("""
        INSERT INTO review_fields
        SELECT 'imdb', printf('b%07d', i), 'category', 'categorical',
               printf('category %02d', least(floor(-ln(1 - (hash(i, 'c') % 1000000) / 1000000.0) * 5), 19)::INT),
               NULL, NULL FROM range($rows) t(i)
        UNION ALL
        SELECT 'imdb', printf('b%07d', i), 'product_id', 'categorical', printf('P%05d', hash(i, 'p') % 50000),
               NULL, NULL FROM range($rows) t(i)
        UNION ALL
        SELECT 'imdb', printf('b%07d', i), 'reviewed', 'datetime', NULL, NULL,
               TIMESTAMP '2015-01-01' + to_days((hash(i, 'd') % 3287)::INT) FROM range($rows) t(i)
        ORDER BY 2, 3""", {"rows": rows})
    set_field_kinds(con, "imdb", {f: {"kind": k} for f, k in BENCH_FIELDS.items()})
    log(f"kept columns: {rows * len(BENCH_FIELDS):,} rows in {time.perf_counter() - t:.1f} s")
    for table in ("models", "training_log"):
        con.execute(f"INSERT INTO {table} SELECT * FROM src.{table} ON CONFLICT DO NOTHING")
    con.execute("""INSERT INTO model_speed (model, corpus, rows, seconds, rows_per_s, peak_rss_mb)
        SELECT m.model, 'imdb', s.rows, s.seconds, s.rows_per_s, s.peak_rss_mb FROM bench_models m
        JOIN (SELECT model, arg_max(COLUMNS(['rows', 'seconds', 'rows_per_s', 'peak_rss_mb']), measured_at)
              FROM src.model_speed GROUP BY model) s ON s.model = m.base""")
    con.execute("DETACH src")
