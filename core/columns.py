"""The kinds of the extra columns a review file brings (product, category, date, verified, helpful votes):
inferred from the values, overridable, and parsed without ever failing a row.

    boolean      true/false, yes/no, y/n, t/f, or a column of only 0 and 1 (any case)      -> bool
    numeric      integers and decimals (-3, 4.5, 1e3); '1,234' is not a number here      -> float64
    datetime     one format per column, the one that reads most of its values: ISO
                 (2012-12-24, 2012-12-24 10:00:00, 2012-12-24T10:00:00Z), US (12/24/2012),
                 day first (24/12/2012, 24.12.2012), month names (December 24, 2012;
                 Dec 24, 2012; 24 December 2012), or Unix seconds where the column's name
                 says it is a time (Amazon's unixReviewTime)                               -> datetime64 (UTC)
    categorical  repeated values (a category, a brand), and any column named as an id
                 (Clothing ID, product_id, asin), numbers or not                           -> text
    text         anything else, mostly distinct (a review title): kept, not sliced by     -> text

A value that does not parse as its column's kind becomes NULL and is counted, never a crash; an empty
cell is NULL and is not counted as unparsed. Inference reads a sample of a column's non-empty values and
takes the first of boolean, numeric, datetime that at least ``SHARE`` of them parse as.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

KINDS = ("boolean", "numeric", "datetime", "categorical", "text")
SHARE = 0.95           # of a sample's non-empty values, to infer a parsed kind
DISTINCT_TEXT = 0.5    # a column whose values are more distinct than this (and has 50+ values) is text
TRUE = {"true", "t", "yes", "y", "1"}
FALSE = {"false", "f", "no", "n", "0"}
DATE_FORMATS = ("%Y-%m-%d", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%SZ",
                "%Y-%m-%dT%H:%M:%S%z", "%Y/%m/%d", "%m/%d/%Y", "%m/%d/%Y %H:%M", "%m/%d/%Y %H:%M:%S",
                "%d/%m/%Y", "%d.%m.%Y", "%B %d, %Y", "%b %d, %Y", "%B %d %Y", "%b %d %Y", "%d %B %Y",
                "%d %b %Y", "%m %d, %Y")  # the last: McAuley Amazon reviewTime, 03 23, 2011
UNIX = "unix seconds"
_TIME_NAME = re.compile(r"time|date|timestamp|_at$", re.IGNORECASE)
_ID_NAME = re.compile(r"(^|[\W_])id$|^asin$", re.IGNORECASE)
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def _present(values: pd.Series) -> pd.Series:
    """The non-empty cells, stripped, as str."""
    text = values.dropna().astype(str).str.strip()
    return text[text != ""]


def parse_boolean(values: pd.Series) -> pd.Series:
    """
    >>> parse_boolean(pd.Series(["Yes", "no", "1", "maybe", None])).tolist()
    [True, False, True, <NA>, <NA>]
    """
    lower = values.astype("string").str.strip().str.lower()
    return lower.map(lambda v: True if v in TRUE else False if v in FALSE else pd.NA).astype("boolean")


def parse_numeric(values: pd.Series) -> pd.Series:
    """
    >>> parse_numeric(pd.Series(["4", " -2.5 ", "1e3", "1,234", "n/a"])).tolist()
    [4.0, -2.5, 1000.0, nan, nan]
    """
    text = values.astype("string").str.strip()
    ok = text.str.fullmatch(_NUMBER.pattern).fillna(False).astype(bool)
    out = pd.Series(np.nan, index=values.index, dtype="float64")
    out[ok] = text[ok].astype(float)
    return out


def date_format(name: str, values: pd.Series, at_least: float = SHARE) -> str | None:
    """The one format that reads most of ``values`` (at least ``at_least`` of the non-empty ones), else None.

    >>> date_format("date", pd.Series(["12/24/2012", "01/02/2013"]))
    '%m/%d/%Y'
    >>> date_format("date", pd.Series(["24/12/2012", "01/02/2013"]))
    '%d/%m/%Y'
    >>> date_format("unixReviewTime", pd.Series(["1356307200", "1357084800"]))
    'unix seconds'
    """
    present = _present(values)
    if present.empty:
        return None
    if _TIME_NAME.search(name) and present.str.fullmatch(r"\d{9,10}").all():
        return UNIX
    best, best_share = None, 0.0
    for fmt in DATE_FORMATS:
        share = pd.to_datetime(present, format=fmt, errors="coerce").notna().mean()
        if share > best_share:
            best, best_share = fmt, share
    return best if best and best_share >= at_least else None


def parse_datetime(values: pd.Series, fmt: str) -> pd.Series:
    """Values in format ``fmt`` (or UNIX) -> UTC timestamps without a zone; others NaT.

    >>> parse_datetime(pd.Series(["December 24, 2012", "soon"]), "%B %d, %Y").tolist()
    [Timestamp('2012-12-24 00:00:00'), NaT]
    """
    text = values.astype("string").str.strip()
    if fmt == UNIX:
        seconds = parse_numeric(text)
        return pd.to_datetime(seconds, unit="s", errors="coerce")
    parsed = pd.to_datetime(text, format=fmt, errors="coerce", utc=True)
    return parsed.dt.tz_localize(None)


def infer_kind(name: str, values: pd.Series) -> tuple[str, str | None]:
    """(kind, datetime format or None) of a column from a sample of its values.

    >>> infer_kind("verified", pd.Series(["Y", "N", "Y"]))
    ('boolean', None)
    >>> infer_kind("helpful", pd.Series(["0", "3", "12"]))
    ('numeric', None)
    >>> infer_kind("reviewed", pd.Series(["2012-12-24", "2013-01-02"]))
    ('datetime', '%Y-%m-%d')
    >>> infer_kind("category", pd.Series(["Dresses", "Tops", "Dresses"]))
    ('categorical', None)
    >>> infer_kind("Clothing ID", pd.Series(["767", "1080", "767"]))
    ('categorical', None)
    """
    present = _present(values)
    if present.empty or _ID_NAME.search(name.strip()):
        return "categorical", None
    if parse_boolean(present).notna().mean() >= SHARE:
        return "boolean", None
    fmt = date_format(name, present)
    if fmt == UNIX:
        return "datetime", fmt
    if parse_numeric(present).notna().mean() >= SHARE:
        return "numeric", None
    if fmt is not None:
        return "datetime", fmt
    if len(present) >= 50 and present.nunique() / len(present) > DISTINCT_TEXT:
        return "text", None
    return "categorical", None


def parse(values: pd.Series, kind: str, fmt: str | None = None) -> tuple[pd.Series, int]:
    """A column parsed as ``kind``; returns it and how many non-empty cells did not parse (now NULL).

    >>> parsed, unparsed = parse(pd.Series(["3", "x", "", None]), "numeric")
    >>> parsed.tolist(), unparsed
    ([3.0, nan, nan, nan], 1)
    """
    if kind not in KINDS:
        raise ValueError(f"unknown column kind {kind!r}; known: {', '.join(KINDS)}")
    text = values.astype("string").str.strip()
    empty = text.isna() | (text == "")
    if kind == "boolean":
        parsed = parse_boolean(text)
    elif kind == "numeric":
        parsed = parse_numeric(text)
    elif kind == "datetime":
        parsed = parse_datetime(text, fmt or date_format("", text) or DATE_FORMATS[0])
    else:
        return text.where(~empty, None).astype(object), 0
    return parsed, int((parsed.isna() & ~empty).sum())


def parse_kinds(spec: list[str]) -> dict[str, str]:
    """``--col-type`` values (``COLUMN=KIND``, repeatable) -> {column: kind}; ValueError naming a bad one.

    >>> parse_kinds(["stars_date=datetime", "asin=categorical"])
    {'stars_date': 'datetime', 'asin': 'categorical'}
    """
    out = {}
    for item in spec:
        column, sep, kind = item.rpartition("=")
        if not sep or not column:
            raise ValueError(f"--col-type expects COLUMN=KIND, got {item!r}")
        if kind not in KINDS:
            raise ValueError(f"--col-type {item!r}: unknown kind {kind!r}; known: {', '.join(KINDS)}")
        out[column] = kind
    return out


def long_form(review_ids: pd.Series, name: str, raw: pd.Series, kind: str, fmt: str | None = None
              ) -> tuple[pd.DataFrame, int]:
    """One kept column of some reviews as rows of the ``review_fields`` table, and its unparsed count.

    Parsed values go to num_value (numeric; boolean as 1/0), time_value (datetime) or text_value
    (categorical, text); a cell that did not parse keeps its raw text in text_value with no typed value,
    so nothing the file held is lost. Empty cells get no row.

    >>> rows, unparsed = long_form(pd.Series(["a", "b", "c"]), "votes", pd.Series(["3", "lots", ""]), "numeric")
    >>> rows["review_id"].tolist(), rows["num_value"].tolist(), rows["text_value"].fillna("-").tolist(), unparsed
    (['a', 'b'], [3.0, nan], ['-', 'lots'], 1)
    """
    parsed, unparsed = parse(raw, kind, fmt)
    text = raw.astype("string").str.strip()
    present = (text.notna() & (text != "")).to_numpy()
    typed = kind in ("boolean", "numeric", "datetime")
    # text is kept for categorical and text columns, and for a typed column's cells that did not parse
    keep_text = ~parsed.notna().to_numpy() if typed else present
    frame = pd.DataFrame({
        "review_id": review_ids.to_numpy(), "field": name, "kind": kind,
        "text_value": text.where(keep_text).astype(object).to_numpy(),
        "num_value": (parsed.astype("float64") if kind in ("boolean", "numeric") else np.nan),
        "time_value": (parsed if kind == "datetime" else pd.NaT),
    }, index=raw.index)
    return frame[present].reset_index(drop=True), unparsed
