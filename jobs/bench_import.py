"""Import speed per dump format: write one file of each shape (jobs.make_corpus --shape), import each with
``jobs.score FILE --models none`` in a fresh database, and print reviews/s and peak memory per format; then
the JSON parsers and decompressors the readers could use, on the same reviews.

    python -m jobs.bench_import --rows 1000000 --dir /tmp/bench     # about 20 minutes on 2 cores
    python -m jobs.bench_import --rows 20000 --dir /tmp/bench-small --keep
    python -m jobs.bench_import --rows 14000000 --dir /tmp/b14m --formats polarity-dated --models tfidf-lr --no-parsers

The last is the 14-million-review benchmark: the Amazon polarity shape gzipped, with a synthetic category and
day, imported and scored by tfidf-lr; the table gives reviews/s of each stage (read+clean, models, DuckDB),
the time with the publish, the peak memory and the database's size (the file and its text parts).

Nothing else should run meanwhile: it is a timing. The files are written once and reused (--dir keeps them);
the databases are deleted after each import unless --keep.
"""

from __future__ import annotations

import argparse
import bz2
import gzip
import io
import json
import lzma
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
import pyarrow.json as pa_json
import zstandard

from core import store
from core.paths import default_db
from jobs.common import at_least, log, run_main

# name -> (make_corpus shape, file suffix, the jobs.score options that read it)
FORMATS = {
    "polarity": ("polarity", ".csv", ["--no-header", "--text-col", "2,3", "--label-col", "1",
                                      "--label-map", "1=negative,2=positive"]),
    "polarity-dated": ("polarity-dated", ".csv.gz", ["--no-header", "--text-col", "2,3", "--label-col", "1",
                                                     "--label-map", "1=negative,2=positive"]),
    "amazon": ("amazon", ".json.gz", ["--text-col", "summary,reviewText", "--label-col", "overall",
                                      "--label-kind", "stars"]),
    "yelp": ("yelp", ".json", ["--text-col", "text", "--id-col", "review_id", "--label-col", "stars",
                               "--label-kind", "stars"]),
    "fasttext": ("fasttext", ".txt", ["--text-col", "text", "--label-col", "label",
                                      "--label-map", "1=negative,2=positive"]),
    "csv-gz": ("csv", ".csv.gz", ["--text-col", "review", "--id-col", "id", "--label-col", "sentiment"]),
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m jobs.bench_import", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=at_least(1), default=1_000_000, help="reviews per file (default 1,000,000)")
    p.add_argument("--dir", type=Path, required=True, help="folder for the files and the databases")
    p.add_argument("--db", type=Path, default=None,
                   help="database holding the imdb corpus to resample (default data/reviews.duckdb)")
    p.add_argument("--formats", default=",".join(FORMATS),
                   help=f"comma list of {', '.join(FORMATS)} (default all), or none: only the parsers")
    p.add_argument("--models", default="none", help="models that score each file as it is imported (default none)")
    p.add_argument("--keep", action="store_true", help="keep the databases the imports wrote")
    p.add_argument("--log", type=Path, default=None,
                   help="write each import's own output (its progress lines) to LOG.FORMAT.txt")
    p.add_argument("--no-parsers", action="store_true", help="skip the parser and decompressor comparison")
    return p


STAGE = re.compile(r"([\w+]+) ([\d.]+) s \(")  # "read+clean 11.4 s (49%)" in jobs.score's time line


def remove_db(db: Path) -> None:
    store.texts.remove_database(db, store.view_path(db))


def import_one(name: str, path: Path, db: Path, models: str = "none", log_to: Path | None = None) -> dict:
    options = FORMATS[name][2]
    remove_db(db)
    cmd = [sys.executable, "-m", "jobs.score", str(path), "--db", str(db), "--corpus", name.replace("-", "_"),
           *options, "--models", models]
    log("$ " + " ".join(cmd[1:]))
    with tempfile.TemporaryFile("w+") as stderr:  # a file, not a pipe: a long run's progress never fills it
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=stderr, text=True)
        _, status, usage = os.wait4(proc.pid, 0)  # the child's own peak memory, not this process's
        wall = time.perf_counter() - t0
        stderr.seek(0)
        err = stderr.read()
    if log_to:
        log_to.with_name(f"{log_to.name}.{name}.txt").write_text(err, encoding="utf-8")
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{name}: jobs.score failed\n{err[-2000:]}")
    read = re.search(r"read ([\d,]+) rows in ([\d.]+) s", err)
    rejected = re.search(r"rejected ([\d,]+) this run", err)
    rows, seconds = int(read.group(1).replace(",", "")), float(read.group(2))
    split = re.search(r"time: (.*)", err).group(1)  # "read+clean 11.4 s (49%), models 0.0 s (0%), DuckDB ..."
    return {"format": name, "file_mb": path.stat().st_size / 1e6, "rows": rows,
            "rejected": int(rejected.group(1).replace(",", "")), "job_s": seconds, "wall_s": wall,
            "reviews_per_s": rows / seconds, "peak_mb": usage.ru_maxrss / 1024,
            "db_mb": (db.stat().st_size + store.texts.parts_bytes(db)) / 1e6,  # the file and its texts
            "split": split, "stages": {stage: rows / float(sec) for stage, sec in STAGE.findall(split)
                                       if stage != "other" and float(sec) > 0}}


def parsers(path: Path, lines: int = 50_000) -> list[tuple[str, float]]:
    """Lines/s of each JSON parser on the first ``lines`` lines of a JSON Lines file, and MB/s of each
    decompressor on the same bytes."""
    with open(path, "rb") as f:
        data = b"".join(f.readline() for _ in range(lines))
    n = data.count(b"\n")
    out = []
    for name, loads in (("json (standard library)", json.loads), ("orjson", orjson.loads)):
        t0 = time.perf_counter()
        for line in io.BytesIO(data):
            loads(line)
        out.append((f"{name}, one line at a time", n / (time.perf_counter() - t0)))
    t0 = time.perf_counter()
    pa_json.read_json(io.BytesIO(data)).column("text").to_pylist()
    out.append(("pyarrow.json.read_json, whole block (+ to_pylist of the text)", n / (time.perf_counter() - t0)))
    sample = path.with_name(path.stem + ".sample.json")
    sample.write_bytes(data)
    t0 = time.perf_counter()
    store.duckdb_json_texts(sample)
    out.append(("DuckDB read_json_auto, whole file (+ fetch of the text)", n / (time.perf_counter() - t0)))
    sample.unlink()
    mb = len(data) / 1e6
    for name, compress, reader in (
        ("gzip -6", lambda b: gzip.compress(b, 6), lambda b: gzip.GzipFile(fileobj=io.BytesIO(b))),
        ("bz2 -9", bz2.compress, lambda b: bz2.BZ2File(io.BytesIO(b))),
        ("xz -6", lzma.compress, lambda b: lzma.LZMAFile(io.BytesIO(b))),  # noqa: SIM115 (closed below)
        ("zstd -3", lambda b: zstandard.ZstdCompressor().compress(b),
         lambda b: zstandard.ZstdDecompressor().stream_reader(io.BytesIO(b))),
    ):
        packed = compress(data)
        t0 = time.perf_counter()
        with io.BufferedReader(reader(packed), 1 << 20) as r:
            while r.read(1 << 20):
                pass
        out.append((f"decompress {name} ({len(packed) / len(data):.0%} of the size), MB/s of output",
                    mb / (time.perf_counter() - t0)))
    return out


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.dir.mkdir(parents=True, exist_ok=True)
    names = [n.strip() for n in args.formats.split(",") if n.strip() and n.strip() != "none"]
    unknown = set(names) - set(FORMATS)
    if unknown:
        raise SystemExit(f"unknown formats {sorted(unknown)}; known: {', '.join(FORMATS)}")
    results = []
    for name in names:
        shape, suffix, _ = FORMATS[name]
        path = args.dir / f"{name}_{args.rows}{suffix}"
        if not path.exists():
            subprocess.run([sys.executable, "-m", "jobs.make_corpus", "--rows", str(args.rows), "--shape", shape,
                            "--out", str(path), "--db", str(args.db or default_db())], check=True)
        db = args.dir / f"import_{name}.duckdb"
        results.append(import_one(name, path, db, args.models, args.log))
        log(f"{name}: {results[-1]}")
        if not args.keep:
            remove_db(db)
    if results:
        _table(results)
    if not args.no_parsers:
        yelp = args.dir / f"yelp_{args.rows}.json"
        if not yelp.exists():
            subprocess.run([sys.executable, "-m", "jobs.make_corpus", "--rows", str(min(args.rows, 200_000)),
                            "--shape", "yelp", "--out", str(yelp), "--db", str(args.db or default_db())], check=True)
        print("\n| reader | per second |\n| --- | ---: |")
        for name, rate in parsers(yelp):
            print(f"| {name} | {rate:,.0f} |")
    return 0


def _table(results: list[dict]) -> None:
    print("| format | file | reviews | rejected | reviews/s (job) | job s | wall s (with publish) | peak RSS | "
          "database | reviews/s per stage | where the job's time went |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |")
    for r in results:
        stages = ", ".join(f"{stage} {rate:,.0f}" for stage, rate in r["stages"].items())
        print(f"| {r['format']} | {r['file_mb']:,.0f} MB | {r['rows']:,} | {r['rejected']:,} | "
              f"{r['reviews_per_s']:,.0f} | {r['job_s']:,.1f} | {r['wall_s']:,.1f} | {r['peak_mb']:,.0f} MB | "
              f"{r['db_mb']:,.0f} MB | {stages} | {r['split']} |")


if __name__ == "__main__":
    run_main(main)
