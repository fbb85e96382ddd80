"""BitBERT: the bert classifier with EVERY encoder nn.Linear (attention q/k/v/output, intermediate, output
dense) replaced by a b1.58 BitLinear (``bitlinear-pytorch``: ternary absmean weights, 8-bit per-token absmax
activations, straight-through estimator), initialised from the pretrained weights, trained quantization-aware.

After training each BitLinear is frozen into a ``TernaryLinear`` that holds only int8 codes in {-1, 0, 1} and one fp32
scale. On the CPU predict_proba runs them in integer arithmetic: activations quantized to int8 per token (as in
training), multiplied by the codes by the integer kernel that measures fastest on this CPU (core.kernels:
``torch._int_mm`` with AVX-512 VNNI, fbgemm's uint8 x int8 GEMM on AVX2; int32 sums, exact for ternary codes), then
rescaled once. Where no integer kernel is as fast as fp32, the training arithmetic runs instead (the codes as fp32
numbers: ``set_precision("float")``). The checkpoint (model.json, config.json, bitbert.safetensors, tokenizer files;
no pickle) packs the codes 2 bits each and stores the word embeddings in fp16 or int8 (per-row scale), rounded the
same way in memory, so a reloaded model predicts identically. Distillation from a trained bert (``kd_logits`` /
``kd_hidden`` > 0): core.distill."""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from bitlinear_pytorch import BitLinear
from bitlinear_pytorch.bitlinear import act_quant
from safetensors.torch import load_file, save_file
from torch import nn

from core import kernels
from core.distill import Distiller, LossCurve
from core.errors import ModelError
from core.models import read_manifest, write_manifest
from core.models.bert import BertClassifier, BertConfig, encoder_children
from core.models.packing import dequantize_embedding, pack_ternary, quantize_embedding, unpack_ternary
from core.models.text_batching import setup_torch

KIND = "bitbert"
WEIGHTS = "bitbert.safetensors"


@dataclass
class BitBertConfig(BertConfig):
    lr: float = 5e-4                  # ternary weights need bigger steps to flip than fp32 fine-tuning:
    #                                   with too small a step the loss stays at chance
    embeddings: str = "fp16"          # how the word embeddings are stored: fp16 | int8 (per-row scale) | fp32
    teacher: str | None = None        # a trained bert folder; None = the `pretrained` folder, when distilling
    ce: float = 1.0                   # weight of the cross-entropy on the labels
    kd_logits: float = 0.0            # weight of the KL to the teacher's logits (0: no distillation)
    kd_hidden: float = 0.0            # weight of the MSE to the teacher's hidden states, every layer
    temperature: float = 2.0
    unlabelled: int = 0               # extra train-split reviews learnt from the teacher alone (needs kd_logits)


# Each starts from a fine-tuned bert (--set pretrained=DIR); why each is as it is: docs/design.md (BitLinear
# BERT presets), the runs behind them: docs/results/2026-12-bitbert-distillation.md.
PRESETS: dict[str, BitBertConfig] = {
    "quick": BitBertConfig(train_rows=2_000, val_rows=500, epochs=2, max_len=128, lr=2e-4),
    "full": BitBertConfig(max_len=256, epochs=3, batch_size=32),
    "cpu": BitBertConfig(max_len=256, epochs=1, batch_size=16, lr=2e-4, train_rows=12_000, val_rows=1_000,
                         kd_logits=1.0, kd_hidden=1.0)}


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
        if self._packed is None or self._packed[0] != key or (  # float codes cached under inference_mode
                path == "float" and self._packed[1].is_inference() and torch.is_grad_enabled()):
            codes = self.codes.to(dtype) if path == "float" else kernels.pack(self.codes, path)
            self._packed = (key, codes)
        return self._packed[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kernel != "float" and x.device.type == "cpu":
            return kernels.int8_matmul(x, self.packed_codes(self.kernel), self.scale, self.bias,
                                       self.out_features, self.kernel)  # (..., out)
        xq = x + (act_quant(x) - x).detach() if torch.is_grad_enabled() else act_quant(x)  # straight-through, as trained
        y = F.linear(xq, self.packed_codes("float", x.dtype)) * self.scale  # (..., out): {-1,0,1} matmul
        return y + self.bias if self.bias is not None else y


def encoder_linears(net: nn.Module) -> list[tuple[nn.Module, str, nn.Module]]:
    """(parent, attribute, layer) for every nn.Linear / BitLinear / TernaryLinear inside the encoder."""
    return encoder_children(net, (nn.Linear, TernaryLinear))


def to_bitlinear(net: nn.Module) -> int:
    """Swap each encoder nn.Linear for a BitLinear holding the same (pretrained) weights."""
    count = 0
    for parent, name, layer in encoder_linears(net):
        if isinstance(layer, BitLinear):
            continue
        bit = BitLinear(layer.in_features, layer.out_features, bias=layer.bias is not None,
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


class BitBertClassifier(BertClassifier):
    kind = KIND
    presets = PRESETS
    precisions = ("int8", "float")  # integer kernels; the training-time fp32 arithmetic
    training_precision = "float"
    explain_notes = ("through its float training arithmetic, whose 8-bit activations make the path a staircase: "
                     + "straight-through gradients can miss P - P(baseline) by delta; leave-one-word-out is the check",)
    precision = "float"
    ig_max_steps = 32  # more steps do not shrink the staircase's residual error (docs/results): they only cost time
    _distiller: Distiller | None = None  # while training with a teacher (begin_training)

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

    @contextmanager
    def _training_arithmetic(self):
        """The ternary codes as float numbers for the block (the integer kernels have no gradient)."""
        before = self.precision
        self.set_precision("float")
        try:
            yield
        finally:
            self.set_precision(before)

    def compile(self) -> None:
        for module in self.net.modules():
            if isinstance(module, TernaryLinear):
                module.packed_codes(module.kernel if self.device == "cpu" else "float")
        super().compile()

    def prepare_for_training(self, progress) -> None:
        n = to_bitlinear(self.net)
        progress(f"bitbert: {n} encoder linear layers are now BitLinear (ternary weights, 8-bit activations)")

    # ------------------------------------------------------------------ distillation (core.distill)

    def begin_training(self, x_train, y_train, unused, progress):
        cfg = self.cfg
        total = cfg.epochs * math.ceil((len(x_train) + min(cfg.unlabelled, len(unused))) / cfg.batch_size)
        self._curve = LossCurve(total)
        self._distiller = None
        if cfg.kd_logits <= 0 and cfg.kd_hidden <= 0:
            if cfg.unlabelled:
                raise ValueError("bitbert: unlabelled reviews are learnt from a teacher: set kd_logits > 0")
            return x_train, y_train
        self._distiller = Distiller(self, cfg, x_train, y_train, unused, progress)
        return self._distiller.x_train, self._distiller.y_train

    def train_loss(self, idx, seqs, y, cache):
        if self._distiller is None:
            loss, logits, target = super().train_loss(idx, seqs, y, cache)
            self._curve.record(len(idx), {"ce": loss})
            return loss, logits, target
        loss, logits, target, terms = self._distiller.loss(idx, seqs, y)
        self._curve.record(len(idx), terms)
        return loss, logits, target

    @property
    def loss_curve(self) -> list[dict]:
        """The loss curve by term (jobs.train records it: training_terms)."""
        return self._curve.points if getattr(self, "_curve", None) else []

    def _embedding(self) -> nn.Embedding:
        return self.net.base_model.embeddings.word_embeddings

    def finish_training(self, x_val, y_val, progress) -> dict:
        """Freeze to ternary codes, then round the word embeddings as they will be stored; measure both."""
        self._curve.flush()
        terms = {}
        if self._distiller is not None:
            terms = self._curve.means()
            progress(f"bitbert: mean loss terms over training: {terms}")
            self._distiller = None  # lets the teacher go
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
        from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

        directory = Path(directory)
        setup_torch(0)
        manifest = read_manifest(directory)
        if manifest["config"].get("subln"):
            raise ModelError(f"{directory} was trained with SubLN norms, an option since removed (it measured no "
                             "gain: docs/results/2026-12-bitbert-distillation.md); train it again")
        net = AutoModelForSequenceClassification.from_config(AutoConfig.from_pretrained(directory))
        cfg = cls.read_config(directory)
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
