"""The vectorised cleaning (core.cleaning.clean_texts) gives exactly what the per-review clean_text gives: on
every raw IMDB review, on hostile text and on the whitespace, entity and case corners where Python's re and
Arrow's RE2 could differ."""

from __future__ import annotations

from core.cleaning import clean_text, clean_texts
from core.corpus import read_imdb
from tests.helpers import HOSTILE

CORNERS = [
    "", " ", "\u3000full-width\u3000space\u2028line\u2029para\x85next\xa0nbsp\x1cfs\x1fus\x0bvt\x0cff",
    "tabs\t\tand\r\nnewlines\n\n", "<BR/>upper<Br >mixed</P><p class='x'>attr</p>", "<br\u3000/>ideographic space",
    "&amp;lt;br&amp;gt; stays text", "&lt;br&gt; decoded after the tags", "&#60;i&#62; numeric", "&nbsp;&#32;&#x3000;",
    "&amp &lt no semicolons &copy", "& alone, &unknown; entity", "HTTPS://EXAMPLE.COM/x upper url", "www.a.b",
    "see http://a.b/c\u3000after", "\u212a kelvin <\u212aBD> <ſpan>", "<a href='http://x'>link</a>",
    "<div" + " x" * 150 + ">long tag</div>", "<b>" * 3 + "nested" + "</b>" * 3, "<h1>head</h1><h7>no</h7>",
    "emoji 😀 <i>and</i> 中文", "\ud7ff edge", "<script>alert(1)</script>", "a\u200bzero-width space",
]


def test_the_vectorised_cleaning_equals_clean_text_on_every_imdb_review():
    raw = read_imdb()["review"].astype(str).tolist()
    assert len(raw) == 50_000
    assert clean_texts(raw) == [clean_text(t) for t in raw]


def test_the_vectorised_cleaning_equals_clean_text_on_hostile_text_and_corners():
    texts = [*HOSTILE, *CORNERS]
    assert clean_texts(texts) == [clean_text(t) for t in texts]
