"""Data generators for the benchmarks: a big corpus resampled from the stored IMDB reviews (jobs.make_corpus,
jobs.bench_import) and a synthetic database of many reviews and models (jobs.bench_dashboard)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from core.errors import InputError
from core.store.connection import view_path
from core.store.corpora import set_field_kinds, upsert_corpus

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
