"""Build a big database from the real IMDB reviews and time every dashboard page's queries.

    python -m jobs.bench_dashboard --rows 1000000 --models 6 --db /tmp/bench/reviews.duckdb

The database: corpus ``imdb``, split ``test``, ``--rows`` reviews resampled (with replacement, by a hash of
the row number) from the real IMDB reviews in ``--source`` (default: the published view of
data/reviews.duckdb), each with a distinct review_id (``b0000000``...), and ``--models`` models' predictions
for every review. Each review also gets three kept columns, synthetic (for this benchmark only; a hash of
the row number): ``category`` (20 values, skewed), ``product_id`` (50,000 values) and ``reviewed`` (a day
in 2015-2023), so the Slices and Over time pages and the sidebar's column filters have something to cut.

Where the probabilities come from: if the source database holds predictions for the sampled reviews, the
pool is the labelled reviews that every stored model scored and model j starts from real stored model
``j mod k`` (k = stored models); otherwise the pool is the imdb test split and the probabilities are a real
model's predictions (tfidf-lr if trained, else vader) on the pool's unique texts. The first k bench models
carry those real probabilities as they are; every further model adds its own deterministic noise in logit
space (about N(0, 0.6), from a hash of review and model), so models disagree realistically. The rows are
generated here in numpy and pyarrow, a chunk at a time (memory stays flat at any --rows), and appended by
core.store's bulk writes. The metrics table is filled by running jobs.evaluate only with ``--evaluate``
(slow at 1M rows); the leaderboard query runs either way.

Then it publishes the view file (building the dashboard's summaries, core.store.summaries; timed) and times,
for each page, the data.py calls that page makes on first view (and on its main interactions), with
Streamlit's cache cleared before each page: seconds per page.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from core import store
from core.errors import InputError
from core.paths import default_db
from jobs.common import log, run_main
from jobs.resample import ahead, chunks, hash64, numbered_ids, picks, skewed, uniform


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m jobs.bench_dashboard", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=1_000_000, help="reviews in the bench corpus (default 1,000,000)")
    p.add_argument("--models", type=int, default=6, help="models scoring every review (default 6)")
    p.add_argument("--db", type=Path, required=True, help="bench DuckDB file to create (replaced if present)")
    p.add_argument("--source", type=Path, default=None,
                   help="database holding the real imdb corpus (default: view of data/reviews.duckdb)")
    p.add_argument("--reuse", action="store_true", help="time an existing --db without rebuilding it")
    p.add_argument("--append", type=int, default=0, metavar="N",
                   help="add N reviews (the rows after the last) to an existing --db with every model's "
                        "predictions, publish, print the publish's time and the disk it holds, and stop")
    p.add_argument("--evaluate", action="store_true", help="also run jobs.evaluate on the bench database")
    p.add_argument("--repeat", type=int, default=1, help="cold runs per page; the table shows the median")
    return p


# ---------------------------------------------------------------- building

CORPUS = "imdb"
BENCH_FIELDS = {"category": "categorical", "product_id": "categorical", "reviewed": "datetime"}  # synthetic kept columns
CHUNK_ROWS = 2 * 122_880  # reviews generated and written at a time: whole DuckDB row groups, none left part-full
SEED = 0  # the pick of row i's pool review: hash64(i, SEED); a fixed seed, so every bench database is the same
_CATEGORY, _PRODUCT, _DAY, _NOISE = range(4)  # a hash stream each: hash64(i, SEED, stream, ...)
FIRST_DAY = np.datetime64("2015-01-01")
CATEGORIES = pa.array([f"category {c:02d}" for c in range(20)])
PRODUCTS = pa.array([f"P{c:05d}" for c in range(50_000)])


def build(db: Path, source: Path, rows: int, n_models: int) -> None:
    store.texts.remove_database(db, store.view_path(db))
    t0 = time.perf_counter()
    with store.open_readable(source, log) as (src, path):
        pool, probs, names, bases = _pool(src, path, n_models)
        with store.connect(db) as con:
            store.upsert_corpus(con, CORPUS, f"bench: {rows:,} reviews resampled from {path}", {"bench": True})
            write_rows(con, pool, probs, names, rows)
            store.set_field_kinds(con, CORPUS, {f: {"kind": k} for f, k in BENCH_FIELDS.items()})
            store.copy_model_records(src, con, dict(zip(names, bases)), CORPUS)
    t = time.perf_counter()
    store.publish(db, log)
    log(f"published (summaries built, file copied) in {time.perf_counter() - t:.0f} s")
    log(f"built and published {db} ({db.stat().st_size / 2**20:,.0f} MiB, its texts "
        f"{store.texts.parts_bytes(db) / 2**20:,.0f} MiB) in {time.perf_counter() - t0:.0f} s")


def append(db: Path, source: Path, rows: int) -> None:
    """Add ``rows`` reviews after the last (their predictions by every bench model, their kept columns), as a
    job adds them, then publish: print the publish's time and the disk the database and its view hold."""
    with store.open_readable(source, log) as (src, path), store.connect(db) as con:
        start = store.count_reviews(con, CORPUS)
        pool, probs, names, _ = _pool(src, path, len(store.reads.models(con, CORPUS)))
        write_rows(con, pool, probs, names, rows, start, run_id=f"bench-append-{start}")  # a job's own run
    t = time.perf_counter()
    store.publish(db, log)
    seconds = time.perf_counter() - t
    main, view = db.stat().st_size / 2**20, store.view_path(db).stat().st_size / 2**20
    texts = store.texts.parts_bytes(db) / 2**20
    log(f"appended {rows:,} reviews to {start:,}; published in {seconds:.1f} s; the database {main:,.0f} MiB "
        f"and its texts {texts:,.0f} MiB, its view {view:,.0f} MiB: {(main + texts + view) / (main + texts):.2f}x "
        "the database on disk")


def _pool(src, path: Path, n_models: int) -> tuple[pa.Table, np.ndarray, list[str], list[str]]:
    """read_pool's pool and probabilities, the bench models' names and the stored model each starts from."""
    pool, probs, stored = read_pool(src, _score_pool)
    if pool.num_rows == 0:
        raise InputError(f"{path} holds no imdb reviews: run `make pipeline` (or jobs.train) first")
    bases = [stored[j % len(stored)] for j in range(n_models)]
    names = [base if j < len(stored) else f"{base}-v{j}" for j, base in enumerate(bases)]
    return pool, probs, names, bases


def read_pool(src, score: Callable[[list[str]], tuple[str, np.ndarray]]) -> tuple[pa.Table, np.ndarray, list[str]]:
    """The pool (review_id, text, label, n_chars of each review, in review_id order), P(positive) of each
    by each source model (n_pool x k) and those k models' names. The pool is the labelled imdb reviews every
    stored model scored; with none stored, the imdb test split, which ``score(texts)`` scores (returning the
    model's name and P(positive))."""
    preds = store.stored_predictions(src, CORPUS)
    if preds.empty:
        pool = store.labelled_pool(src, CORPUS, "test").combine_chunks()
        if pool.num_rows == 0:
            return pool, np.empty((0, 1)), []
        name, p = score(pool["text"].to_pylist())
        log(f"pool: {pool.num_rows:,} real IMDB reviews; probabilities from {name} predictions on the unique texts")
        return pool, np.asarray(p, dtype=np.float64).reshape(-1, 1), [name]
    wide = preds.pivot(index="review_id", columns="model", values="p_positive").dropna()  # scored by all
    stored = sorted(wide.columns)
    pool = store.labelled_pool(src, CORPUS)
    pool = pool.filter(pc.is_in(pool["review_id"], value_set=pa.array(wide.index))).combine_chunks()
    probs = wide.loc[pool["review_id"].to_pylist(), stored].to_numpy(dtype=np.float64)
    log(f"pool: {pool.num_rows:,} real IMDB reviews; probabilities from stored predictions of {', '.join(stored)}")
    return pool, probs, stored


def write_rows(con, pool: pa.Table, probs: np.ndarray, names: list[str], rows: int, start: int = 0,
               run_id: str = "bench") -> None:
    """Append ``rows`` resampled reviews (rows ``start``...), their predictions by each of ``names`` under
    ``run_id`` (model j carries source model ``j mod k``'s probability, noised past the k stored) and their kept
    columns, CHUNK_ROWS at a time (the next chunk is made while DuckDB writes this one)."""
    def make(span: tuple[int, int]) -> tuple[pa.Table, pa.Table, pa.Table]:
        start, stop = span
        i, ids = np.arange(start, stop), numbered_ids("b", start, stop, 7)
        k = picks(start, stop, pool.num_rows, SEED)
        picked = pool.take(k)
        reviews = pa.table({"review_id": ids, "text": picked["text"], "label": picked["label"],
                            "split": pa.repeat("test", len(i)), "source_row": i})
        return reviews, _predictions(i, ids, probs[k], names), _kept_columns(i, ids)

    seconds = {"reviews": 0.0, "predictions": 0.0, "kept columns": 0.0}
    spans = ((start + a, start + b) for a, b in chunks(rows, CHUNK_ROWS))
    for reviews, predictions, kept in ahead(spans, make):
        t0 = time.perf_counter()
        store.append_reviews(con, CORPUS, reviews)
        t1 = time.perf_counter()
        store.append_predictions(con, CORPUS, predictions, run_id)
        t2 = time.perf_counter()
        store.append_fields(con, CORPUS, kept)
        t3 = time.perf_counter()
        for what, s in zip(seconds, (t1 - t0, t2 - t1, t3 - t2), strict=True):
            seconds[what] += s
    per_review = {"reviews": 1, "predictions": len(names), "kept columns": len(BENCH_FIELDS)}
    for what, s in seconds.items():
        log(f"{what}: {rows * per_review[what]:,} rows in {s:.1f} s")


def _predictions(i: np.ndarray, ids: pa.Array, p: np.ndarray, names: list[str]) -> pa.Table:
    """review_id, model, p_positive: len(i) x len(names) rows, in review_id then model order. ``p`` holds
    each review's probability by each source model (len(i) x k)."""
    n_stored = p.shape[1]
    columns = []
    for j in range(len(names)):
        base = p[:, j % n_stored]
        if j >= n_stored:  # the source model's logit + about N(0, 0.6): three uniforms, mean 1.5, variance 1/4
            c = np.clip(base, 1e-6, 1 - 1e-6)
            noise = sum(uniform(hash64(i, SEED, _NOISE, j, t)) for t in range(3)) - 1.5
            base = 1 / (1 + np.exp(-(np.log(c / (1 - c)) + 1.2 * noise)))
        columns.append(base)
    order = np.argsort(names, kind="stable")
    n, m = len(i), len(names)
    return pa.table({
        "review_id": ids.take(np.repeat(np.arange(n), m)),
        "model": pa.DictionaryArray.from_arrays(np.tile(np.arange(m, dtype=np.int32), n),
                                                pa.array([names[o] for o in order])),
        "p_positive": np.stack([columns[o] for o in order], axis=1).ravel()})


def _kept_columns(i: np.ndarray, ids: pa.Array) -> pa.Table:
    """The BENCH_FIELDS of each review in long form (core.columns.long_form), in review_id then field order:
    category (20 values, exponential: category 00 the most common), product_id (uniform over 50,000) and
    reviewed (a day from 2015-01-01, uniform over 3,287 days)."""
    n = len(i)
    category = skewed(hash64(i, SEED, _CATEGORY))
    product = (hash64(i, SEED, _PRODUCT) % np.uint64(len(PRODUCTS))).astype(np.int64)
    day = (hash64(i, SEED, _DAY) % np.uint64(3287)).astype(np.int64)
    # per review three rows (category, product_id, reviewed): indexes into [n categories, n products, a null]
    texts = pa.concat_arrays([CATEGORIES.take(category), PRODUCTS.take(product), pa.nulls(1, pa.string())])
    text_at = np.stack([np.arange(n), n + np.arange(n), np.full(n, 2 * n)], axis=1).ravel()
    days = pa.concat_arrays([pa.array((FIRST_DAY + day).astype("datetime64[us]")), pa.nulls(1, pa.timestamp("us"))])
    day_at = np.stack([np.full(n, n), np.full(n, n), np.arange(n)], axis=1).ravel()
    fields, kinds = list(BENCH_FIELDS), list(BENCH_FIELDS.values())
    three = np.tile(np.arange(3, dtype=np.int32), n)
    return pa.table({
        "review_id": ids.take(np.repeat(np.arange(n), 3)),
        "field": pa.DictionaryArray.from_arrays(three, pa.array(fields)),
        "kind": pa.DictionaryArray.from_arrays(three, pa.array(kinds)),
        "text_value": texts.take(text_at),
        "num_value": pa.nulls(3 * n, pa.float64()),
        "time_value": days.take(day_at)})


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
    source = args.source or store.view_path(default_db())
    if not source.exists():
        source = default_db()
    if not args.reuse and not source.exists():
        raise InputError(f"no source database at {source}: run `make pipeline` first")
    if args.append:
        append(args.db, source, args.append)
        return 0
    if not args.reuse:
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
