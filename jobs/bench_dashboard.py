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
INSERT ... SELECT in DuckDB. The metrics table is filled by running jobs.evaluate only with
``--evaluate`` (slow at 1M rows); the leaderboard query runs either way.

Then it publishes the view file (building the dashboard's summaries, core.summaries; timed) and times, for each page, the data.py calls that page makes on first
view (and on its main interactions), with Streamlit's cache cleared before each page: seconds per page.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from core import store
from core.errors import InputError
from core.paths import default_db
from jobs.common import log, run_main

FIELDS = {"category": "categorical", "product_id": "categorical", "reviewed": "datetime"}  # synthetic kept columns


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
        con.execute(f"ATTACH '{str(source).replace(chr(39), chr(39) * 2)}' AS src (READ_ONLY)")
        stored = [r[0] for r in con.execute(
            "SELECT DISTINCT model FROM src.predictions WHERE corpus = 'imdb' ORDER BY model").fetchall()]
        if stored:
            con.execute("""
                CREATE TEMP TABLE pool AS
                SELECT row_number() OVER (ORDER BY review_id) - 1 AS k, review_id, text, label, n_chars
                FROM src.reviews r WHERE corpus = 'imdb' AND review_id IN (  -- scored by every stored model
                    SELECT review_id FROM src.predictions WHERE corpus = 'imdb'
                    GROUP BY review_id HAVING count(DISTINCT model) = $k)""", {"k": len(stored)})
            con.execute("""CREATE TEMP TABLE pool_p AS
                SELECT pool.k, p.model, p.p_positive FROM pool JOIN src.predictions p
                ON p.corpus = 'imdb' AND p.review_id = pool.review_id""")
            how = f"stored predictions of {', '.join(stored)}"
        else:
            con.execute("""
                CREATE TEMP TABLE pool AS
                SELECT row_number() OVER (ORDER BY review_id) - 1 AS k, review_id, text, label, n_chars
                FROM src.reviews WHERE corpus = 'imdb' AND split = 'test'""")
            stored, how = _predict_pool(con)
        n_pool = con.execute("SELECT count(*) FROM pool").fetchone()[0]
        if n_pool == 0:
            raise InputError(f"{source} holds no imdb reviews: run `make pipeline` (or jobs.train) first")
        log(f"pool: {n_pool:,} real IMDB reviews; probabilities from {how}")

        names = [stored[j % len(stored)] + ("" if j < len(stored) else f"-v{j}") for j in range(n_models)]
        con.execute("CREATE TEMP TABLE bench_models AS SELECT unnest($names) AS model, "
                    "unnest($bases) AS base, unnest(range($n)) AS j",
                    {"names": names, "bases": [stored[j % len(stored)] for j in range(n_models)], "n": n_models})
        con.execute("CREATE TEMP TABLE pick AS SELECT i, hash(i, 'bench') % $n AS k FROM range($rows) t(i)",
                    {"n": n_pool, "rows": rows})
        store.upsert_corpus(con, "imdb", f"bench: {rows:,} reviews resampled from {source}", {"bench": True})
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
        store.set_field_kinds(con, "imdb", {f: {"kind": k} for f, k in FIELDS.items()})
        log(f"kept columns: {rows * len(FIELDS):,} rows in {time.perf_counter() - t:.1f} s")
        for table in ("models", "training_log"):
            con.execute(f"INSERT INTO {table} SELECT * FROM src.{table} ON CONFLICT DO NOTHING")
        con.execute("""INSERT INTO model_speed (model, corpus, rows, seconds, rows_per_s, peak_rss_mb)
            SELECT m.model, 'imdb', s.rows, s.seconds, s.rows_per_s, s.peak_rss_mb FROM bench_models m
            JOIN (SELECT model, arg_max(COLUMNS(['rows', 'seconds', 'rows_per_s', 'peak_rss_mb']), measured_at)
                  FROM src.model_speed GROUP BY model) s ON s.model = m.base""")
        con.execute("DETACH src")
    t = time.perf_counter()
    store.publish(db, log)
    log(f"published (summaries built, file copied) in {time.perf_counter() - t:.0f} s")
    log(f"built and published {db} ({db.stat().st_size / 2**20:,.0f} MiB) in {time.perf_counter() - t0:.0f} s")


def _predict_pool(con) -> tuple[list[str], str]:
    """No stored predictions: score the pool's unique texts with a real model."""
    from core.models import available_models, load_model

    name = "tfidf-lr" if "tfidf-lr" in available_models() else "vader"
    pool = con.execute("SELECT k, text FROM pool ORDER BY k").df()
    t = time.perf_counter()
    p = load_model(name).predict_proba(pool["text"].tolist())
    log(f"scored {len(pool):,} unique texts with {name} in {time.perf_counter() - t:.0f} s")
    frame = pool[["k"]].assign(model=name, p_positive=p)
    con.register("_pool_p", frame)
    con.execute("CREATE TEMP TABLE pool_p AS SELECT * FROM _pool_p")
    con.unregister("_pool_p")
    return [name], f"{name} predictions on the unique texts"


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
