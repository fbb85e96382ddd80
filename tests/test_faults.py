"""Fault injection: kills, interruptions, a full disk, files that collide, options that contradict.

Every test here failed before core/ingest.py (issue 11). The reader's own cases (huge fields, broken
quoting, null markers, Parquet types) are in test_readers.py, evaluate's in test_evaluate_faults.py.
The long kill loop, the run-status check after kills and the second-file check are marked slow: `make test-slow`.
"""

from __future__ import annotations

import errno
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from core import store
from core.errors import StoreError
from core.ingest import Ingest
from core.local_engine import Pacer, score_local
from core.models import load_model
from core.paths import REPO_ROOT
from core.progress import Progress
from core.readers import Columns
from core.store.writer import Writer
from tests.helpers import JOIN_TEXTS, q, write_csv

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def imdb_csv(ws, path: Path, n: int, offset: int = 0, ids: bool = True) -> Path:
    """n real IMDB reviews (any split), with distinct ids s00000... unless ids=False."""
    rows = q(ws.db, f"SELECT text, label FROM reviews{JOIN_TEXTS} WHERE corpus = 'imdb' ORDER BY source_row "
                    "LIMIT ? OFFSET ?", [n, offset])
    if not ids:
        return write_csv(path, ["review", "sentiment"], [list(r) for r in rows])
    return write_csv(path, ["id", "review", "sentiment"], [[f"s{i + offset:05d}", *r] for i, r in enumerate(rows)])


def job(ws, csv: Path, db: Path, corpus: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "jobs.score", str(csv), "--db", str(db), "--corpus", corpus, "--text-col",
            "review", "--label-col", "sentiment", "--models", "tfidf-lr,vader", "--models-dir", str(ws.models_dir),
            *extra]


def run(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=False, cwd=REPO_ROOT, env=ENV, capture_output=True, text=True)


# ---------------------------------------------------------------- identity of rows across files


@pytest.mark.slow  # make test-slow
def test_a_second_file_without_ids_is_stored_whole_and_the_same_file_twice_is_harmless(scored_db, tmp_path):
    a = imdb_csv(scored_db, tmp_path / "a.csv", 40, ids=False)
    b = imdb_csv(scored_db, tmp_path / "b.csv", 30, offset=40, ids=False)
    db = tmp_path / "ids.duckdb"
    for path in (a, b, a, b):  # before: b stored 0 of its rows (row positions taken for a's ids), exit 0
        assert run(job(scored_db, path, db, "c")).returncode == 0
    assert q(db, "SELECT count(*), count(DISTINCT text) FROM texts") == [(70, 70)]
    assert dict(q(db, "SELECT model, count(*) FROM predictions GROUP BY 1")) == {"tfidf-lr": 70, "vader": 70}
    assert q(db, "SELECT count(*) FROM rejects") == [(0,)]


def test_another_files_ids_at_the_same_rows_are_duplicates_not_resumes(scored_db, tmp_path):
    first = imdb_csv(scored_db, tmp_path / "first.csv", 20)
    other = tmp_path / "other.csv"  # the same ids at the same row positions, other reviews
    texts = [r[0] for r in q(scored_db.db, f"SELECT text FROM reviews{JOIN_TEXTS} WHERE corpus = 'imdb' "
                                           "ORDER BY source_row LIMIT 20 OFFSET 1000")]
    write_csv(other, ["id", "review", "sentiment"], [[f"s{i:05d}", t, "positive"] for i, t in enumerate(texts)])
    db = tmp_path / "dup.duckdb"
    assert run(job(scored_db, first, db, "c", "--id-col", "id")).returncode == 0
    r = run(job(scored_db, other, db, "c", "--id-col", "id"))
    assert r.returncode == 0, r.stderr
    # before: taken for the first file's own rows from an earlier run, so silently skipped
    reasons = [x[0] for x in q(db, "SELECT reason FROM rejects")]
    assert len(reasons) == 20
    assert all(x.startswith(f"duplicate review_id: already stored from row {i} of {first}")
               for i, x in enumerate(sorted(reasons, key=lambda s: int(s.split("row ")[1].split()[0]))))
    assert "rejects stored for this corpus: duplicate review_id=20" in r.stderr
    # a third such file: its duplicates sit at the same rows as the second's and are kept too (the location
    # names the file; before, they collided with the second file's rejects and were dropped)
    third = tmp_path / "third.csv"
    write_csv(third, ["id", "review", "sentiment"], [[f"s{i:05d}", t, "negative"] for i, t in enumerate(texts)])
    assert run(job(scored_db, third, db, "c", "--id-col", "id")).returncode == 0
    assert q(db, "SELECT count(*) FROM rejects WHERE location LIKE '% of third.csv (%'") == [(20,)]
    assert q(db, "SELECT count(*) FROM rejects") == [(40,)]


# ---------------------------------------------------------------- clear errors, exit 2


@pytest.mark.parametrize("case", ["directory", "same-columns", "chunk-rows-0", "db-on-read-only-path",
                                  "split-with-file", "db-is-directory"])
def test_contradictions_and_impossible_paths_end_with_one_clear_line(scored_db, tmp_path, case):
    csv = imdb_csv(scored_db, tmp_path / "r.csv", 5)
    db = tmp_path / "e.duckdb"
    cmd, message = {
        "directory": (job(scored_db, tmp_path / "x.csv", db, "c"), "is a directory"),
        "same-columns": (job(scored_db, csv, db, "c", "--id-col", "review"), "must differ"),
        "chunk-rows-0": (job(scored_db, csv, db, "c", "--chunk-rows", "0"), "must be at least 1"),
        "db-on-read-only-path": (job(scored_db, csv, Path("/proc/no-such-folder/x.duckdb"), "c"),
                                 "cannot create the folder /proc/no-such-folder"),
        "split-with-file": (job(scored_db, csv, db, "c", "--split", "test"), "--split selects stored reviews"),
        "db-is-directory": (job(scored_db, csv, tmp_path, "c"), "is a directory, not a DuckDB file"),
    }[case]
    if case == "directory":
        (tmp_path / "x.csv").mkdir()
    r = run(cmd)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr
    assert "Traceback" not in r.stderr


def test_ctrl_c_while_starting_is_one_line_not_a_traceback(scored_db, tmp_path):
    csv = imdb_csv(scored_db, tmp_path / "r.csv", 5)
    # Ctrl-C must reach the job whatever this test runner inherited: a shell without job control starts
    # background commands with SIGINT ignored, and an ignored signal stays ignored across exec (a handled
    # one is reset to the default), so handle it here while the job starts
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen(job(scored_db, csv, tmp_path / "i.duckdb", "c"), cwd=REPO_ROOT, env=ENV,
                                stderr=subprocess.PIPE, text=True)
    finally:
        signal.signal(signal.SIGINT, previous)
    time.sleep(0.3)  # still importing pandas/duckdb/scikit-learn
    proc.send_signal(signal.SIGINT)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode != 0
    assert "Traceback" not in err and "interrupted" in err


# ---------------------------------------------------------------- state that tells the truth


@pytest.mark.slow  # make test-slow
def test_runs_end_interrupted_failed_or_finished_and_killed_runs_are_closed(scored_db, tmp_path):
    csv = imdb_csv(scored_db, tmp_path / "r.csv", 1500)
    db = tmp_path / "runs.duckdb"
    for sig in (signal.SIGKILL, signal.SIGTERM):
        proc = subprocess.Popen(job(scored_db, csv, db, "c", "--chunk-rows", "100"), cwd=REPO_ROOT, env=ENV,
                                stderr=subprocess.PIPE, text=True)
        while not proc.stderr.readline().startswith("[score c]"):  # scoring: a run row is 'running'
            assert proc.poll() is None
        proc.send_signal(sig)
        proc.communicate(timeout=60)
    # the SIGKILLed run could not record its end: the next job (SIGTERM's) found it 'running' and closed it
    assert [s for (s,) in q(db, "SELECT status FROM runs ORDER BY started_at")] == ["interrupted", "interrupted"]

    missing = run(job(scored_db, tmp_path / "missing.csv", db, "c"))
    assert missing.returncode == 2 and "no such file" in missing.stderr
    assert q(db, "SELECT status, input FROM runs ORDER BY started_at DESC LIMIT 1") == [
        ("failed", str(tmp_path / "missing.csv"))]
    # before: the failed run had overwritten the corpus's recorded source and column mapping
    assert q(db, "SELECT source FROM corpora WHERE corpus = 'c'") == [(str(csv),)]

    assert run(job(scored_db, csv, db, "c")).returncode == 0
    assert q(db, "SELECT status FROM runs ORDER BY started_at DESC LIMIT 1") == [("finished",)]
    assert dict(q(db, "SELECT model, count(*) FROM predictions GROUP BY 1")) == {"tfidf-lr": 1500, "vader": 1500}


def test_progress_moves_within_a_chunk_and_never_claims_the_end_early(scored_db, tmp_path):
    csv = imdb_csv(scored_db, tmp_path / "r.csv", 1000)
    lines: list[str] = []
    progress = Progress("score c", emit=lines.append, every=0.0)
    models = {"vader": load_model("vader", scored_db.models_dir)}
    with (store.connect(tmp_path / "p.duckdb") as con,
          Ingest(con, "c", list(models), "run", paths=[csv], columns=Columns("review", "id", "sentiment"),
                 chunk_rows=1000) as ingest):
        score_local(ingest, models, progress, batch_seconds=0.05)
    # one 1,000-row chunk: before, one line at its end; now a line per batch (of 2 s by default)
    assert len(lines) >= 3, lines
    percents = [int(line.split("(")[1].split("%")[0]) for line in lines]
    assert percents == sorted(percents) and percents[0] < 50 and percents[-1] == 100


def test_pacer_sizes_batches_to_the_models_speed():
    pacer, sizes = Pacer(seconds=0.05, first=4), []
    for batch in pacer.batches(list(range(2000)), [1] * 2000):
        time.sleep(len(batch) * 0.0005)  # a model of 2,000 reviews/s: 0.05 s is 100 reviews
        sizes.append(len(batch))
    assert sizes[0] == 4 and sum(sizes) == 2000
    assert 50 <= np.median(sizes[2:]) <= 150, sizes


def test_invalid_probabilities_are_counted_rejects_not_predictions(tmp_path):
    with store.connect(tmp_path / "nan.duckdb") as con:
        with Ingest(con, "c", ["m"], "run") as ingest:
            ingest.write("m", ["a", "b", "c", "d", "e"], np.array([0.2, np.nan, np.inf, 1.5, -0.1]))
        assert con.execute("SELECT review_id, p_positive FROM predictions").fetchall() == [("a", 0.2)]
        reasons = dict(con.execute("SELECT review_id, reason FROM rejects").fetchall())
    assert sorted(reasons) == ["b", "c", "d", "e"] and "returned nan" in reasons["b"]
    assert ingest.tally.scored["m"] == 1 and ingest.tally.rejected == 4


def test_the_writer_commits_in_order_stops_at_a_failed_write_and_commits_what_it_was_given(tmp_path):
    """core.store.writer: writes are committed in the order submitted, also those still queued when the caller
    stops (close); a failed write is raised once to the caller, and no write after it is committed."""
    def add(con, i):
        time.sleep(0.01)  # slower than the caller, so writes queue up
        con.execute("INSERT INTO t VALUES (?)", [i])

    def fail(con):
        con.execute("INSERT INTO missing VALUES (1)")

    with store.connect(tmp_path / "w.duckdb") as con:
        con.execute("CREATE TABLE t (i INTEGER)")
        writer = Writer(con, depth=50)
        for i in range(40):
            writer.submit(add, i)
        writer.close()  # the caller stops: what it handed over is committed
        assert con.execute("SELECT list(i ORDER BY rowid) FROM t").fetchall()[0][0] == list(range(40))

        writer = Writer(con, depth=50)
        writer.submit(add, 40)
        writer.submit(fail)
        writer.submit(add, 41)
        with pytest.raises(Exception, match="missing"):
            writer.flush()
        writer.close()  # raised once already: not again
        assert con.execute("SELECT max(i) FROM t").fetchall()[0][0] == 40


# ---------------------------------------------------------------- a full disk while publishing


def test_disk_full_while_publishing_keeps_the_results_and_leaves_no_temp_file(scored_db, tmp_path, monkeypatch):
    db = tmp_path / "full.duckdb"
    store.texts.copy_database(scored_db.db, db)
    dead = store.view_path(db).with_name(store.view_path(db).name + ".tmp999999999")  # from a killed publish
    dead.write_bytes(b"half a copy")

    def copy_until_full(src, dst, *args, **kwargs):  # what shutil does when the disk fills mid-copy
        Path(dst).write_bytes(Path(src).read_bytes()[:4096])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(shutil, "copyfile", copy_until_full)
    with pytest.raises(StoreError, match="every result is saved in .*No space left"):
        store.publish(db)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full.duckdb", "full.texts"]  # no temp copy, dead one removed
    monkeypatch.undo()
    assert store.publish(db).exists()  # and the next publish works


# ---------------------------------------------------------------- kills at random points


def kill_loop(ws, tmp_path: Path, kills: int, n: int, seed: int) -> None:
    csv = imdb_csv(ws, tmp_path / "k.csv", n)
    db = tmp_path / "k.duckdb"
    cmd = job(ws, csv, db, "k", "--id-col", "id", "--chunk-rows", "500")
    rng = random.Random(seed)
    for k in range(kills):
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=ENV, stderr=subprocess.PIPE, text=True)
        if k == 0:  # anywhere: imports, opening, reading, predicting, committing
            time.sleep(rng.uniform(0.5, 8.0))
        else:  # mid-run: once the job reports progress (its first predictions are committed), at a random time
            deadline = time.time() + 120
            while time.time() < deadline and proc.poll() is None and "[score k]" not in proc.stderr.readline():
                pass
            time.sleep(rng.uniform(0.0, 1.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
    before = q(db, "SELECT count(*) FROM predictions") if db.exists() else [(0,)]
    done = run(cmd)
    assert done.returncode == 0, done.stderr
    interrupted = q(db, "SELECT count(*) FROM runs WHERE status = 'interrupted'")[0][0]
    print(f"{kills} kills: {before[0][0]:,} of {2 * n:,} predictions stored before the last run; "
          f"{interrupted} runs had started and were marked interrupted")  # figures for pytest -s
    assert interrupted >= 1 and before[0][0] < 2 * n  # a kill landed mid-run, before the run was done
    assert q(db, "SELECT count(*), count(DISTINCT review_id) FROM reviews") == [(n, n)]
    assert dict(q(db, "SELECT model, count(*) FROM predictions GROUP BY 1")) == {"tfidf-lr": n, "vader": n}
    assert q(db, "SELECT count(*) FROM (SELECT review_id, model FROM predictions GROUP BY 1, 2 "
                 "HAVING count(*) > 1)") == [(0,)]
    assert q(db, "SELECT count(*) FROM rejects") == [(0,)]
    assert q(db, "SELECT count(*) FROM runs WHERE status = 'running'") == [(0,)]


@pytest.mark.slow  # make test-slow
def test_three_random_kills_lose_and_double_nothing(scored_db, tmp_path):
    kill_loop(scored_db, tmp_path, kills=3, n=2000, seed=1)


@pytest.mark.slow
def test_twenty_random_kills_over_20000_reviews_lose_and_double_nothing(scored_db, tmp_path):
    kill_loop(scored_db, tmp_path, kills=20, n=20_000, seed=2)
