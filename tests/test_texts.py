"""The review texts' Parquet parts (core.store.texts): staged texts are read as parts are, a spill that is not
committed leaves no trace a reader sees, a kill's leftovers are removed, and a scoring run that writes several
parts reads back every text it stored."""

from __future__ import annotations

import pandas as pd
import pytest

from core import store
from core.store import texts
from jobs import score
from tests.helpers import HOSTILE, q


def _reviews(n: int, start: int = 0) -> pd.DataFrame:
    return pd.DataFrame({"review_id": [f"r{i}" for i in range(start, start + n)],
                         "text": [f"review number {i} " + HOSTILE[i % len(HOSTILE)] for i in range(start, start + n)],
                         "label": "positive", "split": None, "source_row": range(start, start + n)})


def _stored(db) -> dict[str, str]:
    return dict(q(db, "SELECT review_id, text FROM texts"))


def test_staged_texts_read_as_parts_do_and_a_spill_not_committed_leaves_an_orphan_that_is_removed(tmp_path):
    db = tmp_path / "t.duckdb"
    want = dict(zip(_reviews(30)["review_id"], _reviews(30)["text"]))
    with store.connect(db) as con:
        with store.transaction(con):
            store.insert_reviews(con, "c", _reviews(20))
        assert texts.parts(con, "c") == []  # fewer than PART_ROWS wait: staged
        assert store.review(con, "c", "r7")["text"] == want["r7"]
        with store.transaction(con):
            assert texts.spill(con, 0) == 20
        assert len(texts.parts(con, "c")) == 1
        assert con.execute("SELECT count(*) FROM review_texts").fetchall() == [(0,)]
        with store.transaction(con):
            store.insert_reviews(con, "c", _reviews(10, start=20))
        with pytest.raises(RuntimeError), store.transaction(con):  # a kill between the part and its commit
            texts.spill(con, 0)
            raise RuntimeError("killed")
        assert len(texts.parts(con, "c")) == 1 and len(list(texts.folder(db).glob("*.parquet"))) == 2
        assert store.review(con, "c", "r25")["text"] == want["r25"]  # still staged
        sql, params = texts.source(con, "c")
        assert con.execute(f"SELECT count(*) FROM {sql}", {"corpus": "c", **params}).fetchall() == [(30,)]
    (texts.folder(db) / "000009.tmp").write_bytes(b"half a part")
    with store.connect(db) as con:  # the next job: the orphan part and the half-written one are gone
        assert sorted(p.name for p in texts.folder(db).iterdir()) == ["000001.parquet"]
    assert _stored(db) == want
    store.publish(db)  # publishing writes the staged texts out: the view reads them all from parts
    view = store.view_path(db)
    assert _stored(view) == want and q(view, "SELECT count(*) FROM review_texts") == [(0,)]
    assert len(list(texts.folder(db).glob("*.parquet"))) == 2


def test_a_scoring_run_that_writes_several_parts_stores_every_text_once(scored_db, tmp_path, monkeypatch):
    """PART_ROWS lowered so the sample's 303 reviews fill several parts during the run: the view's texts equal
    the session database's, review for review, and the search over them finds what a scan of them finds."""
    monkeypatch.setattr(texts, "PART_ROWS", 40)
    db = tmp_path / "parts.duckdb"
    assert score.main([str(scored_db.csv), "--db", str(db), "--corpus", "sample", "--text-col", "review",
                       "--id-col", "id", "--label-col", "sentiment", "--models", "tfidf-lr",
                       "--models-dir", str(scored_db.models_dir), "--chunk-rows", "50"]) == 0
    parts = q(db, "SELECT n FROM text_parts ORDER BY part")
    assert len(parts) >= 5 and sum(n for (n,) in parts) == scored_db.n_rows
    stored = {k: v for k, v in q(scored_db.db, "SELECT review_id, text FROM texts WHERE corpus = 'sample'")}
    assert _stored(store.view_path(db)) == stored
    with store.connect(store.view_path(db), read_only=True) as con:
        for term in ["<script>", "wonderful", "DROP TABLE"]:
            f = store.review_rows.ReviewFilter("sample", "all", "tfidf-lr", search=term)
            want = sum(term.lower() in t.lower() for t in stored.values())
            assert store.review_rows.review_count(con, f) == want, term
