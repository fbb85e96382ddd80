"""What several test modules share (fixtures live in conftest.py): writers of real input files, a read-only
query, the dashboard's entry point for AppTest. No test module imports another."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

from core import store

HOSTILE = ["<img src=x onerror=alert(1)>", "'; DROP TABLE predictions; --", "**bold** <script>alert('x')</script>"]
JOIN_TEXTS = " JOIN texts USING (corpus, rid, review_id)"  # for ``q``: each review's text beside its row
HOME = "../dashboard/Home.py"  # AppTest resolves it against the test file


@dataclass
class Workspace:
    db: Path            # DuckDB file: imdb corpus + corpus 'sample' scored by tfidf-lr and vader, evaluated
    models_dir: Path    # trained tfidf-lr (small, quick) ; vader is built in
    csv: Path           # the labelled sample CSV (columns id, review, sentiment) that was scored
    n_rows: int         # data rows in that CSV


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def q(db: Path, sql: str, params: list | None = None) -> list[tuple]:
    """The rows of one query on a database file, opened read-only. A query that names ``texts`` reads every
    stored text as that table (corpus, rid, review_id, text), from the file's text parts."""
    with duckdb.connect(str(db), read_only=True) as con:
        if re.search(r"\btexts\b", sql):
            con.register("texts", store.texts.every_text(con))
        return con.execute(sql, params or []).fetchall()


def imdb_csv(db: Path, path: Path, n: int) -> Path:
    """n real IMDB reviews of the validation split with their ids (columns id, review, sentiment)."""
    rows = q(db, "SELECT review_id, text, label FROM reviews JOIN texts USING (corpus, rid, review_id) "
                 "WHERE corpus = 'imdb' AND split = 'validation' ORDER BY source_row LIMIT ?", [n])
    return write_csv(path, ["id", "review", "sentiment"], [list(r) for r in rows])


def frames(at) -> list:
    """The data frames an AppTest run drew, in order."""
    return [df.value for df in at.dataframe]


SHOP_HEADER = ["id", "body", "stars", "product", "category", "reviewed", "verified", "votes", "title"]


def shop_rows(texts: list[str]) -> list[list]:
    """Real review texts with the columns a shop export has; reviewed in 'December 24, 2012' form."""
    rows = []
    for i, text in enumerate(texts):
        day = pd.Timestamp("2012-12-01") + pd.Timedelta(days=i)
        rows.append([f"r{i}", text, 1 + i % 5, f"B00{i % 7}", ["Dresses", "Tops", "Shoes"][i % 3],
                     day.strftime("%B %d, %Y"), "Y" if i % 4 else "N", str(i % 11), f"title number {i}"])
    rows[5][5] = "sometime in December"  # a date that does not parse
    rows[6][7] = "n/a"                   # a vote count that does not parse
    rows[7][4] = ""                      # an empty category: no field row, not "unparsed"
    return rows


def score_shop(path: Path, db: Path, models: Path, *extra: str) -> int:
    """jobs.score on a shop file (shop_rows) with tfidf-lr, star labels."""
    from jobs import score

    return score.main([str(path), "--db", str(db), "--corpus", "shop", "--text-col", "body", "--id-col", "id",
                       "--label-col", "stars", "--label-kind", "stars", "--models", "tfidf-lr",
                       "--models-dir", str(models), *extra])
