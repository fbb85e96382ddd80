"""A stacked model: a logistic regression over other models' logits (and, optionally, the review's length).

The members are trained models, named in the stack's model.json; the stack holds only its weights. Their
errors differ (a lexicon, tf-idf, an LSTM and a BERT miss different reviews), so a weighted vote of their
confidences beats the best of them. It learns on the corpus's validation split, which none of the members
learnt from, and reports its accuracy there cross-fitted: each validation review is scored by a fit on the
other folds, never by one that saw it.

jobs.score computes a stack from its members' predictions (``predict_from``): those stored, or those the
same run just made, so nothing is scored twice. ``predict_proba(texts)`` loads the members and runs them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import expit, logit
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from core.errors import ModelError
from core.explain import Explanation
from core.models import load_model, write_manifest

KIND = "stack"
EPS = 1e-6  # probabilities are clipped to [EPS, 1 - EPS] before their logit: a lexicon says 0.0 and 1.0


@dataclass
class StackConfig:
    members: list[str] = field(default_factory=list)  # trained models whose logits it weighs
    length: bool = False  # also weigh log(1 + the review's length in characters)
    C: float = 1.0  # inverse L2 strength of the logistic regression
    folds: int = 5  # cross-fitting folds of the validation accuracy


PRESETS = {"quick": StackConfig(), "full": StackConfig()}  # a stack trains in seconds: one preset in effect


def features(probs: np.ndarray, n_chars: np.ndarray | None) -> np.ndarray:
    """(n, k) members' P(positive) [+ (n,) lengths] -> (n, k [+1]) the regression's inputs."""
    x = logit(np.clip(probs, EPS, 1 - EPS))
    if n_chars is not None:
        x = np.column_stack([x, np.log1p(np.asarray(n_chars, dtype=np.float64))])
    return x


class Stack:
    kind = KIND

    def __init__(self, cfg: StackConfig, coef: np.ndarray, intercept: float, root: Path | None = None):
        self.cfg, self.coef, self.intercept = cfg, np.asarray(coef, dtype=np.float64), float(intercept)
        self.root = root  # where the members are (the stack's own folder's parent)
        self._members: dict | None = None

    @property
    def members(self) -> list[str]:
        return list(self.cfg.members)

    def weights(self) -> dict[str, float]:
        """Each input's weight on the logit: a member's, and ``length``'s if used."""
        names = self.members + (["length"] if self.cfg.length else [])
        return dict(zip(names, self.coef.tolist(), strict=True))

    # -- predicting

    def predict_from(self, probs: np.ndarray, n_chars: np.ndarray | None = None) -> np.ndarray:
        """(n, k) the members' P(positive), in ``members`` order, [+ (n,) lengths] -> (n,) P(positive)."""
        x = features(probs, n_chars if self.cfg.length else None)
        return expit(self.intercept + x @ self.coef)

    def member_models(self) -> dict:
        if self._members is None:
            self._members = {name: load_model(name, self.root) for name in self.members}
        return self._members

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        probs = np.column_stack([m.predict_proba(texts) for m in self.member_models().values()])
        return self.predict_from(probs, np.array([len(t) for t in texts]))

    def explain(self, texts: list[str]) -> list[Explanation]:
        """Each member's word weights, taken to its logit, times its weight in the stack, summed per word and
        scaled to P(positive): exact for the members' logits as each member's explanation gives them."""
        per_member = [m.explain(texts) for m in self.member_models().values()]
        p = self.predict_proba(texts)
        out = []
        for i, text in enumerate(texts):
            shares: dict[tuple[int, int], float] = {}
            base_x = []
            for w, ex in zip(self.coef, (e[i] for e in per_member)):
                lo, hi = np.clip([ex.base, ex.p], EPS, 1 - EPS)
                to_logit = (logit(hi) - logit(lo)) / (hi - lo) if abs(hi - lo) > 1e-9 else 0.0
                for s, e, weight in ex.spans:
                    shares[(s, e)] = shares.get((s, e), 0.0) + w * weight * to_logit
                base_x.append(ex.base)
            lengths = np.array([len(text)]) if self.cfg.length else None
            base = float(self.predict_from(np.array([base_x]), lengths)[0])  # the members' reference inputs
            total = sum(shares.values())
            scale = (p[i] - base) / total if abs(total) > 1e-12 else 0.0
            spans = sorted((s, e, v * scale) for (s, e), v in shares.items() if v)
            out.append(Explanation(spans, float(p[i]), base, "stack: members' explanations, weighted"))
        return out

    # -- training

    @classmethod
    def fit(cls, train: pd.DataFrame, val: pd.DataFrame, preset: str = "quick", overrides: dict | None = None,
            progress=print) -> tuple[Stack, list[dict], dict]:
        """Learn the weights on ``val`` (the members never learnt from it; ``train`` is not used), which carries
        a column ``p:<member>`` of each member's P(positive) (jobs.train reads or makes them)."""
        overrides = dict(overrides or {})
        members = overrides.pop("members", None)
        if isinstance(members, str):
            members = [m.strip() for m in members.split(",") if m.strip()]
        if not members:
            raise ModelError("a stack needs its members: --set members=a,b,c (trained model names)")
        cfg = StackConfig(**{**asdict(PRESETS[preset]), **overrides, "members": list(members)})
        lacking = [m for m in cfg.members if f"p:{m}" not in val]
        if lacking:
            raise ModelError(f"no validation predictions of the stack's members {', '.join(lacking)}")
        probs = val[[f"p:{m}" for m in cfg.members]].to_numpy(dtype=np.float64)
        n_chars = val["text"].str.len().to_numpy() if cfg.length else None
        x, y = features(probs, n_chars), val["y"].to_numpy()
        out_of_fold = np.zeros(len(y))
        for fit_idx, held in StratifiedKFold(cfg.folds, shuffle=True, random_state=0).split(x, y):
            lr = LogisticRegression(C=cfg.C, max_iter=1000).fit(x[fit_idx], y[fit_idx])
            out_of_fold[held] = lr.predict_proba(x[held])[:, 1]
        val_acc = float(((out_of_fold >= 0.5) == y).mean())
        lr = LogisticRegression(C=cfg.C, max_iter=1000).fit(x, y)
        model = cls(cfg, lr.coef_[0], lr.intercept_[0])
        best = max(float(((probs[:, j] >= 0.5) == y).mean()) for j in range(probs.shape[1]))
        progress(f"stack of {', '.join(cfg.members)}: validation accuracy {val_acc:.4f} cross-fitted "
                 f"({cfg.folds} folds; best member {best:.4f}); weights "
                 + ", ".join(f"{k} {v:+.3f}" for k, v in model.weights().items()))
        history = [{"epoch": 1, "val_acc": val_acc, "seconds": 0.0}]
        return model, history, {**asdict(cfg), "weights": model.weights(), "intercept": model.intercept,
                                "train_rows": len(val)}

    def n_params(self) -> int:
        return len(self.coef) + 1

    # -- saving

    def save(self, directory: Path) -> None:
        write_manifest(Path(directory), KIND, config=asdict(self.cfg), coef=self.coef.tolist(),
                       intercept=self.intercept)

    @classmethod
    def load(cls, directory: Path) -> Stack:
        manifest = json.loads((Path(directory) / "model.json").read_text())
        return cls(StackConfig(**manifest["config"]), np.array(manifest["coef"]), manifest["intercept"],
                   Path(directory).parent)
