import streamlit as st

from dashboard import charts, data, explaining, slicing

sel = st.session_state["sel"]
st.title("Slices")
columns = slicing.sliceable(sel.src, sel.corpus)
if columns.empty:
    st.info("This corpus has no kept columns to slice by. Score a file with extra columns (product, category, "
            "date...): `jobs.score` keeps them all, or those named by `--keep-cols`.")
    st.stop()

kinds = dict(zip(columns["field"], columns["kind"], strict=True))
left, mid, right = st.columns([2, 2, 1])
field = left.selectbox("Column", list(kinds), key="sl_field", format_func=lambda f: f"{f} ({kinds[f]})")
metric = mid.segmented_control("Metric", list(charts.SLICE_METRICS), default="accuracy", key="sl_metric",
                               format_func=charts.SLICE_METRICS.get) or "accuracy"
top = right.number_input("Largest slices", 2, 30, 10, key="sl_top", help="the rest are grouped as '(other)'")
table = slicing.slices(sel.src, sel.corpus, sel.split, sel.models, field, kinds[field], top, sel.where)
if table.empty:
    st.info("No predictions in this selection.")
    st.stop()
if metric != "positive_share" and table["n"].sum() == 0:
    st.info("This corpus/split has no positive/negative labels: accuracy and ROC-AUC need them. "
            "Showing the predicted-positive share.")
    metric = "positive_share"

st.caption("One cell per model and slice; click a cell to read its reviews below. 95% intervals: Wilson for "
           "shares, Hanley-McNeil for ROC-AUC.")
picked = st.altair_chart(charts.slice_heatmap(table, metric), width="stretch", on_select="rerun", key="sl_heat")
st.subheader("Worst slices first")
st.altair_chart(charts.slice_intervals(table, metric), width="stretch")
with st.expander("As a table"):
    st.dataframe(table.sort_values(metric)[[
        "value", "model", "reviews", "n", "accuracy", "accuracy_lo", "accuracy_hi", "roc_auc", "roc_auc_lo",
        "roc_auc_hi", "positive_share", "positive_share_lo", "positive_share_hi", "true_share"]],
        hide_index=True, column_config={"value": st.column_config.TextColumn("slice"),
                                        "n": st.column_config.NumberColumn("labelled"),
                                        **{c: st.column_config.NumberColumn(format="%.3f") for c in table.columns
                                           if c.endswith(("accuracy", "_lo", "_hi", "auc", "share"))}})

st.subheader("Reviews of a slice")
clicked = [p["value"] for p in picked.selection.get("slice", [])] if picked and picked.selection else []
names = table.drop_duplicates("value").sort_values("order")["value"].tolist()
if clicked and clicked[0] in names and clicked != st.session_state.get("sl_clicked"):
    st.session_state["sl_value"] = clicked[0]  # a new click picks the slice; the selectbox can change it after
st.session_state["sl_clicked"] = clicked
c1, c2, c3 = st.columns([2, 2, 1])
value = c1.selectbox("Slice", names, key="sl_value")
model = c2.selectbox("Model", sel.models, key="sl_model")
wrong = c3.toggle("Only wrong", key="sl_wrong")
slice_filter = slicing.slice_filter(sel.src, sel.corpus, field, kinds[field], value)
if slice_filter is None:
    st.info("Reviews without a value (or the '(other)' numbers) cannot be listed; choose a named slice.")
    st.stop()
flt = data.ReviewFilter(sel.corpus, sel.split, model, correct=False if wrong else None,
                        where=(*sel.where, slice_filter))
total, rows = data.review_page(sel.src, flt, data.TEXT_ROWS, 0)
st.caption(f"{total:,} reviews in '{value}' for {model}{' that it gets wrong' if wrong else ''}; "
           f"the first {len(rows)} by id.")
shown = st.dataframe(rows, hide_index=True, on_select="rerun", selection_mode="single-row", key="sl_table",
                     column_config={"p_positive": st.column_config.ProgressColumn(
                         "P(positive)", format="%.3f", min_value=0.0, max_value=1.0),
                         "text": st.column_config.TextColumn("text", width="large")})
explaining.selected_review(rows, shown.selection.rows, sel.models, [model], "sl_explain")
