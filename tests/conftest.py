"""Shared fixtures: a real DuckDB file built by the real jobs from real IMDB reviews.

Every test writes under pytest's tmp dirs; the downloaded IMDB wheel is cached in data/downloads.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from core import store
from jobs import evaluate, score, train

HOSTILE = ["<img src=x onerror=alert(1)>", "'; DROP TABLE predictions; --", "**bold** <script>alert('x')</script>"]


@dataclass
class Workspace:
    db: Path            # DuckDB file: imdb corpus + corpus 'sample' scored by tfidf-lr and vader, evaluated
    models_dir: Path    # trained tfidf-lr (small, quick) ; vader is built in
    csv: Path           # the labelled sample CSV (columns id, review, sentiment) that was scored
    n_rows: int         # data rows in that CSV


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sentiment")
    # Jobs and the dashboard find models and the database through these; tests pass paths explicitly too.
    os.environ["SENTIMENT_DATA_DIR"] = str(root)
    os.environ["SENTIMENT_MODELS_DIR"] = str(root / "models")
    return root


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


@pytest.fixture(scope="session")
def scored_db(session_dir: Path) -> Workspace:
    """The whole spine, run once: ingest imdb, train tfidf-lr, score a labelled CSV, evaluate."""
    db, models = session_dir / "reviews.duckdb", session_dir / "models"
    assert train.main(["--model", "tfidf-lr", "--name", "tfidf-lr", "--db", str(db), "--models-dir", str(models),
                       "--max-train-rows", "4000"]) == 0
    with store.connect(db) as con:
        test = con.execute("SELECT review_id, text, label FROM reviews WHERE corpus = 'imdb' AND split = 'test' "
                           "ORDER BY source_row LIMIT 300").fetchall()
    rows = [[f"s{i:04d}", text, label] for i, (_, text, label) in enumerate(test)]
    rows += [[f"h{i}", text, "negative"] for i, text in enumerate(HOSTILE)]
    path = write_csv(session_dir / "sample.csv", ["id", "review", "sentiment"], rows)
    assert score.main([str(path), "--db", str(db), "--corpus", "sample", "--text-col", "review", "--id-col", "id",
                       "--label-col", "sentiment", "--models", "tfidf-lr,vader", "--models-dir", str(models)]) == 0
    assert evaluate.main(["--db", str(db), "--bootstrap", "50"]) == 0
    return Workspace(db, models, path, len(rows))
