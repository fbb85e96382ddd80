"""Training that survives an interruption (core.checkpoint): jobs.train stopped by SIGTERM mid-epoch keeps its
checkpoint, and run again with the same command it resumes and ends with the model an uninterrupted run
trains, up to float noise (1e-4 on 200 reviews' P(positive))."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from core import store
from core.models import load_model
from core.paths import REPO_ROOT
from jobs import train
from tests.helpers import q


def _train_args(kind: str, name: str, db: Path, models: Path, extra: list[str]) -> list[str]:
    return ["--model", kind, "--name", name, "--preset", "quick", "--db", str(db), "--models-dir", str(models), *extra]


def _interrupt_then_resume(kind: str, db: Path, models: Path, extra: list[str], capsys) -> None:
    """Train ``cut`` in a child that SIGTERM stops once a checkpoint of epoch 1 is saved, then resume it."""
    ckpt = models / ".cut.checkpoint" / "state.json"
    env = {**os.environ, "SENTIMENT_CHECKPOINT_SECONDS": "0"}  # a checkpoint after every step
    proc = subprocess.Popen([sys.executable, "-m", "jobs.train", *_train_args(kind, "cut", db, models, extra)],
                            cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            run = json.loads(ckpt.read_text())["run"]
        except (OSError, ValueError, KeyError):
            run = None
        if run and run["epoch"] == 1 and run["position"] >= 1:
            proc.send_signal(signal.SIGTERM)
            break
        time.sleep(0.02)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert "stopped in epoch 1" in err and ckpt.exists() and not (models / "cut").exists()
    saved = json.loads(ckpt.read_text())["run"]
    assert saved["epoch"] == 1 and saved["position"] >= 1
    assert train.main(_train_args(kind, "cut", db, models, extra)) == 0
    assert "resuming from its checkpoint: epoch 1" in capsys.readouterr().err
    assert not ckpt.parent.exists()  # done: the checkpoint is removed


def _same_model(db: Path, models: Path) -> None:
    texts = [t for (t,) in q(db, "SELECT text FROM texts WHERE corpus = 'imdb' ORDER BY rid LIMIT 200")]
    whole, cut = load_model("whole", models), load_model("cut", models)
    np.testing.assert_allclose(cut.predict_proba(texts), whole.predict_proba(texts), atol=1e-4)


@pytest.fixture
def workspace(scored_db, tmp_path) -> tuple[Path, Path]:
    db = tmp_path / "r.duckdb"
    store.texts.copy_database(scored_db.db, db)
    return db, tmp_path / "models"


def test_an_lstm_interrupted_mid_epoch_resumes_to_the_model_of_an_uninterrupted_run(workspace, capsys):
    db, models = workspace
    extra = ["--max-train-rows", "400", "--set", "epochs=2", "--set", "batch_size=64", "--set", "val_rows=200"]
    assert train.main(_train_args("lstm", "whole", db, models, extra)) == 0
    _interrupt_then_resume("lstm", db, models, extra, capsys)
    _same_model(db, models)


def test_a_bert_interrupted_mid_epoch_resumes_to_the_model_of_an_uninterrupted_run(workspace, capsys):
    db, models = workspace
    extra = ["--max-train-rows", "64", "--set", "epochs=2", "--set", "layers=2", "--set", "max_len=64",
             "--set", "val_rows=64"]
    assert train.main(_train_args("bert", "whole", db, models, extra)) == 0
    _interrupt_then_resume("bert", db, models, extra, capsys)
    _same_model(db, models)
