"""Training on the user's own labelled corpus: import without scoring, a split drawn once and stored (or the
file's own split column), --balance, --max-train-rows, provenance of models, and the cross-corpus matrix."""

from __future__ import annotations

import doctest
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

import core.splits
from core import store
from core.errors import InputError
from core.splits import draw
from jobs import evaluate, score, train
from tests.helpers import JOIN_TEXTS, Workspace, q, write_csv


@pytest.fixture(scope="module")
def star_rows(scored_db) -> list[list]:
    """600 real IMDB reviews as a shop file with star ratings: 420 positive (4-5), 150 negative (1-2),
    30 neutral (3: a positive review's text), so classes are unbalanced as product reviews are."""
    pos = q(scored_db.db, f"SELECT text FROM reviews{JOIN_TEXTS} WHERE corpus = 'imdb' AND split = 'train' AND label = 'positive' "
                          "ORDER BY source_row LIMIT 450")
    neg = q(scored_db.db, f"SELECT text FROM reviews{JOIN_TEXTS} WHERE corpus = 'imdb' AND split = 'train' AND label = 'negative' "
                          "ORDER BY source_row LIMIT 150")
    rows = [[f"p{i}", t, 4 + i % 2] for i, (t,) in enumerate(pos[:420])]
    rows += [[f"n{i}", t, 1 + i % 2] for i, (t,) in enumerate(neg)]
    rows += [[f"m{i}", t, 3] for i, (t,) in enumerate(pos[420:])]
    return rows


@pytest.fixture
def ws(scored_db, tmp_path) -> Workspace:
    """A fresh database and models folder (imdb's tfidf-lr copied in), so models trained here stay here."""
    shutil.copytree(scored_db.models_dir / "tfidf-lr", tmp_path / "models" / "tfidf-lr")
    return Workspace(tmp_path / "r.duckdb", tmp_path / "models", scored_db.csv, scored_db.n_rows)


def import_shop(ws, path: Path, *extra: str) -> int:
    return score.main([str(path), "--db", str(ws.db), "--corpus", "shop", "--text-col", "review", "--id-col", "id",
                       "--label-col", "stars", "--label-kind", "stars", "--models", "none",
                       "--models-dir", str(ws.models_dir), *extra])


def train_shop(ws, name: str, *extra: str) -> int:
    return train.main(["--model", "tfidf-lr", "--name", name, "--corpus", "shop", "--db", str(ws.db),
                       "--models-dir", str(ws.models_dir), *extra])


def splits_of(db: Path, corpus: str = "shop") -> dict[str, str | None]:
    return dict(q(db, "SELECT review_id, split FROM reviews WHERE corpus = ?", [corpus]))


def test_doctests():
    assert doctest.testmod(core.splits).failed == 0


def test_draw_is_stratified_seeded_and_independent_of_row_order():
    ids = pd.Series([f"r{i:03d}" for i in range(200)])
    labels = pd.Series(["positive"] * 150 + ["negative"] * 40 + ["neutral"] * 10)
    first = draw(ids, labels)
    shuffled = draw(ids.iloc[::-1].reset_index(drop=True), labels.iloc[::-1].reset_index(drop=True))
    assert dict(zip(ids, first)) == dict(zip(ids.iloc[::-1], shuffled))  # same review -> same split
    counts = pd.crosstab(labels, first)
    assert counts.loc["positive"].to_dict() == {"test": 15, "train": 120, "validation": 15}
    assert counts.loc["negative"].to_dict() == {"test": 4, "train": 32, "validation": 4}
    assert counts.loc["neutral"].to_dict() == {"test": 1, "train": 8, "validation": 1}
    assert not draw(ids, labels, seed=1).equals(first)


def test_import_without_scoring_then_train_draws_the_split_once(ws, star_rows, tmp_path):
    db = ws.db
    path = write_csv(tmp_path / "shop.csv", ["id", "review", "stars"], star_rows)
    assert import_shop(ws, path) == 0
    assert q(db, "SELECT count(*) FROM reviews WHERE corpus = 'shop'") == [(600,)]
    assert q(db, "SELECT count(*) FROM predictions") == [(0,)]
    assert q(db, "SELECT status, models FROM runs") == [("finished", "")]
    assert set(splits_of(db).values()) == {None}  # no split until someone trains on it

    assert train_shop(ws, "shop-lr") == 0
    drawn = splits_of(db)
    by_label = {(s, lab): n for s, lab, n in q(
        db, "SELECT split, label, count(*) FROM reviews WHERE corpus = 'shop' GROUP BY ALL")}
    assert by_label == {("train", "positive"): 336, ("validation", "positive"): 42, ("test", "positive"): 42,
                        ("train", "negative"): 120, ("validation", "negative"): 15, ("test", "negative"): 15,
                        ("train", "neutral"): 24, ("validation", "neutral"): 3, ("test", "neutral"): 3}
    recipe = json.loads(q(db, "SELECT details FROM corpora WHERE corpus = 'shop'")[0][0])["split"]
    assert recipe["seed"] == 0 and recipe["test"] == 0.1

    # a second model on the same corpus sees the same split: it is stored, never redrawn
    assert train_shop(ws, "shop-lr-2", "--max-train-rows", "100") == 0
    assert splits_of(db) == drawn
    (trained_on, rows, classes), = q(db, "SELECT trained_on, train_rows, train_classes FROM models "
                                         "WHERE model = 'shop-lr'")
    assert (trained_on, rows, json.loads(classes)) == ("shop", 456, {"negative": 120, "positive": 336})
    assert json.loads((ws.models_dir / "shop-lr" / "model.json").read_text())["trained_on"] == "shop"
    # --max-train-rows keeps the class shares (stratified): 100 of 456 at 336:120
    assert json.loads(q(db, "SELECT train_classes FROM models WHERE model = 'shop-lr-2'")[0][0]) == \
        {"negative": 26, "positive": 74}

    # reviews that arrive later get a split too (drawn among themselves), so no labelled review is left out
    later = write_csv(tmp_path / "later.csv", ["id", "review", "stars"],
                      [[f"x{i}", text, stars] for i, (_, text, stars) in enumerate(star_rows[:40])])
    assert import_shop(ws, later) == 0
    after = splits_of(db)
    assert {k: v for k, v in after.items() if not k.startswith("x")} == drawn
    assert {after[f"x{i}"] for i in range(40)} <= {"train", "validation", "test"}


def test_balance_undersamples_to_equal_classes(ws, star_rows, tmp_path):
    db = ws.db
    assert import_shop(ws, write_csv(tmp_path / "shop.csv", ["id", "review", "stars"], star_rows)) == 0
    assert train_shop(ws, "shop-bal", "--balance") == 0
    assert json.loads(q(db, "SELECT train_classes FROM models WHERE model = 'shop-bal'")[0][0]) == \
        {"negative": 120, "positive": 120}
    assert q(db, "SELECT train_rows FROM models WHERE model = 'shop-bal'") == [(240,)]


def test_the_files_own_split_column_is_kept_and_a_bad_value_is_a_reject(ws, star_rows, tmp_path):
    db = ws.db
    names = ["train", "dev", "TEST", "Validation"]
    rows = [[rid, text, stars, names[i % 4]] for i, (rid, text, stars) in enumerate(star_rows[:570])]
    rows[5][3] = "tset"  # a typo must not move a review into training
    rows[6][3] = ""  # an empty cell: no split given, one is drawn at the first training
    path = write_csv(tmp_path / "split.csv", ["id", "review", "stars", "part"], rows)
    assert import_shop(ws, path, "--split-col", "part") == 0
    assert q(db, "SELECT location, reason FROM rejects") == \
        [("row 5 of split.csv (" + store_fp(db) + ")", "split 'tset' is not train, validation (val, dev) or test")]
    stored = splits_of(db)
    assert stored["p0"] == "train" and stored["p1"] == "validation" and stored["p2"] == "test"
    assert stored["p6"] is None
    assert train_shop(ws, "shop-own-split") == 0
    after = splits_of(db)
    assert {k: v for k, v in after.items() if k != "p6"} == {k: v for k, v in stored.items() if k != "p6"}
    assert after["p6"] in ("train", "validation", "test")
    assert json.loads(q(db, "SELECT details FROM corpora")[0][0])["split"] == {"column": "part"}


def store_fp(db: Path) -> str:
    return q(db, "SELECT DISTINCT source FROM reviews WHERE corpus = 'shop'")[0][0]


def test_training_on_a_corpus_that_cannot_teach_says_why(ws, star_rows, tmp_path):
    db = ws.db
    with pytest.raises(InputError, match=r"lstm has no preset 'nope'; its presets: quick, uni-quick, gru-quick"):
        train.main(["--model", "lstm", "--preset", "nope", "--db", str(db), "--models-dir", str(ws.models_dir)])
    assert not db.exists()  # refused before anything was opened
    with pytest.raises(InputError, match=r"no corpus 'nowhere'.*--models none"):
        train.main(["--model", "tfidf-lr", "--corpus", "nowhere", "--db", str(db),
                    "--models-dir", str(ws.models_dir)])
    path = write_csv(tmp_path / "plain.csv", ["id", "review"], [[r[0], r[1]] for r in star_rows[:50]])
    assert score.main([str(path), "--db", str(db), "--corpus", "plain", "--text-col", "review", "--id-col", "id",
                       "--models", "none"]) == 0
    with pytest.raises(InputError, match=r"no positive and negative reviews in its train split.*--label-col"):
        train.main(["--model", "tfidf-lr", "--corpus", "plain", "--db", str(db), "--models-dir", str(ws.models_dir)])
    with pytest.raises(InputError, match="--split-col needs --label-col"):
        score.main([str(path), "--db", str(db), "--corpus", "plain", "--text-col", "review", "--split-col", "id",
                    "--models", "none"])


def test_evaluate_fill_completes_the_cross_corpus_matrix(ws, star_rows, tmp_path, capsys):
    db = ws.db
    assert import_shop(ws, write_csv(tmp_path / "shop.csv", ["id", "review", "stars"], star_rows)) == 0
    assert train_shop(ws, "shop-lr") == 0
    held_out = write_csv(tmp_path / "held.csv", ["id", "review", "sentiment"],
                         [[f"h{i}", text, "positive" if stars > 3 else "negative"]
                          for i, (_, text, stars) in enumerate(star_rows[200:300])])
    assert score.main([str(held_out), "--db", str(db), "--corpus", "held", "--text-col", "review", "--id-col", "id",
                       "--label-col", "sentiment", "--models", "none"]) == 0
    capsys.readouterr()
    # tfidf-lr (imdb's, in the shared models folder) and shop-lr on shop's test split and all of 'held'
    assert evaluate.main(["--db", str(db), "--fill", "--models-dir", str(ws.models_dir), "--bootstrap", "0"]) == 0
    out = capsys.readouterr().out
    with store.connect(db) as con:
        matrix = store.cross_corpus(con)
    cells = {(m, c): (s, n) for m, c, s, n in matrix[["model", "corpus", "split", "n"]].itertuples(index=False)}
    for model in ("shop-lr", "tfidf-lr", "vader"):
        assert cells[(model, "shop")] == ("test", 57)  # 42 positive + 15 negative test reviews; neutral left out
        assert cells[(model, "held")] == ("all", 100)
    assert matrix.set_index("model").loc["shop-lr", "trained_on"].unique().tolist() == ["shop"]
    assert "| shop-lr | shop | 456 |" in out
    predictions = q(db, "SELECT count(*) FROM predictions")
    # a second --fill finds nothing missing
    assert evaluate.main(["--db", str(db), "--fill", "--models-dir", str(ws.models_dir), "--bootstrap", "0"]) == 0
    assert q(db, "SELECT count(*) FROM predictions") == predictions
    # only shop's test split and held were scored, not shop's train reviews
    assert q(db, "SELECT count(*) FROM predictions p JOIN reviews r USING (corpus, review_id) "
                 "WHERE r.split IN ('train', 'validation')") == [(0,)]
