"""Predictions, rejects, runs, models, speed, and the evaluation's metrics and curves: writes and reads."""

from __future__ import annotations

import json
from collections.abc import Sequence

import duckdb
import numpy as np
import pandas as pd

from core.errors import StoreError
from core.store.connection import registered, transaction


def models_done(con: duckdb.DuckDBPyConnection, corpus: str, model: str, ids: Sequence[str]) -> set[str]:
    """Which of ``ids`` already have a prediction from ``model`` (a resumed run skips them)."""
    with registered(con, "_ids", pd.DataFrame({"review_id": pd.Series(list(ids), dtype=object)})):
        rows = con.execute(
            "SELECT p.review_id FROM predictions p JOIN _ids USING (review_id) WHERE p.corpus = ? AND p.model = ?",
            [corpus, model],
        ).fetchall()
    return {r[0] for r in rows}


def insert_predictions(
    con: duckdb.DuckDBPyConnection, corpus: str, model: str, ids: Sequence[str], p: np.ndarray, run_id: str
) -> None:
    """Predictions of reviews that lack one from ``model`` (the caller checks: models_done). An append, as
    insert_reviews: the next publish takes the run's predictions in by their run_id."""
    frame = pd.DataFrame({"review_id": pd.Series(list(ids), dtype=object), "p": np.asarray(p, dtype=np.float64)})
    with registered(con, "_preds", frame):
        con.execute(
            "INSERT INTO predictions SELECT ?, review_id, ?, p, CASE WHEN p >= 0.5 THEN 'positive' "
            "ELSE 'negative' END, ? FROM _preds",
            [corpus, model, run_id],
        )


def insert_rejects(con: duckdb.DuckDBPyConnection, corpus: str, df: pd.DataFrame, run_id: str) -> None:
    """df columns: location, review_id, reason, excerpt."""
    if df.empty:
        return
    with registered(con, "_rej", df[["location", "review_id", "reason", "excerpt"]]):
        con.execute(
            "INSERT INTO rejects SELECT ?, location, review_id, reason, excerpt, ? FROM _rej ON CONFLICT DO NOTHING",
            [corpus, run_id],
        )


# ---------------------------------------------------------------- runs, models, training log, speed


def start_run(con: duckdb.DuckDBPyConnection, run_id: str, job: str, corpus: str, source: str, models: list[str]):
    con.execute(
        "INSERT INTO runs (run_id, job, corpus, input, models, started_at, status) "
        "VALUES (?, ?, ?, ?, ?, current_timestamp, 'running')",
        [run_id, job, corpus, source, ",".join(models)],
    )


def close_stale_runs(con: duckdb.DuckDBPyConnection) -> int:
    """Mark runs still 'running' as 'interrupted'; call only while holding the file read-write (then no
    other job can be writing it, so their process is gone). Returns how many there were."""
    return con.execute("UPDATE runs SET status = 'interrupted' WHERE status = 'running'").fetchone()[0]


def finish_run(con, run_id: str, rows_read: int, rows_scored: int, rows_rejected: int, seconds: float,
               status: str = "finished", timing: dict | None = None) -> None:
    """timing (optional) keys: read_seconds, model_seconds, db_seconds, engine, arithmetic (a dict).
    Raises StoreError (a full disk, say) with DuckDB's error attached."""
    timing = timing or {}
    arithmetic = json.dumps(timing["arithmetic"]) if timing.get("arithmetic") else None
    try:
        con.execute(
            "UPDATE runs SET finished_at = current_timestamp, rows_read = ?, rows_scored = ?, rows_rejected = ?, "
            "seconds = ?, status = ?, read_seconds = ?, model_seconds = ?, db_seconds = ?, engine = ?, "
            "arithmetic = ? WHERE run_id = ?",
            [rows_read, rows_scored, rows_rejected, seconds, status, timing.get("read_seconds"),
             timing.get("model_seconds"), timing.get("db_seconds"), timing.get("engine"), arithmetic, run_id],
        )
    except duckdb.Error as e:
        raise StoreError(f"could not record the end of run {run_id}: {e}") from e


def record_model(con: duckdb.DuckDBPyConnection, info: dict, history: list[dict],
                 terms: list[dict] | None = None) -> None:
    """info keys: model, kind, preset, hyperparams (dict), n_params, bytes_on_disk, train_seconds, device,
    train_rows, trained_on (a corpus; None for vader), train_classes (label -> train reviews offered).
    history: one dict per epoch with epoch, train_loss, val_loss, train_acc, val_acc, seconds.
    terms: the loss curve by term, dicts of step, examples, term, value (a model's ``loss_curve``)."""
    with transaction(con):
        for table in ("models", "training_log", "training_terms"):
            con.execute(f"DELETE FROM {table} WHERE model = ?", [info["model"]])
        con.execute(
            "INSERT INTO models (model, kind, preset, hyperparams, n_params, bytes_on_disk, train_seconds, device, "
            "trained_at, train_rows, trained_on, train_classes) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, coalesce(?::TIMESTAMP, current_timestamp), ?, ?, ?)",
            [info["model"], info["kind"], info.get("preset"), json.dumps(info.get("hyperparams") or {}),
             info.get("n_params"), info.get("bytes_on_disk"), info.get("train_seconds"), info.get("device"),
             info.get("trained_at"), info.get("train_rows"), info.get("trained_on"),
             json.dumps(info["train_classes"]) if info.get("train_classes") else None],
        )
        for h in history:
            con.execute(
                "INSERT INTO training_log VALUES (?, ?, ?, ?, ?, ?, ?)",
                [info["model"], h["epoch"], h.get("train_loss"), h.get("val_loss"), h.get("train_acc"),
                 h.get("val_acc"), h.get("seconds")],
            )
        if terms:
            con.executemany("INSERT INTO training_terms VALUES (?, ?, ?, ?, ?)",
                            [[info["model"], t["step"], t["examples"], t["term"], t["value"]] for t in terms])


def has_model(con: duckdb.DuckDBPyConnection, model: str) -> bool:
    return con.execute("SELECT count(*) FROM models WHERE model = ?", [model]).fetchone()[0] > 0


def record_speed(con, model: str, corpus: str, rows: int, seconds: float, peak_rss_mb: float | None) -> None:
    con.execute(
        "INSERT INTO model_speed (model, corpus, rows, seconds, rows_per_s, peak_rss_mb) VALUES (?, ?, ?, ?, ?, ?)",
        [model, corpus, rows, seconds, rows / seconds if seconds > 0 else None, peak_rss_mb],
    )


# ---------------------------------------------------------------- evaluation


def evaluation_sets(con: duckdb.DuckDBPyConnection, corpus: str | None) -> list[tuple[str, str]]:
    """(corpus, split) pairs that have binary labels and predictions; user corpora use split 'all'."""
    rows = con.execute(
        "SELECT DISTINCT r.corpus, coalesce(r.split, 'all') FROM reviews r "
        "JOIN predictions p ON p.corpus = r.corpus AND p.review_id = r.review_id "
        "WHERE r.label IN ('positive', 'negative') AND (? IS NULL OR r.corpus = ?) "
        "AND coalesce(r.split, 'all') <> 'train' ORDER BY 1, 2",
        [corpus, corpus],
    ).fetchall()
    return [(c, s) for c, s in rows]


def labelled_predictions(con: duckdb.DuckDBPyConnection, corpus: str, split: str) -> pd.DataFrame:
    """model, y (1 = positive), p_positive for one evaluation set, binary labels only."""
    return con.execute(
        "SELECT p.model, (r.label = 'positive')::TINYINT AS y, p.p_positive FROM predictions p "
        "JOIN reviews r ON p.corpus = r.corpus AND p.review_id = r.review_id "
        "WHERE p.corpus = ? AND coalesce(r.split, 'all') = ? AND r.label IN ('positive', 'negative') "
        "ORDER BY p.model, r.review_id",
        [corpus, split],
    ).df()


def replace_metrics(con, corpus: str, split: str, model: str, row: dict, curves: pd.DataFrame) -> None:
    """Store one model's metrics and curve points for one evaluation set, replacing older ones."""
    with transaction(con):
        con.execute("DELETE FROM metrics WHERE corpus = ? AND split = ? AND model = ?", [corpus, split, model])
        con.execute("DELETE FROM curves WHERE corpus = ? AND split = ? AND model = ?", [corpus, split, model])
        cols = ["n", "accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "brier", "ece",
                "accuracy_lo", "accuracy_hi", "roc_auc_lo", "roc_auc_hi", "tn", "fp", "fn", "tp"]
        con.execute(
            f"INSERT INTO metrics (corpus, split, model, {', '.join(cols)}) VALUES ({', '.join('?' * (len(cols) + 3))})",
            [corpus, split, model, *[row[c] for c in cols]],
        )
        frame = curves.assign(corpus=corpus, split=split, model=model)
        with registered(con, "_curves", frame):
            con.execute("INSERT INTO curves SELECT corpus, split, model, curve, x, y, threshold FROM _curves")


def labelled_corpora(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str | None]]:
    """(corpus, split to evaluate on) for every corpus with binary labels: 'test' where it has a test
    split, None (all its reviews) where it has no split at all."""
    rows = con.execute(
        "SELECT corpus, bool_or(split = 'test') FROM reviews WHERE label IN ('positive', 'negative') "
        "GROUP BY corpus ORDER BY corpus").fetchall()
    return [(corpus, "test" if has_test else None) for corpus, has_test in rows]
