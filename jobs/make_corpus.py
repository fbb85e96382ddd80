"""Generate a large review corpus by resampling the real IMDB reviews stored in the database.

    python -m jobs.make_corpus --rows 1000000 --out /tmp/big/reviews_1m.csv
    python -m jobs.make_corpus --rows 100000 --out /tmp/big/reviews_100k.parquet --seed 7

Row i of the output is the stored imdb review number ``hash(i, seed) mod n`` (with replacement), with a
distinct id ``big-000000123`` (i zero-padded to 9 digits) and columns ``id,review,sentiment``, the format
that ``jobs.score --text-col review --id-col id --label-col sentiment`` reads. The same --rows and --seed
always give the same file. Everything runs inside DuckDB (``COPY (SELECT ...) TO``), which streams the
output, so memory stays flat at any --rows. The texts are the stored, already cleaned IMDB texts.

The source database is opened read-only; if a job holds it read-write, its published view copy
(``reviews.view.duckdb``) is used instead.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import duckdb

from core import store
from core.errors import InputError
from core.paths import default_db
from jobs.common import log, run_main

FORMATS = {".csv": "(FORMAT csv, HEADER true)", ".parquet": "(FORMAT parquet, COMPRESSION zstd)"}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m jobs.make_corpus", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, required=True, help="rows to generate")
    p.add_argument("--out", type=Path, required=True, help="output file, .csv or .parquet (replaced if present)")
    p.add_argument("--db", type=Path, default=None, help="database holding corpus imdb (default data/reviews.duckdb)")
    p.add_argument("--seed", type=int, default=13, help="resampling seed (default 13)")
    return p


def attach_source(con: duckdb.DuckDBPyConnection, db: Path) -> Path:
    """Attach ``db`` read-only as ``src``; fall back to its published view when a job has it locked."""
    for path in (db, store.view_path(db)):
        if not path.exists():
            continue
        try:
            # DuckDB cannot bind a parameter in ATTACH: the path is quoted (a path, never user data in SQL)
            con.execute(f"ATTACH '{str(path).replace(chr(39), chr(39) * 2)}' AS src (READ_ONLY)")
            return path
        except duckdb.IOException as e:
            log(f"{path} is locked by another process ({str(e).splitlines()[0][:80]}...); trying its view copy")
    raise InputError(f"cannot read {db} or its view copy: run `make pipeline` (or jobs.train) first")


def make_corpus(out: Path, rows: int, db: Path, seed: int) -> int:
    """Write ``rows`` resampled reviews to ``out``; return the number of distinct source reviews."""
    suffix = out.suffix.lower()
    if suffix not in FORMATS:
        raise InputError(f"{out}: unknown file type {suffix or '(none)'}; give a .csv or .parquet file")
    if rows < 1:
        raise InputError("--rows must be at least 1")
    out.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect() as con:
        source = attach_source(con, db)
        # a small numbered pool (~50k rows, ~65 MB of text) is the build side of the join;
        # the million output rows stream through it and straight into the file
        con.execute("CREATE TEMP TABLE pool AS SELECT row_number() OVER (ORDER BY review_id) - 1 AS k, text, label "
                    "FROM src.reviews WHERE corpus = 'imdb' AND label IN ('positive', 'negative')")
        n_pool = con.execute("SELECT count(*) FROM pool").fetchone()[0]
        if n_pool == 0:
            raise InputError(f"{source} holds no imdb reviews: run `make pipeline` (or jobs.train) first")
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
        out_sql = str(out).replace("'", "''")
        con.execute(f"COPY ({query}) TO '{out_sql}' {FORMATS[suffix]}", [rows, seed, n_pool])
    return n_pool


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    t0 = time.perf_counter()
    make_corpus(args.out, args.rows, args.db or default_db(), args.seed)
    log(f"wrote {args.rows:,} rows to {args.out} ({args.out.stat().st_size / 1e6:,.0f} MB) "
        f"in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    run_main(main)
