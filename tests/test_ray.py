"""jobs.score --engine ray on a local Ray instance: the same predictions as the local engine, same resume."""

from __future__ import annotations

import os

import duckdb
import pytest

from jobs import score
from tests.helpers import imdb_csv

pytest.importorskip("ray")

MODELS = "tfidf-lr,vader"


def predictions(db) -> dict[tuple[str, str], float]:
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("SELECT review_id, model, p_positive FROM predictions WHERE corpus = 'r'").fetchall()
    return {(i, m): p for i, m, p in rows}


def run(ws, csv, db, *extra: str) -> int:
    return score.main([str(csv), "--db", str(db), "--corpus", "r", "--text-col", "review", "--id-col", "id",
                       "--label-col", "sentiment", "--models", MODELS, "--models-dir", str(ws.models_dir),
                       "--chunk-rows", "100", *extra])


@pytest.fixture(scope="module")
def ray_local():
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a local test instance needs no token
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)  # the engine reuses this instance
    yield
    ray.shutdown()


@pytest.mark.slow  # make test-slow
def test_ray_engine_equals_local_engine_and_resumes(scored_db, tmp_path, ray_local):
    n = 400
    csv = imdb_csv(scored_db.db, tmp_path / "r.csv", n)
    with open(csv, "a", encoding="utf-8") as f:  # two rejects: empty text, unknown label
        f.write("bad1,,positive\nbad2,Nice film,maybe\n")
    local_db, ray_db = tmp_path / "local.duckdb", tmp_path / "ray.duckdb"
    assert run(scored_db, csv, local_db) == 0
    assert run(scored_db, csv, ray_db, "--engine", "ray") == 0

    local, distributed = predictions(local_db), predictions(ray_db)
    assert len(local) == 2 * n
    assert distributed.keys() == local.keys()
    assert all(abs(distributed[k] - local[k]) <= 1e-12 for k in local)
    with duckdb.connect(str(ray_db), read_only=True) as con:
        assert sorted(r[0] for r in con.execute("SELECT review_id FROM rejects").fetchall()) == ["bad1", "bad2"]
        (engine, read_s, db_s), = con.execute("SELECT engine, read_seconds, db_seconds FROM runs").fetchall()
        assert engine == "ray" and read_s > 0 and db_s > 0

    # an interrupted run (here: one model's predictions lost) is completed by a rerun, nothing doubled
    with duckdb.connect(str(ray_db)) as con:
        con.execute("DELETE FROM predictions WHERE model = 'vader' AND review_id IN "
                    "(SELECT review_id FROM predictions WHERE model = 'vader' ORDER BY review_id LIMIT 150)")
    assert run(scored_db, csv, ray_db, "--engine", "ray") == 0
    assert predictions(ray_db).keys() == local.keys()
    with duckdb.connect(str(ray_db), read_only=True) as con:
        assert con.execute("SELECT count(*), count(DISTINCT (review_id, model)) FROM predictions").fetchone() == (
            2 * n, 2 * n)
        assert con.execute("SELECT count(*) FROM rejects").fetchone()[0] == 2
