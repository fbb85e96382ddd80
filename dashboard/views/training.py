import streamlit as st

from dashboard import charts, data

sel = st.session_state["sel"]
st.title("Training")

log = data.training_log(sel.src)
trained = data.trained_models(sel.src)
if log.empty:
    st.info("No training history yet: train a model with `python -m jobs.train --model lstm`.")
    st.stop()
names = sorted(log["model"].unique())  # every trained model, scored or not
shown = st.multiselect("Models", names, default=names, key="train_models")
log = data.with_provenance(sel.src, log[log["model"].isin(shown)])
if log[["train_loss", "val_loss"]].notna().any().any():
    st.altair_chart(charts.training(log, "loss"), width="stretch")
else:
    st.info("These models log no loss (e.g. tfidf-lr logs one row per regularisation setting).")
st.altair_chart(charts.training(log, "acc"), width="stretch")
terms = data.training_terms(sel.src)
terms = terms[terms["model"].isin(shown)]
if not terms.empty:
    st.subheader("Loss terms within training")
    st.caption("ce: cross-entropy on the labels; kl: to the teacher's logits; hidden: to the teacher's hidden "
               "states; total: their weighted sum. Each point is the mean over the steps since the one before.")
    st.altair_chart(charts.loss_terms(terms), width="content")
st.dataframe(trained, hide_index=True, column_order=[
    "model", "trained_on", "train_rows", "train_classes", "kind", "preset", "n_params", "bytes_on_disk",
    "train_seconds", "device", "trained_at"], column_config={
    "trained_on": st.column_config.TextColumn("trained on", help="the corpus whose train split the model learnt from"),
    "train_rows": st.column_config.NumberColumn("train reviews", format="localized"),
    "train_classes": st.column_config.TextColumn("train reviews per label"),
    "bytes_on_disk": st.column_config.NumberColumn("on disk", format="bytes"),
    "n_params": st.column_config.NumberColumn("parameters", format="compact"),
    "train_seconds": st.column_config.NumberColumn("train s", format="%.1f"),
})
