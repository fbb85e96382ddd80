"""The one training loop of the neural families (lstm, bert, bitbert), in the spirit of nanoGPT's train.py.

A family builds its model, optimizer and encoded data, then hands this loop three closures:

    batches()  -> iterable of index arrays, one epoch in its order (a fresh shuffle each call)
    step(idx)  -> (loss summed over the batch, correct predictions): forward, loss, backward, optimizer step
    evaluate() -> (mean validation loss, validation accuracy)

The loop owns epochs, the history rows, progress and early stopping: it stops after ``patience`` epochs
without a lower validation loss and leaves the network holding the best epoch's weights.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from core.progress import Progress


@dataclass
class LoopSettings:
    label: str              # the model kind: prefixes every progress line
    epochs: int
    patience: int = 1       # epochs without a lower validation loss before stopping (1: at the first rise)
    every: float = 5.0      # seconds between progress lines within an epoch

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.patience < 1:
            raise ValueError(f"{self.label}: epochs and patience must be at least 1, "
                             f"got epochs={self.epochs}, patience={self.patience}")


def backward_step(loss: torch.Tensor, opt: torch.optim.Optimizer, params: list[nn.Parameter], clip: float,
                  sched: torch.optim.lr_scheduler.LRScheduler | None = None) -> None:
    """zero_grad, backward, clip the gradient norm to ``clip``, optimizer (and scheduler) step."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(params, clip)
    opt.step()
    if sched is not None:
        sched.step()


def train_epochs(settings: LoopSettings, net: nn.Module, n_train: int,
                 batches: Callable[[], Iterable[np.ndarray]],
                 step: Callable[[np.ndarray], tuple[float, int]],
                 evaluate: Callable[[], tuple[float, float]],
                 progress: Callable[[str], None] = print) -> tuple[list[dict], int]:
    """Train ``net`` for up to ``settings.epochs`` epochs; returns (history, best epoch).

    History has one row per epoch run: epoch, train_loss, val_loss, train_acc, val_acc, seconds (since the
    start). On return ``net`` holds the best epoch's weights and is in eval mode."""
    label, epochs = settings.label, settings.epochs
    ticker = Progress(label, epochs * n_train, "examples", emit=progress, every=settings.every)
    history: list[dict] = []
    best_loss, best_epoch, best_state = float("inf"), 0, None
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        net.train()
        loss_sum, correct, seen = 0.0, 0, 0
        for idx in batches():
            batch_loss, batch_correct = step(idx)
            loss_sum, correct, seen = loss_sum + batch_loss, correct + batch_correct, seen + len(idx)
            ticker.update(len(idx), extra=f", epoch {epoch}, loss {loss_sum / seen:.4f}")
        val_loss, val_acc = evaluate()
        history.append({"epoch": epoch, "train_loss": loss_sum / seen, "val_loss": val_loss,
                        "train_acc": correct / seen, "val_acc": val_acc,
                        "seconds": time.perf_counter() - start})
        progress(f"{label}: epoch {epoch} train loss {loss_sum / seen:.4f} acc {correct / seen:.4f}, "
                 f"validation loss {val_loss:.4f} acc {val_acc:.4f}")
        if val_loss < best_loss:
            # the old copy goes first: two BERT copies at once would double the peak memory
            best_loss, best_epoch, best_state = val_loss, epoch, None
            if epoch < epochs:  # after the last epoch no later one can need the copy: the live weights are it
                best_state = copy.deepcopy(net.state_dict())
        elif epoch - best_epoch >= settings.patience:
            progress(f"{label}: early stop after epoch {epoch}: no lower validation loss in "
                     f"{settings.patience} epoch(s); keeping epoch {best_epoch}")
            break
    if best_epoch == 0:  # no finite validation loss at all: keep what the last epoch left
        best_epoch = history[-1]["epoch"]
    elif best_epoch != history[-1]["epoch"]:
        net.load_state_dict(best_state)
    net.eval()
    return history, best_epoch
