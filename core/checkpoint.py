"""Training that survives an interruption: a training run's whole state, saved every few minutes and when
Ctrl-C or SIGTERM asks it to stop, and restored by the next run of the same model (jobs.train).

The state is what the next step depends on: the network's weights, the optimizer's and the scheduler's
state, the random generators (numpy's as at the start of the epoch, which replays the epoch's batch order;
torch's as at the checkpoint, which drives dropout), the position in the epoch, the epoch's running sums,
the history and the best epoch's weights. Resumed, a run takes the same steps on the same batches, so it
ends where an uninterrupted one ends, up to float noise.

A stop request is a flag the training loop reads between steps: a signal never lands inside an optimizer
step. Tensors go to a safetensors file and everything else to JSON, so loading unpickles nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

EVERY_SECONDS = 300.0  # between two checkpoints while training (SENTIMENT_CHECKPOINT_SECONDS overrides)


class Interrupted(KeyboardInterrupt):
    """Training stopped at a Ctrl-C or SIGTERM, after saving a checkpoint it resumes from (a
    KeyboardInterrupt, so a job reports it as one)."""


@dataclass
class Checkpoint:
    """Where a run's state is kept (``directory``) and what it was a run of (``settings``: the model kind,
    preset, overrides, corpus and data sizes): a checkpoint of other settings is not resumed."""

    directory: Path
    settings: dict
    every: float = field(default_factory=lambda: float(os.environ.get("SENTIMENT_CHECKPOINT_SECONDS",
                                                                          EVERY_SECONDS)))
    stop_requested: bool = False
    last_saved: float = field(default_factory=time.monotonic)

    def due(self) -> bool:
        return self.stop_requested or time.monotonic() - self.last_saved >= self.every

    def save(self, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        """Write the state to a new folder, then swap it in: a kill mid-save leaves the previous one."""
        tmp = self.directory.with_name(self.directory.name + ".new")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        save_file({k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}, str(tmp / "state.safetensors"))
        (tmp / "state.json").write_text(json.dumps({"settings": self.settings, **meta}))
        old = self.directory.with_name(self.directory.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if self.directory.exists():
            self.directory.rename(old)
        tmp.rename(self.directory)
        shutil.rmtree(old, ignore_errors=True)
        self.last_saved = time.monotonic()

    def _saved(self) -> Path | None:
        """The folder of the last complete save: the checkpoint, or the one a kill mid-save left as .old."""
        for candidate in (self.directory, self.directory.with_name(self.directory.name + ".old")):
            if (candidate / "state.json").exists() and (candidate / "state.safetensors").exists():
                return candidate
        return None

    def _meta(self, saved: Path) -> dict:
        return json.loads((saved / "state.json").read_text())

    def stale(self) -> bool:
        """Whether a saved state exists that is of other settings (its JSON alone is read)."""
        saved = self._saved()
        return saved is not None and self._meta(saved)["settings"] != json.loads(json.dumps(self.settings))

    def load(self) -> tuple[dict[str, torch.Tensor], dict] | None:
        """(tensors, meta) of the saved state when it is of these settings, else None."""
        saved = self._saved()
        if saved is None or self.stale():
            return None
        meta = self._meta(saved)
        del meta["settings"]
        return load_file(str(saved / "state.safetensors")), meta

    def remove(self) -> None:
        for suffix in ("", ".new", ".old"):
            shutil.rmtree(self.directory.with_name(self.directory.name + suffix), ignore_errors=True)

    @contextmanager
    def stop_on_signals(self) -> Iterator[None]:
        """While training: Ctrl-C and SIGTERM only ask the loop to checkpoint and stop at its next step."""
        def ask(signum, frame) -> None:
            self.stop_requested = True

        previous = {s: signal.signal(s, ask) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)


def optimizer_state(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """An optimizer's state_dict as tensors (per parameter: ``opt.<index>.<name>``) and JSON."""
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for index, per_param in sd["state"].items():
        for name, value in per_param.items():
            if torch.is_tensor(value):
                tensors[f"opt.{index}.{name}"] = value
            else:
                scalars[f"{index}.{name}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def load_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    for key, value in meta["scalars"].items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
