"""The summaries a publish builds (core.store.summaries) equal the same aggregates computed from the rows with
pandas; a corpus is rebuilt only when the store wrote to it; a filter on a kept column selects exactly the
reviews whose cell says so."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest

from core import store
from core.store import summaries, summarise
from core.store.summaries import FieldFilter
from tests.helpers import score_shop as run


@pytest.fixture
def shop_db(shop):
    path, db, models = shop
    assert run(path, db, models, "--models", "tfidf-lr,vader") == 0
    return db


def rows(db) -> pd.DataFrame:
    """One row per prediction with its review's label and kept columns, wide: the ground truth."""
    with duckdb.connect(str(db), read_only=True) as con:
        joined = con.execute("""
            SELECT p.model, p.review_id, p.p_positive, r.label, coalesce(r.split, 'all') AS split
            FROM predictions p JOIN reviews r USING (corpus, review_id) WHERE p.corpus = 'shop'""").df()
        cells = con.execute("SELECT review_id, field, text_value, num_value, time_value FROM review_fields "
                            "WHERE corpus = 'shop'").df()
    wide = cells.pivot(index="review_id", columns="field", values=["text_value", "num_value", "time_value"])
    wide.columns = [f"{field}_{what.split('_')[0]}" for what, field in wide.columns]
    return joined.merge(wide, left_on="review_id", right_index=True, how="left")


def read(db, sql: str, **params) -> pd.DataFrame:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql, params).df()


def test_publish_builds_summaries_equal_to_the_rows(shop_db):
    truth = rows(shop_db)
    truth["bin"] = np.minimum(np.floor(truth["p_positive"] * 1000), 999).astype(int)
    cube = read(shop_db, "SELECT model, label, bin, sum(n) AS n, sum(sum_p) AS sum_p FROM summary_cube "
                         "WHERE corpus = 'shop' GROUP BY ALL ORDER BY ALL")
    expected = (truth.groupby(["model", "label", "bin"], dropna=False)
                .agg(n=("p_positive", "size"), sum_p=("p_positive", "sum")).reset_index()
                .sort_values(["model", "label", "bin"]).reset_index(drop=True))
    assert cube["n"].sum() == len(truth) == expected["n"].sum()
    pd.testing.assert_frame_equal(cube[["model", "bin", "n"]].astype({"n": int}),
                                  expected[["model", "bin", "n"]].astype({"n": int}), check_dtype=False)

    # slices of a categorical column: every value of 'category' (one cell was empty: '(missing)')
    got = read(shop_db, "SELECT value, model, sum(n) AS n, sum(n) FILTER (WHERE bin >= 500) AS pos "
                        "FROM summary_slices WHERE corpus = 'shop' AND field = 'category' GROUP BY ALL ORDER BY ALL")
    cat = truth.assign(value=truth["category_text"].fillna(summaries.MISSING))
    want = (cat.assign(pos=cat["p_positive"] >= 0.5).groupby(["value", "model"])
            .agg(n=("pos", "size"), pos=("pos", "sum")).reset_index())
    assert got["value"].tolist() == want["value"].tolist()
    assert got["n"].tolist() == want["n"].tolist() and got["pos"].fillna(0).tolist() == want["pos"].tolist()

    # a numeric column with few values is sliced by value; a datetime one by year, and per day over time
    votes = read(shop_db, "SELECT DISTINCT value FROM summary_slices WHERE field = 'votes' ORDER BY value")
    assert set(votes["value"]) == {*(str(v) for v in range(11)), summaries.MISSING}
    days = read(shop_db, "SELECT day, sum(n) AS n FROM summary_time WHERE field = 'reviewed' AND model = 'vader' "
                         "GROUP BY day ORDER BY day")
    per_day = truth[truth["model"] == "vader"].groupby(truth["reviewed_time"].dt.date).size()
    assert days["n"].tolist() == per_day.tolist() and len(days) == 59  # one date did not parse
    values = read(shop_db, "SELECT field, value, sliced FROM summary_values WHERE field IN ('verified', 'reviewed')")
    assert set(map(tuple, values[["field", "value"]].values)) == {("verified", "true"), ("verified", "false"),
                                                                 ("reviewed", "2012"), ("reviewed", "2013")}


def test_only_corpora_written_to_are_rebuilt(shop_db):
    state = read(shop_db, "SELECT corpus, built_at FROM summary_state ORDER BY corpus")
    assert state["corpus"].tolist() == ["shop"]
    store.publish(shop_db)  # nothing written since: nothing rebuilt
    assert read(shop_db, "SELECT built_at FROM summary_state")["built_at"].tolist() == state["built_at"].tolist()
    with store.connect(shop_db) as con:
        store.insert_predictions(con, "shop", "extra", ["r0", "r1"], np.array([0.2, 0.9]), "t")
        assert summarise.refresh(con) == ["shop"]  # a new model: rebuilt
        n = con.execute("SELECT sum(n) FROM summary_cube WHERE model = 'extra'").fetchone()[0]
        assert n == 2
        con.execute("UPDATE summary_state SET version = version - 1")  # summarised by an older layout
        assert summarise.refresh(con) == ["shop"]
        assert con.execute("SELECT version FROM summary_state").fetchone()[0] == summaries.VERSION


@pytest.mark.parametrize("where, expect", [
    ((FieldFilter("category", "categorical", values=("Tops",)),), lambda t: t["category_text"] == "Tops"),
    ((FieldFilter("category", "categorical", values=("Tops",), exclude=True),),
     lambda t: t["category_text"].notna() & (t["category_text"] != "Tops")),
    ((FieldFilter("verified", "boolean", values=("false",)),), lambda t: t["verified_num"] == 0),
    ((FieldFilter("votes", "numeric", lo=3, hi=5),), lambda t: t["votes_num"].between(3, 5)),
    ((FieldFilter("reviewed", "datetime", lo="2012-12-10", hi="2012-12-20"),),
     lambda t: (t["reviewed_time"] >= "2012-12-10") & (t["reviewed_time"] < "2012-12-20")),
    ((FieldFilter("category", "categorical", values=("Tops", "Shoes")), FieldFilter("votes", "numeric", lo=0, hi=4)),
     lambda t: t["category_text"].isin(["Tops", "Shoes"]) & t["votes_num"].between(0, 4)),
])
def test_a_filter_keeps_exactly_the_reviews_it_names(shop_db, where, expect):
    truth = rows(shop_db)
    sql, params = summaries.cube_sql("all", where)
    with duckdb.connect(str(shop_db), read_only=True) as con:
        cube = con.execute(sql, {**params, "corpus": "shop", "split": "all", "names": ["vader"]}).df()
    vader = truth[truth["model"] == "vader"]
    assert cube["n"].sum() == expect(vader).sum() > 0


def test_filters_bind_hostile_values(shop_db):
    where = (FieldFilter("category'; DROP TABLE reviews; --", "categorical", values=("x' OR '1'='1",)),)
    sql, params = summaries.cube_sql("all", where)
    assert "DROP" not in sql and "OR '1'" not in sql
    with duckdb.connect(str(shop_db), read_only=True) as con:
        assert con.execute(sql, {**params, "corpus": "shop", "split": "all", "names": ["vader"]}).df().empty
