"""Building the dashboard's summaries (core.store.summaries) at publish time: a corpus that only grew is updated by
what was added, any other changed corpus (or one summarised by another layout VERSION) is rebuilt, one
transaction per corpus, so the published view never holds half a summary."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable

import duckdb
import pandas as pd

from core.store import summaries, texts
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
    time_sql,
    values_sql,
)


def refresh(con: duckdb.DuckDBPyConnection, log: Callable[[str], None] | None = None) -> list[str]:
    """Bring the summaries of every corpus with predictions up to date; returns the corpora that changed. A
    corpus that only grew (new reviews with predictions of the models it had) is updated by what was added
    (``_append``); one without a summary_state row (a write that changed stored rows deleted it, or it is new),
    of another VERSION, or that changed any other way is rebuilt (``_rebuild``). One transaction per corpus."""
    con.execute(SCHEMA)
    corpora = [r[0] for r in con.execute("SELECT DISTINCT corpus FROM predictions ORDER BY corpus").fetchall()]
    changed = []
    for corpus in corpora:
        t = time.perf_counter()
        con.execute("BEGIN TRANSACTION")
        try:
            how = _update(con, corpus, log)
            if how:
                con.execute("INSERT OR REPLACE INTO summary_state BY NAME SELECT $corpus AS corpus, "
                            "current_timestamp AS built_at, $s AS seconds, $v AS version, *, "
                            "(SELECT count(*) FROM predictions WHERE corpus = $corpus) AS n_predictions, "
                            "(SELECT count(*) FROM review_fields WHERE corpus = $corpus) AS n_fields, "
                            "(SELECT list(DISTINCT coalesce(run_id, '') ORDER BY 1) FROM predictions "
                            " WHERE corpus = $corpus) AS runs "
                            "FROM (SELECT max(rid) AS max_rid FROM reviews WHERE corpus = $corpus)",
                            {"corpus": corpus, "s": time.perf_counter() - t, "v": VERSION})
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")
        if how:
            changed.append(corpus)
            if log:
                log(f"summaries of {corpus} {how} in {time.perf_counter() - t:.1f} s")
    return changed


def _update(con: duckdb.DuckDBPyConnection, corpus: str, log: Callable[[str], None] | None) -> str | None:
    """Update one corpus's summaries: 'rebuilt', 'updated' (by what was added) or None (already current)."""
    state = next(iter(con.execute("SELECT version, max_rid, n_predictions, n_fields, runs FROM summary_state "
                                  "WHERE corpus = $corpus", {"corpus": corpus}).fetchall()), None)
    if state is not None and state[0] == VERSION and state[1] is not None:
        added = _added(con, corpus, *state[1:])
        if added is None:
            return None
        if added >= 0:
            if log:
                log(f"adding {added:,} predictions to the dashboard's summaries of {corpus} ...")
            if _append(con, corpus, after=state[1]):
                return "updated"
    if log:
        log(f"building the dashboard's summaries of {corpus} ...")
    _rebuild(con, corpus)
    return "rebuilt"


def _added(con: duckdb.DuckDBPyConnection, corpus: str, after: int, n_predictions: int, n_fields: int,
           runs: list[str]) -> int | None:
    """How many predictions were added since the summaries were built (None: nothing changed), staged in
    the temp tables _new (predictions of runs not yet summarised, beside their review's columns) and _newf
    (the field rows of the reviews above rid ``after``); -1 where more than that changed (predictions of
    reviews already summarised, of a new model, field rows of older reviews): rebuild."""
    scope = {"corpus": corpus, "after": after}
    now = con.execute("SELECT (SELECT count(*) FROM predictions WHERE corpus = $corpus), "
                      "(SELECT count(*) FROM review_fields WHERE corpus = $corpus), "
                      "(SELECT count(*) FROM reviews WHERE corpus = $corpus AND rid > $after)", scope).fetchall()[0]
    if now[0] == n_predictions and now[1] == n_fields and now[2] == 0:
        return None
    # the new reviews are few: each join below builds its hash table on them, never on every stored review
    con.execute("""CREATE OR REPLACE TEMP TABLE _new AS
        SELECT p.model, r.rid, coalesce(r.split, 'all') AS split, r.label, r.n_chars, p.predicted, p.p_positive,
               p.review_id
        FROM (SELECT * FROM predictions WHERE corpus = $corpus AND coalesce(run_id, '') NOT IN (SELECT unnest($runs))) p
        LEFT JOIN (SELECT review_id, rid, split, label, n_chars FROM reviews WHERE corpus = $corpus AND rid > $after) r
        USING (review_id)""",
                {"corpus": corpus, "runs": list(runs), "after": after})
    con.execute("""CREATE OR REPLACE TEMP TABLE _newf AS
        SELECT f.field, r.rid, f.text_value, f.num_value, f.time_value
        FROM review_fields f JOIN (SELECT review_id, rid FROM reviews WHERE corpus = $corpus AND rid > $after) r
        USING (review_id) WHERE f.corpus = $corpus""", scope)
    new, old = con.execute(  # old: predictions of reviews the summaries hold already
        "SELECT count(*), count(*) FILTER (WHERE rid IS NULL) FROM _new").fetchall()[0]
    fields = con.execute("SELECT count(*) FROM _newf").fetchall()[0][0]
    grew_only = new == now[0] - n_predictions and old == 0 and fields == now[1] - n_fields
    return new if grew_only else -1


def _append(con: duckdb.DuckDBPyConnection, corpus: str, after: int) -> bool:
    """Add the staged _new and _newf (the reviews above rid ``after``) to every summary of the corpus: rows
    appended, counts added, what ranks (the sidebar's values, the disagreements) recomputed. False, with
    nothing written, where that is not enough: a model the summaries do not hold, or a kept column whose
    slices would be cut differently now (rebuild)."""
    wide = summaries.wide_of(_runner(con), corpus)
    models = {m for (m,) in con.execute("SELECT DISTINCT model FROM _new").fetchall()}
    if wide is None or not models <= set(wide.models):
        return False
    kinds, defs = _columns(con, corpus)
    if [_cut(d) for d in defs.values()] != [_cut(d) for d in wide.defs] or tuple(kinds.items()) != wide.fields:
        return False
    con.execute("UPDATE summary_wide SET slices = $slices WHERE corpus = $corpus",  # the same slices, ranked anew
                {"corpus": corpus, "slices": _slices_json(defs)})
    names = list(wide.models)
    scope = {"corpus": corpus, "names": names, "after": after}
    _exec(con, "INSERT INTO summary_rows SELECT $corpus, * FROM _new ORDER BY model, rid", scope)
    _exec(con, "INSERT INTO summary_fields SELECT $corpus, * FROM _newf ORDER BY field, rid", scope)
    _add_to_pool(con, corpus, after)
    _agree(con, corpus, names, [r[0] for r in con.execute("SELECT DISTINCT split FROM _new").fetchall()], after)
    sql, params = _wide_sql(names, list(kinds.items()), defs, new=True)
    _exec(con, f"INSERT INTO {wide.table} {sql}", {**params, **scope})
    _counts(con, corpus, names, defs, after)
    if len(names) > 1:
        con.execute("DELETE FROM summary_disagree WHERE corpus = $corpus", {"corpus": corpus})
        _disagreements(con, corpus, names)
    con.execute("DROP TABLE _new; DROP TABLE _newf")
    return True


def _runner(con: duckdb.DuckDBPyConnection) -> summaries.Run:
    return lambda sql, params: con.execute(sql, params).df()


def _columns(con: duckdb.DuckDBPyConnection, corpus: str) -> tuple[dict[str, str], dict[str, SliceDef]]:
    """The corpus's kept columns (name -> kind) and how each sliced one is cut now (its values read)."""
    kinds = field_kinds(_runner(con), corpus)
    return kinds, {field: slice_def(_runner(con), corpus, field, kind) for field, kind in kinds.items()
                   if kind in SLICED}


def _exec(con: duckdb.DuckDBPyConnection, sql: str, params: dict) -> duckdb.DuckDBPyConnection:
    """Run ``sql`` with the parameters of ``params`` that it names (DuckDB refuses any other)."""
    return con.execute(sql, {k: v for k, v in params.items() if k in set(re.findall(r"\$(\w+)", sql))})


def _add(con: duckdb.DuckDBPyConnection, table: str, sql: str, params: dict, sums: tuple[str, ...] = ("n", "sum_p")
         ) -> None:
    """Add the counts ``sql`` selects (the table's columns, in order) to the corpus's rows of ``table``: the
    cells both hold are summed, the others kept."""
    cols = [d[0] for d in con.execute(f"SELECT * FROM {table} LIMIT 0").description]
    keys = ", ".join(c for c in cols if c not in sums)
    totals = ", ".join(f"sum({c})::{'BIGINT' if c == 'n' else 'DOUBLE'} AS {c}" for c in sums)
    _exec(con, f"""CREATE OR REPLACE TEMP TABLE _sum AS SELECT {keys}, {totals} FROM (
        SELECT * FROM {table} WHERE corpus = $corpus UNION ALL ({sql})) GROUP BY ALL""", params)
    con.execute(f"DELETE FROM {table} WHERE corpus = $corpus", {"corpus": params["corpus"]})
    con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _sum; DROP TABLE _sum")


def _add_to_pool(con: duckdb.DuckDBPyConnection, corpus: str, after: int) -> None:
    """The pool is the POOL smallest hashes of review_id: the new reviews' hashes below its largest join it
    (with their text), then it keeps its POOL smallest."""
    scope = {"corpus": corpus, "after": after, "pool": summaries.POOL}
    _exec(con, """CREATE OR REPLACE TEMP TABLE _pool AS SELECT review_id, rid, hash(review_id) AS h FROM reviews
        WHERE corpus = $corpus AND rid > $after ORDER BY h LIMIT $pool""", scope)
    text, params = texts.source(con, corpus)
    _exec(con, f"""INSERT INTO summary_pool SELECT $corpus, p.rid, p.h, t.text FROM _pool p
        JOIN {text} t ON t.rid = p.rid AND t.rid > $after ORDER BY p.h""", {**scope, **params})
    _exec(con, """DELETE FROM summary_pool WHERE corpus = $corpus AND h > (
        SELECT max(h) FROM (SELECT h FROM summary_pool WHERE corpus = $corpus ORDER BY h LIMIT $pool))""", scope)
    con.execute("DROP TABLE _pool")


def _disagreements(con: duckdb.DuckDBPyConnection, corpus: str, names: list[str]) -> None:
    """summary_disagree of every split, from summary_agree."""
    splits = con.execute("SELECT DISTINCT split FROM summary_cube WHERE corpus = $corpus ORDER BY split",
                         {"corpus": corpus}).fetchall()
    for (split,) in splits:
        key = {"corpus": corpus, "split": split, "names": names, "key": json.dumps(names)}
        sql, _ = disagreement_sql(agree=True)
        _exec(con, f"INSERT INTO summary_disagree SELECT $corpus, $split, $key, * FROM ({sql})",
              {**key, "limit": DISAGREEMENTS})


def _rebuild(con: duckdb.DuckDBPyConnection, corpus: str) -> None:
    for (tab,) in con.execute("SELECT tab FROM summary_wide WHERE corpus = $corpus", {"corpus": corpus}).fetchall():
        con.execute(f"DROP TABLE IF EXISTS summary_wide_{int(tab)}")
    for table in TABLES:
        con.execute(f"DELETE FROM {table} WHERE corpus = $corpus", {"corpus": corpus})
    names = [r[0] for r in con.execute("SELECT DISTINCT model FROM predictions WHERE corpus = $corpus ORDER BY model",
                                       {"corpus": corpus}).fetchall()]
    _build_rows(con, corpus)  # first: every summary below reads it
    kinds, defs = _columns(con, corpus)
    _counts(con, corpus, names, defs)
    splits = con.execute("SELECT DISTINCT split FROM summary_cube WHERE corpus = $corpus", {"corpus": corpus}).fetchall()
    _agree(con, corpus, names, [split for (split,) in splits])
    if len(names) > 1:
        _disagreements(con, corpus, names)
    _build_wide(con, corpus, names, kinds, defs)  # after summary_agree: it holds its columns


def _counts(con: duckdb.DuckDBPyConnection, corpus: str, names: list[str], defs: dict[str, SliceDef],
            after: int | None = None) -> None:
    """Add the counts of the corpus's rows (with ``after``, of those above that rid only) to the cube, the
    slices and the days; the sidebar's values are read anew."""
    new, scope = after is not None, {"corpus": corpus, "names": names, "after": after}
    sql, params = cube_sql(None, new=new)
    _add(con, "summary_cube", f"SELECT $corpus, * FROM ({sql})", {**scope, **params})
    con.execute("DELETE FROM summary_values WHERE corpus = $corpus", {"corpus": corpus})
    for field, d in defs.items():
        sql, params = slices_sql(d, None, new=new)
        _add(con, "summary_slices", f"SELECT $corpus, c.split, $field, c.* EXCLUDE (split) FROM ({sql}) c",
             {**scope, **params})
        sql, params = values_sql(d)
        _insert_values(con, corpus, d, _exec(con, sql, {**params, **scope}).df())
        if d.kind == "datetime":
            sql, params = time_sql(field, None, new=new)
            _add(con, "summary_time", f"SELECT $corpus, c.split, $field, c.* EXCLUDE (split) FROM ({sql}) c",
                 {**scope, **params}, sums=("n",))


def _agree(con: duckdb.DuckDBPyConnection, corpus: str, names: list[str], splits: list[str],
           after: int | None = None) -> None:
    """summary_agree's rows of each split (with ``after``, of the reviews above that rid only); none where the
    corpus has one model: it disagrees with nobody."""
    for split in sorted(splits) if len(names) > 1 else []:
        sql, _ = per_review_sql(new=after is not None)
        _exec(con, f"INSERT INTO summary_agree SELECT $corpus, $split, $key, * FROM ({sql}) ORDER BY rid",
              {"corpus": corpus, "split": split, "names": names, "key": json.dumps(names), "after": after})


def _build_rows(con: duckdb.DuckDBPyConnection, corpus: str) -> None:
    """summary_rows and summary_fields: the rows keyed by rid, each table in its reads' order (model or
    field, then rid), so a read of one model's rows skips the others' row groups."""
    con.execute("""CREATE OR REPLACE TEMP TABLE _rid AS
        SELECT review_id, rid, coalesce(split, 'all') AS split, label, n_chars FROM reviews WHERE corpus = $corpus""",
                {"corpus": corpus})
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
    text, params = texts.source(con, corpus)
    con.execute(f"""INSERT INTO summary_pool SELECT $corpus, p.rid, p.h, t.text FROM _pool p
        JOIN {text} t USING (rid) ORDER BY p.h""", {"corpus": corpus, **params})
    con.execute("DROP TABLE _rid; DROP TABLE _pool")


def _build_wide(con: duckdb.DuckDBPyConnection, corpus: str, names: list[str], kinds: dict[str, str],
                defs: dict[str, SliceDef]) -> None:
    """summary_wide_<tab> (``Wide``) from summary_rows and summary_fields, in rid order; <tab> is the next
    free number, recorded in summary_wide with the models' and the columns' order."""
    tab = int(con.execute("SELECT coalesce(max(tab), -1) + 1 FROM summary_wide").fetchall()[0][0])
    fields = list(kinds.items())
    sql, params = _wide_sql(names, fields, defs)
    con.execute(f"CREATE TABLE summary_wide_{tab} AS {sql}", {**params, "corpus": corpus})
    con.execute("INSERT INTO summary_wide VALUES ($corpus, $tab, $models, $fields, $slices)",
                {"corpus": corpus, "tab": tab, "models": json.dumps(names), "fields": json.dumps(fields),
                 "slices": _slices_json(defs)})


def _slices_json(defs: dict[str, SliceDef]) -> str:
    return json.dumps([{"field": d.field, "kind": d.kind, "values": list(d.values), "edges": list(d.edges)}
                       for d in defs.values()])


def _cut(d: SliceDef) -> tuple:
    """What decides each review's slice: a categorical column's top values in any order (their rank changes
    as counts grow, their slices do not), a numeric column's values or edges."""
    values = frozenset(d.values) if d.kind in ("categorical", "boolean") else d.values
    return d.field, d.kind, values, d.edges


def _wide_sql(names: list[str], fields: list[tuple[str, str]], defs: dict[str, SliceDef], new: bool = False
              ) -> tuple[str, dict]:
    """The rows of $corpus's summary_wide_<tab>, in rid order (``new``: those above rid $after only)."""
    sliced, params = [], {"key": json.dumps(names), **{f"m{i}": m for i, m in enumerate(names)},
                          **{f"f{j}": name for j, (name, _) in enumerate(fields)}}
    for j, (field, _) in enumerate(fields):
        if field in defs:
            value, vparams = defs[field].value_sql(f"c{j}", p=f"v{j}_")
            sliced.append(f", {value} AS s{j}")
            params.update(vparams)
    above = " AND rid > $after" if new else ""
    models = ", ".join(f"any_value(p_positive) FILTER (WHERE model = $m{i}) AS p{i}" for i in range(len(names)))
    cols = ", ".join(f"any_value({STORED[kind]}) FILTER (WHERE field = $f{j}) AS c{j}"
                     for j, (_, kind) in enumerate(fields))
    kept = (f", f AS (SELECT rid, {cols} FROM summary_fields WHERE corpus = $corpus{above} GROUP BY rid)"
            if fields else "")
    return f"""
        WITH p AS (SELECT $corpus AS corpus, rid, any_value(split) AS split, any_value(label) AS label,
                          any_value(n_chars) AS n_chars, any_value(review_id) AS review_id, {models}
                   FROM summary_rows WHERE corpus = $corpus{above} GROUP BY rid){kept},
        a AS (SELECT rid, spread, mean_p, mask FROM summary_agree WHERE corpus = $corpus AND models = $key{above})
        SELECT *{''.join(sliced)} FROM p {'LEFT JOIN f USING (rid) ' if fields else ''}LEFT JOIN a USING (rid)
        ORDER BY rid""", params


def _insert_values(con: duckdb.DuckDBPyConnection, corpus: str, d: SliceDef, values: pd.DataFrame) -> None:
    """values_sql's rows in its order; sliced: a value that is its own slice (not merged into '(other)')."""
    rows = [(corpus, d.field, value, k, int(n), d.kind in ("numeric", "datetime") or value in d.values)
            for k, (value, n) in enumerate(zip(values["value"], values["n"], strict=True))]
    if rows:
        con.executemany("INSERT INTO summary_values VALUES (?, ?, ?, ?, ?, ?)", rows)
