"""Review text cleaning: HTML tags and entities, URLs, whitespace. Labels: every accepted spelling."""

from __future__ import annotations

import html
import re

_TAG = re.compile(r"<[^>]{0,200}>")
_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_SPACE = re.compile(r"\s+")


def clean_text(text: str) -> str:
    """Strip HTML tags (``<br />``), decode entities, drop URLs, collapse whitespace.

    >>> clean_text("Great film!<br /><br />See http://x.y/z &amp; enjoy")
    'Great film! See & enjoy'
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
