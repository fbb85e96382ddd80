"""The shortcuts jobs.score takes at scale give the same results as the exact queries."""

from __future__ import annotations

import shutil

import duckdb
import numpy as np
import pandas as pd
import pytest

from core import store
from core.ingest import StoredIds
from core.models import load_model
from jobs import bench_dashboard, make_corpus, score
from tests.helpers import write_csv


def test_stored_ids_filter_never_misses_an_added_hash():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 2**63, 1000, dtype=np.uint64)
    ids = StoredIds(base)
    added = [rng.integers(0, 2**63, 137, dtype=np.uint64) for _ in range(50)]
    for h in added:
        ids.add(h)
    ids.add(np.array([], dtype=np.uint64))
    assert len(ids.blocks) <= 8  # merged like a binary counter
    assert all(ids.maybe_any(h[i:i + 1]) for h in [base, *added] for i in (0, 5))
    assert not ids.maybe_any(rng.integers(0, 2**63, 5000, dtype=np.uint64))


def test_duplicate_id_in_a_later_chunk_and_in_a_second_file_is_rejected(scored_db, tmp_path):
    db = tmp_path / "d.duckdb"
    first = write_csv(tmp_path / "a.csv", ["id", "review"], [["a", "Good"], ["b", "Bad"], ["c", "Fine"], ["a", "Again"]])
    second = write_csv(tmp_path / "b.csv", ["id", "review"], [["b", "Stored by a.csv"], ["z", "New one"]])
    for path in (first, second):
        assert score.main([str(path), "--db", str(db), "--corpus", "d", "--text-col", "review", "--id-col", "id",
                           "--models", "vader", "--models-dir", str(scored_db.models_dir), "--chunk-rows", "2"]) == 0
    with duckdb.connect(str(db), read_only=True) as con:
        assert sorted(r[0] for r in con.execute("SELECT review_id FROM reviews").fetchall()) == ["a", "b", "c", "z"]
        reasons = [r[0] for r in con.execute("SELECT reason FROM rejects ORDER BY reason").fetchall()]
        assert len(reasons) == 2 and all(r.startswith("duplicate review_id") for r in reasons)
        assert con.execute("SELECT count(*) FROM predictions").fetchone()[0] == 4


def test_make_corpus_is_reproducible_and_prefix_stable(scored_db, tmp_path):
    small, big = tmp_path / "s.csv", tmp_path / "b.csv"
    assert make_corpus.main(["--rows", "50", "--out", str(small), "--db", str(scored_db.db)]) == 0
    assert make_corpus.main(["--rows", "500", "--out", str(big), "--db", str(scored_db.db)]) == 0
    lines = big.read_text(encoding="utf-8").splitlines(keepends=True)
    assert small.read_text(encoding="utf-8").startswith("id,review,sentiment\nbig-000000000,")
    with duckdb.connect() as con:
        rows = con.execute("SELECT count(*), count(DISTINCT id) FROM read_csv(?)", [str(big)]).fetchone()
        head = con.execute("SELECT * FROM read_csv(?) LIMIT 50", [str(big)]).fetchall()
        assert head == con.execute("SELECT * FROM read_csv(?)", [str(small)]).fetchall()
    assert rows == (500, 500) and len(lines) > 500


def test_the_bench_database_resamples_real_reviews_with_real_and_noisy_predictions(scored_db, tmp_path):
    """jobs.bench_dashboard's build (jobs.bench_dashboard.build): no imdb predictions stored, so the pool is
    the imdb test split scored by the trained tfidf-lr; model 0 carries its probabilities, the others noise."""
    db = tmp_path / "bench.duckdb"
    bench_dashboard.build(db, scored_db.db, 3000, 3)
    with duckdb.connect(str(store.view_path(db)), read_only=True) as con:
        assert con.execute("SELECT count(*), count(DISTINCT review_id) FROM reviews").fetchone() == (3000, 3000)
        per_model = dict(con.execute("SELECT model, count(*) FROM predictions GROUP BY model").fetchall())
        assert per_model == {"tfidf-lr": 3000, "tfidf-lr-v1": 3000, "tfidf-lr-v2": 3000}
        con.register("texts", store.texts.every_text(con))
        sample = con.execute("SELECT t.text, p.p_positive FROM predictions p JOIN texts t USING (corpus, review_id) "
                             "WHERE p.model = 'tfidf-lr' ORDER BY review_id LIMIT 20").df()
        assert sample["p_positive"].to_numpy() == pytest.approx(
            load_model("tfidf-lr", scored_db.models_dir).predict_proba(sample["text"].tolist()))
        noisy = con.execute("SELECT corr(a.p_positive, b.p_positive), avg(abs(a.p_positive - b.p_positive)) "
                            "FROM predictions a JOIN predictions b USING (review_id) "
                            "WHERE a.model = 'tfidf-lr' AND b.model = 'tfidf-lr-v2'").fetchone()
        assert 0.5 < noisy[0] < 0.999 and noisy[1] > 0.01
        fields = dict(con.execute("SELECT field, count(*) FROM review_fields GROUP BY field").fetchall())
        assert fields == {"category": 3000, "product_id": 3000, "reviewed": 3000}
        assert con.execute("SELECT count(*) FROM summary_state WHERE corpus = 'imdb'").fetchone()[0] == 1


def test_a_file_of_the_old_layout_is_rewritten_without_keys_or_texts_and_a_rerun_adds_nothing(scored_db, tmp_path):
    """Files written before the big tables lost their PRIMARY KEYs, and their texts went to Parquet parts, get
    both done on open, every row and text kept; the ingest, not a key, keeps rows unique: scoring the same file
    again adds no review and no prediction."""
    db = tmp_path / "old.duckdb"
    store.texts.copy_database(scored_db.db, db)
    keys = {"reviews": "corpus, review_id", "review_fields": "corpus, review_id, field",
            "predictions": "corpus, review_id, model"}
    counts = "SELECT (SELECT count(*) FROM reviews), (SELECT count(*) FROM review_fields), (SELECT count(*) FROM predictions)"
    with duckdb.connect(str(db)) as con:  # the layout before core.store.texts: each text in its reviews row
        every = store.texts.every_text(con)
        con.register("every", every)
        con.execute("ALTER TABLE reviews ADD COLUMN text VARCHAR")
        con.execute("UPDATE reviews SET text = e.text FROM every e WHERE e.corpus = reviews.corpus "
                    "AND e.review_id = reviews.review_id")
        con.execute("DROP TABLE review_texts; DROP TABLE text_parts")
        shutil.rmtree(store.texts.folder(db))
        for table, key in keys.items():
            con.execute(f"ALTER TABLE {table} ADD PRIMARY KEY ({key})")
        before = con.execute(counts).fetchall()
    keyed = "SELECT count(*) FROM duckdb_constraints() WHERE constraint_type = 'PRIMARY KEY' AND table_name = ?"
    with store.connect(db) as con:
        assert [con.execute(keyed, [t]).fetchall()[0][0] for t in keys] == [0, 0, 0]
        assert con.execute(counts).fetchall() == before
        assert "text" not in con.execute("SELECT * FROM reviews LIMIT 0").df().columns
        assert con.execute("SELECT count(*) FROM review_texts").fetchall() == [(0,)]
        moved = store.texts.every_text(con)
    pd.testing.assert_frame_equal(moved.sort_values(["corpus", "rid"], ignore_index=True),
                                  every.sort_values(["corpus", "rid"], ignore_index=True))
    assert score.main([str(scored_db.csv), "--db", str(db), "--corpus", "sample", "--text-col", "review",
                       "--id-col", "id", "--label-col", "sentiment", "--models", "tfidf-lr,vader",
                       "--models-dir", str(scored_db.models_dir)]) == 0
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute(counts).fetchall() == before
        assert con.execute("SELECT count(*) FROM (SELECT DISTINCT corpus, review_id, model FROM predictions)"
                           ).fetchall() == [(before[0][2],)]
