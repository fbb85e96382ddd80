"""jobs.evaluate on awkward but real databases: a handful of labels, one class only, broken probabilities,
--bootstrap 0 or negative, a --db that does not exist or is a directory.

Each database is built by the real store functions into pytest's tmp dir, then evaluated by the real job;
the stored figures are checked against scikit-learn on the rows that should have been evaluated.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import (
    accuracy_score,
    brier_score_loss,
    precision_recall_fscore_support,
    roc_auc_score,
)

from core import store
from core.errors import InputError
from core.metrics import expected_calibration_error
from core.paths import REPO_ROOT
from jobs import evaluate

BROKEN = [math.nan, math.inf, -math.inf, -0.5, 1.5]
INVALID_NOTE = "invalid probabilities (nan, inf or outside [0, 1])"


def make_db(db: Path, labels: list[str], probabilities: dict[str, list[float]]) -> Path:
    """A user corpus 'c' (split 'all') with these labels, and each model's P(positive) per review."""
    ids = [f"r{i}" for i in range(len(labels))]
    reviews = pd.DataFrame({"review_id": ids, "text": [f"review {i}" for i in ids], "label": labels,
                            "split": [None] * len(ids), "source_row": range(len(ids))})
    with store.connect(db) as con, store.transaction(con):
        store.insert_reviews(con, "c", reviews)
        for model, p in probabilities.items():
            p = np.asarray(p, dtype=np.float64)
            nan = np.isnan(p)
            keep = [i for i, bad in zip(ids, nan) if not bad]
            store.insert_predictions(con, "c", model, keep, p[~nan], "run-1")
            # insert_predictions hands DuckDB a DataFrame, where NaN means NULL (refused by NOT NULL); a NaN
            # can still reach the DOUBLE column through a bound parameter, as an older writer's would
            for i in np.flatnonzero(nan):
                con.execute("INSERT INTO predictions (corpus, review_id, model, p_positive, predicted, run_id) "
                            "VALUES ('c', ?, ?, ?, 'negative', 'run-1')",
                            [ids[i], model, math.nan])
    return db


def metrics(db: Path) -> dict[str, dict]:
    with duckdb.connect(str(db), read_only=True) as con:
        frame = con.execute("SELECT * FROM metrics WHERE corpus = 'c' AND split = 'all'").df()
    return {r["model"]: r for r in frame.to_dict("records")}


def is_null(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def assert_matches_sklearn(row: dict, y: np.ndarray, p: np.ndarray) -> None:
    pred = (p >= 0.5).astype(int)
    precision, recall, f1, _ = precision_recall_fscore_support(y, pred, average="binary", zero_division=0)
    assert row["n"] == len(y)
    assert row["accuracy"] == pytest.approx(accuracy_score(y, pred), abs=1e-12)
    assert (row["precision"], row["recall"], row["f1"]) == pytest.approx((precision, recall, f1), abs=1e-12)
    assert row["brier"] == pytest.approx(brier_score_loss(y, p), abs=1e-12)
    assert row["ece"] == pytest.approx(expected_calibration_error(y, p), abs=1e-12)
    assert (row["tn"] + row["fp"] + row["fn"] + row["tp"]) == len(y)
    if len(set(y)) == 2:
        assert row["roc_auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    else:
        assert is_null(row["roc_auc"]) and is_null(row["pr_auc"])


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_a_handful_of_labelled_reviews_is_evaluated_with_the_default_bootstrap(tmp_path, n):
    # with n reviews a Poisson(1) resample weighs every review zero with probability e^-n: at 200 resamples
    # that happened for every n here, and scikit-learn divided by zero
    labels = ["positive", "negative", "negative", "positive", "positive"][:n]
    p = [0.8, 0.3, 0.6, 0.45, 0.9][:n]
    db = make_db(tmp_path / "few.duckdb", labels, {"m": p})
    assert evaluate.main(["--db", str(db)]) == 0
    row = metrics(db)["m"]
    y = np.array([label == "positive" for label in labels], dtype=int)
    assert_matches_sklearn(row, y, np.array(p))
    if n == 1:
        assert all(is_null(row[k]) for k in ("accuracy_lo", "accuracy_hi", "roc_auc_lo", "roc_auc_hi"))
    else:
        assert 0 <= row["accuracy_lo"] <= row["accuracy_hi"] <= 1
    for lo, hi in (("accuracy_lo", "accuracy_hi"), ("roc_auc_lo", "roc_auc_hi")):
        assert is_null(row[lo]) == is_null(row[hi])


@pytest.mark.parametrize("label", ["positive", "negative"])
@pytest.mark.parametrize("n", [1, 3])
def test_a_single_class_has_no_roc_auc_but_every_other_figure(tmp_path, label, n):
    p = [0.7, 0.2, 0.55][:n]
    db = make_db(tmp_path / "one-class.duckdb", [label] * n, {"m": p})
    assert evaluate.main(["--db", str(db)]) == 0
    row = metrics(db)["m"]
    assert_matches_sklearn(row, np.full(n, int(label == "positive")), np.array(p))
    assert is_null(row["roc_auc_lo"]) and is_null(row["roc_auc_hi"])


def test_invalid_probabilities_are_left_out_counted_and_reported(tmp_path, capsys):
    labels = ["positive", "negative", "positive", "negative", "positive", "negative"] * 2
    good = [0.9, 0.2, 0.4, 0.6, 0.75, 0.1]
    # model 'mixed' has the six good values and, on the other six reviews, the five broken ones and a good one
    mixed = good + BROKEN + [0.35]
    db = make_db(tmp_path / "broken.duckdb", labels, {"mixed": mixed, "clean": good + good})
    with duckdb.connect(str(db), read_only=True) as con:  # the NaN really is stored as NaN, not NULL
        assert con.execute("SELECT count(*) FROM predictions WHERE isnan(p_positive)").fetchone()[0] == 1

    assert evaluate.main(["--db", str(db), "--bootstrap", "50"]) == 0
    err = capsys.readouterr().err
    rows = metrics(db)
    y = np.array([label == "positive" for label in labels], dtype=int)
    ok = np.r_[np.ones(6, bool), np.zeros(5, bool), True]
    assert_matches_sklearn(rows["mixed"], y[ok], np.array(mixed)[ok])
    assert rows["mixed"]["n"] == 7
    assert_matches_sklearn(rows["clean"], y, np.array(good + good))
    mixed_lines = [line for line in err.splitlines() if "mixed" in line]
    assert any(f"5 predictions with {INVALID_NOTE} left out" in line for line in mixed_lines), err
    assert not any("invalid" in line for line in err.splitlines() if "clean" in line)


def test_a_model_with_only_invalid_probabilities_is_skipped_and_said_so(tmp_path, capsys):
    labels = ["positive", "negative", "positive", "negative", "positive"]
    db = make_db(tmp_path / "all-broken.duckdb", labels, {"broken": BROKEN, "fine": [0.8, 0.3, 0.7, 0.4, 0.6]})
    assert evaluate.main(["--db", str(db), "--bootstrap", "20"]) == 0
    err = capsys.readouterr().err
    assert set(metrics(db)) == {"fine"}
    assert any("broken" in line and f"all 5 predictions have {INVALID_NOTE}" in line and "skipped" in line
               for line in err.splitlines()), err


def test_bootstrap_zero_stores_no_intervals_and_prints_n_a(tmp_path, capsys):
    db = make_db(tmp_path / "b0.duckdb", ["positive", "negative", "positive", "negative"],
                 {"m": [0.9, 0.2, 0.4, 0.6]})
    assert evaluate.main(["--db", str(db), "--bootstrap", "0"]) == 0
    row = metrics(db)["m"]
    assert all(is_null(row[k]) for k in ("accuracy_lo", "accuracy_hi", "roc_auc_lo", "roc_auc_hi"))
    assert row["accuracy"] == 0.5 and row["roc_auc"] == 0.75
    out = capsys.readouterr()
    assert "n/a" in out.err  # the log line
    assert "0.5000 [n/a]" in out.out  # the leaderboard


def test_a_negative_bootstrap_is_a_usage_error(tmp_path, capsys):
    db = make_db(tmp_path / "bneg.duckdb", ["positive", "negative"], {"m": [0.9, 0.2]})
    with pytest.raises(SystemExit) as e:
        evaluate.main(["--db", str(db), "--bootstrap", "-1"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "argument --bootstrap" in err and "-1" in err
    assert metrics(db) == {}


def test_leaderboard_prints_n_a_for_missing_intervals_and_roc_auc():
    board = pd.DataFrame({
        "model": ["a", "b", "c"], "n": [4, 1, 3], "accuracy": [0.75, 1.0, 0.5],
        "accuracy_lo": [0.5, None, math.nan], "accuracy_hi": [1.0, None, math.nan],
        "roc_auc": [0.8, None, math.nan], "f1": [0.7, 1.0, math.nan], "ece": [0.1, 0.3, 0.2],
        "n_params": [10, None, None], "bytes_on_disk": [2e6, None, None], "train_seconds": [3.0, None, None],
        "trained_on": ["imdb", None, None], "train_rows": [100, None, None], "rows_per_s": [500.0, None, None]})
    table = evaluate.markdown_leaderboard(board, "c / all").splitlines()
    row = {line.split(" | ")[0].removeprefix("| "): line for line in table if line.startswith("| ")}
    assert "0.7500 [0.5000, 1.0000] | 0.8000 |" in row["a"] and "| imdb | 100 |" in row["a"]
    assert "1.0000 [n/a] | n/a |" in row["b"]
    assert "0.5000 [n/a] | n/a | n/a |" in row["c"]


def test_a_missing_database_is_an_error_and_creates_nothing(tmp_path):
    db = tmp_path / "nowhere" / "reviews.duckdb"
    done = subprocess.run([sys.executable, "-m", "jobs.evaluate", "--db", str(db)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2, done.stderr
    assert "no such database" in done.stderr and str(db) in done.stderr
    assert "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []  # no file, no .view / .wal copy, not even the folder


def test_a_missing_database_file_in_an_existing_folder_is_not_created(tmp_path):
    db = tmp_path / "reviews.duckdb"
    with pytest.raises(InputError, match="no such database"):
        evaluate.main(["--db", str(db)])
    assert list(tmp_path.iterdir()) == []


def test_a_directory_as_database_is_a_clear_error(tmp_path):
    db = tmp_path / "reviews.duckdb"
    db.mkdir()
    with pytest.raises(InputError, match="is a directory"):
        evaluate.main(["--db", str(db)])
    assert list(db.iterdir()) == []
