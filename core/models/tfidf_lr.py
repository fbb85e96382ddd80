"""TF-IDF (word 1-2 grams) + logistic regression: the classical baseline a deep model must beat.

Saved without pickle: vocabulary as JSON (terms in column order), idf / coef as .npy (allow_pickle=False).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import expit
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from core.models import write_manifest

KIND = "tfidf-lr"


@dataclass
class TfidfConfig:
    ngram_max: int = 2
    min_df: int = 2
    max_df: float = 0.9
    max_features: int = 400_000
    sublinear_tf: bool = True
    c_grid: tuple[float, ...] = (2.0, 8.0, 32.0)  # chosen on the validation split


PRESETS = {"quick": TfidfConfig(c_grid=(8.0,)), "full": TfidfConfig()}


def _vectorizer(cfg: TfidfConfig, vocabulary: dict[str, int] | None = None) -> TfidfVectorizer:
    return TfidfVectorizer(ngram_range=(1, cfg.ngram_max), min_df=cfg.min_df, max_df=cfg.max_df,
                           max_features=cfg.max_features, sublinear_tf=cfg.sublinear_tf, dtype=np.float32,
                           vocabulary=vocabulary)


class TfidfLR:
    kind = KIND

    def __init__(self, vectorizer: TfidfVectorizer, coef: np.ndarray, intercept: float, cfg: TfidfConfig):
        self.vectorizer, self.coef, self.intercept, self.cfg = vectorizer, coef, float(intercept), cfg

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        x = self.vectorizer.transform(texts)  # (n, vocab) sparse
        return expit(x @ self.coef + self.intercept).astype(np.float64)

    def n_params(self) -> int:
        return int(self.coef.size + 1)

    @classmethod
    def fit(cls, train: pd.DataFrame, val: pd.DataFrame, preset: str = "quick", overrides: dict | None = None,
            progress=print) -> tuple[TfidfLR, list[dict], dict]:
        cfg = TfidfConfig(**{**asdict(PRESETS[preset]), **(overrides or {})})
        start = time.perf_counter()
        vec = _vectorizer(cfg)
        x_train = vec.fit_transform(train["text"])
        x_val = vec.transform(val["text"])
        progress(f"tfidf: {x_train.shape[1]:,} features from {len(train):,} reviews")
        best, history = None, []
        for i, c in enumerate(cfg.c_grid):
            lr = LogisticRegression(C=c, max_iter=1000, solver="liblinear").fit(x_train, train["y"])
            val_acc = float((lr.predict(x_val) == val["y"]).mean())
            train_acc = float((lr.predict(x_train) == train["y"]).mean())
            history.append({"epoch": i + 1, "train_acc": train_acc, "val_acc": val_acc, "C": c,
                            "seconds": time.perf_counter() - start})
            progress(f"tfidf: C={c} validation accuracy {val_acc:.4f}")
            if best is None or val_acc > best[0]:
                best = (val_acc, c, lr)
        _, c, lr = best
        model = cls(vec, lr.coef_.ravel().astype(np.float32), lr.intercept_[0], cfg)
        return model, history, {**asdict(cfg), "C": c}

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        write_manifest(directory, KIND, config=asdict(self.cfg), intercept=self.intercept)
        terms = sorted(self.vectorizer.vocabulary_, key=self.vectorizer.vocabulary_.get)
        (directory / "vocabulary.json").write_text(json.dumps(terms))
        np.save(directory / "idf.npy", self.vectorizer.idf_.astype(np.float32), allow_pickle=False)
        np.save(directory / "coef.npy", self.coef, allow_pickle=False)

    @classmethod
    def load(cls, directory: Path) -> TfidfLR:
        directory = Path(directory)
        manifest = json.loads((directory / "model.json").read_text())
        cfg = TfidfConfig(**{**manifest["config"], "c_grid": tuple(manifest["config"]["c_grid"])})
        terms = json.loads((directory / "vocabulary.json").read_text())
        vec = _vectorizer(cfg, vocabulary={t: i for i, t in enumerate(terms)})
        vec.idf_ = np.load(directory / "idf.npy", allow_pickle=False)
        return cls(vec, np.load(directory / "coef.npy", allow_pickle=False), manifest["intercept"], cfg)
