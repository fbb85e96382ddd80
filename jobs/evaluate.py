"""Measure every model on every labelled corpus and store metrics and curve points for the dashboard.

    python -m jobs.evaluate --db data/reviews.duckdb [--corpus NAME] [--bootstrap 200] [--fill]

For each corpus with labels (its validation and test splits; a corpus without a split as a whole, 'all'):
accuracy, precision, recall, F1, ROC-AUC, PR-AUC, Brier score, expected calibration error, the confusion
matrix at threshold 0.5, bootstrap 95% intervals for accuracy and ROC-AUC, and ROC / precision-recall /
reliability curve points. Reviews labelled 'neutral' (3 stars) are left out of these binary metrics.

Predictions whose probability is NaN, infinite or outside [0, 1] are left out and counted in the log (n is
what was evaluated). Undefined figures (ROC-AUC on one class; an interval on one review or --bootstrap 0)
are stored as NULL and printed as n/a.

The cross-corpus matrix: every model on every labelled corpus, on its test split (all its reviews where it
has no split), printed beside the corpus each model was trained on: how far a model carries out of the
domain it learnt. --fill first scores, with every trained model, what that matrix still lacks (only the
missing predictions, on the test split or the unsplit corpus), so one command fills it.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from core import store
from core.errors import InputError
from core.metrics import binary_metrics, bootstrap_ci, curve_points, valid_probabilities
from core.paths import default_db, models_dir
from jobs.common import at_least, log, run_main

INVALID = "invalid probabilities (nan, inf or outside [0, 1])"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m jobs.evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--db", type=Path, default=None, help="DuckDB file (default data/reviews.duckdb)")
    p.add_argument("--corpus", help="evaluate only this corpus (default: every labelled corpus)")
    p.add_argument("--bootstrap", type=at_least(0), default=200,
                   help="bootstrap resamples for the 95%% intervals (0: no intervals)")
    p.add_argument("--fill", action="store_true",
                   help="first score each labelled corpus's test split (all of a corpus without a split) with "
                        "every model that has no predictions there yet, so the cross-corpus matrix is complete")
    p.add_argument("--models-dir", type=Path, default=None, help="with --fill: trained models (default data/models)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    db = args.db or default_db()
    # store.connect creates a missing file (and folder); a mistyped path would then "evaluate" an empty new
    # database and leave it behind, so look before opening anything.
    if db.is_dir():
        raise InputError(f"{db} is a directory, not a DuckDB database file")
    if not db.exists():
        raise InputError(f"{db}: no such database; run jobs.score first")
    if args.fill:
        fill(db, args.corpus, args.models_dir or models_dir())
    with store.connect(db) as con:
        sets = store.evaluation_sets(con, args.corpus)
        if not sets:
            log(f"nothing to evaluate in {db}: no labelled reviews with predictions"
                + (f" in corpus {args.corpus!r}" if args.corpus else ""))
        for corpus, split in sets:
            frame = store.labelled_predictions(con, corpus, split)
            for model, rows in frame.groupby("model", sort=True):
                evaluate_model(con, corpus, split, str(model), rows["y"].to_numpy(),
                               rows["p_positive"].to_numpy(), args.bootstrap)
        for corpus, split in sets:
            print(markdown_leaderboard(store.leaderboard(con, corpus, split), f"{corpus} / {split}"))
        matrix = store.cross_corpus(con)
    if matrix["corpus"].nunique() > 1:
        print(markdown_matrix(matrix))
    store.publish(db, log)
    return 0


def fill(db: Path, only: str | None, root: Path) -> None:
    """Score what the cross-corpus matrix lacks: each labelled corpus's evaluation split, every trained model
    (predictions already stored are skipped, so a second --fill scores nothing)."""
    from core.ingest import Ingest, Tally, recorded_run
    from core.local_engine import score_local
    from core.models import load_model, resolve_names

    names = resolve_names("all", root)
    models = {n: load_model(n, root) for n in names}
    with store.connect(db) as con:
        store.tune_for_bulk_writes(con)
        for corpus, split in store.labelled_corpora(con):
            if only and corpus != only:
                continue
            log(f"--fill: scoring {corpus}/{split or 'all'} with the models that lack predictions there")
            tally = Tally()
            with (recorded_run(con, corpus, f"stored:{corpus}" + (f":{split}" if split else ""), names, tally,
                               time.perf_counter(), {"engine": "local"}) as run_id,
                  Ingest(con, corpus, names, run_id, split=split, tally=tally) as job):
                score_local(job, models)
            log(f"--fill: {corpus}: " + ", ".join(f"{n} {tally.scored[n]:,} new" for n in names))


def evaluate_model(con, corpus: str, split: str, model: str, y: np.ndarray, p: np.ndarray, n_boot: int) -> None:
    """Store one model's metrics and curves on one evaluation set, leaving out (and counting) bad probabilities."""
    where = f"{corpus}/{split} {model:>16}"
    ok = valid_probabilities(p)
    if not ok.all():
        bad = int((~ok).sum())
        if not ok.any():
            log(f"{where}: all {bad:,} predictions have {INVALID}; model skipped")
            return
        log(f"{where}: {bad:,} prediction{'s' if bad != 1 else ''} with {INVALID} left out")
        y, p = y[ok], p[ok]
    row = {**binary_metrics(y, p), **bootstrap_ci(y, p, n_boot)}
    store.replace_metrics(con, corpus, split, model, row, curve_points(y, p))
    log(f"{where}: n={row['n']:,} accuracy {fmt(row['accuracy'])} "
        f"{interval(row['accuracy_lo'], row['accuracy_hi'])} ROC-AUC {fmt(row['roc_auc'])} F1 {fmt(row['f1'])} "
        f"ECE {fmt(row['ece'])}")


def fmt(value: float | None, spec: str = ".4f") -> str:
    """A metric for people: "n/a" where it is undefined (one class, no bootstrap), NULL or NaN."""
    return "n/a" if value is None or pd.isna(value) else format(value, spec)


def interval(lo: float | None, hi: float | None) -> str:
    """A 95% interval for people: "[lo, hi]", or "[n/a]" where there is none."""
    return "[n/a]" if fmt(lo) == "n/a" or fmt(hi) == "n/a" else f"[{fmt(lo)}, {fmt(hi)}]"


HEADER = ["model", "accuracy [95% CI]", "ROC-AUC", "F1", "parameters", "on disk (MB)", "trained on", "train rows",
          "training (s)", "scoring reviews/s"]


def markdown_leaderboard(board: pd.DataFrame, title: str) -> str:
    """The README's table: accuracy [95% CI], ROC-AUC, parameters, size, training time, scoring speed."""
    def num(v, spec: str) -> str:  # a model's size or speed: blank where not recorded (vader has no training)
        return "" if pd.isna(v) else format(v, spec)

    lines = [f"\n{title}\n", "| " + " | ".join(HEADER) + " |", "| --- |" + " ---: |" * (len(HEADER) - 1)]
    for r in board.itertuples():
        cells = [r.model, f"{fmt(r.accuracy)} {interval(r.accuracy_lo, r.accuracy_hi)}",
                 fmt(r.roc_auc), fmt(r.f1), num(r.n_params, ",.0f"),
                 num(r.bytes_on_disk / 1e6, ",.1f"), "" if pd.isna(r.trained_on) else r.trained_on,
                 num(r.train_rows, ",.0f"), num(r.train_seconds, ",.0f"),
                 num(r.rows_per_s, ",.0f")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown_matrix(matrix: pd.DataFrame) -> str:
    """Trained-on x evaluated-on (store.cross_corpus): one row per model, one column per corpus (its test
    split, or all of it), accuracy (ROC-AUC) per cell; blank where the model was not evaluated there."""
    corpora = sorted(matrix["corpus"].unique())
    lines = ["\ncross-corpus accuracy (ROC-AUC), test split or all: rows = models, columns = evaluated on\n",
             "| model | trained on | train rows | " + " | ".join(corpora) + " |",
             "| --- | --- | ---: |" + " ---: |" * len(corpora)]
    for (model, trained_on, rows), cells in matrix.groupby(["model", "trained_on", "train_rows"], dropna=False,
                                                          sort=False):
        by = cells.set_index("corpus")
        values = [f"{fmt(by.at[c, 'accuracy'])} ({fmt(by.at[c, 'roc_auc'], '.3f')})" if pd.notna(by.at[c, "n"])
                  else "" for c in corpora]
        rows = "" if pd.isna(rows) else format(int(rows), ",")
        lines.append(f"| {model} | {'' if pd.isna(trained_on) else trained_on} | {rows} | " + " | ".join(values) + " |")
    return "\n".join(lines)

if __name__ == "__main__":
    run_main(main)
