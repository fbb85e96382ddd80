"""Score a corpus with one or more models and store every prediction in DuckDB.

    python -m jobs.score reviews.csv --db data/reviews.duckdb --corpus shop --text-col body \\
        --id-col id --label-col stars --label-kind stars --models all
    python -m jobs.score 'dump/*.json.gz' --corpus amazon --text-col summary,reviewText \\
        --label-col overall --label-kind stars                       # a folder or a glob: one file per category
    python -m jobs.score train.csv --corpus polarity --no-header --text-col 2,3 --label-col 1 \\
        --label-map 1=negative,2=positive --unescape                 # Zhang et al.'s Amazon/Yelp polarity
    python -m jobs.score dump.json.gz --inspect                      # what is in it, and the command to import it
    python -m jobs.score --db data/reviews.duckdb --corpus imdb --split test --models all   # stored corpus

INPUT is CSV/TSV (with a header or --no-header; the delimiter is sniffed), JSON Lines (.jsonl, .ndjson, .json;
nested fields by dotted path, review.body), fastText lines (__label__X text: columns label and text) or
Parquet; gzip, bz2, xz or zstd compressed (told by the file's first bytes, whatever its name); UTF-8, UTF-16
with its byte-order mark, or --encoding. A folder or a glob reads every file, each fingerprinted and resumable
on its own, and stores each review's file name in the column `file`; a file added later is read by the next
run, and a file already read whole and scored is skipped.

The input (any size) is streamed in chunks (core.ingest does the work; this is its command
line). Each chunk's reviews and rejects are committed in one transaction, then each model's predictions in
batches of a few seconds, so an interrupted run (Ctrl-C, kill -9) loses at most the batch in flight; run
the same command again and it continues where it stopped, scoring only what is missing. Rows that cannot be
scored go to the `rejects` table with their reason. Without --id-col a review's id is the file's
fingerprint and its row (FINGERPRINT:ROW): the same file twice is harmless, another file never collides.

The file's other columns (product, category, date, verified, votes...) are stored beside each review in
`review_fields` (all of them, or those --keep-cols names), each read as the kind core.columns infers from its
first chunk (boolean, numeric, datetime, categorical, text) or --col-type says. A cell that does not parse
as its column's kind keeps its raw text and no typed value, and is counted in the final summary.
"""

from __future__ import annotations

import argparse
import glob
import resource
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd

from core import store
from core.columns import KINDS, parse_kinds
from core.errors import InputError
from core.ingest import Ingest, Tally, recorded_run
from core.inspection import command, inspect, render
from core.local_engine import score_local
from core.models import load_model, model_facts, resolve_names, with_members
from core.paths import default_db, models_dir
from core.readers import FORMATS, Columns, Format, expand_input
from jobs.common import at_least, log, run_main

PRECISIONS = ["auto", "fp32", "int8", "bf16", "float"]  # every precision a model kind declares, and auto


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m jobs.score", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", nargs="?",
                   help="a file, a folder or a quoted glob ('dump/*.json.gz'); omit to score the reviews already "
                        "stored for --corpus (e.g. imdb)")
    p.add_argument("--db", type=Path, default=None, help="DuckDB file (default data/reviews.duckdb)")
    p.add_argument("--corpus", help="corpus name the reviews are stored under (required, except with --inspect)")
    p.add_argument("--inspect", action="store_true",
                   help="read the first records of INPUT, print each column's kind with examples, the guessed text, "
                        "label, id and date columns, and the command that imports it; nothing is written")
    p.add_argument("--text-col",
                   help="column holding the review text; several, comma-separated, are joined title first "
                        "(summary,reviewText); without a header, column numbers from 1 (2,3). Default: the guess "
                        "--inspect prints, when it is unambiguous")
    p.add_argument("--id-col", help="column holding a unique review id (default: the row position)")
    p.add_argument("--label-col", help="column holding the true label (optional)")
    p.add_argument("--label-kind", choices=["text", "stars"], default="text",
                   help="text: positive/negative/neutral, pos/neg, 1/0 in any case; "
                        "stars: 1-2 negative, 3 neutral (scored, left out of binary metrics), 4-5 positive (5.0 too)")
    p.add_argument("--label-map", metavar="RAW=LABEL,...",
                   help="read the label column's values through this map, e.g. 1=negative,2=positive (Amazon/Yelp "
                        "polarity, fastText __label__1/2); a value not in it is a counted reject")
    p.add_argument("--format", choices=FORMATS,
                   help="the file format, when neither its name nor its first bytes say it (default: detected)")
    p.add_argument("--no-header", action="store_true",
                   help="CSV/TSV without a header row: columns are numbered from 1 (--text-col 2,3 --label-col 1)")
    p.add_argument("--delimiter", help="CSV field delimiter (default: sniffed from the first lines; tab for .tsv)")
    p.add_argument("--encoding",
                   help="the text encoding of a legacy export (cp1252, latin-1, ...); default UTF-8, and UTF-16 when "
                        "the file starts with its byte-order mark")
    p.add_argument("--unescape", action="store_true",
                   help="turn \\n, \\t, \\\\ and \\\" written in the text back into the characters (dumps that "
                        "escape newlines)")
    p.add_argument("--split-col",
                   help="column holding each review's split: train, validation (val, dev) or test; default: none, "
                        "and jobs.train draws a stratified 80/10/10 split of the labelled reviews once")
    p.add_argument("--keep-cols", default=None, metavar="A,B|none",
                   help="the file's other columns to store beside each review (default: all of them; none: none)")
    p.add_argument("--col-type", action="append", default=[], metavar="COLUMN=KIND",
                   help=f"read a kept column as KIND ({', '.join(KINDS)}) instead of the inferred one (repeatable)")
    p.add_argument("--split", help="with no INPUT: score only this split of the stored corpus (e.g. test)")
    p.add_argument("--models", default="all",
                   help="comma-separated model names, 'all' (default), or 'none' to import the file without "
                        "scoring it (train on it first, score later)")
    p.add_argument("--models-dir", type=Path, default=None, help="trained models folder (default data/models)")
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="the arithmetic of the models that offer a choice (the BERT family). auto (default): "
                        "what measures fastest on this CPU: bert bf16 where this CPU has native bf16 and it measures "
                        "faster than fp32, else fp32; "
                        "bitbert int8 x ternary integer kernels where one is at least as fast as fp32 here, else "
                        "float. bert: fp32 | int8 (W8A8, the fastest integer kernel here) | bf16; "
                        "bitbert: int8 | float (the training arithmetic). The choice and why are printed and "
                        "recorded in the runs table; jobs.bench measures speed and accuracy of each")
    p.add_argument("--compile", action="store_true",
                   help="compile the BERT-family models with TorchInductor (local engine): tens of seconds once, "
                        "then faster on CPU in fp32 and int8 (jobs.bench measures it; docs/results); worth it from "
                        "a few thousand reviews")
    p.add_argument("--chunk-rows", type=at_least(1), default=2_000,
                   help="rows read and stored per transaction (default 2000)")
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
    db = args.db or default_db()
    if args.inspect:
        return inspect_input(args)
    if not args.corpus:
        raise InputError("--corpus is required: the name the reviews are stored under")
    paths = expand_input(args.input) if args.input else []
    columns, fmt = check_input(args, paths)
    root = args.models_dir or models_dir()
    names = resolve_names(args.models, root)
    if (full := with_members(names, root)) != names:
        log(f"stacks are computed from their members' predictions: scoring {', '.join(full)}")
        names = full
    models, run_names, arithmetic = {}, list(names), {}  # run_names: as the run records them, e.g. bert-cpu[int8]
    if args.engine == "local":  # the ray engine loads the models in its actors, not here
        log(f"loading models: {', '.join(names)}" if names else "importing only (--models none): no model runs")
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

    tally = Tally()
    started = time.perf_counter()
    source = str(args.input) if args.input else f"stored:{args.corpus}" + (f":{args.split}" if args.split else "")
    with store.connect(db) as con:
        store.tune_for_bulk_writes(con)
        for name in names:  # a model trained into another database: its facts come from its model.json
            if not store.has_model(con, name):
                store.record_model(con, model_facts(name, root, models.get(name)), [])
        with (recorded_run(con, args.corpus, source, run_names, tally, started,
                           {"engine": args.engine, "arithmetic": arithmetic}) as run_id,
              Ingest(con, args.corpus, names, run_id, paths=paths, columns=columns, fmt=fmt, split=args.split,
                     chunk_rows=args.chunk_rows, tally=tally, name_files=_many(args.input), log=log) as job):
            if args.engine == "ray":
                from core import ray_engine  # imported only here: the local engine never imports ray

                ray_engine.score(job, names, root, address=args.ray_address, actors=args.ray_actors,
                                 actor_cpus=args.ray_actor_cpus, batch_rows=args.ray_batch_rows)
            else:
                score_local(job, models)
        elapsed = time.perf_counter() - started
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        for name, n in tally.scored.items():
            if n >= 100 and args.precision == "auto":  # too few rows make a meaningless speed figure
                store.record_speed(con, name, args.corpus, n, tally.timings.seconds[f"model:{name}"], peak_mb)
        summary = store.prediction_counts(con, args.corpus)
        reasons = store.rejects(con, args.corpus)
    store.publish(db, log)
    report(names, tally, elapsed, peak_mb, summary, reasons, job.fields)
    return 0


def _many(spec: str | None) -> bool:
    """Whether INPUT names a folder or a glob (each review then keeps its file's name)."""
    return spec is not None and (Path(spec).is_dir() or glob.has_magic(spec))


def read_format(args: argparse.Namespace) -> Format:
    delimiter = "\t" if args.delimiter in ("\\t", "tab") else args.delimiter  # a tab is hard to type
    if delimiter is not None and len(delimiter) != 1:
        raise InputError(f"--delimiter must be one character (or \\t), not {args.delimiter!r}")
    return Format(args.format, not args.no_header, delimiter, args.encoding, args.unescape)


def parse_label_map(spec: str | None) -> dict[str, str] | None:
    """``1=negative,2=positive`` -> {'1': 'negative', '2': 'positive'}; InputError naming a bad pair."""
    if spec is None:
        return None
    mapping = {}
    for pair in (p.strip() for p in spec.split(",") if p.strip()):
        raw, sep, label = pair.partition("=")
        label = label.strip().lower()
        if not sep or not raw.strip() or label not in ("positive", "negative", "neutral"):
            raise InputError(f"--label-map expects RAW=positive|negative|neutral pairs, got {pair!r}")
        mapping[raw.strip()] = label
    if not mapping:
        raise InputError("--label-map is empty")
    return mapping


def inspect_input(args: argparse.Namespace) -> int:
    if not args.input:
        raise InputError("--inspect needs an INPUT file, folder or glob")
    paths = expand_input(args.input)
    report = inspect(paths[0], read_format(args))
    given = args.input if len(paths) > 1 or _many(args.input) else None
    db = str(args.db) if args.db else "data/reviews.duckdb"
    print(render(report, command(report, args.corpus, db, given)))
    if len(paths) > 1:
        print(f"\n({len(paths)} files match; the first, {paths[0]}, was inspected)")
    return 0


def check_input(args: argparse.Namespace, paths: list[Path]) -> tuple[Columns | None, Format]:
    """The column mapping and reading options of INPUT (None without one); refuses contradictory options.
    Without --text-col, the guess of core.inspection is used when it is unambiguous, and said."""
    fmt = read_format(args)
    label_map = parse_label_map(args.label_map)
    if not paths:
        if (args.text_col or args.id_col or args.label_col or args.split_col or args.keep_cols or args.col_type
                or label_map):
            raise InputError("--text-col, --id-col, --label-col, --label-map, --split-col, --keep-cols and --col-type "
                             "describe an INPUT file; none was given")
        return None, fmt
    if args.split:
        raise InputError("--split selects stored reviews; it cannot be combined with an INPUT file")
    if not args.text_col:
        report = inspect(paths[0], fmt)
        guess = report.guess
        if not guess.unambiguous:
            raise InputError(f"{paths[0]}: no --text-col given, and the guess is not clear ("
                             + "; ".join(d for d in guess.doubts if d.startswith("text")) + "); "
                             f"python -m jobs.score {paths[0]} --inspect shows the columns")
        # the roles given on the command line stay as given; the others come from the guess
        taken = replace(guess, label=None if args.label_col else guess.label, id=None if args.id_col else guess.id)
        args.text_col, fmt = ",".join(guess.text), report.fmt
        if taken.label:
            args.label_col, args.label_kind, label_map = taken.label, taken.label_kind, taken.label_map
        args.id_col = args.id_col or taken.id
        chosen = [*taken.role_options(),
                  *[flag for flag, on in (("--no-header", not fmt.header), ("--unescape", fmt.unescape)) if on]]
        log(f"no --text-col given: using the guess {' '.join(chosen)} (--inspect shows why)")
    if args.split_col and not args.label_col:
        raise InputError("--split-col needs --label-col: a split is for learning from labels and measuring on them")
    try:
        kinds = parse_kinds(args.col_type)
    except ValueError as e:
        raise InputError(str(e)) from None
    keep = None  # every other column
    if args.keep_cols is not None:
        names = [c.strip() for c in args.keep_cols.split(",") if c.strip()]
        keep = () if [n.lower() for n in names] == ["none"] else tuple(names)
    if kinds and keep is not None and set(kinds) - set(keep):
        raise InputError(f"--col-type names {sorted(set(kinds) - set(keep))}, which --keep-cols does not keep")
    return Columns(args.text_col, args.id_col, args.label_col, args.label_kind, args.split_col, keep, kinds,
                   label_map), fmt


def report(names: list[str], tally: Tally, elapsed: float, peak_mb: float, summary: pd.DataFrame,
           reasons: pd.DataFrame, fields: dict[str, dict]) -> None:
    log(f"read {tally.rows_read:,} rows in {elapsed:.1f} s ({tally.rows_read / max(elapsed, 1e-9):,.0f} rows/s); "
        f"rejected {tally.rejected:,} this run; {tally.skipped:,} predictions already stored were skipped; "
        f"peak memory {peak_mb:,.0f} MB")
    log(f"time: {tally.timings.summary(elapsed)}")
    for name in names:
        s = tally.timings.seconds[f"model:{name}"]
        rate = f", {tally.scored[name] / s:,.0f} reviews/s ({s:,.1f} s)" if s > 0 else ""
        log(f"  {name}: {tally.scored[name]:,} new predictions{rate}")
    if fields:
        kept = []
        for name, how in fields.items():
            notes = [how["kind"], *([how["format"]] if how.get("format") else []),
                     *([f"{tally.unparsed[name]:,} unparsed"] if tally.unparsed[name] else [])]
            kept.append(f"{name} ({', '.join(notes)})")
        log("columns kept: " + ", ".join(kept))
    log("predictions stored per model: " + ", ".join(f"{m}={n:,}" for m, n in summary.itertuples(index=False)))
    if len(reasons):
        log("rejects stored for this corpus: " + ", ".join(f"{r}={n:,}" for r, n in reasons.itertuples(index=False)))


if __name__ == "__main__":
    run_main(main)
