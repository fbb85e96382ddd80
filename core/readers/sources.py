"""Where a review dump's bytes come from: a file, a folder or a glob; its compression, told by its first bytes
(gzip, bz2, xz, zstd); its encoding (UTF-8, UTF-16 by its byte-order mark, or one asked for); its format, told
by its name or its first bytes; a CSV's delimiter, sniffed from its first lines.

``Source`` gives a file's content as UTF-8 bytes to the table readers (core.readers.tables), with the share of
the file on disk read so far.
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
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import zstandard

from core.errors import InputError

FORMATS = ("csv", "tsv", "jsonl", "fasttext", "parquet")
COMPRESSIONS = {b"\x1f\x8b": "gzip", b"BZh": "bz2", b"\xfd7zXZ\x00": "xz", b"\x28\xb5\x2f\xfd": "zstd"}
_COMPRESSED_SUFFIXES = {".gz", ".gzip", ".bz2", ".xz", ".zst", ".zstd"}
_SUFFIX_FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl",
                   ".json": "jsonl", ".parquet": "parquet", ".pq": "parquet", ".txt": None, ".ft": "fasttext"}
DELIMITERS = (",", "\t", ";", "|")
SNIFF_BYTES = 64 << 10
DECOMPRESSION_ERRORS = (EOFError, OSError, lzma.LZMAError, zstandard.ZstdError)


@dataclass
class Format:
    """How to read a file's bytes; every field left None is detected from the file."""

    format: str | None = None     # one of FORMATS
    header: bool = True           # CSV/TSV: the first record names the columns
    delimiter: str | None = None  # CSV: sniffed from the first lines when None (TSV: tab)
    encoding: str | None = None   # None: UTF-8, or UTF-16 when the file starts with its byte-order mark
    unescape: bool = False        # turn \n, \t, \\ and \" written in the text back into the characters


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


def open_binary(path: Path) -> io.BufferedReader:
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
        except DECOMPRESSION_ERRORS as e:
            self.error = e
            return 0
        buffer[:len(data)] = data
        return len(data)


class Source:
    """A file's content as UTF-8 bytes: decompressed (the compression is told by the first bytes, whatever the
    name) and transcoded; ``fraction(offset)`` is the share of the file on disk read, from the compressed
    bytes read where the file is compressed or transcoded, else from ``offset`` (UTF-8 bytes consumed)."""

    def __init__(self, path: Path, encoding: str | None = None) -> None:
        self.path = path
        self.file = open_binary(path)
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
        except DECOMPRESSION_ERRORS as e:
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
