"""Train one model on a corpus's train split, select on its validation split, save it, record it in DuckDB.

    python -m jobs.train --model tfidf-lr --name tfidf-lr
    python -m jobs.train --model lstm --name lstm-small --preset quick --set hidden=64
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from core import store
from core.corpus import ensure_imdb
from core.errors import InputError
from core.models import KINDS, dir_bytes, model_class
from core.paths import default_db, models_dir
from jobs.common import log, run_main


def parse_overrides(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise InputError(f"--set expects KEY=VALUE, got {pair!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m jobs.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, choices=sorted(KINDS), help="model kind")
    p.add_argument("--name", help="name of the trained model (folder under data/models/); default: KIND-PRESET")
    p.add_argument("--corpus", default="imdb", help="corpus whose train/validation splits to use (default imdb)")
    p.add_argument("--preset", default="quick", help="quick (minutes on 2 CPU cores) or full; kinds may add more")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one hyperparameter of the preset (repeatable; values parsed as JSON)")
    p.add_argument("--max-train-rows", type=int, default=None,
                   help="train on a seeded random sample of at most this many train reviews")
    p.add_argument("--db", type=Path, default=None, help="DuckDB file (default data/reviews.duckdb)")
    p.add_argument("--models-dir", type=Path, default=None, help="where trained models go (default data/models)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    db, root = args.db or default_db(), args.models_dir or models_dir()
    name = args.name or f"{args.model}-{args.preset}"
    overrides = parse_overrides(args.overrides)
    cls = model_class(args.model)

    with store.connect(db) as con:  # read the splits, then let go of the file while training
        if args.corpus == "imdb":
            ensure_imdb(con)
        train, val = store.load_split(con, args.corpus, "train"), store.load_split(con, args.corpus, "validation")
    if train.empty or val.empty:
        raise InputError(f"corpus {args.corpus!r} has no labelled train/validation split in {db}")
    if args.max_train_rows and len(train) > args.max_train_rows:
        train = train.sample(n=args.max_train_rows, random_state=0).reset_index(drop=True)
    log(f"training {args.model} {name!r} (preset {args.preset}) on {len(train):,} train / {len(val):,} "
        f"validation reviews of {args.corpus}")

    start = time.perf_counter()
    model, history, hyperparams = cls.fit(train, val, args.preset, overrides, log)
    seconds = time.perf_counter() - start

    target = root / name
    tmp = root / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save(tmp)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)

    info = {"model": name, "kind": args.model, "preset": args.preset, "hyperparams": hyperparams,
            "n_params": model.n_params(), "bytes_on_disk": dir_bytes(target), "train_seconds": seconds,
            "device": getattr(model, "device", "cpu"), "train_rows": hyperparams.get("train_rows", len(train))}
    with store.connect(db) as con:
        store.record_model(con, {**info, "device": str(info["device"])}, history)
    store.publish(db)
    log(f"saved {target} ({info['bytes_on_disk'] / 1e6:.1f} MB, {info['n_params']:,} parameters) "
        f"in {seconds:.0f} s")
    return 0


if __name__ == "__main__":
    run_main(main)
