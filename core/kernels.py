"""Which arithmetic is fast on the running CPU: measured once per machine, never assumed.

The same int8 product runs several times faster than fp32 through ``torch._int_mm`` on a CPU with AVX-512
VNNI, and many times SLOWER on an AVX2-only one, where oneDNN has no kernel for it and a reference loop runs;
bf16 is much faster than fp32 on some CPUs with native bf16 and far slower without it. So the arithmetic a
model runs is chosen by a short measurement (a few seconds), cached per machine in ``data/kernels.json``.

The integer kernels compute y = x @ W.T for int8 W, each row (token) of x quantized to int8 by its absmax
(as bitlinear's act_quant); the int32 sums are exact, then both scales and the bias are applied:

    int_mm  ``torch._int_mm`` (oneDNN, int8 x int8 -> int32): fast only with VNNI / AMX.
    fbgemm  fbgemm's uint8 x int8 GEMM (the row's codes + 128, zero point 128), through
            ``quantized::linear_with_input_q_dq_qweight_dq_output_fp32`` with unit scales. Without VNNI it
            multiplies with vpmaddubsw, whose int16 pair sums saturate above 32,767: exact for ternary codes
            and for |w| <= 63 (255 * 63 * 2 = 32,130). ``measure`` checks whether full 8-bit weights come out
            exact on this CPU; where they don't, Int8Linear rounds its weights to 7 bits for this kernel.

onnxruntime's MatMulInteger is not a candidate: called layer by layer from torch, its thread pool and
torch's compete for the same cores. Where int_mm and fbgemm are both fast they trade places from one
measurement to the next, and either is a fine default. A bf16 flag is not enough either (bf16 without AMX can
be slower than fp32): the measurement decides. The figures per CPU class: docs/results/2026-12-kernels.md.

To make a bigger CPU behave as an AVX2-only one, each library needs its own switch (tests/test_kernels.py:
AVX2_ONLY): ATEN_CPU_CAPABILITY=avx2, ONEDNN_MAX_CPU_ISA=AVX2, FBGEMM_ENABLE_INSTRUCTIONS=AVX2 and
MKL_ENABLE_INSTRUCTIONS=AVX2.

``SENTIMENT_INT8_KERNEL=int_mm|fbgemm|none`` overrides the choice (tests use it to run every path anywhere).
"""

from __future__ import annotations

import json
import os
import platform
import time
import warnings
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import torch
import torch.nn.functional as F

from core.errors import ModelError
from core.paths import data_dir

FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_int8", "amx_bf16")
INT8_KERNELS = ("int_mm", "fbgemm")
MARGIN = 1.1  # bf16 is chosen only where it measures at least this much faster than fp32
INT8_MARGIN = 1.0  # an int8 kernel, where it measures at least as fast as fp32: it only runs by default in
#                    BitLinear BERT, whose other path is fp32 plus a quantization pass, so slower still
CACHE_VERSION = 3


# ---------------------------------------------------------------------------------------------- the CPU

@dataclass(frozen=True)
class CpuInfo:
    model: str                 # /proc/cpuinfo's model name
    capability: str            # torch.backends.cpu.get_cpu_capability(): DEFAULT, AVX2, AVX512, ...
    flags: tuple[str, ...]     # those of FLAGS the CPU has
    threads: int               # torch's intra-op threads
    torch: str

    @property
    def native_bf16(self) -> bool:
        return "avx512_bf16" in self.flags or "amx_bf16" in self.flags

    def describe(self) -> str:
        flags = ", ".join(f if f in self.flags else f"no {f}" for f in FLAGS)
        return f"{self.model} ({self.capability}; {flags}), {self.threads} threads, torch {self.torch}"


def cpu_info() -> CpuInfo:
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() in ("flags", "Features") and not flags:
                flags = set(value.split())
    except OSError:  # not Linux: flags unknown, the measurement still decides
        pass
    return CpuInfo(model, torch.backends.cpu.get_cpu_capability(), tuple(f for f in FLAGS if f in flags),
                   torch.get_num_threads(), torch.__version__)


# ---------------------------------------------------------------------------------------------- kernels

def available_int8_kernels() -> tuple[str, ...]:
    return tuple(k for k in INT8_KERNELS if k != "fbgemm" or "fbgemm" in torch.backends.quantized.supported_engines)


def quantize_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, in) float -> absmax (n, 1), codes (n, in) as integer-valued floats in [-127, 127]: per-row absmax
    rounding, exactly bitlinear's act_quant."""
    absmax = x.abs().amax(dim=-1, keepdim=True).clamp_(min=1e-5)
    return absmax, (x * (127.0 / absmax)).round_()


_FBGEMM_WEIGHTS: list = []  # fbgemm's prepacked weights, by handle (see pack)


def pack(codes: torch.Tensor, kernel: str):
    """(out, in) int8 codes -> the weight as ``kernel`` reads it: (in, out) int8 for int_mm (its fastest
    layout); for fbgemm an int handle to its prepacked weight. A handle, because a custom op (which the
    compiler keeps in its graph) takes tensors and numbers only; packed weights live as long as the process."""
    if kernel == "int_mm":
        return codes.t().contiguous()
    if kernel == "fbgemm":
        torch.backends.quantized.engine = "fbgemm"  # prepack packs for the current engine
        with warnings.catch_warnings():  # quantized tensors are deprecated in torch 2.13, not removed
            warnings.simplefilter("ignore")
            weight = torch.quantize_per_tensor(codes.float(), 1.0, 0, torch.qint8)
        _FBGEMM_WEIGHTS.append((torch.ops.quantized.linear_prepack(weight, None), codes.shape[0]))
        return len(_FBGEMM_WEIGHTS) - 1
    raise ValueError(f"unknown int8 kernel {kernel!r}; known: {', '.join(INT8_KERNELS)}")


@torch.library.custom_op("sentiment::fbgemm_sums", mutates_args=())
def fbgemm_sums(q: torch.Tensor, handle: int) -> torch.Tensor:
    """Integer-valued float codes (n, in) -> their exact int32 sums with weight ``handle``, as float (n, out).
    fbgemm quantizes q with scale 1 and zero point 128 (exact: the codes + 128 are its uint8 input)."""
    return torch.ops.quantized.linear_with_input_q_dq_qweight_dq_output_fp32(q, 1.0, 128,
                                                                             _FBGEMM_WEIGHTS[handle][0])


@fbgemm_sums.register_fake
def _(q: torch.Tensor, handle: int) -> torch.Tensor:
    return q.new_empty(q.shape[0], _FBGEMM_WEIGHTS[handle][1])


def int_sums(q: torch.Tensor, weight, kernel: str) -> torch.Tensor:
    if kernel == "int_mm":
        return torch._int_mm(q.to(torch.int8), weight)  # (n, out) int32
    return fbgemm_sums(q, weight)


@torch.no_grad()  # inference only: the integer kernels have no gradient
def int8_matmul(x: torch.Tensor, weight, weight_scale: torch.Tensor, bias: torch.Tensor | None,
                out_features: int, kernel: str, block_rows: int = 1024) -> torch.Tensor:
    """x @ W.T + b for int8 W (``pack``-ed for ``kernel``): each row of x is quantized to int8 by its absmax,
    the products are summed exactly in int32, then both scales and the bias are applied. Rows go in blocks
    of ``block_rows`` so that each block's sums are rescaled while still in cache: unblocked, that pass cost
    more than the matmul itself on 2 cores.

    x: (..., in) float; weight_scale: () or (out,) -> (..., out) in x's dtype.
    """
    shape, dtype = x.shape, x.dtype
    x = x.reshape(-1, shape[-1]).float()  # (N, in)
    if torch.compiler.is_compiling():  # inductor fuses quantize and rescale into one loop each, so blocks
        absmax, q = quantize_rows(x)     # would only add graph specialisations
        y = int_sums(q, weight, kernel) * (absmax / 127.0) * weight_scale  # (N, out)
        return (y if bias is None else y + bias).view(*shape[:-1], out_features).to(dtype)
    out = torch.empty(x.shape[0], out_features, dtype=torch.float32, device=x.device)
    for start in range(0, x.shape[0], block_rows):
        absmax, q = quantize_rows(x[start:start + block_rows])
        acc, yb = int_sums(q, weight, kernel), out[start:start + block_rows]  # (n, out) exact sums
        if weight_scale.ndim == 0:  # one scale per tensor (ternary codes): one fused pass
            row = absmax * (weight_scale / 127.0)  # (n, 1)
            torch.addcmul(bias, acc, row, out=yb) if bias is not None else torch.mul(acc, row, out=yb)
        else:
            torch.mul(acc, absmax / 127.0, out=yb)
            yb.mul_(weight_scale)
            if bias is not None:
                yb.add_(bias)
    return out.view(*shape[:-1], out_features).to(dtype)


# ---------------------------------------------------------------------------------------------- the plan

@dataclass(frozen=True)
class Plan:
    """What runs fast here, from measured throughputs (GOP/s of one BERT-sized linear layer, quantization
    included). A pure function of its fields, so the choice can be tested with injected figures."""

    cpu: CpuInfo
    gops: dict[str, float]                                   # fp32, bf16, and each int8 kernel
    exact_int8: dict[str, bool] = field(default_factory=dict)  # kernel -> full 8-bit weights summed exactly
    forced: str | None = None                                # SENTIMENT_INT8_KERNEL, if set

    def speedup(self, arithmetic: str) -> float:
        return self.gops.get(arithmetic, 0.0) / self.gops["fp32"]

    @property
    def fastest_int8(self) -> str | None:
        """The int8 kernel to run when int8 is asked for, fast or not."""
        if self.forced in INT8_KERNELS:
            return self.forced
        measured = [k for k in INT8_KERNELS if k in self.gops]
        return max(measured, key=lambda k: self.gops[k]) if measured else None

    @property
    def int8_kernel(self) -> str | None:
        """The int8 kernel a default path may use: only one at least as fast as fp32 (or a forced one)."""
        if self.forced is not None:
            return self.forced if self.forced in INT8_KERNELS else None
        best = self.fastest_int8
        return best if best and self.speedup(best) >= INT8_MARGIN else None

    @property
    def bf16(self) -> bool:
        """bfloat16 only where the CPU has it natively AND it measures faster than fp32."""
        return self.cpu.native_bf16 and self.speedup("bf16") >= MARGIN

    def weight_bits(self, kernel: str) -> int:
        """8, or 7 where full 8-bit weights would saturate the kernel's int16 pair sums (fbgemm without VNNI)."""
        return 8 if self.exact_int8.get(kernel, kernel == "int_mm") else 7

    def why(self) -> str:
        figures = ", ".join(f"{k} {self.speedup(k):.2f}x" for k in (*INT8_KERNELS, "bf16") if k in self.gops)
        int8 = (f"integer kernel {self.int8_kernel}" if self.int8_kernel else "no integer kernel as fast as fp32")
        forced = f" (forced by SENTIMENT_INT8_KERNEL={self.forced})" if self.forced else ""
        bf16 = "bf16 native and faster" if self.bf16 else (
            "bf16 off (measured slower)" if self.cpu.native_bf16 else "bf16 off (not native)")
        return (f"{self.cpu.model}, {self.cpu.capability}: fp32 {self.gops['fp32']:.0f} GOP/s; vs fp32 "
                f"{figures} -> {int8}{forced}; {bf16}")

    def to_json(self) -> dict:
        return {"version": CACHE_VERSION, "cpu": asdict(self.cpu), "gops": self.gops,
                "exact_int8": self.exact_int8, "measured_at": datetime.now(UTC).isoformat()}


def _best_seconds(candidates: dict, rounds: int = 8, give_up: float = 5.0) -> dict[str, float]:
    """The fastest call of each candidate, timed in turns (one call of each per round) so that a moment of
    contention or a drift of the clock hits them all alike. Every candidate is called once untimed first
    (packing, thread start, a custom op's first dispatch: far slower than a timed call). A candidate whose
    first timed call is over ``give_up`` times the first's (fp32's) is timed no further: a kernel that much
    slower needs no finer figure."""
    for fn in candidates.values():
        fn()
    best: dict[str, float] = {}
    for name, fn in candidates.items():
        start = time.perf_counter()
        fn()
        best[name] = time.perf_counter() - start
    reference = next(iter(best.values()))
    timed = [name for name in candidates if best[name] <= give_up * reference]
    for _ in range(rounds):
        for name in timed:
            start = time.perf_counter()
            candidates[name]()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def exact_with_int8_weights(kernel: str) -> bool:
    """Whether ``kernel`` sums full-range int8 weights exactly: the worst case, every code at +-127, saturates
    int16 pair sums on CPUs without VNNI."""
    codes = torch.full((8, 512), 127, dtype=torch.int8)
    codes[1::2] = -127
    q = torch.full((4, 512), 127.0)
    expected = q.double() @ codes.double().t()
    return bool(torch.equal(int_sums(q, pack(codes, kernel), kernel).double(), expected))


def measure(rows: int = 2048, hidden: int = 384, inner: int = 1536) -> Plan:
    """Time a BERT feed-forward pair (``rows`` tokens, hidden -> inner -> hidden: 16 reviews of 128 tokens
    at MiniLM's size) in each arithmetic, in turns: a few seconds."""
    torch.manual_seed(0)
    x, up, down = torch.randn(rows, hidden), torch.randn(inner, hidden) * 0.05, torch.randn(hidden, inner) * 0.05
    codes = [torch.randint(-1, 2, w.shape, dtype=torch.int8) for w in (up, down)]
    scale = torch.tensor(0.05)
    ops = 2 * 2 * rows * hidden * inner / 1e9
    with torch.inference_mode():
        xb, upb, downb = x.bfloat16(), up.bfloat16(), down.bfloat16()
        candidates = {"fp32": lambda: F.linear(F.linear(x, up), down),
                      "bf16": lambda: F.linear(F.linear(xb, upb), downb)}
        for kernel in available_int8_kernels():
            a, b = (pack(c, kernel) for c in codes)
            candidates[kernel] = lambda a=a, b=b, k=kernel: int8_matmul(
                int8_matmul(x, a, scale, None, inner, k), b, scale, None, hidden, k)
        seconds = _best_seconds(candidates)
        exact = {kernel: exact_with_int8_weights(kernel) for kernel in available_int8_kernels()}
    return Plan(cpu_info(), {name: ops / s for name, s in seconds.items()}, exact)


def cache_path() -> Path:
    return data_dir() / "kernels.json"


def load_or_measure(path: Path | None = None, refresh: bool = False) -> Plan:
    """The plan for this CPU from ``path`` if it was measured on this very CPU, threads and torch; else
    measured now and written there."""
    path, cpu = path or cache_path(), cpu_info()
    if not refresh and path.exists():
        try:
            cached = json.loads(path.read_text())
            if cached.get("version") == CACHE_VERSION and cached["cpu"] == json.loads(json.dumps(asdict(cpu))):
                return Plan(cpu, cached["gops"], cached["exact_int8"])
        except (OSError, ValueError, KeyError):
            pass  # unreadable or from an older layout: measure again
    plan = measure()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(plan.to_json(), indent=2))
        tmp.replace(path)
    except OSError:  # a read-only data folder: the plan is still right for this process
        pass
    return plan


@cache
def current() -> Plan:
    """This process's plan (measured or cached once), with the SENTIMENT_INT8_KERNEL override applied."""
    forced = os.environ.get("SENTIMENT_INT8_KERNEL") or None
    if forced is not None and forced not in (*INT8_KERNELS, "none"):
        raise ModelError(f"SENTIMENT_INT8_KERNEL must be one of {', '.join(INT8_KERNELS)}, none; got {forced!r}")
    plan = load_or_measure()
    return Plan(plan.cpu, plan.gops, plan.exact_int8, forced)


def resolve_bf16(setting: bool | str) -> bool:
    """A training config's ``bf16``: True / False as given, "auto" = native and measured faster here."""
    if setting == "auto":
        return current().bf16
    if not isinstance(setting, bool):
        raise ModelError(f"bf16 must be true, false or auto, not {setting!r}")
    return setting
