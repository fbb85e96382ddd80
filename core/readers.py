"""Readers for review dumps as they come: CSV/TSV (with or without a header, any delimiter), JSON Lines,
fastText label lines and Parquet; gzip, bz2, xz or zstd compressed; UTF-8, UTF-16 or a legacy encoding;
one file, a folder or a glob.

A file is never loaded whole. ``read_chunks`` streams it and yields, per chunk, the rows that can be scored
and the rows that cannot (with the reason and where they are), so memory stays flat:

    bytes on disk -> _Source (decompress, by the file's first bytes; transcode to UTF-8)
                  -> a table reader (_CsvTable, _JsonTable, _FastTextTable, _ParquetTable): named columns,
                     one tuple of cells per record, or a _Broken record
                  -> _review (the roles: id, text, label, split; cleaning) -> Chunk

Compression is a wrapper under every format, not a format. Column names: a CSV header's, "1", "2", ... for a
file without one, dotted paths for nested JSON objects (``review.body``), ``label`` and ``text`` for fastText.
"""

from __future__ import annotations

import bz2
import codecs
import csv
import glob
import gzip
import io
import lzma
import os
import re
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import chain, repeat
from pathlib import Path
from typing import BinaryIO, NamedTuple

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

from core.cleaning import clean_text, normalise_label
from core.errors import InputError
from core.splits import normalise_split

# A line longer than this is one reject, and so is a quoted CSV field that runs on past it over several
# lines: reviews are never that long, and a reader that waited for the end of such a field would hold it
# all in memory (and, with a quote never closed, swallow the rest of the file).
MAX_FIELD_BYTES = 16 << 20

FORMATS = ("csv", "tsv", "jsonl", "fasttext", "parquet")
COMPRESSIONS = {b"\x1f\x8b": "gzip", b"BZh": "bz2", b"\xfd7zXZ\x00": "xz", b"\x28\xb5\x2f\xfd": "zstd"}
_COMPRESSED_SUFFIXES = {".gz", ".gzip", ".bz2", ".xz", ".zst", ".zstd"}
_SUFFIX_FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl",
                   ".json": "jsonl", ".parquet": "parquet", ".pq": "parquet", ".txt": None, ".ft": "fasttext"}
DELIMITERS = (",", "\t", ";", "|")
SNIFF_BYTES = 64 << 10
JSON_SAMPLE_LINES = 1000  # JSON Lines: the columns are the scalar paths of the first records
_DECOMPRESSION_ERRORS = (EOFError, OSError, lzma.LZMAError, zstandard.ZstdError)


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


@dataclass
class Format:
    """How to read a file's bytes; every field left None is detected from the file."""

    format: str | None = None     # one of FORMATS
    header: bool = True           # CSV/TSV: the first record names the columns
    delimiter: str | None = None  # CSV: sniffed from the first lines when None (TSV: tab)
    encoding: str | None = None   # None: UTF-8, or UTF-16 when the file starts with its byte-order mark
    unescape: bool = False        # turn \n, \t, \\ and \" written in the text back into the characters


FIELD = "field:"  # a kept column NAME is the column FIELD + NAME of a chunk's reviews (never a clash with text)
REJECT_COLUMNS = ["location", "review_id", "reason", "excerpt"]


@dataclass
class Chunk:
    reviews: pd.DataFrame  # review_id, text, label, split, source_row, field:NAME... (rows that can be scored)
    rejects: pd.DataFrame  # location, review_id, reason, excerpt
    fraction: float        # share of the input read so far (for time-left estimates)


class _Broken(NamedTuple):
    """A record that could not be split into cells (CSV), parsed (JSON) or decoded (Parquet): rejected whole."""

    location: str
    reason: str
    excerpt: str | None


class _Rejected(Exception):
    """Why a record that was split into cells cannot be scored (empty text, unknown label, ...)."""

    def __init__(self, review_id: str | None, reason: str) -> None:
        super().__init__(reason)
        self.review_id, self.reason = review_id, reason


class _Nested:
    """A JSON value that is an object or a list where a scalar was wanted: never text."""

    def __init__(self, value) -> None:
        self.what = "a list" if isinstance(value, list) else "an object"


# ------------------------------------------------------------------------------------- inputs


def expand_input(spec: str | Path) -> list[Path]:
    """The files an INPUT names: a file, every file under a folder, or a glob (``'dump/*.json.gz'``), sorted.

    >>> expand_input("README.md")
    [PosixPath('README.md')]
    """
    text = str(spec)
    path = Path(text)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and not any(
            part.startswith(".") for part in p.relative_to(path).parts))
        if not files:
            raise InputError(f"{path}: is a directory with no files in it")
        return files
    if glob.has_magic(text):
        files = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
        if not files:
            raise InputError(f"{text}: no file matches")
        return files
    return [path]


def base_name(path: Path) -> str:
    """A file's name without its compression and format suffixes: the category of a one-file-per-category dump.

    >>> base_name(Path("dump/reviews_Books_5.json.gz"))
    'reviews_Books_5'
    """
    name = path.name
    for _ in range(2):
        stem, suffix = os.path.splitext(name)
        if suffix.lower() in _COMPRESSED_SUFFIXES or suffix.lower() in _SUFFIX_FORMATS:
            name = stem
    return name


def _open_binary(path: Path) -> io.BufferedReader:
    try:
        return open(path, "rb", buffering=1 << 20)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not a file") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied (the file is not readable)") from None
    except OSError as e:
        raise InputError(f"{path}: cannot open the file: {e.strerror or e}") from None


# -------------------------------------------------------------------- bytes: compression, encoding


class _Transcoded(io.RawIOBase):
    """Another encoding's bytes as UTF-8 bytes, so that every reader below reads UTF-8. Bytes the encoding
    does not define (cp1252 has five) become U+FFFD."""

    def __init__(self, raw: BinaryIO, encoding: str) -> None:
        self.raw, self.decoder, self.pending = raw, codecs.getincrementaldecoder(encoding)("replace"), b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self.pending:
            block = self.raw.read(1 << 16)
            self.pending = self.decoder.decode(block, final=not block).encode("utf-8", "surrogatepass")
            if not block:
                break
        n = min(len(buffer), len(self.pending))
        buffer[:n] = self.pending[:n]
        self.pending = self.pending[n:]
        return n


_DECOMPRESSORS = {
    "gzip": lambda f: gzip.GzipFile(fileobj=f),
    "bz2": bz2.BZ2File,
    "xz": lzma.LZMAFile,
    "zstd": lambda f: zstandard.ZstdDecompressor().stream_reader(f),
}


class _Checked(io.RawIOBase):
    """A decompressor's output, where compressed data that ends early or is corrupt ends the output and
    ``error`` says why: the lines read before it are kept, the one it cut is not (see _Lines)."""

    def __init__(self, inner: BinaryIO) -> None:
        self.inner, self.error = inner, None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self.error is not None:
            return 0
        try:
            data = self.inner.read1(len(buffer))
        except _DECOMPRESSION_ERRORS as e:
            self.error = e
            return 0
        buffer[:len(data)] = data
        return len(data)


class _Source:
    """A file's content as UTF-8 bytes: decompressed (the compression is told by the first bytes, whatever the
    name) and transcoded; ``fraction(offset)`` is the share of the file on disk read, from the compressed
    bytes read where the file is compressed or transcoded, else from ``offset`` (UTF-8 bytes consumed)."""

    def __init__(self, path: Path, encoding: str | None = None) -> None:
        self.path = path
        self.file = _open_binary(path)
        try:
            self.size = max(os.fstat(self.file.fileno()).st_size, 1)
            magic = self.file.peek(8)[:8]
            self.compression = next((c for m, c in COMPRESSIONS.items() if magic.startswith(m)), None)
            if magic.startswith(b"PK\x03\x04"):
                if path.suffix.lower() in (".xlsx", ".xlsm", ".ods"):
                    raise InputError(f"{path}: is a spreadsheet workbook, not a table file; save it as CSV (UTF-8)")
                raise InputError(f"{path}: is a zip archive; unzip it and give the files inside (or the folder)")
            stream: BinaryIO = self.file
            self.checked: _Checked | None = None
            if self.compression:  # its own buffer, so that each line is not a call into the decompressor
                self.checked = _Checked(_DECOMPRESSORS[self.compression](self.file))
                stream = io.BufferedReader(self.checked, 1 << 20)
            head = self._peek(stream)
            self.encoding = _encoding(path, head, encoding)
            if self.encoding == "utf-8":
                if head.startswith(codecs.BOM_UTF8):
                    stream.read(len(codecs.BOM_UTF8))
            else:
                stream = io.BufferedReader(_Transcoded(stream, self.encoding), 1 << 20)
            self.stream = stream
            self.plain = self.compression is None and self.encoding == "utf-8"
            self.start = len(codecs.BOM_UTF8) if self.plain and head.startswith(codecs.BOM_UTF8) else 0
            self.head = self._peek(stream)  # UTF-8: for the format and the delimiter
        except _DECOMPRESSION_ERRORS as e:
            self.file.close()
            raise InputError(f"{path}: cannot read its {self.compression or ''} data: {e}") from None
        except BaseException:
            self.file.close()
            raise

    def error(self) -> Exception | None:
        """Why the decompressed data ended early, if it did."""
        return self.checked.error if self.checked else None

    @staticmethod
    def _peek(stream: BinaryIO) -> bytes:
        head = stream.peek(SNIFF_BYTES)
        return head[:SNIFF_BYTES]

    def fraction(self, offset: int) -> float:
        if self.plain:
            return min(offset / self.size, 1.0)
        return min(self.file.tell() / self.size, 1.0)

    def close(self) -> None:
        self.stream.close()
        self.file.close()


def _encoding(path: Path, head: bytes, asked: str | None) -> str:
    """UTF-16 when the file starts with its byte-order mark, else the encoding asked for, else UTF-8."""
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"  # the codec reads the mark and its byte order
    if asked is None:
        return "utf-8"
    try:
        name = codecs.lookup(asked).name
    except LookupError:
        raise InputError(f"{path}: unknown encoding {asked!r} (try utf-8, cp1252, latin-1, utf-16)") from None
    return "utf-8" if name == "utf-8" else name


# --------------------------------------------------------------------------------- the format


def detect_format(path: Path, head: bytes, asked: str | None = None) -> str:
    """The format asked for, else the one the name says (under any compression suffix), else the one the
    first bytes say: ``{`` JSON Lines, ``__label__`` fastText, ``PAR1`` Parquet, anything else CSV."""
    if asked:
        return asked
    if head.startswith(b"PAR1"):
        return "parquet"
    name = path.name.lower()
    stem, suffix = os.path.splitext(name)
    if suffix in _COMPRESSED_SUFFIXES:
        suffix = os.path.splitext(stem)[1]
    known = _SUFFIX_FORMATS.get(suffix)
    if known == "jsonl" and head.lstrip().startswith(b"["):
        raise InputError(f"{path}: holds one JSON array, not JSON Lines (one object a line); convert it with "
                         f"jq -c '.[]' {path.name} > reviews.jsonl")
    if known:
        return known
    start = head.lstrip()
    if start.startswith(b"{"):
        return "jsonl"
    if start.startswith(b"__label__"):
        return "fasttext"
    return "csv"


def sniff_delimiter(head: str) -> str:
    """The delimiter that splits the first lines into the same number (2 or more) of fields most often.

    >>> sniff_delimiter("id;text;label\\n1;Good, really;pos\\n2;Bad;neg\\n")
    ';'
    >>> sniff_delimiter("id,text\\n1,Good\\n")
    ','
    """
    lines = head.splitlines(keepends=True)
    if len(lines) > 1 and not head.endswith(("\n", "\r")):
        lines = lines[:-1]  # the last line of a peek may be cut short
    best, best_score = ",", 0.0
    for delimiter in DELIMITERS:
        try:
            records = [r for r in csv.reader(lines[:50], delimiter=delimiter) if r]
        except csv.Error:
            continue
        if not records or len(records[0]) < 2:
            continue
        score = sum(len(r) == len(records[0]) for r in records) / len(records)
        if score > best_score:
            best, best_score = delimiter, score
    return best


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


# ------------------------------------------------------------------------------------- tables
#
# A table has ``columns`` (the names a Columns mapping may use), ``scalar(name)`` (whether the column can be
# kept beside a review) and ``records(names)``: per record, the cells of those columns in that order (str;
# bytes in a CSV record with bytes that are not UTF-8; numbers, booleans or None from JSON and Parquet), or a
# _Broken. ``fraction()`` is the share of the file read up to the last record returned.


class _LineTable:
    """What the line formats share: a _Source read line by line."""

    format = ""
    columns: list[str]

    def __init__(self, source: _Source) -> None:
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

    def __init__(self, source: _Source, fmt: Format, tsv: bool) -> None:
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

    def records(self, names: list[str]) -> Iterator[tuple | _Broken]:
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
                yield _Broken(f"line {number}", _broken_reason(e, line_size, number), excerpt)
                continue
            if not fields:  # a blank line is no row
                continue
            if len(fields) != width:
                reason = f"unparseable: expected {width} fields, found {len(fields)}"
                yield _Broken(f"line {lines.first}", reason, _printable(self.delimiter.join(fields)[:200]))
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


def _physical_lines(lines: _Lines) -> Iterator[tuple[int, str] | _Broken]:
    """(line number, text) of each non-blank line; a line too long is one _Broken."""
    while True:
        lines.start_record()
        try:
            line = next(iter(lines), None)
        except _LongLine:
            head, size, number = lines.skip_first_line()
            yield _Broken(f"line {number}", f"line longer than {MAX_FIELD_BYTES >> 20} MiB "
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

    def __init__(self, source: _Source) -> None:
        super().__init__(source)
        self.peeked: list[tuple[int, str] | _Broken] = []
        self.columns: list[str] = []
        self.nested: dict[str, str] = {}  # path -> 'a list' | 'an object', for clear errors
        seen: dict[str, None] = {}
        self.cut: Exception | None = None  # compressed data that ended within the first lines
        try:
            for item in _physical_lines(self.lines):
                self.peeked.append(item)
                if not isinstance(item, _Broken):
                    try:
                        obj = orjson.loads(item[1])
                    except orjson.JSONDecodeError:
                        obj = None
                    if isinstance(obj, dict):
                        _paths(obj, "", seen, self.nested)
                if len(self.peeked) >= JSON_SAMPLE_LINES:
                    break
        except _DECOMPRESSION_ERRORS as e:
            self.cut = e
        if not self.peeked:
            raise InputError(f"{self.path}: the file is empty (no JSON records)")
        if not seen and not self.nested:
            raise InputError(f"{self.path}: no JSON object with fields in its first {len(self.peeked)} lines; is it "
                             "JSON Lines?")
        self.columns = list(seen)

    def records(self, names: list[str]) -> Iterator[tuple | _Broken]:
        keys = [n.split(".") for n in names]
        for item in chain(self.peeked, () if self.cut else _physical_lines(self.lines)):
            if isinstance(item, _Broken):
                yield item
                continue
            number, line = item
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError as e:
                reason = ("not valid UTF-8" if "utf-8" in str(e).lower() or "surrogate" in str(e)
                          else f"invalid JSON: {e}")
                yield _Broken(f"line {number}", reason, _printable(line[:200]).rstrip("\r\n"))
                continue
            if not isinstance(obj, dict):
                yield _Broken(f"line {number}", f"not a JSON object ({type(obj).__name__})",
                              _printable(line[:200]).rstrip("\r\n"))
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
    return _Nested(value) if isinstance(value, dict | list) else value


_LABEL = re.compile(r"__label__(\S*)\s*")


class _FastTextTable(_LineTable):
    """fastText label lines, ``__label__X text``, as two columns: label (X, the first label) and text."""

    format = "fasttext"

    def __init__(self, source: _Source) -> None:
        super().__init__(source)
        self.columns = ["label", "text"]

    def records(self, names: list[str]) -> Iterator[tuple | _Broken]:
        for item in _physical_lines(self.lines):
            if isinstance(item, _Broken):
                yield item
                continue
            number, line = item
            labelled = _LABEL.match(line)
            if not labelled:
                yield _Broken(f"line {number}", "no __label__ at the start of the line",
                              _printable(line[:200]).rstrip("\r\n"))
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


class _ParquetTable:
    """Parquet, row group by row group: the rows of a row group that cannot be decoded (those not read before
    the error) are one _Broken each, and the next row group is read."""

    def __init__(self, path: Path) -> None:
        self.path, self.file = path, _open_binary(path)
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

    def records(self, names: list[str]) -> Iterator[tuple | _Broken]:
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
                yield _Broken(f"row {self.row - 1}", reason, None)

    def close(self) -> None:
        self.file.close()


def open_table(path: Path, fmt: Format | None = None):
    """The table reader for a file: its format asked for, or told by its name and first bytes."""
    fmt = fmt or Format()
    if fmt.format is not None and fmt.format not in FORMATS:
        raise InputError(f"unknown format {fmt.format!r}; known: {', '.join(FORMATS)}")
    source = _Source(Path(path), fmt.encoding)
    try:
        kind = detect_format(source.path, source.head, fmt.format)
        if kind == "parquet":
            if source.compression:
                raise InputError(f"{path}: a {source.compression}-compressed Parquet file; decompress it first "
                                 "(Parquet compresses its own pages)")
            source.close()
            return _ParquetTable(Path(path))
        table = (_JsonTable(source) if kind == "jsonl" else _FastTextTable(source) if kind == "fasttext"
                 else _CsvTable(source, fmt, kind == "tsv"))
    except BaseException:
        source.close()
        raise
    return table


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


def _as_text(value) -> str | None:
    """One cell as text (bytes are decoded here: UnicodeDecodeError is the row's reject); None when null."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, _Nested):
        raise TypeError(f"holds {value.what}, not a value")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a JSON 2.0 or a Parquet float rating: the label 2
    return str(value)


def _field_text(value) -> str | None:
    """A kept cell as text, never a reject: bad bytes become U+FFFD, a float NaN (a missing value) None."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if value is None or isinstance(value, _Nested) or (isinstance(value, float) and np.isnan(value)):
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
    n_texts: int
    cols: Columns
    unescape: bool
    kept: list[str]


def _review(row: int, cells: tuple, plan: _Plan, seen_ids: set[str]) -> tuple:
    """(review_id, text, label, split, source_row, *kept cells as text) of one record; raises _Rejected saying
    why it cannot be scored (a split value that is not train/validation/test too: a typo must not move a test
    review). A kept cell never rejects its row. ``cells``: id, texts..., label, split, kept..."""
    cols, n = plan.cols, plan.n_texts
    raw_id, texts, raw_label, raw_split, extra = cells[0], cells[1:1 + n], cells[1 + n], cells[2 + n], cells[3 + n:]
    review_id = None
    where = "column" if n == 1 else "columns"
    try:
        if cols.id:
            try:
                review_id = (_as_text(raw_id) or "").strip() or None
            except (ValueError, TypeError) as e:
                if isinstance(e, UnicodeDecodeError):
                    raise
                raise ValueError(f"id column {cols.id!r} {e}") from None
            if review_id is None:
                raise ValueError(f"empty id in column {cols.id!r}")
            if review_id in seen_ids:
                raise ValueError(f"duplicate review_id {review_id!r} in column {cols.id!r}")
        parts = []
        for name, cell in zip(plan.text_names, texts):
            try:
                value = _as_text(cell) or ""
            except (ValueError, TypeError) as e:
                if isinstance(e, UnicodeDecodeError):
                    raise
                raise ValueError(f"text column {name!r} {e}") from None
            parts.append(clean_text(unescape(value) if plan.unescape else value))
        text = join_texts(parts) if n > 1 else parts[0]
        if not text:
            raise ValueError(f"empty text in {where} {', '.join(repr(t) for t in plan.text_names)}")
        label = None
        if cols.label:
            try:
                value = _as_text(raw_label)
            except (ValueError, TypeError) as e:
                if isinstance(e, UnicodeDecodeError):
                    raise
                raise ValueError(f"label column {cols.label!r} {e}") from None
            if value is None or not value.strip():
                raise ValueError(f"empty label in column {cols.label!r}")
            if cols.label_map is not None:
                mapped = cols.label_map.get(value.strip())
                if mapped is None:
                    raise ValueError(f"label {value!r} is not in --label-map ({', '.join(cols.label_map)})")
                value = mapped
            label = normalise_label(value, "text" if cols.label_map is not None else cols.label_kind)
        split = _as_text(raw_split)
        split = normalise_split(split) if split and split.strip() else None
    except UnicodeDecodeError as e:
        raise _Rejected(review_id, f"not valid UTF-8: {e} (for a legacy export give --encoding cp1252 or "
                                   "latin-1)") from None
    except ValueError as e:
        raise _Rejected(review_id, str(e)) from None
    review_id = review_id or str(row)
    seen_ids.add(review_id)
    return review_id, text, label, split, row, *(_field_text(v) for v in extra)


def _cell_excerpt(value) -> str | None:
    if isinstance(value, bytes):
        return value[:200].decode("utf-8", "replace")
    if value is None or isinstance(value, _Nested):
        return None
    return str(value)[:200]


def _chunk(reviews: list[tuple], rejects: list[tuple], fraction: float, kept: list[str]) -> Chunk:
    return Chunk(
        pd.DataFrame(reviews, columns=["review_id", "text", "label", "split", "source_row",
                                       *(FIELD + name for name in kept)]).astype({"source_row": "int64"}),
        pd.DataFrame(rejects, columns=REJECT_COLUMNS),
        fraction,
    )


def _guarded(table, records: Iterator) -> Iterator:
    """The table's records; compressed data that ends early or is corrupt ends them with one _Broken saying
    where (the records before it are kept)."""
    try:
        yield from records
    except _DECOMPRESSION_ERRORS as e:
        compression = getattr(getattr(table, "source", None), "compression", None)
        if compression is None and not isinstance(e, EOFError):
            raise InputError(f"{table.path}: cannot read the file: {e}") from None
        yield _Broken(table.where_next(), f"the {compression or 'file'} data ends early or is corrupt ({e}); "
                      "nothing after this point could be read", None)


def _open_mapped(path: Path, cols: Columns, fmt: Format) -> tuple:
    """The file's table, its columns checked against the mapping, and the plan that reads its records."""
    table = open_table(path, fmt)
    try:
        roles = _roles(cols, table.columns)
        _check_roles_differ(path, roles)
        _check_columns(path, table, roles)
        if isinstance(table, _ParquetTable):
            table.check_types(roles)
        kept = _kept_columns(path, table, cols, roles)
    except BaseException:
        table.close()
        raise
    texts = [n for r, n in roles if r == "text"]
    return table, _Plan(texts, len(texts), cols, fmt.unescape, kept)


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
        reviews: list[tuple] = []
        rejects: list[tuple] = []
        seen_ids: set[str] = set()  # ids in this chunk only (across chunks the store checks)
        full: Chunk | None = None   # a full chunk is given out when the next record exists, so the last says 1.0
        for row, item in enumerate(_guarded(table, table.records(wanted))):
            if full is not None:
                yield full
                full = None
            if isinstance(item, _Broken):
                rejects.append((item.location, None, item.reason, item.excerpt))
            else:
                cells = tuple(None if s is None else item[s] for s in slots)
                try:
                    reviews.append((*_review(row, cells, plan, seen_ids), *constant))
                except _Rejected as e:
                    rejects.append((f"row {row}", e.review_id, e.reason, _cell_excerpt(cells[1])))
            if len(reviews) + len(rejects) >= chunk_rows:
                full = _chunk(reviews, rejects, table.fraction(), all_kept)
                reviews, rejects = [], []
                seen_ids.clear()
        if full is not None:
            yield Chunk(full.reviews, full.rejects, 1.0)
        if reviews or rejects:
            yield _chunk(reviews, rejects, 1.0, all_kept)
    finally:
        table.close()
