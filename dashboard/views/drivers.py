import streamlit as st

from core.store.summaries import MISSING, OTHER, FieldFilter
from dashboard import charts, data, explaining, slicing

COMPARE = {"sides": "negative against positive", "slice": "a slice against the rest",
           "period": "a period against an earlier one"}
SIDES = {"negative": "negative reviews", "positive": "positive reviews", "all": "all reviews"}


def counted(n: int, group: str) -> str:
    """'186 negative reviews', '45 reviews of condition = Birth Control'."""
    return f"{n:,} {group}" if group.endswith("reviews") else f"{n:,} reviews of {group}"


sel = st.session_state["sel"]
st.title("Drivers")
st.caption("The words and two-word phrases most typical of one group of reviews against another, in the corpus, "
           "split and filters of the sidebar: the log-odds ratio with an informative Dirichlet prior (Monroe, "
           "Colaresi and Quinn 2008), its 95% interval and z-score. A term used often on one side only ranks high; "
           "a rare one cannot top the list on a handful of uses.")

c1, c2, c3 = st.columns([1, 1, 1])
model = c1.selectbox("Model", sel.models, key="dr_model")
by = c2.segmented_control("Negative or positive", list(data.DRIVER_SIDES), default="predicted", key="dr_by",
                          format_func=data.DRIVER_SIDES.get) or "predicted"
top = c3.slider("Terms per side", 5, 40, 15, key="dr_top")
if by == "label" and data.labelled_count(sel.src, sel.corpus, sel.split, sel.where) == 0:
    st.info("These reviews have no labels: compare by the model's prediction instead.")
    st.stop()
columns = slicing.sliceable(sel.src, sel.corpus)
dates = columns.loc[columns["kind"] == "datetime", "field"].tolist()

compare = st.segmented_control("Compare", list(COMPARE), default="sides", key="dr_compare",
                               format_func=COMPARE.get) or "sides"
if compare == "sides":
    a, b = data.Group(sel.where, side="negative"), data.Group(sel.where, side="positive")
    names = ("negative reviews", "positive reviews")
else:
    kinds = dict(zip(columns["field"], columns["kind"], strict=True))
    if compare == "slice" and not kinds or compare == "period" and not dates:
        st.info("This corpus has no kept column to cut it by (no date column, for periods). Score a file with "
                "extra columns (product, category, date...): `jobs.score` keeps them.")
        st.stop()
    c0, c1, c2, c3 = st.columns([1, 1, 1, 1])
    of_side = c0.selectbox("Of", list(SIDES), key="dr_side", format_func=SIDES.get)
    side = None if of_side == "all" else of_side
    if compare == "slice":
        field = c1.selectbox("Column", list(kinds), key="dr_field")
        values = slicing.values(sel.src, sel.corpus, field, kinds[field])["value"]
        value = c2.selectbox("Slice", [v for v in values if v not in (MISSING, OTHER)], key="dr_value")
        cut = slicing.slice_filter(sel.src, sel.corpus, field, kinds[field], value)
        a, b = data.Group((*sel.where, cut), side=side), data.Group(sel.where, outside=cut, side=side)
        names = (f"{field} = {value}", "the rest")
    else:
        field = c1.selectbox("Date column", dates, key="dr_date")
        period = c2.segmented_control("Per", ["month", "quarter", "year"], default="year", key="dr_per") or "year"
        starts = slicing.over_time(sel.src, sel.corpus, sel.split, (model,), field, period, sel.where)["period"]
        starts = [s.date().isoformat() for s in starts]
        if len(starts) < 2:
            st.info("Fewer than two periods hold reviews here: nothing earlier to compare with.")
            st.stop()
        start = c3.selectbox(period.capitalize(), starts[1:][::-1], key="dr_period",
                             format_func=lambda d: data.period_label(d, period))
        against = st.radio("Against", ["the period before", "every earlier period"], horizontal=True, key="dr_against")
        lo, hi = data.period_bounds(start, period)
        first = starts[starts.index(start) - 1] if against == "the period before" else starts[0]
        a = data.Group((*sel.where, FieldFilter(field, "datetime", lo=lo, hi=hi)), side=side)
        b = data.Group((*sel.where, FieldFilter(field, "datetime", lo=first, hi=lo)), side=side)
        named = [data.period_label(d, period) for d in (start, first, lo)]
        names = (named[0], named[1] if against == "the period before" else f"{named[1]} to {named[2]} (before)")

table, sizes = data.drivers(sel.src, sel.corpus, sel.split, model, a, b, by)
of = "" if compare == "sides" else f" ({SIDES[of_side]}, {data.DRIVER_SIDES[by]})"
st.caption(f"Counted on a uniform sample of each group{of}, at most {data.DRIVER_SAMPLE:,}: "
           f"{counted(sizes['a'], names[0])}, {counted(sizes['b'], names[1])}.")
if table.empty or not sizes["a"] or not sizes["b"]:
    st.info("One side has no reviews here: nothing to compare.")
    st.stop()

config = {"term": st.column_config.TextColumn("term"),
          "count_a": st.column_config.NumberColumn("uses, 1st", help=f"uses in the reviews of {names[0]}"),
          "count_b": st.column_config.NumberColumn("uses, 2nd", help=f"uses in the reviews of {names[1]}"),
          "z": st.column_config.NumberColumn("z", format="%.1f", help="log-odds ratio / its standard deviation"),
          "interval": st.column_config.TextColumn("log-odds, 95%", help=f"log-odds ratio of {names[0]}, 95% interval")}
left, right = st.columns(2)
first_side, second_side = table.head(top), table.iloc[::-1].head(top)
terms = [*first_side["term"], *second_side["term"]]
for column, name, rows, key in ((left, names[0], first_side, "dr_first"), (right, names[1], second_side, "dr_second")):
    column.markdown(f"**Typical of {name}**")
    shown = rows.assign(interval=[f"{lo:+.2f} to {hi:+.2f}" for lo, hi in zip(rows["lo"], rows["hi"], strict=True)])
    picked = column.dataframe(shown[list(config)], hide_index=True, column_config=config, key=key,
                              on_select="rerun", selection_mode="single-row")
    clicked = rows["term"].iloc[picked.selection.rows[0]] if picked.selection.rows else None
    if clicked in terms and clicked != st.session_state.get(f"{key}_clicked"):
        st.session_state["dr_term"] = clicked  # a new click picks the term; the selectbox can change it after
    st.session_state[f"{key}_clicked"] = clicked

st.subheader("A term")
term = st.selectbox("Read the reviews that use a term (or click one in a table)", terms, key="dr_term")
if not term:
    st.stop()
group = a if term in set(first_side["term"]) else b
side_of = {"predicted": group.side} if by == "predicted" else {"label": group.side}
flt = data.ReviewFilter(sel.corpus, sel.split, model, search=term, search_steps=1,
                        where=group.where if group.outside is None else sel.where, **side_of)
total, rows = data.review_page(sel.src, flt, 40, 0)
rows = rows[[bool(explaining.term_pattern(term).search(t)) for t in rows["text"]]].head(10)  # whole words only
who = (names[0] if group is a else names[1]) if group.outside is None else "the sidebar's selection"  # no NOT IN filter
st.caption(f"{counted(total, who)} contain “{term}” among the first reviews "
           f"searched; the first {len(rows)} that use it as a word, the term marked:")
for review in rows.itertuples():
    with st.container(border=True):
        st.caption(f"{review.review_id} · label {review.label} · predicted {review.predicted} · "
                   f"P(positive) {review.p_positive:.3f}")
        st.html(explaining.marked(review.text, term))

if dates:
    c1, c2 = st.columns([1, 2])
    field = c1.selectbox("Over time, by", dates, key="dr_trend_field")
    finest = slicing.default_period(sel.src, sel.corpus, sel.split, (model,), field, sel.where)
    period = c2.segmented_control("Per", list(slicing.PERIODS), default=finest, key="dr_trend_per") or finest
    trend, n = data.term_trend(sel.src, sel.corpus, sel.split, model, term, field, period, sel.where, by)
    st.caption(f"The negative share ({data.DRIVER_SIDES[by]}) of the reviews that use “{term}” against all reviews, "
               f"per {period}, on a uniform sample of {n:,} of the filtered reviews (at most "
               f"{data.TREND_SAMPLE:,}), with 95% bands; a hollow point: fewer than {slicing.THIN} reviews.")
    st.altair_chart(charts.term_trend(trend, term, period, slicing.THIN), width="stretch")
