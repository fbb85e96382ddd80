"""Neural model families (lstm, bert, bitbert) at toy sizes: they learn, save/load bit-identically, survive
huge inputs, and bitbert's weights really are ternary and really are packed 2 bits each on disk."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from bitlinear_pytorch.bitlinear import weight_quant
from safetensors import safe_open
from torch import nn

from core import kernels, store
from core.corpus import ensure_imdb
from core.errors import ModelError
from core.models import dir_bytes, load_model, resolve_names
from core.models.bert import BertClassifier, BertConfig, Int8Linear
from core.models.bitbert import (
    WEIGHTS,
    BitBertClassifier,
    TernaryLinear,
    encoder_linears,
    to_bitlinear,
)
from core.models.lstm import LSTMClassifier
from core.models.packing import pack_ternary, unpack_ternary

HUGE = "terrible boring " * 65_000  # ~1 MB of text in one review
PROBE = ["A wonderful, moving film.", "Dreadful and dull.", "", HUGE]

# A handful of short, unambiguous texts: a 1-layer transformer must fit them within a few steps.
POS = ["great wonderful film", "a brilliant moving story", "loved it, excellent acting", "superb and delightful"]
NEG = ["terrible awful film", "a boring dull story", "hated it, horrible acting", "dreadful and stupid"]
TOY = pd.DataFrame({"text": (POS + NEG) * 4, "y": ([1] * 4 + [0] * 4) * 4})
TINY_BERT = {"layers": 1, "max_len": 32, "epochs": 4, "batch_size": 4, "lr": 1e-3, "warmup": 0.0,
             "train_rows": None, "val_rows": None}


@pytest.fixture(scope="module")
def imdb(session_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """300 train / 100 validation real IMDB reviews from a database built in the session's tmp dir."""
    with store.connect(session_dir / "reviews.duckdb") as con:
        ensure_imdb(con)
        train, val = store.load_split(con, "imdb", "train"), store.load_split(con, "imdb", "validation")
    return train.sample(300, random_state=0), val.sample(100, random_state=0)


@pytest.fixture(scope="module")
def lstm(imdb) -> tuple[LSTMClassifier, list[dict]]:
    train, val = imdb
    model, history, hyper = LSTMClassifier.fit(
        train, val, "quick", {"vocab_size": 3000, "hidden": 16, "max_len": 64, "epochs": 3, "patience": 9,
                              "lr": 1e-2, "train_rows": None, "val_rows": None}, progress=lambda _: None)
    assert hyper["train_rows"] == 300
    return model, history


def assert_learns(history: list[dict]) -> None:
    assert [h["epoch"] for h in history] == list(range(1, len(history) + 1))
    assert {"epoch", "train_loss", "val_loss", "train_acc", "val_acc", "seconds"} <= set(history[0])
    assert history[-1]["train_loss"] < history[0]["train_loss"]


def assert_round_trip(model, cls, directory: Path) -> np.ndarray:
    p = model.predict_proba(PROBE)
    assert p.shape == (len(PROBE),) and p.dtype == np.float64 and np.all((p >= 0) & (p <= 1))
    model.save(directory)
    loaded = cls.load(directory)
    if hasattr(loaded, "set_precision"):
        # load() picks the arithmetic by a timing of this CPU, which a busy machine can tip either way: compare
        # like with like (the arithmetic is tested on its own, above and in test_kernels)
        loaded.set_precision(model.precision)
    again = loaded.predict_proba(PROBE)
    assert np.array_equal(p, again)
    assert model.n_params() > 0 and model.device in ("cpu", "cuda")
    return p


def test_lstm_learns_and_round_trips(lstm, tmp_path):
    model, history = lstm
    assert_learns(history)
    assert_round_trip(model, LSTMClassifier, tmp_path / "lstm")
    assert sorted(p.name for p in (tmp_path / "lstm").iterdir()) == ["model.json", "vocab.json",
                                                                     "weights.safetensors"]


def test_registry_finds_trained_neural_model(lstm, tmp_path):
    model, _ = lstm
    model.save(tmp_path / "models" / "my-lstm")
    assert "my-lstm" in resolve_names("all", tmp_path / "models")
    loaded = load_model("my-lstm", tmp_path / "models")
    assert np.array_equal(loaded.predict_proba(PROBE), model.predict_proba(PROBE))


def test_bert_learns_and_round_trips(tmp_path):
    model, history, hyper = BertClassifier.fit(TOY, TOY, "quick", TINY_BERT, progress=lambda _: None)
    assert_learns(history)
    assert hyper["train_rows"] == len(TOY)
    assert_round_trip(model, BertClassifier, tmp_path / "bert")
    assert (tmp_path / "bert" / "model.safetensors").exists()


def test_bert_frozen_lower_layers_cached_training(tmp_path):
    """freeze_layers mode: the frozen part never changes, the upper layers learn on the cached states, and
    the cached split forward pass equals the model's ordinary forward pass."""
    cfg = {**TINY_BERT, "layers": 2, "freeze_layers": 1, "bf16": False, "epochs": 5}
    before = BertClassifier.from_checkpoint(BertConfig(layers=2)).net.state_dict()
    model, history, _ = BertClassifier.fit(TOY, TOY, "quick", cfg, progress=lambda _: None)
    assert_learns(history)
    after = model.net.state_dict()
    frozen = [k for k in after if ".embeddings." in k or ".layer.0." in k]
    trained = [k for k in after if ".layer.1." in k]
    assert frozen and all(torch.equal(before[k], after[k]) for k in frozen)
    assert any(not torch.equal(before[k], after[k]) for k in trained)

    seqs = model.encode(PROBE[:3])
    with torch.inference_mode():
        split = model._upper_logits([s.float() for s in model.lower_states(seqs, lambda _: None)])
        whole = torch.cat([model._logits([s]) for s in seqs])
    assert torch.allclose(split, whole, atol=2e-2)  # the cache is stored in fp16
    assert_round_trip(model, BertClassifier, tmp_path / "bert")


def test_head_tail_truncation_keeps_the_end():
    model = BertClassifier.from_checkpoint(BertConfig(layers=1, max_len=16))
    (ids,) = model.encode(["start " * 500 + "the very end"])
    words = model.tokenizer.decode(ids[1:-1]).split()
    assert len(ids) == 16 and words[:3] == ["start"] * 3 and words[-3:] == ["the", "very", "end"]


def test_pack_ternary_round_trip():
    codes = torch.randint(-1, 2, (7, 13), dtype=torch.int8)  # 91 weights: not a multiple of 4
    packed = pack_ternary(codes)
    assert packed.dtype == torch.uint8 and packed.numel() == 23
    assert torch.equal(unpack_ternary(packed, (7, 13)), codes)


@pytest.mark.parametrize("kernel", kernels.available_int8_kernels())
def test_ternary_integer_kernel_matches_float_arithmetic(kernel):
    """Every integer kernel this CPU offers (fast here or not) gives the training-time arithmetic's output."""
    torch.manual_seed(0)
    layer = nn.Linear(384, 96)
    frozen = TernaryLinear.from_bitlinear(layer)
    x = torch.randn(2, 7, 384) * torch.logspace(-2, 1, 7)[None, :, None]  # tokens of very different scales
    frozen.kernel = kernel
    y_int = frozen(x)
    frozen.kernel = "float"
    y_float = frozen(x)
    assert y_int.shape == (2, 7, 96) and y_int.dtype == torch.float32
    assert torch.allclose(y_int, y_float, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kernel", kernels.available_int8_kernels())
def test_bert_int8_inference_stays_close_to_fp32(kernel, monkeypatch):
    """W8A8 on each integer kernel, with the weight width that kernel sums exactly on this CPU."""
    forced = replace(kernels.load_or_measure(), forced=kernel)  # as SENTIMENT_INT8_KERNEL=kernel would
    monkeypatch.setattr(kernels, "current", lambda: forced)
    model = BertClassifier.from_checkpoint(BertConfig(max_len=64))  # all 6 pretrained layers, untrained head
    texts = ["A wonderful, moving film with great acting.", "Dreadful and dull, I hated it.", "meh " * 40]
    with torch.inference_mode():
        fp32 = torch.cat([model.net.base_model(input_ids=torch.tensor([s])).last_hidden_state[:, 0]
                          for s in model.encode(texts)])  # (3, H) [CLS] states
        assert model.set_precision("int8").startswith(f"int8 via {kernel}")
        int8 = torch.cat([model.net.base_model(input_ids=torch.tensor([s])).last_hidden_state[:, 0]
                          for s in model.encode(texts)])
    assert sum(isinstance(m, Int8Linear) for m in model.net.modules()) == 36  # 6 per layer x 6 layers
    assert {m.kernel for m in model.net.modules() if isinstance(m, Int8Linear)} == {kernel}
    assert F.cosine_similarity(fp32, int8).min() > 0.99


def test_bitlinear_weights_are_ternary():
    torch.manual_seed(0)
    net = BertClassifier.from_checkpoint(BertConfig(layers=1)).net
    assert to_bitlinear(net) == 6  # q, k, v, attention output, intermediate, output
    for _, _, layer in encoder_linears(net):
        frozen = TernaryLinear.from_bitlinear(layer)
        assert set(frozen.codes.unique().tolist()) <= {-1, 0, 1}
        # what BitLinear multiplies by in training is exactly codes x one scale
        w = weight_quant(layer.weight.detach().clone())
        assert torch.allclose(w, frozen.codes.float() * frozen.scale, rtol=1e-6, atol=0)


def test_bitbert_learns_packs_and_round_trips(tmp_path):
    model, history, hyper = BitBertClassifier.fit(TOY, TOY, "quick", TINY_BERT, progress=lambda _: None)
    assert_learns(history)
    assert all(isinstance(layer, TernaryLinear) for _, _, layer in encoder_linears(model.net))
    assert "val_acc_stored_embeddings" in hyper
    model.set_precision("int8")  # whatever auto chose on this CPU: compare the integer path with the float one
    p_int = assert_round_trip(model, BitBertClassifier, tmp_path / "bitbert")
    model.set_precision("float")  # the training-time arithmetic: ternary codes as fp32 numbers
    p_float = model.predict_proba(PROBE)
    assert np.allclose(p_int, p_float, atol=1e-4) and not np.array_equal(p_int, p_float)

    with safe_open(str(tmp_path / "bitbert" / WEIGHTS), "pt") as f:
        keys = list(f.keys())
        packed = [k for k in keys if k.endswith(".packed")]
        assert len(packed) == 6 and all(f.get_tensor(k).dtype == torch.uint8 for k in packed)
        assert not any(k.endswith(("query.weight", "dense.weight")) and "encoder" in k for k in keys)
        assert f.get_tensor(next(k for k in keys if "word_embeddings" in k)).dtype == torch.float16
    assert not list((tmp_path / "bitbert").glob("*.bin")) and not list((tmp_path / "bitbert").glob("*.pt"))

    BertClassifier.from_checkpoint(BertConfig(layers=1)).save(tmp_path / "bert")
    assert dir_bytes(tmp_path / "bitbert") * 2 < dir_bytes(tmp_path / "bert")


@pytest.mark.parametrize("compiled", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_score_all_picks_up_every_neural_kind(lstm, tmp_path, compiled):
    """jobs.score --models all scores with every trained kind; --precision int8 (and --compile, a slow
    check) reach the BERT family (bitbert's integer kernels compiled too)."""
    import duckdb

    from jobs import score

    models = tmp_path / "models"
    lstm[0].save(models / "lstm-tiny")
    BertClassifier.fit(TOY, TOY, "quick", {**TINY_BERT, "epochs": 1}, progress=lambda _: None)[0].save(
        models / "bert-tiny")
    BitBertClassifier.fit(TOY, TOY, "quick", {**TINY_BERT, "epochs": 1}, progress=lambda _: None)[0].save(
        models / "bitbert-tiny")
    csv = tmp_path / "reviews.csv"
    pd.DataFrame({"id": [f"r{i}" for i in range(len(TOY))], "body": TOY["text"],
                  "sentiment": TOY["y"].map({1: "positive", 0: "negative"})}).to_csv(csv, index=False)
    db = tmp_path / "scored.duckdb"
    assert score.main([str(csv), "--db", str(db), "--corpus", "toy", "--text-col", "body", "--id-col", "id",
                       "--label-col", "sentiment", "--models", "all", "--models-dir", str(models),
                       "--precision", "int8", *(["--compile"] if compiled else [])]) == 0
    with duckdb.connect(str(db), read_only=True) as con:
        counts = dict(con.execute("SELECT model, count(*) FROM predictions GROUP BY model").fetchall())
        run_models, arithmetic = con.execute("SELECT models, arithmetic FROM runs").fetchone()
    assert counts == {"bert-tiny": len(TOY), "bitbert-tiny": len(TOY), "lstm-tiny": len(TOY), "vader": len(TOY)}
    assert "bert-tiny[int8]" in run_models.split(",") and "lstm-tiny" in run_models.split(",")
    recorded = json.loads(arithmetic)  # the CPU, the measured plan and why, each model's path
    plan = kernels.current()
    assert recorded["cpu"] == plan.cpu.describe() and recorded["plan"] == plan.why()
    assert recorded["models"]["bert-tiny"].startswith(f"int8 via {plan.fastest_int8}")
    assert recorded["models"]["bitbert-tiny"].startswith(f"int8 x ternary via {plan.fastest_int8}")


@pytest.mark.slow  # make test-slow: --compile is opt-in, and compiling costs seconds per test
@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_compiled_bert_predicts_as_eager(precision):
    """compile() (TorchInductor, dynamic shapes) changes the speed, not the predictions, on every batch shape."""
    model = BertClassifier.from_checkpoint(BertConfig(layers=1, max_len=64, predict_batch_size=4))
    model.set_precision(precision)
    texts = POS + NEG + ["meh " * 40, "ok"]  # batches of 4, 4 and 2 reviews, of different lengths
    eager = model.predict_proba(texts)
    model.compile()
    compiled = model.predict_proba(texts)
    assert type(model.net).__name__ == "OptimizedModule"
    assert np.allclose(eager, compiled, atol=1e-4)


@pytest.mark.slow  # make test-slow
def test_bitbert_distils_from_a_trained_teacher_with_unlabelled_reviews(tmp_path):
    teacher, _, _ = BertClassifier.fit(TOY, TOY, "quick", TINY_BERT, progress=lambda _: None)
    teacher.save(tmp_path / "teacher")
    lines: list[str] = []
    cfg = {**TINY_BERT, "layers": None, "pretrained": str(tmp_path / "teacher"), "train_rows": 16,
           "kd_logits": 1.0, "kd_hidden": 1.0, "unlabelled": 8}
    model, history, hyper = BitBertClassifier.fit(TOY, TOY, "quick", cfg, progress=lines.append)
    assert_learns(history)
    said = next(line for line in lines if "distilling from" in line)
    assert "24 reviews (8 unlabelled)" in said  # 16 labelled + 8 of the train rows left over, without labels
    assert all(math.isfinite(hyper[k]) and hyper[k] > 0 for k in ("loss_ce", "loss_kl", "loss_hidden"))
    curve = pd.DataFrame(model.loss_curve)  # 24 reviews / 4 per step = 6 steps an epoch (<= 4, early stopping)
    steps = 6 * len(history)
    assert set(curve["term"]) == {"ce", "kl", "hidden", "total"}
    for term, points in curve.groupby("term"):  # fewer than 50 steps in all: a point each
        assert points["step"].tolist() == list(range(1, steps + 1)) and points["examples"].iloc[-1] == 4 * steps
        if term != "total":  # the curve's points average to the manifest's mean of the term
            assert math.isclose(points["value"].mean(), hyper[f"loss_{term}"], rel_tol=1e-3)
    assert all(isinstance(layer, TernaryLinear) for _, _, layer in encoder_linears(model.net))
    assert_round_trip(model, BitBertClassifier, tmp_path / "student")
    manifest = json.loads((tmp_path / "student" / "model.json").read_text())
    manifest["config"]["subln"] = True  # a checkpoint of the removed SubLN option: refused, never half loaded
    (tmp_path / "student" / "model.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="SubLN"):
        BitBertClassifier.load(tmp_path / "student")

    with pytest.raises(ValueError, match="trained bert folder"):  # raw MiniLM has no trained head to learn from
        BitBertClassifier.fit(TOY, TOY, "quick", {**TINY_BERT, "kd_logits": 1.0}, progress=lambda _: None)
