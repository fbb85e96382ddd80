"""Generate a large review corpus by resampling the real IMDB reviews stored in the database.

    python -m jobs.make_corpus --rows 1000000 --out /tmp/big/reviews_1m.csv
    python -m jobs.make_corpus --rows 100000 --out /tmp/big/reviews_100k.parquet --seed 7
    python -m jobs.make_corpus --rows 1000000 --shape amazon --out /tmp/big/amazon_1m.json.gz

--shape writes the reviews the way public dumps ship them, for import benchmarks (jobs.score reads each):
    csv       id,review,sentiment with a header (the default)
    polarity  Zhang et al.'s Amazon/Yelp polarity: no header; class 1|2, title, body
    polarity-dated  the same plus a synthetic category (20 values, skewed) and day (2014-2023, YYYY-MM-DD):
              the 14-million-review benchmark's file (jobs.bench_import --formats polarity-dated)
    amazon    McAuley's Amazon reviews, JSON Lines: reviewerID, asin, reviewText, overall (1.0 | 5.0), summary,
              helpful [up, total], unixReviewTime, reviewTime ("MM DD, YYYY")
    yelp      Yelp's JSON Lines: review_id, business_id, text, stars (1 | 5), useful, date ("YYYY-MM-DD HH:MM:SS")
    fasttext  __label__1 | __label__2, a space, the text
A suffix .gz, .bz2, .xz or .zst after the format's compresses the file. The title is the review's first five
words; the product, the dates and the votes are synthetic (drawn from the row number), for benchmarks only.

Row i of the output is stored labelled imdb review number ``hash64(i, seed) mod n`` (with replacement; n
stored reviews in review_id order; jobs.resample), with a distinct id ``big-000000123`` (i zero-padded to 9
digits) and columns ``id,review,sentiment``, the format that ``jobs.score --text-col review --id-col id
--label-col sentiment`` reads. The same --seed always gives the same rows: a file of 1k rows is the first 1k
rows of one of 1M. The rows are generated in numpy and pyarrow and written a batch at a time, so memory
stays flat at any --rows. The texts are the stored, already cleaned IMDB texts.

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
from functools import partial
from pathlib import Path
from typing import BinaryIO

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import zstandard

from core import store
from core.errors import InputError
from core.paths import default_db
from jobs.common import log, run_main
from jobs.resample import ahead, chunks, hash64, numbered_ids, picks, skewed


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m jobs.make_corpus", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, required=True, help="rows to generate")
    p.add_argument("--out", type=Path, required=True, help="output file, .csv or .parquet (replaced if present)")
    p.add_argument("--db", type=Path, default=None, help="database holding corpus imdb (default data/reviews.duckdb)")
    p.add_argument("--seed", type=int, default=13, help="resampling seed (default 13)")
    p.add_argument("--shape", choices=sorted(["csv", *SHAPES]), default="csv",
                   help="how the file is written: csv (default), polarity, polarity-dated, amazon, yelp, fasttext "
                        "(see above)")
    return p


BATCH_ROWS = 50_000  # rows generated and written at a time
COLUMNS = pa.schema([("id", pa.string()), ("review", pa.string()), ("sentiment", pa.string())])
EPOCH = 1_262_304_000  # 2010-01-01: the synthetic dates run from here, one review a minute


def read_pool(db: Path) -> pa.Table:
    """text and label of the stored labelled imdb reviews, in review_id order: row k is pool review k."""
    with store.open_readable(db, log) as (con, path):
        pool = store.labelled_pool(con, "imdb")
    if pool.num_rows == 0:
        raise InputError(f"{path} holds no imdb reviews: run `make pipeline` (or jobs.train) first")
    log(f"resampling {pool.num_rows:,} labelled imdb reviews of {path}")
    return pool.select(["text", "label"]).combine_chunks()


def resampled(pool: pa.Table, rows: int, seed: int) -> Iterator[tuple[int, pa.Table]]:
    """(start, rows start.. as COLUMNS) of the ``rows`` resampled rows, in order, a batch at a time."""
    def batch(span: tuple[int, int]) -> tuple[int, pa.Table]:
        start, stop = span
        picked = pool.take(picks(start, stop, pool.num_rows, seed))
        return start, pa.table([numbered_ids("big-", start, stop, 9), picked["text"], picked["label"]], schema=COLUMNS)

    yield from ahead(chunks(rows, BATCH_ROWS), batch)


def _title(texts: pd.Series) -> pd.Series:
    """A review's first five words: its synthetic title."""
    return texts.str.split(n=5).str[:5].str.join(" ")


def _polarity(table: pa.Table, start: int, *extra) -> bytes:
    """Polarity rows (class 1|2, title, body), then the ``extra`` columns' values."""
    batch, out = table.to_pandas(), io.StringIO()
    w = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
    w.writerows(zip(batch["sentiment"].map({"negative": "1", "positive": "2"}), _title(batch["review"]),
                    batch["review"], *extra))
    return out.getvalue().encode()


def _polarity_dated(table: pa.Table, start: int) -> bytes:
    """Polarity rows with a category (exponential over 20: 'category 00' the most common) and a day in
    2014-2023, both hashes of the row number."""
    i = np.arange(start, start + table.num_rows)
    day = np.datetime64("2014-01-01") + (hash64(i, _DAY) % np.uint64(3652)).astype(np.int64)
    return _polarity(table, start, [f"category {c:02d}" for c in skewed(hash64(i, _CATEGORY))], day.astype(str))


_CATEGORY, _DAY = 101, 102  # hash streams of the synthetic columns


def _amazon(table: pa.Table, start: int) -> bytes:
    batch, lines = table.to_pandas(), []
    for i, (text, label, title) in enumerate(zip(batch["review"], batch["sentiment"], _title(batch["review"])),
                                             start):
        t = EPOCH + 60 * i
        lines.append(orjson.dumps({
            "reviewerID": f"A{i * 7919 % 1_000_003:07d}", "asin": f"B{i % 5003:09d}", "helpful": [i % 4, i % 7],
            "reviewText": text, "overall": 5.0 if label == "positive" else 1.0, "summary": title,
            "unixReviewTime": t, "reviewTime": time.strftime("%m %d, %Y", time.gmtime(t))}))
    return b"\n".join(lines) + b"\n"


def _yelp(table: pa.Table, start: int) -> bytes:
    batch, lines = table.to_pandas(), []
    for i, (rid, text, label) in enumerate(zip(batch["id"], batch["review"], batch["sentiment"]), start):
        lines.append(orjson.dumps({
            "review_id": rid, "business_id": f"b{i % 997:04d}", "text": text, "stars": 5 if label == "positive" else 1,
            "useful": i % 5, "date": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(EPOCH + 60 * i))}))
    return b"\n".join(lines) + b"\n"


def _fasttext(table: pa.Table, start: int) -> pa.Buffer:
    labels = pc.if_else(pc.equal(table["sentiment"], "positive"), "__label__2 ", "__label__1 ")
    return _values(pc.binary_join_element_wise(labels, table["review"], "\n", ""))


def _values(strings: pa.Array | pa.ChunkedArray) -> pa.Buffer:
    """The bytes of a string array's values end to end: a slice of its data buffer (no copy)."""
    strings = strings.combine_chunks() if isinstance(strings, pa.ChunkedArray) else strings
    offset = np.dtype(np.int64 if pa.types.is_large_string(strings.type) else np.int32)
    offsets = np.frombuffer(strings.buffers()[1], offset, len(strings) + 1, strings.offset * offset.itemsize)
    return strings.buffers()[2][offsets[0]:offsets[-1]]


# a batch's rows (COLUMNS; ``start`` the number of the first) -> the bytes of the file that hold them
SHAPES: dict[str, Callable[[pa.Table, int], bytes | pa.Buffer]] = {
    "polarity": _polarity, "polarity-dated": _polarity_dated, "amazon": _amazon, "yelp": _yelp, "fasttext": _fasttext}
# gzip at level 1: far faster to write than the module's default 9, for a slightly larger file that reads back
# as fast (measured in docs/results/2026-12-07-publish-14m.md)
COMPRESSORS = {".gz": partial(gzip.open, compresslevel=1), ".bz2": bz2.open, ".xz": lzma.open, ".zst": zstandard.open}


def write_shape(out: Path, pool: pa.Table, rows: int, seed: int, shape: str) -> None:
    """Write ``rows`` resampled reviews in a dump's shape, compressed as the suffix says."""
    compress = COMPRESSORS.get(out.suffix.lower())
    with (compress(out, "wb") if compress else open(out, "wb")) as f:
        if shape == "csv":
            write_csv(f, pool, rows, seed)
            return
        for start, batch in resampled(pool, rows, seed):
            f.write(SHAPES[shape](batch, start))


def write_csv(f: BinaryIO, pool: pa.Table, rows: int, seed: int) -> None:
    """id,review,sentiment lines after a header; a cell holding a comma, a quote or a line break is quoted
    and its quotes doubled (what csv.QUOTE_MINIMAL writes). All of a line after its id depends on its pool
    review alone, so it is made once per pool review; a batch is then a take and a join in Arrow."""
    text = pool["text"]
    quoted = pc.binary_join_element_wise('"', pc.replace_substring(text, '"', '""'), '"', "")
    cells = pc.if_else(pc.match_substring_regex(text, '[",\r\n]'), quoted, text)
    ends = pc.binary_join_element_wise(pool["label"], "\n", "")
    tails = pc.binary_join_element_wise("", cells, ends, ",").combine_chunks()  # ,review,sentiment\n

    def lines(span: tuple[int, int]) -> pa.Buffer:
        start, stop = span
        return _values(pc.binary_join_element_wise(
            numbered_ids("big-", start, stop, 9), tails.take(picks(start, stop, len(tails), seed)), ""))

    f.write(",".join(COLUMNS.names).encode() + b"\n")
    f.writelines(ahead(chunks(rows, BATCH_ROWS), lines))


def write_parquet(out: Path, pool: pa.Table, rows: int, seed: int) -> None:
    """Write ``rows`` resampled reviews as Parquet (zstd), a row group per batch."""
    with pq.ParquetWriter(out, COLUMNS, compression="zstd") as w:
        for _, batch in resampled(pool, rows, seed):
            w.write_table(batch)


def make_corpus(out: Path, rows: int, db: Path, seed: int, shape: str = "csv") -> int:
    """Write ``rows`` resampled reviews to ``out``: the csv shape as .csv or .parquet, or any shape compressed
    by its suffix (COMPRESSORS) or plain; return the number of stored reviews they are drawn from."""
    suffix = out.suffix.lower()
    if rows < 1:
        raise InputError("--rows must be at least 1")
    if shape == "csv" and suffix not in COMPRESSORS and suffix not in (".csv", ".parquet"):
        raise InputError(f"{out}: unknown file type {suffix or '(none)'}; give a .csv or .parquet file")
    pool = read_pool(db)
    out.parent.mkdir(parents=True, exist_ok=True)
    if shape == "csv" and suffix == ".parquet":
        write_parquet(out, pool, rows, seed)
    else:
        write_shape(out, pool, rows, seed, shape)
    return pool.num_rows


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    t0 = time.perf_counter()
    make_corpus(args.out, args.rows, args.db or default_db(), args.seed, args.shape)
    log(f"wrote {args.rows:,} rows to {args.out} ({args.out.stat().st_size / 1e6:,.0f} MB) "
        f"in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    run_main(main)
