"""A publish updates a corpus's summaries by what a job added, and the result equals a full rebuild: after
appended reviews, a new corpus, a new model, a model scoring reviews it had not scored, and new slices. A
publish killed midway leaves the dashboard's view as it was."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import duckdb
import numpy as np
import pandas as pd
import pytest

from core import store
from core.store import summaries, summarise
from jobs import score
from tests.helpers import JOIN_TEXTS, SHOP_HEADER, q, shop_rows, write_csv
from tests.helpers import score_shop as run


@pytest.fixture
def shop_files(scored_db, tmp_path):
    """write(name, rows) -> a shop export of the first ``rows`` of 90 real reviews; the database; models."""
    texts = [t for (t,) in q(scored_db.db, f"SELECT text FROM reviews{JOIN_TEXTS} WHERE corpus = 'sample' "
                                           "ORDER BY source_row LIMIT 90")]
    every = shop_rows(texts)

    def write(name: str, n: int, category: str | None = None):
        rows = [list(r) for r in every[:n]]
        if category:  # a category the first rows never had: the column is sliced anew
            for r in rows[60:]:
                r[4] = category
        return write_csv(tmp_path / name, SHOP_HEADER, rows)
    return write, tmp_path / "r.duckdb", scored_db.models_dir


def snapshot(db, corpus: str = "shop") -> dict[str, pd.DataFrame]:
    """Every summary table's rows of the corpus (its wide table's too), sorted: what the dashboard reads."""
    out = {}
    with duckdb.connect(str(db), read_only=True) as con:
        wide = summaries.wide_of(lambda sql, params: con.execute(sql, params).df(), corpus)
        tables = [(t, "tab" if t == "summary_wide" else None) for t in summaries.TABLES] + [(wide.table, None)]
        for table, skip in tables:
            df = con.execute(f"SELECT * {f'EXCLUDE ({skip})' if skip else ''} FROM {table} WHERE corpus = ?",
                             [corpus]).df()
            out[table if table != wide.table else "wide"] = df.sort_values(list(df.columns)).reset_index(drop=True)
    return out


def rebuilt(db, corpus: str = "shop") -> dict[str, pd.DataFrame]:
    """The same after the corpus's summaries are rebuilt from the base tables."""
    with store.connect(db) as con:
        con.execute("DELETE FROM summary_state WHERE corpus = ?", [corpus])
        assert summarise.refresh(con) == [corpus]
    return snapshot(db, corpus)


def assert_same(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for table, rows in want.items():
        assert len(got[table]) == len(rows), table
        # sums of probabilities added in another order differ in the last bits
        pd.testing.assert_frame_equal(got[table], rows, check_dtype=False, rtol=1e-9, obj=table)


def test_appended_reviews_update_the_summaries_and_equal_a_rebuild(shop_files, capfd):
    write, db, models = shop_files
    assert run(write("a.csv", 40), db, models, "--models", "tfidf-lr,vader") == 0
    assert run(write("b.csv", 60), db, models, "--models", "tfidf-lr,vader") == 0
    assert "summaries of shop updated" in capfd.readouterr().err  # by what was added, not rebuilt
    got = snapshot(db)
    assert got["summary_rows"]["rid"].nunique() == 60 and len(got["summary_agree"]) == 60
    assert_same(got, rebuilt(db))

    # a new corpus leaves this one's summaries as they were
    before = snapshot(db)
    assert run(write("c.csv", 30), db, models, "--models", "vader", "--corpus", "other") == 0
    assert_same(snapshot(db), before)
    assert_same(snapshot(db, "other"), rebuilt(db, "other"))


def test_a_model_scoring_older_reviews_a_new_model_and_new_slices_rebuild(shop_files, capfd):
    write, db, models = shop_files
    assert run(write("a.csv", 40), db, models, "--models", "tfidf-lr,vader") == 0
    assert run(write("b.csv", 60), db, models) == 0  # new reviews scored by one model of two
    assert "summaries of shop updated" in capfd.readouterr().err
    got = snapshot(db)
    assert got["wide"]["p1"].isna().sum() == 20 and len(got["summary_agree"]) == 40
    assert_same(got, rebuilt(db))

    # the stored corpus scored: vader scores the 20 reviews it lacked, older than the summaries
    assert score.main(["--db", str(db), "--corpus", "shop", "--models", "vader", "--models-dir", str(models)]) == 0
    assert "summaries of shop rebuilt" in capfd.readouterr().err
    got = snapshot(db)
    assert len(got["summary_agree"]) == 60
    assert_same(got, rebuilt(db))

    assert run(write("d.csv", 90, category="Bags"), db, models) == 0  # a new category: sliced anew
    assert "summaries of shop rebuilt" in capfd.readouterr().err
    assert "Bags" in set(snapshot(db)["summary_slices"]["value"])

    with store.connect(db) as con:  # a new model
        ids = [r[0] for r in con.execute("SELECT review_id FROM reviews WHERE corpus = 'shop'").fetchall()]
        store.insert_predictions(con, "shop", "extra", ids, np.linspace(0, 1, len(ids)), "run-extra")
    store.publish(db)
    got = snapshot(db)
    assert len(got["summary_agree"]) == 60  # the reviews all three models scored
    assert_same(got, rebuilt(db))


def test_a_publish_killed_midway_leaves_the_view_as_it_was(shop_files):
    write, db, models = shop_files
    assert run(write("a.csv", 90), db, models, "--models", "tfidf-lr,vader") == 0
    view = store.view_path(db)
    first = snapshot(view)
    with store.connect(db) as con:  # a new model's predictions, not yet published
        ids = [r[0] for r in con.execute("SELECT review_id FROM reviews WHERE corpus = 'shop'").fetchall()]
        store.insert_predictions(con, "shop", "extra", ids, np.linspace(0, 1, len(ids)), "run-extra")
    publish = [sys.executable, "-c", "import sys; from core import store; store.publish(sys.argv[1])", str(db)]
    killed = 0
    for delay in np.arange(1, 40) * 0.2:  # python and duckdb start in about 1 s; each try is killed later
        p = subprocess.Popen(publish, cwd=os.getcwd())
        time.sleep(delay)
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            killed += 1
        p.wait()
        now = snapshot(view)
        if len(now["summary_rows"]) == 3 * 90:  # the new view, whole
            break
        assert_same(now, first)  # or the old one, whole
    assert killed >= 1
    store.publish(db)
    assert len(snapshot(view)["summary_rows"]) == 3 * 90
    assert not list(view.parent.glob(view.name + ".tmp*"))  # no half copy left behind
    assert_same(snapshot(db), rebuilt(db))
