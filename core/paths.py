"""Where data, models and the database live. One env var moves all of them (tests use it)."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    return Path(os.environ.get("SENTIMENT_DATA_DIR", REPO_ROOT / "data"))


def models_dir() -> Path:
    return Path(os.environ.get("SENTIMENT_MODELS_DIR", data_dir() / "models"))


def default_db() -> Path:
    return Path(os.environ.get("SENTIMENT_DB", data_dir() / "reviews.duckdb"))


def downloads_dir() -> Path:
    """Downloaded corpora are a cache shared by every data dir (tests use their own data dirs)."""
    return Path(os.environ.get("SENTIMENT_DOWNLOADS", REPO_ROOT / "data" / "downloads"))
