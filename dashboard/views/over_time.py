import streamlit as st

from dashboard import charts, slicing

sel = st.session_state["sel"]
st.title("Over time")
columns = slicing.fields(sel.src, sel.corpus)
dates = columns.loc[columns["kind"] == "datetime", "field"].tolist()
if not dates:
    st.info("This corpus has no date column. Score a file with one (any common format: 2012-12-24, "
            "12/24/2012, December 24, 2012, Unix seconds); `--col-type COLUMN=datetime` forces it.")
    st.stop()

left, right = st.columns([2, 3])
field = left.selectbox("Date column", dates, key="ot_field")
period = right.segmented_control("Per", list(slicing.PERIODS), default="month", key="ot_period") or "month"
series = slicing.over_time(sel.src, sel.corpus, sel.split, sel.models, field, period, sel.where)
if series.empty:
    st.info("No review in this selection has a date in this column.")
    st.stop()

st.subheader("Predicted positive share")
st.caption("One line per model; the black dashed line is the true labels' positive share, where labels exist.")
st.altair_chart(charts.over_time(series, "positive_share", "predicted positive"), width="stretch")
st.altair_chart(charts.review_counts(series), width="stretch")
if series["labelled"].sum() > 0:
    st.subheader("Accuracy")
    st.altair_chart(charts.over_time(series.dropna(subset=["accuracy"]), "accuracy", "accuracy at 0.5"),
                    width="stretch")
else:
    st.info("No positive/negative labels here: accuracy over time needs them.")
with st.expander("As a table"):
    st.dataframe(series, hide_index=True, column_config={
        c: st.column_config.NumberColumn(format="%.3f") for c in ("positive_share", "true_share", "accuracy")})
