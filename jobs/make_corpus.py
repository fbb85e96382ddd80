"""Generate a large review corpus by resampling the real IMDB reviews stored in the database.

    python -m jobs.make_corpus --rows 1000000 --out /tmp/big/reviews_1m.csv
    python -m jobs.make_corpus --rows 100000 --out /tmp/big/reviews_100k.parquet --seed 7
    python -m jobs.make_corpus --rows 1000000 --shape amazon --out /tmp/big/amazon_1m.json.gz

--shape writes the reviews the way public dumps ship them, for import benchmarks (jobs.score reads each):
    csv       id,review,sentiment with a header (the default)
    polarity  Zhang et al.'s Amazon/Yelp polarity: no header; class 1|2, title, body
    amazon    McAuley's Amazon reviews, JSON Lines: reviewerID, asin, reviewText, overall (1.0 | 5.0), summary,
              helpful [up, total], unixReviewTime, reviewTime ("MM DD, YYYY")
    yelp      Yelp's JSON Lines: review_id, business_id, text, stars (1 | 5), useful, date ("YYYY-MM-DD HH:MM:SS")
    fasttext  __label__1 | __label__2, a space, the text
A suffix .gz, .bz2, .xz or .zst after the format's compresses the file. The title is the review's first five
words; the product, the dates and the votes are synthetic (drawn from the row number), for benchmarks only.

Row i of the output is the stored imdb review number ``hash(i, seed) mod n`` (with replacement), with a
distinct id ``big-000000123`` (i zero-padded to 9 digits) and columns ``id,review,sentiment``, the format
that ``jobs.score --text-col review --id-col id --label-col sentiment`` reads. The same --rows and --seed
always give the same file. Everything runs inside DuckDB (``COPY (SELECT ...) TO``), which streams the
output, so memory stays flat at any --rows. The texts are the stored, already cleaned IMDB texts.

The source database is opened read-only; if a job holds it read-write, its published view copy
(``reviews.view.duckdb``) is used instead.
"""

from __future__ import annotations

import argparse
import bz2
import csv
import gzip
import io
import lzma
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pandas as pd
import zstandard

from core import store
from core.errors import InputError
from core.paths import default_db
from jobs.common import log, run_main


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m jobs.make_corpus", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, required=True, help="rows to generate")
    p.add_argument("--out", type=Path, required=True, help="output file, .csv or .parquet (replaced if present)")
    p.add_argument("--db", type=Path, default=None, help="database holding corpus imdb (default data/reviews.duckdb)")
    p.add_argument("--seed", type=int, default=13, help="resampling seed (default 13)")
    p.add_argument("--shape", choices=sorted(SHAPES), default="csv",
                   help="how the file is written: csv (default), polarity, amazon, yelp, fasttext (see above)")
    return p


EPOCH = 1_262_304_000  # 2010-01-01: the synthetic dates run from here, one review a minute


def _title(texts: pd.Series) -> pd.Series:
    """A review's first five words: its synthetic title."""
    return texts.str.split(n=5).str[:5].str.join(" ")


def _polarity(batch: pd.DataFrame, start: int) -> Iterator[str]:
    out = io.StringIO()
    w = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
    w.writerows(zip(batch["sentiment"].map({"negative": "1", "positive": "2"}), _title(batch["review"]),
                    batch["review"]))
    yield out.getvalue()


def _amazon(batch: pd.DataFrame, start: int) -> Iterator[str]:
    rows = zip(batch["review"], batch["sentiment"], _title(batch["review"]))
    for i, (text, label, title) in enumerate(rows, start):
        t = EPOCH + 60 * i
        yield orjson.dumps({
            "reviewerID": f"A{i * 7919 % 1_000_003:07d}", "asin": f"B{i % 5003:09d}", "helpful": [i % 4, i % 7],
            "reviewText": text, "overall": 5.0 if label == "positive" else 1.0, "summary": title,
            "unixReviewTime": t, "reviewTime": time.strftime("%m %d, %Y", time.gmtime(t))}).decode() + "\n"


def _yelp(batch: pd.DataFrame, start: int) -> Iterator[str]:
    for i, (rid, text, label) in enumerate(zip(batch["id"], batch["review"], batch["sentiment"]), start):
        yield orjson.dumps({
            "review_id": rid, "business_id": f"b{i % 997:04d}", "text": text, "stars": 5 if label == "positive" else 1,
            "useful": i % 5, "date": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(EPOCH + 60 * i))}).decode() + "\n"


def _fasttext(batch: pd.DataFrame, start: int) -> Iterator[str]:
    labels = batch["sentiment"].map({"negative": "__label__1 ", "positive": "__label__2 "})
    yield "".join(labels + batch["review"] + "\n")


def _csv(batch: pd.DataFrame, start: int) -> Iterator[str]:
    out = io.StringIO()
    batch.to_csv(out, index=False, header=start == 0, lineterminator="\n")
    yield out.getvalue()


SHAPES: dict[str, Callable[[pd.DataFrame, int], Iterator[str]]] = {
    "csv": _csv, "polarity": _polarity, "amazon": _amazon, "yelp": _yelp, "fasttext": _fasttext}
COMPRESSORS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open, ".zst": zstandard.open}


def write_shape(out: Path, rows: int, db: Path, seed: int, shape: str) -> None:
    """Write ``rows`` resampled reviews in a dump's shape, compressed as the suffix says."""
    compress = COMPRESSORS.get(out.suffix.lower())
    with (compress(out, "wb") if compress else open(out, "wb")) as f:
        start = 0
        for batch in store.resampled_imdb_batches(db, rows, seed, 50_000, log):
            f.write("".join(SHAPES[shape](batch, start)).encode())
            start += len(batch)


def make_corpus(out: Path, rows: int, db: Path, seed: int, shape: str = "csv") -> int | None:
    """Write ``rows`` resampled reviews to ``out``; return the number of distinct source reviews (plain
    csv and parquet) or None (the other shapes)."""
    suffix = out.suffix.lower()
    if rows < 1:
        raise InputError("--rows must be at least 1")
    if shape != "csv" or suffix in COMPRESSORS:
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            write_shape(out, rows, db, seed, shape)
        except LookupError as e:
            raise InputError(f"{e}: run `make pipeline` (or jobs.train) first") from e
        return None
    if suffix not in store.EXPORT_FORMATS:
        raise InputError(f"{out}: unknown file type {suffix or '(none)'}; give a .csv or .parquet file")
    if rows < 1:
        raise InputError("--rows must be at least 1")
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        return store.export_resampled_imdb(db, out, rows, seed, log)
    except LookupError as e:
        raise InputError(f"{e}: run `make pipeline` (or jobs.train) first") from e


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    t0 = time.perf_counter()
    make_corpus(args.out, args.rows, args.db or default_db(), args.seed, args.shape)
    log(f"wrote {args.rows:,} rows to {args.out} ({args.out.stat().st_size / 1e6:,.0f} MB) "
        f"in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    run_main(main)
