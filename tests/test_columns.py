"""core.columns: the kind of each extra column of a review file, inferred from its values (the real clothing
reviews' columns among them), dates in the common formats, and hostile values that become counted NULLs,
never an exception."""

from __future__ import annotations

import doctest

import numpy as np
import pandas as pd
import pytest

import core.columns
from core.columns import DATE_FORMATS, UNIX, infer_kind, parse, parse_kinds


def test_doctests():
    assert doctest.testmod(core.columns).failed == 0


def test_the_columns_of_a_real_product_review_file():
    """The first rows of the Women's E-Commerce Clothing Reviews (as in the README's example), verbatim."""
    rows = pd.DataFrame({
        "Clothing ID": ["767", "1080", "1077", "1049", "847", "1080", "858", "858", "1077", "1077"] * 6,
        "Age": ["33", "34", "60", "50", "47", "49", "39", "39", "24", "34"] * 6,
        "Title": [None, None, "Some major design flaws", "My favorite buy!", "Flattering shirt",
                  "Not for the very petite", "Cagrcoal shimmer fun", "Shimmer, surprisingly goes with lots",
                  "Flattering", "Such a fun dress!"] * 6,
        "Recommended IND": ["1", "1", "0", "1", "1", "0", "1", "1", "1", "1"] * 6,
        "Division Name": ["Initmates", "General", "General", "General Petite", "General", "General",
                          "General Petite", "General Petite", "General", "General"] * 6,
    })
    rows["Title"] = [None if t is None else f"{t} ({i})" for i, t in enumerate(rows["Title"])]  # distinct titles
    kinds = {c: infer_kind(c, rows[c])[0] for c in rows}
    assert kinds == {"Clothing ID": "categorical", "Age": "numeric", "Title": "text",
                     "Recommended IND": "boolean", "Division Name": "categorical"}


@pytest.mark.parametrize("fmt", DATE_FORMATS)
def test_every_date_format_is_inferred_and_read(fmt):
    days = pd.Series(pd.to_datetime(["2012-12-24 10:30:00", "2013-01-02 08:00:00", "2013-02-13 23:59:59"], utc=True))
    text = days.dt.strftime(fmt)
    kind, found = infer_kind("reviewed", text)
    assert kind == "datetime"
    parsed, unparsed = parse(text, kind, found)
    expected = pd.to_datetime(text, format=fmt, utc=True).dt.tz_localize(None)
    assert unparsed == 0 and parsed.tolist() == expected.tolist()
    assert (parsed.dt.date == days.dt.date).all()  # the day is right whatever the format keeps of the time


def test_month_first_and_day_first_are_told_apart_by_the_column():
    us = pd.Series(["12/24/2012", "01/02/2013", "06/30/2013"])
    eu = pd.Series(["24/12/2012", "01/02/2013", "30/06/2013"])
    assert parse(us, *infer_kind("date", us))[0].dt.month.tolist() == [12, 1, 6]
    assert parse(eu, *infer_kind("date", eu))[0].dt.month.tolist() == [12, 2, 6]


def test_unix_seconds_only_where_the_name_says_time():
    seconds = pd.Series(["1356307200", "1357084800", "1360800000"])
    assert infer_kind("unixReviewTime", seconds) == ("datetime", UNIX)
    assert parse(seconds, "datetime", UNIX)[0].tolist()[0] == pd.Timestamp("2012-12-24")
    assert infer_kind("helpful_votes", seconds) == ("numeric", None)


def test_values_that_do_not_parse_become_counted_nulls():
    dates = pd.Series(["2012-12-24"] * 40 + ["next week", "2012-13-45", "", None])
    kind, fmt = infer_kind("date", dates)
    assert kind == "datetime"
    parsed, unparsed = parse(dates, kind, fmt)
    assert unparsed == 2 and parsed.isna().sum() == 4  # empty cells are NULL, not "unparsed"
    votes, bad = parse(pd.Series(["3", "three", "1,234", "NaN", "inf", "-0.5"]), "numeric")
    assert bad == 4 and votes.tolist()[0] == 3.0 and votes.tolist()[-1] == -0.5


@pytest.mark.parametrize("kind", ["boolean", "numeric", "datetime", "categorical", "text"])
def test_hostile_values_never_raise(kind):
    hostile = pd.Series(["<script>alert(1)</script>", "'; DROP TABLE reviews; --", "\x00\x01", "🙂" * 1000,
                         "9" * 400, "-", "NaN", "NULL", "1e400", "2012-02-30", "  ", np.nan, None, "x" * 100_000])
    parsed, unparsed = parse(hostile, kind)
    assert len(parsed) == len(hostile)
    assert 0 <= unparsed <= len(hostile)
    if kind in ("categorical", "text"):  # kept as written (stripped), never interpreted
        assert parsed[1] == "'; DROP TABLE reviews; --" and unparsed == 0
    infer_kind("anything", hostile)


def test_kind_overrides_name_what_is_wrong():
    assert parse_kinds(["a=b=numeric"]) == {"a=b": "numeric"}
    with pytest.raises(ValueError, match="COLUMN=KIND"):
        parse_kinds(["asin"])
    with pytest.raises(ValueError, match="unknown kind 'date'"):
        parse_kinds(["when=date"])
    with pytest.raises(ValueError, match="unknown column kind"):
        parse(pd.Series(["x"]), "date")
