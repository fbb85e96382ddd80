"""Train / validation / test splits of a user's labelled corpus: made once, stored, never redrawn.

A corpus imported from a file has no split. The first ``jobs.train --corpus NAME`` draws one: each label's
reviews (positive, negative and neutral apart, so every split keeps the corpus's label mix) are put in a
seeded random order and cut 80 / 10 / 10. The split is written into ``reviews.split`` and its recipe into
the corpus's details, so every later training, scoring and evaluation sees the same test reviews. Reviews
that arrive later get a split the same way among themselves (stratified within that batch); a review
never changes split. A file may instead bring its own split column (``jobs.score --split-col``); then
those values are stored as they are and nothing is drawn.

Unlabelled reviews get no split: nothing can be learnt from them or measured on them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SPLITS = ("train", "validation", "test")
SHARES = {"train": 0.8, "validation": 0.1, "test": 0.1}
SEED = 0

# the spellings a split column may use
ALIASES = {
    "train": "train", "training": "train",
    "validation": "validation", "valid": "validation", "val": "validation", "dev": "validation",
    "test": "test", "testing": "test",
}


def normalise_split(raw: str) -> str:
    """One split cell -> train | validation | test; ValueError naming the value otherwise.

    >>> normalise_split(" Dev ")
    'validation'
    """
    split = ALIASES.get(raw.strip().lower())
    if split is None:
        raise ValueError(f"split {raw!r} is not train, validation (val, dev) or test")
    return split


def draw(review_ids: pd.Series, labels: pd.Series, seed: int = SEED,
         shares: dict[str, float] = SHARES) -> pd.Series:
    """A split for each review, stratified by label: within each label, a seeded shuffle cut by ``shares``.

    The same reviews with the same seed always get the same splits (the order of the input does not matter:
    reviews are sorted by id before shuffling). Every split of a label gets at least one review when the
    label has three or more, so a small corpus still has something to validate and test on.

    >>> s = draw(pd.Series([f"r{i}" for i in range(20)]), pd.Series(["positive"] * 10 + ["negative"] * 10))
    >>> dict(sorted(s.value_counts().items()))
    {'test': 2, 'train': 16, 'validation': 2}
    """
    out = pd.Series(index=review_ids.index, dtype=object)
    rng = np.random.default_rng(seed)
    for label in sorted(labels.dropna().unique()):
        ids = review_ids[labels == label].sort_values()
        order = ids.index.to_numpy()[rng.permutation(len(ids))]
        n = len(order)
        n_val, n_test = (round(n * shares[s]) for s in ("validation", "test"))
        if n >= 3:
            n_val, n_test = max(n_val, 1), max(n_test, 1)
        n_train = n - n_val - n_test
        out[order[:n_train]] = "train"
        out[order[n_train:n_train + n_val]] = "validation"
        out[order[n_train + n_val:]] = "test"
    return out


def balance(train: pd.DataFrame, seed: int = SEED) -> pd.DataFrame:
    """Undersample every class of ``train`` (column y) to the size of the smallest, seeded; order kept.

    >>> df = pd.DataFrame({"y": [1] * 6 + [0] * 2})
    >>> balance(df)["y"].tolist()
    [1, 1, 0, 0]
    """
    smallest = int(train["y"].value_counts().min())
    keep = [group.sample(n=smallest, random_state=seed) for _, group in train.groupby("y")]
    return train.loc[sorted(pd.concat(keep).index)].reset_index(drop=True)


def sample(train: pd.DataFrame, rows: int, seed: int = SEED) -> pd.DataFrame:
    """At most ``rows`` reviews of ``train``, keeping its class shares (stratified), seeded; order kept.

    >>> df = pd.DataFrame({"y": [1] * 80 + [0] * 20})
    >>> sample(df, 10)["y"].value_counts().to_dict()
    {1: 8, 0: 2}
    """
    if len(train) <= rows:
        return train
    from sklearn.model_selection import train_test_split

    kept, _ = train_test_split(train, train_size=rows, stratify=train["y"], random_state=seed)
    return train.loc[sorted(kept.index)].reset_index(drop=True)


def ensure_splits(con, corpus: str, seed: int = SEED) -> dict[str, int]:
    """Give every labelled review of ``corpus`` that has none a split (drawn as ``draw`` does), store it and
    the recipe; returns how many reviews got each split now ({} when every labelled review had one)."""
    from core import store

    todo = store.unsplit_labelled(con, corpus)
    if todo.empty:
        return {}
    recipe = store.corpus_details(con, corpus).get("split") or {"drawn": "core.splits", "seed": seed, **SHARES}
    frame = todo.assign(split=draw(todo["review_id"], todo["label"], seed=recipe.get("seed", seed)))
    with store.transaction(con):
        store.set_splits(con, corpus, frame)
        store.set_split_recipe(con, corpus, recipe)
    return frame["split"].value_counts().to_dict()


def split_of_new(reviews: pd.DataFrame, recipe: dict | None) -> pd.Series | None:
    """The splits new reviews are stored with: their file's split column if it has one, else drawn among
    them when the corpus already has a split (so it stays complete), else none (drawn at the first training)."""
    if "split" in reviews and reviews["split"].notna().any():
        return reviews["split"]
    if recipe is None or reviews.empty:
        return None
    drawn = draw(reviews["review_id"], reviews["label"], seed=recipe.get("seed", SEED))
    return drawn.where(reviews["label"].notna(), None)
