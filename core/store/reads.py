"""The aggregate reads of a published view (``open_view``): corpora, splits and models, rejects, where each
model comes from, the leaderboard and the trained-on x evaluated-on matrix, the cube of predictions and its
slices and days (from the summaries, or computed live under the sidebar's column filters), kept columns and
the training curves. jobs.score and jobs.evaluate print some of the same reads from the main file.

Each function takes a connection (or a cursor) and returns a DataFrame or a plain value; the dashboard
caches them (dashboard.db). Every value is bound as a ``$name`` parameter.
"""

from __future__ import annotations

import duckdb
import pandas as pd

from core.store import summaries
from core.store.summaries import MISSING, OTHER, FieldFilter, SliceDef, Where, Wide

Con = duckdb.DuckDBPyConnection


def _df(con: Con, sql: str, params: dict | None = None) -> pd.DataFrame:
    return con.execute(sql, params or {}).df()


def _run(con: Con) -> summaries.Run:
    return lambda sql, params: _df(con, sql, params)


# ---------------------------------------------------------------- corpora, splits, models, rejects


def counts(con: Con) -> dict:
    """reviews, predictions: every row of the database."""
    row = _df(con, "SELECT (SELECT count(*) FROM reviews) AS reviews, "
                   "(SELECT count(*) FROM predictions) AS predictions").iloc[0]
    return {k: int(v) for k, v in row.items()}


def corpora(con: Con) -> pd.DataFrame:
    """One row per corpus: reviews, labelled reviews, predictions, models, rejects."""
    return _df(con, """
        WITH r AS (SELECT corpus, count(*) AS reviews,
                          count(*) FILTER (WHERE label IN ('positive', 'negative')) AS labelled
                   FROM reviews GROUP BY corpus),
             p AS (SELECT corpus, count(*) AS predictions, count(DISTINCT model) AS models
                   FROM predictions GROUP BY corpus),
             j AS (SELECT corpus, count(*) AS rejects FROM rejects GROUP BY corpus)
        SELECT c.corpus, c.source, coalesce(r.reviews, 0) AS reviews, coalesce(r.labelled, 0) AS labelled,
               coalesce(p.predictions, 0) AS predictions, coalesce(p.models, 0) AS models,
               coalesce(j.rejects, 0) AS rejects
        FROM corpora c LEFT JOIN r USING (corpus) LEFT JOIN p USING (corpus) LEFT JOIN j USING (corpus)
        ORDER BY predictions = 0, c.corpus""")


def splits(con: Con, corpus: str) -> list[str]:
    """Splits of ``corpus`` with predictions ('all' = no split), test first: the summaries hold a cube for
    each of them."""
    return _df(con, "SELECT DISTINCT split FROM summary_cube WHERE corpus = $corpus ORDER BY CASE split "
                    "WHEN 'test' THEN 0 WHEN 'validation' THEN 1 WHEN 'all' THEN 2 ELSE 3 END, split",
               {"corpus": corpus})["split"].tolist()


def models(con: Con, corpus: str) -> list[str]:
    """The models with predictions on ``corpus``, by name."""
    return _df(con, "SELECT DISTINCT model FROM predictions WHERE corpus = $corpus ORDER BY model",
               {"corpus": corpus})["model"].tolist()


def prediction_counts(con: Con, corpus: str) -> pd.DataFrame:
    """model, n: predictions stored per model on ``corpus``."""
    return _df(con, "SELECT model, count(*) AS n FROM predictions WHERE corpus = $corpus GROUP BY model "
                    "ORDER BY model", {"corpus": corpus})


def labelled_reviews(con: Con, corpus: str, split: str, where: Where = ()) -> int:
    """Reviews with a positive/negative label in this corpus and split that pass the column filters."""
    filt, params = summaries.where_sql(where)
    return int(_df(con, "SELECT count(*) AS n FROM reviews WHERE corpus = $corpus AND coalesce(split, 'all') = "
                        f"$split{filt} AND label IN ('positive', 'negative')",
                   {"corpus": corpus, "split": split, **params})["n"].iloc[0])


def rejects(con: Con, corpus: str) -> pd.DataFrame:
    """reason (its kind: the text before the first ':'), rows: the corpus's rejected rows, most first."""
    return _df(con, "SELECT split_part(reason, ':', 1) AS reason, count(*) AS rows FROM rejects "
                    "WHERE corpus = $corpus GROUP BY 1 ORDER BY rows DESC, reason", {"corpus": corpus})


# ---------------------------------------------------------------- where each model comes from

LEXICON = "— (lexicon)"        # trained_on of a model that learns nothing (vader)
UNRECORDED = "not recorded"    # trained_on of a model missing from the models table

# Provenance columns of a model ``k`` (a row of the models table, LEFT JOINed), as every page shows them:
# trained_on (the corpus, LEXICON or UNRECORDED), train_rows (0 for a lexicon, which learns from nothing) and
# provenance ("trained on shop, 3,000 reviews"), a label for chart axes and legends.
_PROVENANCE = f"""
    CASE WHEN k.model IS NULL THEN '{UNRECORDED}' WHEN k.trained_on IS NULL THEN '{LEXICON}'
         ELSE k.trained_on END AS trained_on,
    CASE WHEN k.trained_on IS NOT NULL THEN k.train_rows WHEN k.model IS NOT NULL THEN 0 END AS train_rows,
    CASE WHEN k.model IS NULL THEN 'provenance not recorded' WHEN k.trained_on IS NULL THEN 'lexicon, learns nothing'
         ELSE 'trained on ' || k.trained_on || coalesce(', ' || format('{{:,}}', k.train_rows) || ' reviews', '')
         END AS provenance"""


# a stack's members and their weights on its logit (core.models.stack records them in hyperparams), e.g.
# 'tfidf-lr +1.23, vader +0.40'; NULL for any other kind
_MEMBERS = """CASE WHEN k.kind = 'stack' THEN array_to_string(list_transform(json_keys(k.hyperparams, '$.weights'),
    lambda x: x || ' ' || printf('%+.2f', (k.hyperparams->'$.weights'->>x)::DOUBLE)), ', ') END"""


def model_facts(con: Con) -> pd.DataFrame:
    """model, trained_on, train_rows, provenance: one row per model in the models table."""
    return _df(con, f"SELECT k.model, {_PROVENANCE} FROM models k ORDER BY k.model")


def trained_models(con: Con) -> pd.DataFrame:
    """One row per recorded model: where it learnt (trained_on, train_rows, train_classes as stored: JSON),
    what it is, its cost."""
    return _df(con, f"""
        SELECT k.model, {_PROVENANCE}, k.train_classes, k.kind, k.preset, k.n_params, k.bytes_on_disk,
               k.train_seconds, k.device, k.trained_at
        FROM models k ORDER BY k.model""")


def leaderboard(con: Con, corpus: str, split: str, models: list[str] | tuple[str, ...] | None = None
                ) -> pd.DataFrame:
    """Quality next to cost, one row per model (``models``, or every model evaluated on this set): where it
    was trained, the metrics of this evaluation set (NULL if not evaluated), size on disk, training time,
    latest scoring speed; the most accurate first."""
    chosen = ("SELECT unnest($models) AS model" if models is not None else
              "SELECT DISTINCT model FROM metrics WHERE corpus = $corpus AND split = $split")
    return _df(con, f"""
        WITH chosen AS ({chosen}),
             speed AS (SELECT model, arg_max(rows_per_s, measured_at) AS rows_per_s
                       FROM model_speed GROUP BY model)
        SELECT c.model, {_PROVENANCE}, m.n, m.accuracy, m.accuracy_lo, m.accuracy_hi,
               m.roc_auc, m.roc_auc_lo, m.roc_auc_hi,
               printf('%.3f - %.3f', m.accuracy_lo, m.accuracy_hi) AS accuracy_ci,
               printf('%.3f - %.3f', m.roc_auc_lo, m.roc_auc_hi) AS roc_auc_ci,
               m.f1, m.precision, m.recall, m.ece, m.brier,
               k.kind, k.n_params, k.bytes_on_disk, k.train_seconds, s.rows_per_s, {_MEMBERS} AS members
        FROM chosen c
        LEFT JOIN metrics m ON m.model = c.model AND m.corpus = $corpus AND m.split = $split
        LEFT JOIN models k ON k.model = c.model
        LEFT JOIN speed s ON s.model = c.model
        ORDER BY m.accuracy DESC NULLS LAST, c.model""",
               {"corpus": corpus, "split": split, **({"models": list(models)} if models is not None else {})})


def cross_corpus(con: Con) -> pd.DataFrame:
    """The trained-on x evaluated-on matrix, one row per cell: every model (of the models table or the
    metrics) x every corpus evaluated on a test split or as a whole.

    Each corpus is read on one split for every model, so a column compares like with like: its 'test' split
    when the metrics hold one, else 'all' (a corpus without a split). Never 'train'; 'validation' neither
    (the models trained on that corpus were selected on it). Metric columns are NULL where the model was
    not evaluated on that split. Columns: model, trained_on, train_rows, provenance, corpus, split, n,
    accuracy(_lo, _hi), roc_auc(_lo, _hi), diagonal (the corpus the model was trained on)."""
    return _df(con, f"""
        WITH sets AS (SELECT corpus, CASE WHEN bool_or(split = 'test') THEN 'test' ELSE 'all' END AS split
                      FROM metrics WHERE split IN ('test', 'all') GROUP BY corpus),
             names AS (SELECT model FROM models UNION SELECT model FROM metrics)
        SELECT n.model, {_PROVENANCE}, s.corpus, s.split, m.n, m.accuracy, m.accuracy_lo, m.accuracy_hi,
               m.roc_auc, m.roc_auc_lo, m.roc_auc_hi, coalesce(k.trained_on = s.corpus, false) AS diagonal
        FROM names n CROSS JOIN sets s
        LEFT JOIN metrics m ON m.model = n.model AND m.corpus = s.corpus AND m.split = s.split
        LEFT JOIN models k ON k.model = n.model
        ORDER BY k.trained_on NULLS LAST, n.model, s.corpus""")


def stored_aucs(con: Con, corpus: str, split: str, models: list[str] | tuple[str, ...]) -> pd.DataFrame:
    """model, roc_auc, pr_auc as jobs.evaluate stored them for this evaluation set."""
    return _df(con, "SELECT model, roc_auc, pr_auc FROM metrics WHERE corpus = $corpus AND split = $split "
                    "AND list_contains($models, model)", {"corpus": corpus, "split": split, "models": list(models)})


# ---------------------------------------------------------------- the cube and its slices


def wide(con: Con, corpus: str) -> Wide | None:
    """The corpus's one-row-per-review table in the summaries (summaries.Wide), if it holds one."""
    return summaries.wide_of(_run(con), corpus)


def cube(con: Con, corpus: str, split: str) -> pd.DataFrame:
    """model, label, length, bin, n, sum_p: the corpus's summary_cube for one split."""
    return _df(con, "SELECT model, label, length, bin, n, sum_p FROM summary_cube "
                    "WHERE corpus = $corpus AND split = $split", {"corpus": corpus, "split": split})


def named_slices(con: Con, corpus: str, field: str) -> set[str]:
    """The values of a kept column that are each a slice of their own in the summaries."""
    return set(_df(con, "SELECT value FROM summary_values WHERE corpus = $corpus AND field = $field AND sliced",
                   {"corpus": corpus, "field": field})["value"]) - {OTHER, MISSING}


def sliced_cube(con: Con, corpus: str, split: str, f: FieldFilter) -> pd.DataFrame:
    """The cube (without length buckets) of the reviews whose column ``f.field`` is one of ``f.values``,
    each a named slice: the sum of those slices' cubes."""
    return _df(con, "SELECT model, label, NULL::VARCHAR AS length, bin, sum(n) AS n, sum(sum_p) AS sum_p "
                    "FROM summary_slices WHERE corpus = $corpus AND split = $split AND field = $field "
                    "AND list_contains($values, value) GROUP BY ALL",
               {"corpus": corpus, "split": split, "field": f.field, "values": list(f.values)})


def live_cube(con: Con, corpus: str, split: str, where: Where, names: list[str]) -> pd.DataFrame:
    """The cube of the reviews that pass the column filters, computed from the summaries' rows (from the
    wide table where it holds every filtered column)."""
    sql, params = summaries.cube_sql(split, where, wide(con, corpus))
    return _df(con, sql, {"corpus": corpus, "split": split, "names": names, **params})


# ---------------------------------------------------------------- kept columns: values, slices, days


def field_kinds(con: Con, corpus: str) -> dict[str, str]:
    """Kept column -> kind, in the file's order."""
    return summaries.field_kinds(_run(con), corpus)


def values(con: Con, corpus: str, field: str) -> pd.DataFrame:
    """value, n of a column's slices as the summaries list them (a categorical column's most frequent
    values, a numeric column's values or buckets, a datetime column's years)."""
    return _df(con, "SELECT value, n FROM summary_values WHERE corpus = $corpus AND field = $field ORDER BY ord",
               {"corpus": corpus, "field": field})


def bounds(con: Con, corpus: str, field: str) -> tuple:
    """(min, max) of a numeric column's numbers, or of a datetime column's days (as datetime.date)."""
    row = _df(con, "SELECT min(num_value) AS lo_n, max(num_value) AS hi_n, min(time_value)::DATE AS lo_t, "
                   "max(time_value)::DATE AS hi_t FROM review_fields WHERE corpus = $corpus AND field = $field",
              {"corpus": corpus, "field": field}).iloc[0]
    if pd.notna(row["lo_t"]):
        return pd.Timestamp(row["lo_t"]).date(), pd.Timestamp(row["hi_t"]).date()
    return (float(row["lo_n"]), float(row["hi_n"])) if pd.notna(row["lo_n"]) else (0.0, 0.0)


def slice_def(con: Con, corpus: str, field: str, kind: str) -> SliceDef:
    """How the column is cut into slices: as the publish recorded it, else decided on the whole corpus."""
    table = wide(con, corpus)
    return (table.slice_def(field) if table else None) or summaries.slice_def(_run(con), corpus, field, kind)


def slice_cube(con: Con, corpus: str, split: str, field: str) -> pd.DataFrame:
    """value, model, label, bin, n, sum_p of a column's slices, from summary_slices."""
    return _df(con, "SELECT value, model, label, bin, n, sum_p FROM summary_slices "
                    "WHERE corpus = $corpus AND split = $split AND field = $field",
               {"corpus": corpus, "split": split, "field": field})


def live_slice_cube(con: Con, corpus: str, split: str, d: SliceDef, where: Where, names: list[str]) -> pd.DataFrame:
    """``slice_cube`` of the reviews that pass the column filters, computed live."""
    sql, params = summaries.slices_sql(d, split, where, wide(con, corpus))
    return _df(con, sql, {**params, "corpus": corpus, "split": split, "names": names})


def days(con: Con, corpus: str, split: str, field: str, models: list[str], where: Where = ()) -> pd.DataFrame:
    """day, model, label, positive (predicted), n of a datetime column: from summary_time, or computed live
    under column filters."""
    if not where:
        return _df(con, "SELECT day, model, label, positive, n FROM summary_time WHERE corpus = $corpus "
                        "AND split = $split AND field = $field AND list_contains($models, model)",
                   {"corpus": corpus, "split": split, "field": field, "models": models})
    sql, params = summaries.time_sql(field, split, where, wide(con, corpus))
    return _df(con, sql, {**params, "corpus": corpus, "split": split, "names": models})


# ---------------------------------------------------------------- training


def training_log(con: Con) -> pd.DataFrame:
    """model, epoch, train_loss, val_loss, train_acc, val_acc, seconds."""
    return _df(con, "SELECT model, epoch, train_loss, val_loss, train_acc, val_acc, seconds "
                    "FROM training_log ORDER BY model, epoch")


def training_terms(con: Con) -> pd.DataFrame:
    """model, step, examples, term, value: the loss curves by term."""
    return _df(con, "SELECT model, step, examples, term, value FROM training_terms ORDER BY model, term, step")
