"""Every column of the user's file kept: jobs.score stores the columns that have no role in review_fields,
each read as its inferred (or --col-type) kind; dates in a non-ISO format parse, a cell that does not parse
keeps its text and is counted, a resumed or second file adds nothing twice and is read the same way."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.errors import InputError
from tests.helpers import score_shop as run
from tests.helpers import write_csv


def fields(db: Path) -> pd.DataFrame:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute("SELECT * FROM review_fields ORDER BY field, review_id").df()


def test_every_other_column_is_kept_with_its_kind(shop, capsys):
    path, db, models = shop
    assert run(path, db, models) == 0
    f = fields(db)
    kinds = f.groupby("field")["kind"].first().to_dict()
    assert kinds == {"product": "categorical", "category": "categorical", "reviewed": "datetime",
                     "verified": "boolean", "votes": "numeric", "title": "text"}
    counts = f.groupby("field").size().to_dict()
    assert counts == {"product": 60, "category": 59, "reviewed": 60, "verified": 60, "votes": 60, "title": 60}
    reviewed = f[f.field == "reviewed"].set_index("review_id")
    assert reviewed.loc["r0", "time_value"] == pd.Timestamp("2012-12-01")
    assert reviewed.loc["r59", "time_value"] == pd.Timestamp("2013-01-29")
    assert pd.isna(reviewed.loc["r5", "time_value"]) and reviewed.loc["r5", "text_value"] == "sometime in December"
    votes = f[f.field == "votes"].set_index("review_id")
    assert votes.loc["r10", "num_value"] == 10.0 and votes.loc["r6", "text_value"] == "n/a"
    verified = f[f.field == "verified"].set_index("review_id")["num_value"]
    assert verified["r0"] == 0.0 and verified["r1"] == 1.0
    err = capsys.readouterr().err
    assert "reviewed (datetime, %B %d, %Y, 1 unparsed)" in err and "votes (numeric, 1 unparsed)" in err
    with duckdb.connect(str(db), read_only=True) as con:  # the roles are not fields, and every review is scored
        assert con.execute("SELECT count(*) FROM predictions WHERE corpus = 'shop'").fetchone()[0] == 60
        assert '"reviewed": {"kind": "datetime", "format": "%B %d, %Y"}' in con.execute(
            "SELECT details FROM corpora WHERE corpus = 'shop'").fetchone()[0]

    assert run(path, db, models) == 0  # the same file again: nothing stored twice
    assert len(fields(db)) == len(f)


def test_keep_cols_and_col_type(shop):
    path, db, models = shop
    assert run(path, db, models, "--keep-cols", "product,votes", "--col-type", "votes=text") == 0
    f = fields(db)
    assert f.groupby("field")["kind"].first().to_dict() == {"product": "categorical", "votes": "text"}
    assert f[f.field == "votes"]["text_value"].notna().all()


def test_none_kept(shop):
    path, db, models = shop
    assert run(path, db, models, "--keep-cols", "none") == 0
    assert fields(db).empty


def test_a_later_file_is_read_with_the_kinds_stored(shop, tmp_path):
    path, db, models = shop
    assert run(path, db, models, "--keep-cols", "votes") == 0
    later = write_csv(tmp_path / "later.csv", ["id", "body", "stars", "votes"],
                      [[f"x{i}", "A fine product, works well.", 5, "many" if i % 2 else "3"] for i in range(20)])
    assert run(later, db, models, "--keep-cols", "votes") == 0
    votes = fields(db).set_index("review_id")
    assert (votes.loc[[f"x{i}" for i in range(20)], "kind"] == "numeric").all()  # not re-inferred as categorical
    assert votes.loc["x1", "text_value"] == "many" and votes.loc["x0", "num_value"] == 3.0


@pytest.mark.parametrize(("extra", "message"), [
    (["--keep-cols", "colour"], "no column 'colour' to keep"),
    (["--keep-cols", "body"], "column 'body' is already mapped to a role"),
    (["--col-type", "votes=date"], "unknown kind 'date'"),
    (["--col-type", "votes"], "COLUMN=KIND"),
    (["--keep-cols", "product", "--col-type", "votes=numeric"], "which --keep-cols does not keep"),
])
def test_bad_column_options_name_the_problem(shop, extra, message):
    path, db, models = shop
    with pytest.raises(InputError, match=message):
        run(path, db, models, *extra)


def test_parquet_scalar_columns_kept_and_nested_ones_skipped_or_refused(scored_db, tmp_path):
    table = pa.table({"id": ["a", "b", "c"], "body": ["Great shoes.", "Awful fit.", "Fine."], "stars": [5, 1, 4],
                      "helpful": [3, None, 0], "asked": pa.array([[1], [2], []], type=pa.list_(pa.int64())),
                      "when": pa.array(pd.to_datetime(["2020-01-02", "2020-03-04", None]))})
    path = tmp_path / "shop.parquet"
    pq.write_table(table, path)
    db = tmp_path / "p.duckdb"
    assert run(path, db, scored_db.models_dir) == 0
    f = fields(db)
    assert f.groupby("field")["kind"].first().to_dict() == {"helpful": "numeric", "when": "datetime"}
    assert len(f[f.field == "helpful"]) == 2 and len(f[f.field == "when"]) == 2  # nulls are no rows
    assert f[f.field == "when"]["time_value"].min() == pd.Timestamp("2020-01-02")
    with pytest.raises(InputError, match="column 'asked' holds lists or structs"):
        run(path, db, scored_db.models_dir, "--keep-cols", "asked")


def test_a_column_asked_to_be_dates_keeps_the_format_that_reads_most(scored_db, tmp_path):
    """--col-type when=datetime on a column that is mostly 'unknown' (inferred, it would be categorical): the
    format that reads the most of it is recorded, so every chunk reads it alike, and the rest is counted."""
    rows = [[f"w{i}", "Arrived quickly, works as described.", 4, "12/24/2012" if i % 3 == 0 else "unknown"]
            for i in range(30)]
    path = write_csv(tmp_path / "when.csv", ["id", "body", "stars", "when"], rows)
    db = tmp_path / "w.duckdb"
    assert run(path, db, scored_db.models_dir, "--col-type", "when=datetime", "--chunk-rows", "7") == 0
    f = fields(db)
    assert (f["kind"] == "datetime").all() and f["time_value"].notna().sum() == 10
    assert f[f["time_value"].isna()]["text_value"].eq("unknown").all()
    with duckdb.connect(str(db), read_only=True) as con:
        assert '"when": {"kind": "datetime", "format": "%m/%d/%Y"}' in con.execute(
            "SELECT details FROM corpora WHERE corpus = 'shop'").fetchone()[0]
