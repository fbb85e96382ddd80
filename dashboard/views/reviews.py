import streamlit as st

from dashboard import data, explaining

sel = st.session_state["sel"]
st.title("Reviews")
PAGE_SIZE = 50
ANY = "any"

with st.container(border=True):
    c1, c2, c3, c4 = st.columns(4)
    model = c1.selectbox("Model", sel.models, key="rv_model")
    predicted = c2.selectbox("Predicted", [ANY, "positive", "negative"], key="rv_predicted")
    label = c3.selectbox("True label", [ANY, "positive", "negative", "neutral", "none"], key="rv_label")
    correct = c4.selectbox("Prediction", [ANY, "correct", "incorrect"], key="rv_correct")
    c5, c6, c7 = st.columns([1, 1, 2])
    p_range = c5.slider("P(positive)", 0.0, 1.0, (0.0, 1.0), 0.01, key="rv_p")
    lo, hi = data.length_range(sel.src, sel.corpus)
    chars = c6.slider("Length (characters)", lo, max(hi, lo + 1), (lo, max(hi, lo + 1)), key="rv_chars")
    search = c7.text_input("Text contains", key="rv_search", placeholder="case-insensitive substring")

# A text search reads the reviews in stored order, SEARCH_CHUNK more per step, so it answers at once even
# at millions of reviews; "Search further" takes the next step (the steps start over for a new term).
term = search.strip()
if st.session_state.get("rv_search_of") != (sel.corpus, term):
    st.session_state["rv_search_of"], st.session_state["rv_search_steps"] = (sel.corpus, term), 1
steps = st.session_state["rv_search_steps"] if term else None

flt = data.ReviewFilter(
    sel.corpus, sel.split, model,
    predicted=None if predicted == ANY else predicted,
    p_min=p_range[0], p_max=p_range[1],
    label=None if label == ANY else label,
    correct=None if correct == ANY else correct == "correct",
    chars_min=chars[0] if chars[0] > lo else None, chars_max=chars[1] if chars[1] < hi else None,
    search=search, search_steps=steps, where=sel.where,
)
left, right = st.columns([3, 1])
page = right.number_input("Page", min_value=1, value=1, key="rv_page")
total, rows = data.review_page(sel.src, flt, PAGE_SIZE, (page - 1) * PAGE_SIZE)
pages = max(1, -(-total // PAGE_SIZE))
left.markdown(f"**{total:,}** matching reviews")
read, every = data.searched(sel.src, sel.corpus, steps) if steps else (0, 0)
if read < every:
    left.caption(f"The search has read the first {read:,} of {every:,} reviews (in stored order).")
    if left.button("Search further", key="rv_search_more"):
        st.session_state["rv_search_steps"] += 1
        st.rerun()
shown = st.dataframe(rows, hide_index=True, on_select="rerun", selection_mode="single-row", key="rv_table",
                     column_config={
                         "p_positive": st.column_config.ProgressColumn("P(positive)", format="%.3f",
                                                                       min_value=0.0, max_value=1.0),
                         "text": st.column_config.TextColumn("text", width="large"),
                     })
st.caption(f"Page {page:,} of {pages:,} ({PAGE_SIZE} a page). Select a row to read its whole text.")
if not rows.empty:
    picked = shown.selection.rows[0] if shown.selection.rows else 0
    review = rows.iloc[picked]
    st.caption(f"Review {picked + 1} of this page (label, predicted, P(positive)):")
    st.text(f"{review['review_id']} · {review['label']} · {review['predicted']} · {review['p_positive']:.3f}")
    st.text(review["text"])
    explaining.why(review["text"], sel.models, [model], "rv_explain")

st.download_button(
    f"Download the filtered reviews as CSV (at most {data.CSV_MAX_ROWS:,})",
    data=lambda: data.review_csv(sel.src, flt), file_name=f"{sel.corpus}-{model}-reviews.csv",
    mime="text/csv", icon=":material/download:", disabled=total == 0,
)
