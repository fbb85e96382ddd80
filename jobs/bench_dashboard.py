"""Build a big database from the real IMDB reviews and time every dashboard page's queries.

    python -m jobs.bench_dashboard --rows 1000000 --models 6 --db /tmp/bench/reviews.duckdb

The database: corpus ``imdb``, split ``test``, ``--rows`` reviews resampled (with replacement, by a hash of
the row number) from the real IMDB reviews in ``--source`` (default: the published view of
data/reviews.duckdb), each with a distinct review_id (``b0000000``...), and ``--models`` models' predictions
for every review. Each review also gets three kept columns, synthetic (for this benchmark only; a hash of
the row number): ``category`` (20 values, skewed), ``product_id`` (50,000 values) and ``reviewed`` (a day
in 2015-2023), so the Slices and Over time pages and the sidebar's column filters have something to cut.

Where the probabilities come from: if the source database holds predictions for the sampled reviews, the
pool is the reviews that have them and model j starts from real stored model ``j mod k`` (k = stored
models); otherwise the pool is the imdb test split and the probabilities are a real model's predictions
(tfidf-lr if trained, else vader) on the pool's unique texts. The first k bench models carry those real
probabilities as they are; every further model adds its own deterministic noise in logit space (about
N(0, 0.6), from a hash of review and model), so models disagree realistically. Everything is built with
INSERT ... SELECT in DuckDB (core.store.build_bench_corpus). The metrics table is filled by running jobs.evaluate only with
``--evaluate`` (slow at 1M rows); the leaderboard query runs either way.

Then it publishes the view file (building the dashboard's summaries, core.store.summaries; timed) and times, for each page, the data.py calls that page makes on first
view (and on its main interactions), with Streamlit's cache cleared before each page: seconds per page.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from core import store
from core.errors import InputError
from core.paths import default_db
from jobs.common import log, run_main


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m jobs.bench_dashboard", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=1_000_000, help="reviews in the bench corpus (default 1,000,000)")
    p.add_argument("--models", type=int, default=6, help="models scoring every review (default 6)")
    p.add_argument("--db", type=Path, required=True, help="bench DuckDB file to create (replaced if present)")
    p.add_argument("--source", type=Path, default=None,
                   help="database holding the real imdb corpus (default: view of data/reviews.duckdb)")
    p.add_argument("--reuse", action="store_true", help="time an existing --db without rebuilding it")
    p.add_argument("--evaluate", action="store_true", help="also run jobs.evaluate on the bench database")
    p.add_argument("--repeat", type=int, default=1, help="cold runs per page; the table shows the median")
    return p


# ---------------------------------------------------------------- building


def build(db: Path, source: Path, rows: int, n_models: int) -> None:
    for path in (db, store.view_path(db), db.with_name(db.name + ".wal")):
        path.unlink(missing_ok=True)
    t0 = time.perf_counter()
    with store.connect(db) as con:
        store.build_bench_corpus(con, source, rows, n_models, _score_pool, log)
    t = time.perf_counter()
    store.publish(db, log)
    log(f"published (summaries built, file copied) in {time.perf_counter() - t:.0f} s")
    log(f"built and published {db} ({db.stat().st_size / 2**20:,.0f} MiB) in {time.perf_counter() - t0:.0f} s")


def _score_pool(texts: list[str]) -> tuple[str, np.ndarray]:
    """No stored predictions: score the pool's unique texts with a real model."""
    from core.models import available_models, load_model

    name = "tfidf-lr" if "tfidf-lr" in available_models() else "vader"
    t = time.perf_counter()
    p = load_model(name).predict_proba(texts)
    log(f"scored {len(texts):,} unique texts with {name} in {time.perf_counter() - t:.0f} s")
    return name, p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.reuse:
        source = args.source or store.view_path(default_db())
        if not source.exists():
            source = default_db()
        if not source.exists():
            raise InputError(f"no source database at {source}: run `make pipeline` first")
        build(args.db, source, args.rows, args.models)
    os.environ["SENTIMENT_DB"] = str(args.db)
    if args.evaluate:
        from jobs import evaluate

        t = time.perf_counter()
        evaluate.main(["--db", str(args.db)])
        log(f"jobs.evaluate: {time.perf_counter() - t:.0f} s")

    # the dashboard times its own reads (dashboard/bench.py): jobs/ never imports dashboard/
    command = [sys.executable, "-m", "dashboard.bench", "--db", str(args.db), "--repeat", str(args.repeat)]
    return subprocess.run(command, check=False).returncode


if __name__ == "__main__":
    run_main(main)
