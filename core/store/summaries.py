"""Aggregates of every prediction that the dashboard reads instead of the rows: built at publish time, so a
page's cost does not grow with the corpus. Each table is described in docs/schema.md.

    summary_cube    corpus, split, model, label, length, bin, n, sum_p        one row per non-empty cell
    summary_slices  corpus, split, field, value, model, label, bin, n, sum_p  per kept column's slice
    summary_time    corpus, split, field, day, model, label, positive, n      per datetime column and day
    summary_values  corpus, field, value, ord, n, sliced                      a column's values / buckets
    summary_agree   corpus, split, models, rid, review_id, label, spread, mean_p, mask
                    per review scored by every model of the corpus (per_review_sql), in rid order
    summary_disagree corpus, split, models, part, review_id, spread, label, mask, all_contradict, n
                    the Disagreements page's pass (disagreement_sql) for every model of the corpus
    summary_rows    corpus, model, rid, split, label, n_chars, predicted, p_positive, review_id
                    every prediction beside its review's small columns, in (model, rid) order
    summary_fields  corpus, field, rid, text_value, num_value, time_value    review_fields, keyed by rid
    summary_wide    corpus, tab, models, fields, slices   names summary_wide_<tab>: the corpus's rows, one per review
                    (``Wide``): what a filtered aggregate reads
    summary_state   corpus, built_at, seconds, version       present, at VERSION = summaries current

``bin`` is floor(P(positive) * 1000) (so bin >= 500 is exactly 'predicted positive'), ``length`` the review
length bucket, ``label`` the true label (NULL: unlabelled). A slice is a value of a kept column: one of the
``TOP`` most frequent values of a categorical or boolean column (the rest are '(other)'), a value of a
numeric column with at most ``TOP`` distinct values, else one of its ten equal-count buckets, or a year of a
datetime column; '(missing)' are the reviews without a value. ``rid`` is the review's number in its corpus,
given in the order stored (reviews.rid): the row lists (the Reviews page, a cell's or a slice's reviews) read
summary_rows alone, and filter it on kept columns through integer semi-joins with summary_fields, where the
same read on the base tables joins millions of predictions with the reviews on a VARCHAR key.

summary_pool holds the text of a uniform sample of each corpus's reviews, the POOL with the smallest hash of
their review_id (a bottom-k sample), in hash order: the Drivers page counts the words of the filtered reviews
among them, the first n in hash order being a uniform sample of those, without reading millions of texts.

Under a filter on kept columns the aggregates are computed live, from summary_wide_<tab>: one row per review
with a column per kept column and one per model, so the filters are predicates on its columns and no join
is needed (a semi-join of every prediction with the filter's rids would cost far more at millions of
reviews).

A publish brings them up to date (``core.store.summarise.refresh``): a corpus that only grew, by new reviews
scored by models it had, is updated by what was added (rows appended, counts added, rankings recomputed);
one that changed any other way (a write that changes stored rows deletes its summary_state row; a new model;
a model scoring older reviews; a column sliced anew) is rebuilt. The same SQL also runs live when the
dashboard filters on a kept column (``Where``): a filtered view is not precomputed.

Only fixed fragments of this module are composed into SQL; every value (a column's name, a category, a
bound) is bound as a parameter.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import NamedTuple

import pandas as pd

VERSION = 7       # of the summaries' layout: a corpus summarised by another version is rebuilt
POOL = 100_000    # reviews (with their text) of a corpus kept as a uniform sample for the Drivers page
BINS = 1000       # resolution of P(positive) in every summary
TOP = 30          # slices of a categorical column (the rest are '(other)')
VALUES = 1000     # values of a categorical column offered to the sidebar's filter
BUCKETS = 10      # equal-count buckets of a numeric column with more than TOP distinct values
OTHER, MISSING = "(other)", "(missing)"
SLICED = ("categorical", "boolean", "numeric", "datetime")  # 'text' columns (mostly distinct) are not sliced

SCHEMA = """
CREATE TABLE IF NOT EXISTS summary_state (corpus VARCHAR PRIMARY KEY, built_at TIMESTAMP, seconds DOUBLE,
    version INTEGER);
CREATE TABLE IF NOT EXISTS summary_cube (corpus VARCHAR, split VARCHAR, model VARCHAR, label VARCHAR,
    length VARCHAR, bin INTEGER, n BIGINT, sum_p DOUBLE);
CREATE TABLE IF NOT EXISTS summary_slices (corpus VARCHAR, split VARCHAR, field VARCHAR, value VARCHAR,
    model VARCHAR, label VARCHAR, bin INTEGER, n BIGINT, sum_p DOUBLE);
CREATE TABLE IF NOT EXISTS summary_time (corpus VARCHAR, split VARCHAR, field VARCHAR, day DATE, model VARCHAR,
    label VARCHAR, positive BOOLEAN, n BIGINT);
CREATE TABLE IF NOT EXISTS summary_values (corpus VARCHAR, field VARCHAR, value VARCHAR, ord INTEGER, n BIGINT,
    sliced BOOLEAN);
CREATE TABLE IF NOT EXISTS summary_rows (corpus VARCHAR, model VARCHAR, rid INTEGER, split VARCHAR,
    label VARCHAR, n_chars INTEGER, predicted VARCHAR, p_positive DOUBLE, review_id VARCHAR);
CREATE TABLE IF NOT EXISTS summary_fields (corpus VARCHAR, field VARCHAR, rid INTEGER, text_value VARCHAR,
    num_value DOUBLE, time_value TIMESTAMP);
CREATE TABLE IF NOT EXISTS summary_agree (corpus VARCHAR, split VARCHAR, models VARCHAR, rid INTEGER,
    review_id VARCHAR, label VARCHAR, spread DOUBLE, mean_p DOUBLE, mask BIGINT);
CREATE TABLE IF NOT EXISTS summary_disagree (corpus VARCHAR, split VARCHAR, models VARCHAR, part VARCHAR,
    review_id VARCHAR, spread DOUBLE, label VARCHAR, mask BIGINT, all_contradict BOOLEAN, n BIGINT);
CREATE TABLE IF NOT EXISTS summary_wide (corpus VARCHAR, tab INTEGER, models VARCHAR, fields VARCHAR,
    slices VARCHAR);
CREATE TABLE IF NOT EXISTS summary_pool (corpus VARCHAR, rid INTEGER, h UBIGINT, text VARCHAR);
ALTER TABLE summary_state ADD COLUMN IF NOT EXISTS max_rid INTEGER;       -- what the summaries hold: reviews up
ALTER TABLE summary_state ADD COLUMN IF NOT EXISTS n_predictions BIGINT;  --   to this rid, this many predictions
ALTER TABLE summary_state ADD COLUMN IF NOT EXISTS n_fields BIGINT;       --   and field rows,
ALTER TABLE summary_state ADD COLUMN IF NOT EXISTS runs VARCHAR[];        --   the predictions of these runs
"""
TABLES = ("summary_cube", "summary_slices", "summary_time", "summary_values", "summary_disagree", "summary_rows",
          "summary_fields", "summary_agree", "summary_wide", "summary_pool")
DISAGREEMENTS = 50  # reviews the Disagreements page lists (of each kind)


Run = Callable[[str, dict], pd.DataFrame]  # runs one statement with bound parameters


# ---------------------------------------------------------------- filters on kept columns


class FieldFilter(NamedTuple):
    """Keep the reviews whose kept column ``field`` is one of ``values`` (categorical, boolean as
    'true'/'false'; ``exclude``: any value but these) or within [lo, hi] (numeric: numbers; datetime: ISO
    dates, hi exclusive). Hashable, so it can key a cache."""

    field: str
    kind: str
    values: tuple[str, ...] = ()
    lo: float | str | None = None
    hi: float | str | None = None
    exclude: bool = False


Where = tuple[FieldFilter, ...]

# the review_fields column that holds a kept column's value, by its kind (summary_wide_<tab> holds that one)
STORED = {"categorical": "text_value", "text": "text_value", "boolean": "num_value", "numeric": "num_value",
           "datetime": "time_value"}


def _value(kind: str, col: str | None = None) -> str:
    """A kept column's value as the text a slice or a filter names it by: of a review_fields row, or of
    the column ``col`` of summary_wide_<tab>."""
    col = col or STORED[kind]
    return f"CASE {col} WHEN 1 THEN 'true' WHEN 0 THEN 'false' END" if kind == "boolean" else col


def _test(f: FieldFilter, k: int, col: str | None = None) -> tuple[str, dict]:
    """The condition that filter number ``k`` keeps a row: on review_fields' columns, or on ``col``."""
    if f.kind not in STORED:
        raise ValueError(f"cannot filter on a column of kind {f.kind!r}")
    v = col or STORED[f.kind]
    if f.kind == "numeric":
        return f"{v} BETWEEN $wlo{k} AND $whi{k}", {f"wlo{k}": float(f.lo), f"whi{k}": float(f.hi)}
    if f.kind == "datetime":
        return f"{v} >= $wlo{k}::TIMESTAMP AND {v} < $whi{k}::TIMESTAMP", {f"wlo{k}": str(f.lo), f"whi{k}": str(f.hi)}
    return f"{'NOT ' if f.exclude else ''}list_contains($wv{k}, {_value(f.kind, v)})", {f"wv{k}": list(f.values)}


def where_sql(where: Where, key: str = "review_id", fields: str = "review_fields",
              outside: FieldFilter | None = None) -> tuple[str, dict]:
    """' AND review_id IN (...)' per filter, for a ``FROM reviews WHERE corpus = $corpus`` query; with
    ``key='p.rid', fields='summary_fields'`` the same filters for a read of summary_rows (alias p).
    ``outside``: also ' AND ... NOT IN (...)', the reviews that filter does not keep (the rest of a slice,
    reviews without a value in its column included)."""
    parts, params = [], {}
    for k, f in enumerate((*where, outside) if outside is not None else where):
        test, tparams = _test(f, k)
        params.update(tparams, **{f"wf{k}": f.field})
        parts.append(f" AND {key} {'NOT ' if k == len(where) else ''}IN (SELECT {key.split('.')[-1]} FROM {fields} "
                     f"WHERE corpus = $corpus AND field = $wf{k} AND {test})")
    return "".join(parts), params


# ---------------------------------------------------------------- slices of a column


class SliceDef(NamedTuple):
    """How one kept column is cut into slices: ``values`` (categorical, boolean, numeric with few values:
    each its own slice) or numeric ``edges`` (bucket k = [edges[k], edges[k+1]), the last one closed), or
    datetime years (neither)."""

    field: str
    kind: str
    values: tuple[str, ...] = ()
    edges: tuple[float, ...] = ()

    def value_sql(self, col: str | None = None, p: str = "s") -> tuple[str, dict]:
        """A SQL expression over review_fields (or the column ``col`` of summary_wide_<tab>) naming each
        row's slice (NULL: the column has no value); its parameters' names start with ``p``."""
        stored = col or STORED[self.kind]
        if self.kind == "datetime":
            return f"strftime({stored}, '%Y')", {}
        if self.kind == "numeric" and self.edges:
            inner = self.edges[1:-1]
            labels = bucket_labels(self.edges)
            cases = " ".join(f"WHEN {stored} < ${p}e{k} THEN ${p}l{k}" for k in range(len(inner)))
            params = {**{f"{p}e{k}": e for k, e in enumerate(inner)}, **{f"{p}l{k}": v for k, v in enumerate(labels[:-1])}}
            params[f"{p}last"] = labels[-1]
            return f"CASE WHEN {stored} IS NULL THEN NULL {cases} ELSE ${p}last END", params
        expr = f"printf('%.15g', {stored})" if self.kind == "numeric" else _value(self.kind, col)
        case = f"CASE WHEN {expr} IS NULL THEN NULL WHEN list_contains(${p}vals, {expr}) THEN {expr} ELSE '{OTHER}' END"
        return case, {f"{p}vals": list(self.values)}

    def slice_filter(self, value: str) -> FieldFilter | None:
        """The sidebar filter that selects one slice's reviews (None for '(missing)')."""
        if value == MISSING:
            return None
        if self.kind == "datetime":
            return FieldFilter(self.field, "datetime", lo=f"{value}-01-01", hi=f"{int(value) + 1}-01-01")
        if value == OTHER:
            return FieldFilter(self.field, self.kind, values=self.values, exclude=True) if self.kind != "numeric" \
                else None
        if self.kind == "numeric" and self.edges:
            k = bucket_labels(self.edges).index(value)
            hi = self.edges[k + 1]  # [lo, hi) but the last bucket, which is closed
            return FieldFilter(self.field, "numeric", lo=self.edges[k],
                               hi=hi if k == len(self.edges) - 2 else math.nextafter(hi, -math.inf))
        if self.kind == "numeric":
            return FieldFilter(self.field, "numeric", lo=float(value), hi=float(value))
        return FieldFilter(self.field, self.kind, values=(value,))


def bucket_labels(edges: tuple[float, ...]) -> list[str]:
    """
    >>> bucket_labels((0.0, 2.5, 10.0))
    ['0 to <2.5', '2.5 to 10']
    """
    last = len(edges) - 2
    return [f"{edges[k]:g} to {'' if k == last else '<'}{edges[k + 1]:g}" for k in range(len(edges) - 1)]


def slice_def(run: Run, corpus: str, field: str, kind: str) -> SliceDef:
    """Read the column's values to decide its slices (the TOP most frequent, or numeric buckets)."""
    if kind == "datetime":
        return SliceDef(field, kind)
    scope = {"corpus": corpus, "field": field}
    if kind == "numeric":
        distinct = run("SELECT DISTINCT printf('%.15g', num_value) AS v FROM review_fields WHERE corpus = $corpus "
                       "AND field = $field AND num_value IS NOT NULL LIMIT $limit", {**scope, "limit": TOP + 1})
        if len(distinct) > TOP:
            q = run("SELECT quantile_disc(num_value, $qs) AS e FROM review_fields WHERE corpus = $corpus "
                    "AND field = $field", {**scope, "qs": [k / BUCKETS for k in range(BUCKETS + 1)]})
            edges = tuple(sorted({float(e) for e in q["e"].iloc[0]}))
            if len(edges) > 1:
                return SliceDef(field, kind, edges=edges)
        ordered = sorted(distinct["v"].tolist(), key=float)
        return SliceDef(field, kind, values=tuple(ordered))
    top = run(f"SELECT {_value(kind)} AS v FROM review_fields WHERE corpus = $corpus AND field = $field "
              f"AND {_value(kind)} IS NOT NULL GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT $limit",
              {**scope, "limit": TOP})
    return SliceDef(field, kind, values=tuple(top["v"].tolist()))


# ---------------------------------------------------------------- the aggregates, as SQL


class Wide(NamedTuple):
    """summary_wide_<tab> of one corpus: per review with predictions, corpus, rid, split, label, n_chars and
    review_id, then c<j> the j-th kept column of ``fields`` (one typed column: text_value, num_value or
    time_value as its kind stores it), s<j> its slice (by ``defs``, at publish; for the SLICED kinds), p<i>
    the i-th model of ``models`` (NULL where it did not score the review), and summary_agree's spread,
    mean_p and mask (NULL unless every model scored the review)."""

    table: str
    models: tuple[str, ...]
    fields: tuple[tuple[str, str], ...]  # (name, kind)
    defs: tuple[SliceDef, ...] = ()     # how each sliced column was cut

    def slice_def(self, field: str) -> SliceDef | None:
        return next((d for d in self.defs if d.field == field), None)

    def column(self, field: str) -> str | None:
        j = next((j for j, (name, _) in enumerate(self.fields) if name == field), None)
        return None if j is None else f"c{j}"

    def slice_column(self, field: str) -> str | None:
        j = next((j for j, (name, kind) in enumerate(self.fields) if name == field and kind in SLICED), None)
        return None if j is None else f"s{j}"

    def covers(self, where: Where) -> bool:
        return all(self.column(f.field) for f in where)


def wide_of(run: Run, corpus: str) -> Wide | None:
    """The corpus's summary_wide_<tab>, if the summaries hold one."""
    rows = run("SELECT tab, models, fields, slices FROM summary_wide WHERE corpus = $corpus", {"corpus": corpus})
    if rows.empty:
        return None
    row = rows.iloc[0]
    defs = tuple(SliceDef(d["field"], d["kind"], tuple(d["values"]), tuple(d["edges"]))
                 for d in json.loads(row["slices"]))
    return Wide(f"summary_wide_{int(row['tab'])}", tuple(json.loads(row["models"])),
                tuple((name, kind) for name, kind in json.loads(row["fields"])), defs)


# Aggregated on small integer codes (model index, label, length bucket, bin): the cheap way to group tens of
# millions of rows. A probability outside [0, 1] (NaN, inf: DuckDB's DOUBLE takes them) has no bin and is
# left out, as jobs.evaluate leaves it out and counts it. With split=None every split is grouped in one pass
# (the publish); with a split, that one (a live read).
_IDX = "idx AS (SELECT unnest($names) AS model, (generate_subscripts($names, 1) - 1)::UTINYINT AS i)"
_LABEL_CODE = ("CASE label WHEN 'negative' THEN 0 WHEN 'positive' THEN 1 WHEN 'neutral' THEN 2 ELSE 3 END"
               "::UTINYINT AS lc")
_LENGTH_CODE = ("CASE WHEN n_chars < 500 THEN 0 WHEN n_chars < 1000 THEN 1 WHEN n_chars < 2000 THEN 2 "
                "ELSE 3 END::UTINYINT AS lb")
_BIN = f"least(floor(p_positive * {BINS}), {BINS - 1})::USMALLINT AS bin"
LABEL = "['negative', 'positive', 'neutral', NULL][c.lc + 1] AS label"
LENGTH = "['1: < 500 chars', '2: 500-999', '3: 1000-1999', '4: 2000+'][c.lb + 1] AS length"


def _scoped(all_splits: bool, where: Where, binned: bool = True, new: bool = False) -> tuple[str, dict]:
    """The CTE ``r``: $corpus's rows of $split (or of every split) and of the models in $names (with their
    index i) that pass the column filters; ``binned``: only probabilities in [0, 1]; ``new``: only the
    reviews above rid $after (what a publish adds)."""
    filt, params = where_sql(where, key="rid", fields="summary_fields")
    cond = ("" if all_splits else " AND split = $split") + (" AND rid > $after" if new else "")
    valid = " AND p_positive BETWEEN 0 AND 1" if binned else ""
    return (f"{_IDX},\n        r AS (SELECT * FROM summary_rows JOIN idx USING (model) "
            f"WHERE corpus = $corpus{cond}{valid}{filt})"), params


def _wide_where(wide: Wide, where: Where) -> tuple[str, dict]:
    """``FROM summary_wide_<tab> WHERE ...``: the reviews of $corpus in $split that pass the filters, each a
    condition on its own column."""
    tests = [_test(f, k, wide.column(f.field)) for k, f in enumerate(where)]
    conds = ["corpus = $corpus", "split = $split", *(test for test, _ in tests)]
    return f"FROM {wide.table} WHERE {' AND '.join(conds)}", {k: v for _, params in tests for k, v in params.items()}


def _wide_scoped(wide: Wide, where: Where, extra: str = "") -> tuple[str, dict]:
    """``_scoped`` of one split read from summary_wide_<tab>: each review's row that passes the filters is
    unnested into one row per model of $names, and ``extra`` adds columns computed on the review's row (a
    slice's value, a day)."""
    rows, params = _wide_where(wide, where)
    ps = ", ".join(f"p{i}" for i in range(len(wide.models)))
    return (f"""{_IDX},
        w AS (SELECT rid, split, label, n_chars{extra}, [{ps}] AS ps {rows}),
        u AS (SELECT w.* EXCLUDE (ps), unnest(ps) AS p_positive, unnest($wide_models) AS model FROM w),
        r AS (SELECT * FROM u JOIN idx USING (model) WHERE p_positive BETWEEN 0 AND 1)"""), {
        **params, "wide_models": list(wide.models)}


def _live(where: Where, wide: Wide | None) -> bool:
    """Whether a live read under filters can read summary_wide_<tab> (of one split: never the publish)."""
    return wide is not None and bool(where) and wide.covers(where)


def cube_sql(split: str | None, where: Where = (), wide: Wide | None = None, new: bool = False
             ) -> tuple[str, dict]:
    """model, label, length, bin, n, sum_p (and split when ``split`` is None) for $corpus and $names; under
    filters read from ``wide`` where given; ``new``: of the reviews above rid $after only."""
    scoped, params = (_wide_scoped(wide, where) if split is not None and _live(where, wide)
                      else _scoped(split is None, where, new=new))
    by = "split, " if split is None else ""
    return f"""
        WITH {scoped},
        c AS (SELECT {by}i, {_LABEL_CODE}, {_LENGTH_CODE}, {_BIN}, count(*) AS n, sum(p_positive) AS sum_p
              FROM r GROUP BY ALL)
        SELECT {'c.split, ' if by else ''}idx.model, {LABEL}, {LENGTH}, c.bin::INTEGER AS bin, c.n, c.sum_p
        FROM c JOIN idx USING (i)""", params


def slices_sql(d: SliceDef, split: str | None, where: Where = (), wide: Wide | None = None, new: bool = False
               ) -> tuple[str, dict]:
    """value, model, label, bin, n, sum_p (and split when ``split`` is None) of one column's slices."""
    if split is not None and _live(where, wide) and wide.slice_column(d.field):
        scoped, params = _wide_scoped(wide, where, f", {wide.slice_column(d.field)} AS value")
        vparams, rows = {}, "r"
    else:
        value, vparams = d.value_sql()
        vparams["field"] = d.field
        scoped, params = _scoped(split is None, where, new=new)
        scoped += f",\n        f AS (SELECT rid, {value} AS value FROM summary_fields WHERE corpus = $corpus AND field = $field)"
        rows = "r LEFT JOIN f USING (rid)"
    by = "r.split, " if split is None else ""
    return f"""
        WITH {scoped},
        c AS (SELECT {by}coalesce(value, '{MISSING}') AS value, r.i, {_LABEL_CODE}, {_BIN},
                     count(*) AS n, sum(p_positive) AS sum_p
              FROM {rows} GROUP BY ALL)
        SELECT {'c.split, ' if by else ''}c.value, idx.model, {LABEL}, c.bin::INTEGER AS bin, c.n, c.sum_p
        FROM c JOIN idx USING (i)""", {**params, **vparams}


def time_sql(field: str, split: str | None, where: Where = (), wide: Wide | None = None, new: bool = False
             ) -> tuple[str, dict]:
    """day, model, label, positive (predicted), n (and split when ``split`` is None) of a datetime column."""
    if split is not None and _live(where, wide) and wide.column(field):
        scoped, params = _wide_scoped(wide, where, f", {wide.column(field)}::DATE AS day")
        rows = "r WHERE day IS NOT NULL"
    else:
        scoped, params = _scoped(split is None, where, new=new)
        params["field"] = field
        scoped += (",\n        f AS (SELECT rid, time_value::DATE AS day FROM summary_fields "
                   "WHERE corpus = $corpus AND field = $field AND time_value IS NOT NULL)")
        rows = "r JOIN f USING (rid)"
    by = "r.split, " if split is None else ""
    return f"""
        WITH {scoped},
        c AS (SELECT {by}day, r.i, {_LABEL_CODE}, p_positive >= 0.5 AS positive, count(*) AS n
              FROM {rows} GROUP BY ALL)
        SELECT {'c.split, ' if by else ''}c.day, idx.model, {LABEL}, c.positive, c.n
        FROM c JOIN idx USING (i)""", params


def per_review_sql(where: Where = (), new: bool = False) -> tuple[str, dict]:
    """Per review of $split scored by every model of $names: rid, review_id, label, spread (max - min
    P(positive)), mean_p and mask (bit i: the i-th model predicts positive). summary_agree holds it for
    every model of the corpus, the Disagreements page's default."""
    scoped, params = _scoped(False, where, binned=False, new=new)
    return f"""
        WITH {scoped}
        SELECT rid, any_value(review_id) AS review_id, any_value(label) AS label,
               max(p_positive) - min(p_positive) AS spread, avg(p_positive) AS mean_p,
               sum(CASE WHEN predicted = 'positive' THEN 1::BIGINT << i ELSE 0 END)::BIGINT AS mask
        FROM r GROUP BY rid HAVING count(*) = len($names)""", params


def disagreement_sql(where: Where = (), agree: bool = False, wide: Wide | None = None
                     ) -> tuple[str, dict]:
    """One pass over the per-review aggregate (per_review_sql, or with ``agree`` its copy in summary_agree
    for every model of the corpus, read from ``wide`` under filters where given): part 'spread' (the $limit
    reviews with the largest spread), 'wrong' (the $limit that every model gets wrong, most confidently
    first) and 'mask' (reviews per label and bitmask)."""
    if agree and _live(where, wide):
        rows, params = _wide_where(wide, where)
        per = f"SELECT rid, review_id, label, spread, mean_p, mask {rows} AND mask IS NOT NULL"
    elif agree:
        filt, params = where_sql(where, key="rid", fields="summary_fields")
        per = (f"SELECT rid, review_id, label, spread, mean_p, mask FROM summary_agree "
               f"WHERE corpus = $corpus AND split = $split AND models = $key{filt}")
    else:
        per, params = per_review_sql(where)
    return f"""
        WITH per AS ({per}),
        rp AS (
            SELECT per.*, coalesce(label = 'positive' AND mask = 0
                                   OR label = 'negative' AND mask = (1::BIGINT << len($names)) - 1,
                                   false) AS all_contradict
            FROM per)
        (SELECT 'spread' AS part, review_id, spread, label, NULL::BIGINT AS mask,
                NULL::BOOLEAN AS all_contradict, NULL::BIGINT AS n
         FROM rp ORDER BY spread DESC, rid LIMIT $limit)
        UNION ALL
        (SELECT 'wrong', review_id, spread, label, NULL, NULL, NULL FROM rp WHERE all_contradict
         ORDER BY abs(mean_p - (label = 'positive')::DOUBLE) DESC, rid LIMIT $limit)
        UNION ALL
        SELECT 'mask', NULL, NULL, label, mask, all_contradict, count(*) FROM rp GROUP BY ALL""", params


def field_kinds(run: Run, corpus: str) -> dict[str, str]:
    """Kept column -> kind, in the file's order (as core.store.set_field_kinds recorded them)."""
    rows = run("SELECT details FROM corpora WHERE corpus = $corpus", {"corpus": corpus})
    details = json.loads(rows["details"].iloc[0] or "{}") if len(rows) else {}
    return {name: how["kind"] for name, how in details.get("fields", {}).items()}


def values_sql(d: SliceDef) -> tuple[str, dict]:
    """value, n of a column's slices (datetime: years; numeric: its values or buckets) or, for categorical
    and boolean columns, its VALUES most frequent values."""
    if d.kind in ("categorical", "boolean"):
        sql = (f"SELECT {_value(d.kind)} AS value, count(*) AS n FROM review_fields WHERE corpus = $corpus "
               f"AND field = $field AND {_value(d.kind)} IS NOT NULL GROUP BY 1 ORDER BY n DESC, 1 LIMIT {VALUES}")
        return sql, {"field": d.field}
    value, params = d.value_sql()
    sql = (f"SELECT value, count(*) AS n FROM (SELECT {value} AS value, num_value FROM review_fields "
           f"WHERE corpus = $corpus AND field = $field) WHERE value IS NOT NULL GROUP BY 1 ORDER BY min(num_value), 1")
    return sql, {**params, "field": d.field}
