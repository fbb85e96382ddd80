"""The ingest engine of a scoring run: which rows are new, which predictions are missing, what the run did.

A run reads its input in chunks (``core.readers.read_chunks`` per file, a big one read ahead in a child
process by ``core.readers.ahead``; or the reviews already stored for a corpus) and, chunk by chunk:
  1. ``Ingest.work`` stores the chunk's new reviews and its rejects in one transaction and works out, per
     model, which of its reviews still lack a prediction (the resume check);
  2. an engine predicts those (``core.local_engine.score_local``, or ``core.ray_engine.score`` on Ray) and
     hands every batch to ``Ingest.write``, one transaction per batch.
The transactions are committed in order by a thread of their own (``core.store.writer``), beside the models.
An interrupted run commits what it handed over; a killed one loses at most the few writes queued and the
batch in flight. The same command continues where it stopped.

Identity of a row. A file is known by the digest of its bytes (its *fingerprint*). Without an id column a
review's id is ``FINGERPRINT:ROW``, so the same file scored twice is harmless and a different file never
collides with it. With an id column, an id already stored is this file's own row from an earlier run only
when it was stored from the same row of a file with the same fingerprint; anything else is a duplicate,
kept as a counted reject that says where the stored review came from.

Several files (a folder or a glob) are read one after the other, each with its own fingerprint. A file read
to its end is recorded as such (``store.mark_file_read``); a later run skips it when every model asked for
has scored its reviews, so adding a file to a folder and running the same command reads only that file.
"""

from __future__ import annotations

import hashlib
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd

from core import columns, store
from core.corpus import ensure_imdb
from core.errors import InputError, StoreError
from core.metrics import valid_probabilities
from core.readers import FIELD, REJECT_COLUMNS, Chunk, Columns, Format, base_name, check_columns
from core.readers.ahead import read_ahead
from core.splits import split_of_new
from core.store.writer import Writer

FINGERPRINT_CHARS = 12  # hex digits of the file digest kept in ids: 48 bits, ample for a corpus's files


# ------------------------------------------------------------------------------- what a run did


class Timings:
    """Seconds the run spent per phase: 'read' (reading + cleaning input, or waiting for the child that reads
    ahead), 'db' (DuckDB checks, and waiting for the writer thread), 'model:NAME'."""

    def __init__(self) -> None:
        self.seconds: Counter = Counter()

    @contextmanager
    def phase(self, key: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[key] += time.perf_counter() - t0

    def timed(self, key: str, items: Iterable) -> Iterator:
        """Iterate ``items``, counting the time spent producing each item under ``key``."""
        it = iter(items)
        while True:
            with self.phase(key):
                item = next(it, _END)
            if item is _END:
                return
            yield item

    def model_total(self) -> float:
        return sum(v for k, v in self.seconds.items() if k.startswith("model:"))

    def summary(self, elapsed: float) -> str:
        parts = [("read+clean", self.seconds["read"]), ("models", self.model_total()),
                 ("DuckDB", self.seconds["db"])]
        if "ray" in self.seconds:  # models ran in Ray actors, in parallel: show how long the writer waited
            parts = [parts[0], ("waiting on Ray", self.seconds["ray"]), parts[2]]
        other = max(elapsed - sum(v for _, v in parts), 0.0)
        return ", ".join(f"{k} {v:,.1f} s ({v / max(elapsed, 1e-9):.0%})" for k, v in [*parts, ("other", other)])


_END = object()


@dataclass
class Tally:
    """What a run did, for the runs table and the final summary."""

    rows_read: int = 0
    rejected: int = 0
    skipped: int = 0
    scored: Counter = field(default_factory=Counter)  # model -> predictions written
    unparsed: Counter = field(default_factory=Counter)  # kept column -> cells that did not parse as its kind
    timings: Timings = field(default_factory=Timings)


@contextmanager
def recorded_run(con, corpus: str, source: str, models: list[str], tally: Tally, started: float,
                 info: dict[str, Any] | None = None) -> Iterator[str]:
    """A row in ``runs`` for the body's work: 'running', then 'finished', 'interrupted' or 'failed'.

    Holding the database read-write means no other job is writing it (DuckDB allows one writer per file), so
    any run still marked 'running' was killed: it is marked 'interrupted' first.
    """
    stale = store.close_stale_runs(con)
    if stale:
        print(f"{stale} earlier run(s) were still marked 'running' (killed); now marked 'interrupted'",
              file=sys.stderr, flush=True)
    run_id = uuid.uuid4().hex[:12]
    store.start_run(con, run_id, "score", corpus, source, models)
    status = "failed"
    try:
        yield run_id
        status = "finished"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        seconds = tally.timings.seconds
        try:
            store.finish_run(con, run_id, tally.rows_read, sum(tally.scored.values()), tally.rejected,
                             time.perf_counter() - started, status,
                             {"read_seconds": seconds["read"], "model_seconds": tally.timings.model_total(),
                              "db_seconds": seconds["db"], **(info or {})})
        except StoreError as e:  # a full disk, say: the error that stopped the run is the one to report
            print(f"{e}; the next job marks the run interrupted",
                  file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------- identity of rows


def file_fingerprint(path: Path) -> str:
    """The first FINGERPRINT_CHARS hex digits of the BLAKE2b digest of the file's bytes (~1 s per GB)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, lambda: hashlib.blake2b(digest_size=8)).hexdigest()[:FINGERPRINT_CHARS]


class StoredIds:
    """Which review ids a corpus may already hold, so that a chunk of new ids skips the exact check.

    The exact check (store.existing_reviews) joins the chunk against every stored review: its cost grows
    with the table, which made a run's time grow faster than its rows. This keeps DuckDB's 64-bit hash of
    every stored id (8 bytes per review: 8 MB per million) in sorted numpy blocks, merged like a binary
    counter so there are O(log n) of them. "Not stored" is certain; "maybe" (a stored id, or a hash
    collision) falls back to the exact query, so results are exactly those of the query.
    """

    def __init__(self, hashes: np.ndarray):
        self.blocks: list[np.ndarray] = [np.sort(hashes)] if len(hashes) else []

    def add(self, hashes: np.ndarray) -> None:
        if not len(hashes):
            return
        self.blocks.append(np.sort(hashes))
        while len(self.blocks) > 1 and len(self.blocks[-1]) >= len(self.blocks[-2]):
            self.blocks[-2:] = [np.sort(np.concatenate(self.blocks[-2:]))]

    def maybe_any(self, hashes: np.ndarray) -> bool:
        for block in self.blocks:
            pos = np.minimum(np.searchsorted(block, hashes), len(block) - 1)
            if np.any(block[pos] == hashes):
                return True
        return False


def split_new_rows(con, corpus: str, reviews: pd.DataFrame, stored: StoredIds, files: dict[str, str],
                   flush=lambda: None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(reviews to store, reviews to score, duplicate rejects) for one chunk of a file.

    ``reviews`` carries review_id, text, label, source_row and source (the file's fingerprint). A stored id is
    this file's own row from an earlier, interrupted run when it came from the same row of the same file
    (rows stored before files had fingerprints count by row alone); any other stored id is a duplicate.
    ``files`` maps fingerprints to paths, to say where a duplicate was stored from. The ids returned for
    storing are added to ``stored``. ``flush`` is called before the exact check: it commits the writes queued.
    """
    hashes = store.id_hashes(con, reviews["review_id"].tolist())
    if not stored.maybe_any(hashes):
        stored.add(hashes)
        return reviews, reviews, pd.DataFrame(columns=REJECT_COLUMNS)
    flush()
    known = store.existing_reviews(con, corpus, reviews["review_id"].tolist())
    merged = reviews.merge(known, on="review_id", how="left", suffixes=("", "_stored"))  # keeps row order
    is_new = merged["source_row_stored"].isna().to_numpy()
    own = (~is_new & (merged["source_row_stored"] == merged["source_row"])
           & (merged["source_stored"].isna() | (merged["source_stored"] == merged["source"]))).to_numpy()
    dup = merged[~is_new & ~own]
    dup_rejects = pd.DataFrame({
        "location": "row " + dup["source_row"].astype(str),
        "review_id": dup["review_id"],
        "reason": [f"duplicate review_id: already stored from {_stored_from(int(r), s, f, files)}"
                   for r, s, f in zip(dup["source_row_stored"], dup["source_stored"], dup["source"])],
        "excerpt": dup["text"].str.slice(0, 200),
    }, columns=REJECT_COLUMNS)
    stored.add(hashes[is_new])
    return merged[is_new][reviews.columns], merged[is_new | own][reviews.columns], dup_rejects


def _stored_from(row: int, source: str | None, this: str, files: dict[str, str]) -> str:
    """Where a stored review came from, for a duplicate's reason: 'row 3 of this file', '... of data/a.csv'."""
    if not isinstance(source, str):  # stored before files had fingerprints
        return f"row {row}"
    if source == this:
        return f"row {row} of this file"
    return f"row {row} of " + files.get(source, f"another file (fingerprint {source})")


# ------------------------------------------------------------------------------- the chunk pipeline


@dataclass
class Work:
    """One chunk's reviews to score and, per model, the ids that still lack a prediction."""

    texts: dict[str, str]        # review_id -> text
    todo: dict[str, list[str]]   # model -> review_ids to predict
    rows: int                    # input rows the chunk covered (reviews + rejects)
    fraction: float | None       # share of the input read after this chunk (None: unknown)

    @property
    def predictions(self) -> int:
        return sum(len(ids) for ids in self.todo.values())


class Ingest:
    """Feeds a scoring run: ``work()`` yields what to predict, chunk by chunk; ``write()`` stores predictions.

    ``paths`` + ``columns``: read those files, storing their reviews and rejects under ``corpus``; none: score
    the reviews already stored for ``corpus`` (one ``split`` of it, or all). Use it in a ``with`` block: its
    end commits the writes still queued.
    """

    def __init__(self, con, corpus: str, models: list[str], run_id: str, *, paths: list[Path] | None = None,
                 columns: Columns | None = None, fmt: Format | None = None, split: str | None = None,
                 chunk_rows: int = 2_000, tally: Tally | None = None, name_files: bool = False, log=None):
        if chunk_rows < 1:
            raise InputError(f"chunk rows must be at least 1, not {chunk_rows}")
        if paths and columns is None:
            raise InputError("an input file needs its column mapping (at least the text column)")
        self.con, self.corpus, self.models, self.run_id = con, corpus, list(models), run_id
        self.paths, self.columns, self.fmt = list(paths or []), columns, fmt or Format()
        self.split, self.chunk_rows = split, chunk_rows
        # a folder or a glob: each review keeps its file's name, so a dump of one file per category slices by it
        self.name_files = name_files
        self.tally = tally or Tally()
        self.log = log or (lambda message: print(message, file=sys.stderr, flush=True))
        # the file being read: its path and fingerprint; the corpus's files; the stored ids (read once)
        self.path: Path | None = None
        self.fingerprint: str | None = None
        self.files: dict[str, str] = {}
        self.stored: StoredIds | None = None
        self.split_recipe: dict | None = None  # how the corpus's splits are made (core.splits), once known
        self.fields: dict[str, dict] = {}  # kept column -> {"kind", "format"}: how its cells are read
        self.writer = Writer(con)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        with self.tally.timings.phase("db"):
            self.writer.close()

    # -- reading

    def work(self) -> Iterator[Work]:
        chunks = self._files_chunks() if self.paths else self._stored_chunks()
        for chunk in self.tally.timings.timed("read", chunks):
            yield self._ingest(chunk)

    def _stored_chunks(self) -> Iterator[Chunk]:
        if self.corpus == "imdb":
            ensure_imdb(self.con)
        if not store.corpus_exists(self.con, self.corpus):
            raise InputError(f"corpus {self.corpus!r} is not stored in this database; give an INPUT file to score")
        total = max(store.count_reviews(self.con, self.corpus, self.split), 1)
        done = 0
        for df in store.iter_review_chunks(self.con, self.corpus, self.split, self.chunk_rows):
            done += len(df)
            yield Chunk(df, pd.DataFrame(columns=REJECT_COLUMNS), done / total)

    def _files_chunks(self) -> Iterator[Chunk]:
        """Every input file's chunks, one file after the other; the fraction is of all the files' bytes. A file
        that an earlier run read whole, and whose reviews every model asked for has scored, is not read again."""
        sizes = [p.stat().st_size if p.is_file() else 0 for p in self.paths]
        total, before = max(sum(sizes), 1), 0
        for path, size in zip(self.paths, sizes):
            extra = {"file": base_name(path)} if self.name_files else None
            for chunk in self._file_chunks(path, extra):
                yield Chunk(chunk.reviews, chunk.rejects, (before + size * chunk.fraction) / total)
            before += size

    def _file_chunks(self, path: Path, extra: dict[str, str] | None) -> Iterator[Chunk]:
        with self.tally.timings.phase("db"):
            self.writer.flush()  # the files before it are stored whole
            fingerprint = file_fingerprint(path) if path.is_file() else None
            read = None if fingerprint is None else store.file_read(self.con, self.corpus, fingerprint)
            if read is not None:
                check_columns(path, self.columns, self.fmt)  # a wrong option is an error, also for a file to skip
                if store.file_unscored(self.con, self.corpus, fingerprint, self.models) == 0:
                    self.log(f"{path}: already read whole ({read:,} records) and scored by "
                             f"{', '.join(self.models) or 'no model'}: skipped")
                    return
        chunks = read_ahead(path, self.columns, self.chunk_rows, self.fmt, extra)
        first = next(chunks, None)  # the reader has now checked the file and its header
        if first is None:
            return
        self.path, self.fingerprint = path, fingerprint
        with self.tally.timings.phase("db"):
            if self.stored is None:
                self.files = store.corpus_files(self.con, self.corpus)
            with store.transaction(self.con):  # recorded only once the file proved readable
                store.record_corpus_file(self.con, self.corpus, str(path), fingerprint, self._recipe())
                self.split_recipe = store.corpus_details(self.con, self.corpus).get("split")
                if self.split_recipe is None and self.columns.split:
                    self.split_recipe = {"column": self.columns.split}
                    store.set_split_recipe(self.con, self.corpus, self.split_recipe)
                self.fields = self._field_kinds(first.reviews)
                if self.fields:
                    store.set_field_kinds(self.con, self.corpus, self.fields)
            self.files[fingerprint] = str(path)
            if self.stored is None:
                self.stored = StoredIds(store.stored_id_hashes(self.con, self.corpus))
        records = 0
        for chunk in chain([first], chunks):
            records += len(chunk.reviews) + len(chunk.rejects)
            yield chunk
        with self.tally.timings.phase("db"):
            self.writer.flush()  # every chunk above is stored by now
            store.mark_file_read(self.con, self.corpus, fingerprint, records)

    def _recipe(self) -> dict:
        """How the file was read, for the corpus's record."""
        c, f = self.columns, self.fmt
        return {"text_col": c.text, "id_col": c.id, "label_col": c.label, "label_kind": c.label_kind,
                "label_map": c.label_map, "split_col": c.split, "format": f.format, "header": f.header,
                "delimiter": f.delimiter, "encoding": f.encoding, "unescape": f.unescape}

    def _field_kinds(self, reviews: pd.DataFrame) -> dict[str, dict]:
        """Each kept column's kind: as the corpus already stores it (every file of a corpus is read alike),
        else as asked (--col-type), else inferred from the first chunk's values."""
        stored = store.corpus_details(self.con, self.corpus).get("fields", {})
        kinds = {}
        for name in (c[len(FIELD):] for c in reviews.columns if c.startswith(FIELD)):
            asked = self.columns.kinds.get(name)
            if asked is not None:
                # a column asked to be dates keeps one format, the one that reads the most of it, however
                # few: every chunk then reads it alike
                fmt = (columns.date_format(name, reviews[FIELD + name], 0.0) or columns.DATE_FORMATS[0]
                       if asked == "datetime" else None)
                kinds[name] = {"kind": asked, "format": fmt}
            elif name in stored:
                kinds[name] = stored[name]
            else:
                kind, fmt = columns.infer_kind(name, reviews[FIELD + name])
                kinds[name] = {"kind": kind, "format": fmt}
        return kinds

    def _field_rows(self, reviews: pd.DataFrame) -> pd.DataFrame:
        """The kept columns of reviews about to be stored, as review_fields rows; unparsed cells counted."""
        frames = []
        for name, how in self.fields.items():
            rows, unparsed = columns.long_form(reviews["review_id"], name, reviews[FIELD + name], how["kind"],
                                               how.get("format"))
            self.tally.unparsed[name] += unparsed
            frames.append(rows)
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def _identify(self, chunk: Chunk) -> Chunk:
        """Give the chunk's rows their file identity: the fingerprint, and ids when the file has none."""
        reviews = chunk.reviews.assign(source=self.fingerprint)
        rejects = chunk.rejects
        if self.columns.id is None:
            reviews["review_id"] = self.fingerprint + ":" + reviews["source_row"].astype(str)
            rejects = rejects.assign(review_id=None)
        return Chunk(reviews, rejects, chunk.fraction)

    def _ingest(self, chunk: Chunk) -> Work:
        """Store one chunk's new reviews and its rejects in one transaction; find what each model lacks."""
        self.tally.rows_read += len(chunk.reviews) + len(chunk.rejects)
        with self.tally.timings.phase("db"):
            fresh = False
            if self.paths:
                chunk = self._identify(chunk)
                new, to_score, dups = split_new_rows(self.con, self.corpus, chunk.reviews, self.stored, self.files,
                                                     self.writer.flush)
                rejects = pd.concat([chunk.rejects, dups], ignore_index=True) if len(dups) else chunk.rejects
                # one rejects table for every file of a corpus, keyed by location: the location names the file
                rejects = rejects.assign(location=rejects["location"] + f" of {self.path.name} ({self.fingerprint})")
                self.writer.submit(_store_chunk, self.corpus, new.assign(split=split_of_new(new, self.split_recipe)),
                                   self._field_rows(new), rejects, self.run_id)
                self.tally.rejected += len(rejects)
                # predictions are written after their reviews: reviews new in this chunk have none yet
                fresh = len(new) == len(to_score)
            else:
                to_score = chunk.reviews
            ids = to_score["review_id"].tolist()
            todo = {name: ids if fresh else self._missing(name, ids) for name in self.models}
        return Work(dict(zip(to_score["review_id"], to_score["text"])), todo,
                    len(chunk.reviews) + len(chunk.rejects), chunk.fraction)

    def _missing(self, model: str, ids: list[str]) -> list[str]:
        self.writer.flush()
        done = store.models_done(self.con, self.corpus, model, ids)
        self.tally.skipped += len(done)
        return [i for i in ids if i not in done] if done else ids

    def stored_probabilities(self, ids: list[str]) -> pd.DataFrame:
        """review_id, model, p_positive of every prediction stored for these reviews, the queued ones too."""
        self.writer.flush()
        return store.stored_predictions(self.con, self.corpus, ids)

    # -- writing

    def write(self, model: str, ids: list[str], p: np.ndarray) -> None:
        """Store one batch of predictions in one transaction. A probability that is NaN, infinite or outside
        [0, 1] is not a prediction: it becomes a counted reject naming the model and the value."""
        p = np.asarray(p, dtype=np.float64)
        if len(p) != len(ids):
            raise ValueError(f"model {model} returned {len(p)} probabilities for {len(ids)} reviews")
        bad = ~valid_probabilities(p)
        good_ids, rejects = ids, None
        if bad.any():
            good_ids = [i for i, b in zip(ids, bad) if not b]
            bad_ids = [i for i, b in zip(ids, bad) if b]
            rejects = pd.DataFrame({
                "location": [f"review {i} model {model}" for i in bad_ids],
                "review_id": bad_ids,
                "reason": [f"invalid probability: model {model} returned {v!r}" for v in p[bad].tolist()],
                "excerpt": None}, columns=REJECT_COLUMNS)
        with self.tally.timings.phase("db"):  # the wait for room in the writer's queue
            self.writer.submit(_store_predictions, self.corpus, model, good_ids, p[~bad], rejects, self.run_id)
        self.tally.scored[model] += len(good_ids)
        self.tally.rejected += int(bad.sum())


def _store_chunk(con, corpus: str, reviews: pd.DataFrame, fields: pd.DataFrame, rejects: pd.DataFrame,
                 run_id: str) -> None:
    store.insert_reviews(con, corpus, reviews)
    store.insert_fields(con, corpus, fields)
    store.insert_rejects(con, corpus, rejects, run_id)


def _store_predictions(con, corpus: str, model: str, ids: list[str], p: np.ndarray, rejects: pd.DataFrame | None,
                       run_id: str) -> None:
    store.insert_predictions(con, corpus, model, ids, p, run_id)
    if rejects is not None:
        store.insert_rejects(con, corpus, rejects, run_id)
