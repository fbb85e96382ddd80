"""jobs.score / jobs.evaluate on real files: the spine, resume after SIGKILL, and hostile or broken input."""

from __future__ import annotations

import doctest
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, roc_auc_score

import core.cleaning
import core.metrics
from core import store
from core.errors import InputError
from core.ingest import file_fingerprint
from core.models import load_model
from core.paths import REPO_ROOT
from jobs import score
from tests.helpers import HOSTILE, imdb_csv, q, write_csv


def run_score(ws, csv: Path, db: Path, corpus: str, *extra: str) -> int:
    return score.main([str(csv), "--db", str(db), "--corpus", corpus, "--text-col", "review",
                       "--models", "tfidf-lr,vader", "--models-dir", str(ws.models_dir), *extra])


def test_doctests():
    for module in (core.metrics, core.cleaning):
        assert doctest.testmod(module).failed == 0


def test_spine_one_prediction_per_review_per_model_and_metrics_match_sklearn(scored_db):
    counts = dict(q(scored_db.db, "SELECT model, count(*) FROM predictions WHERE corpus = 'sample' GROUP BY 1"))
    assert counts == {"tfidf-lr": scored_db.n_rows, "vader": scored_db.n_rows}
    for model in ("tfidf-lr", "vader"):
        rows = q(scored_db.db, "SELECT r.label = 'positive', p.p_positive FROM predictions p JOIN reviews r "
                 "USING (corpus, review_id) WHERE corpus = 'sample' AND model = ?", [model])
        y, p = np.array([r[0] for r in rows], dtype=int), np.array([r[1] for r in rows])
        (acc, auc, lo, hi), = q(scored_db.db, "SELECT accuracy, roc_auc, accuracy_lo, accuracy_hi FROM metrics "
                                "WHERE corpus = 'sample' AND split = 'all' AND model = ?", [model])
        assert acc == pytest.approx(accuracy_score(y, p >= 0.5), abs=1e-12)
        assert auc == pytest.approx(roc_auc_score(y, p), abs=1e-12)
        assert lo <= acc <= hi
    (tfidf_acc,), = q(scored_db.db, "SELECT accuracy FROM metrics WHERE corpus = 'sample' AND model = 'tfidf-lr'")
    assert tfidf_acc > 0.75  # trained on 4,000 reviews only; the full model reaches 0.91 (README)
    assert q(scored_db.db, "SELECT count(*) FROM curves WHERE curve = 'roc'")[0][0] > 10
    assert store.view_path(scored_db.db).exists()  # published for the dashboard


def test_hostile_text_is_stored_verbatim(scored_db):
    stored = {r[0] for r in q(scored_db.db, "SELECT text FROM texts WHERE corpus = 'sample' AND review_id LIKE 'h%'")}
    # cleaning strips tags (the review's markup is not sentiment) but the SQL-looking text is data, kept as is
    assert "'; DROP TABLE predictions; --" in stored
    assert q(scored_db.db, "SELECT count(*) FROM predictions")[0][0] > 0


def test_tfidf_save_load_gives_identical_probabilities(scored_db, tmp_path):
    model = load_model("tfidf-lr", scored_db.models_dir)
    texts = ["A wonderful, moving film.", "Dull and far too long.", "x" * 10_000]
    model.save(tmp_path / "copy")
    again = type(model).load(tmp_path / "copy")
    assert np.array_equal(model.predict_proba(texts), again.predict_proba(texts))
    assert not any(p.suffix in {".pkl", ".pickle", ".joblib"} for p in (tmp_path / "copy").iterdir())


def test_tfidf_fast_scoring_matches_scikit_learn(scored_db):
    model = load_model("tfidf-lr", scored_db.models_dir)
    texts = [r[0] for r in q(scored_db.db, "SELECT text FROM texts WHERE corpus = 'imdb' ORDER BY rid LIMIT 500")]
    texts += ["", "ok", "Café über-good, naïve_plot 10/10!!", "A" * 50_000]
    fast, reference = model.predict_proba(texts), model.predict_proba_sklearn(texts)
    assert fast.shape == (len(texts),)
    np.testing.assert_allclose(fast, reference, atol=1e-5)




def test_kill_9_mid_run_then_resume_gives_exactly_one_prediction_each(scored_db, tmp_path):
    n = 3000
    csv = imdb_csv(scored_db.db, tmp_path / "big.csv", n)
    db = tmp_path / "kill.duckdb"
    cmd = [sys.executable, "-m", "jobs.score", str(csv), "--db", str(db), "--corpus", "k", "--text-col", "review",
           "--id-col", "id", "--label-col", "sentiment", "--models", "tfidf-lr,vader",
           "--models-dir", str(scored_db.models_dir), "--chunk-rows", "100"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stderr=subprocess.PIPE, text=True)
    while not proc.stderr.readline().startswith("[score k]"):  # a progress line: chunks were committed
        assert proc.poll() is None, "jobs.score ended before it could be killed"
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    partial = dict(q(db, "SELECT model, count(*) FROM predictions GROUP BY 1"))
    assert 0 < sum(partial.values()) < 2 * n, partial

    done = subprocess.run(cmd, check=False, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "already stored were skipped" in done.stderr
    assert dict(q(db, "SELECT model, count(*) FROM predictions GROUP BY 1")) == {"tfidf-lr": n, "vader": n}
    assert q(db, "SELECT count(*), count(DISTINCT review_id) FROM reviews")[0] == (n, n)
    assert q(db, "SELECT count(*) FROM rejects")[0][0] == 0

    # running it a third time is harmless: nothing new, nothing doubled
    assert score.main(cmd[3:]) == 0
    assert dict(q(db, "SELECT model, count(*) FROM predictions GROUP BY 1")) == {"tfidf-lr": n, "vader": n}


def test_bad_rows_are_counted_rejects_and_good_rows_scored(scored_db, tmp_path):
    long_review = "This movie was great. " * 50_000  # about 1.1 MB
    path = tmp_path / "messy.csv"
    lines = [
        b"id,review,sentiment\n",
        b"a,Loved every minute of it,positive\n",
        b"b,,negative\n",                                       # empty text
        b'c,"   <br />  ",negative\n',                          # empty after cleaning
        b"d,Caf\xe9 scene was awful,NEG\n",                    # latin-1 byte: not UTF-8
        b"e,Fine film,maybe\n",                                 # unknown label
        b"f,too,many,fields,here\n",                            # unparseable line
        b"a,Same id again,positive\n",                          # duplicate id
        b'g,"' + long_review.encode() + b'",POS\n',             # 1 MB review: scored
        b'h,"Multi\nline review, quite good",Positive\n',
    ]
    path.write_bytes(b"".join(lines))
    db = tmp_path / "messy.duckdb"
    assert run_score(scored_db, path, db, "messy", "--id-col", "id", "--label-col", "sentiment") == 0
    assert sorted(r[0] for r in q(db, "SELECT review_id FROM reviews")) == ["a", "g", "h"]
    assert dict(q(db, "SELECT review_id, label FROM reviews")) == {"a": "positive", "g": "positive", "h": "positive"}
    reasons = dict(q(db, "SELECT coalesce(review_id, location), reason FROM rejects"))
    assert reasons["b"].startswith("empty text") and reasons["c"].startswith("empty text")
    assert "not valid UTF-8" in reasons["d"]
    assert "'maybe'" in reasons["e"]
    assert any(r.startswith("unparseable") for r in reasons.values())
    assert any(r.startswith("duplicate review_id") for r in reasons.values())
    assert len(reasons) == 6
    assert q(db, "SELECT count(*) FROM predictions")[0][0] == 3 * 2

    # a second run over the same file: rejects are not doubled, predictions unchanged
    assert run_score(scored_db, path, db, "messy", "--id-col", "id", "--label-col", "sentiment") == 0
    assert q(db, "SELECT count(*) FROM rejects")[0][0] == 6
    assert q(db, "SELECT count(*) FROM predictions")[0][0] == 6


def test_star_ratings_and_parquet_and_position_ids(scored_db, tmp_path):
    df = pd.DataFrame({"body": ["Terrible.", "Bad.", "It was okay.", "Good!", "Brilliant, loved it."],
                       "stars": [1, 2, 3, 4, 5]})
    path = tmp_path / "shop.parquet"
    df.to_parquet(path)
    db = tmp_path / "shop.duckdb"
    assert score.main([str(path), "--db", str(db), "--corpus", "shop", "--text-col", "body", "--label-col", "stars",
                       "--label-kind", "stars", "--models", "tfidf-lr", "--models-dir", str(scored_db.models_dir)]) == 0
    fp = file_fingerprint(path)  # no id column: a review is known by its file's content and its row
    assert q(db, "SELECT review_id, label FROM reviews ORDER BY source_row") == [
        (f"{fp}:0", "negative"), (f"{fp}:1", "negative"), (f"{fp}:2", "neutral"), (f"{fp}:3", "positive"),
        (f"{fp}:4", "positive")]
    assert q(db, "SELECT count(*) FROM predictions")[0][0] == 5  # neutral is scored too
    from jobs import evaluate
    assert evaluate.main(["--db", str(db), "--bootstrap", "20"]) == 0
    assert q(db, "SELECT n FROM metrics WHERE corpus = 'shop'") == [(4,)]  # ...but left out of binary metrics


@pytest.mark.parametrize("content, args, message", [
    (b"id,review\n1,hello\n", ["--text-col", "text"], "no text column 'text'; the file has columns ['id', 'review']"),
    (b"id,review\n1,hello\n", ["--text-col", "review", "--label-col", "y"], "no label column 'y'"),
    (b"", ["--text-col", "review"], "the file is empty"),
])
def test_bad_files_stop_with_a_clear_error(scored_db, tmp_path, content, args, message):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        score.main([str(path), "--db", str(tmp_path / "b.duckdb"), "--corpus", "b", "--models", "vader",
                    "--models-dir", str(scored_db.models_dir), *args])


def test_cli_exit_code_and_message_for_missing_file_and_wrong_type(tmp_path):
    for path, message in ((tmp_path / "nope.csv", "no such file"), (tmp_path / "x.xlsx", "save it as CSV"),
                          (tmp_path / "x.json", "no JSON object with fields")):
        if path.suffix == ".xlsx":
            with zipfile.ZipFile(path, "w") as z:
                z.writestr("xl/workbook.xml", "<workbook/>")
        if path.suffix == ".json":
            path.write_text("{}")
        r = subprocess.run([sys.executable, "-m", "jobs.score", str(path), "--db", str(tmp_path / "e.duckdb"),
                            "--corpus", "e", "--text-col", "t", "--models", "vader"],
                           check=False, cwd=REPO_ROOT, capture_output=True, text=True)
        assert r.returncode == 2
        assert message in r.stderr and str(path) in r.stderr
        assert "Traceback" not in r.stderr


def test_hostile_ids_and_corpus_names_are_bound_not_pasted(scored_db, tmp_path):
    path = write_csv(tmp_path / "h.csv", ["id", "review"], [[h, "Nice film"] for h in HOSTILE])
    db = tmp_path / "h.duckdb"
    corpus = "x'); DROP TABLE reviews; --"
    assert score.main([str(path), "--db", str(db), "--corpus", corpus, "--text-col", "review", "--id-col", "id",
                       "--models", "vader", "--models-dir", str(scored_db.models_dir)]) == 0
    assert sorted(r[0] for r in q(db, "SELECT review_id FROM reviews WHERE corpus = ?", [corpus])) == sorted(HOSTILE)
