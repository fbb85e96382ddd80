# ruff: noqa: N999  (streamlit run dashboard/Home.py: the entrypoint name is part of the interface)
"""Sentiment dashboard: `streamlit run dashboard/Home.py` (the database comes from $SENTIMENT_DB).

This entrypoint draws the shared sidebar (corpus, split, models; kept in st.session_state so every page
sees the same choice) and routes to the pages under dashboard/views/.
"""

import datetime
from pathlib import Path

import streamlit as st

from core.store.summaries import FieldFilter
from dashboard import data, slicing

st.set_page_config(page_title="Review sentiment", page_icon=":material/reviews:", layout="wide")


def show_hint(problem: str, outdated: bool = False) -> None:
    st.title("Review sentiment")
    st.warning(problem)
    if not outdated:  # an outdated view holds results: the warning says the one command that shows them
        st.markdown("Nothing to show yet. Score some reviews first, for example:")
        st.code(data.HINT, language="bash")
    st.stop()


try:
    src = data.source()
    if data.summary(src)["predictions"] == 0:
        show_hint(f"`{src.path}` holds no predictions yet.")
    corpora = data.corpora(src)
except data.Unavailable as e:
    show_hint(str(e), outdated=isinstance(e, data.Outdated))

scored = corpora.loc[corpora["predictions"] > 0, "corpus"].tolist()
if not scored:
    show_hint("No corpus has predictions yet.")


def _reset_scope() -> None:  # a new corpus has its own splits, models and columns
    for key in [k for k in st.session_state if k in ("split", "models") or str(k).startswith("flt_")]:
        st.session_state.pop(key, None)


def column_filters(corpus: str) -> tuple[FieldFilter, ...]:
    """Sidebar filters on the corpus's kept columns: values of a categorical or boolean column, a range of
    a numeric or datetime one. Only filters that narrow something are returned."""
    columns = slicing.sliceable(src, corpus)
    if columns.empty:
        return ()
    kinds = dict(zip(columns["field"], columns["kind"], strict=True))
    where = []
    with st.expander("Filter by column", expanded=bool(st.session_state.get("flt_fields"))):
        for field in st.multiselect("Columns", list(kinds), key="flt_fields"):
            kind = kinds[field]
            key = f"flt_{kind}_{field}"
            if kind in ("categorical", "boolean"):
                options = slicing.values(src, corpus, field, kind)["value"].tolist()
                picked = st.multiselect(field, options, key=key, placeholder="any value")
                if picked:
                    where.append(FieldFilter(field, kind, values=tuple(picked)))
            elif kind == "numeric":
                lo, hi = slicing.bounds(src, corpus, field)
                if lo < hi:
                    a, b = st.slider(field, lo, hi, (lo, hi), key=key)
                    if (a, b) != (lo, hi):
                        where.append(FieldFilter(field, kind, lo=a, hi=b))
            else:
                lo, hi = slicing.bounds(src, corpus, field)
                days = st.date_input(field, (lo, hi), min_value=lo, max_value=hi, key=key)
                if len(days) == 2 and tuple(days) != (lo, hi):
                    end = days[1] + datetime.timedelta(days=1)
                    where.append(FieldFilter(field, kind, lo=days[0].isoformat(), hi=end.isoformat()))
        if where:
            st.caption("Every page shows only the reviews that pass these filters.")
    return tuple(where)


with st.sidebar:
    st.header("Review sentiment")
    if st.session_state.get("corpus") not in scored:
        st.session_state["corpus"] = scored[0]
    corpus = st.selectbox("Corpus", scored, key="corpus", on_change=_reset_scope)
    split_options = data.splits(src, corpus)
    if st.session_state.get("split") not in split_options:
        st.session_state["split"] = split_options[0]
    split = st.selectbox("Split", split_options, key="split",
                         help="'all' = reviews without a split (user corpora)")
    model_options = data.models(src, corpus)
    kept = [m for m in st.session_state.get("models", model_options) if m in model_options]
    st.session_state["models"] = kept
    chosen = st.multiselect("Models", model_options, key="models")
    where = column_filters(corpus)
    st.caption(f"Reading `{Path(src.path).name}`")

st.session_state["sel"] = data.Selection(src, corpus, split, tuple(chosen), where)

page = st.navigation([
    st.Page("views/overview.py", title="Overview", icon=":material/leaderboard:", default=True),
    st.Page("views/distributions.py", title="Distributions", icon=":material/bar_chart:"),
    st.Page("views/confusion.py", title="Confusion matrices", icon=":material/grid_view:"),
    st.Page("views/curves.py", title="ROC and precision-recall", icon=":material/show_chart:"),
    st.Page("views/disagreements.py", title="Disagreements", icon=":material/compare_arrows:"),
    st.Page("views/reviews.py", title="Reviews", icon=":material/search:"),
    st.Page("views/drivers.py", title="Drivers", icon=":material/psychology_alt:"),
    st.Page("views/slices.py", title="Slices", icon=":material/view_column:"),
    st.Page("views/over_time.py", title="Over time", icon=":material/timeline:"),
    st.Page("views/try_it.py", title="Try it", icon=":material/edit_note:"),
    st.Page("views/training.py", title="Training", icon=":material/trending_down:"),
])
if not chosen and page.title != "Try it":
    st.info("Choose at least one model in the sidebar.")
    st.stop()
try:
    page.run()
except data.Unavailable as e:
    show_hint(str(e), outdated=isinstance(e, data.Outdated))
