import streamlit as st

from dashboard import charts, data, explaining

sel = st.session_state["sel"]
st.title("Disagreements")
if len(sel.models) < 2:
    st.info("Choose at least two models in the sidebar to compare them.")
    st.stop()

counts = data.disagreement_counts(sel.src, sel.corpus, sel.split, sel.models, where=sel.where)
a, b, c = st.columns(3)
a.metric("Reviews scored by every chosen model", f"{counts['reviews']:,}")
b.metric("Models disagree on the label", f"{counts['split_decisions']:,}")
c.metric("Every model contradicts the true label", f"{counts['all_contradict']:,}")

st.subheader("How often two models agree")
st.altair_chart(charts.agreement(data.agreement(sel.src, sel.corpus, sel.split, sel.models, where=sel.where)), width="content")

st.subheader("Reviews")
contradict = st.toggle("Only reviews where every model contradicts the label (likely label errors)",
                       key="dis_contradict")
if contradict and data.labelled_count(sel.src, sel.corpus, sel.split, where=sel.where) == 0:
    st.info("This corpus/split has no labels to contradict.")
    st.stop()
table = data.disagreements(sel.src, sel.corpus, sel.split, sel.models, contradict, where=sel.where)
if table.empty:
    st.info("No reviews match.")
    st.stop()
st.caption(f"The {len(table)} reviews the models most confidently get wrong, on average." if contradict
           else f"The {len(table)} reviews with the largest max - min P(positive) across the chosen models.")
columns = {
    "spread": st.column_config.NumberColumn("max - min", format="%.3f"),
    **{m: st.column_config.NumberColumn(m, format="%.3f") for m in sel.models},
    "text": st.column_config.TextColumn("text", width="large"),
}
shown = st.dataframe(table[["review_id", "spread", "label", *sel.models, "text"]], hide_index=True,
                     column_config=columns, on_select="rerun", selection_mode="single-row", key="dis_table")
explaining.selected_review(table, shown.selection.rows, sel.models, sel.models, "dis_explain")
