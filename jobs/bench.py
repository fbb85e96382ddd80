"""Benchmark every trained model on a fixed sample of imdb test reviews and print a Markdown table.

    python -m jobs.bench [--models all] [--sample 1000] [--no-pipeline]

First the CPU: its model name, torch's capability and the flags that decide the arithmetic (avx2, avx512f,
avx512_vnni, avx512_bf16, amx), the measured peaks of fp32, bf16 and each int8 kernel, and the kernel plan
that `jobs.score --precision auto` follows (core.kernels).

For each model (each in a fresh process, so peak memory is its own): reviews/s of predict_proba on the
sample after a warm-up, peak resident memory, accuracy on the sample, and for the neural models the share
of the peak of the arithmetic the path runs (fp32, bf16, or its int8 kernel) that the model's useful FLOPs
reach. Models that offer several precisions (the BERT family: `precisions`) are measured in each, and the
share of reviews on which each path predicts as the training-time arithmetic does; the row `auto` is the
one scoring uses by default. Models that can be compiled are measured eager and compiled (unless
--no-compile), with the one-off compile time. For the BERT family, the speed of the Hugging Face
`pipeline("text-classification")` on the same checkpoint and reviews (batch size 1 and 32, the better one)
is measured too, and the ratio printed.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import platform
import resource
import time
from datetime import date
from pathlib import Path

import numpy as np

from core import store
from core.models import load_model, model_class, model_kind, read_manifest, resolve_names
from core.paths import default_db, models_dir
from jobs.common import log, run_main


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m jobs.bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="all", help="comma-separated model names or 'all'")
    p.add_argument("--sample", type=int, default=1000, help="imdb test reviews to score (the first N, fixed)")
    p.add_argument("--db", type=Path, default=None, help="DuckDB file holding the imdb corpus")
    p.add_argument("--models-dir", type=Path, default=None)
    p.add_argument("--repeat", type=int, default=2,
                   help="time each path this many times and keep the fastest, the pipeline too (default 2): "
                        "this machine's speed drifts by +-10%% from minute to minute")
    p.add_argument("--no-pipeline", action="store_true", help="skip the Hugging Face pipeline reference")
    p.add_argument("--no-compile", action="store_true", help="measure eager paths only (halves the time)")
    p.add_argument("--all-paths", action="store_true",
                   help="also measure bf16 where this CPU has no native bf16 (the kernel plan already measured it "
                        "several times slower than fp32 there; 1,000 reviews then take minutes)")
    return p


def peak_gops(kernel: str, windows: int = 5, seconds: float = 1.0, n: int = 1024) -> float:
    """Dense n x n x n product throughput with torch's default threads, in GOP/s: the ceiling of one
    arithmetic (fp32, bf16, or an int8 kernel of core.kernels, without the per-row quantization). The best
    of several windows, since a ceiling must not be lowered by a moment of contention (one 2 s window gave
    187 and 115 GFLOP/s in two runs)."""
    import torch

    from core import kernels

    a, b = torch.randn(n, n), torch.randn(n, n)
    if kernel in ("fp32", "bf16"):
        a, b = (a, b) if kernel == "fp32" else (a.bfloat16(), b.bfloat16())
        run = lambda: a @ b
    else:
        q, packed = torch.randint(-127, 128, (n, n)).float(), kernels.pack(torch.randint(-1, 2, (n, n),
                                                                                          dtype=torch.int8), kernel)
        run = lambda: kernels.int_sums(q, packed, kernel)
    run()
    best = 0.0
    for _ in range(windows):
        runs, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            run()
            runs += 1
        best = max(best, 2 * n**3 * runs / (time.perf_counter() - start) / 1e9)
    return best


def arithmetic_of(model) -> str:
    """What the model's matmuls run in now: an int8 kernel's name, bf16 or fp32 (core.kernels's keys)."""
    net = getattr(model, "net", None)
    for module in net.modules() if net is not None else []:
        if getattr(module, "kernel", "float") != "float":  # Int8Linear / TernaryLinear on an integer kernel
            return module.kernel
    return "bf16" if getattr(model, "precision", "fp32") == "bf16" else "fp32"


def useful_flops(model, texts: list[str]) -> float | None:
    """Forward-pass multiply-adds x 2 on the real (unpadded) token counts; None for non-neural models."""
    if hasattr(model, "tokenizer"):  # BERT family: per layer QKV+output 8TH^2, FFN 4THI, attention 4T^2H
        c = model.net.config
        h, i, n_layers = c.hidden_size, c.intermediate_size, c.num_hidden_layers
        t = np.array([len(s) for s in model.encode(texts)], dtype=np.float64)
        return float(np.sum(n_layers * (8 * t * h * h + 4 * t * h * i + 4 * t * t * h)))
    if hasattr(model, "vocab") and hasattr(model, "net"):  # LSTM: 4 gates x (in + hidden) x hidden per token
        cfg = model.cfg
        t = np.array([min(len(model.encode(x)), cfg.max_len) for x in texts], dtype=np.float64)
        dirs = 2 if cfg.bidirectional else 1
        per_token = sum(8 * ((cfg.embed_dim if layer == 0 else cfg.hidden * dirs) + cfg.hidden) * cfg.hidden
                        for layer in range(cfg.layers)) * dirs
        return float(t.sum() * per_token)
    return None


def _measure(name: str, root: str, texts: list[str], y: list[int], precision: str | None, compiled: bool,
             repeat: int, queue) -> None:
    """Runs in a child process: load, (compile,) warm up, time predict_proba (in ``precision``; None =
    default; best of ``repeat``), report."""
    model = load_model(name, Path(root))
    note = model.set_precision(precision) if precision is not None else ""
    start = time.perf_counter()
    if compiled:
        model.compile()
    model.predict_proba(texts[:16])  # the compilation happens here, in the first batch
    compile_s = time.perf_counter() - start if compiled else None
    seconds = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        p = model.predict_proba(texts)
        seconds = min(seconds, time.perf_counter() - start)
    flops = useful_flops(model, texts)
    queue.put({"rows_per_s": len(texts) / seconds, "accuracy": float(np.mean((p >= 0.5) == np.array(y))),
               "predicted": (p >= 0.5).tolist(), "compile_s": compile_s,
               "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "note": note,
               "arithmetic": arithmetic_of(model), "gflops": flops / seconds / 1e9 if flops else None})


def _pipeline(directory: str, texts: list[str], max_len: int, repeat: int, queue) -> None:
    """Hugging Face pipeline on the same checkpoint and reviews; best of batch sizes 1 and 32, and of
    ``repeat`` runs each."""
    from transformers import pipeline

    clf = pipeline("text-classification", model=directory, tokenizer=directory, device=-1)
    best = 0.0
    for batch_size in (1, 32):
        clf(texts[:8], batch_size=batch_size, truncation=True, max_length=max_len)
        for _ in range(repeat):
            start = time.perf_counter()
            clf(texts, batch_size=batch_size, truncation=True, max_length=max_len)
            best = max(best, len(texts) / (time.perf_counter() - start))
    queue.put(best)


def in_child(target, *args):
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def paths(cls, skip: tuple[str, ...] = ()) -> list[str | None]:
    """The precisions to measure: the training-time one first (the reference), then the others but ``skip``,
    then auto. None = a model with no choice."""
    if not hasattr(cls, "set_precision"):
        return [None]
    first = cls.training_precision
    return [first, *[p for p in cls.precisions if p != first and p not in skip], "auto"]


def main(argv: list[str] | None = None) -> int:
    from core import kernels

    args = build_parser().parse_args(argv)
    root = args.models_dir or models_dir()
    names = resolve_names(args.models, root)
    with store.connect(args.db or default_db(), read_only=True) as con:
        sample = store.load_split(con, "imdb", "test").head(args.sample)
    texts, y = sample["text"].tolist(), sample["y"].tolist()
    plan = kernels.current()
    peaks = {k: peak_gops(k, windows=5 if k == "fp32" else 2) for k in ("fp32", "bf16", *kernels.available_int8_kernels())}
    cpu = f"CPU: {plan.cpu.describe()}"
    peak_line = "measured peaks (GOP/s, n=1024 products): " + ", ".join(f"{k} {v:.0f}" for k, v in peaks.items())
    log(f"{cpu}\n{peak_line}\nkernel plan: {plan.why()}\n{len(texts)} imdb test reviews")

    rows, pipeline_speed = [], {}  # pipeline_speed: kind -> reviews/s of the HF pipeline
    for name in names:
        kind = model_kind(name, root)
        if kind == "bert" and not args.no_pipeline and "bert" not in pipeline_speed:
            max_len = read_manifest(root / name)["config"].get("max_len", 128)
            pipeline_speed["bert"] = in_child(_pipeline, str(root / name), texts, max_len, args.repeat)
            log(f"Hugging Face pipeline on {name}: {pipeline_speed['bert']:.1f} reviews/s")
        cls = model_class(kind)
        reference = None  # the training-time arithmetic's predictions; every path is compared with them
        skip = () if args.all_paths or plan.cpu.native_bf16 else ("bf16",)
        for precision in paths(cls, skip):
            for compiled in (False, True) if hasattr(cls, "compile") and not args.no_compile else (False,):
                r = in_child(_measure, name, str(root), texts, y, precision, compiled, args.repeat)
                label = ((f"auto = {r['note'].split(' (')[0]}" if precision == "auto" else precision or "")
                         + (" +compile" if compiled else ""))
                reference = reference or r["predicted"]
                r["agreement"] = float(np.mean(np.array(r["predicted"]) == np.array(reference)))
                rows.append({**r, "model": name, "kind": kind, "precision": label})
                log(f"{name} [{label}]: {r['rows_per_s']:.1f} reviews/s on {r['arithmetic']}, accuracy "
                    f"{r['accuracy']:.4f}, same prediction as the training arithmetic on {r['agreement']:.2%}")

    print(f"\n{date.today()}, {platform.machine()} {mp.cpu_count()} cores, {len(texts)} imdb test reviews\n{cpu}\n"
          f"{peak_line}\nkernel plan: {plan.why()}\n")
    print("| model | precision | runs on | reviews/s | x HF pipeline | share of its arithmetic's peak | peak memory (MB) "
          "| accuracy | same prediction as training arithmetic | compile (s, once) |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        # BitLinear BERT has no pipeline of its own: compared with the full-precision BERT's, same shape
        ref = pipeline_speed.get("bert") if r["kind"] in ("bert", "bitbert") else None
        ratio = f"{r['rows_per_s'] / ref:.2f}" if ref else ""
        share = f"{r['gflops'] / peaks[r['arithmetic']]:.0%}" if r["gflops"] else ""
        compile_s = f"{r['compile_s']:.0f}" if r["compile_s"] is not None else ""
        runs_on = r["arithmetic"] if r["gflops"] else ""
        print(f"| {r['model']} | {r['precision']} | {runs_on} | {r['rows_per_s']:,.1f} | {ratio} | {share} | "
              f"{r['peak_mb']:,.0f} | {r['accuracy']:.4f} | {r['agreement']:.2%} | {compile_s} |")
    return 0


if __name__ == "__main__":
    run_main(main)
