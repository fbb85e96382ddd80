"""Models training now: jobs.train keeps a status file while it trains; the Overview lists it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

from core import status, store
from core.paths import REPO_ROOT


def test_a_training_is_listed_while_it_runs_and_gone_after(tmp_path):
    with status.training(tmp_path, "bert-x", "bert", "quick") as note:
        note("[bert] 100/1,000 examples (10%), 5 examples/s, 0m20s elapsed, 3m00s left")
        (now,) = status.training_now(tmp_path)
        assert (now["name"], now["kind"], now["preset"]) == ("bert-x", "bert", "quick")
        assert now["last"].endswith("3m00s left")
    assert status.training_now(tmp_path) == []
    assert list(tmp_path.iterdir()) == []


def test_a_killed_trainings_file_is_not_a_training(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    (tmp_path / ".lstm-x.training.json").write_text(json.dumps(
        {"name": "lstm-x", "kind": "lstm", "preset": "quick", "started": time.time(), "pid": int(dead.stdout),
         "last": ""}))
    (tmp_path / ".half.training.json").write_text("{")  # being written: skipped, never an error
    assert status.training_now(tmp_path) == []


def test_jobs_train_keeps_the_file_while_it_trains(scored_db, tmp_path):
    models, db = tmp_path / "models", tmp_path / "copy.duckdb"
    store.texts.copy_database(scored_db.db, db)  # the session's database keeps its models as they are
    proc = subprocess.Popen([sys.executable, "-m", "jobs.train", "--model", "vader", "--name", "vader-x", "--corpus",
                             "sample", "--db", str(db), "--models-dir", str(models)], cwd=REPO_ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen = []
    while proc.poll() is None:
        seen += [s["name"] for s in status.training_now(models)]
        time.sleep(0.05)
    assert proc.returncode == 0
    assert "vader-x" in seen
    assert status.training_now(models) == [] and (models / "vader-x" / "model.json").exists()


def test_the_overview_says_which_models_are_training(scored_db, tmp_path, monkeypatch):
    monkeypatch.setenv("SENTIMENT_DB", str(scored_db.db))
    monkeypatch.setenv("SENTIMENT_MODELS_DIR", str(tmp_path))
    with status.training(Path(tmp_path), "bert-quick", "bert", "quick") as note:
        note("[bert] 640/2,000 examples (32%), 11 examples/s, 1m00s elapsed, 2m04s left")
        at = AppTest.from_file("../dashboard/Home.py", default_timeout=60)
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        shown = " ".join(str(i.value) for i in at.info)
    assert "**bert-quick** (bert, preset quick) is training" in shown
    assert "2m04s left" in shown


def test_no_test_module_imports_another():
    """Shared helpers live in tests/helpers.py and fixtures in conftest.py: test modules stand alone."""
    another, fixtures = "tests.test" + "_", "tests.conf" + "test"  # spelt apart: this file names them too
    for path in Path(__file__).parent.glob("test_*.py"):
        text = path.read_text()
        assert f"from {another}" not in text and f"import {another}" not in text, path.name
        assert f"from {fixtures}" not in text, path.name
