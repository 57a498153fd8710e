"""QLoRA (NF4 + double quant) vs a plain bf16 LoRA reference: training tokens/s and peak RSS, side by side.

Reproduce:
    PYTHONPATH=. python3 bench/bench_qlora.py --steps 8 --batch-size 8 --seq-len 128

Both variants train the same LoRA (rank 16, the seven linear projections) on the
same real PubMedQA prompts (bundled sample when ../shared/data is absent), same
batch and sequence length, each in its own process so peak RSS is its own.
Writes bench/out/bench_qlora.json and bench/out/bench_qlora.md.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out"
VARIANTS = {"qlora-nf4": "nf4", "lora-bf16": "none"}


def _batches(tokenizer, steps: int, batch_size: int, seq_len: int):
    import os

    from adapt.data import load_task
    from adapt.recipe import PubMedQAData

    real = Path(os.environ.get("ADAPT_DATA_DIR", REPO.parent / "shared" / "data")) / "pubmedqa"
    path = real if real.is_dir() else REPO / "domains" / "healthcare" / "sample"
    task = load_task(PubMedQAData(source="pubmedqa", path=str(path), validation_size=4))
    texts = [ex.prompt + " " + ex.completion for ex in task.train]
    enc = tokenizer(texts, truncation=True, max_length=seq_len, padding="max_length", return_tensors="pt")
    n = enc["input_ids"].shape[0]
    for step in range(steps):
        idx = [(step * batch_size + i) % n for i in range(batch_size)]
        yield {k: v[idx] for k, v in enc.items()}


def measure(quantization: str, steps: int, batch_size: int, seq_len: int) -> dict:
    """Run in a child process: train ``steps`` steps, return throughput and memory."""
    import torch

    from adapt import models
    from adapt.methods import qlora
    from adapt.recipe import ModelConfig, QLoRAMethod
    from adapt.train import trainable_parameters

    torch.manual_seed(0)
    base, tokenizer = models.load_base(ModelConfig(quantization=quantization))
    model = qlora.build(QLoRAMethod(name="qlora", rank=16, alpha=32, dropout=0.0), base)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    times, tokens = [], []
    for batch in _batches(tokenizer, steps + 1, batch_size, seq_len):
        start = time.perf_counter()
        loss = model(**batch, labels=batch["input_ids"]).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        times.append(time.perf_counter() - start)
        tokens.append(int(batch["attention_mask"].sum()))
    timed = times[1:]  # the first step warms up allocators and kernels
    trainable, total = trainable_parameters(model)
    return {
        "step_s_median": sorted(timed)[len(timed) // 2],
        "tokens_per_s": sum(tokens[1:]) / sum(timed),  # real (unpadded) tokens of the timed steps
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "trainable_params": trainable,
        "final_loss": float(loss),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--child", choices=list(VARIANTS.values()), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.steps, args.batch_size, args.seq_len)))
        return
    results = {}
    for name, quantization in VARIANTS.items():
        cmd = [sys.executable, __file__, "--child", quantization, "--steps", str(args.steps), "--batch-size", str(args.batch_size), "--seq-len", str(args.seq_len)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=REPO)
        results[name] = json.loads(done.stdout.strip().splitlines()[-1])
    ref = results["lora-bf16"]
    for row in results.values():
        row["tokens_per_s_vs_bf16"] = row["tokens_per_s"] / ref["tokens_per_s"]
        row["peak_rss_vs_bf16"] = row["peak_rss_mb"] / ref["peak_rss_mb"]
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "bench_qlora.json").write_text(json.dumps({"args": vars(args), "results": results}, indent=2))
    lines = [
        f"QLoRA vs bf16 LoRA on SmolLM2-135M, batch {args.batch_size} x {args.seq_len} tokens, {args.steps} timed steps",
        "",
        "| variant | tokens/s | x bf16 | peak RSS MB | x bf16 | trainable params |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['tokens_per_s']:.0f} | {r['tokens_per_s_vs_bf16']:.2f} | {r['peak_rss_mb']:.0f} | {r['peak_rss_vs_bf16']:.2f} | {r['trainable_params']:,} |"
        )
    (OUT / "bench_qlora.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
