"""Helpers shared by the neural models (lstm, bert, bitbert): head+tail truncation, length-grouped batches,
device / thread / seed setup and a rate-limited training progress line."""

from __future__ import annotations

import os
import random
from collections.abc import Sequence

import numpy as np
import torch


def pick_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def setup_torch(seed: int) -> None:
    """Fixed seeds everywhere; all cores for intra-op work (torch's default can be lower in containers)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(max(os.cpu_count() or 1, 1))
    torch.set_flush_denormal(True)  # denormals slow CPU matmuls by up to 25x (BitLinear, small LSTMs)


def clip_chars(text: str, max_tokens: int, chars_per_token: int = 16) -> str:
    """Cut a huge text (a 1 MB review) before tokenising it, keeping enough head and tail for ``max_tokens``.

    No tokenizer yields fewer than one token per 16 characters of real text, so nothing that head+tail
    truncation would keep is lost, and tokenising cost stays bounded.
    """
    keep = max_tokens * chars_per_token
    if len(text) <= 2 * keep:
        return text
    return text[:keep] + " " + text[-keep:]


def head_tail(ids: Sequence[int], budget: int, head_frac: float = 0.25) -> list[int]:
    """Keep the first ``head_frac`` and the last ``1 - head_frac`` of a token budget.

    Reviews often state the verdict at the end ("...but overall, a waste of time"), so a head-only cut loses
    the most informative part (Sun et al. 2019, "How to fine-tune BERT for text classification").
    """
    ids = list(ids)
    if len(ids) <= budget:
        return ids
    head = int(budget * head_frac)
    tail = budget - head
    return ids[:head] + (ids[-tail:] if tail else [])


def length_batches(lengths: Sequence[int], batch_size: int, shuffle: bool = False,
                   rng: np.random.Generator | None = None, pool: int = 50) -> list[np.ndarray]:
    """Index batches of similar lengths, so padding is small.

    Training (shuffle=True): shuffle, then sort inside pools of ``pool`` batches and shuffle the batch
    order, so batches are length-homogeneous yet still random. Inference: one global sort.
    """
    lengths = np.asarray(lengths)
    if not shuffle:
        order = np.argsort(-lengths, kind="stable")  # longest first: a memory problem shows up at once
        return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    rng = rng or np.random.default_rng(0)
    order = rng.permutation(len(lengths))
    span = batch_size * pool
    chunks = []
    for start in range(0, len(order), span):
        part = order[start:start + span]
        part = part[np.argsort(lengths[part], kind="stable")]
        chunks += [part[i:i + batch_size] for i in range(0, len(part), batch_size)]
    return [chunks[i] for i in rng.permutation(len(chunks))]


def pad_batch(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids (B, T) and lengths (B,)."""
    lengths = torch.tensor([len(s) for s in seqs], dtype=torch.long)
    out = torch.full((len(seqs), int(lengths.max())), pad_id, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, :len(s)] = torch.as_tensor(s, dtype=torch.long)
    return out, lengths


def subset(df, rows: int | None, seed: int):
    """A stratification-free random subset of ``rows`` rows (all rows when None or larger)."""
    return subset_and_rest(df, rows, seed)[0]


def subset_and_rest(df, rows: int | None, seed: int):
    """(subset(df, rows, seed), the rows it left out)."""
    if rows is None or rows >= len(df):
        return df.reset_index(drop=True), df.iloc[:0]
    picked = df.sample(n=rows, random_state=seed)
    return picked.reset_index(drop=True), df.drop(picked.index).reset_index(drop=True)
