import streamlit as st

from dashboard import charts, data, explaining

sel = st.session_state["sel"]
st.title("Confusion matrices")
if data.labelled_count(sel.src, sel.corpus, sel.split, where=sel.where) == 0:
    st.info("This corpus/split has no positive/negative labels: confusion matrices need them.")
    st.stop()

normalise = st.toggle("Normalise by true label", key="cm_normalise")
matrices = data.confusion(sel.src, sel.corpus, sel.split, sel.models, where=sel.where)
st.altair_chart(charts.confusion(matrices, normalise))

st.subheader("Reviews in a cell")
left, right = st.columns([1, 2])
model = left.selectbox("Model", sel.models, key="cm_model")
cell = right.radio("Cell", ["fp", "fn", "tp", "tn"], horizontal=True, key="cm_cell", format_func={
    "tp": "true positive", "fn": "false negative", "fp": "false positive", "tn": "true negative"}.get)
reviews = data.cell_reviews(sel.src, sel.corpus, sel.split, model, cell, where=sel.where)
st.caption(f"The {len(reviews):,} most confident reviews in this cell (at most {data.TEXT_ROWS}).")
columns = {
    "p_positive": st.column_config.ProgressColumn("P(positive)", format="%.3f", min_value=0.0, max_value=1.0),
    "text": st.column_config.TextColumn("text", width="large"),
}
shown = st.dataframe(reviews, hide_index=True, column_config=columns, on_select="rerun",
                     selection_mode="single-row", key="cm_table")
explaining.selected_review(reviews, shown.selection.rows, sel.models, [model], "cm_explain")
