"""Model registry: a model *kind* (tfidf-lr, vader, lstm, bert, bitbert, stack) is a class in its own module;
a trained *model* is a folder ``data/models/NAME/`` whose ``model.json`` names its kind.

Every model class has the same small interface:

    predict_proba(texts: list[str]) -> np.ndarray   # shape (n,), P(positive) as float64
    explain(texts: list[str]) -> list[Explanation]  # per review: words (character spans), their weight on P
    save(directory: Path) -> None                   # writes model.json + weights, never pickle
    load(directory: Path) -> Model                  # classmethod
    fit(train, val, preset, overrides, progress) -> (Model, history, hyperparams)   # classmethod
        train/val: DataFrames with columns text, y (1 = positive); history: one dict per epoch
    n_params() -> int

Modules are imported lazily so that importing the registry (the dashboard does) never imports torch.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

from core.errors import ModelError
from core.paths import models_dir

KINDS: dict[str, str] = {
    "tfidf-lr": "core.models.tfidf_lr:TfidfLR",
    "vader": "core.models.vader:Vader",
    "lstm": "core.models.lstm:LSTMClassifier",
    "bert": "core.models.bert:BertClassifier",
    "bitbert": "core.models.bitbert:BitBertClassifier",
    "stack": "core.models.stack:Stack",  # a logistic regression over other models' logits
}
BUILTIN = {"vader": "vader"}  # models usable with no training: name -> kind


def model_class(kind: str) -> Any:
    if kind not in KINDS:
        raise ModelError(f"unknown model kind {kind!r}; known kinds: {', '.join(KINDS)}")
    module, cls = KINDS[kind].split(":")
    return getattr(importlib.import_module(module), cls)


def write_manifest(directory: Path, kind: str, **extra: Any) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "model.json").write_text(json.dumps({"kind": kind, **extra}, indent=2))


def add_to_manifest(directory: Path, **extra: Any) -> None:
    """Add keys to a saved model's model.json (jobs.train: the corpus it learnt from, its train size)."""
    path = Path(directory) / "model.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **extra}, indent=2))


def read_manifest(directory: Path) -> dict:
    path = directory / "model.json"
    if not path.exists():
        raise ModelError(f"{directory} holds no trained model (no model.json); train it with jobs.train")
    return json.loads(path.read_text())


def available_models(root: Path | None = None) -> list[str]:
    """Names of every trained model under ``root`` plus the built-in ones, sorted."""
    root = root or models_dir()
    trained = {p.parent.name for p in root.glob("*/model.json")} if root.exists() else set()
    return sorted(trained | set(BUILTIN))


def resolve_names(spec: str, root: Path | None = None) -> list[str]:
    """'all', 'none' (import without scoring) or a comma list -> model names, checking that each exists."""
    known = available_models(root)
    if spec.strip() == "none":
        return []
    if spec.strip() == "all":
        return known
    names = [n.strip() for n in spec.split(",") if n.strip()]
    missing = [n for n in names if n not in known]
    if missing:
        raise ModelError(f"no trained model named {', '.join(missing)}; available: {', '.join(known)}")
    return names


def with_members(names: list[str], root: Path | None = None) -> list[str]:
    """``names`` with each stack's members (core.models.stack) before it where the list lacks them: a run
    scores the members first and computes the stack from their predictions."""
    out: list[str] = []
    for name in names:
        if model_kind(name, root) == "stack":
            out += [m for m in read_manifest((root or models_dir()) / name)["config"]["members"] if m not in out]
        out.append(name)
    return list(dict.fromkeys(out))


def model_kind(name: str, root: Path | None = None) -> str:
    """The kind of a trained model (its model.json), or of a built-in one that has no folder."""
    directory = (root or models_dir()) / name
    if not (directory / "model.json").exists() and name in BUILTIN:
        return BUILTIN[name]
    return read_manifest(directory)["kind"]


def load_model(name: str, root: Path | None = None) -> Any:
    root = root or models_dir()
    kind = model_kind(name, root)  # raises unless trained or built in
    if not (root / name / "model.json").exists():  # built in: nothing to load
        return model_class(kind)()
    return model_class(kind).load(root / name)


# what jobs.train writes into model.json beside the kind, so that any database the model scores into can show it
FACTS = ("preset", "hyperparams", "n_params", "train_seconds", "device", "trained_at", "trained_on", "train_rows",
         "train_classes")


def model_facts(name: str, root: Path | None = None, model: Any = None) -> dict:
    """A model's row of the ``models`` table from its folder: its model.json, and what a model.json written
    before the facts were kept lacks (parameters from the loaded ``model``, bytes from the folder)."""
    directory = (root or models_dir()) / name
    manifest = read_manifest(directory) if (directory / "model.json").exists() else {"kind": model_kind(name, root)}
    info = {"model": name, "kind": manifest["kind"], **{k: manifest.get(k) for k in FACTS}}
    if info["n_params"] is None:
        model = model if model is not None else load_model(name, root)
        info["n_params"] = model.n_params()
    if directory.is_dir():
        info["bytes_on_disk"] = dir_bytes(directory)
    else:  # a built-in model with no folder: what it reads from its package; it was never trained
        model = model if model is not None else load_model(name, root)
        info.update(bytes_on_disk=model.bytes_on_disk(), preset="builtin", train_seconds=0.0, device="cpu")
    if info["trained_on"] is None and info["kind"] != "vader" and "trained_on" not in manifest:
        info["trained_on"] = "imdb"  # models saved before provenance was kept were all trained on imdb
    return info


def dir_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())
