"""CPU training and scoring speed: QLoRA (NF4) vs a plain LoRA, with each speed-up of `adapt train` on and off.

Reproduce (writes bench/results/cpu_speed-<capability>.json and .md):
    python bench/bench_cpu_speed.py --models smollm2-135m-instruct gemma-3-270m --steps 3
    # an AVX2-only CPU, emulated on a newer one (torch, oneDNN and MKL kept to AVX2 kernels):
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 python bench/bench_cpu_speed.py

Every row trains the same LoRA (rank 16, the seven projections, adapt's QLoRA build) on real
PubMedQA training prompts in adapt's prompt format (the bundled sample when ../shared/data is
absent), completion-only labels, in its own process (so peak RSS is its own), after one warm-up step:

- base: `lora` (16-bit base), `qlora-bnb` (NF4, bitsandbytes dequantizes per call),
  `qlora-once` (NF4, adapt's dequantize-once layer);
- head: `full` (logits over every position, transformers' loss), `trl-fused` (TRL's fused LM head:
  no full logits tensor, but off CUDA it still scores every position) or `supervised` (adapt's head
  at the supervised positions only, what `adapt train` runs);
- batches: `random` (shuffled, padded to the longest) or `grouped` (transformers'
  LengthGroupedSampler, what `adapt train` runs). Rows with the same batching see the same batches.

Scoring rows time PubMedQA label scoring (examples/s) one example at a time and batched.
The compute dtype is `auto` (bf16 with native bf16, else fp32); tokens/s counts real (unpadded) tokens.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "results"
TRAIN_ROWS = [  # (base, head, batches)
    ("lora", "full", "random"),
    ("qlora-bnb", "full", "random"),
    ("qlora-once", "full", "random"),
    ("qlora-once", "trl-fused", "random"),
    ("qlora-once", "supervised", "random"),
    ("lora", "supervised", "grouped"),
    ("qlora-once", "supervised", "grouped"),
]
SCORE_ROWS = [("qlora-bnb", "one-by-one"), ("qlora-once", "one-by-one"), ("qlora-once", "batched")]


def _task():
    from adapt.data import load_task
    from adapt.recipe import PubMedQAData

    real = Path(os.environ.get("ADAPT_DATA_DIR", REPO.parent / "shared" / "data")) / "pubmedqa"
    path = real if real.is_dir() else REPO / "domains" / "healthcare" / "sample"
    return load_task(PubMedQAData(source="pubmedqa", path=str(path), max_context_chars=900)), str(path)


def _model(model: str, base: str):
    from adapt import models
    from adapt.models.bnb_cpu import disable_cpu_4bit_packing
    from adapt.recipe import ModelConfig

    quantization = "none" if base == "lora" else "nf4"
    path = "bitsandbytes" if base == "qlora-bnb" else "dequantize_once"
    cfg = ModelConfig(source=model, quantization=quantization, cpu_nf4_path=path)
    loaded, tokenizer = models.load_base(cfg, device="cpu")
    disable_cpu_4bit_packing(loaded)
    return loaded, tokenizer, cfg


def _examples(tokenizer, task, seq_len: int) -> list[dict]:
    """(input_ids, labels) per training example: `adapt train`'s prompt/completion rows (prompt cut to fit), tokenized."""
    from adapt.tasks.prompting import PromptFormat
    from adapt.tasks.sft import sft_dataset

    rows = []
    for row in sft_dataset(task, PromptFormat(tokenizer, task.instruction), seq_len):
        prompt_ids = tokenizer(row["prompt"], add_special_tokens=False)["input_ids"]
        answer_ids = tokenizer(row["completion"], add_special_tokens=False)["input_ids"]
        ids = (prompt_ids + answer_ids)[:seq_len]
        rows.append({"input_ids": ids, "labels": ([-100] * len(prompt_ids) + answer_ids)[:seq_len]})
    return rows


def _batches(rows: list[dict], batching: str, batch_size: int, count: int, pad_id: int):
    import torch
    from transformers.trainer_pt_utils import LengthGroupedSampler

    generator = torch.Generator().manual_seed(0)
    if batching == "grouped":
        order = list(LengthGroupedSampler(batch_size, lengths=[len(r["input_ids"]) for r in rows], generator=generator))
    else:
        order = torch.randperm(len(rows), generator=generator).tolist()
    for b in range(count):
        chunk = [rows[order[(b * batch_size + i) % len(order)]] for i in range(batch_size)]
        width = max(len(r["input_ids"]) for r in chunk)
        ids = torch.full((batch_size, width), pad_id)
        labels = torch.full((batch_size, width), -100)
        mask = torch.zeros((batch_size, width), dtype=torch.long)
        for i, r in enumerate(chunk):
            n = len(r["input_ids"])
            ids[i, :n], labels[i, :n], mask[i, :n] = torch.tensor(r["input_ids"]), torch.tensor(r["labels"]), 1
        yield {"input_ids": ids, "attention_mask": mask, "labels": labels}


def _loss(model, batch: dict, head: str):
    """The step's loss: transformers' full logits, TRL's fused head (every position, chunked, off CUDA) or
    adapt's head at the supervised positions; the last two return TRL's per-token outputs, loss as TRL's."""
    from adapt.training.supervised_head import SupervisedHeadForward

    if head == "full":
        return model(**batch).loss
    forward = SupervisedHeadForward(model) if head == "supervised" else model
    out = forward(**batch, fused_lm_head=True)
    return -out.log_probs.sum() / out.label_mask.sum()


def measure_training(model: str, base: str, head: str, batching: str, steps: int, batch_size: int, seq_len: int) -> dict:
    import torch
    from trl.trainer.utils import add_fused_lm_head

    from adapt import models
    from adapt.models import dequant_once
    from adapt.methods import qlora
    from adapt.methods.qlora import QLoRAConfig
    from adapt.training.trainer import trainable_parameters

    task, _ = _task()
    loaded, tokenizer, cfg = _model(model, base)
    add_fused_lm_head(loaded)
    torch.manual_seed(0)
    lora = qlora.build(QLoRAConfig(name="qlora", rank=16, alpha=32, dropout=0.0), loaded)
    lora.train()
    optimizer = torch.optim.AdamW([p for p in lora.parameters() if p.requires_grad], lr=1e-4)
    times, tokens, padded, losses = [], [], [], []
    for batch in _batches(_examples(tokenizer, task, seq_len), batching, batch_size, steps + 1, tokenizer.pad_token_id):
        start = time.perf_counter()
        loss = _loss(lora, batch, head)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        times.append(time.perf_counter() - start)
        tokens.append(int(batch["attention_mask"].sum()))
        padded.append(batch["input_ids"].numel())
        losses.append(float(loss))
    timed = times[1:]  # the first step warms up allocators, kernels and the dense NF4 cache
    return {
        "tokens_per_s": sum(tokens[1:]) / sum(timed),
        "median_step_s": statistics.median(timed),
        "padding_share": 1 - sum(tokens[1:]) / sum(padded[1:]),
        "real_tokens_per_step": statistics.mean(tokens[1:]),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "first_loss": losses[0],
        "losses": losses,
        "trainable_params": trainable_parameters(lora)[0],
        "compute_dtype": str(models.compute_dtype(cfg, "cpu")).removeprefix("torch."),
        "nf4_cpu_path": dequant_once.path_of(lora),
    }


def measure_scoring(model: str, base: str, mode: str, examples: int, batch_size: int) -> dict:
    import random

    from adapt.tasks.classification import classification_metrics, score_examples
    from adapt.tasks.prompting import PromptFormat

    task, _ = _task()
    loaded, tokenizer, _cfg = _model(model, base)
    loaded.eval()
    sample = random.Random(0).sample(task.test, min(examples, len(task.test)))
    fmt = PromptFormat(tokenizer, task.instruction)
    score_examples(loaded, fmt, sample[:2], batch_size=batch_size if mode == "batched" else 1)  # warm-up
    start = time.perf_counter()
    scores = score_examples(loaded, fmt, sample, batch_size=batch_size if mode == "batched" else 1)
    elapsed = time.perf_counter() - start
    return {
        "examples_per_s": len(sample) / elapsed,
        "n": len(sample),
        "predicted_counts": classification_metrics(scores)["predicted_counts"],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _child(args, spec: list[str]) -> dict:
    cmd = [sys.executable, __file__, "--child", *spec, "--steps", str(args.steps), "--batch-size", str(args.batch_size),
           "--seq-len", str(args.seq_len), "--score-examples", str(args.score_examples)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if done.returncode != 0:
        raise SystemExit(f"bench child {spec} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _cpu() -> dict:
    import torch

    from adapt.models import dtypes

    name = platform.processor() or "?"
    try:
        name = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    emulated = {k: os.environ[k] for k in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS") if k in os.environ}
    return {"cpu": name, "capability": dtypes.cpu_capability(), "native_bf16": dtypes.cpu_has_native_bf16(),
            "threads": torch.get_num_threads(), "torch": torch.__version__, "isa_caps": emulated}


def _table(result: dict) -> str:
    cpu = result["cpu"]
    caps = f", ISA capped by {cpu['isa_caps']}" if cpu["isa_caps"] else ""
    lines = [
        f"CPU: {cpu['cpu']} (torch capability {cpu['capability']}{caps}, native bf16: {cpu['native_bf16']}), "
        f"{cpu['threads']} threads, torch {cpu['torch']}. Batch {result['args']['batch_size']}, max {result['args']['seq_len']} tokens, "
        f"{result['args']['steps']} timed steps after 1 warm-up. Data: {result['data']}.",
        "",
        f"Command: `{result['command']}`",
    ]
    for model, rows in result["models"].items():
        lines += ["", f"### {model}", "", "| base | LM head | batches | dtype | tokens/s | median step s | padding | peak RSS MB | first loss | x plain LoRA (same head, batches) |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for row in rows["training"]:
            ratio = f"{row['vs_lora']:.2f}" if row.get("vs_lora") else ""
            lines.append(f"| {row['base']} | {row['head']} | {row['batches']} | {row['compute_dtype']} | {row['tokens_per_s']:.0f} | "
                         f"{row['median_step_s']:.2f} | {row['padding_share']:.0%} | {row['peak_rss_mb']:.0f} | {row['first_loss']:.6f} | {ratio} |")
        s = rows["summary"]
        lines += ["", f"- QLoRA tokens/s vs plain LoRA: {s['qlora_vs_lora_full_random']:.2f}x (full head, random batches), "
                  f"{s['qlora_vs_lora_adapt_default']:.2f}x (adapt's defaults: dequantize once, supervised head, grouped batches)",
                  f"- dequantize once vs bitsandbytes per call: {s['once_vs_bnb_speedup']:.2f}x tokens/s",
                  f"- supervised-positions head vs full logits (dequantize once, same batches): step {s['supervised_step_speedup']:.2f}x faster, "
                  f"peak RSS {s['supervised_rss_reduction']:.0%} lower, first-step loss difference {s['supervised_loss_diff']:.2e}",
                  f"- length-grouped vs random batches: {s['grouped_vs_random_tokens']:.2f}x tokens/s",
                  f"- all three vs none (QLoRA): {s['all_vs_none']:.2f}x tokens/s", "",
                  "| scoring (PubMedQA labels) | mode | examples/s | n | peak RSS MB |", "|---|---|---|---|---|"]
        for row in rows["scoring"]:
            lines.append(f"| {row['base']} | {row['mode']} | {row['examples_per_s']:.2f} | {row['n']} | {row['peak_rss_mb']:.0f} |")
    return "\n".join(lines) + "\n"


def _summary(training: list[dict]) -> dict:
    row = {(r["base"], r["head"], r["batches"]): r for r in training}
    none, once_full = row[("qlora-bnb", "full", "random")], row[("qlora-once", "full", "random")]
    sup, default = row[("qlora-once", "supervised", "random")], row[("qlora-once", "supervised", "grouped")]
    for r in training:
        ref = row.get(("lora", r["head"], r["batches"]))
        if ref and r["base"] != "lora":
            r["vs_lora"] = r["tokens_per_s"] / ref["tokens_per_s"]
    return {
        "qlora_vs_lora_full_random": once_full["vs_lora"],
        "qlora_bnb_vs_lora_full_random": none["vs_lora"],
        "qlora_vs_lora_adapt_default": default["vs_lora"],
        "once_vs_bnb_speedup": once_full["tokens_per_s"] / none["tokens_per_s"],
        "supervised_step_speedup": once_full["median_step_s"] / sup["median_step_s"],
        "supervised_rss_reduction": 1 - sup["peak_rss_mb"] / once_full["peak_rss_mb"],
        "supervised_loss_diff": abs(sup["first_loss"] - once_full["first_loss"]),
        "grouped_vs_random_tokens": default["tokens_per_s"] / sup["tokens_per_s"],
        "all_vs_none": default["tokens_per_s"] / none["tokens_per_s"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["smollm2-135m-instruct", "gemma-3-270m"])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=320)
    parser.add_argument("--score-examples", type=int, default=24)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, model, *rest = args.child
        if kind == "train":
            result = measure_training(model, *rest, args.steps, args.batch_size, args.seq_len)
        else:
            result = measure_scoring(model, *rest, args.score_examples, args.batch_size)
        print(json.dumps(result))
        return
    from adapt.models import dtypes

    result = {"args": {k: v for k, v in vars(args).items() if k != "child"}, "cpu": _cpu(), "data": _task()[1],
              "command": " ".join(["python", "bench/bench_cpu_speed.py", *sys.argv[1:]]), "models": {}}
    for model in args.models:
        training = []
        for base, head, batches in TRAIN_ROWS:
            print(f"{model}: training {base} {head} {batches}", file=sys.stderr, flush=True)
            training.append({"base": base, "head": head, "batches": batches, **_child(args, ["train", model, base, head, batches])})
        scoring = []
        for base, mode in SCORE_ROWS:
            print(f"{model}: scoring {base} {mode}", file=sys.stderr, flush=True)
            scoring.append({"base": base, "mode": mode, **_child(args, ["score", model, base, mode])})
        result["models"][model] = {"training": training, "scoring": scoring, "summary": _summary(training)}
    OUT.mkdir(parents=True, exist_ok=True)
    stem = OUT / f"cpu_speed-{dtypes.cpu_capability().lower()}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    stem.with_suffix(".md").write_text(_table(result))
    print(_table(result))


if __name__ == "__main__":
    main()
