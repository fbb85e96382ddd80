import time

import streamlit as st

from dashboard import charts, data

sel = st.session_state["sel"]
st.title("Overview")

st.subheader("Corpora")
corpora = data.corpora(sel.src)
st.dataframe(corpora, hide_index=True, column_config={
    "reviews": st.column_config.NumberColumn(format="localized"),
    "labelled": st.column_config.NumberColumn(format="localized"),
    "predictions": st.column_config.NumberColumn(format="localized"),
})
rejects = data.rejects(sel.src, sel.corpus)
n_rejects = int(rejects["rows"].sum()) if not rejects.empty else 0
st.metric(f"Rejected input rows in {sel.corpus}", f"{n_rejects:,}")
if n_rejects:
    st.dataframe(rejects, hide_index=True)

st.subheader(f"Models on {sel.corpus} / {sel.split}")


@st.fragment(run_every="10s")
def training_panel(src: data.Source) -> None:
    """The models training now, redrawn every 10 s; the page reloads when a job publishes new results."""
    if data.source() != src:
        st.rerun()
    now = data.training_now()
    if not now:
        st.rerun()  # the last one ended: its results are published, or it failed
    for t in now:
        minutes = (time.time() - t["started"]) / 60
        st.info(f"**{t['name']}** ({t['kind']}, preset {t['preset']}) is training, for {minutes:.0f} min so "
                f"far: {t['last'] or 'reading its data'}. It appears below once it is scored and evaluated.",
                icon=":material/hourglass_top:")


if data.training_now():
    training_panel(sel.src)
if sel.where:
    st.caption("Filtered by the sidebar's columns: metrics of the filtered reviews, from 1/1000 bins of "
               "P(positive) (ROC-AUC within about 0.001 of scikit-learn's), 95% intervals Wilson and Hanley-McNeil.")
board = data.leaderboard(sel.src, sel.corpus, sel.split, sel.models, where=sel.where)
if board["accuracy"].isna().all():
    if data.labelled_count(sel.src, sel.corpus, sel.split, where=sel.where) == 0:
        st.info("This corpus/split has no positive/negative labels, so there are no accuracy metrics; "
                "size and speed are shown.")
    else:
        st.info("No metrics for this evaluation set yet: run `python -m jobs.evaluate`.")
st.dataframe(board, hide_index=True, column_order=[
    "model", "trained_on", "train_rows", "accuracy", "accuracy_ci", "roc_auc", "roc_auc_ci", "f1", "ece",
    "bytes_on_disk", "rows_per_s", "n_params", "n", "kind", "members"], column_config={
    "trained_on": st.column_config.TextColumn("trained on", help="the corpus whose train split the model learnt from"),
    "train_rows": st.column_config.NumberColumn("train reviews", format="localized"),
    "accuracy": st.column_config.ProgressColumn("accuracy", format="%.3f", min_value=0.0, max_value=1.0),
    "accuracy_ci": st.column_config.TextColumn("accuracy 95% CI"),
    "roc_auc": st.column_config.NumberColumn("ROC-AUC", format="%.3f"),
    "roc_auc_ci": st.column_config.TextColumn("ROC-AUC 95% CI"),
    "f1": st.column_config.NumberColumn("F1", format="%.3f"),
    "ece": st.column_config.NumberColumn("ECE", format="%.3f"),
    "bytes_on_disk": st.column_config.NumberColumn("on disk", format="bytes"),
    "rows_per_s": st.column_config.NumberColumn("reviews/s", format="%.0f"),
    "n_params": st.column_config.NumberColumn("parameters", format="compact"),
    "n": st.column_config.NumberColumn("test reviews", format="localized"),
    "members": st.column_config.TextColumn("stack of", help="a stack's members and each one's weight on its logit, "
                                           "learnt on the validation split"),
})
if board["accuracy"].notna().any():
    st.altair_chart(charts.accuracy_ci(board), width="stretch")

st.subheader("Trained on x evaluated on")
cells = data.cross_corpus(sel.src)
if cells.empty:
    st.info("No model has been evaluated on a labelled corpus yet: run `python -m jobs.evaluate`.")
    st.stop()
metric = st.segmented_control("Metric", list(data.MATRIX_METRICS), default="accuracy", key="xc_metric",
                              format_func=data.MATRIX_METRICS.get) or "accuracy"
st.caption("One row per model, named with the corpus it learnt from and how many "
           "reviews; one column per labelled corpus, read on its test split, or all its reviews where it has no "
           "split (never train or validation). Darker is better; 0.5 is chance. Outlined cells: the model on "
           "the corpus it was trained on; the other cells show how far a model carries out of its domain. Hover "
           "a cell for n and the 95% interval.")
st.altair_chart(charts.cross_corpus(cells, metric, data.MATRIX_METRICS[metric]), width="stretch")
fill = data.fill_commands(cells)
if fill:
    empty = int(cells["n"].isna().sum())
    st.markdown(f"**{empty:,} empty cell{'s' if empty > 1 else ''}:** never evaluated there. To fill them, "
                "score each corpus's test split (the whole corpus where it has no split) with those models, "
                "then run `jobs.evaluate`:")
    st.code(fill, language="bash", wrap_lines=True)
with st.expander("The matrix as a table"):
    table = data.matrix_table(cells, metric)
    st.dataframe(table, hide_index=True, column_config={
        "trained_on": st.column_config.TextColumn("trained on"),
        "train_rows": st.column_config.NumberColumn("train reviews", format="localized"),
        **{c: st.column_config.NumberColumn(c, format="%.3f") for c in table.columns[3:]}})
