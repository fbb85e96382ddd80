"""Score a corpus with one or more models and store every prediction in DuckDB.

    python -m jobs.score reviews.csv --db data/reviews.duckdb --corpus shop --text-col body \\
        --id-col id --label-col stars --label-kind stars --models all
    python -m jobs.score --db data/reviews.duckdb --corpus imdb --split test --models all   # stored corpus

The input (CSV or Parquet, any size) is streamed in chunks. Each chunk's reviews and rejects are committed
in one transaction, then each model's predictions in one more, so an interrupted run (Ctrl-C, kill -9)
loses at most the chunk in flight; run the same command again and it continues where it stopped, scoring
only what is missing. Rows that cannot be scored go to the `rejects` table with their reason.
"""

from __future__ import annotations

import argparse
import resource
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from core import store
from core.corpus import REJECT_COLUMNS, Chunk, Columns, ensure_imdb, read_chunks
from core.errors import InputError
from core.models import load_model, resolve_names
from core.paths import default_db, models_dir
from core.progress import Progress
from jobs.common import log, run_main


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m jobs.score", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", nargs="?", type=Path,
                   help="CSV or Parquet file; omit to score the reviews already stored for --corpus (e.g. imdb)")
    p.add_argument("--db", type=Path, default=None, help="DuckDB file (default data/reviews.duckdb)")
    p.add_argument("--corpus", required=True, help="corpus name the reviews are stored under")
    p.add_argument("--text-col", help="column holding the review text (required with INPUT)")
    p.add_argument("--id-col", help="column holding a unique review id (default: the row position)")
    p.add_argument("--label-col", help="column holding the true label (optional)")
    p.add_argument("--label-kind", choices=["text", "stars"], default="text",
                   help="text: positive/negative/neutral, pos/neg, 1/0 in any case; "
                        "stars: 1-2 negative, 3 neutral (scored, left out of binary metrics), 4-5 positive")
    p.add_argument("--split", help="with no INPUT: score only this split of the stored corpus (e.g. test)")
    p.add_argument("--models", default="all", help="comma-separated model names, or 'all' (default)")
    p.add_argument("--models-dir", type=Path, default=None, help="trained models folder (default data/models)")
    p.add_argument("--chunk-rows", type=int, default=2_000, help="rows per committed chunk (default 2000)")
    return p


def stored_chunks(con, corpus: str, split: str | None, chunk_rows: int) -> Iterator[Chunk]:
    """The reviews already in the database, as chunks with no rejects."""
    total = max(store.count_reviews(con, corpus, split), 1)
    done = 0
    for df in store.iter_review_chunks(con, corpus, split, chunk_rows):
        done += len(df)
        yield Chunk(df, pd.DataFrame(columns=REJECT_COLUMNS), done / total)


def split_new_rows(con, corpus: str, chunk: Chunk) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(reviews to store, reviews to score, rejects) for one chunk of an input file.

    Ids already stored from another input row are rejected as duplicates.

    An id stored with the same source_row is this file's own row from an earlier, interrupted run.
    """
    reviews = chunk.reviews
    known = store.existing_reviews(con, corpus, reviews["review_id"].tolist())
    if known.empty:
        return reviews, reviews, chunk.rejects
    merged = reviews.merge(known, on="review_id", how="left", suffixes=("", "_stored"))
    dup = merged["source_row_stored"].notna() & (merged["source_row_stored"] != merged["source_row"])
    dup_rejects = pd.DataFrame({
        "location": "row " + merged.loc[dup, "source_row"].astype(str),
        "review_id": merged.loc[dup, "review_id"],
        "reason": "duplicate review_id: already stored from row " + merged.loc[dup, "source_row_stored"]
        .astype("int64").astype(str),
        "excerpt": merged.loc[dup, "text"].str.slice(0, 200),
    })
    new = merged[merged["source_row_stored"].isna()][reviews.columns]
    rejects = pd.concat([chunk.rejects, dup_rejects], ignore_index=True) if len(dup_rejects) else chunk.rejects
    return new, merged[~dup][reviews.columns], rejects


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    db = args.db or default_db()
    if args.input is not None and not args.text_col:
        raise InputError("--text-col is required when an INPUT file is given")
    names = resolve_names(args.models, args.models_dir or models_dir())
    log(f"loading models: {', '.join(names)}")
    models = {n: load_model(n, args.models_dir or models_dir()) for n in names}

    run_id = uuid.uuid4().hex[:12]
    seconds = Counter()   # model -> seconds spent predicting
    scored = Counter()    # model -> predictions written
    rows_read = rejected = skipped = 0
    status = "interrupted"
    started = time.perf_counter()
    with store.connect(db) as con:
        if args.input is None:
            if args.corpus == "imdb":
                ensure_imdb(con)
            if not store.corpus_exists(con, args.corpus):
                raise InputError(f"corpus {args.corpus!r} is not stored in {db}; give an INPUT file to score")
            chunks = stored_chunks(con, args.corpus, args.split, args.chunk_rows)
            source = f"stored:{args.corpus}" + (f":{args.split}" if args.split else "")
        else:
            cols = Columns(args.text_col, args.id_col, args.label_col, args.label_kind)
            chunks = read_chunks(args.input, cols, args.chunk_rows)
            source = str(args.input)
            store.upsert_corpus(con, args.corpus, source, {"text_col": cols.text, "id_col": cols.id,
                                                            "label_col": cols.label, "label_kind": cols.label_kind})
        store.start_run(con, run_id, "score", args.corpus, source, names)
        progress = Progress(f"score {args.corpus}")
        try:
            for chunk in chunks:
                rows_read += len(chunk.reviews) + len(chunk.rejects)
                new, to_score, rejects = (split_new_rows(con, args.corpus, chunk) if args.input is not None
                                          else (pd.DataFrame(), chunk.reviews, chunk.rejects))
                with store.transaction(con):
                    if len(new):
                        store.insert_reviews(con, args.corpus, new.assign(split=None))
                    store.insert_rejects(con, args.corpus, rejects, run_id)
                rejected += len(rejects)
                ids = to_score["review_id"].tolist()
                texts = dict(zip(to_score["review_id"], to_score["text"]))
                for name, model in models.items():
                    done = store.models_done(con, args.corpus, name, ids)
                    todo = [i for i in ids if i not in done] if done else ids
                    skipped += len(ids) - len(todo)
                    if not todo:
                        continue
                    t0 = time.perf_counter()
                    p = model.predict_proba([texts[i] for i in todo])
                    seconds[name] += time.perf_counter() - t0
                    with store.transaction(con):
                        store.insert_predictions(con, args.corpus, name, todo, p, run_id)
                    scored[name] += len(todo)
                progress.update(len(chunk.reviews) + len(chunk.rejects), chunk.fraction,
                                f", {rejected:,} rejected")
            status = "finished"
        finally:
            elapsed = time.perf_counter() - started
            store.finish_run(con, run_id, rows_read, sum(scored.values()), rejected, elapsed, status)
            peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            for name, n in scored.items():
                if n >= 100:  # too few rows make a meaningless speed figure
                    store.record_speed(con, name, args.corpus, n, seconds[name], peak_mb)
            summary = store.prediction_counts(con, args.corpus)
            reasons = store.count_rejects(con, args.corpus)
    store.publish(db)

    log(f"read {rows_read:,} rows in {elapsed:.1f} s; rejected {rejected:,} this run; "
        f"{skipped:,} predictions already stored were skipped; peak memory {peak_mb:,.0f} MB")
    for name in names:
        rate = f", {scored[name] / seconds[name]:,.0f} reviews/s" if seconds[name] > 0 else ""
        log(f"  {name}: {scored[name]:,} new predictions{rate}")
    log("predictions stored per model: " + ", ".join(f"{m}={n:,}" for m, n in summary.itertuples(index=False)))
    if len(reasons):
        log("rejects stored for this corpus: " + ", ".join(f"{r}={n:,}" for r, n in reasons.itertuples(index=False)))
    return 0


if __name__ == "__main__":
    run_main(main)
