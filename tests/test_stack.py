"""The stack kind (core.models.stack): trained on a corpus's validation split from its members' stored
predictions, saved without pickle, and scored by jobs.score from the members' predictions (stored ones, or
the run's own) to the same probabilities its own predict_proba gives."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from core import store
from core.errors import SentimentError
from core.models import load_model, with_members
from jobs import evaluate, score, train
from tests.helpers import JOIN_TEXTS, q


@pytest.fixture
def stacked(scored_db, tmp_path):
    db, models = tmp_path / "s.duckdb", tmp_path / "models"
    store.texts.copy_database(scored_db.db, db)
    shutil.copytree(scored_db.models_dir, models)
    assert train.main(["--model", "stack", "--name", "st", "--corpus", "sample", "--set", "members=tfidf-lr,vader",
                       "--db", str(db), "--models-dir", str(models)]) == 0
    return db, models


def test_a_stack_learns_weights_from_stored_predictions_and_saves_them_as_json(stacked):
    db, models = stacked
    manifest = json.loads((models / "st" / "model.json").read_text())
    assert manifest["kind"] == "stack" and manifest["config"]["members"] == ["tfidf-lr", "vader"]
    assert not list((models / "st").glob("*.pkl")) and len(manifest["coef"]) == 2
    st = load_model("st", models)
    assert st.weights() == dict(zip(["tfidf-lr", "vader"], manifest["coef"]))
    facts = json.loads(q(db, "SELECT hyperparams FROM models WHERE model = 'st'")[0][0])
    assert facts["weights"] == pytest.approx(st.weights()) and facts["members"] == ["tfidf-lr", "vader"]
    assert with_members(["st"], models) == ["tfidf-lr", "vader", "st"]
    assert with_members(["vader", "st", "tfidf-lr"], models) == ["vader", "tfidf-lr", "st"]


def test_scoring_a_stack_uses_its_members_predictions_and_equals_its_own_predict_proba(stacked, scored_db):
    db, models = stacked
    assert score.main([str(scored_db.csv), "--db", str(db), "--corpus", "sample", "--text-col", "review",
                       "--id-col", "id", "--label-col", "sentiment", "--models", "st",
                       "--models-dir", str(models)]) == 0
    rows = q(db, f"SELECT p.review_id, p.p_positive, texts.text FROM predictions p JOIN reviews r USING (corpus, review_id)"
                 f"{JOIN_TEXTS} WHERE p.corpus = 'sample' AND p.model = 'st' ORDER BY p.review_id")
    assert len(rows) == scored_db.n_rows
    direct = load_model("st", models).predict_proba([t for _, _, t in rows])
    np.testing.assert_allclose([p for _, p, _ in rows], direct, atol=1e-9)
    # the members were stored before: the run made no new prediction of theirs
    assert q(db, "SELECT model, count(*) FROM predictions WHERE corpus = 'sample' GROUP BY model ORDER BY model") == [
        ("st", scored_db.n_rows), ("tfidf-lr", scored_db.n_rows), ("vader", scored_db.n_rows)]
    assert evaluate.main(["--db", str(db), "--bootstrap", "20"]) == 0  # the stack is a model like any other
    with store.connect(store.view_path(db), read_only=True) as con:
        board = store.reads.leaderboard(con, "sample", "test").set_index("model")  # split drawn by the training
    weights = load_model("st", models).weights()
    assert board.loc["st", "members"] == ", ".join(f"{m} {w:+.2f}" for m, w in weights.items())
    assert board.loc["st", "accuracy"] > 0 and board["members"].drop("st").isna().all()
    explained = load_model("st", models).explain(["A wonderful film, but the ending was awful."])[0]
    assert explained.spans and abs(sum(w for _, _, w in explained.spans) - (explained.p - explained.base)) < 1e-6


def test_a_stack_of_unknown_or_stacked_members_is_refused(stacked):
    db, models = stacked
    for members, says in (("tfidf-lr,nope", "no trained model named nope"), ("st,vader", "not other stacks")):
        with pytest.raises(SentimentError, match=says):
            train.main(["--model", "stack", "--name", "st2", "--corpus", "sample", "--set", f"members={members}",
                        "--db", str(db), "--models-dir", str(models)])
    assert not (models / "st2").exists()
