"""Knowledge distillation for the BitLinear student (core.models.bitbert), beside the training loop: a trained
full-precision bert teaches the student, as TernaryBERT does. The loss of a batch is

    ce * cross-entropy(labels)                                        the labelled reviews only
  + kd_logits * T^2 * KL(teacher || student at temperature T)
  + kd_hidden * mean over layers of MSE(student, teacher hidden states)  real tokens only

The teacher's logits are computed once, before the first step; its hidden states on the fly (only when
kd_hidden > 0). ``unlabelled`` more reviews of the train split (never validation or test) join without their
labels (y = -1): they are learnt from the teacher alone.

``LossCurve`` keeps each weighted term's mean every 1/CURVE_POINTS of the steps; jobs.train records it
(training_terms) and the Training page draws it.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from core.models.bert import BertClassifier, padding_mask
from core.models.text_batching import length_batches, pad_batch
from core.progress import Progress

CURVE_POINTS = 50  # points per term in the recorded loss curve, over the whole training


class LossCurve:
    """Each loss term summed over every step (``means``), and its mean over each 1/CURVE_POINTS of the steps
    (``points``: dicts of step, examples, term, value)."""

    def __init__(self, total_steps: int) -> None:
        self.every = max(1, total_steps // CURVE_POINTS)
        self.steps = self.examples = 0
        self.totals: dict[str, float] = {}
        self.window: dict[str, float] = {}
        self.points: list[dict] = []

    def record(self, n: int, terms: dict[str, torch.Tensor]) -> None:
        self.steps += 1
        self.examples += n
        for key, value in terms.items():
            value = float(value.detach())
            self.totals[key] = self.totals.get(key, 0.0) + value
            self.window[key] = self.window.get(key, 0.0) + value
        if self.steps % self.every == 0:
            self.flush()

    def flush(self) -> None:
        steps = self.steps % self.every or self.every
        self.points += [{"step": self.steps, "examples": self.examples, "term": key, "value": total / steps}
                        for key, total in self.window.items()]
        self.window = {}

    def means(self) -> dict[str, float]:
        return {f"loss_{k}": round(v / max(self.steps, 1), 5) for k, v in self.totals.items() if k != "total"}


def teacher_logits(teacher: BertClassifier, seqs: list[list[int]], batch_size: int, progress) -> torch.Tensor:
    """The teacher's logits of every training review, computed once: (N, 2) float32."""
    out = torch.empty(len(seqs), 2)
    ticker = Progress("bitbert teacher", len(seqs), "reviews", emit=progress, every=10.0)
    teacher.net.eval()
    with torch.inference_mode():
        for idx in length_batches([len(s) for s in seqs], batch_size):
            out[idx] = teacher._logits([seqs[i] for i in idx]).float().cpu()
            ticker.update(len(idx))
    return out


class Distiller:
    """The teacher and the weighted loss of a distilled student (``cfg``: a BitBertConfig)."""

    def __init__(self, student: BertClassifier, cfg, x_train: list[list[int]], y_train: np.ndarray,
                 unused: pd.DataFrame, progress) -> None:
        if cfg.freeze_layers:
            raise ValueError("bitbert: distillation trains every layer; freeze_layers must be 0")
        path = Path(cfg.teacher or cfg.pretrained or "")
        if not (path / "model.json").is_file():
            raise ValueError(f"bitbert: the teacher must be a trained bert folder (model.json), not {str(path)!r}: "
                             "--set teacher=data/models/bert-quick")
        teacher = BertClassifier.load(path, student.device)
        if teacher.tokenizer.get_vocab() != student.tokenizer.get_vocab() or (
                cfg.kd_hidden > 0 and teacher.net.config.hidden_size != student.net.config.hidden_size):
            raise ValueError(f"bitbert: the teacher {path} must share the student's tokenizer (and, for kd_hidden, "
                             "its hidden size): start the student from it (--set pretrained=...)")
        extra = unused.sample(n=min(cfg.unlabelled, len(unused)), random_state=cfg.seed)["text"].tolist()
        if extra:
            x_train = [*x_train, *student.encode(extra)]
            y_train = np.concatenate([y_train, np.full(len(extra), -1)])  # -1: no label, teacher only
        t = time.perf_counter()
        self.logits = teacher_logits(teacher, x_train, cfg.eval_batch_size, progress)  # (N, 2)
        labelled = y_train >= 0
        agree = float((self.logits[labelled].argmax(-1).numpy() == y_train[labelled]).mean())
        progress(f"bitbert: distilling from {path} (logits x{cfg.kd_logits}, hidden states x{cfg.kd_hidden}, "
                 f"T={cfg.temperature}); {len(x_train):,} reviews ({len(extra):,} unlabelled); teacher logits "
                 f"in {time.perf_counter() - t:.0f} s, teacher accuracy on the labelled ones {agree:.4f}")
        self.teacher = teacher if cfg.kd_hidden > 0 else None  # logits are cached: the net only for states
        self.student, self.cfg = student, cfg
        self.x_train, self.y_train = x_train, y_train

    def loss(self, idx: np.ndarray, seqs: list[list[int]], y: np.ndarray
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """(loss, logits, target, the weighted terms) of one batch; an unlabelled review's target is the
        teacher's class, so accuracy counts it against the teacher."""
        cfg, net, device = self.cfg, self.student.net, self.student.device
        ids, lengths = pad_batch([seqs[i] for i in idx], self.student.tokenizer.pad_token_id)  # (B, T)
        mask = padding_mask(lengths, ids.size(1)).to(device)  # (B, T)
        out = net(input_ids=ids.to(device), attention_mask=mask, output_hidden_states=cfg.kd_hidden > 0)
        logits = out.logits.float()  # (B, 2)
        target = torch.as_tensor(y[idx], dtype=torch.long, device=device)
        labelled = target >= 0
        ce = F.cross_entropy(logits[labelled], target[labelled]) if labelled.any() else logits.sum() * 0
        t = cfg.temperature
        soft = self.logits[idx].to(device)  # (B, 2)
        kl = F.kl_div(F.log_softmax(logits / t, -1), F.log_softmax(soft / t, -1), log_target=True,
                      reduction="batchmean") * t * t
        hidden = logits.sum() * 0
        if self.teacher is not None:
            with torch.no_grad():
                teacher_states = self.teacher.net(input_ids=ids.to(device), attention_mask=mask,
                                                  output_hidden_states=True).hidden_states
            real = mask.unsqueeze(-1).float()  # (B, T, 1)
            for s_h, t_h in zip(out.hidden_states[1:], teacher_states[1:], strict=True):  # every layer's output
                hidden = hidden + (((s_h - t_h) ** 2) * real).sum() / (real.sum() * s_h.size(-1))
            hidden = hidden / (len(teacher_states) - 1)
        weighted = {"ce": (cfg.ce, ce), "kl": (cfg.kd_logits, kl), "hidden": (cfg.kd_hidden, hidden)}
        loss = sum(w * value for w, value in weighted.values())
        terms = {**{k: value for k, (w, value) in weighted.items() if w > 0}, "total": loss}
        return loss, logits, torch.where(labelled, target, soft.argmax(-1)), terms
