"""Bulk reads and writes for the benchmark jobs (jobs.make_corpus, jobs.bench_dashboard, jobs.bench_import):
a corpus's labelled reviews and stored predictions read as a pool from a database a job may hold, and
generated reviews, predictions and kept columns appended in large chunks. What to generate (which rows, which
probabilities) is the jobs' own; only the reads and writes live here."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from core.errors import StoreError
from core.store import texts
from core.store.connection import registered, view_path
from core.store.corpora import next_rid

Rows = pa.Table | pd.DataFrame  # what the bulk writes take: DuckDB scans either without copying row by row


def _quoted(path: Path) -> str:
    """A path as a SQL string literal, for the statements that take no parameter for it (ATTACH)."""
    return "'" + str(path).replace("'", "''") + "'"


@contextmanager
def open_readable(db: Path, log: Callable[[str], None] | None = None
                  ) -> Iterator[tuple[duckdb.DuckDBPyConnection, Path]]:
    """A read-only connection to ``db`` and the path it reads: ``db`` itself, or its published view when a
    job holds ``db`` read-write. An in-memory database with the file ATTACHed (as ``src``, made the default),
    so nothing of it stays in DuckDB's per-path instance cache. Raises StoreError when neither can be read."""
    con = duckdb.connect(":memory:")
    try:
        for path in (Path(db), view_path(db)):
            if not path.exists():
                continue
            try:
                # DuckDB cannot bind a parameter in ATTACH: the path is quoted (a path, never user data in SQL)
                con.execute(f"ATTACH {_quoted(path)} AS src (READ_ONLY)")
            except duckdb.IOException as e:
                if log:
                    log(f"{path} is locked by another process ({str(e).splitlines()[0][:80]}...); "
                        "trying its view copy")
                continue
            con.execute("USE src")
            try:
                yield con, path
            except duckdb.Error as e:
                raise StoreError(f"DuckDB error reading {path}: {e}") from e
            return
        raise StoreError(f"cannot read {db} or its view copy: run `make pipeline` (or jobs.train) first")
    finally:
        con.close()


def labelled_pool(con: duckdb.DuckDBPyConnection, corpus: str, split: str | None = None) -> pa.Table:
    """review_id, text, label, n_chars of the corpus's reviews labelled positive or negative (of one split, or
    all), in review_id order: the pool a benchmark resamples. Arrow, so no text becomes a Python string."""
    text, params = texts.source(con, corpus)
    return con.sql(
        f"SELECT r.review_id, t.text, r.label, r.n_chars FROM reviews r JOIN {text} t USING (rid) "
        "WHERE r.corpus = $corpus AND r.label IN ('positive', 'negative') AND ($split IS NULL OR r.split = $split) "
        "ORDER BY r.review_id", params={"corpus": corpus, "split": split, **params}).to_arrow_table()


def stored_predictions(con: duckdb.DuckDBPyConnection, corpus: str, ids: Sequence[str] | None = None
                       ) -> pd.DataFrame:
    """review_id, model, p_positive of the corpus's stored predictions (of the reviews ``ids`` only, if given),
    in review_id, model order."""
    query = "SELECT review_id, model, p_positive FROM predictions WHERE corpus = $corpus"
    if ids is None:
        return con.execute(query + " ORDER BY review_id, model", {"corpus": corpus}).df()
    with registered(con, "_ids", pd.DataFrame({"review_id": pd.Series(list(ids), dtype=object)})):
        return con.execute(query + " AND review_id IN (SELECT review_id FROM _ids) ORDER BY review_id, model",
                           {"corpus": corpus}).df()


# ---------------------------------------------------------------- bulk writes of a corpus being built
# The rows are new by construction, as for insert_reviews / insert_predictions / insert_fields; these take
# Arrow tables, so the texts stay in Arrow.


def append_reviews(con: duckdb.DuckDBPyConnection, corpus: str, rows: Rows) -> None:
    """rows columns: review_id, text, label, split, source_row. n_chars is the text's length, as
    insert_reviews stores it, and rid follows the corpus's last; the texts are staged as insert_reviews
    stages them."""
    rid = pa.array(np.arange(len(rows), dtype=np.int64) + next_rid(con, corpus))
    rows = rows.assign(rid=rid.to_numpy()) if isinstance(rows, pd.DataFrame) else rows.append_column("rid", rid)
    with registered(con, "_new_reviews", rows):
        con.execute("INSERT INTO reviews (corpus, review_id, label, split, source_row, n_chars, rid) "
                    "SELECT $corpus, review_id, label, split, source_row, length(text), rid FROM _new_reviews",
                    {"corpus": corpus})
        con.execute("INSERT INTO review_texts SELECT $corpus, rid, review_id, text FROM _new_reviews",
                    {"corpus": corpus})
    texts.spill(con)


def append_predictions(con: duckdb.DuckDBPyConnection, corpus: str, rows: Rows, run_id: str) -> None:
    """rows columns: review_id, model, p_positive, of any number of models; predicted is thresholded at 0.5,
    as insert_predictions stores it."""
    with registered(con, "_new_preds", rows):
        con.execute("INSERT INTO predictions (corpus, review_id, model, p_positive, predicted, run_id) "
                    "SELECT $corpus, review_id, model, p_positive, CASE WHEN p_positive >= 0.5 THEN 'positive' "
                    "ELSE 'negative' END, $run FROM _new_preds", {"corpus": corpus, "run": run_id})


def append_fields(con: duckdb.DuckDBPyConnection, corpus: str, rows: Rows) -> None:
    """rows columns: review_id, field, kind, text_value, num_value, time_value (core.columns.long_form)."""
    with registered(con, "_new_fields", rows):
        con.execute("INSERT INTO review_fields (corpus, review_id, field, kind, text_value, num_value, time_value) "
                    "SELECT $corpus, review_id, field, kind, text_value, num_value, time_value FROM _new_fields",
                    {"corpus": corpus})


def copy_model_records(source: duckdb.DuckDBPyConnection, con: duckdb.DuckDBPyConnection,
                       models: dict[str, str], corpus: str) -> None:
    """Copy what ``source`` (a connection of ``open_readable``) records of its models into ``con``: every
    models and training_log row (rows already there are kept), and for each key of ``models`` (a model name
    -> the source model it stands for) the latest model_speed row of that source model, under ``corpus``."""
    tables = {
        "models": source.sql("SELECT * FROM models").to_arrow_table(),
        "training_log": source.sql("SELECT * FROM training_log").to_arrow_table(),
        "speed": source.sql("SELECT model AS base, arg_max(COLUMNS(['rows', 'seconds', 'rows_per_s', "
                            "'peak_rss_mb']), measured_at) FROM model_speed GROUP BY model").to_arrow_table(),
        "names": pa.table({"model": list(models), "base": list(models.values())}),
    }
    with ExitStack() as stack:
        for name, table in tables.items():
            stack.enter_context(registered(con, f"_src_{name}", table))
        con.execute("INSERT INTO models BY NAME SELECT * FROM _src_models ON CONFLICT DO NOTHING")
        con.execute("INSERT INTO training_log BY NAME SELECT * FROM _src_training_log ON CONFLICT DO NOTHING")
        con.execute("INSERT INTO model_speed (model, corpus, rows, seconds, rows_per_s, peak_rss_mb) "
                    "SELECT n.model, $corpus, s.rows, s.seconds, s.rows_per_s, s.peak_rss_mb "
                    "FROM _src_names n JOIN _src_speed s USING (base)", {"corpus": corpus})


def duckdb_json_texts(path: Path) -> int:
    """Read the ``text`` of every line of a JSON Lines file with DuckDB's JSON reader and fetch them (the
    timing jobs.bench_import compares with the Python parsers); returns the number of lines."""
    with duckdb.connect() as con:
        return len(con.execute("SELECT text FROM read_json_auto(?, format = 'newline_delimited')",
                               [str(path)]).fetchall())
