import re

import streamlit as st

from core.explain import Explanation
from dashboard import data, explaining

sel = st.session_state["sel"]
st.title("Drivers")
st.caption("The words and two-word phrases most typical of negative against positive reviews, in the corpus, "
           "split and filters of the sidebar: the log-odds ratio with an informative Dirichlet prior (Monroe, "
           "Colaresi and Quinn 2008), its 95% interval and z-score. A term used often on one side only ranks high; "
           "a rare one cannot top the list on a handful of uses.")

c1, c2, c3 = st.columns([1, 1, 1])
model = c1.selectbox("Model", sel.models, key="dr_model")
by = c2.segmented_control("Sides", list(data.DRIVER_SIDES), default="predicted", key="dr_by",
                          format_func=data.DRIVER_SIDES.get) or "predicted"
top = c3.slider("Terms per side", 5, 40, 15, key="dr_top")
if by == "label" and data.labelled_count(sel.src, sel.corpus, sel.split, sel.where) == 0:
    st.info("These reviews have no labels: compare by the model's prediction instead.")
    st.stop()

table, sizes = data.drivers(sel.src, sel.corpus, sel.split, model, by, sel.where)
st.caption(f"Counted on a uniform sample of {sizes['reviews']:,} of the filtered reviews "
           f"({sizes['negative']:,} negative, {sizes['positive']:,} positive; at most {data.DRIVER_SAMPLE:,}).")
if table.empty or not sizes["negative"] or not sizes["positive"]:
    st.info("One side has no reviews here: nothing to compare.")
    st.stop()

config = {"term": st.column_config.TextColumn("term"),
          "count_a": st.column_config.NumberColumn("uses −", help="uses in the negative reviews"),
          "count_b": st.column_config.NumberColumn("uses +", help="uses in the positive reviews"),
          "z": st.column_config.NumberColumn("z", format="%.1f", help="log-odds ratio / its standard deviation"),
          "interval": st.column_config.TextColumn("log-odds, 95%", help="negative-side log-odds ratio, 95% interval")}
left, right = st.columns(2)
negative = table.head(top)
positive = table.iloc[::-1].head(top)
for column, side, rows in ((left, "Toward negative", negative), (right, "Toward positive", positive)):
    column.markdown(f"**{side}**")
    shown = rows.assign(interval=[f"{lo:+.2f} to {hi:+.2f}" for lo, hi in zip(rows["lo"], rows["hi"], strict=True)])
    column.dataframe(shown[list(config)], hide_index=True, column_config=config, key=f"dr_{side.split()[-1]}")

term = st.selectbox("Read the reviews that use a term", [*negative["term"], *positive["term"]], key="dr_term")
if term:
    flt = data.ReviewFilter(sel.corpus, sel.split, model, search=term, search_steps=1, where=sel.where)
    total, rows = data.review_page(sel.src, flt, 10, 0)
    st.caption(f"{total:,} reviews contain “{term}” among the first reviews searched; the first 10, the term "
               "highlighted:")
    pattern = re.compile(re.escape(term), re.IGNORECASE)
    side = -1.0 if term in set(negative["term"]) else 1.0  # red for a negative driver, green for a positive one
    for review in rows.itertuples():
        spans = [(m.start(), m.end(), side) for m in pattern.finditer(review.text)]
        with st.container(border=True):
            st.caption(f"{review.review_id} · label {review.label} · predicted {review.predicted} · "
                       f"P(positive) {review.p_positive:.3f}")
            st.html(explaining.highlighted(review.text, Explanation(spans, 0.0, 0.0, "term")))
