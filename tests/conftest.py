"""Shared fixtures: a real DuckDB file built by the real jobs from real IMDB reviews.

Every test writes under pytest's tmp dirs; the downloaded IMDB wheel is cached in data/downloads.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from jobs import evaluate, score, train
from tests.helpers import HOSTILE, JOIN_TEXTS, SHOP_HEADER, Workspace, q, shop_rows, write_csv


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("sentiment")
    # Jobs and the dashboard find models and the database through these; tests pass paths explicitly too.
    # Undone when the session ends.
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SENTIMENT_DATA_DIR", str(root))
        env.setenv("SENTIMENT_MODELS_DIR", str(root / "models"))
        yield root


@pytest.fixture(scope="session")
def scored_db(session_dir: Path) -> Workspace:
    """The whole spine, run once: ingest imdb, train tfidf-lr, score a labelled CSV, evaluate."""
    db, models = session_dir / "reviews.duckdb", session_dir / "models"
    assert train.main(["--model", "tfidf-lr", "--name", "tfidf-lr", "--db", str(db), "--models-dir", str(models),
                       "--max-train-rows", "4000"]) == 0
    test = q(db, f"SELECT review_id, text, label FROM reviews{JOIN_TEXTS} WHERE corpus = 'imdb' AND split = 'test' "
                 "ORDER BY source_row LIMIT 300")
    rows = [[f"s{i:04d}", text, label] for i, (_, text, label) in enumerate(test)]
    rows += [[f"h{i}", text, "negative"] for i, text in enumerate(HOSTILE)]
    path = write_csv(session_dir / "sample.csv", ["id", "review", "sentiment"], rows)
    assert score.main([str(path), "--db", str(db), "--corpus", "sample", "--text-col", "review", "--id-col", "id",
                       "--label-col", "sentiment", "--models", "tfidf-lr,vader", "--models-dir", str(models)]) == 0
    assert evaluate.main(["--db", str(db), "--bootstrap", "50"]) == 0
    return Workspace(db, models, path, len(rows))


@pytest.fixture
def shop(scored_db, tmp_path) -> tuple[Path, Path, Path]:
    """A shop export of 60 real reviews (core columns plus product, category, dates, votes...): the file, a
    database path for it, the models folder."""
    texts = [t for (t,) in q(scored_db.db, f"SELECT text FROM reviews{JOIN_TEXTS} WHERE corpus = 'sample' "
                                           "ORDER BY source_row LIMIT 60")]
    return write_csv(tmp_path / "shop.csv", SHOP_HEADER, shop_rows(texts)), tmp_path / "r.duckdb", scored_db.models_dir


@pytest.fixture(scope="session")
def drugs_db(scored_db, session_dir: Path) -> Path:
    """The README's drug-review example: 979 real Drugs.com reviews (kept columns drugName, condition, date,
    usefulCount) written by jobs.examples, scored by the session's tfidf-lr and VADER, evaluated."""
    from jobs import examples

    path, db = session_dir / "drugs.csv", session_dir / "drugs.duckdb"
    assert examples.main(["drugs", "--out", str(path)]) == 0
    assert score.main([str(path), "--db", str(db), "--corpus", "drugs", "--text-col", "review", "--id-col",
                       "uniqueID", "--label-col", "rating", "--split-col", "split", "--models", "tfidf-lr,vader",
                       "--models-dir", str(scored_db.models_dir)]) == 0
    assert evaluate.main(["--db", str(db), "--bootstrap", "20"]) == 0
    return db
