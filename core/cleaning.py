"""Review text cleaning: HTML tags and entities, URLs, whitespace. Labels: every accepted spelling."""

from __future__ import annotations

import html
import re

import pyarrow as pa
import pyarrow.compute as pc

# Formatting tags only (IMDB is full of <br />). Other tag-like text, such as <img onerror=...> or <script>,
# is what the reviewer typed: it is kept, stored and later shown literally, never rendered.
_TAG = re.compile(
    r"</?(?:br|p|i|b|u|em|strong|hr|div|span|font|a|small|big|center|blockquote|h[1-6]|ul|ol|li)"
    r"(?:\s[^<>]{0,200})?\s*/?>",
    re.IGNORECASE,
)
_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_SPACE = re.compile(r"\s+")


def clean_text(text: str) -> str:
    """Strip formatting tags (``<br />``), decode entities, drop URLs, collapse whitespace.

    >>> clean_text("Great film!<br /><br />See http://x.y/z &amp; <i>enjoy</i>")
    'Great film! See & enjoy'
    >>> clean_text("<img src=x onerror=alert(1)> <3")
    '<img src=x onerror=alert(1)> <3'
    """
    text = _TAG.sub(" ", text)
    text = html.unescape(text)
    text = _URL.sub(" ", text)
    return _SPACE.sub(" ", text).strip()


TEXT_LABELS = {
    "positive": "positive", "pos": "positive", "1": "positive", "true": "positive",
    "negative": "negative", "neg": "negative", "0": "negative", "false": "negative",
    "neutral": "neutral",
}


def star_label(stars: float) -> str:
    """Star ratings: 1-2 negative, 3 neutral (scored, excluded from binary metrics), 4-5 positive.

    >>> [star_label(s) for s in (1, 2, 3, 4, 5)]
    ['negative', 'negative', 'neutral', 'positive', 'positive']
    """
    if not 1 <= stars <= 5:
        raise ValueError(f"star rating {stars} is outside 1-5")
    return "negative" if stars < 3 else "neutral" if stars < 4 else "positive"


def normalise_label(raw: str, kind: str) -> str:
    """Map one raw label value to positive/negative/neutral; raise ValueError naming the value if unknown."""
    value = raw.strip()
    if kind == "stars":
        try:
            return star_label(float(value))
        except ValueError:
            raise ValueError(f"label {raw!r} is not a star rating from 1 to 5") from None
    label = TEXT_LABELS.get(value.lower())
    if label is None:
        raise ValueError(f"label {raw!r} is not one of positive/negative/neutral, pos/neg, 1/0 (any case)")
    return label


# The same cleaning over a whole column at once, in Arrow's C++ kernels (RE2): RE2's \s is ASCII only, so
# whitespace is spelled out as the characters Python's str.isspace() accepts, which _SPACE and strip() use.
_WS = r"\t\n\x{0b}\x{0c}\r\x{1c}-\x{1f} \x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}"
_TAG_RE2 = (r"(?i)</?(?:br|p|i|b|u|em|strong|hr|div|span|font|a|small|big|center|blockquote|h[1-6]|ul|ol|li)"
            rf"(?:[{_WS}][^<>]{{0,200}})?[{_WS}]*/?>")
_URL_RE2 = rf"(?i)(?:https?://|www\.)[^{_WS}]+"
# a run of two or more, or one that is not a plain space: a lone space stays (matching each costs 8x)
_SPACE_RE2 = rf"[{_WS}]{{2,}}|[{_WS.replace(' ', '')}]"


def clean_texts(texts) -> list[str]:
    """clean_text over a list (or an Arrow array) of texts, vectorised: the tags, URLs and whitespace by
    Arrow's regular expressions over the whole column, the entities by html.unescape only where an '&' is.

    >>> clean_texts(["Great film!<br /><br />See http://x.y/z &amp; <i>enjoy</i>", "<img src=x onerror=alert(1)> <3"])
    ['Great film! See & enjoy', '<img src=x onerror=alert(1)> <3']
    """
    column = pc.replace_substring_regex(pa.array(texts, type=pa.large_string()), _TAG_RE2, " ")
    has_entity = pc.fill_null(pc.match_substring(column, "&"), False).to_numpy(zero_copy_only=False)
    if has_entity.any():  # entities: Python's html.unescape (HTML5's table and rules), on those rows only
        values = column.to_pylist()
        for k in has_entity.nonzero()[0]:
            values[k] = html.unescape(values[k])
        column = pa.array(values, type=pa.large_string())
    column = pc.replace_substring_regex(column, _URL_RE2, " ")
    column = pc.utf8_trim(pc.replace_substring_regex(column, _SPACE_RE2, " "), " ")
    return column.to_pylist()
