import pandas as pd
import streamlit as st

from core.errors import SentimentError
from core.models import available_models
from dashboard import charts, data, explaining
from dashboard.explaining import model

st.title("Try it")
# Loading a BERT takes seconds the first time: start with the trained models the sidebar has chosen.
trained = available_models()
chosen = [m for m in st.session_state["sel"].models if m in trained] or trained
names = st.multiselect("Models", trained, default=chosen, key="try_models")
text = st.text_area("A review", "The plot was thin, but the acting was wonderful and I loved every minute.",
                    key="try_text", height=120)
if not text.strip():
    st.info("Type a review.")
    st.stop()

# the models already loaded answer at once; each other one shows its own spinner while it loads, and the
# chart and table grow as each answers
rows, failed = [], []
chart, table = st.empty(), st.empty()
for name in sorted(names, key=lambda n: not explaining.is_loaded(n)):
    try:
        rows.append({"model": name, "p_positive": float(model(name).predict_proba([text])[0])})
    except (SentimentError, OSError, ValueError, RuntimeError) as e:  # a broken model folder must not hide the others
        failed.append(f"{name}: {e}")
        continue
    scores = data.with_provenance(st.session_state["sel"].src, pd.DataFrame(rows, columns=["model", "p_positive"]))
    chart.altair_chart(charts.scores(scores), width="stretch")
    table.dataframe(scores, hide_index=True, column_order=["model", "trained_on", "train_rows", "p_positive"],
                    column_config={
                        "trained_on": st.column_config.TextColumn("trained on"),
                        "train_rows": st.column_config.NumberColumn("train reviews", format="localized"),
                        "p_positive": st.column_config.NumberColumn("P(positive)", format="%.3f")})
for message in failed:
    st.warning(f"Could not score with {message}")
if names and st.toggle("Why: highlight the words each model read", key="try_why"):
    explaining.show(text, names, "try_why")
