"""Train one model on a corpus's train split, select on its validation split, save it, record it in DuckDB.

    python -m jobs.train --model tfidf-lr --name tfidf-lr
    python -m jobs.train --model lstm --name lstm-small --preset quick --set hidden=64
    python -m jobs.train --model tfidf-lr --name shop-tfidf-lr --corpus shop --balance
    python -m jobs.train --model stack --name stack-quick --set members=tfidf-lr,lstm-quick,bert-quick

Any labelled corpus can be learnt from: imdb (built in), or one imported from a file with jobs.score
(`--models none` imports without scoring). The first training on a corpus without a split draws one: a
seeded, stratified 80/10/10 train/validation/test split of its labelled reviews, stored with them, so
every later model and evaluation uses the same test reviews (core.splits). A file may bring its own split
column instead (jobs.score --split-col). Neutral reviews (3 stars) are left out of binary training.
"""

from __future__ import annotations

import argparse
import inspect
import json
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from core import status, store
from core.checkpoint import Checkpoint
from core.corpus import ensure_imdb
from core.errors import InputError
from core.models import KINDS, add_to_manifest, dir_bytes, load_model, model_class, model_kind, resolve_names
from core.paths import default_db, models_dir
from core.splits import balance, ensure_splits, sample
from jobs.common import at_least, log, run_main


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
    p.add_argument("--corpus", default="imdb",
                   help="labelled corpus whose train/validation splits to use (default imdb); a corpus imported "
                        "from a file gets its split drawn and stored at its first training")
    p.add_argument("--preset", default="quick", help="quick (minutes on 2 CPU cores) or full; kinds may add more")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one hyperparameter of the preset (repeatable; values parsed as JSON)")
    p.add_argument("--balance", action="store_true",
                   help="undersample the train split to equal positive and negative reviews (seeded)")
    p.add_argument("--max-train-rows", type=at_least(1), default=None,
                   help="train on a seeded, stratified sample of at most this many train reviews (after --balance)")
    p.add_argument("--db", type=Path, default=None, help="DuckDB file (default data/reviews.duckdb)")
    p.add_argument("--models-dir", type=Path, default=None, help="where trained models go (default data/models)")
    return p


def read_splits(db: Path, corpus: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The corpus's binary-labelled train and validation reviews, drawing its split first if it has none;
    InputError naming what is missing when nothing can be learnt from it."""
    with store.connect(db) as con:  # read the splits, then let go of the file while training
        if corpus == "imdb":
            ensure_imdb(con)
        elif not store.corpus_exists(con, corpus):
            raise InputError(f"no corpus {corpus!r} in {db}; import a labelled file first: python -m jobs.score "
                             f"FILE --corpus {corpus} --text-col TEXT --label-col LABEL --models none")
        drawn = ensure_splits(con, corpus)
        if drawn:
            log(f"{corpus}: split drawn and stored (stratified by label, seed 0): "
                + ", ".join(f"{s} {drawn.get(s, 0):,}" for s in ("train", "validation", "test")))
        train, val = store.load_split(con, corpus, "train"), store.load_split(con, corpus, "validation")
        counts = store.split_counts(con, corpus)
    for split, frame in (("train", train), ("validation", val)):
        if frame["y"].nunique() < 2:
            found = ", ".join(f"{r.split or 'no split'}/{r.label or 'unlabelled'} {r.n:,}"
                              for r in counts.itertuples()) or "no reviews"
            raise InputError(f"corpus {corpus!r} has no positive and negative reviews in its {split} split to "
                             f"learn from (it holds: {found}); import it with --label-col")
    return train, val


def member_predictions(db: Path, root: Path, corpus: str, val: pd.DataFrame, overrides: dict) -> pd.DataFrame:
    """``val`` with a column ``p:<member>`` per member of a stack (--set members=a,b,c): its stored
    predictions where it scored every validation review, else its predictions now (not stored: jobs.score
    stores a model's predictions)."""
    members = overrides.get("members")
    names = resolve_names(members if isinstance(members, str) else ",".join(members or []), root)
    if not names:
        raise InputError("a stack needs its members: --set members=a,b,c (trained model names)")
    if any(model_kind(n, root) == "stack" for n in names):
        raise InputError("a stack's members are models, not other stacks")
    overrides["members"] = names
    with store.connect(db) as con:
        stored = store.stored_predictions(con, corpus, val["review_id"].tolist())
    for name in names:
        mine = stored[stored["model"] == name].set_index("review_id")["p_positive"]
        if mine.index.isin(val["review_id"]).sum() < len(val):
            log(f"{name} has not scored the validation split of {corpus}: scoring {len(val):,} reviews "
                f"(python -m jobs.score --corpus {corpus} --models {name} stores them for every split)")
            val = val.assign(**{f"p:{name}": load_model(name, root).predict_proba(val["text"].tolist())})
        else:
            val = val.assign(**{f"p:{name}": val["review_id"].map(mine).to_numpy()})
    return val


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    db, root = args.db or default_db(), args.models_dir or models_dir()
    name = args.name or f"{args.model}-{args.preset}"
    overrides = parse_overrides(args.overrides)
    cls = model_class(args.model)
    presets = getattr(cls, "presets", None) or getattr(sys.modules[cls.__module__], "PRESETS", {})
    if presets and args.preset not in presets:
        raise InputError(f"{args.model} has no preset {args.preset!r}; its presets: {', '.join(presets)}")

    train, val = read_splits(db, args.corpus)
    if args.model == "stack":
        val = member_predictions(db, root, args.corpus, val, overrides)
    if args.balance:
        train = balance(train)
    if args.max_train_rows:
        train = sample(train, args.max_train_rows)
    classes = {label: int((train["y"] == y).sum()) for y, label in ((0, "negative"), (1, "positive"))}
    log(f"training {args.model} {name!r} (preset {args.preset}) on {len(train):,} train reviews of {args.corpus} "
        f"({classes['positive']:,} positive, {classes['negative']:,} negative), {len(val):,} validation")

    start = time.perf_counter()
    with status.training(root, name, args.model, args.preset) as note:  # the dashboard lists it meanwhile
        def progress(line: str) -> None:
            log(line)
            note(line)

        resumable = "checkpoint" in inspect.signature(cls.fit).parameters  # the neural kinds
        checkpoint = Checkpoint(root / f".{name}.checkpoint", {
            "kind": args.model, "preset": args.preset, "overrides": overrides, "corpus": args.corpus,
            "balance": args.balance, "max_train_rows": args.max_train_rows, "train": len(train), "val": len(val)})
        if resumable and checkpoint.stale():
            progress(f"{name}: its checkpoint is of other settings (kind, preset, --set, corpus or rows): "
                     "starting over")
            checkpoint.remove()
        extra = {"checkpoint": checkpoint} if resumable else {}
        model, history, hyperparams = cls.fit(train, val, args.preset, overrides, progress, **extra)
    seconds = time.perf_counter() - start  # of this process: a resumed run's earlier time is in its history

    target = root / name
    tmp = root / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save(tmp)

    learns = args.model != "vader"  # the lexicon learns nothing: validation only measures it
    provenance = {"trained_on": args.corpus if learns else None,
                  "train_rows": hyperparams.get("train_rows", len(train)) if learns else None,
                  "train_classes": classes if learns else None, "balanced": args.balance}
    facts = {"preset": args.preset, "hyperparams": hyperparams, "n_params": model.n_params(),
             "train_seconds": seconds, "device": str(getattr(model, "device", "cpu")),
             "trained_at": datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="seconds"), **provenance}
    add_to_manifest(tmp, **facts)  # every database the model later scores into records these (jobs.score)
    info = {"model": name, "kind": args.model, "bytes_on_disk": dir_bytes(tmp), **facts}
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    checkpoint.remove()
    with store.connect(db) as con:
        store.record_model(con, info, history, getattr(model, "loss_curve", None))
    store.publish(db, log)
    log(f"saved {target} ({info['bytes_on_disk'] / 1e6:.1f} MB, {info['n_params']:,} parameters) "
        f"in {seconds:.0f} s")
    return 0


if __name__ == "__main__":
    run_main(main)
