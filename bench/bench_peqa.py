"""PEQA vs QLoRA on SmolLM2-135M-Instruct: same data, same steps, and the final quantized deliverables compared.

Reproduce (real PubMedQA from $ADAPT_DATA_DIR, else the bundled sample):

    cd /work/main && PYTHONPATH=. python3 bench/bench_peqa.py
    PYTHONPATH=. python3 bench/bench_peqa.py --steps 10 --eval-limit 30     # a quick look

On the shared 2-core CPU this was measured on (load average 5-13 from other jobs) the
default run took about 90 minutes, mostly QLoRA training (110 s a step under that load)
and scoring; the interleaved step-time probe is the load-independent speed figure.

Both methods train with adapt's own trainer (`adapt.train.run`) on the same PubMedQA
examples, in the same order, for the same number of optimizer steps and batch size;
each keeps its own learning rate (PEQA scales want a larger one). Each stage runs in
its own process, so peak RSS is that stage's alone. The deliverable is what a user
ships on NF4:

- PEQA: the scales folded into the NF4 block scales (`adapt.methods.peqa.run.export_run`), no re-quantization;
- QLoRA: the LoRA merged into the 16-bit base and re-quantized to NF4 (`adapt merge` +
  `adapt quantize --format nf4`).

Both deliverables (and the base, and QLoRA's unmerged adapter) are scored by label
log-likelihood on the same seeded sample of the official PubMedQA test set (accuracy and
macro-F1; the test file is ordered by label, so never a prefix). PEQA's unmerged adapter
computes exactly what its export computes (tests/methods/test_peqa.py), so it is not scored again.

Each stage's result is cached next to its run (bench/out/runs/<method>/.bench-*.json) and
reused when its settings match, so a rerun with another --eval-limit only rescores;
--fresh redoes everything.

Writes bench/out/peqa_vs_qlora.json and .md and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

METHODS = {
    "qlora": {"name": "qlora", "rank": 16, "alpha": 32, "dropout": 0.05},
    "peqa": {"name": "peqa", "granularity": "channel", "target_modules": "all-linear"},
}


def recipe_for(method: str, args: argparse.Namespace):
    from adapt.data.paths import resolve_data_path
    from adapt.recipe import Recipe

    real = resolve_data_path("${ADAPT_DATA_DIR}/pubmedqa")
    data_path = str(real) if real and (real / "ori_pqal.json").is_file() and not args.sample else str(REPO / "domains/healthcare/sample")
    lr = args.peqa_lr if method == "peqa" else args.qlora_lr
    return Recipe.model_validate({
        "name": f"bench-{method}",
        "domain": "healthcare",
        "model": {"source": args.model, "quantization": "nf4"},
        "method": METHODS[method],
        "data": {"source": "pubmedqa", "path": data_path, "max_context_chars": args.context_chars,
                 "validation_size": 50 if "sample" not in data_path else 4},
        "train": {"max_steps": args.steps, "batch_size": args.batch_size, "learning_rate": lr,
                  "max_seq_len": args.max_seq_len, "logging_steps": 5, "save_steps": 100_000, "warmup_ratio": 0.1},
        "eval": {"split": "test", "limit": args.eval_limit, "seed": 0},
        "export": {"merge": ["fp16"], "formats": ["nf4"]},
    })  # fmt: skip


# --------------------------------------------------------------------------- stages (each in its own process)
def stage_train(method: str, run_dir: Path, args) -> dict:
    from adapt import train
    from adapt.runs import read_json

    train.run(recipe_for(method, args), run_dir)
    m = read_json(run_dir / "metrics.json")
    return {
        "trainable_params": m["trainable_params"],
        "steps": m["steps"],
        "train_runtime_s": m["train_runtime_s"],
        "s_per_step": round(m["train_runtime_s"] / max(m["steps"], 1), 2),
        "tokens_per_s": m["tokens_per_s"],
        "train_peak_rss_mb": m["peak_rss_mb"],
        "final_logged_loss": m["final_logged_loss"],
        "adapter_bytes": sum(f.stat().st_size for f in (run_dir / "adapter").glob("adapter_model.safetensors")),
    }


def stage_deliver(method: str, run_dir: Path, args) -> dict:
    from adapt.runs import RunDir, dir_size_bytes
    from adapt.training.trainer import peak_rss_mb

    run, recipe = RunDir(run_dir), recipe_for(method, args)
    out = run.export("nf4")
    start = time.perf_counter()
    if method == "peqa":
        from adapt.methods.peqa.run import export_run

        export_run(run, recipe, out)
        extra = {}
    else:
        from adapt.merge import merge_one
        from adapt.quantize import export

        merged = merge_one(run, recipe, "fp16")
        export(merged, "nf4", out)
        extra = {"merged_fp16_bytes": dir_size_bytes(merged)}
    weights = sum(f.stat().st_size for f in out.glob("*.safetensors"))
    return {"deliver_s": round(time.perf_counter() - start, 1), "deliverable_bytes": dir_size_bytes(out),
            "deliverable_weights_bytes": weights, "deliver_peak_rss_mb": round(peak_rss_mb(), 1), **extra}


def stage_score(method: str, run_dir: Path, args, variant: str) -> dict:
    from adapt import models
    from adapt.data import load_task
    from adapt.tasks.scoring import score, select_examples
    from adapt import methods

    recipe = recipe_for(method, args)
    if variant == "export":
        from adapt.export.load import load_export

        model, tokenizer = load_export(run_dir / "export" / "nf4", "nf4")
    else:
        model, tokenizer = models.load_base(recipe.model)
        if variant == "adapter":
            model = methods.get(method).load(model, run_dir / "adapter")
    task = load_task(recipe.data)
    examples = select_examples(task, recipe.eval.split, recipe.eval.limit, recipe.eval.seed)
    start = time.perf_counter()
    metrics = score(model.eval(), tokenizer, recipe, task, examples)
    keep = ("accuracy", "macro_f1", "n")
    return {k: metrics[k] for k in keep if k in metrics} | {"n": len(examples), "score_s": round(time.perf_counter() - start, 1)}


def stage_steptime(method: str, run_dir: Path, args) -> dict:
    """Both methods in one process, steps interleaved (Q, P, Q, P, ...): a step-time ratio that load on a shared machine cannot skew."""
    import statistics

    import torch

    from adapt import models
    from adapt import methods

    torch.manual_seed(0)
    ids = torch.randint(100, 40_000, (args.batch_size, args.max_seq_len))
    wrapped, optimizers, times = {}, {}, {}
    for name in ("qlora", "peqa"):
        recipe = recipe_for(name, args)
        base, _ = models.load_base(recipe.model)
        wrapped[name] = methods.get(name).build(recipe.method, base).train()
        optimizers[name] = torch.optim.AdamW([p for p in wrapped[name].parameters() if p.requires_grad], lr=recipe.train.learning_rate)
        times[name] = []
    for _ in range(args.probe_rounds + 1):  # the first round warms up
        for name, model in wrapped.items():
            start = time.perf_counter()
            model(input_ids=ids, labels=ids).loss.backward()
            optimizers[name].step()
            optimizers[name].zero_grad(set_to_none=True)
            times[name].append(time.perf_counter() - start)
    med = {name: statistics.median(t[1:]) for name, t in times.items()}
    return {"qlora_s": round(med["qlora"], 2), "peqa_s": round(med["peqa"], 2), "peqa_over_qlora": round(med["peqa"] / med["qlora"], 3),
            "rounds": args.probe_rounds, "shape": [args.batch_size, args.max_seq_len]}


def _stage_key(stage: str, method: str, args, variant: str) -> dict:
    """What a stage's result depends on: a cached result is reused only when this matches."""
    key = {"stage": stage, "method": method, "variant": variant, "model": args.model, "steps": args.steps,
           "batch_size": args.batch_size, "max_seq_len": args.max_seq_len, "context_chars": args.context_chars,
           "lr": args.peqa_lr if method == "peqa" else args.qlora_lr, "sample": args.sample}  # fmt: skip
    if stage == "steptime":
        key = {k: key[k] for k in ("stage", "model", "batch_size", "max_seq_len")} | {"rounds": args.probe_rounds}
    if stage == "score":
        key["eval_limit"] = args.eval_limit
        if variant == "base":
            key = {k: key[k] for k in ("stage", "variant", "model", "eval_limit", "context_chars", "sample")}
    return key


def _child(stage: str, method: str, run_dir: Path, args, variant: str = "") -> dict:
    """Run one stage in a fresh process (its own peak RSS); reuse its cached result unless --fresh."""
    result = run_dir / f".bench-{stage}{'-' + variant if variant else ''}.json"
    key = _stage_key(stage, method, args, variant)
    if result.is_file() and not args.fresh:
        cached = json.loads(result.read_text())
        if cached.get("key") == key:
            print(f"[bench] {' '.join(filter(None, (stage, method, variant)))}: cached", flush=True)
            return cached
    cmd = [sys.executable, __file__, "--stage", stage, "--method", method, "--run-dir", str(run_dir),
           "--variant", variant, "--result", str(result)] + args.passthrough  # fmt: skip
    print(f"[bench] {stage} {method} {variant}".rstrip(), flush=True)
    proc = subprocess.run(cmd, cwd=REPO, stdout=subprocess.DEVNULL if not args.verbose else None, stderr=subprocess.PIPE, text=True)
    if proc.returncode:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"[bench] stage {stage} {method} failed (exit {proc.returncode})")
    out = json.loads(result.read_text()) | {"key": key}
    result.write_text(json.dumps(out))
    return out


# --------------------------------------------------------------------------- report
def _mb(n: int | None) -> str:
    return "" if n is None else f"{n / 2**20:.1f}"


def table(results: dict) -> str:
    base = results["base"]
    rows = [
        "| | QLoRA (r=16, all linear) | PEQA (channel scales) |",
        "|---|---|---|",
    ]
    q, p = results["qlora"], results["peqa"]

    def row(label, fn):
        rows.append(f"| {label} | {fn(q)} | {fn(p)} |")

    row("trainable parameters", lambda r: f"{r['trainable_params']:,}")
    row("learning rate", lambda r: f"{r['learning_rate']:g}")
    row("step time in adapt train (s, batch %d)" % results["config"]["batch_size"], lambda r: f"{r['s_per_step']:.2f}")
    probe = results.get("steptime")
    if probe:
        rows.append(f"| step time, interleaved probe (s, {probe['shape'][0]}x{probe['shape'][1]} tokens) "
                    f"| {probe['qlora_s']:.2f} | {probe['peqa_s']:.2f} ({probe['peqa_over_qlora']:.2f}x) |")
    row("train tokens/s", lambda r: f"{r['tokens_per_s']}")
    row("peak RSS, training (MB)", lambda r: f"{r['train_peak_rss_mb']:.0f}")
    row("final train loss (last log)", lambda r: f"{r['final_logged_loss']:.4f}")
    row("adapter file (MiB)", lambda r: _mb(r["adapter_bytes"]))
    row("deliverable", lambda r: "merged fp16 -> re-quantized NF4" if r is q else "scales folded into NF4 absmax")
    row("deliverable on disk (MiB, whole dir)", lambda r: _mb(r["deliverable_bytes"]))
    row("time to make deliverable (s)", lambda r: f"{r['deliver_s']}")
    row("peak RSS, making deliverable (MB)", lambda r: f"{r['deliver_peak_rss_mb']:.0f}")
    row("unmerged adapter: accuracy / macro-F1",
        lambda r: f"{r['adapter']['accuracy']:.3f} / {r['adapter']['macro_f1']:.3f}" if "adapter" in r else "= NF4 deliverable (bit-exact)")
    row("**NF4 deliverable: accuracy / macro-F1**", lambda r: f"**{r['export']['accuracy']:.3f} / {r['export']['macro_f1']:.3f}**")
    cfg = results["config"]
    rows.append("")
    rows.append(
        f"Base NF4 model: accuracy {base['accuracy']:.3f} / macro-F1 {base['macro_f1']:.3f}. "
        f"{cfg['steps']} steps x batch {cfg['batch_size']} on {cfg['data']}; scored on a seeded sample of "
        f"{base['n']} PubMedQA test questions (label log-likelihood). Host: {cfg['host']}, "
        f"load average {cfg['load_average_at_end']} at the end (shared machine: times are upper bounds)."
    )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-seq-len", type=int, default=256)
    parser.add_argument("--context-chars", type=int, default=500)
    parser.add_argument("--qlora-lr", type=float, default=5e-4)
    parser.add_argument("--peqa-lr", type=float, default=5e-3)
    parser.add_argument("--eval-limit", type=int, default=60)
    parser.add_argument("--probe-rounds", type=int, default=3, help="interleaved step-time probe rounds (0: skip)")
    parser.add_argument("--sample", action="store_true", help="use the bundled sample even when real PubMedQA is present")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out")
    parser.add_argument("--fresh", action="store_true", help="redo every stage (default: reuse results whose settings match)")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    parser.add_argument("--method", help=argparse.SUPPRESS)
    parser.add_argument("--run-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--variant", default="", help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.stage:  # child process
        stage = {"train": stage_train, "deliver": stage_deliver, "score": stage_score, "steptime": stage_steptime}[args.stage]
        extra = (args.variant,) if args.stage == "score" else ()
        args.result.write_text(json.dumps(stage(args.method, args.run_dir, args, *extra)))
        return

    import platform

    import torch

    args.passthrough = [a for a in sys.argv[1:] if a not in ("--verbose", "--fresh")]
    runs = args.out / "runs"
    results: dict = {}
    start = time.perf_counter()
    for method in ("qlora", "peqa"):
        run_dir = runs / method
        r = _child("train", method, run_dir, args)
        r["learning_rate"] = args.peqa_lr if method == "peqa" else args.qlora_lr
        r |= _child("deliver", method, run_dir, args)
        if method == "qlora":  # PEQA's adapter computes exactly what its export does (tests/methods/test_peqa.py)
            r["adapter"] = _child("score", method, run_dir, args, "adapter")
        r["export"] = _child("score", method, run_dir, args, "export")
        results[method] = r
    results["base"] = _child("score", "qlora", runs / "qlora", args, "base")
    results["steptime"] = _child("steptime", "both", runs, args) if args.probe_rounds else None
    recipe = recipe_for("peqa", args)
    results["config"] = {
        "model": args.model, "steps": args.steps, "batch_size": args.batch_size, "max_seq_len": args.max_seq_len,
        "data": f"PubMedQA PQA-L ({recipe.data.path})", "eval_limit": args.eval_limit,
        "host": f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}",
        "load_average_at_end": [round(x, 1) for x in os.getloadavg()],
        "total_s": round(time.perf_counter() - start, 1),
    }  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "peqa_vs_qlora.json").write_text(json.dumps(results, indent=2) + "\n")
    text = table(results)
    (args.out / "peqa_vs_qlora.md").write_text(text + "\n")
    print(text)
    print(f"\n[bench] {results['config']['total_s']:.0f} s; wrote {args.out / 'peqa_vs_qlora.json'} and .md")


if __name__ == "__main__":
    main()
