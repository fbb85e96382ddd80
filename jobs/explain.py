"""Why the models read a review as they did, or what drives a corpus's sentiment, on the command line.

    python -m jobs.explain --corpus imdb --review-id imdb-00002 [--models tfidf-lr,vader]
    python -m jobs.explain --text "The plot was thin, but the acting was wonderful." --models all
    python -m jobs.explain --corpus imdb --split test --drivers --model tfidf-lr [--by label] [--csv drivers.csv]

A review: its text, then per model its P(positive), the method, the reference P and the convergence error,
and the words that push hardest toward positive and toward negative with their weights (core.explain).
--drivers: the terms most typical of negative against positive reviews (core.drivers; log-odds with an
informative Dirichlet prior, z and 95% interval) on a uniform sample of the split, as the Drivers page shows.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from core import store
from core.drivers import log_odds, term_counts
from core.errors import InputError
from core.models import load_model, resolve_names
from core.paths import default_db
from core.store import review_rows
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
    ap.add_argument("--sample", type=at_least(10), default=5_000, help="--drivers: reviews counted (default 5000)")
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
        sample = review_rows.sample_texts(con, args.corpus, args.split, model, args.sample)
    if sample.empty:
        raise InputError(f"no reviews of {args.corpus}/{args.split} scored by {model}")
    side = sample["predicted"] if args.by == "predicted" else sample["label"]
    negative, positive = (sample.loc[side == s, "text"].tolist() for s in ("negative", "positive"))
    log(f"{len(sample):,} reviews sampled ({len(negative):,} negative, {len(positive):,} positive by {args.by})")
    table = log_odds(term_counts(negative), term_counts(positive))
    for title, rows in (("toward negative", table.head(args.top)), ("toward positive", table.iloc[::-1].head(args.top))):
        print(f"\n{title}\n\n| term | uses, negative | uses, positive | z | log-odds 95% |\n| --- | ---: | ---: | ---: | ---: |")
        for r in rows.itertuples():
            print(f"| {r.term} | {r.count_a:,} | {r.count_b:,} | {r.z:.1f} | {r.lo:+.2f} to {r.hi:+.2f} |")
    if args.csv:
        table.to_csv(args.csv, index=False)
        log(f"wrote {len(table):,} terms to {args.csv}")
    return 0


if __name__ == "__main__":
    run_main(main)
