"""Measure every model on every labelled corpus and store metrics and curve points for the dashboard.

    python -m jobs.evaluate --db data/reviews.duckdb [--corpus NAME] [--bootstrap 200]

For each corpus with labels (the imdb validation and test splits; a user corpus as a whole, 'all'):
accuracy, precision, recall, F1, ROC-AUC, PR-AUC, Brier score, expected calibration error, the confusion
matrix at threshold 0.5, bootstrap 95% intervals for accuracy and ROC-AUC, and ROC / precision-recall /
reliability curve points. Reviews labelled 'neutral' (3 stars) are left out of these binary metrics.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from core import store
from core.metrics import binary_metrics, bootstrap_ci, curve_points
from core.paths import default_db
from jobs.common import log, run_main


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m jobs.evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--db", type=Path, default=None, help="DuckDB file (default data/reviews.duckdb)")
    p.add_argument("--corpus", help="evaluate only this corpus (default: every labelled corpus)")
    p.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples for the 95%% intervals")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    db = args.db or default_db()
    with store.connect(db) as con:
        sets = store.evaluation_sets(con, args.corpus)
        if not sets:
            log(f"nothing to evaluate in {db}: no labelled reviews with predictions"
                + (f" in corpus {args.corpus!r}" if args.corpus else ""))
        for corpus, split in sets:
            frame = store.labelled_predictions(con, corpus, split)
            for model, rows in frame.groupby("model", sort=True):
                y, p = rows["y"].to_numpy(), rows["p_positive"].to_numpy()
                row = {**binary_metrics(y, p), **bootstrap_ci(y, p, args.bootstrap)}
                store.replace_metrics(con, corpus, split, model, row, curve_points(y, p))
                auc = f"{row['roc_auc']:.4f}" if row["roc_auc"] is not None else "n/a"
                log(f"{corpus}/{split} {model:>16}: n={row['n']:,} accuracy {row['accuracy']:.4f} "
                    f"[{row['accuracy_lo']:.4f}, {row['accuracy_hi']:.4f}] ROC-AUC {auc} F1 {row['f1']:.4f} "
                    f"ECE {row['ece']:.4f}")
        for corpus, split in sets:
            print(markdown_leaderboard(store.leaderboard(con, corpus, split), f"{corpus} / {split}"))
    store.publish(db)
    return 0


HEADER = ["model", "accuracy [95% CI]", "ROC-AUC", "F1", "parameters", "on disk (MB)", "trained on",
          "training (s)", "scoring reviews/s"]


def markdown_leaderboard(board: pd.DataFrame, title: str) -> str:
    """The README's table: accuracy [95% CI], ROC-AUC, parameters, size, training time, scoring speed."""
    def num(v, fmt: str) -> str:
        return "" if pd.isna(v) else format(v, fmt)

    lines = [f"\n{title}\n", "| " + " | ".join(HEADER) + " |", "| --- |" + " ---: |" * (len(HEADER) - 1)]
    for r in board.itertuples():
        cells = [r.model, f"{r.accuracy:.4f} [{num(r.accuracy_lo, '.4f')}, {num(r.accuracy_hi, '.4f')}]",
                 num(r.roc_auc, ".4f"), num(r.f1, ".4f"), num(r.n_params, ",.0f"),
                 num(r.bytes_on_disk / 1e6, ",.1f"), num(r.train_rows, ",.0f"), num(r.train_seconds, ",.0f"),
                 num(r.rows_per_s, ",.0f")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    run_main(main)
