"""A first look at a review dump: its format, each column's kind with examples, and a guess of which columns
hold the text, the label, the id and the date, so that ``jobs.score FILE --inspect`` can print the command
that imports it, and ``jobs.score FILE`` without ``--text-col`` can use the guess when it is unambiguous.

The guess reads the first SAMPLE records only and is a guess: every choice it makes is printed.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from core import columns
from core.cleaning import TEXT_LABELS
from core.errors import InputError
from core.readers import Format, base_name, field_text, guarded, open_table
from core.readers.tables import Broken

SAMPLE = 500
BODY_MIN_CHARS = 20  # a review body is longer than this on average; names and ids are shorter
_TITLE = re.compile(r"^(title|summary|headline|subject|review_?title|review_?headline)$", re.IGNORECASE)
_LABEL = re.compile(r"^(label|labels|sentiment|polarity|class|rating|ratings|stars?|star_rating|overall|score|"
                    r"target|y)$", re.IGNORECASE)
_ID = re.compile(r"^(id|review_?id|reviewid)$", re.IGNORECASE)


@dataclass
class Column:
    name: str
    kind: str             # core.columns kind: boolean, numeric, datetime, categorical, text
    date_format: str | None
    filled: float         # share of the sampled records with a value
    distinct: int
    mean_chars: float
    examples: list[str]


@dataclass
class Guess:
    text: list[str] = field(default_factory=list)  # title first, then body
    label: str | None = None
    label_kind: str = "text"
    label_map: dict[str, str] | None = None
    id: str | None = None
    dates: list[str] = field(default_factory=list)
    unescape: bool = False
    headerless: bool = False
    doubts: list[str] = field(default_factory=list)  # why a role was left unguessed

    @property
    def unambiguous(self) -> bool:
        return bool(self.text) and not any(d.startswith("text") for d in self.doubts)

    def role_options(self) -> list[str]:
        """The jobs.score options that map the guessed columns to their roles."""
        options = ["--text-col", ",".join(self.text) if self.text else "TEXT_COLUMN"]
        if self.id:
            options += ["--id-col", self.id]
        if self.label:
            options += ["--label-col", self.label]
            if self.label_map:
                options += ["--label-map", ",".join(f"{k}={v}" for k, v in self.label_map.items())]
            elif self.label_kind != "text":
                options += ["--label-kind", self.label_kind]
        return options


@dataclass
class Report:
    path: Path
    format: str
    compression: str | None
    encoding: str
    delimiter: str | None
    records: int
    broken: int
    columns: list[Column]
    guess: Guess
    fmt: Format  # the reading options the guess needs (header, unescape)


def _sample(path: Path, fmt: Format, n: int) -> tuple[object, pd.DataFrame, int]:
    table = open_table(path, fmt)
    try:
        names = list(table.columns)
        rows, broken = [], 0
        for item in guarded(table, table.records(names)):
            if isinstance(item, Broken):
                broken += 1
            else:
                rows.append([field_text(v) for v in item])
            if len(rows) + broken >= n:
                break
        return table, pd.DataFrame(rows, columns=names, dtype=object), broken
    finally:
        table.close()


def _looks_headerless(header: list[str]) -> bool:
    """A first record with a long cell, or with a number where a name would be, is data, not a header.

    >>> _looks_headerless(["2", "Great CD", "My lovely Pat has one of the great voices of her generation."])
    True
    >>> _looks_headerless(["id", "review", "sentiment"])
    False
    """
    return any(len(cell) > 50 or columns.parse_numeric(pd.Series([cell])).notna().iloc[0] for cell in header)


def _describe(name: str, values: pd.Series) -> Column:
    present = values.dropna().astype(str)
    present = present[present.str.strip() != ""]
    kind, fmt = columns.infer_kind(name, present)
    examples = [v if len(v) <= 60 else v[:57] + "..." for v in present.drop_duplicates().head(3)]
    return Column(name, kind, fmt, len(present) / max(len(values), 1), int(present.nunique()),
                  float(present.str.len().mean()) if len(present) else 0.0, examples)


def _label_reading(values: pd.Series) -> tuple[str, dict[str, str] | None] | None:
    """How a label column's values read as sentiment: ('text', None), ('stars', None) or ('text', a map);
    None when they do not.

    >>> _label_reading(pd.Series(["1", "2", "2"]))
    ('text', {'1': 'negative', '2': 'positive'})
    >>> _label_reading(pd.Series(["5.0", "1.0", "3.0"]))
    ('stars', None)
    >>> _label_reading(pd.Series(["pos", "neg"]))
    ('text', None)
    """
    present = values.dropna().astype(str).str.strip()
    present = present[present != ""]
    if present.empty:
        return None
    if present.str.lower().isin(TEXT_LABELS).mean() >= columns.SHARE:  # a stray odd value is a reject later
        return "text", None
    numbers = columns.parse_numeric(present)
    if numbers.notna().mean() < columns.SHARE:
        return None
    found = set(numbers.dropna())
    if found <= {1.0, 2.0}:  # Zhang et al.'s polarity sets and their fastText versions: 1 negative, 2 positive
        return "text", {"1": "negative", "2": "positive"}
    if found <= {-1.0, 1.0}:
        return "text", {"-1": "negative", "1": "positive"}
    if found <= {1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0} and max(found) > 2:
        return "stars", None
    return None


def guess_roles(cols: list[Column], sample: pd.DataFrame, headerless: bool) -> Guess:
    guess = Guess(headerless=headerless)
    by_name = {c.name: c for c in cols}
    # text: the longest column on average; a second one nearly as long makes it a doubt
    texty = sorted((c for c in cols if c.kind in ("text", "categorical") and c.mean_chars >= BODY_MIN_CHARS
                    and not _TITLE.match(c.name)), key=lambda c: -c.mean_chars)
    if not texty:
        guess.doubts.append("text: no column holds text of 20 characters or more on average")
    else:
        body = texty[0]
        if len(texty) > 1 and texty[1].mean_chars >= 0.5 * body.mean_chars:
            guess.doubts.append(f"text: {body.name!r} and {texty[1].name!r} are both long; name one with --text-col")
        titles = [c for c in cols if c is not body and c.kind in ("text", "categorical") and (
            _TITLE.match(c.name) or (headerless and c.mean_chars >= 5 and c.distinct >= 0.5 * len(sample)
                                     and c.mean_chars < body.mean_chars))]
        guess.text = [titles[0].name, body.name] if len(titles) == 1 else [body.name]
        guess.unescape = bool(sample[body.name].dropna().astype(str).str.contains("\\n", regex=False).mean() > 0.02)
    # label: a column named so, or (no header, fastText) one with a few short distinct values
    named = [c for c in cols if _LABEL.match(c.name)]
    few = [c for c in cols if c.distinct <= 10 and c.mean_chars <= 10 and c.name not in guess.text
           and c.kind != "datetime"]
    candidates = named or (few if headerless or set(by_name) == {"label", "text"} else [])
    readable = [(c, r) for c in candidates if (r := _label_reading(sample[c.name])) is not None]
    if len(readable) == 1:
        (c, (kind, mapping)), = readable
        guess.label, guess.label_kind, guess.label_map = c.name, kind, mapping
    elif len(readable) > 1:
        guess.doubts.append("label: " + " or ".join(repr(c.name) for c, _ in readable) + "; name one with --label-col")
    elif candidates:
        guess.doubts.append(f"label: {candidates[0].name!r} holds values that are not read as sentiment "
                            f"({', '.join(candidates[0].examples)}); give --label-map")
    ids = [c for c in cols if _ID.match(c.name) and c.distinct == round(c.filled * len(sample)) and c.filled == 1]
    guess.id = ids[0].name if len(ids) == 1 else None
    guess.dates = [c.name for c in cols if c.kind == "datetime"]
    return guess


def inspect(path: Path, fmt: Format | None = None, n: int = SAMPLE) -> Report:
    """Read the first ``n`` records of ``path`` and describe them (see the module's docstring)."""
    fmt = fmt or Format()
    table, sample, broken = _sample(path, fmt, n)
    headerless = False
    if table.format in ("csv", "tsv") and fmt.header and _looks_headerless(list(sample.columns)):
        headerless = True
        fmt = replace(fmt, header=False)
        table, sample, broken = _sample(path, fmt, n)
    if sample.empty:
        raise InputError(f"{path}: no readable record in its first {n} ({broken} could not be read)")
    cols = [_describe(name, sample[name]) for name in sample.columns]
    guess = guess_roles(cols, sample, headerless or not fmt.header)
    fmt = replace(fmt, unescape=fmt.unescape or guess.unescape)
    source = getattr(table, "source", None)
    return Report(Path(path), table.format, getattr(source, "compression", None),
                  getattr(source, "encoding", "utf-8"), getattr(table, "delimiter", None), len(sample), broken,
                  cols, guess, fmt)


def command(report: Report, corpus: str | None = None, db: str = "data/reviews.duckdb", given: str | None = None
            ) -> list[str]:
    """The jobs.score command line that imports the inspected file with the guessed columns."""
    g, fmt = report.guess, report.fmt
    corpus = corpus or re.sub(r"[^A-Za-z0-9_-]+", "-", base_name(report.path)).strip("-").lower() or "reviews"
    args = ["python", "-m", "jobs.score", given or str(report.path), "--db", db, "--corpus", corpus,
            *g.role_options()]
    if not fmt.header:
        args.append("--no-header")
    if fmt.unescape:
        args.append("--unescape")
    if fmt.encoding:
        args += ["--encoding", fmt.encoding]
    if fmt.format:
        args += ["--format", fmt.format]
    if fmt.delimiter:
        args += ["--delimiter", fmt.delimiter]
    return [*args, "--models", "all"]


def render(report: Report, cmd: list[str]) -> str:
    """The report as the text ``--inspect`` prints."""
    how = [report.format, *([report.compression] if report.compression else []), report.encoding]
    if report.delimiter is not None:
        how.append(f"delimiter {report.delimiter!r}")
    if report.guess.headerless:
        how.append("no header row (columns numbered from 1)")
    lines = [f"{report.path}: {', '.join(how)}; first {report.records:,} records read"
             + (f", {report.broken:,} unreadable" if report.broken else ""), ""]
    width = max(len(c.name) for c in report.columns)
    for c in report.columns:
        kind = c.kind + (f" ({c.date_format})" if c.date_format else "")
        lines.append(f"  {c.name:<{width}}  {kind:<24} {c.filled:>4.0%} filled, {c.distinct:>5,} distinct, "
                     f"{c.mean_chars:>6.0f} chars   e.g. " + " | ".join(repr(e) for e in c.examples))
    g = report.guess
    lines += ["", "guess:",
              f"  text   {' + '.join(g.text) if g.text else '-'}" + ("  (title and body joined)" if len(g.text) > 1 else ""),
              f"  label  {g.label or '-'}" + (f"  ({', '.join(f'{k}={v}' for k, v in g.label_map.items())})"
                                              if g.label_map else f"  ({g.label_kind})" if g.label else ""),
              f"  id     {g.id or '- (ids are FILE:ROW)'}",
              f"  dates  {', '.join(g.dates) or '-'}"]
    if g.unescape:
        lines.append("  the text holds \\n escapes: --unescape turns them back into line breaks")
    lines += [f"  doubt: {d}" for d in g.doubts]
    lines += ["", "to import and score it:", "  " + shlex.join(cmd)]
    return "\n".join(lines)
