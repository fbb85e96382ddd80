"""BitBERT: the bert classifier with EVERY encoder nn.Linear (attention q/k/v/output, intermediate, output
dense) replaced by a b1.58 BitLinear (``bitlinear-pytorch``: ternary absmean weights, 8-bit per-token absmax
activations, straight-through estimator), initialised from the pretrained weights, trained quantization-aware.

After training each BitLinear is frozen into a ``TernaryLinear`` that holds only int8 codes in {-1, 0, 1}
and one fp32 scale. On the CPU predict_proba runs them in integer arithmetic: each token's activations are
quantized to int8 (per-token absmax, as in training), multiplied by the ternary codes by the integer kernel
that measures fastest on this CPU (core.kernels: ``torch._int_mm`` with AVX-512 VNNI, fbgemm's
uint8 x int8 GEMM on AVX2; int32 sums, exact for ternary codes on both), then rescaled once. Where no
integer kernel is as fast as fp32, the training-time arithmetic runs instead (the codes as fp32 numbers:
``set_precision("float")``), which jobs.bench also uses to measure that both give the same predictions.
The checkpoint packs the codes 2 bits each (4 per uint8) in safetensors and stores the word embeddings in
fp16 or int8 (per-row scale); the in-memory model is rounded the same way when it is frozen, so a reloaded
model gives identical predictions.
Files: model.json, config.json (transformers config), bitbert.safetensors, tokenizer files. No pickle.

Distillation (``kd_logits`` / ``kd_hidden`` > 0): a trained full-precision bert (``teacher``; by default the
``pretrained`` folder the student starts from) teaches the student. The loss of a batch is
    ce * cross-entropy(labels)                       the labelled reviews only
  + kd_logits * T^2 * KL(teacher || student at temperature T)
  + kd_hidden * mean over layers of MSE(student, teacher hidden states)   real tokens only
  + kd_attn * mean over Q, K, V of KL(teacher || student relations)      the last layer, as MiniLMv2
as TernaryBERT does with hidden states, and BitDistill with the relations: softmax(X X^T / sqrt(d)) per head
for X = the last layer's queries, keys and values. The teacher's logits are computed once, before the first
step; its hidden states and relations on the fly. Every 1/50 of the steps each weighted term's mean goes to
``loss_curve``, which jobs.train records (training_terms). ``unlabelled`` more reviews of the train split
(never validation or test) join without their labels: they are learnt from the teacher alone. The quantization is ramped in
over the first ``ramp`` share of the steps (weights and activations move linearly from fp32 to their
quantized values), so the student starts as its teacher. ``subln`` puts an RMSNorm (BitNet's SubLN) before each
attention output and FFN down projection, its gain calibrated on one batch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from bitlinear_pytorch import BitLinear
from bitlinear_pytorch.bitlinear import act_quant, weight_quant
from safetensors.torch import load_file, save_file
from torch import nn

from core import kernels
from core.models import write_manifest
from core.models.bert import BertClassifier, BertConfig, encoder_children, padding_mask
from core.models.text_batching import length_batches, pad_batch, setup_torch
from core.progress import Progress

KIND = "bitbert"
WEIGHTS = "bitbert.safetensors"
CURVE_POINTS = 50  # points per term in the recorded loss curve (training_terms), over the whole training


@dataclass
class BitBertConfig(BertConfig):
    lr: float = 5e-4                  # ternary weights need bigger steps to flip than fp32 fine-tuning:
    #                                   with too small a step the loss stays at chance
    embeddings: str = "fp16"          # how the word embeddings are stored: fp16 | int8 (per-row scale) | fp32
    teacher: str | None = None        # a trained bert folder; None = the `pretrained` folder, when distilling
    ce: float = 1.0                   # weight of the cross-entropy on the labels
    kd_logits: float = 0.0            # weight of the KL to the teacher's logits (0: no distillation)
    kd_hidden: float = 0.0            # weight of the MSE to the teacher's hidden states, every layer
    kd_attn: float = 0.0              # weight of the KL to the teacher's last-layer Q-Q, K-K, V-V relations
    temperature: float = 2.0
    unlabelled: int = 0               # extra train-split reviews learnt from the teacher alone (needs kd_logits)
    ramp: float = 0.0                 # share of the steps over which the quantization is ramped in
    subln: bool = False               # an RMSNorm (SubLN) before each attention output and FFN down projection


PRESETS: dict[str, BitBertConfig] = {
    # 2,000 reviews x 2 epochs at 128 tokens. Start it from a fine-tuned bert (`--set pretrained=DIR`, as the
    # Makefile does with bert-quick): from raw MiniLM the student stays far below its teacher. One epoch over
    # so few reviews leaves the student under-trained, distilled or not; a second one is worth its time. The
    # class default lr (5e-4) does worse here, hence 2e-4. Figures in
    # docs/results/2026-12-bitbert-distillation.md.
    "quick": BitBertConfig(train_rows=2_000, val_rows=500, epochs=2, max_len=128, lr=2e-4),
    "full": BitBertConfig(max_len=256, epochs=3, batch_size=32),
    # the CPU budget run, started from a fine-tuned bert (`--set pretrained=data/models/bert-cpu`): all 6 layers
    # trained quantization-aware in fp32 (8-bit activation rounding is not bf16-safe) at 256 tokens. Freezing
    # the lower 3 layers as bert's cpu preset does (their ternary outputs cached) is cheaper but loses too
    # much: ternary weights that the training never adjusts cannot make up for their rounding. Distilled from
    # bert-cpu (logits + every layer's hidden states, weights 1), over 12,000 reviews x 1 epoch rather than
    # 6,000 x 2: for the same steps, more reviews beat more epochs. Figures in
    # docs/results/2026-12-bitbert-distillation.md.
    "cpu": BitBertConfig(max_len=256, epochs=1, batch_size=16, lr=2e-4, train_rows=12_000, val_rows=1_000,
                         kd_logits=1.0, kd_hidden=1.0),
}


class RampBitLinear(BitLinear):
    """bitlinear-pytorch's BitLinear, with ``mix`` of its quantization applied (0: fp32, 1: b1.58, as
    BitLinear itself); the straight-through gradient is unchanged."""

    mix = 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mix >= 1.0:
            return super().forward(x)
        x_q = x + self.mix * (act_quant(x) - x).detach()
        w_q = self.weight + self.mix * (weight_quant(self.weight) - self.weight).detach()
        return F.linear(x_q, w_q, self.bias)


class TernaryLinear(nn.Module):
    """Inference form of a trained BitLinear: y = (act_quant(x) @ codes.T) * scale + bias."""

    kernel = "float"  # an integer kernel of core.kernels (int_mm, fbgemm), or the training-time fp32 arithmetic

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.register_buffer("codes", torch.zeros(out_features, in_features, dtype=torch.int8))  # {-1,0,1}
        self.register_buffer("scale", torch.ones((), dtype=torch.float32))  # mean |w| of the latent weights
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        self._packed: tuple[str, object] | None = None  # (kernel or dtype, the codes as that path reads them)

    @classmethod
    def from_bitlinear(cls, layer: nn.Linear) -> TernaryLinear:
        out = cls(layer.in_features, layer.out_features, layer.bias is not None)
        w = layer.weight.detach().float()
        inv = 1.0 / w.abs().mean().clamp(min=1e-5)  # exactly bitlinear_pytorch.weight_quant's scale
        out.codes.copy_((w * inv).round().clamp(-1, 1).to(torch.int8))
        out.scale.fill_(float(1.0 / inv))
        if layer.bias is not None:
            out.bias.data.copy_(layer.bias.detach())
        return out.to(layer.weight.device)

    def _apply(self, fn, *args, **kwargs):
        self._packed = None  # device / dtype moves invalidate the cached codes
        return super()._apply(fn, *args, **kwargs)

    def packed_codes(self, path: str, dtype: torch.dtype = torch.float32):
        """The codes as ``path`` reads them, made once: packed for an integer kernel, or (out, in) in ``dtype``
        for the float path. compile() asks for them before tracing, since a cache filled inside a traced
        forward makes the trace start again."""
        key = path if path != "float" else f"float:{dtype}"
        if self._packed is None or self._packed[0] != key:
            codes = self.codes.to(dtype) if path == "float" else kernels.pack(self.codes, path)
            self._packed = (key, codes)
        return self._packed[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kernel != "float" and x.device.type == "cpu":
            return kernels.int8_matmul(x, self.packed_codes(self.kernel), self.scale, self.bias,
                                       self.out_features, self.kernel)  # (..., out)
        y = F.linear(act_quant(x), self.packed_codes("float", x.dtype)) * self.scale  # (..., out): {-1,0,1} matmul
        return y + self.bias if self.bias is not None else y


class SubLN(nn.Module):
    """BitNet's sub-layer norm: an RMSNorm with a per-channel gain in front of a projection whose input no
    LayerNorm precedes (the attention output, the FFN down projection), so the gain can shrink the channels
    whose outliers would dominate that projection's 8-bit absmax activations. A pretrained layer did not
    expect normalised input: ``calibrate_subln`` starts each gain at the mean RMS of its input on one
    batch, so the projection's input keeps about its old scale."""

    def __init__(self, width: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(width))
        self.register_buffer("calibrated", torch.zeros((), dtype=torch.bool))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rms = x.float().pow(2).mean(-1, keepdim=True).add(self.eps).sqrt()  # (..., 1)
        if not self.calibrated:
            self.weight.data.fill_(float(rms.mean()))
            self.calibrated.fill_(True)
        return (x.float() / rms * self.weight).to(x.dtype)


def add_subln(net: nn.Module) -> int:
    """Put a SubLN in front of every encoder layer's attention output and FFN down projection."""
    count = 0
    for layer in net.base_model.encoder.layer:
        for parent in (layer.attention.output, layer.output):
            if not isinstance(parent.dense, nn.Sequential):
                parent.dense = nn.Sequential(SubLN(parent.dense.in_features).to(parent.dense.weight.device),
                                             parent.dense)
                count += 1
    return count


def calibrate_subln(model: BertClassifier, seqs: list[list[int]]) -> None:
    """One forward pass over ``seqs`` sets the gain of every SubLN not yet calibrated."""
    ids, lengths = pad_batch(seqs, model.tokenizer.pad_token_id)  # (B, T)
    with torch.no_grad():
        model.net(input_ids=ids.to(model.device), attention_mask=padding_mask(lengths, ids.size(1)).to(model.device))


def teacher_logits(teacher: BertClassifier, seqs: list[list[int]], batch_size: int, progress) -> torch.Tensor:
    """The teacher's logits of every training review, computed once: (N, 2) float32."""
    out = torch.empty(len(seqs), 2)
    ticker = Progress("bitbert teacher", len(seqs), "reviews", emit=progress, every=10.0)
    teacher.net.eval()
    with torch.inference_mode():
        for idx in length_batches([len(s) for s in seqs], batch_size):
            out[idx] = teacher._logits([seqs[i] for i in idx]).float().cpu()
            ticker.update(len(idx))
    return out


@contextmanager
def last_qkv(net: nn.Module, on: bool = True) -> Iterator[dict[int, torch.Tensor]]:
    """While open, {0: Q, 1: K, 2: V}, each (B, T, C): the last encoder layer's projections of the latest
    forward pass (forward hooks, removed on exit). Yields an empty dict when not ``on``."""
    seen: dict[int, torch.Tensor] = {}
    attention = net.base_model.encoder.layer[-1].attention.self
    hooks = [layer.register_forward_hook(lambda _m, _x, y, k=k: seen.__setitem__(k, y))
             for k, layer in enumerate((attention.query, attention.key, attention.value))] if on else []
    try:
        yield seen
    finally:
        for hook in hooks:
            hook.remove()


def relation_kl(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor, heads: int) -> torch.Tensor:
    """MiniLMv2's self-attention relation loss for one of Q, K, V: KL(teacher || student) between each head's
    softmax(X X^T / sqrt(d)) over the real tokens, averaged over heads and real query tokens.
    student, teacher: (B, T, C); mask: (B, T) bool, True = a real token."""
    b, t, c = student.shape
    keys = mask[:, None, None, :]  # (B, 1, 1, T)

    def relations(x: torch.Tensor) -> torch.Tensor:
        x = x.float().view(b, t, heads, c // heads).transpose(1, 2)  # (B, H, T, d)
        scores = x @ x.transpose(-1, -2) / math.sqrt(c // heads)  # (B, H, T, T)
        return scores.masked_fill(~keys, float("-inf")).log_softmax(-1)

    log_s, log_t = relations(student), relations(teacher)
    kl = (log_t.exp() * (log_t - log_s).masked_fill(~keys, 0.0)).sum(-1)  # (B, H, T)
    queries = mask[:, None, :].float()  # (B, 1, T)
    return (kl * queries).sum() / (queries.sum() * heads)


def encoder_linears(net: nn.Module) -> list[tuple[nn.Module, str, nn.Module]]:
    """(parent, attribute, layer) for every nn.Linear / BitLinear / TernaryLinear inside the encoder."""
    return encoder_children(net, (nn.Linear, TernaryLinear))


def to_bitlinear(net: nn.Module) -> int:
    """Swap each encoder nn.Linear for a BitLinear holding the same (pretrained) weights."""
    count = 0
    for parent, name, layer in encoder_linears(net):
        if isinstance(layer, BitLinear):
            continue
        bit = RampBitLinear(layer.in_features, layer.out_features, bias=layer.bias is not None,
                            device=layer.weight.device)
        bit.weight.data.copy_(layer.weight.data)
        if layer.bias is not None:
            bit.bias.data.copy_(layer.bias.data)
        setattr(parent, name, bit)
        count += 1
    return count


def to_ternary(net: nn.Module) -> None:
    for parent, name, layer in encoder_linears(net):
        if isinstance(layer, BitLinear):
            setattr(parent, name, TernaryLinear.from_bitlinear(layer))


def pack_ternary(codes: torch.Tensor) -> torch.Tensor:
    """int8 {-1,0,1} of any shape -> uint8 (ceil(n/4),), 2 bits per weight, first weight in the low bits."""
    flat = (codes.flatten().to(torch.int16) + 1).to(torch.uint8)  # {0,1,2}
    flat = F.pad(flat, (0, (-flat.numel()) % 4)).view(-1, 4)
    return flat[:, 0] | flat[:, 1] << 2 | flat[:, 2] << 4 | flat[:, 3] << 6


def unpack_ternary(packed: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    n = int(np.prod(shape))
    fields = torch.stack([(packed >> s) & 3 for s in (0, 2, 4, 6)], dim=1).flatten()[:n]  # (n,)
    return (fields.to(torch.int8) - 1).view(shape)


def quantize_embedding(w: torch.Tensor, how: str) -> dict[str, torch.Tensor]:
    if how == "fp16":
        return {"fp16": w.half()}
    if how == "int8":
        scale = (w.abs().amax(dim=1, keepdim=True) / 127).clamp(min=1e-8)  # (V, 1): one scale per row
        return {"int8": (w / scale).round().clamp(-127, 127).to(torch.int8), "scale": scale.float()}
    if how == "fp32":
        return {"fp32": w.float()}
    raise ValueError(f"embeddings must be fp16, int8 or fp32, not {how!r}")


def dequantize_embedding(parts: dict[str, torch.Tensor]) -> torch.Tensor:
    if "fp16" in parts:
        return parts["fp16"].float()
    if "int8" in parts:
        return parts["int8"].float() * parts["scale"]
    return parts["fp32"]


class BitBertClassifier(BertClassifier):
    kind = KIND
    presets = PRESETS
    precisions = ("int8", "float")  # integer kernels; the training-time fp32 arithmetic
    training_precision = "float"
    precision = "float"
    _distil = False  # while training with a teacher (begin_training)

    def set_precision(self, precision: str = "auto") -> str:
        """auto (what load() picks): int8 where an integer kernel measures at least as fast as fp32 here, else
        float. int8: the fastest integer kernel, fast or not. Returns what runs and why, in one line."""
        plan = kernels.current()
        if precision not in ("auto", *self.precisions):
            raise ValueError(f"unknown precision {precision!r} for bitbert; known: auto, int8, float")
        kernel = {"auto": plan.int8_kernel, "int8": plan.fastest_int8, "float": None}[precision]
        for module in self.net.modules():
            if isinstance(module, TernaryLinear):
                module.kernel = kernel or "float"
        self.precision = "int8" if kernel else "float"
        if kernel:
            note = f"int8 x ternary via {kernel} ({plan.speedup(kernel):.2f}x fp32 on this CPU)"
        else:
            note = "float: ternary codes as fp32 numbers, the training arithmetic"
        return f"{note} ({'auto' if precision == 'auto' else 'asked for'})"

    def compile(self) -> None:
        for module in self.net.modules():
            if isinstance(module, TernaryLinear):
                module.packed_codes(module.kernel if self.device == "cpu" else "float")
        super().compile()

    def prepare_for_training(self, progress) -> None:
        if self.cfg.subln:
            progress(f"bitbert: {add_subln(self.net)} SubLN norms before the attention output and FFN down projections")
        n = to_bitlinear(self.net)
        progress(f"bitbert: {n} encoder linear layers are now BitLinear (ternary weights, 8-bit activations)")

    # ------------------------------------------------------------------ distillation

    def begin_training(self, x_train, y_train, unused, progress):
        cfg = self.cfg
        self._teacher, self._distil, self._steps = None, False, 0
        if cfg.subln:
            calibrate_subln(self, x_train[:cfg.batch_size])
        total = cfg.epochs * math.ceil((len(x_train) + min(cfg.unlabelled, len(unused))) / cfg.batch_size)
        self._ramp_steps = int(cfg.ramp * total)
        self._totals: dict[str, float] = {}  # each loss term summed over every step, for the manifest's means
        self._window: dict[str, float] = {}  # ... over the steps since the last point of the loss curve
        self._every, self._examples = max(1, total // CURVE_POINTS), 0
        self.loss_curve: list[dict] = []  # {step, examples, term, value}: jobs.train records it (training_terms)
        states = cfg.kd_hidden > 0 or cfg.kd_attn > 0  # the teacher's net runs on every step
        if cfg.kd_logits <= 0 and not states:
            if cfg.unlabelled:
                raise ValueError("bitbert: unlabelled reviews are learnt from a teacher: set kd_logits > 0")
            return x_train, y_train
        if cfg.freeze_layers:
            raise ValueError("bitbert: distillation trains every layer; freeze_layers must be 0")
        path = Path(cfg.teacher or cfg.pretrained or "")
        if not (path / "model.json").is_file():
            raise ValueError(f"bitbert: the teacher must be a trained bert folder (model.json), not {str(path)!r}: "
                             "--set teacher=data/models/bert-quick")
        teacher = BertClassifier.load(path, self.device)
        if teacher.tokenizer.get_vocab() != self.tokenizer.get_vocab() or (
                states and teacher.net.config.hidden_size != self.net.config.hidden_size):
            raise ValueError(f"bitbert: the teacher {path} must share the student's tokenizer (and, for kd_hidden "
                             "or kd_attn, its hidden size): start the student from it (--set pretrained=...)")
        extra = unused.sample(n=min(cfg.unlabelled, len(unused)), random_state=cfg.seed)["text"].tolist()
        if extra:
            x_train = [*x_train, *self.encode(extra)]
            y_train = np.concatenate([y_train, np.full(len(extra), -1)])  # -1: no label, teacher only
        t = time.perf_counter()
        self._teacher_logits = teacher_logits(teacher, x_train, cfg.eval_batch_size, progress)  # (N, 2)
        agree = float((self._teacher_logits[y_train >= 0].argmax(-1).numpy() == y_train[y_train >= 0]).mean())
        progress(f"bitbert: distilling from {path} (logits x{cfg.kd_logits}, hidden states x{cfg.kd_hidden}, "
                 f"Q/K/V relations x{cfg.kd_attn}, "
                 f"T={cfg.temperature}); {len(x_train):,} reviews ({len(extra):,} unlabelled); teacher logits "
                 f"in {time.perf_counter() - t:.0f} s, teacher accuracy on the labelled ones {agree:.4f}")
        self._teacher = teacher if states else None  # logits are cached: the net only for states and relations
        self._distil = True
        return x_train, y_train

    def train_loss(self, idx, seqs, y, cache):
        cfg = self.cfg
        mix = min(1.0, (self._steps + 1) / self._ramp_steps) if self._ramp_steps else 1.0
        for module in self.net.modules():
            if isinstance(module, RampBitLinear):
                module.mix = mix
        self._steps += 1
        if not self._distil:
            loss, logits, target = super().train_loss(idx, seqs, y, cache)
            self._record(len(idx), {"ce": loss})
            return loss, logits, target
        ids, lengths = pad_batch([seqs[i] for i in idx], self.tokenizer.pad_token_id)  # (B, T)
        mask = padding_mask(lengths, ids.size(1)).to(self.device)  # (B, T)
        with last_qkv(self.net, cfg.kd_attn > 0) as student_qkv:
            out = self.net(input_ids=ids.to(self.device), attention_mask=mask, output_hidden_states=cfg.kd_hidden > 0)
        logits = out.logits.float()  # (B, 2)
        target = torch.as_tensor(y[idx], dtype=torch.long, device=self.device)
        labelled = target >= 0
        ce = F.cross_entropy(logits[labelled], target[labelled]) if labelled.any() else logits.sum() * 0
        t = cfg.temperature
        soft = self._teacher_logits[idx].to(self.device)  # (B, 2)
        kl = F.kl_div(F.log_softmax(logits / t, -1), F.log_softmax(soft / t, -1), log_target=True,
                      reduction="batchmean") * t * t
        hidden = attn = logits.sum() * 0
        if self._teacher is not None:
            with torch.no_grad(), last_qkv(self._teacher.net, cfg.kd_attn > 0) as teacher_qkv:
                teacher_states = self._teacher.net(input_ids=ids.to(self.device), attention_mask=mask,
                                                   output_hidden_states=True).hidden_states
            if cfg.kd_hidden > 0:
                real = mask.unsqueeze(-1).float()  # (B, T, 1)
                for s_h, t_h in zip(out.hidden_states[1:], teacher_states[1:], strict=True):  # every layer's output
                    hidden = hidden + (((s_h - t_h) ** 2) * real).sum() / (real.sum() * s_h.size(-1))
                hidden = hidden / (len(teacher_states) - 1)
            if cfg.kd_attn > 0:
                heads = self.net.config.num_attention_heads
                attn = sum(relation_kl(student_qkv[k], teacher_qkv[k], mask.bool(), heads) for k in range(3)) / 3
        weighted = {"ce": (cfg.ce, ce), "kl": (cfg.kd_logits, kl), "hidden": (cfg.kd_hidden, hidden),
                    "attn": (cfg.kd_attn, attn)}
        loss = sum(w * value for w, value in weighted.values())
        self._record(len(idx), {**{k: value for k, (w, value) in weighted.items() if w > 0}, "total": loss})
        return loss, logits, torch.where(labelled, target, soft.argmax(-1))  # unlabelled: counted vs the teacher

    def _record(self, n: int, terms: dict[str, torch.Tensor]) -> None:
        self._examples += n
        for key, value in terms.items():
            value = float(value.detach())
            self._totals[key] = self._totals.get(key, 0.0) + value
            self._window[key] = self._window.get(key, 0.0) + value
        if self._steps % self._every == 0:
            self._flush()

    def _flush(self) -> None:
        """One point per term of the loss curve: its mean over the steps since the last point."""
        steps = self._steps % self._every or self._every
        if self._window:
            self.loss_curve += [{"step": self._steps, "examples": self._examples, "term": key, "value": total / steps}
                                for key, total in self._window.items()]
        self._window = {}

    def _embedding(self) -> nn.Embedding:
        return self.net.base_model.embeddings.word_embeddings

    def finish_training(self, x_val, y_val, progress) -> dict:
        """Freeze to ternary codes, then round the word embeddings as they will be stored; measure both."""
        self._flush()
        terms = {}
        if self._distil:
            terms = {f"loss_{k}": round(v / self._steps, 5) for k, v in self._totals.items() if k != "total"}
            progress(f"bitbert: mean loss terms over training: {terms}")
            self._teacher = self._teacher_logits = None
            self._distil = False
        to_ternary(self.net)
        progress(f"bitbert: validation with {self.set_precision('auto')}")
        _, acc_fp32 = self._evaluate(x_val, y_val)
        emb = self._embedding().weight
        emb.data.copy_(dequantize_embedding(quantize_embedding(emb.data, self.cfg.embeddings)))
        _, acc_stored = self._evaluate(x_val, y_val)
        progress(f"bitbert: validation accuracy with fp32 embeddings {acc_fp32:.4f}, with "
                 f"{self.cfg.embeddings} embeddings {acc_stored:.4f}")
        return {"val_acc_fp32_embeddings": acc_fp32, "val_acc_stored_embeddings": acc_stored, **terms}

    def n_params(self) -> int:
        ternary = sum(m.codes.numel() for m in self.net.modules() if isinstance(m, TernaryLinear))
        return ternary + sum(p.numel() for p in self.net.parameters())

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        to_ternary(self.net)  # no-op once frozen
        emb_name = "base_model.embeddings.word_embeddings.weight"
        tensors, shapes = {}, {}
        for key, value in self.net.state_dict().items():
            value = value.detach().cpu()
            if key.endswith(".codes"):
                tensors[key[:-len("codes")] + "packed"] = pack_ternary(value)
                shapes[key] = list(value.shape)
            elif key == self._state_key(emb_name):
                for part, t in quantize_embedding(value, self.cfg.embeddings).items():
                    tensors[f"{key}.{part}"] = t.contiguous()
            else:
                tensors[key] = value.contiguous()
        save_file(tensors, str(directory / WEIGHTS))
        write_manifest(directory, KIND, config=asdict(self.cfg), ternary_shapes=shapes)
        self.net.config.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)

    def _state_key(self, name: str) -> str:
        """The state-dict key of the word embeddings (base_model is an alias of e.g. ``bert``)."""
        target = self._embedding().weight
        for key, value in self.net.state_dict(keep_vars=True).items():
            if value is target:
                return key
        raise KeyError(name)

    @classmethod
    def load(cls, directory: Path, device: str | None = None) -> BitBertClassifier:
        import json

        from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

        directory = Path(directory)
        setup_torch(0)
        manifest = json.loads((directory / "model.json").read_text())
        net = AutoModelForSequenceClassification.from_config(AutoConfig.from_pretrained(directory))
        cfg = cls.read_config(directory)
        if cfg.subln:
            add_subln(net)
        to_bitlinear(net)
        to_ternary(net)
        stored = load_file(str(directory / WEIGHTS))
        state: dict[str, torch.Tensor] = {}
        emb_parts: dict[str, dict[str, torch.Tensor]] = {}
        for key, value in stored.items():
            if key.endswith(".packed"):
                codes_key = key[:-len("packed")] + "codes"
                state[codes_key] = unpack_ternary(value, tuple(manifest["ternary_shapes"][codes_key]))
            elif key.rsplit(".", 1)[-1] in ("fp16", "int8", "scale", "fp32") and key.rsplit(".", 1)[0].endswith(
                    "word_embeddings.weight"):
                base, part = key.rsplit(".", 1)
                emb_parts.setdefault(base, {})[part] = value
            else:
                state[key] = value
        state.update({base: dequantize_embedding(parts) for base, parts in emb_parts.items()})
        net.load_state_dict(state, strict=True)
        model = cls(net, AutoTokenizer.from_pretrained(directory), cfg, device)
        model.set_precision("auto")
        return model
