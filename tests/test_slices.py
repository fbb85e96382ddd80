"""Slices and time: the figures of the Slices and Over time pages, and of every page under a sidebar filter
on a kept column, against scikit-learn and pandas on the stored predictions; the pages themselves through
AppTest. The corpus: 4,000 reviews with a category, a date, a boolean and a number, one confident model
(probabilities piled near 0 and 1) and one noisy one."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, roc_auc_score
from streamlit.testing.v1 import AppTest

from core import store
from core.store import summaries
from core.store.summaries import FieldFilter
from dashboard import data, rows, slicing
from tests.helpers import HOME, frames, q

N = 4000
CATEGORIES = ["Dresses", "Tops", "Shoes", "Bags", "<b>Hats</b>"]  # a hostile value is only ever text


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    rng = np.random.default_rng(7)
    y = rng.random(N) < 0.7
    category = rng.choice(CATEGORIES, N, p=[0.4, 0.3, 0.15, 0.1, 0.05])
    day = pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.integers(0, 540, N), unit="D")
    piled = np.where(y, 1 - rng.beta(0.3, 30, N), rng.beta(0.3, 30, N))
    wrong = rng.random(N) < np.where(category == "Shoes", 0.25, 0.05)  # one slice is worse
    piled = np.where(wrong, 1 - piled, piled)
    noisy = 1 / (1 + np.exp(-(2 * (y - 0.5) * 2 + rng.normal(0, 2, N))))
    ids = [f"r{i:05d}" for i in range(N)]
    db = tmp_path_factory.mktemp("slices") / "shop.duckdb"
    with store.connect(db) as con:
        store.upsert_corpus(con, "shop", "test", {})
        store.insert_reviews(con, "shop", pd.DataFrame({
            "review_id": ids, "text": [f"review {i}" for i in range(N)], "label": np.where(y, "positive", "negative"),
            "split": None, "source_row": np.arange(N)}))
        votes = rng.integers(0, 200, N).astype(float)
        cells = pd.concat([
            pd.DataFrame({"review_id": ids, "field": "category", "kind": "categorical", "text_value": category,
                          "num_value": np.nan, "time_value": pd.NaT}),
            pd.DataFrame({"review_id": ids, "field": "reviewed", "kind": "datetime", "text_value": None,
                          "num_value": np.nan, "time_value": day}),
            pd.DataFrame({"review_id": ids, "field": "votes", "kind": "numeric", "text_value": None,
                          "num_value": votes, "time_value": pd.NaT}),
        ])
        store.insert_fields(con, "shop", cells)
        store.set_field_kinds(con, "shop", {"category": {"kind": "categorical"}, "reviewed": {"kind": "datetime"},
                                            "votes": {"kind": "numeric"}})
        store.insert_predictions(con, "shop", "confident", ids, piled, "run")
        store.insert_predictions(con, "shop", "noisy", ids, noisy, "run")
    store.publish(db)
    view = store.view_path(db)
    truth = pd.DataFrame({"review_id": ids, "y": y.astype(int), "category": category, "day": day,
                          "votes": votes, "confident": piled, "noisy": noisy})
    return db, data.Source(str(view), view.stat().st_mtime_ns), truth


MODELS = ("confident", "noisy")


def sk(frame: pd.DataFrame, model: str) -> dict:
    y, p = frame["y"].to_numpy(), frame[model].to_numpy()
    tn, fp, fn, tp = confusion_matrix(y, p >= 0.5, labels=[0, 1]).ravel()
    return {"n": len(y), "accuracy": accuracy_score(y, p >= 0.5), "roc_auc": roc_auc_score(y, p),
            "positive_share": float(np.mean(p >= 0.5)), "tn": tn, "fp": fp, "fn": fn, "tp": tp}


@pytest.mark.parametrize("filtered", [False, True])
def test_slices_equal_sklearn_per_slice(shop, filtered):
    """Each slice's figures, read from the published summaries or (filtered) computed from the rows."""
    _, src, truth = shop
    where = (FieldFilter("votes", "numeric", lo=0, hi=99),) if filtered else ()
    scope = truth[truth["review_id"].isin(truth["review_id"])] if not filtered else truth.iloc[:0]
    if filtered:
        with store.connect(shop[0], read_only=True) as con:
            votes = con.execute("SELECT review_id, num_value FROM review_fields WHERE field = 'votes'").df()
        scope = truth.merge(votes, on="review_id")
        scope = scope[scope["num_value"] <= 99]
    table = slicing.slices(src, "shop", "all", MODELS, "category", "categorical", 10, where)
    assert set(table["value"]) == set(CATEGORIES)
    diffs = []
    for row in table.itertuples():
        want = sk(scope[scope["category"] == row.value], row.model)
        assert row.n == row.reviews == want["n"]
        assert row.accuracy == pytest.approx(want["accuracy"], abs=1e-12)
        assert row.positive_share == pytest.approx(want["positive_share"], abs=1e-12)
        diffs.append(abs(row.roc_auc - want["roc_auc"]))
        assert row.accuracy_lo < row.accuracy < row.accuracy_hi and row.roc_auc_lo < row.roc_auc <= row.roc_auc_hi
    print("max |binned ROC-AUC - sklearn|", max(diffs))
    assert max(diffs) < 0.005  # pairs within one 1/1000 bin count half: this model piles both classes in the end bins
    worst = table[table["model"] == "confident"].sort_values("accuracy")["value"].iloc[0]
    assert worst == "Shoes"
    two = slicing.slices(src, "shop", "all", MODELS, "category", "categorical", 2, where)
    assert set(two["value"]) == {"Dresses", "Tops", "(other)"}
    assert two.groupby("model")["reviews"].sum().eq(len(scope)).all()


def test_every_page_under_a_filter_equals_sklearn_on_the_filtered_reviews(shop):
    _, src, truth = shop
    where = (FieldFilter("category", "categorical", values=("Tops", "Bags")),
             FieldFilter("reviewed", "datetime", lo="2021-03-01", hi="2022-01-01"))
    scope = truth[truth["category"].isin(["Tops", "Bags"]) & (truth["day"] >= "2021-03-01")
                  & (truth["day"] < "2022-01-01")]
    board = data.leaderboard(src, "shop", "all", MODELS, where=where).set_index("model")
    at = data.confusion(src, "shop", "all", MODELS, 0.5, where=where).set_index("model")
    aucs = data.aucs(src, "shop", "all", MODELS, where=where).set_index("model")
    shares = data.shares(src, "shop", "all", MODELS, where=where)
    for model in MODELS:
        want = sk(scope, model)
        assert board.loc[model, "n"] == want["n"] and board.loc[model, "accuracy"] == pytest.approx(want["accuracy"])
        assert board.loc[model, "roc_auc"] == pytest.approx(want["roc_auc"], abs=0.002)
        assert aucs.loc[model, "roc_auc"] == pytest.approx(want["roc_auc"], abs=0.002)
        assert [at.loc[model, c] for c in ("tn", "fp", "fn", "tp")] == [want[c] for c in ("tn", "fp", "fn", "tp")]
        positive = shares[(shares["model"] == model) & (shares["predicted"] == "positive")]["share"].iloc[0]
        assert positive == pytest.approx(want["positive_share"])
    assert data.labelled_count(src, "shop", "all", where=where) == len(scope)
    flt = data.ReviewFilter("shop", "all", "confident", correct=False, where=where)
    total, _ = data.review_page(src, flt, 50, 0)
    assert total == int(((scope["confident"] >= 0.5) != scope["y"].astype(bool)).sum())
    unfiltered = data.leaderboard(src, "shop", "all", MODELS).set_index("model")
    assert unfiltered["accuracy"].isna().all()  # never evaluated: the filter is what computes them


def test_over_time_equals_pandas(shop):
    _, src, truth = shop
    series = slicing.over_time(src, "shop", "all", MODELS, "reviewed", "month")
    month = truth["day"].dt.to_period("M").dt.start_time
    for model in MODELS:
        want = truth.assign(month=month, pos=truth[model] >= 0.5,
                            right=(truth[model] >= 0.5) == truth["y"].astype(bool)).groupby("month").agg(
            reviews=("pos", "size"), positive_share=("pos", "mean"), accuracy=("right", "mean"),
            true_share=("y", "mean"))
        got = series[series["model"] == model].set_index("period")
        assert got["reviews"].tolist() == want["reviews"].tolist() and len(got) == 18
        np.testing.assert_allclose(got["positive_share"], want["positive_share"])
        np.testing.assert_allclose(got["accuracy"], want["accuracy"])
        np.testing.assert_allclose(got["true_share"], want["true_share"])
    weekly = slicing.over_time(src, "shop", "all", MODELS, "reviewed", "week")
    assert weekly.groupby("model")["reviews"].sum().eq(N).all()


def test_slices_and_over_time_pages_and_the_sidebar_filter(shop, monkeypatch):
    db, _, truth = shop
    monkeypatch.setenv("SENTIMENT_DB", str(db))
    at = AppTest.from_file(HOME, default_timeout=60)
    at.run()
    at.switch_page("views/slices.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Slices"
    at.selectbox(key="sl_value").set_value("<b>Hats</b>").run()
    hats = int((truth["category"] == "<b>Hats</b>").sum())
    assert f"{hats:,} reviews in '<b>Hats</b>'" in " ".join(c.value for c in at.caption)
    assert all("<b>" not in m.value for m in at.markdown)  # shown as text, never as HTML
    at.switch_page("views/over_time.py").run()
    assert not at.exception and at.title[0].value == "Over time"

    at.switch_page("views/overview.py").run()
    at.sidebar.multiselect(key="flt_fields").set_value(["category"]).run()
    at.sidebar.multiselect(key="flt_categorical_category").set_value(["Shoes"]).run()
    assert not at.exception, [e.value for e in at.exception]
    board = frames(at)[2 if len(frames(at)) > 2 else 1]
    shoes = truth[truth["category"] == "Shoes"]
    assert set(board["n"]) == {len(shoes)}
    assert board.set_index("model").loc["confident", "accuracy"] == pytest.approx(sk(shoes, "confident")["accuracy"])
    for page in ("distributions", "confusion", "curves", "disagreements", "reviews", "slices", "over_time"):
        at.switch_page(f"views/{page}.py").run()
        assert not at.exception, (page, [e.value for e in at.exception])


def test_one_column_filter_is_served_from_the_slices_and_equals_the_rows(shop):
    """'category is Tops or Bags' reads the slices' cubes; the same filter with a second, no-op condition
    makes every figure come from the rows: both agree with each other and with scikit-learn."""
    _, src, truth = shop
    one = (FieldFilter("category", "categorical", values=("Tops", "Bags")),)
    rows = (*one, FieldFilter("votes", "numeric", lo=-1, hi=1e9))
    assert data._sliced(src, "shop", one) and not data._sliced(src, "shop", rows)
    scope = truth[truth["category"].isin(["Tops", "Bags"])]
    for where in (one, rows):
        at = data.confusion(src, "shop", "all", MODELS, 0.5, where=where).set_index("model")
        board = data.leaderboard(src, "shop", "all", MODELS, where=where).set_index("model")
        for model in MODELS:
            want = sk(scope, model)
            assert [at.loc[model, c] for c in ("tn", "fp", "fn", "tp")] == [want[c] for c in ("tn", "fp", "fn", "tp")]
            assert board.loc[model, "roc_auc"] == pytest.approx(want["roc_auc"], abs=0.005)
    by_length = data.shares(src, "shop", "all", MODELS, "length", where=one)
    assert by_length["group"].notna().all()  # by length needs the rows: never the slices' cubes


@pytest.mark.parametrize("cell", ["tp", "fn", "fp", "tn"])
def test_a_cells_most_confident_reviews_equal_pandas(shop, cell):
    _, src, truth = shop
    label, positive = data.CELLS[cell]
    for model in MODELS:
        got = data.cell_reviews(src, "shop", "all", model, cell)
        cell_rows = truth[(truth["y"] == (label == "positive")) & ((truth[model] >= 0.5) == positive)]
        want = cell_rows.assign(c=(cell_rows[model] - 0.5).abs()).sort_values(["c", "review_id"],
                                                                               ascending=[False, True])
        assert got["review_id"].tolist() == want["review_id"].head(data.TEXT_ROWS).tolist()


def rows_path(src: data.Source, sql_params: tuple[str, dict]) -> pd.DataFrame:
    """Run one of core.store.summaries' live statements on the view as given (the path a filter that the
    wide table does not cover takes: summary_rows joined with summary_fields)."""
    sql, params = sql_params
    con = store.open_view(src.path)
    try:
        with store.view_cursor(con) as cur:
            return cur.execute(sql, {"corpus": "shop", "split": "all", "names": list(MODELS), **params}).df()
    finally:
        con.close()


ROW_FILTERS = [
    ((), {}),
    ((FieldFilter("category", "categorical", values=("Shoes", "<b>Hats</b>")),), {"predicted": "positive"}),
    ((FieldFilter("reviewed", "datetime", lo="2021-03-01", hi="2021-09-01"),), {"correct": False}),
    ((FieldFilter("category", "categorical", values=("Tops",), exclude=True),
      FieldFilter("votes", "numeric", lo=20, hi=120)), {"p_min": 0.2, "p_max": 0.9, "label": "negative"}),
]


def kept(truth: pd.DataFrame, where) -> pd.Series:
    """Which reviews the sidebar's filters on category, reviewed and votes keep, by pandas."""
    keep = pd.Series(True, index=truth.index)
    for f in where:
        if f.field == "category":
            hit = truth["category"].isin(f.values)
            keep &= ~hit if f.exclude else hit
        elif f.field == "reviewed":
            keep &= (truth["day"] >= f.lo) & (truth["day"] < f.hi)
        else:
            keep &= truth["votes"].between(f.lo, f.hi)
    return keep


@pytest.mark.parametrize("where, how", ROW_FILTERS)
def test_the_review_list_equals_pandas(shop, where, how):
    """The Reviews page (count, a page further in, the CSV) and a slice's reviews read summary_rows: they
    give pandas' rows, in review_id order."""
    _, src, truth = shop
    frame = truth
    keep = kept(truth, where)
    p = frame["noisy"]
    keep &= p.between(how.get("p_min", 0.0), how.get("p_max", 1.0))
    if "predicted" in how:
        keep &= (p >= 0.5) == (how["predicted"] == "positive")
    if "correct" in how:
        keep &= ((p >= 0.5) == (frame["y"] == 1)) == how["correct"]
    if "label" in how:
        keep &= frame["y"] == (how["label"] == "positive")
    want = frame.loc[keep, "review_id"].sort_values().tolist()
    f = data.ReviewFilter("shop", "all", "noisy", where=where, **how)
    assert len(want) > 60  # each case lists pages of reviews
    total, page = data.review_page(src, f, limit=20, offset=40)
    assert total == len(want)
    assert page["review_id"].tolist() == want[40:60]
    assert page["text"].tolist() == [f"review {int(i[1:])}" for i in want[40:60]]
    csv = pd.read_csv(io.BytesIO(data.review_csv(src, f)))
    assert csv["review_id"].tolist() == want
    first = pd.read_csv(io.BytesIO(data.review_csv(src, f, max_rows=25)))  # the first 25, in order
    assert first["review_id"].tolist() == want[:25] and first["text"].iloc[0] == f"review {int(want[0][1:])}"
    none = pd.read_csv(io.BytesIO(data.review_csv(src, f._replace(p_min=0.3, p_max=0.2))))
    assert none.empty and "text" in none.columns


@pytest.mark.parametrize("where", [(), (FieldFilter("category", "categorical", values=("Shoes", "Tops")),),
                                   (FieldFilter("reviewed", "datetime", lo="2021-06-01", hi="2022-01-01"),)])
def test_disagreements_equal_pandas(shop, where):
    """The Disagreements page under a filter reads the wide table (one row per review); unfiltered,
    summary_disagree; a choice of models that is not the corpus's every model, summary_rows. All equal
    pandas."""
    _, src, truth = shop
    scope = truth
    for f in where:
        scope = scope[scope["category"].isin(f.values)] if f.kind == "categorical" else \
            scope[(scope["day"] >= f.lo) & (scope["day"] < f.hi)]
    votes = scope[list(MODELS)] >= 0.5
    spread = (scope["confident"] - scope["noisy"]).abs()
    wrong = (votes["confident"] != (scope["y"] == 1)) & (votes["noisy"] != (scope["y"] == 1))
    top = scope.assign(s=spread).sort_values(["s", "review_id"], ascending=[False, True])["review_id"]
    for models in (MODELS, MODELS[::-1]):  # the corpus's every model in its order (summaries), or not
        counts = data.disagreement_counts(src, "shop", "all", models, where=where)
        assert counts == {"reviews": len(scope), "split_decisions": int((votes["confident"] != votes["noisy"]).sum()),
                          "all_contradict": int(wrong.sum())}
        listed = data.disagreements(src, "shop", "all", models, where=where)
        assert listed["review_id"].tolist() == top.head(data.TEXT_ROWS).tolist()
        assert listed["spread"].to_numpy() == pytest.approx(spread.loc[top.head(data.TEXT_ROWS).index].to_numpy())


@pytest.mark.parametrize("where, _", ROW_FILTERS[1:])
def test_filtered_aggregates_from_the_wide_table_equal_pandas_and_the_rows(shop, where, _):
    """Under a column filter the cube, another column's slices and the series over time are computed live:
    from summary_wide_<tab> (one row per review, the filters on its columns), or from summary_rows and
    summary_fields where the wide table does not cover the filter. Both equal pandas."""
    _, src, truth = shop
    scope = truth[kept(truth, where)]
    assert data.wide(src, "shop").covers(where)
    con = store.open_view(src.path)
    for column, kind in (("category", "categorical"), ("votes", "numeric"), ("reviewed", "datetime")):
        recorded = data.wide(src, "shop").slice_def(column)  # what the publish cut the column by
        with store.view_cursor(con) as cur:
            assert recorded == summaries.slice_def(lambda sql, params: cur.execute(sql, params).df(), "shop",
                                                   column, kind)
        assert recorded.values or recorded.edges or kind == "datetime"
    month = scope["day"].dt.to_period("M").dt.start_time
    years = slicing.slices(src, "shop", "all", MODELS, "reviewed", "datetime", 10, where)
    assert years.groupby(["value", "model"])["reviews"].sum().to_dict() == \
        scope.assign(year=scope["day"].dt.year.astype(str)).melt(id_vars="year", value_vars=list(MODELS),
                                                                var_name="model").groupby(["year", "model"]).size().to_dict()
    for column, kind in (("votes", "numeric"), ("reviewed", "datetime")):  # its buckets, its years
        from_wide = slicing.slices(src, "shop", "all", MODELS, column, kind, 10, where)
        assert from_wide.groupby("model")["reviews"].sum().eq(len(scope)).all()
        d = data.wide(src, "shop").slice_def(column)
        key = ["value", "model", "label", "bin"]
        live = rows_path(src, summaries.slices_sql(d, "all", where)).sort_values(key).reset_index(drop=True)
        wide = rows_path(src, summaries.slices_sql(d, "all", where, data.wide(src, "shop")))
        pd.testing.assert_frame_equal(live, wide.sort_values(key).reset_index(drop=True), check_dtype=False)
    con.close()
    cube = data.cube(src, "shop", "all", where, need_length=True)
    for model in MODELS:
        mine = cube[cube["model"] == model]
        assert mine.groupby("label")["n"].sum().to_dict() == \
            scope["y"].map({1: "positive", 0: "negative"}).value_counts().to_dict()
        assert mine["sum_p"].sum() == pytest.approx(scope[model].sum())
        assert set(mine["length"]) == {"1: < 500 chars"}  # every text is 'review <i>'
    table = slicing.slices(src, "shop", "all", MODELS, "category", "categorical", 10, where)
    for row in table.itertuples():
        want = sk(scope[scope["category"] == row.value], row.model)
        assert row.reviews == want["n"] and row.accuracy == pytest.approx(want["accuracy"], abs=1e-12)
    assert table.groupby("model")["reviews"].sum().eq(len(scope)).all()
    series = slicing.over_time(src, "shop", "all", MODELS, "reviewed", "month", where)
    for model in MODELS:
        want = scope.assign(month=month, right=(scope[model] >= 0.5) == scope["y"].astype(bool)).groupby(
            "month").agg(reviews=("right", "size"), accuracy=("right", "mean"))
        got = series[series["model"] == model].set_index("period")
        assert got["reviews"].tolist() == want["reviews"].tolist()
        np.testing.assert_allclose(got["accuracy"], want["accuracy"])


def test_a_text_search_reads_the_reviews_in_steps_and_the_page_searches_further(shop, monkeypatch):
    """A search reads SEARCH_CHUNK reviews (in stored order) per step: its count and its page are the
    matches among the reviews read so far, and the page's 'Search further' reads the next step."""
    db, src, _ = shop
    monkeypatch.setattr(rows, "SEARCH_CHUNK", 1000)
    stored = pd.DataFrame(q(src.path, "SELECT review_id, text FROM texts ORDER BY rid"), columns=["review_id", "text"])
    hits = stored["text"].str.contains("review 1", regex=False)
    for steps in (1, 2, 4, 5):
        assert data.searched(src, "shop", steps) == (min(steps * 1000, N), N)
        want = stored.head(steps * 1000)[hits.head(steps * 1000)]["review_id"].sort_values().tolist()
        f = data.ReviewFilter("shop", "all", "noisy", search="REVIEW 1", search_steps=steps)
        total, page = data.review_page(src, f, 20, 10)
        assert total == len(want) and page["review_id"].tolist() == want[10:30]
        csv = pd.read_csv(io.BytesIO(data.review_csv(src, f)))
        assert csv["review_id"].tolist() == want
    assert len(want) == 1111  # 1, 10-19, 100-199, 1000-1999
    assert data.review_page(src, f._replace(search_steps=None), 20, 10)[0] == 1111  # one scan of every review

    monkeypatch.setenv("SENTIMENT_DB", str(db))
    at = AppTest.from_file(HOME, default_timeout=60)
    at.run()
    at.switch_page("views/reviews.py").run()
    nines = stored["text"].str.contains("9", regex=False)  # matches in every step, whatever the stored order
    at.text_input(key="rv_search").set_value("9").run()
    assert "read the first 1,000 of 4,000 reviews" in " ".join(c.value for c in at.caption)
    assert f"**{nines.head(1000).sum():,}** matching reviews" in [m.value for m in at.markdown]
    at.button(key="rv_search_more").click().run()
    assert "read the first 2,000 of 4,000 reviews" in " ".join(c.value for c in at.caption)
    assert f"**{nines.head(2000).sum():,}** matching reviews" in [m.value for m in at.markdown]
    assert 0 < nines.head(1000).sum() < nines.head(2000).sum() < nines.sum()
    at.text_input(key="rv_search").set_value("review 39").run()  # a new term starts over
    assert "read the first 1,000 of 4,000 reviews" in " ".join(c.value for c in at.caption)
