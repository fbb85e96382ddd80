"""Corpora, their input files and splits, and their reviews and kept columns: the writes and the reads
of ingest and training."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from core.store import texts
from core.store.connection import registered


def upsert_corpus(con: duckdb.DuckDBPyConnection, corpus: str, source: str, details: dict) -> None:
    con.execute(
        "INSERT INTO corpora (corpus, source, details) VALUES (?, ?, ?) "
        "ON CONFLICT (corpus) DO UPDATE SET source = excluded.source, details = excluded.details",
        [corpus, source, json.dumps(details)],
    )


def corpus_files(con: duckdb.DuckDBPyConnection, corpus: str) -> dict[str, str]:
    """fingerprint -> path of every input file stored under ``corpus``."""
    return {fp: f["path"] for fp, f in corpus_details(con, corpus).get("files", {}).items()}


def record_corpus_file(con: duckdb.DuckDBPyConnection, corpus: str, path: str, fingerprint: str,
                       columns: dict) -> None:
    """Add an input file to the corpus's record (its latest file becomes the corpus's source)."""
    details = corpus_details(con, corpus)
    details.setdefault("files", {}).setdefault(fingerprint, {}).update({"path": path, "columns": columns})
    upsert_corpus(con, corpus, path, details)


def mark_file_read(con: duckdb.DuckDBPyConnection, corpus: str, fingerprint: str, records: int) -> None:
    """Record that every record of an input file has been stored (as a review or a reject)."""
    details = corpus_details(con, corpus)
    details.setdefault("files", {}).setdefault(fingerprint, {})["read"] = records
    upsert_corpus(con, corpus, corpus_source(con, corpus), details)


def corpus_source(con: duckdb.DuckDBPyConnection, corpus: str) -> str | None:
    row = con.execute("SELECT source FROM corpora WHERE corpus = ?", [corpus]).fetchone()
    return row[0] if row else None


def file_read(con: duckdb.DuckDBPyConnection, corpus: str, fingerprint: str) -> int | None:
    """The records of an input file stored to its end by an earlier run; None if no run read it whole."""
    return corpus_details(con, corpus).get("files", {}).get(fingerprint, {}).get("read")


def file_unscored(con: duckdb.DuckDBPyConnection, corpus: str, fingerprint: str, models: Sequence[str]) -> int:
    """How many (review, model) pairs of the reviews stored from one input file still lack a prediction."""
    if not models:
        return 0
    return con.execute(
        "SELECT count(*) FROM reviews r CROSS JOIN (SELECT unnest($models) AS model) m "
        "WHERE r.corpus = $corpus AND r.source = $fp AND NOT EXISTS (SELECT 1 FROM predictions p "
        "WHERE p.corpus = r.corpus AND p.review_id = r.review_id AND p.model = m.model)",
        {"models": list(models), "corpus": corpus, "fp": fingerprint}).fetchone()[0]


def corpus_details(con: duckdb.DuckDBPyConnection, corpus: str) -> dict:
    """The corpus's details (cleaning counts, input files, split recipe); {} for an unknown corpus."""
    row = con.execute("SELECT details FROM corpora WHERE corpus = ?", [corpus]).fetchone()
    return json.loads(row[0] or "{}") if row else {}


def _set_detail(con: duckdb.DuckDBPyConnection, corpus: str, key: str, value) -> None:
    details = corpus_details(con, corpus)
    details[key] = value
    con.execute("UPDATE corpora SET details = ? WHERE corpus = ?", [json.dumps(details), corpus])


def set_split_recipe(con: duckdb.DuckDBPyConnection, corpus: str, recipe: dict) -> None:
    """Record how the corpus's splits were made (core.splits): drawn with a seed, or a column of the file."""
    _set_detail(con, corpus, "split", recipe)


def unsplit_labelled(con: duckdb.DuckDBPyConnection, corpus: str) -> pd.DataFrame:
    """review_id and label of the labelled reviews that have no split yet."""
    return con.execute(
        "SELECT review_id, label FROM reviews WHERE corpus = ? AND split IS NULL AND label IS NOT NULL",
        [corpus]).df()


def _changed(con: duckdb.DuckDBPyConnection, corpus: str) -> None:
    """The corpus's stored reviews changed (not only grew): the next publish rebuilds its summaries whole
    (core.store.summarise.refresh); appended rows need no call."""
    con.execute("DELETE FROM summary_state WHERE corpus = ?", [corpus])


def set_splits(con: duckdb.DuckDBPyConnection, corpus: str, splits: pd.DataFrame) -> None:
    """splits columns: review_id, split. Only reviews without a split get one: a split is never redrawn."""
    _changed(con, corpus)
    with registered(con, "_splits", splits[["review_id", "split"]]):
        con.execute(
            "UPDATE reviews SET split = s.split FROM _splits s "
            "WHERE reviews.corpus = ? AND reviews.review_id = s.review_id AND reviews.split IS NULL", [corpus])


def split_counts(con: duckdb.DuckDBPyConnection, corpus: str) -> pd.DataFrame:
    """Reviews per split and label (split NULL: not in any split; label NULL: unlabelled)."""
    return con.execute(
        "SELECT split, label, count(*) AS n FROM reviews WHERE corpus = ? GROUP BY ALL ORDER BY ALL", [corpus]).df()


def corpus_exists(con: duckdb.DuckDBPyConnection, corpus: str) -> bool:
    return con.execute("SELECT count(*) FROM corpora WHERE corpus = ?", [corpus]).fetchone()[0] > 0


def next_rid(con: duckdb.DuckDBPyConnection, corpus: str) -> int:
    """The rid the corpus's next stored review gets (reviews.rid: numbers in the order stored)."""
    return int(con.execute("SELECT coalesce(max(rid), -1) + 1 FROM reviews WHERE corpus = ?", [corpus]).fetchall()[0][0])


def insert_reviews(con: duckdb.DuckDBPyConnection, corpus: str, df: pd.DataFrame) -> None:
    """df columns: review_id, text, label, split, source_row and optionally source (the input file's
    fingerprint), of reviews the corpus does not hold yet (the caller checks: core.ingest). An append: the
    summaries take it in at the next publish by what it added (core.store.summarise). The texts are staged
    in review_texts, and written to a Parquet part once enough wait (core.store.texts)."""
    if df.empty:
        return
    frame = df.assign(corpus=corpus, source=df.get("source", None),
                      rid=np.arange(len(df), dtype=np.int64) + next_rid(con, corpus))[
        ["corpus", "review_id", "text", "label", "split", "source_row", "source", "rid"]]
    # Arrow: the texts become C strings once, not once per insert below
    with registered(con, "_new_reviews", pa.Table.from_pandas(frame, preserve_index=False)):
        con.execute(
            "INSERT INTO reviews (corpus, review_id, label, split, source_row, n_chars, source, rid) "
            "SELECT corpus, review_id, label, split, source_row, length(text), source, rid FROM _new_reviews"
        )
        con.execute("INSERT INTO review_texts SELECT corpus, rid, review_id, text FROM _new_reviews")
    texts.spill(con)


def insert_fields(con: duckdb.DuckDBPyConnection, corpus: str, df: pd.DataFrame) -> None:
    """df columns: review_id, field, kind, text_value, num_value, time_value (core.columns.long_form), of
    reviews stored in the same transaction."""
    if df.empty:
        return
    with registered(con, "_new_fields", df.assign(corpus=corpus)[
        ["corpus", "review_id", "field", "kind", "text_value", "num_value", "time_value"]]):
        con.execute("INSERT INTO review_fields SELECT corpus, review_id, field, kind, text_value, num_value, "
                    "time_value FROM _new_fields")


def set_field_kinds(con: duckdb.DuckDBPyConnection, corpus: str, kinds: dict[str, dict]) -> None:
    """Record the kind (and datetime format) of each kept column, beside those already recorded: every later
    file of the corpus is read the same way."""
    known = corpus_details(con, corpus).get("fields", {})
    if any(known.get(name) != how for name, how in kinds.items()):
        _changed(con, corpus)  # a new column (or kind): the summaries' columns and slices change
    _set_detail(con, corpus, "fields", {**known, **kinds})


def existing_reviews(con: duckdb.DuckDBPyConnection, corpus: str, ids: Sequence[str]) -> pd.DataFrame:
    """review_id, source_row and source of the given ids that are already stored for ``corpus``."""
    with registered(con, "_ids", pd.DataFrame({"review_id": pd.Series(list(ids), dtype=object)})):
        return con.execute(
            "SELECT r.review_id, r.source_row, r.source FROM reviews r JOIN _ids USING (review_id) WHERE r.corpus = ?",
            [corpus],
        ).df()


def review(con: duckdb.DuckDBPyConnection, corpus: str, review_id: str) -> dict | None:
    """review_id, text, label and split of one stored review, or None."""
    rows = con.execute("SELECT rid, review_id, label, split FROM reviews WHERE corpus = ? AND review_id = ?",
                       [corpus, review_id]).df()
    if not rows.empty:
        found = texts.texts_of(con, corpus, [int(rows["rid"].iloc[0])])
        rows = rows.merge(found[["rid", "text"]], on="rid")[["review_id", "text", "label", "split"]]
    return None if rows.empty else rows.iloc[0].to_dict()


def stored_id_hashes(con: duckdb.DuckDBPyConnection, corpus: str) -> np.ndarray:
    """DuckDB's 64-bit hash of every review_id stored for ``corpus`` (8 bytes per review)."""
    return con.execute("SELECT hash(review_id) AS h FROM reviews WHERE corpus = ?", [corpus]).fetchnumpy()["h"]


def id_hashes(con: duckdb.DuckDBPyConnection, ids: Sequence[str]) -> np.ndarray:
    """DuckDB's 64-bit hash of each of ``ids``, in order (the same function as ``stored_id_hashes``)."""
    with registered(con, "_ids", pd.DataFrame({"review_id": pd.Series(list(ids), dtype=object)})):
        return con.execute("SELECT hash(review_id) AS h FROM _ids").fetchnumpy()["h"]


def iter_review_chunks(
    con: duckdb.DuckDBPyConnection, corpus: str, split: str | None, chunk_rows: int
) -> Iterator[pd.DataFrame]:
    """Stored reviews of a corpus (optionally one split) in source_row order, chunk by chunk."""
    last = -1
    while True:
        df = con.execute(
            "SELECT rid, review_id, label, split, source_row FROM reviews "
            "WHERE corpus = ? AND (? IS NULL OR split = ?) AND source_row > ? "
            "ORDER BY source_row LIMIT ?",
            [corpus, split, split, last, chunk_rows],
        ).df()
        if df.empty:
            return
        last = int(df["source_row"].iloc[-1])
        found = texts.texts_of(con, corpus, df["rid"].tolist())[["rid", "text"]]
        yield df.merge(found, on="rid", how="left")[["review_id", "text", "label", "split", "source_row"]]


def count_reviews(con: duckdb.DuckDBPyConnection, corpus: str, split: str | None = None) -> int:
    return con.execute(
        "SELECT count(*) FROM reviews WHERE corpus = ? AND (? IS NULL OR split = ?)", [corpus, split, split]
    ).fetchone()[0]


def load_split(con: duckdb.DuckDBPyConnection, corpus: str, split: str) -> pd.DataFrame:
    """review_id, text and y (1 = positive) of the binary-labelled reviews of one split, in a stable order."""
    text, params = texts.source(con, corpus)
    return con.execute(
        f"SELECT r.review_id, t.text, (r.label = 'positive')::INTEGER AS y FROM reviews r JOIN {text} t USING (rid) "
        "WHERE r.corpus = $corpus AND r.split = $split AND r.label IN ('positive', 'negative') ORDER BY r.source_row",
        {"corpus": corpus, "split": split, **params},
    ).df()
