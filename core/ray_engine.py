"""The Ray Data engine of ``jobs.score --engine ray``: models held by an actor pool, fed through the object store.

What runs where:
- the driver (the ``jobs.score`` process) reads and cleans the input, stores reviews and rejects, decides what
  each model still lacks, puts that work into Ray's object store (``add``), and writes every prediction to
  DuckDB from the stream that ``results`` returns. Only the driver opens the database (DuckDB allows one
  writer per file), so resume and rejects behave exactly as with the local engine;
- the actors (``ModelActor``, a ``ray.data.ActorPoolStrategy`` pool) each load the models once and turn
  batches of ``review_id, text, todo:MODEL...`` into long rows ``review_id, model, p_positive, seconds``.

The work travels through the object store, never through files, so the same code runs on a local Ray
instance or on a cluster (``address="ray://head:10001"`` or ``"auto"``); the workers then need this project
installed and the models folder at the same path (shared storage).

Only ``jobs.score`` imports this module, and only with ``--engine ray``. ``score`` is the engine: the same
``core.ingest.Ingest`` chunk pipeline as the local engine, with the predicting done by the pool.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Self

import pandas as pd
import pyarrow as pa
import ray

from core.errors import SentimentError
from core.ingest import Ingest
from core.progress import Progress

RESULT_COLUMNS = ["review_id", "model", "p_positive", "seconds"]


class ModelActor:
    """One pool member: loads the models once, scores batches, returns one row per prediction."""

    def __init__(self, names: list[str], models_dir: str, threads: int):
        # imported in the actor: model modules pull in torch, which the driver does not need
        from core.models import load_model

        self.models = {n: load_model(n, Path(models_dir)) for n in names}
        try:  # the neural models use every core by default; share them with the other actors
            import torch

            torch.set_num_threads(threads)
        except ImportError:
            pass

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        parts = []
        for name, model in self.models.items():
            rows = batch[batch[f"todo:{name}"]]
            if rows.empty:
                continue
            t0 = time.perf_counter()
            p = model.predict_proba(rows["text"].tolist())
            per_row = (time.perf_counter() - t0) / len(rows)  # so the driver can sum model time per model
            parts.append(pd.DataFrame({"review_id": rows["review_id"].to_numpy(), "model": name,
                                       "p_positive": p, "seconds": per_row}))
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=RESULT_COLUMNS)


class RayScorer:
    """Queue work with ``add``; then iterate ``results`` for DataFrames of RESULT_COLUMNS.

    Starts a local Ray instance unless ``address`` names a cluster or Ray is already initialised; shuts
    down only what it started.
    """

    def __init__(self, names: list[str], models_dir: Path, *, address: str | None = None, actors: int = 2,
                 actor_cpus: float = 0.5, batch_rows: int = 500):
        self.names, self.models_dir = names, Path(models_dir).resolve()
        self.actors, self.actor_cpus, self.batch_rows = actors, actor_cpus, batch_rows
        self.address = address
        self.refs: list[ray.ObjectRef] = []
        self.queued = 0  # predictions asked for
        self._started = False

    def __enter__(self) -> Self:
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # no token prompt/warning for a local instance
        if not ray.is_initialized():
            try:
                ray.init(address=self.address, include_dashboard=False, log_to_driver=False,
                         logging_level="ERROR")
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise SentimentError(f"cannot start or reach Ray (address {self.address or 'local'}): {e}") from e
            self._started = True
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False  # jobs.score prints its own progress line
        return self

    def __exit__(self, *exc) -> None:
        self.refs.clear()
        if self._started:
            ray.shutdown()

    def add(self, work: pd.DataFrame) -> None:
        """Queue one chunk: columns review_id, text and a boolean ``todo:MODEL`` per model."""
        if work.empty:
            return
        # one object-store block per chunk (Arrow: no pickling of the texts); many blocks let every actor work
        self.refs.append(ray.put(pa.Table.from_pandas(work, preserve_index=False)))
        self.queued += int(work.filter(like="todo:").to_numpy().sum())

    def results(self) -> Iterator[pd.DataFrame]:
        """Predictions for everything queued, streamed as the actors finish batches."""
        if not self.refs:
            return
        ds = ray.data.from_arrow_refs(self.refs).map_batches(
            ModelActor,
            fn_constructor_kwargs={"names": self.names, "models_dir": str(self.models_dir),
                                   "threads": max(int(self.actor_cpus), 1)},
            compute=ray.data.ActorPoolStrategy(size=self.actors),
            num_cpus=self.actor_cpus,
            batch_size=self.batch_rows,
            batch_format="pandas",
        )
        for batch in ds.iter_batches(batch_format="pandas", batch_size=None):
            if len(batch):
                yield batch


def score(ingest: Ingest, names: list[str], models_dir: Path, *, address: str | None = None, actors: int = 2,
          actor_cpus: float = 0.5, batch_rows: int = 500) -> None:
    """This process reads the input, stores reviews + rejects and works out what each model still lacks
    (``Ingest.work``, exactly as the local engine); the actor pool predicts; this process writes.

    Two passes: the first queues the missing work in Ray's object store chunk by chunk, the second streams
    the predictions back. An interruption in either leaves a state that a rerun completes.
    """
    progress = Progress(f"queue {ingest.corpus}")
    with RayScorer(names, models_dir, address=address, actors=actors, actor_cpus=actor_cpus,
                   batch_rows=batch_rows) as scorer:
        for work in ingest.work():
            frame = pd.DataFrame({"review_id": list(work.texts), "text": list(work.texts.values())})
            for name in names:
                frame[f"todo:{name}"] = frame["review_id"].isin(set(work.todo[name]))
            scorer.add(frame[frame.filter(like="todo:").any(axis=1)])
            progress.update(work.rows, work.fraction, f", {ingest.tally.rejected:,} rejected")
        progress = Progress(f"score {ingest.corpus}", total=scorer.queued, unit="predictions")
        for preds in ingest.tally.timings.timed("ray", scorer.results()):
            for name, part in preds.groupby("model", sort=False):
                ingest.write(name, part["review_id"].tolist(), part["p_positive"].to_numpy())
                ingest.tally.timings.seconds[f"model:{name}"] += float(part["seconds"].sum())  # actor time
            progress.update(len(preds))
