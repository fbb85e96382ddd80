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

from core import store
from core.errors import InputError
from core.paths import default_db
from jobs.common import log, run_main


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m jobs.make_corpus", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, required=True, help="rows to generate")
    p.add_argument("--out", type=Path, required=True, help="output file, .csv or .parquet (replaced if present)")
    p.add_argument("--db", type=Path, default=None, help="database holding corpus imdb (default data/reviews.duckdb)")
    p.add_argument("--seed", type=int, default=13, help="resampling seed (default 13)")
    return p


def make_corpus(out: Path, rows: int, db: Path, seed: int) -> int:
    """Write ``rows`` resampled reviews to ``out``; return the number of distinct source reviews."""
    suffix = out.suffix.lower()
    if suffix not in store.EXPORT_FORMATS:
        raise InputError(f"{out}: unknown file type {suffix or '(none)'}; give a .csv or .parquet file")
    if rows < 1:
        raise InputError("--rows must be at least 1")
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        return store.export_resampled_imdb(db, out, rows, seed, log)
    except LookupError as e:
        raise InputError(f"{e}: run `make pipeline` (or jobs.train) first") from e


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    t0 = time.perf_counter()
    make_corpus(args.out, args.rows, args.db or default_db(), args.seed)
    log(f"wrote {args.rows:,} rows to {args.out} ({args.out.stat().st_size / 1e6:,.0f} MB) "
        f"in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    run_main(main)
