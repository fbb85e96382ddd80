"""Readers for review dumps as they come: CSV/TSV (with or without a header, any delimiter), JSON Lines,
fastText label lines and Parquet; gzip, bz2, xz or zstd compressed; UTF-8, UTF-16 or a legacy encoding;
one file, a folder or a glob.

A file is never loaded whole. ``read_chunks`` streams it and yields, per chunk, the rows that can be scored
and the rows that cannot (with the reason and where they are), so memory stays flat:

    bytes on disk -> Source (sources.py: decompress, by the file's first bytes; transcode to UTF-8)
                  -> a table (tables.py: CSV, JSON Lines, fastText, Parquet): named columns, one tuple of
                     cells per record, or a Broken record
                  -> _review (here: the roles id, text, label, split; cleaning) -> Chunk

Compression is a wrapper under every format, not a format.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from core.cleaning import clean_texts, normalise_label
from core.errors import InputError
from core.readers.sources import FORMATS, Format, base_name, expand_input
from core.readers.tables import MAX_FIELD_BYTES, Broken, Nested, ParquetTable, guarded, open_table
from core.splits import normalise_split

__all__ = ["FIELD", "FORMATS", "MAX_FIELD_BYTES", "REJECT_COLUMNS", "Chunk", "Columns", "Format", "base_name",
           "check_columns", "expand_input", "field_text", "guarded", "open_table", "read_chunks"]


@dataclass
class Columns:
    """Which of a file's columns play which role. ``text`` may name several columns, comma-separated
    (``summary,reviewText``): their cells are joined into one review, title first."""

    text: str
    id: str | None = None
    label: str | None = None
    label_kind: str = "text"  # 'text' (positive/negative, pos/neg, 1/0) or 'stars' (1-5)
    split: str | None = None  # a column of train/validation/test (core.splits spellings); empty = none
    keep: tuple[str, ...] | None = None  # other columns stored beside each review: None = all, () = none
    kinds: dict[str, str] = field(default_factory=dict)  # a kept column's kind when not inferred (core.columns)
    label_map: dict[str, str] | None = None  # raw label -> positive/negative/neutral (--label-map 1=negative,...)


FIELD = "field:"  # a kept column NAME is the column FIELD + NAME of a chunk's reviews (never a clash with text)
REJECT_COLUMNS = ["location", "review_id", "reason", "excerpt"]


@dataclass
class Chunk:
    reviews: pd.DataFrame  # review_id, text, label, split, source_row, field:NAME... (rows that can be scored)
    rejects: pd.DataFrame  # location, review_id, reason, excerpt
    fraction: float        # share of the input read so far (for time-left estimates)


class _Rejected(Exception):
    """Why a record that was split into cells cannot be scored (empty text, unknown label, ...)."""

    def __init__(self, review_id: str | None, reason: str) -> None:
        super().__init__(reason)
        self.review_id, self.reason = review_id, reason


# --------------------------------------------------------------------------- records -> reviews


def text_columns(spec: str, found: list[str]) -> list[str]:
    """The columns a ``--text-col`` value names: the column of that very name, else a comma-separated list.

    >>> text_columns("summary,reviewText", ["reviewText", "summary"])
    ['summary', 'reviewText']
    >>> text_columns("Review, full", ["Review, full"])
    ['Review, full']
    """
    if spec in found:
        return [spec]
    return [c.strip() for c in spec.split(",") if c.strip()]


def _roles(cols: Columns, found: list[str]) -> list[tuple[str, str]]:
    texts = [("text", name) for name in text_columns(cols.text, found)]
    return texts + [(role, name) for role, name in (("id", cols.id), ("label", cols.label),
                                                     ("split", cols.split)) if name]


def _check_roles_differ(path: Path, roles: list[tuple[str, str]]) -> None:
    for i, (role, name) in enumerate(roles):
        for other_role, other_name in roles[i + 1:]:
            if name == other_name:
                what = "text columns" if role == other_role else f"{role} and {other_role} columns"
                raise InputError(f"{path}: the {what} must differ (both are {name!r})")


def _check_columns(path: Path, table, roles: list[tuple[str, str]]) -> None:
    found = table.columns
    nested = getattr(table, "nested", {})
    for role, name in roles:
        if name in nested and name not in found:
            raise InputError(f"{path}: the {role} column {name!r} holds {nested[name]}, not a value; name one of "
                             f"its scalar fields ({', '.join(c for c in found if c.startswith(name + '.')) or 'none'})")
        if name not in found:
            hint = " (a file without a header: columns are numbered from 1)" if found[:1] == ["1"] else ""
            raise InputError(f"{path}: no {role} column {name!r}; the file has columns {found}{hint}")
        if found.count(name) > 1:
            raise InputError(f"{path}: column {name!r} appears {found.count(name)} times; rename all but one")


def _kept_columns(path: Path, table, cols: Columns, roles: list[tuple[str, str]]) -> list[str]:
    """The columns stored beside each review: those named in ``cols.keep``, or every column of the file that
    has no role (once in the header, and a scalar column in Parquet)."""
    found, taken = table.columns, {name for _, name in roles}
    if cols.keep is None:
        counts = Counter(found)
        return [n for n in found if n not in taken and counts[n] == 1 and table.scalar(n)
                and not n.startswith("__index_level_")]  # pandas' saved index: not the user's column
    for name in cols.keep:
        if name not in found:
            raise InputError(f"{path}: no column {name!r} to keep; the file has columns {found}")
        if name in taken:
            raise InputError(f"{path}: column {name!r} is already mapped to a role; it cannot be kept as well")
        if not table.scalar(name):
            raise InputError(f"{path}: column {name!r} holds lists or structs; only scalar columns can be kept")
    return list(cols.keep)


def _as_text(value, column: str) -> str | None:
    """One cell of ``column`` (its role and name, for the reason) as text; None when null. Bytes are decoded
    here: a UnicodeDecodeError, like the ValueError of a list or an object, is the row's reject."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, Nested):  # a reason like any other bad cell's, hence a ValueError
        raise ValueError(f"{column} holds {value.what}, not a value")  # noqa: TRY004
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a JSON 2.0 or a Parquet float rating: the label 2
    return str(value)


def field_text(value) -> str | None:
    """A kept cell as text, never a reject: bad bytes become U+FFFD, a float NaN (a missing value) None."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if value is None or isinstance(value, Nested) or (isinstance(value, float) and np.isnan(value)):
        return None
    return value if isinstance(value, str) else str(value)


_ESCAPE = re.compile(r"\\([nrt\\\"])")
_ESCAPED = {"n": "\n", "r": "\n", "t": "\t", "\\": "\\", '"': '"'}


def unescape(text: str) -> str:
    r"""Backslash escapes written in a dump's text, back to the characters.

    >>> unescape(r"Great.\nWould buy \"again\" \\o/")
    'Great.\nWould buy "again" \\o/'
    """
    return _ESCAPE.sub(lambda m: _ESCAPED[m.group(1)], text)


def join_texts(parts: list[str]) -> str:
    """A title and a body (or more) as one review: a title that ends without punctuation gets a full stop.

    >>> join_texts(["Great lens", "Sharp and light."])
    'Great lens. Sharp and light.'
    >>> join_texts(["Wow!", "", "Sharp."])
    'Wow! Sharp.'
    """
    parts = [p for p in parts if p]
    return " ".join(p if i == len(parts) - 1 or p[-1] in ".!?;:…" else p + "."
                    for i, p in enumerate(parts))


@dataclass
class _Plan:
    """Where each role's cells are in a record, and what to do with them."""

    text_names: list[str]
    cols: Columns
    unescape: bool
    kept: list[str]


def _review(row: int, cells: tuple, texts: list, plan: _Plan, seen_ids: set[str]) -> tuple:
    """(review_id, text, label, split, source_row, *kept cells as text) of one record; raises _Rejected saying
    why it cannot be scored (a split value that is not train/validation/test too: a typo must not move a test
    review). A kept cell never rejects its row. ``cells``: id, texts..., label, split, kept...; ``texts``: its
    text cells already cleaned (_cleaned_texts), or the error that reading one raised."""
    cols, n = plan.cols, len(plan.text_names)
    raw_id, raw_label, raw_split, extra = cells[0], cells[1 + n], cells[2 + n], cells[3 + n:]
    review_id = None
    where = "column" if n == 1 else "columns"
    try:
        if cols.id:
            review_id = (_as_text(raw_id, f"id column {cols.id!r}") or "").strip() or None
            if review_id is None:
                raise ValueError(f"empty id in column {cols.id!r}")
            if review_id in seen_ids:
                raise ValueError(f"duplicate review_id {review_id!r} in column {cols.id!r}")
        for part in texts:
            if isinstance(part, Exception):
                raise part
        text = join_texts(texts) if n > 1 else texts[0]
        if not text:
            raise ValueError(f"empty text in {where} {', '.join(repr(t) for t in plan.text_names)}")
        label = None
        if cols.label:
            value = _as_text(raw_label, f"label column {cols.label!r}")
            if value is None or not value.strip():
                raise ValueError(f"empty label in column {cols.label!r}")
            if cols.label_map is not None:
                mapped = cols.label_map.get(value.strip())
                if mapped is None:
                    raise ValueError(f"label {value!r} is not in --label-map ({', '.join(cols.label_map)})")
                value = mapped
            label = normalise_label(value, "text" if cols.label_map is not None else cols.label_kind)
        split = _as_text(raw_split, f"split column {cols.split!r}")
        split = normalise_split(split) if split and split.strip() else None
    except UnicodeDecodeError as e:
        raise _Rejected(review_id, f"not valid UTF-8: {e} (for a legacy export give --encoding cp1252 or "
                                   "latin-1)") from None
    except ValueError as e:
        raise _Rejected(review_id, str(e)) from None
    review_id = review_id or str(row)
    seen_ids.add(review_id)
    return review_id, text, label, split, row, *(field_text(v) for v in extra)


def _cleaned_texts(records: list[tuple], plan: _Plan) -> list[list]:
    """Per record of a chunk (its cells, or a Broken one), its text cells read and cleaned, all of the chunk's
    at once (core.cleaning.clean_texts); a cell that cannot be read holds the error, for _review to raise."""
    raw: list[str] = []
    places = []
    n = len(plan.text_names)
    for _, cells in records:
        parts = []
        for name, cell in zip(plan.text_names, () if isinstance(cells, Broken) else cells[1:1 + n]):
            try:
                value = _as_text(cell, f"text column {name!r}") or ""
            except ValueError as e:  # a UnicodeDecodeError too
                parts.append(e)
                continue
            parts.append(len(raw))
            raw.append(unescape(value) if plan.unescape else value)
        places.append(parts)
    cleaned = clean_texts(raw)
    return [[p if isinstance(p, Exception) else cleaned[p] for p in parts] for parts in places]


def _cell_excerpt(value) -> str | None:
    if isinstance(value, bytes):
        return value[:200].decode("utf-8", "replace")
    if value is None or isinstance(value, Nested):
        return None
    return str(value)[:200]


def _chunk(records: list[tuple], plan: _Plan, fraction: float, kept: list[str], constant: tuple) -> Chunk:
    """A chunk's records, in order (row, its cells or a Broken record), as reviews and counted rejects. Every
    record is one or the other, whatever is wrong with the records around it; ids repeat only across chunks
    (the store checks those)."""
    texts = _cleaned_texts(records, plan)
    reviews: list[tuple] = []
    rejects: list[tuple] = []
    seen_ids: set[str] = set()
    for (row, cells), parts in zip(records, texts, strict=True):
        if isinstance(cells, Broken):
            rejects.append((cells.location, None, cells.reason, cells.excerpt))
            continue
        try:
            reviews.append((*_review(row, cells, parts, plan, seen_ids), *constant))
        except _Rejected as e:
            rejects.append((f"row {row}", e.review_id, e.reason, _cell_excerpt(cells[1])))
    return Chunk(
        pd.DataFrame(reviews, columns=["review_id", "text", "label", "split", "source_row",
                                       *(FIELD + name for name in kept)]).astype({"source_row": "int64"}),
        pd.DataFrame(rejects, columns=REJECT_COLUMNS),
        fraction,
    )


def _open_mapped(path: Path, cols: Columns, fmt: Format) -> tuple:
    """The file's table, its columns checked against the mapping, and the plan that reads its records."""
    table = open_table(path, fmt)
    try:
        roles = _roles(cols, table.columns)
        _check_roles_differ(path, roles)
        _check_columns(path, table, roles)
        if isinstance(table, ParquetTable):
            table.check_types(roles)
        kept = _kept_columns(path, table, cols, roles)
    except BaseException:
        table.close()
        raise
    texts = [n for r, n in roles if r == "text"]
    return table, _Plan(texts, cols, fmt.unescape, kept)


def check_columns(path: Path, cols: Columns, fmt: Format | None = None) -> None:
    """InputError when the file cannot be read with this mapping (reads its header or first records only)."""
    table, _ = _open_mapped(Path(path), cols, fmt or Format())
    table.close()


def read_chunks(path: Path, cols: Columns, chunk_rows: int = 20_000, fmt: Format | None = None,
                extra: dict[str, str] | None = None) -> Iterator[Chunk]:
    """Stream a corpus file as cleaned, labelled rows plus counted rejects.

    Every record is one review or one reject, and keeps its position (source_row, the id when the file has
    no id column) whatever is wrong with the records around it. Only problems with the whole file (no such
    file, a missing column, a Parquet column of lists) raise InputError. ``extra``: kept columns of the same
    value for every row (the file's name, when a folder is read), added after the file's own.
    """
    path = Path(path)
    fmt = fmt or Format()
    table, plan = _open_mapped(path, cols, fmt)
    try:
        extra = {k: v for k, v in (extra or {}).items() if k not in table.columns}
        kept = plan.kept
        names = [cols.id, *plan.text_names, cols.label, cols.split, *kept]
        wanted = [n for n in names if n]
        slots = [wanted.index(n) if n else None for n in names]
        constant = tuple(extra.values())
        all_kept = [*kept, *extra]
        records: list[tuple] = []  # (row, its cells or a Broken record) of the chunk in hand
        full: Chunk | None = None   # a full chunk is given out when the next record exists, so the last says 1.0
        for row, item in enumerate(guarded(table, table.records(wanted))):
            if full is not None:
                yield full
                full = None
            records.append((row, item if isinstance(item, Broken) else tuple(None if s is None else item[s]
                                                                                for s in slots)))
            if len(records) >= chunk_rows:
                full = _chunk(records, plan, table.fraction(), all_kept, constant)
                records = []
        if full is not None:
            yield Chunk(full.reviews, full.rejects, 1.0)
        if records:
            yield _chunk(records, plan, 1.0, all_kept, constant)
    finally:
        table.close()
