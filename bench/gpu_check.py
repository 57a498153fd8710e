"""The GPU check: adapt's training, merge and GGUF paths on one CUDA GPU, in about 8 minutes.

Reproduce (one CUDA GPU; the two offline models converted once into ~/.cache/adapt/models or $ADAPT_CACHE_DIR):
    python bench/gpu_check.py --out bench/out
    python bench/gpu_check.py --dry-run      # CPU, a tiny random model: checks this script, measures nothing

For SmolLM2-135M and Gemma-3-270M it trains, through `adapt train` itself, a bf16 LoRA (16-bit base) and
QLoRA, MoE-LoRA and PEQA (NF4 base, bf16 compute) for --steps steps on the bundled PubMedQA sample, and
records steady tokens/s (logged intervals after the first) and peak GPU memory against the bf16 LoRA of the
same model. Then, on the first model's QLoRA run: a merge into the dequantized NF4 weights, a GGUF Q8_0
export, and llama.cpp loading it with every layer offloaded to the GPU (needs llama-cpp-python built with
CMAKE_ARGS=-DGGML_CUDA=on; a CPU build is reported as such). Every part that fails or runs past --budget-s
is recorded, not raised. Writes gpu_check.json and gpu_check.md into --out.
"""

from __future__ import annotations

import argparse
import csv
import gc
import json
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MODELS = ("smollm2-135m-instruct", "gemma-3-270m")
VARIANTS = {  # name -> (method, base quantization)
    "lora-bf16": ({"name": "qlora", "rank": 16, "alpha": 32}, "none"),
    "qlora": ({"name": "qlora", "rank": 16, "alpha": 32}, "nf4"),
    "moe_lora": ({"name": "moe_lora", "rank": 8, "alpha": 16, "num_experts": 4, "top_k": 2}, "nf4"),
    "peqa": ({"name": "peqa"}, "nf4"),
}
REFERENCE = "lora-bf16"
SAMPLE = REPO / "domains" / "healthcare" / "sample"


class Clock:
    def __init__(self, budget_s: float):
        self.start, self.budget_s = time.perf_counter(), budget_s

    def left(self) -> float:
        return self.budget_s - (time.perf_counter() - self.start)


def _recipe(source: str, method: dict, quantization: str, args, device: str):
    from adapt.recipe import Recipe

    return Recipe.model_validate({
        "name": "gpu-check", "domain": "healthcare",
        "model": {"source": source, "quantization": quantization, "compute_dtype": args.dtype},
        "method": method,
        "data": {"source": "pubmedqa", "path": str(SAMPLE), "validation_size": 4, "max_context_chars": 1500},
        "train": {"max_steps": args.steps, "batch_size": args.batch_size, "max_seq_len": args.seq_len, "learning_rate": 1e-4,
                  "logging_steps": max(1, args.steps // 5), "save_steps": 100_000, "device": device, "eval_steps": 0},
        "export": {"merge": ["nf4_dequant"], "formats": ["gguf-q8_0"]},
    })  # fmt: skip


def _steady_tokens_per_s(run_dir: Path) -> float | None:
    rows = list(csv.DictReader((run_dir / "logs" / "train_log.csv").open()))
    rates = [float(r["tokens_per_s"]) for r in rows[1:] if r.get("tokens_per_s")]  # the first interval warms up
    return round(statistics.median(rates), 1) if rates else None


def _free_memory(device: str) -> None:
    import torch

    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _attempt(clock: Clock, need_s: float, fn, *a):
    """fn(*a) as a result dict, or {'error': ...} / {'skipped': ...}; never raises."""
    if clock.left() < need_s:
        return {"skipped": f"time budget: {clock.left():.0f} s left, about {need_s:.0f} s needed"}
    try:
        return fn(*a)
    except Exception as exc:  # a check reports every failure and goes on
        traceback.print_exc()
        return {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]}


def train_variant(source: str, variant: str, args, device: str, work: Path) -> dict:
    from adapt import train

    method, quantization = VARIANTS[variant]
    _free_memory(device)
    start = time.perf_counter()
    run_dir = train.run(_recipe(source, method, quantization, args, device), work / f"{Path(source).name}-{variant}")
    m = json.loads((run_dir / "metrics.json").read_text())
    return {
        "run_dir": str(run_dir), "steps": m["steps"], "wall_s": round(time.perf_counter() - start, 1),
        "tokens_per_s": m["tokens_per_s"], "steady_tokens_per_s": _steady_tokens_per_s(run_dir),
        "peak_gpu_mb": round(m["peak_device_mb"], 1) if m.get("peak_device_mb") else None,
        "trainable_params": m["trainable_params"], "final_loss": m["final_logged_loss"],
    }  # fmt: skip


def merge_and_export(run_dir: Path) -> dict:
    from adapt import merge, quantize

    start = time.perf_counter()
    merged = merge.run(run_dir, targets=["nf4_dequant"])[0]
    merge_s = time.perf_counter() - start
    exported = quantize.run(run_dir, ["gguf-q8_0"], source="nf4_dequant")["gguf-q8_0"]
    gguf = Path(exported) if Path(exported).suffix == ".gguf" else next(Path(exported).rglob("*.gguf"))
    return {"merged": str(merged), "merge_s": round(merge_s, 1), "gguf": str(gguf), "gguf_mb": round(gguf.stat().st_size / 2**20, 1),
            "export_s": round(time.perf_counter() - start - merge_s, 1)}  # fmt: skip


def llamacpp_offload(gguf: Path) -> dict:
    from adapt.export import llamacpp

    if not llamacpp.available():
        return {"skipped": "llama-cpp-python is not installed: CMAKE_ARGS=-DGGML_CUDA=on pip install -e '.[gguf]'"}
    offload = bool(llamacpp.require("the GPU check").llama_supports_gpu_offload())
    start = time.perf_counter()
    llm = llamacpp.load(gguf, n_gpu_layers=-1)  # adapt's loader: no AMX buffers on a host CPU with AMX
    load_s = time.perf_counter() - start
    start = time.perf_counter()
    out = llm.create_completion("Question: does aspirin reduce the risk of stroke? Answer:", max_tokens=32, temperature=0.0)
    n = out["usage"]["completion_tokens"]
    return {"gpu_offload_supported": offload, "n_gpu_layers": -1, "load_s": round(load_s, 2),
            "decode_tokens_per_s": round(n / (time.perf_counter() - start), 1), "text": out["choices"][0]["text"][:80]}  # fmt: skip


def _environment(device: str) -> dict:
    import bitsandbytes
    import torch
    import transformers

    env = {"torch": torch.__version__, "transformers": transformers.__version__, "bitsandbytes": bitsandbytes.__version__,
           "cpu_capability": torch.backends.cpu.get_cpu_capability(), "device": device}  # fmt: skip
    if device == "cuda":
        env |= {"gpu": torch.cuda.get_device_name(0), "cuda": torch.version.cuda,
                "gpu_memory_gb": round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)}  # fmt: skip
    return env


def _ratio(value, reference) -> str:
    return f"{value / reference:.2f}" if value and reference else "-"


def markdown(result: dict) -> str:
    env = result["environment"]
    lines = [f"GPU check: {env.get('gpu', env['device'])}, torch {env['torch']}, CUDA {env.get('cuda')}, "
             f"bitsandbytes {env['bitsandbytes']}; batch {result['args']['batch_size']} x {result['args']['seq_len']} tokens, "
             f"{result['args']['steps']} steps, {result['args']['dtype']} compute; {result['total_s']:.0f} s in all", "",
             "| model | variant | steady tokens/s | x bf16 LoRA | peak GPU MB | x bf16 LoRA | trainable | final loss |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for model, rows in result["training"].items():
        ref = rows.get(REFERENCE, {})
        for variant, r in rows.items():
            if "steady_tokens_per_s" not in r:
                lines.append(f"| {model} | {variant} | {r.get('error') or r.get('skipped')} | | | | | |")
                continue
            lines.append(
                f"| {model} | {variant} | {r['steady_tokens_per_s']} | {_ratio(r['steady_tokens_per_s'], ref.get('steady_tokens_per_s'))} "
                f"| {r['peak_gpu_mb']} | {_ratio(r['peak_gpu_mb'], ref.get('peak_gpu_mb'))} | {r['trainable_params']:,} | {r['final_loss']:.3f} |"
            )
    lines += ["", "| step | result |", "|---|---|"]
    for step in ("export", "llamacpp"):
        lines.append(f"| {step} | {json.dumps(result[step])} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(REPO / "bench" / "out"), help="folder for gpu_check.json and gpu_check.md")
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--budget-s", type=float, default=450, help="stop starting new parts after this many seconds")
    parser.add_argument("--dry-run", action="store_true", help="CPU and a tiny random model: check the script itself")
    parser.add_argument("--work", help="folder for the run directories (default: a temporary one, removed at the end)")
    parser.add_argument("--models", nargs="+", default=list(MODELS), help="model sources (offline names, local HF dirs)")
    args = parser.parse_args(argv)

    import torch

    models, device = args.models, "cuda"
    work = Path(args.work or tempfile.mkdtemp(prefix="gpu-check-"))
    if args.dry_run:
        sys.path.insert(0, str(REPO / "tests"))
        from tiny import build_tiny_llama

        models, device, args.dtype = [str(build_tiny_llama(work / "tiny-llama"))], "cpu", "float32"
        args.steps, args.batch_size, args.seq_len = min(args.steps, 4), min(args.batch_size, 2), min(args.seq_len, 96)
    elif not torch.cuda.is_available():
        print("error: no CUDA GPU is visible; run on a GPU machine, or pass --dry-run to check the script on the CPU", file=sys.stderr)
        return 2
    else:
        args.dtype = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"

    clock = Clock(args.budget_s)
    result = {"args": vars(args), "environment": _environment(device), "training": {}}
    for source in models:
        rows = result["training"].setdefault(Path(source).name, {})
        for variant in VARIANTS:
            rows[variant] = _attempt(clock, 20, train_variant, source, variant, args, device, work)
            print(f"{Path(source).name} {variant}: {rows[variant]}", flush=True)
    first = result["training"][Path(models[0]).name].get("qlora", {})
    if "run_dir" in first:
        result["export"] = _attempt(clock, 40, merge_and_export, Path(first["run_dir"]))
    else:
        result["export"] = {"skipped": "the QLoRA run of the first model did not finish"}
    gguf = result["export"].get("gguf")
    result["llamacpp"] = _attempt(clock, 10, llamacpp_offload, Path(gguf)) if gguf else {"skipped": "no GGUF export"}
    result["total_s"] = round(time.perf_counter() - clock.start, 1)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_check.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "gpu_check.md").write_text(markdown(result))
    print(markdown(result))
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
