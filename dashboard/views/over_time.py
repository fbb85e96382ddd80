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
finest = slicing.default_period(sel.src, sel.corpus, sel.split, sel.models, field, sel.where)
period = right.segmented_control("Per", list(slicing.PERIODS), default=finest, key="ot_period",
                                 help=f"{finest} by default: the finest period in which most periods hold at least "
                                      f"{slicing.THIN} reviews") or finest
series = slicing.over_time(sel.src, sel.corpus, sel.split, sel.models, field, period, sel.where)
if series.empty:
    st.info("No review in this selection has a date in this column.")
    st.stop()

st.subheader("Predicted positive share")
st.caption(f"One line per model with its 95% band; the black dashed line is the true labels' positive share, "
           f"where labels exist. A hollow point is a thin period: fewer than {slicing.THIN} reviews.")
st.altair_chart(charts.over_time(series, "positive_share", "predicted positive", period), width="stretch")
st.altair_chart(charts.review_counts(series, period), width="stretch")
if series["labelled"].sum() > 0:
    st.subheader("Accuracy")
    st.altair_chart(charts.over_time(series.dropna(subset=["accuracy"]), "accuracy", "accuracy at 0.5", period),
                    width="stretch")
else:
    st.info("No positive/negative labels here: accuracy over time needs them.")
with st.expander("As a table"):
    st.dataframe(series, hide_index=True, column_config={
        c: st.column_config.NumberColumn(format="%.3f") for c in ("positive_share", "true_share", "accuracy")})
