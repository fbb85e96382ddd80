"""The one training loop of the neural families (lstm, bert, bitbert), in the spirit of nanoGPT's train.py.

A family builds its model, optimizer and encoded data, then hands this loop three closures:

    batches()  -> iterable of index arrays, one epoch in its order (a fresh shuffle each call)
    step(idx)  -> (loss summed over the batch, correct predictions): forward, loss, backward, optimizer step
    evaluate() -> (mean validation loss, validation accuracy)

The loop owns epochs, the history rows, progress and early stopping: it stops after ``patience`` epochs
without a lower validation loss and leaves the network holding the best epoch's weights.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from core.checkpoint import Checkpoint, Interrupted, load_optimizer, optimizer_state
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
                 progress: Callable[[str], None] = print, resume: Resume | None = None) -> tuple[list[dict], int]:
    """Train ``net`` for up to ``settings.epochs`` epochs; returns (history, best epoch).

    History has one row per epoch run: epoch, train_loss, val_loss, train_acc, val_acc, seconds (since the
    start). On return ``net`` holds the best epoch's weights and is in eval mode. With ``resume``, the run
    starts from its checkpoint if there is one, saves one every few minutes, and on Ctrl-C or SIGTERM saves
    one and raises Interrupted (core.checkpoint)."""
    label, epochs = settings.label, settings.epochs
    ticker = Progress(label, epochs * n_train, "examples", emit=progress, every=settings.every)
    run = _Run(history=[], best_loss=float("inf"), best_epoch=0, best_state=None, epoch=1, position=0,
               sums=[0.0, 0, 0], elapsed=0.0, epoch_rng=None)
    if resume is not None and (saved := resume.checkpoint.load()) is not None:
        run = resume.restore(net, *saved)
        progress(f"{label}: resuming from its checkpoint: epoch {run.epoch}, {run.sums[2]:,} of its examples done")
        ticker.update(n_train * (run.epoch - 1) + run.sums[2])
    start = time.perf_counter() - run.elapsed
    guard = resume.checkpoint.stop_on_signals() if resume is not None else contextlib.nullcontext()
    with guard:
        for epoch in range(run.epoch, epochs + 1):
            net.train()
            if resume is not None:
                if run.epoch_rng is not None and epoch == run.epoch:  # replay the interrupted epoch's order
                    resume.rng.bit_generator.state = run.epoch_rng
                run.epoch_rng = resume.rng.bit_generator.state
            order = list(batches())
            for b, idx in enumerate(order):
                if epoch == run.epoch and b < run.position:
                    continue
                batch_loss, batch_correct = step(idx)
                run.sums = [run.sums[0] + batch_loss, run.sums[1] + batch_correct, run.sums[2] + len(idx)]
                ticker.update(len(idx), extra=f", epoch {epoch}, loss {run.sums[0] / run.sums[2]:.4f}")
                if resume is not None and resume.checkpoint.due():
                    run.epoch, run.position, run.elapsed = epoch, b + 1, time.perf_counter() - start
                    resume.save(net, run)
                    if resume.checkpoint.stop_requested:
                        progress(f"{label}: stopped in epoch {epoch}; its checkpoint is saved: run the same "
                                 "command again to resume")
                        raise Interrupted(f"{label}: interrupted in epoch {epoch}; run again to resume")
            loss_sum, correct, seen = run.sums
            val_loss, val_acc = evaluate()
            run.history.append({"epoch": epoch, "train_loss": loss_sum / seen, "val_loss": val_loss,
                                "train_acc": correct / seen, "val_acc": val_acc,
                                "seconds": time.perf_counter() - start})
            run.sums, run.position = [0.0, 0, 0], 0
            progress(f"{label}: epoch {epoch} train loss {loss_sum / seen:.4f} acc {correct / seen:.4f}, "
                     f"validation loss {val_loss:.4f} acc {val_acc:.4f}")
            if val_loss < run.best_loss:
                # the old copy goes first: two BERT copies at once would double the peak memory
                run.best_loss, run.best_epoch, run.best_state = val_loss, epoch, None
                if epoch < epochs:  # after the last epoch no later one can need the copy: the live weights are it
                    run.best_state = copy.deepcopy(net.state_dict())
            elif epoch - run.best_epoch >= settings.patience:
                progress(f"{label}: early stop after epoch {epoch}: no lower validation loss in "
                         f"{settings.patience} epoch(s); keeping epoch {run.best_epoch}")
                break
    history, best_epoch = run.history, run.best_epoch
    if best_epoch == 0:  # no finite validation loss at all: keep what the last epoch left
        best_epoch = history[-1]["epoch"]
    elif best_epoch != history[-1]["epoch"]:
        net.load_state_dict(run.best_state)
    net.eval()
    return history, best_epoch


@dataclass
class _Run:
    """Where a training run stands: what a checkpoint holds besides the network and the optimizer."""

    history: list[dict]
    best_loss: float
    best_epoch: int
    best_state: dict | None          # the best epoch's weights, while a later epoch may still need them
    epoch: int                       # the epoch in progress
    position: int                    # batches of it done
    sums: list                       # its loss sum, correct predictions, examples so far
    elapsed: float                   # seconds of training before this process
    epoch_rng: dict | None           # numpy's generator state when the epoch drew its batch order


@dataclass
class Resume:
    """What a resumable run saves beside the network: its optimizer, scheduler and batch-order generator."""

    checkpoint: Checkpoint
    opt: torch.optim.Optimizer
    rng: np.random.Generator
    sched: torch.optim.lr_scheduler.LRScheduler | None = None

    def save(self, net: nn.Module, run: _Run) -> None:
        tensors, opt_meta = optimizer_state(self.opt)
        tensors |= {f"net.{k}": v for k, v in net.state_dict().items()}
        tensors["torch_rng"] = torch.get_rng_state()
        if run.best_state is not None:
            tensors |= {f"best.{k}": v for k, v in run.best_state.items()}
        meta = {"optimizer": opt_meta, "scheduler": self.sched.state_dict() if self.sched else None,
                "run": {k: v for k, v in vars(run).items() if k != "best_state"}, "has_best": run.best_state is not None}
        self.checkpoint.save(tensors, meta)

    def restore(self, net: nn.Module, tensors: dict[str, torch.Tensor], meta: dict) -> _Run:
        net.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")})
        load_optimizer(self.opt, tensors, meta["optimizer"])
        if self.sched is not None:
            self.sched.load_state_dict(meta["scheduler"])
        torch.set_rng_state(tensors["torch_rng"])
        best = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")} if meta["has_best"] else None
        return _Run(**meta["run"], best_state=best)
