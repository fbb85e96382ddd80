"""core.training's one loop: its early-stopping rule with scripted validation losses, and every family on it
(LSTM and GRU, uni- and bidirectional, 1 and 3 layers; a 1-layer BERT) at toy sizes on tiny reviews."""

from __future__ import annotations

import itertools
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from torch import nn

from core.models import load_model
from core.models.bert import BertClassifier
from core.models.lstm import PRESETS, LSTMClassifier, LSTMConfig, make_config
from core.training import LoopSettings, train_epochs

QUIET = {"progress": lambda _: None}

# --------------------------------------------------------------------------- the early-stopping rule

SCRIPT = [0.5, 0.4, 0.45, 0.46, 0.3]  # validation loss per epoch: best at 2, then two rises, then a new best


class Counted(nn.Linear):
    """One weight that the scripted step sets to the epoch number; counts the state copies the loop makes."""

    copies = 0

    def state_dict(self, *args, **kwargs):
        self.copies += 1
        return super().state_dict(*args, **kwargs)


def scripted_run(patience: int, epochs: int = len(SCRIPT)) -> tuple[Counted, list[dict], int, list[str]]:
    net = Counted(1, 1, bias=False)
    epoch = iter(range(1, epochs + 1))
    batches = [np.arange(0, 3), np.arange(3, 5)]  # 5 examples in 2 batches
    val = iter(SCRIPT)

    def step(idx: np.ndarray) -> tuple[float, int]:
        return 0.7 * len(idx), len(idx) - 1  # (loss sum, correct): train loss 0.7, accuracy 3/5

    def evaluate() -> tuple[float, float]:
        net.weight.data.fill_(next(epoch))  # the weights this epoch ends with
        loss = next(val)
        return loss, 1.0 - loss

    lines: list[str] = []
    history, best = train_epochs(LoopSettings("toy", epochs, patience, every=0.0), net, 5, lambda: batches,
                                 step, evaluate, lines.append)
    return net, history, best, lines


@pytest.mark.parametrize(("patience", "ran", "best", "copies"), [
    (1, 3, 2, 2),   # stops at the first rise (bert's default); copies at the new bests 1 and 2
    (2, 4, 2, 2),   # two epochs without a lower loss (0.45, 0.46): stops after epoch 4, back to epoch 2
    (3, 5, 5, 2),   # lasts to epoch 5's new best: the last epoch, so its weights are kept live, never copied
])
def test_early_stopping_rule(patience, ran, best, copies):
    net, history, best_epoch, lines = scripted_run(patience)
    assert [h["epoch"] for h in history] == list(range(1, ran + 1))
    assert [h["val_loss"] for h in history] == SCRIPT[:ran]
    assert [h["val_acc"] for h in history] == pytest.approx([1 - v for v in SCRIPT[:ran]])
    assert all(h["train_loss"] == pytest.approx(0.7) and h["train_acc"] == pytest.approx(0.6) for h in history)
    assert [sorted(h) for h in history] == [sorted(["epoch", "train_loss", "val_loss", "train_acc", "val_acc",
                                                    "seconds"])] * ran
    assert all(a["seconds"] <= b["seconds"] for a, b in itertools.pairwise(history))
    assert best_epoch == best
    assert net.weight.item() == best  # the best epoch's weights, not the last one's
    assert net.copies == copies
    assert not net.training
    assert any(f"toy: epoch {ran} train loss 0.7000 acc 0.6000" in line for line in lines)
    assert any("early stop" in line for line in lines) == (ran < len(SCRIPT))
    assert any("examples/s" in line and "left" in line for line in lines)


def test_loop_settings_refuse_zero_epochs_or_patience():
    with pytest.raises(ValueError, match="at least 1"):
        LoopSettings("toy", epochs=0)
    with pytest.raises(ValueError, match="at least 1"):
        LoopSettings("toy", epochs=3, patience=0)


# --------------------------------------------------------------------------- the LSTM family on the loop

PRAISE = ["a wonderful film with great acting", "the story was moving and the cast superb",
          "I loved every minute of it", "brilliant direction and a beautiful score", "funny, warm and clever",
          "one of the best films this year", "the ending left me smiling", "an excellent, delightful surprise"]
BLAME = ["a boring film with awful acting", "the story was dull and the cast terrible",
         "I hated every minute of it", "clumsy direction and a grating score", "unfunny, cold and stupid",
         "one of the worst films this year", "the ending made no sense at all", "a dreadful, tedious mess"]
OPENERS = ["Honestly,", "Well,", "In short:", "Overall"]
REVIEWS = pd.DataFrame({
    "text": [f"{o} {s}." for o in OPENERS for s in PRAISE + BLAME],  # 64 reviews, half of them positive
    "y": ([1] * len(PRAISE) + [0] * len(BLAME)) * len(OPENERS)})
PROBE = ["What a wonderful, moving film!", "Dull and awful.", "", "meh " * 100]
TINY_LSTM = {"hidden": 8, "embed_dim": 16, "glove": False, "vocab_size": 500, "min_freq": 1, "max_len": 32,
             "epochs": 1, "batch_size": 16, "train_rows": None, "val_rows": None}


@pytest.mark.parametrize(("cell", "bidirectional", "layers"),
                         list(itertools.product(["lstm", "gru"], [False, True], [1, 3])))
def test_lstm_family_trains_saves_and_reloads(cell, bidirectional, layers, tmp_path):
    overrides = {**TINY_LSTM, "cell": cell, "bidirectional": bidirectional, "layers": layers}
    model, history, hyper = LSTMClassifier.fit(REVIEWS, REVIEWS, "quick", overrides, **QUIET)
    assert isinstance(model.net.lstm, {"lstm": nn.LSTM, "gru": nn.GRU}[cell])
    assert (model.net.lstm.num_layers, model.net.lstm.bidirectional) == (layers, bidirectional)
    assert [h["epoch"] for h in history] == [1] and hyper["best_epoch"] == 1
    assert hyper["train_rows"] == len(REVIEWS) and hyper["cell"] == cell
    val_loss, _ = model._evaluate([model.encode(t) for t in REVIEWS["text"]], REVIEWS["y"].to_numpy())
    assert val_loss == pytest.approx(history[0]["val_loss"], rel=1e-5)  # the returned weights are the best's

    p = model.predict_proba(PROBE)
    model.save(tmp_path / "m")
    loaded = LSTMClassifier.load(tmp_path / "m")
    assert loaded.cfg == model.cfg
    assert np.allclose(loaded.predict_proba(PROBE), p) and loaded.n_params() == model.n_params()


def test_gru_has_three_quarters_of_the_lstm_recurrent_weights():
    lstm, gru = (sum(p.numel() for p in LSTMClassifier(make_config("quick", {"cell": c}), ["<pad>", "<unk>"])
                     .net.lstm.parameters()) for c in ("lstm", "gru"))
    assert gru * 4 == lstm * 3


def test_old_model_json_without_cell_loads_as_lstm(tmp_path):
    model, _, _ = LSTMClassifier.fit(REVIEWS, REVIEWS, "quick", TINY_LSTM, **QUIET)
    directory = tmp_path / "models" / "old-lstm"
    model.save(directory)
    manifest = json.loads((directory / "model.json").read_text())
    del manifest["config"]["cell"]  # as written before the GRU variant existed
    (directory / "model.json").write_text(json.dumps(manifest))
    loaded = load_model("old-lstm", tmp_path / "models")
    assert loaded.cfg.cell == "lstm" and isinstance(loaded.net.lstm, nn.LSTM)
    assert np.allclose(loaded.predict_proba(PROBE), model.predict_proba(PROBE))


def test_lstm_presets_and_their_errors():
    quick = asdict(PRESETS["quick"])
    for name in ("uni-quick", "gru-quick", "two-layer-quick", "deep-quick", "random-quick"):
        changed = {k for k, v in asdict(PRESETS[name]).items() if quick[k] != v}
        assert len(changed) == 1, (name, changed)  # one thing changed, quick's data budget kept
    assert (PRESETS["deep-quick"].layers, PRESETS["gru-quick"].cell) == (3, "gru")
    assert not PRESETS["uni-quick"].bidirectional and not PRESETS["random-quick"].glove
    with pytest.raises(ValueError, match="unknown lstm preset 'nope'; known: quick, uni-quick"):
        LSTMClassifier.fit(REVIEWS, REVIEWS, "nope", **QUIET)
    with pytest.raises(ValueError, match="unknown lstm cell 'rnn'; allowed: lstm, gru"):
        LSTMClassifier.fit(REVIEWS, REVIEWS, "quick", {"cell": "rnn"}, **QUIET)
    with pytest.raises(ValueError, match="allowed: lstm, gru"):
        LSTMConfig(cell="GRU")


# --------------------------------------------------------------------------- bert on the loop


def test_bert_trains_through_the_shared_loop(tmp_path: Path):
    """1 layer of the offline MiniLM checkpoint, 2 epochs; patience 1 may stop it after either. 16 reviews:
    an AdamW step over the 14M parameters (12M of them the word embeddings) takes ~0.5 s on 2 cores."""
    reviews = REVIEWS.iloc[::4]  # 8 positive, 8 negative
    overrides = {"layers": 1, "max_len": 32, "epochs": 2, "batch_size": 8, "lr": 1e-4, "warmup": 0.0,
                 "train_rows": None, "val_rows": None}
    lines: list[str] = []
    model, history, hyper = BertClassifier.fit(reviews, reviews, "quick", overrides, lines.append)
    assert 1 <= len(history) <= 2 and [h["epoch"] for h in history] == list(range(1, len(history) + 1))
    assert hyper["patience"] == 1 and hyper["train_rows"] == len(reviews)
    assert hyper["best_epoch"] == min(history, key=lambda h: h["val_loss"])["epoch"]
    assert any(line.startswith("bert: epoch 1 train loss") for line in lines)
    val_loss, _ = model._evaluate(model.encode(reviews["text"].tolist()), reviews["y"].to_numpy())
    assert val_loss == pytest.approx(history[hyper["best_epoch"] - 1]["val_loss"], rel=1e-4)
