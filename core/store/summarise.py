"""Building the dashboard's summaries (core.store.summaries) at publish time: every corpus whose summaries are
missing, out of date (a write deleted its summary_state row) or of another layout VERSION is rebuilt, one
transaction per corpus, so the published view never holds half a summary."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import duckdb
import pandas as pd

from core.store import summaries
from core.store.summaries import (
    DISAGREEMENTS,
    SCHEMA,
    SLICED,
    STORED,
    TABLES,
    VERSION,
    SliceDef,
    cube_sql,
    disagreement_sql,
    field_kinds,
    per_review_sql,
    slice_def,
    slices_sql,
    texts_sql,
    time_sql,
    values_sql,
)


def refresh(con: duckdb.DuckDBPyConnection, log: Callable[[str], None] | None = None) -> list[str]:
    """Rebuild the summaries of every corpus with predictions whose summary_state row is gone (the store
    deleted it when it wrote) or of another VERSION; returns those corpora. One transaction per corpus."""
    con.execute(SCHEMA)
    stale = [r[0] for r in con.execute(
        "SELECT DISTINCT corpus FROM predictions WHERE corpus NOT IN "
        "(SELECT corpus FROM summary_state WHERE version = $v) ORDER BY corpus", {"v": VERSION}).fetchall()]
    for corpus in stale:
        t = time.perf_counter()
        if log:
            log(f"building the dashboard's summaries of {corpus} ...")
        con.execute("BEGIN TRANSACTION")
        try:
            _rebuild(con, corpus)
            con.execute("INSERT OR REPLACE INTO summary_state VALUES ($corpus, current_timestamp, $s, $v)",
                        {"corpus": corpus, "s": time.perf_counter() - t, "v": VERSION})
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")
        if log:
            log(f"summaries of {corpus} rebuilt in {time.perf_counter() - t:.1f} s")
    return stale


def _rebuild(con: duckdb.DuckDBPyConnection, corpus: str) -> None:
    def run(sql: str, params: dict) -> pd.DataFrame:
        return con.execute(sql, params).df()

    for (tab,) in con.execute("SELECT tab FROM summary_wide WHERE corpus = $corpus", {"corpus": corpus}).fetchall():
        con.execute(f"DROP TABLE IF EXISTS summary_wide_{int(tab)}")
    for table in TABLES:
        con.execute(f"DELETE FROM {table} WHERE corpus = $corpus", {"corpus": corpus})
    names = [r[0] for r in con.execute("SELECT DISTINCT model FROM predictions WHERE corpus = $corpus ORDER BY model",
                                       {"corpus": corpus}).fetchall()]
    scope = {"corpus": corpus, "names": names}
    _build_rows(con, corpus)  # first: every summary below reads it
    kinds = field_kinds(run, corpus)
    defs = {field: slice_def(run, corpus, field, kind) for field, kind in kinds.items() if kind in SLICED}
    sql, params = cube_sql(None)
    con.execute(f"INSERT INTO summary_cube SELECT $corpus, * FROM ({sql})", {**scope, **params})
    splits = con.execute("SELECT DISTINCT split FROM summary_cube WHERE corpus = $corpus ORDER BY split",
                         {"corpus": corpus}).fetchall()
    for (split,) in splits if len(names) > 1 else []:  # one model disagrees with nobody
        key = {"corpus": corpus, "split": split, "names": names, "key": json.dumps(names)}
        sql, _ = per_review_sql()
        con.execute(f"INSERT INTO summary_agree SELECT $corpus, $split, $key, * FROM ({sql}) ORDER BY rid", key)
        sql, _ = disagreement_sql(agree=True)
        con.execute(f"INSERT INTO summary_disagree SELECT $corpus, $split, $key, * FROM ({sql})",
                    {**key, "limit": DISAGREEMENTS})
    _build_wide(con, corpus, names, kinds, defs)  # after summary_agree: it holds its columns
    for field, d in defs.items():
        sql, params = slices_sql(d, None)
        con.execute(f"INSERT INTO summary_slices SELECT $corpus, c.split, $field, c.* EXCLUDE (split) "
                    f"FROM ({sql}) c", {**scope, **params})
        sql, params = values_sql(d)
        values = con.execute(sql, {**params, "corpus": corpus}).df()
        _insert_values(con, corpus, d, values)
        if d.kind == "datetime":
            sql, params = time_sql(field, None)
            con.execute(f"INSERT INTO summary_time SELECT $corpus, c.split, $field, c.* EXCLUDE (split) FROM ({sql}) c",
                        {**scope, **params})


def _build_rows(con: duckdb.DuckDBPyConnection, corpus: str) -> None:
    """summary_rows and summary_fields: the rows keyed by rid, each table in its reads' order (model or
    field, then rid), so a read of one model's rows skips the others' row groups."""
    con.execute("""CREATE OR REPLACE TEMP TABLE _rid AS
        SELECT review_id, (row_number() OVER (ORDER BY review_id) - 1)::INTEGER AS rid, coalesce(split, 'all') AS split,
               label, n_chars FROM reviews WHERE corpus = $corpus""", {"corpus": corpus})
    con.execute("""INSERT INTO summary_rows
        SELECT $corpus, p.model, r.rid, r.split, r.label, r.n_chars, p.predicted, p.p_positive, p.review_id
        FROM predictions p JOIN _rid r USING (review_id) WHERE p.corpus = $corpus ORDER BY p.model, r.rid""",
                {"corpus": corpus})
    con.execute("""INSERT INTO summary_fields
        SELECT $corpus, f.field, r.rid, f.text_value, f.num_value, f.time_value
        FROM review_fields f JOIN _rid r USING (review_id) WHERE f.corpus = $corpus ORDER BY f.field, r.rid""",
                {"corpus": corpus})
    # the pool: first the POOL review_ids (hash order), then their texts
    con.execute("""CREATE OR REPLACE TEMP TABLE _pool AS SELECT review_id, rid, hash(review_id) AS h FROM _rid
        ORDER BY h LIMIT $pool""", {"pool": summaries.POOL})
    con.execute(f"""INSERT INTO summary_pool SELECT $corpus, p.rid, p.h, t.text FROM _pool p
        JOIN ({texts_sql("SELECT review_id FROM _pool")}) t USING (review_id) ORDER BY p.h""", {"corpus": corpus})
    con.execute("DROP TABLE _rid; DROP TABLE _pool")


def _build_wide(con: duckdb.DuckDBPyConnection, corpus: str, names: list[str], kinds: dict[str, str],
                defs: dict[str, SliceDef]) -> None:
    """summary_wide_<tab> (``Wide``) from summary_rows and summary_fields, in rid order; <tab> is the next
    free number, recorded in summary_wide with the models' and the columns' order."""
    tab = int(con.execute("SELECT coalesce(max(tab), -1) + 1 FROM summary_wide").fetchone()[0])
    fields = list(kinds.items())
    sliced, sparams = [], {}
    for j, (field, _) in enumerate(fields):
        if field in defs:
            value, vparams = defs[field].value_sql(f"c{j}", p=f"v{j}_")
            sliced.append(f", {value} AS s{j}")
            sparams.update(vparams)
    models = ", ".join(f"any_value(p_positive) FILTER (WHERE model = $m{i}) AS p{i}" for i in range(len(names)))
    cols = ", ".join(f"any_value({STORED[kind]}) FILTER (WHERE field = $f{j}) AS c{j}"
                     for j, (_, kind) in enumerate(fields))
    kept = (f", f AS (SELECT rid, {cols} FROM summary_fields WHERE corpus = $corpus GROUP BY rid)" if fields else "")
    con.execute(f"""CREATE TABLE summary_wide_{tab} AS
        WITH p AS (SELECT $corpus AS corpus, rid, any_value(split) AS split, any_value(label) AS label,
                          any_value(n_chars) AS n_chars, any_value(review_id) AS review_id, {models}
                   FROM summary_rows WHERE corpus = $corpus GROUP BY rid){kept},
        a AS (SELECT rid, spread, mean_p, mask FROM summary_agree WHERE corpus = $corpus AND models = $key)
        SELECT *{''.join(sliced)} FROM p {'LEFT JOIN f USING (rid) ' if fields else ''}LEFT JOIN a USING (rid)
        ORDER BY rid""",
                {"corpus": corpus, "key": json.dumps(names), **sparams, **{f"m{i}": m for i, m in enumerate(names)},
                 **{f"f{j}": name for j, (name, _) in enumerate(fields)}})
    slices = [{"field": d.field, "kind": d.kind, "values": list(d.values), "edges": list(d.edges)}
              for d in defs.values()]
    con.execute("INSERT INTO summary_wide VALUES ($corpus, $tab, $models, $fields, $slices)",
                {"corpus": corpus, "tab": tab, "models": json.dumps(names), "fields": json.dumps(fields),
                 "slices": json.dumps(slices)})


def _insert_values(con: duckdb.DuckDBPyConnection, corpus: str, d: SliceDef, values: pd.DataFrame) -> None:
    """values_sql's rows in its order; sliced: a value that is its own slice (not merged into '(other)')."""
    rows = [(corpus, d.field, value, k, int(n), d.kind in ("numeric", "datetime") or value in d.values)
            for k, (value, n) in enumerate(zip(values["value"], values["n"], strict=True))]
    if rows:
        con.executemany("INSERT INTO summary_values VALUES (?, ?, ?, ?, ?, ?)", rows)
