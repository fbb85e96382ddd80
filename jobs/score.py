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
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from core import store
from core.corpus import REJECT_COLUMNS, Chunk, Columns, ensure_imdb, read_chunks
from core.errors import InputError
from core.models import load_model, resolve_names
from core.paths import default_db, models_dir
from core.progress import Progress
from jobs.common import log, run_main

PRECISIONS = ["auto", "fp32", "int8", "bf16", "float"]  # every precision a model kind declares, and auto


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
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="the arithmetic of the models that offer a choice (the BERT family). auto (default): "
                        "what measures fastest on this CPU without changing what the model predicts: bert fp32; "
                        "bitbert int8 x ternary integer kernels where one is at least as fast as fp32 here, else "
                        "float. bert: fp32 | int8 (W8A8, the fastest integer kernel here) | bf16; "
                        "bitbert: int8 | float (the training arithmetic). The choice and why are printed and "
                        "recorded in the runs table; jobs.bench measures speed and accuracy of each")
    p.add_argument("--compile", action="store_true",
                   help="compile the BERT-family models with TorchInductor (local engine): 20-35 s once, then "
                        "1.2-1.3x faster on CPU in fp32 and int8 (jobs.bench measures it); worth it from a few "
                        "thousand reviews")
    p.add_argument("--chunk-rows", type=int, default=2_000, help="rows per committed chunk (default 2000)")
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="local: score in this process (default); ray: score on Ray Data with an actor pool, "
                        "writing from this process (pip install -e '.[ray]')")
    p.add_argument("--ray-address", default=None,
                   help="with --engine ray: an existing cluster (ray://head:10001, or auto); default: start a "
                        "local Ray instance for this run")
    p.add_argument("--ray-actors", type=int, default=2, help="with --engine ray: scoring actors (default 2)")
    p.add_argument("--ray-actor-cpus", type=float, default=0.5,
                   help="with --engine ray: CPUs reserved per actor (default 0.5, so 2 actors leave room on 2 "
                        "cores for Ray's own tasks)")
    p.add_argument("--ray-batch-rows", type=int, default=500, help="with --engine ray: rows per model batch")
    return p


def stored_chunks(con, corpus: str, split: str | None, chunk_rows: int) -> Iterator[Chunk]:
    """The reviews already in the database, as chunks with no rejects."""
    total = max(store.count_reviews(con, corpus, split), 1)
    done = 0
    for df in store.iter_review_chunks(con, corpus, split, chunk_rows):
        done += len(df)
        yield Chunk(df, pd.DataFrame(columns=REJECT_COLUMNS), done / total)


class StoredIds:
    """Which review ids a corpus may already hold, so that a chunk of new ids skips the exact check.

    The exact check (store.existing_reviews) joins the chunk against every stored review: its cost grows
    with the table, which made a run's time grow faster than its rows. This keeps DuckDB's 64-bit hash of
    every stored id (8 bytes per review: 8 MB per million) in sorted numpy blocks, merged like a binary
    counter so there are O(log n) of them. "Not stored" is certain; "maybe" (a stored id, or a hash
    collision) falls back to the exact query, so results are exactly those of the query.
    """

    def __init__(self, hashes: np.ndarray):
        self.blocks: list[np.ndarray] = [np.sort(hashes)] if len(hashes) else []

    def add(self, hashes: np.ndarray) -> None:
        if not len(hashes):
            return
        self.blocks.append(np.sort(hashes))
        while len(self.blocks) > 1 and len(self.blocks[-1]) >= len(self.blocks[-2]):
            self.blocks[-2:] = [np.sort(np.concatenate(self.blocks[-2:]))]

    def maybe_any(self, hashes: np.ndarray) -> bool:
        for block in self.blocks:
            pos = np.minimum(np.searchsorted(block, hashes), len(block) - 1)
            if np.any(block[pos] == hashes):
                return True
        return False


def split_new_rows(con, corpus: str, chunk: Chunk, stored: StoredIds | None = None
                   ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(reviews to store, reviews to score, rejects) for one chunk of an input file.

    Ids already stored from another input row are rejected as duplicates.

    An id stored with the same source_row is this file's own row from an earlier, interrupted run.
    With ``stored``, the ids of the rows returned for storing are added to it.
    """
    reviews = chunk.reviews
    hashes = store.id_hashes(con, reviews["review_id"].tolist()) if stored is not None else None
    if stored is not None and not stored.maybe_any(hashes):
        stored.add(hashes)
        return reviews, reviews, chunk.rejects
    known = store.existing_reviews(con, corpus, reviews["review_id"].tolist())
    if known.empty:
        if stored is not None:
            stored.add(hashes)
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
    is_new = merged["source_row_stored"].isna()
    new = merged[is_new][reviews.columns]
    if stored is not None:
        stored.add(hashes[is_new.to_numpy()])  # merged keeps reviews' row order (a left merge)
    rejects = pd.concat([chunk.rejects, dup_rejects], ignore_index=True) if len(dup_rejects) else chunk.rejects
    return new, merged[~dup][reviews.columns], rejects


class Timings:
    """Seconds spent per phase: 'read' (reading + cleaning input), 'db' (DuckDB checks + writes), 'model:NAME'."""

    def __init__(self) -> None:
        self.seconds: Counter = Counter()

    @contextmanager
    def phase(self, key: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[key] += time.perf_counter() - t0

    def timed(self, key: str, items: Iterable) -> Iterator:
        """Iterate ``items``, counting the time spent producing each item under ``key``."""
        it = iter(items)
        while True:
            with self.phase(key):
                item = next(it, _END)
            if item is _END:
                return
            yield item

    def model_total(self) -> float:
        return sum(v for k, v in self.seconds.items() if k.startswith("model:"))

    def summary(self, elapsed: float) -> str:
        parts = [("read+clean", self.seconds["read"]), ("models", self.model_total()),
                 ("DuckDB", self.seconds["db"])]
        if "ray" in self.seconds:  # models ran in Ray actors, in parallel: show how long the writer waited
            parts = [parts[0], ("waiting on Ray", self.seconds["ray"]), parts[2]]
        other = max(elapsed - sum(v for _, v in parts), 0.0)
        return ", ".join(f"{k} {v:,.1f} s ({v / max(elapsed, 1e-9):.0%})" for k, v in [*parts, ("other", other)])


_END = object()


@dataclass
class Tally:
    """What a run did, for the runs table and the final summary."""

    rows_read: int = 0
    rejected: int = 0
    skipped: int = 0
    scored: Counter = field(default_factory=Counter)  # model -> predictions written
    timings: Timings = field(default_factory=Timings)


def open_chunks(con, args) -> tuple[Iterator[Chunk], str]:
    """The chunks to score and a description of their source, for the runs table."""
    if args.input is None:
        if args.corpus == "imdb":
            ensure_imdb(con)
        if not store.corpus_exists(con, args.corpus):
            raise InputError(f"corpus {args.corpus!r} is not stored in {args.db}; give an INPUT file to score")
        source = f"stored:{args.corpus}" + (f":{args.split}" if args.split else "")
        return stored_chunks(con, args.corpus, args.split, args.chunk_rows), source
    cols = Columns(args.text_col, args.id_col, args.label_col, args.label_kind)
    store.upsert_corpus(con, args.corpus, str(args.input), {"text_col": cols.text, "id_col": cols.id,
                                                             "label_col": cols.label, "label_kind": cols.label_kind})
    return read_chunks(args.input, cols, args.chunk_rows), str(args.input)


def load_stored_ids(con, args, tally: Tally) -> StoredIds | None:
    """The id filter for an input file (one scan at the start); None when scoring stored reviews."""
    if args.input is None:
        return None
    with tally.timings.phase("db"):
        return StoredIds(store.stored_id_hashes(con, args.corpus))


def ingest(con, args, chunk: Chunk, run_id: str, tally: Tally, stored: StoredIds | None
           ) -> tuple[pd.DataFrame, bool]:
    """Store one chunk's new reviews and its rejects in one transaction.

    Returns the reviews to score and whether all of them were new: then none can have a prediction yet
    (predictions are written after their reviews), so the resume check, a query whose cost grows with the
    predictions table, can be skipped; it runs only for chunks that overlap an earlier run.
    """
    tally.rows_read += len(chunk.reviews) + len(chunk.rejects)
    with tally.timings.phase("db"):
        new, to_score, rejects = (split_new_rows(con, args.corpus, chunk, stored) if args.input is not None
                                  else (pd.DataFrame(), chunk.reviews, chunk.rejects))
        with store.transaction(con):
            if len(new):
                store.insert_reviews(con, args.corpus, new.assign(split=None))
            store.insert_rejects(con, args.corpus, rejects, run_id)
    tally.rejected += len(rejects)
    return to_score, args.input is not None and len(new) == len(to_score)


def todo_ids(con, corpus: str, name: str, ids: list[str], tally: Tally, fresh: bool = False) -> list[str]:
    """The ids that still lack a prediction from model ``name`` (a resumed run skips the others)."""
    if fresh:  # reviews stored by this very chunk: no predictions yet
        return ids
    with tally.timings.phase("db"):
        done = store.models_done(con, corpus, name, ids)
    todo = [i for i in ids if i not in done] if done else ids
    tally.skipped += len(ids) - len(todo)
    return todo


def write_predictions(con, corpus: str, name: str, ids: list[str], p, run_id: str, tally: Tally) -> None:
    with tally.timings.phase("db"), store.transaction(con):
        store.insert_predictions(con, corpus, name, ids, p, run_id)
    tally.scored[name] += len(ids)


def score_local(con, args, chunks: Iterator[Chunk], models: dict, run_id: str, tally: Tally) -> None:
    """In this process: per chunk, store reviews + rejects, then predict and store each model's predictions."""
    progress = Progress(f"score {args.corpus}")
    stored = load_stored_ids(con, args, tally)
    for chunk in tally.timings.timed("read", chunks):
        to_score, fresh = ingest(con, args, chunk, run_id, tally, stored)
        ids = to_score["review_id"].tolist()
        texts = dict(zip(to_score["review_id"], to_score["text"]))
        for name, model in models.items():
            todo = todo_ids(con, args.corpus, name, ids, tally, fresh)
            if not todo:
                continue
            with tally.timings.phase(f"model:{name}"):
                p = model.predict_proba([texts[i] for i in todo])
            write_predictions(con, args.corpus, name, todo, p, run_id, tally)
        progress.update(len(chunk.reviews) + len(chunk.rejects), chunk.fraction, f", {tally.rejected:,} rejected")


def score_ray(con, args, chunks: Iterator[Chunk], names: list[str], root: Path, run_id: str, tally: Tally) -> None:
    """On Ray Data: this process reads the input, stores reviews + rejects and works out what each model still
    lacks (exactly as the local engine does); an actor pool predicts; this process writes the predictions.

    Two passes: the first queues the missing work in Ray's object store chunk by chunk, the second streams
    the predictions back. An interruption in either leaves a state that a rerun completes, because stored
    reviews are recognised by their source_row and stored predictions are skipped.
    """
    from core.ray_engine import RayScorer  # imported only here: the local engine never imports ray

    progress = Progress(f"queue {args.corpus}")
    with RayScorer(names, root, address=args.ray_address, actors=args.ray_actors,
                   actor_cpus=args.ray_actor_cpus, batch_rows=args.ray_batch_rows) as scorer:
        stored = load_stored_ids(con, args, tally)
        for chunk in tally.timings.timed("read", chunks):
            to_score, fresh = ingest(con, args, chunk, run_id, tally, stored)
            ids = to_score["review_id"].tolist()
            work = pd.DataFrame({"review_id": to_score["review_id"], "text": to_score["text"]})
            for name in names:
                work[f"todo:{name}"] = work["review_id"].isin(set(todo_ids(con, args.corpus, name, ids, tally, fresh)))
            scorer.add(work[work.filter(like="todo:").any(axis=1)])
            progress.update(len(chunk.reviews) + len(chunk.rejects), chunk.fraction, f", {tally.rejected:,} rejected")
        progress = Progress(f"score {args.corpus}", total=scorer.queued, unit="predictions")
        for preds in tally.timings.timed("ray", scorer.results()):
            for name, part in preds.groupby("model", sort=False):
                write_predictions(con, args.corpus, name, part["review_id"].tolist(),
                                  part["p_positive"].to_numpy(), run_id, tally)
                tally.timings.seconds[f"model:{name}"] += float(part["seconds"].sum())  # actor time
            progress.update(len(preds))


def choose_arithmetic(models: dict, precision: str) -> dict:
    """Set each model's precision (``auto`` or the one asked for, where the model offers it), print the
    choice and why; returns what the run records: the CPU, the measured plan, each model's precision."""
    chosen = {}
    for name, model in models.items():
        if not hasattr(model, "set_precision"):
            continue
        if precision != "auto" and precision not in model.precisions:
            log(f"{name}: has no {precision} path (it offers {', '.join(model.precisions)}); using auto")
        chosen[name] = model.set_precision(precision if precision in model.precisions else "auto")
        log(f"{name}: {chosen[name]}")
    if not chosen:
        return {}
    from core import kernels  # here: kernels imports torch, which a tfidf-lr or vader run never needs

    plan = kernels.current()
    log(f"arithmetic on this CPU: {plan.why()}")
    return {"cpu": plan.cpu.describe(), "plan": plan.why(), "gops": plan.gops, "models": chosen}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.db = args.db or default_db()
    if args.input is not None and not args.text_col:
        raise InputError("--text-col is required when an INPUT file is given")
    root = args.models_dir or models_dir()
    names = resolve_names(args.models, root)
    models, run_names, arithmetic = {}, list(names), {}  # run_names: as the run records them, e.g. bert-cpu[int8]
    if args.engine == "local":  # the ray engine loads the models in its actors, not here
        log(f"loading models: {', '.join(names)}")
        models = {n: load_model(n, root) for n in names}
        arithmetic = choose_arithmetic(models, args.precision)
        run_names = [f"{n}[{args.precision}]" if args.precision in getattr(m, "precisions", ()) else n
                     for n, m in models.items()]
        for name, model in models.items():
            if args.compile and hasattr(model, "compile"):
                model.compile()
                log(f"{name}: compiled (the first batch takes 20-50 s longer)")
    elif args.precision != "auto" or args.compile:
        raise InputError("--precision and --compile are supported by the local engine only")

    run_id = uuid.uuid4().hex[:12]
    tally = Tally()
    status = "interrupted"
    started = time.perf_counter()
    with store.connect(args.db) as con:
        store.tune_for_bulk_writes(con)
        chunks, source = open_chunks(con, args)
        store.start_run(con, run_id, "score", args.corpus, source, run_names)
        try:
            if args.engine == "ray":
                score_ray(con, args, chunks, names, root, run_id, tally)
            else:
                score_local(con, args, chunks, models, run_id, tally)
            status = "finished"
        finally:
            elapsed = time.perf_counter() - started
            seconds = tally.timings.seconds
            store.finish_run(con, run_id, tally.rows_read, sum(tally.scored.values()), tally.rejected, elapsed,
                             status, {"read_seconds": seconds["read"], "model_seconds": tally.timings.model_total(),
                                      "db_seconds": seconds["db"], "engine": args.engine,
                                      "arithmetic": arithmetic})
            peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            for name, n in tally.scored.items():
                if n >= 100 and args.precision == "auto":  # too few rows make a meaningless speed figure
                    store.record_speed(con, name, args.corpus, n, seconds[f"model:{name}"], peak_mb)
            summary = store.prediction_counts(con, args.corpus)
            reasons = store.count_rejects(con, args.corpus)
    store.publish(args.db)
    report(names, tally, elapsed, peak_mb, summary, reasons)
    return 0


def report(names: list[str], tally: Tally, elapsed: float, peak_mb: float, summary: pd.DataFrame,
           reasons: pd.DataFrame) -> None:
    log(f"read {tally.rows_read:,} rows in {elapsed:.1f} s ({tally.rows_read / max(elapsed, 1e-9):,.0f} rows/s); "
        f"rejected {tally.rejected:,} this run; {tally.skipped:,} predictions already stored were skipped; "
        f"peak memory {peak_mb:,.0f} MB")
    log(f"time: {tally.timings.summary(elapsed)}")
    for name in names:
        s = tally.timings.seconds[f"model:{name}"]
        rate = f", {tally.scored[name] / s:,.0f} reviews/s ({s:,.1f} s)" if s > 0 else ""
        log(f"  {name}: {tally.scored[name]:,} new predictions{rate}")
    log("predictions stored per model: " + ", ".join(f"{m}={n:,}" for m, n in summary.itertuples(index=False)))
    if len(reasons):
        log("rejects stored for this corpus: " + ", ".join(f"{r}={n:,}" for r, n in reasons.itertuples(index=False)))


if __name__ == "__main__":
    run_main(main)
