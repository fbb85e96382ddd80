"""Why the models read a review as they did, or what drives a corpus's sentiment, on the command line.

    python -m jobs.explain --corpus imdb --review-id imdb-00002 [--models tfidf-lr,vader]
    python -m jobs.explain --text "The plot was thin, but the acting was wonderful." --models all
    python -m jobs.explain --corpus imdb --split test --drivers --model tfidf-lr [--by label] [--csv drivers.csv]
    python -m jobs.explain --corpus drugs --split test --drivers --model tfidf-lr --slice "condition=Birth Control"

A review: its text, then per model its P(positive), the method, the reference P and the convergence error,
and the words that push hardest toward positive and toward negative with their weights (core.explain).
--drivers: the terms most typical of negative against positive reviews (core.drivers; log-odds with an
informative Dirichlet prior, z and 95% interval) on a uniform sample of the split, as the Drivers page shows;
with --slice, the terms typical of one slice's negative (--side) reviews against the rest's.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from core import drivers as drv
from core import store
from core.errors import InputError
from core.models import load_model, resolve_names
from core.paths import default_db
from jobs.common import at_least, log, run_main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m jobs.explain", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    what = ap.add_mutually_exclusive_group(required=True)
    what.add_argument("--review-id", help="a stored review of --corpus to explain")
    what.add_argument("--text", help="a review, given here, to explain")
    what.add_argument("--drivers", action="store_true", help="the terms that drive --corpus's sentiment")
    ap.add_argument("--corpus", help="the corpus of --review-id or --drivers")
    ap.add_argument("--split", default="all", help="--drivers: the split ('all': a corpus without splits)")
    ap.add_argument("--models", default="all", help="models that explain a review (comma list or 'all', default)")
    ap.add_argument("--model", help="--drivers: the model whose predictions make the sides (with --by predicted)")
    ap.add_argument("--by", choices=("predicted", "label"), default="predicted",
                    help="--drivers: sides by the model's prediction (default) or by the true label")
    ap.add_argument("--slice", metavar="COLUMN=VALUE",
                    help="--drivers: the terms typical of one slice's reviews (of --side) against the rest's")
    ap.add_argument("--side", choices=("negative", "positive", "all"), default="negative",
                    help="--drivers --slice: which reviews of the slice and of the rest are compared (default negative)")
    ap.add_argument("--sample", type=at_least(10), default=drv.SAMPLE,
                    help=f"--drivers: reviews counted per side (default {drv.SAMPLE})")
    ap.add_argument("--top", type=at_least(1), default=15, help="terms or words listed per side (default 15)")
    ap.add_argument("--csv", help="--drivers: also write the whole table to this CSV file")
    ap.add_argument("--db", default=None, help="database (default data/reviews.duckdb)")
    ap.add_argument("--models-dir", default=None, help="trained models folder (default data/models)")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    db = Path(args.db) if args.db else default_db()
    if (args.review_id or args.drivers) and not args.corpus:
        raise InputError("--review-id and --drivers need --corpus")
    if (args.review_id or args.drivers) and not db.exists():
        raise InputError(f"{db}: no such database; run jobs.score first")
    if args.drivers:
        return drivers(args, db)
    text = args.text
    if args.review_id:
        with store.connect(db, read_only=True) as con:
            found = store.review(con, args.corpus, args.review_id)
        if found is None:
            raise InputError(f"no review {args.review_id!r} in corpus {args.corpus!r} of {db}")
        text = found["text"]
        print(f"{args.review_id} · label {found['label']} · split {found['split']}")
    print(text, end="\n\n")
    root = Path(args.models_dir) if args.models_dir else None
    for name in resolve_names(args.models, root):
        ex = load_model(name, root).explain([text])[0]
        print(f"{name}: P(positive) {ex.p:.3f} ({ex.method}; reference P {ex.base:.3f}, error {ex.delta:.4f})")
        for note in ex.notes:
            print(f"  note: {note}")
        for side, toward in (("toward positive", 1.0), ("toward negative", -1.0)):
            words = ", ".join(f"{text[s:e]} {w:+.3f}" for s, e, w in ex.top(args.top, toward))
            print(f"  {side}: {words or '-'}")
    return 0


def drivers(args: argparse.Namespace, db: Path) -> int:
    if args.by == "predicted" and not args.model:
        raise InputError("--drivers --by predicted needs --model (or use --by label)")
    with store.connect(db, read_only=True) as con:
        names = store.reads.models(con, args.corpus)
        model = args.model or (names[0] if names else None)
        if model not in names:
            raise InputError(f"no predictions of {model!r} on corpus {args.corpus!r}; scored: {', '.join(names)}")
        if args.slice:
            cut = slice_filter(con, args.corpus, args.slice)
            side = None if args.side == "all" else args.side
            a, b = drv.Group((cut,), side=side), drv.Group(outside=cut, side=side)
            titles = (f"typical of {args.slice}", "typical of the rest")
        else:
            a, b = drv.Group(side="negative"), drv.Group(side="positive")
            titles = ("toward negative", "toward positive")
        table, sizes = drv.compare(con, args.corpus, args.split, model, a, b, args.by, args.sample)
    if not sizes["a"] or not sizes["b"]:
        raise InputError(f"no reviews on one side ({sizes['a']:,} against {sizes['b']:,}) of "
                         f"{args.corpus}/{args.split} scored by {model}")
    log(f"{sizes['a']:,} reviews sampled {titles[0]}, {sizes['b']:,} {titles[1]} (sides by {args.by})")
    for title, rows in zip(titles, (table.head(args.top), table.iloc[::-1].head(args.top)), strict=True):
        print(f"\n{title}\n\n| term | uses, first | uses, second | z | log-odds 95% |\n| --- | ---: | ---: | ---: | ---: |")
        for r in rows.itertuples():
            print(f"| {r.term} | {r.count_a:,} | {r.count_b:,} | {r.z:.1f} | {r.lo:+.2f} to {r.hi:+.2f} |")
    if args.csv:
        table.to_csv(args.csv, index=False)
        log(f"wrote {len(table):,} terms to {args.csv}")
    return 0


def slice_filter(con, corpus: str, spec: str) -> drv.FieldFilter:
    """The filter of ``COLUMN=VALUE`` (a value as the Slices page names it), checked against the corpus."""
    field, sep, value = spec.partition("=")
    kinds = store.reads.field_kinds(con, corpus)
    if not sep or field not in kinds:
        raise InputError(f"--slice {spec!r}: give COLUMN=VALUE with a kept column of {corpus}: {', '.join(kinds)}")
    cut = store.reads.slice_def(con, corpus, field, kinds[field]).slice_filter(value)
    if cut is None:
        raise InputError(f"--slice {spec!r}: '(missing)' and numeric '(other)' cannot be compared; name a value")
    return cut


if __name__ == "__main__":
    run_main(main)
