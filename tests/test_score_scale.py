"""The shortcuts jobs.score takes at scale give the same results as the exact queries."""

from __future__ import annotations

import duckdb
import numpy as np

from core.ingest import StoredIds
from jobs import make_corpus, score
from tests.conftest import write_csv


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
