import streamlit as st

from dashboard import charts, data

sel = st.session_state["sel"]
st.title("Distributions")

by = st.segmented_control("Split by", ["none", "label", "length"], default="none", key="dist_by",
                          format_func={"none": "nothing", "label": "true label",
                                       "length": "review length"}.get) or "none"

st.subheader("Predicted sentiment")
st.altair_chart(charts.shares(data.shares(sel.src, sel.corpus, sel.split, sel.models, by, where=sel.where), by),
                width="stretch")

st.subheader("P(positive)")
hist = data.histogram(sel.src, sel.corpus, sel.split, sel.models, by, where=sel.where)
st.altair_chart(charts.histogram(hist, by))
if by == "label" and data.labelled_count(sel.src, sel.corpus, sel.split, where=sel.where) == 0:
    st.info("This corpus/split has no labels: every review falls in '(no label)'.")
