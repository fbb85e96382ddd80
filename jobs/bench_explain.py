"""How faithful and how costly each model's explanations are: the deletion test on a seeded sample of
labelled reviews. For each review, delete the k words with the largest attribution toward the predicted
class, then k words drawn at random, and compare how far P(positive) moves (core.explain.deletion_test);
explanations a model really uses move it much further. Prints one markdown row per model: both mean shifts,
their ratio, the mean convergence error, and seconds per review.

    python -m jobs.bench_explain --models tfidf-lr,vader --n 500
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from core import kernels, store
from core.explain import deletion_test
from core.models import load_model, resolve_names
from core.paths import default_db
from jobs.common import at_least, log, run_main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m jobs.bench_explain", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="all", help="comma-separated trained model names, or 'all' (default)")
    ap.add_argument("--corpus", default="imdb", help="corpus of the reviews (default imdb)")
    ap.add_argument("--split", default="test", help="its split (default test)")
    ap.add_argument("--n", type=at_least(1), default=500, help="reviews, a seeded sample (default 500)")
    ap.add_argument("--k", type=at_least(1), default=5, help="words deleted per review (default 5)")
    ap.add_argument("--seed", type=int, default=0, help="the sample's and the random words' seed (default 0)")
    ap.add_argument("--db", default=None, help="database (default data/reviews.duckdb)")
    ap.add_argument("--models-dir", default=None, help="trained models folder (default data/models)")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with store.connect(args.db or default_db(), read_only=True) as con:
        reviews = store.load_split(con, args.corpus, args.split)
    if reviews.empty:
        log(f"no labelled reviews in {args.corpus}/{args.split}")
        return 2
    sample = reviews.sample(min(args.n, len(reviews)), random_state=args.seed)
    texts = sample["text"].tolist()
    log(f"{len(texts):,} reviews of {args.corpus}/{args.split}, k={args.k}; CPU: {kernels.current().cpu.describe()}")
    print("| model | method | reviews | top-k shift | random-k shift | ratio | mean delta | s/review |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    root = Path(args.models_dir) if args.models_dir else None
    for name in resolve_names(args.models, root):
        model = load_model(name, root)
        started = time.perf_counter()
        explanations = model.explain(texts)
        seconds = time.perf_counter() - started
        result = deletion_test(model.predict_proba, explanations, texts, args.k, args.seed, seconds)
        delta = float(np.mean([e.delta for e in explanations]))
        print(f"| {name} | {explanations[0].method} | {result.n:,} | {result.top_shift:.4f} | "
              f"{result.random_shift:.4f} | {result.ratio:.1f} | {delta:.4f} | {result.seconds_per_review:.3f} |",
              flush=True)
    return 0


if __name__ == "__main__":
    run_main(main)
