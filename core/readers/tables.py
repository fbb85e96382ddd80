"""Table readers: a review dump's records as named columns, one tuple of cells per record, or a Broken record.

A table has ``columns`` (the names a Columns mapping may use), ``scalar(name)`` (whether the column can be
kept beside a review) and ``records(names)``: per record, the cells of those columns in that order (str;
bytes in a CSV record with bytes that are not UTF-8; numbers, booleans or None from JSON and Parquet), or a
Broken. ``fraction()`` is the share of the file read up to the last record returned. Column names: a CSV
header's, "1", "2", ... for a file without one, dotted paths for nested JSON objects (``review.body``),
``label`` and ``text`` for fastText.
"""

from __future__ import annotations

import csv
import re
from collections import deque
from collections.abc import Iterator
from itertools import chain, repeat
from pathlib import Path
from typing import BinaryIO, NamedTuple

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from core.errors import InputError
from core.readers.sources import (
    DECOMPRESSION_ERRORS,
    FORMATS,
    Format,
    Source,
    detect_format,
    open_binary,
    sniff_delimiter,
)

# A line longer than this is one reject, and so is a quoted CSV field that runs on past it over several
# lines: reviews are never that long, and a reader that waited for the end of such a field would hold it
# all in memory (and, with a quote never closed, swallow the rest of the file).
MAX_FIELD_BYTES = 16 << 20

JSON_SAMPLE_LINES = 1000  # JSON Lines: the columns are the scalar paths of the first records


class Broken(NamedTuple):
    """A record that could not be split into cells (CSV), parsed (JSON) or decoded (Parquet): rejected whole."""

    location: str
    reason: str
    excerpt: str | None


class Nested:
    """A JSON value that is an object or a list where a scalar was wanted: never text."""

    def __init__(self, value) -> None:
        self.what = "a list" if isinstance(value, list) else "an object"


# ------------------------------------------------------------------------------- line reading


class _LongLine(Exception):
    """Raised by _Lines at a line of MAX_FIELD_BYTES or more, before it is read whole."""


class _Lines:
    """A stream's physical lines as text, for csv.reader (which pulls one line at a time, never ahead) and the
    line formats.

    Bytes that are not UTF-8 become lone surrogates (surrogateescape), so decoding never stops the file;
    ``not_utf8`` says that the record being parsed has some. The lines of the record being parsed are kept,
    so that when it is broken (a quote that never closes, a line too long) its first line alone can be
    rejected and the rest read again (``skip_first_line``): nothing seeks, so a compressed stream works too.
    """

    def __init__(self, stream: BinaryIO, offset: int = 0, error=lambda: None) -> None:
        self.stream, self.error = stream, error
        self.offset = offset  # bytes consumed so far (f.tell() is a system call: too slow for every line)
        self.number = 0       # lines read so far
        self.record: list[bytes] = []
        self.replay: deque[bytes] = deque()
        self.start_record()

    def __iter__(self) -> Iterator[str]:
        while True:
            if self.replay:
                raw = self.replay.popleft()
            else:
                raw = self.stream.readline(MAX_FIELD_BYTES)
                if not raw.endswith(b"\n") and (error := self.error()) is not None:
                    raise error  # the compressed data ended early: the line it cut is not a record
                if not raw:
                    return
                self.offset += len(raw)
            self.number += 1
            self.record.append(raw)
            if len(raw) == MAX_FIELD_BYTES and not raw.endswith(b"\n"):
                raise _LongLine(f"line {self.number} has {MAX_FIELD_BYTES >> 20} MiB or more")
            try:
                line = raw.decode()
            except UnicodeDecodeError:
                self.not_utf8 = True
                line = raw.decode("utf-8", "surrogateescape")
            yield line

    def start_record(self) -> None:
        self.record, self.first, self.not_utf8 = [], self.number + 1, False

    def skip_first_line(self) -> tuple[bytes, int, int]:
        """Drop the record's first line and read its other lines again: (that line's first bytes, its size,
        its number)."""
        head = self.record[0] if self.record else b""
        size = len(head)
        if len(head) == MAX_FIELD_BYTES and not head.endswith(b"\n"):
            # a cut line is always the last one read: the rest of it is still in the stream
            piece = head
            while piece and not piece.endswith(b"\n"):
                piece = self.stream.readline(1 << 20)  # never held whole
                size += len(piece)
                self.offset += len(piece)
        self.replay.extendleft(reversed(self.record[1:]))
        number = self.number = self.first
        self.start_record()
        return head[:200], size, number


def _printable(text: str) -> str:
    """The text with its undecodable bytes (lone surrogates) as U+FFFD, so that it can be stored."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _excerpt(line: str) -> str:
    """A broken line's first 200 characters, as a reject stores them."""
    return _printable(line[:200]).rstrip("\r\n")


# ------------------------------------------------------------------------------------- tables


class _LineTable:
    """What the line formats share: a Source read line by line."""

    format = ""
    columns: list[str]

    def __init__(self, source: Source) -> None:
        self.source, self.path = source, source.path
        self.lines = _Lines(source.stream, source.start, source.error)

    def scalar(self, name: str) -> bool:
        return True  # a JSON table's columns are its scalar paths

    def fraction(self) -> float:
        return self.source.fraction(self.lines.offset)

    def where_next(self) -> str:
        return f"line {self.lines.number + 1}"

    def close(self) -> None:
        self.source.close()


class _CsvTable(_LineTable):
    """CSV/TSV, with a header or without one (columns "1", "2", ...). No null markers: a cell is the text it
    holds (``NA`` is the text NA); only an empty cell is empty."""

    def __init__(self, source: Source, fmt: Format, tsv: bool) -> None:
        super().__init__(source)
        self.format = "tsv" if tsv else "csv"
        head = source.head.decode("utf-8", "replace")
        self.delimiter = fmt.delimiter or ("\t" if tsv else sniff_delimiter(head))
        csv.field_size_limit(MAX_FIELD_BYTES)  # for a quoted field over several lines; the default is 128 KiB
        self.reader = csv.reader(self.lines, delimiter=self.delimiter, strict=True)
        self.first: list[str] | None = None  # without a header, the first record is data
        if fmt.header:
            self.columns = self._read_header()
        else:
            self.first = self._read_header()
            self.columns = [str(i) for i in range(1, len(self.first) + 1)]

    def _read_header(self) -> list[str]:
        try:
            for header in self.reader:
                if header:  # blank lines before the header are skipped, like blank lines anywhere
                    return header
        except (csv.Error, _LongLine) as e:
            hint = " (lines ended by \\r alone are not supported)" if "new-line character" in str(e) else ""
            raise InputError(f"{self.path}: cannot read the first CSV record: {e}{hint}") from None
        raise InputError(f"{self.path}: the file is empty (no header row)")

    def records(self, names: list[str]) -> Iterator[tuple | Broken]:
        at = [self.columns.index(n) for n in names]
        width, lines = len(self.columns), self.lines
        if self.first is not None:
            yield self._cells(self.first, at)
        while True:
            lines.start_record()
            try:
                fields = next(self.reader)
            except StopIteration:
                return
            except (csv.Error, _LongLine) as e:
                head, line_size, number = lines.skip_first_line()
                self.reader = csv.reader(lines, delimiter=self.delimiter, strict=True)  # from the line after it
                excerpt = head.decode("utf-8", "replace").rstrip("\r\n")
                yield Broken(f"line {number}", _broken_reason(e, line_size, number), excerpt)
                continue
            if not fields:  # a blank line is no row
                continue
            if len(fields) != width:
                reason = f"unparseable: expected {width} fields, found {len(fields)}"
                yield Broken(f"line {lines.first}", reason, _printable(self.delimiter.join(fields)[:200]))
                continue
            yield self._cells(fields, at)

    def _cells(self, fields: list[str], at: list[int]) -> tuple:
        cells = tuple(fields[i] for i in at)
        if self.lines.not_utf8:  # as bytes, so that decoding them names the bad byte
            cells = tuple(c.encode("utf-8", "surrogateescape") for c in cells)
        return cells


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


def _physical_lines(lines: _Lines) -> Iterator[tuple[int, str] | Broken]:
    """(line number, text) of each non-blank line; a line too long is one Broken."""
    while True:
        lines.start_record()
        try:
            line = next(iter(lines), None)
        except _LongLine:
            head, size, number = lines.skip_first_line()
            yield Broken(f"line {number}", f"line longer than {MAX_FIELD_BYTES >> 20} MiB "
                          f"({size:,} bytes)", head.decode("utf-8", "replace"))
            continue
        if line is None:
            return
        if line.strip():
            yield lines.number, line


class _JsonTable(_LineTable):
    """JSON Lines: one object a line. Nested objects' scalars are columns by dotted path (``review.body``);
    a list is never a column's value. The columns are those of the first JSON_SAMPLE_LINES records."""

    format = "jsonl"

    def __init__(self, source: Source) -> None:
        super().__init__(source)
        self.peeked: list[tuple[int, str] | Broken] = []
        self.nested: dict[str, str] = {}  # path -> 'a list' | 'an object', for clear errors
        seen: dict[str, None] = {}
        self.cut: Exception | None = None  # compressed data that ended within the first lines
        try:
            for item in _physical_lines(self.lines):
                self.peeked.append(item)
                if not isinstance(item, Broken):
                    try:
                        obj = orjson.loads(item[1])
                    except orjson.JSONDecodeError:
                        obj = None
                    if isinstance(obj, dict):
                        _paths(obj, "", seen, self.nested)
                if len(self.peeked) >= JSON_SAMPLE_LINES:
                    break
        except DECOMPRESSION_ERRORS as e:
            self.cut = e
        if not self.peeked:
            raise InputError(f"{self.path}: the file is empty (no JSON records)")
        if not seen and not self.nested:
            raise InputError(f"{self.path}: no JSON object with fields in its first {len(self.peeked)} lines; is it "
                             "JSON Lines?")
        self.columns = list(seen)

    def records(self, names: list[str]) -> Iterator[tuple | Broken]:
        keys = [n.split(".") for n in names]
        for item in chain(self.peeked, () if self.cut else _physical_lines(self.lines)):
            if isinstance(item, Broken):
                yield item
                continue
            number, line = item
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError as e:
                reason = ("not valid UTF-8" if "utf-8" in str(e).lower() or "surrogate" in str(e)
                          else f"invalid JSON: {e}")
                yield Broken(f"line {number}", reason, _excerpt(line))
                continue
            if not isinstance(obj, dict):
                yield Broken(f"line {number}", f"not a JSON object ({type(obj).__name__})",
                              _excerpt(line))
                continue
            yield tuple(_lookup(obj, k) for k in keys)
        if self.cut is not None:
            raise self.cut


def _paths(obj: dict, prefix: str, seen: dict[str, None], nested: dict[str, str]) -> None:
    for key, value in obj.items():
        name = prefix + str(key)
        if isinstance(value, dict):
            nested.setdefault(name, "an object")
            _paths(value, name + ".", seen, nested)
        elif isinstance(value, list):
            nested.setdefault(name, "a list")
        else:
            seen.setdefault(name, None)


def _lookup(obj: dict, keys: list[str]):
    value = obj
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return Nested(value) if isinstance(value, dict | list) else value


_LABEL = re.compile(r"__label__(\S*)\s*")


class _FastTextTable(_LineTable):
    """fastText label lines, ``__label__X text``, as two columns: label (X, the first label) and text."""

    format = "fasttext"

    def __init__(self, source: Source) -> None:
        super().__init__(source)
        self.columns = ["label", "text"]

    def records(self, names: list[str]) -> Iterator[tuple | Broken]:
        for item in _physical_lines(self.lines):
            if isinstance(item, Broken):
                yield item
                continue
            number, line = item
            labelled = _LABEL.match(line)
            if not labelled:
                yield Broken(f"line {number}", "no __label__ at the start of the line",
                              _excerpt(line))
                continue
            cells = {"label": labelled.group(1), "text": line[labelled.end():]}
            row = tuple(cells[n] for n in names)
            if self.lines.not_utf8:
                row = tuple(c.encode("utf-8", "surrogateescape") for c in row)
            yield row


_STRING = (pa.types.is_string, pa.types.is_large_string, pa.types.is_string_view)
_BINARY = (pa.types.is_binary, pa.types.is_large_binary, pa.types.is_binary_view)
_PARQUET_TYPES = {  # role -> (what it may hold, its type tests); scalars only, never lists or structs
    "text": ("strings or binary", _STRING + _BINARY),
    "id": ("strings or integers", (*_STRING, pa.types.is_integer)),
    # floats too: pandas stores an integer column with a missing value (a star rating) as float64
    "label": ("strings or numbers", (*_STRING, pa.types.is_integer, pa.types.is_floating)),
    "split": ("strings", _STRING),
}


class ParquetTable:
    """Parquet, row group by row group: the rows of a row group that cannot be decoded (those not read before
    the error) are one Broken each, and the next row group is read."""

    def __init__(self, path: Path) -> None:
        self.path, self.file = path, open_binary(path)
        try:
            self.pf = pq.ParquetFile(self.file)
        except (pa.ArrowException, OSError) as e:
            self.file.close()
            raise InputError(f"{path}: not a readable Parquet file: {e}") from e
        self.schema = self.pf.schema_arrow
        self.columns = self.schema.names
        self.total, self.row = max(self.pf.metadata.num_rows, 1), 0
        self.format = "parquet"

    def where_next(self) -> str:
        return f"row {self.row}"

    def _type(self, name: str) -> pa.DataType:
        kind = self.schema.field(name).type
        return kind.value_type if pa.types.is_dictionary(kind) else kind  # pandas categoricals

    def scalar(self, name: str) -> bool:
        return not pa.types.is_nested(self._type(name))

    def check_types(self, roles: list[tuple[str, str]]) -> None:
        for role, name in roles:
            wanted, tests = _PARQUET_TYPES[role]
            if not any(test(self._type(name)) for test in tests):
                raise InputError(f"{self.path}: the {role} column {name!r} has type {self.schema.field(name).type}; "
                                 f"it must hold {wanted}")

    def fraction(self) -> float:
        return min(self.row / self.total, 1.0)

    def records(self, names: list[str]) -> Iterator[tuple | Broken]:
        wanted = list(dict.fromkeys(names))
        for group in range(self.pf.num_row_groups):
            end = self.row + self.pf.metadata.row_group(group).num_rows
            reason = "unreadable Parquet data: the row group ended early"
            try:
                for batch in self.pf.iter_batches(batch_size=65536, row_groups=[group], columns=wanted):
                    values = {n: batch.column(n).to_pylist() for n in wanted}
                    for cells in zip(*(values[n] for n in names)) if names else repeat((), batch.num_rows):
                        self.row += 1
                        yield cells
            except (pa.ArrowException, OSError) as e:
                reason = "unreadable Parquet data: " + " ".join(str(e).split())
            while self.row < end:
                self.row += 1
                yield Broken(f"row {self.row - 1}", reason, None)

    def close(self) -> None:
        self.file.close()


def open_table(path: Path, fmt: Format | None = None):
    """The table reader for a file: its format asked for, or told by its name and first bytes."""
    fmt = fmt or Format()
    if fmt.format is not None and fmt.format not in FORMATS:
        raise InputError(f"unknown format {fmt.format!r}; known: {', '.join(FORMATS)}")
    source = Source(Path(path), fmt.encoding)
    try:
        kind = detect_format(source.path, source.head, fmt.format)
        if kind == "parquet":
            if source.compression:
                raise InputError(f"{path}: a {source.compression}-compressed Parquet file; decompress it first "
                                 "(Parquet compresses its own pages)")
            source.close()
            return ParquetTable(Path(path))
        table = (_JsonTable(source) if kind == "jsonl" else _FastTextTable(source) if kind == "fasttext"
                 else _CsvTable(source, fmt, kind == "tsv"))
    except BaseException:
        source.close()
        raise
    return table


def guarded(table, records: Iterator) -> Iterator:
    """The table's records; compressed data that ends early or is corrupt ends them with one Broken saying
    where (the records before it are kept)."""
    try:
        yield from records
    except DECOMPRESSION_ERRORS as e:
        compression = getattr(getattr(table, "source", None), "compression", None)
        if compression is None and not isinstance(e, EOFError):
            raise InputError(f"{table.path}: cannot read the file: {e}") from None
        yield Broken(table.where_next(), f"the {compression or 'file'} data ends early or is corrupt ({e}); "
                      "nothing after this point could be read", None)
