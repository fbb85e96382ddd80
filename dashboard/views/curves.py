import streamlit as st

from dashboard import charts, data

sel = st.session_state["sel"]
st.title("ROC and precision-recall")
if data.labelled_count(sel.src, sel.corpus, sel.split, where=sel.where) == 0:
    st.info("This corpus/split has no positive/negative labels: ROC, PR and calibration need them.")
    st.stop()

threshold = st.slider("Threshold: predict positive when P(positive) >= threshold", 0.0, 1.0, 0.5, 0.01,
                      key="threshold")
at = data.confusion_at(sel.src, sel.corpus, sel.split, sel.models, threshold, where=sel.where)
st.dataframe(data.with_provenance(sel.src, at).drop(columns="provenance"), hide_index=True, column_config={
    "trained_on": st.column_config.TextColumn("trained on"),
    "train_rows": st.column_config.NumberColumn("train reviews", format="localized"),
    **{c: st.column_config.NumberColumn(format="%.3f") for c in ("accuracy", "precision", "recall", "f1")}})

points = data.roc_pr(sel.src, sel.corpus, sel.split, sel.models, where=sel.where)
aucs = data.aucs(sel.src, sel.corpus, sel.split, sel.models, where=sel.where)
marks = at.assign(fpr=at["fp"] / (at["fp"] + at["tn"]))
left, right = st.columns(2)
left.altair_chart(charts.roc(points, aucs, marks.assign(tpr=marks["recall"])), width="stretch")
right.altair_chart(charts.pr(points, aucs, marks), width="stretch")

st.altair_chart(charts.confusion(at, normalise=False))
st.altair_chart(charts.calibration(data.calibration(sel.src, sel.corpus, sel.split, sel.models, where=sel.where)),
                width="stretch")
