"""Why a model gave its verdict, on the dashboard: the trained models (loaded once per process), each one's
explanation of a review (core.explain; cached), and the review drawn with its words highlighted: green
toward positive, red toward negative, stronger for a larger weight. The text is escaped piece by piece, so a
review's own markup stays text."""

from __future__ import annotations

import html
import re

import pandas as pd
import streamlit as st

from core.errors import SentimentError
from core.explain import Explanation
from core.models import available_models, load_model

POSITIVE, NEGATIVE = (22, 163, 74), (220, 38, 38)  # green, red
FAINT = 0.05  # of the largest weight: weaker words are not highlighted
EXPLAIN_CHARS = 5_000  # a longer review is explained on its first characters (the cost grows with its words)


_LOADED: set[str] = set()  # the models this process has loaded (model's cache holds them)


@st.cache_resource(show_spinner=False, max_entries=8)
def _load(name: str):
    loaded = load_model(name)
    _LOADED.add(name)
    return loaded


def model(name: str):
    """A trained model of the models folder (or the built-in VADER), loaded once for every session; the
    first time, under a spinner that names it."""
    if name in _LOADED:
        return _load(name)
    with st.spinner(f"Loading {name} (once; a BERT takes seconds)..."):
        return _load(name)


def is_loaded(name: str) -> bool:
    return name in _LOADED


def explainable(names: list[str] | tuple[str, ...]) -> list[str]:
    """Of ``names``, the models whose files are here (a model scored elsewhere cannot be explained)."""
    here = set(available_models())
    return [n for n in names if n in here]


@st.cache_data(show_spinner=False, max_entries=256)
def explanation(name: str, text: str) -> Explanation:
    """``name``'s explanation of ``text`` (its first EXPLAIN_CHARS characters)."""
    return model(name).explain([text[:EXPLAIN_CHARS]])[0]


def safe_explanation(name: str, text: str) -> tuple[Explanation | None, str | None]:
    """(explanation, None), or (None, why not) when the model cannot be loaded or explain."""
    try:
        with st.spinner(f"Explaining with {name}..."):
            return explanation(name, text), None
    except (SentimentError, OSError, ValueError, RuntimeError) as e:
        return None, f"{name} cannot explain this review: {e}"


def highlighted(text: str, ex: Explanation) -> str:
    """``text`` as HTML, every piece escaped, each explained word on a background whose colour says its
    direction and whose strength its share of the largest weight (words under FAINT of it stay plain, so
    the strong ones stand out); the weight shows on hover."""
    strongest = max((abs(w) for *_, w in ex.spans), default=0.0) or 1.0
    out, last = [], 0
    for start, end, weight in sorted(ex.spans):
        if start < last or abs(weight) < FAINT * strongest:
            continue
        r, g, b = POSITIVE if weight > 0 else NEGATIVE
        alpha = 0.1 + 0.7 * abs(weight) / strongest
        out.append(html.escape(text[last:start]))
        out.append(f'<span style="background: rgba({r}, {g}, {b}, {alpha:.2f}); border-radius: 3px" '
                   f'title="{weight:+.4f}">{html.escape(text[start:end])}</span>')
        last = end
    out.append(html.escape(text[last:]))
    return ('<div style="white-space: pre-wrap; line-height: 1.7; font-size: 0.95rem">' + "".join(out)
            + "</div>")


def term_pattern(term: str) -> re.Pattern:
    """Where a text uses ``term`` (a word or two-word phrase of core.drivers), as its tokenizer reads it:
    whole words, any case, any separators between the two words.

    >>> [m.group() for m in term_pattern("not good").finditer("Not, good; not goods")]
    ['Not, good']
    """
    return re.compile(r"(?<![\w'])" + r"[^\w']+".join(map(re.escape, term.split())) + r"(?![\w'])", re.IGNORECASE)


def marked(text: str, term: str) -> str:
    """``text`` as HTML, every piece escaped, each use of ``term`` marked (yellow: a search hit, not a weight)."""
    out, last = [], 0
    for m in term_pattern(term).finditer(text):
        out += [html.escape(text[last:m.start()]), f"<mark>{html.escape(m.group())}</mark>"]
        last = m.end()
    out.append(html.escape(text[last:]))
    return '<div style="white-space: pre-wrap; line-height: 1.7; font-size: 0.95rem">' + "".join(out) + "</div>"


def top_words(text: str, ex: Explanation, k: int = 5) -> pd.DataFrame:
    """The ``k`` words pushing hardest toward positive, then toward negative: word, weight."""
    rows = [*ex.top(k, 1.0), *ex.top(k, -1.0)]
    return pd.DataFrame({"word": [text[s:e] for s, e, _ in rows], "weight": [w for *_, w in rows]})


def caption(ex: Explanation) -> str:
    """What the weights are: the method, P, the reference P and the convergence error."""
    line = (f"{ex.method}: P(positive) {ex.p:.3f}, {ex.base:.3f} for the reference input; the weights add up to "
            f"the difference")
    if ex.delta:
        line += f" within {ex.delta:.4f}"
    return line + "." + "".join(f" Note: {n}." for n in ex.notes)


def show(text: str, names: list[str], key: str) -> None:
    """One review, explained by each of ``names`` side by side (one column each)."""
    names = explainable(names)
    if not names:
        st.caption("None of these models' files is in this machine's models folder: nothing to explain with.")
        return
    if len(text) > EXPLAIN_CHARS:
        st.caption(f"Explained on its first {EXPLAIN_CHARS:,} characters.")
    for column, name in zip(st.columns(len(names)), names, strict=True):
        ex, problem = safe_explanation(name, text)
        column.markdown(f"**{name}**")
        if ex is None:
            column.warning(problem)
            continue
        column.html(highlighted(text[:EXPLAIN_CHARS], ex))
        column.caption(caption(ex))
        column.dataframe(top_words(text[:EXPLAIN_CHARS], ex), hide_index=True, key=f"{key}_{name}",
                         column_config={"weight": st.column_config.NumberColumn("weight", format="%+.4f")})


def why(text: str, models: list[str] | tuple[str, ...], default: list[str] | tuple[str, ...], key: str) -> None:
    """The "Why" of a review a page shows: an expander to pick models from ``models`` (``default`` first
    chosen) and see the review explained by each, side by side."""
    with st.expander("Why: the words each model read, green toward positive, red toward negative"):
        chosen = st.multiselect("Explain with", explainable(models), default=explainable(default), key=key)
        show(text, chosen, f"{key}_why")


def selected_review(rows: pd.DataFrame, selected: list[int], models: list[str] | tuple[str, ...],
                    default: list[str] | tuple[str, ...], key: str) -> None:
    """Under a table of reviews: the selected one (else the first) read whole, as text, and its "Why"."""
    if rows.empty:
        return
    picked = selected[0] if selected else 0
    st.caption(f"Review {picked + 1} of the table, whole (select a row to read another):")
    text = rows["text"].iloc[picked]
    st.text(text)
    why(text, models, default, key)
