"""QLoRA vs MoE-LoRA on SmolLM2-135M-Instruct (NF4 + double quant), side by side: same data, same budget.

Reproduce (about 12-15 minutes on an idle 2-core CPU; figures vary with load)::

    cd /work/main && PYTHONPATH=. python3 bench/bench_moe_lora.py
    # options: --steps 30 --batch-size 4 --max-len 320 --lr 3e-4 --eval-limit 40 --threads 0 --out bench/out
    # On a CPU shared with other jobs use --threads 1: with 2 threads every parallel op waits for a
    # time slice and wall time measures the scheduler, not the method.

1. Data: PubMedQA PQA-L (healthcare, yes/no/maybe) and LegalBench CUAD clause tasks (legal, Yes/No)
   mixed 1:1 into one seeded training stream; per domain a seeded sample (never a prefix) of the
   held-out test split. Each example keeps its own dataset's prompt instruction.
2. Three NF4 bases: QLoRA as ``adapt train`` builds it (recipe defaults: r=16 on all linear layers;
   peft's k-bit preparation makes the activations fp32), the same QLoRA with bf16 activations (timing
   reference), and MoE-LoRA (recipe defaults: 4 experts, top-2, r=8 on gate/up/down, r=8 LoRA on
   attention, balance loss 0.01). AdamW on the same batches, completion-only loss; the models step in
   turn so CPU contention hits all alike. Step time: median over the steps after the first.
3. Scores by label log-likelihood (adapt.tasks.classification): base, QLoRA (as shipped), MoE-LoRA (routed) and
   MoE-LoRA collapsed to a plain peft LoRA with mean gates over training batches.
4. Writes ``<out>/moe_lora_vs_qlora.json``, ``<out>/moe_lora_vs_qlora.md`` and the MoE router heat
   map ``<out>/moe_lora_routing/routing.png`` (+ ``routing.json``), grouped by domain.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from adapt import models  # noqa: E402
from adapt.data import load_task  # noqa: E402
from adapt.methods import qlora  # noqa: E402
from adapt.methods.moe_lora import model as moe_lora  # noqa: E402
from adapt.methods.moe_lora.collapse import collapse  # noqa: E402
from adapt.methods.moe_lora.config import MoELoRAConfig  # noqa: E402
from adapt.methods.moe_lora.telemetry import write_routing_report  # noqa: E402
from adapt.methods.qlora import QLoRAConfig  # noqa: E402
from adapt.recipe import LegalBenchData, ModelConfig, PubMedQAData  # noqa: E402
from adapt.tasks.classification import classification_metrics, score_examples  # noqa: E402
from adapt.tasks.prompting import PromptFormat  # noqa: E402

METHODS = ("qlora", "qlora_bf16", "moe_lora")
"""``qlora``: as ``adapt train`` builds it (peft's prepare_model_for_kbit_training casts norms, embeddings
and the tied head to fp32, so activations run in fp32); ``qlora_bf16``: the same LoRA without that cast
(bf16 activations, like MoE-LoRA), a timing reference that isolates the adapter's own cost."""


def load_domains() -> dict:
    healthcare = load_task(PubMedQAData(source="pubmedqa", path="${ADAPT_DATA_DIR}/pubmedqa", max_context_chars=700))
    legal = load_task(LegalBenchData(source="legalbench", path="${ADAPT_DATA_DIR}/legalbench", tasks=["cuad"], max_text_chars=700))
    return {"healthcare": healthcare, "legal": legal}


def train_stream(domains: dict, tokenizer, n: int, max_len: int, seed: int) -> list[dict]:
    """n examples, alternating domains, each tokenized as prompt + answer with a completion-only label mask."""
    rng = random.Random(seed)
    pools = {name: rng.sample(task.train, len(task.train)) for name, task in domains.items()}
    rows = []
    for i in range(n):
        name = list(domains)[i % len(domains)]
        task, pool = domains[name], pools[name]
        ex = pool[(i // len(domains)) % len(pool)]
        fmt = PromptFormat(tokenizer, task.instruction)
        prompt = tokenizer(fmt.prompt(ex.prompt), add_special_tokens=False)["input_ids"]
        answer = tokenizer(fmt.completion(ex.completion), add_special_tokens=False)["input_ids"]
        prompt = prompt[-(max_len - len(answer)) :]
        rows.append({"ids": prompt + answer, "labels": [-100] * len(prompt) + answer, "domain": name})
    return rows


def collate(rows: list[dict], pad_id: int) -> dict:
    width = max(len(r["ids"]) for r in rows)
    ids = torch.full((len(rows), width), pad_id)
    labels = torch.full((len(rows), width), -100)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r["ids"])] = torch.tensor(r["ids"])
        labels[i, : len(r["labels"])] = torch.tensor(r["labels"])
        mask[i, : len(r["ids"])] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def build(method: str, base):
    if method == "qlora":
        return qlora.build(QLoRAConfig(name="qlora"), base)
    if method == "qlora_bf16":
        from peft import get_peft_model

        return get_peft_model(base, qlora.lora_config(QLoRAConfig(name="qlora"), base))
    return moe_lora.build(MoELoRAConfig(name="moe_lora"), base)


def trainable(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def train_side_by_side(models_: dict, batches: list[dict], lr: float, warmup: int = 3) -> dict:
    opts = {}
    for name, model in models_.items():
        model.train()
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
        opts[name] = (opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup)))
    log = {name: {"step_s": [], "loss": [], "aux_loss": [], "balance": [], "tokens": []} for name in models_}
    for step, batch in enumerate(batches):
        for name, model in models_.items():
            opt, sched = opts[name]
            start = time.perf_counter()
            out = model(**batch)
            loss = out.loss
            aux = moe_lora.auxiliary_loss(model) if name == "moe_lora" else None
            if aux is not None:
                loss = loss + aux
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            rec = log[name]
            rec["step_s"].append(time.perf_counter() - start)
            rec["loss"].append(out.loss.item())
            rec["tokens"].append(int(batch["attention_mask"].sum()))
            if aux is not None:
                rec["aux_loss"].append(aux.item())
                rec["balance"].append(moe_lora.last_balance(model))
        print(f"step {step + 1}/{len(batches)}: " + ", ".join(f"{n} {log[n]['step_s'][-1]:.1f}s loss {log[n]['loss'][-1]:.3f}" for n in log), flush=True)
    return log


def summarize_training(log: dict) -> dict:
    summary = {}
    for name, rec in log.items():
        times = rec["step_s"][1:] or rec["step_s"]
        tokens = rec["tokens"][1:] or rec["tokens"]
        summary[name] = {
            "median_step_s": round(statistics.median(times), 3),
            "mean_step_s": round(statistics.mean(times), 3),
            "tokens_per_s": round(sum(tokens) / sum(times), 1),
            "first_loss": round(rec["loss"][0], 4),
            "last5_loss": round(statistics.mean(rec["loss"][-5:]), 4),
            "step_s": [round(t, 3) for t in rec["step_s"]],
            "loss": [round(v, 4) for v in rec["loss"]],
        }
        if rec["aux_loss"]:
            summary[name]["aux_loss_last"] = round(rec["aux_loss"][-1], 5)
            summary[name]["balance_first_last"] = [round(rec["balance"][0], 4), round(rec["balance"][-1], 4)]
    return summary


def score_all(model, tokenizer, domains: dict, evalsets: dict, record: bool = False) -> dict:
    scores = {}
    for name, examples in evalsets.items():
        fmt = PromptFormat(tokenizer, domains[name].instruction)
        if record:  # router telemetry rides on the scoring forwards (prompt only)
            with moe_lora.record_routing(model, group=name):
                result = classification_metrics(score_examples(model, fmt, examples, desc=name))
        else:
            result = classification_metrics(score_examples(model, fmt, examples, desc=name))
        scores[name] = {k: round(result[k], 4) for k in ("accuracy", "macro_f1", "balanced_accuracy")} | {"n": result["n"]}
    return scores


def markdown(result: dict) -> str:
    t, s = result["training"], result["scores"]
    q, b, m = t["qlora"], t["qlora_bf16"], t["moe_lora"]
    ratios = result["step_time_ratio"]
    lines = [
        "# QLoRA vs MoE-LoRA on SmolLM2-135M-Instruct (NF4)",
        "",
        f"Same {result['config']['steps']} steps x batch {result['config']['batch_size']} of mixed healthcare + legal "
        f"examples; {result['machine']}. Command: `{result['command']}`",
        "",
        "| | QLoRA (as shipped) | QLoRA, bf16 activations | MoE-LoRA |",
        "|---|---|---|---|",
        f"| trainable parameters | {result['params']['qlora']:,} | {result['params']['qlora_bf16']:,} | {result['params']['moe_lora']:,} |",
        f"| median step time (s) | {q['median_step_s']} | {b['median_step_s']} | {m['median_step_s']} |",
        f"| MoE-LoRA step time / this (target <= 1.3) | {ratios['vs_qlora']:.2f} | {ratios['vs_qlora_bf16']:.2f} | 1.00 |",
        f"| train tokens/s | {q['tokens_per_s']} | {b['tokens_per_s']} | {m['tokens_per_s']} |",
        f"| loss first -> mean of last 5 | {q['first_loss']} -> {q['last5_loss']} | {b['first_loss']} -> {b['last5_loss']} "
        f"| {m['first_loss']} -> {m['last5_loss']} |",
        "",
        "| variant | " + " | ".join(f"{d} macro-F1 | {d} acc" for d in result["domains"]) + " |",
        "|---|" + "---|---|" * len(result["domains"]),
    ]
    for variant, per_domain in s.items():
        cells = " | ".join(f"{per_domain[d]['macro_f1']:.4f} | {per_domain[d]['accuracy']:.4f}" for d in result["domains"])
        lines.append(f"| {variant} | {cells} |")
    lines += ["", f"MoE balance loss (raw, 1.0 = balanced) first/last step: {m.get('balance_first_last')}", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-len", type=int, default=320)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--eval-limit", type=int, default=40, help="held-out examples scored per domain (seeded sample)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default); 1 keeps timings sane on a crowded CPU")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", message=".*gemv_4bit.*")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    started = time.perf_counter()

    cfg = ModelConfig(source="smollm2-135m-instruct", quantization="nf4")
    bases = {name: models.load_base(cfg) for name in METHODS}
    tokenizer = bases["qlora"][1]
    domains = load_domains()
    rows = train_stream(domains, tokenizer, args.steps * args.batch_size, args.max_len, args.seed)
    batches = [collate(rows[i : i + args.batch_size], tokenizer.pad_token_id) for i in range(0, len(rows), args.batch_size)]
    evalsets = {name: random.Random(args.seed).sample(task.test, min(args.eval_limit, len(task.test))) for name, task in domains.items()}

    built = {}
    for name in METHODS:
        torch.manual_seed(args.seed)
        built[name] = build(name, bases[name][0])
    params = {name: trainable(model) for name, model in built.items()}
    log = train_side_by_side(built, batches, args.lr)
    training = summarize_training(log)
    train_s = time.perf_counter() - started

    moe = built["moe_lora"]
    scores = {}
    moe_lora.set_active(moe, None)
    scores["base"] = score_all(moe, tokenizer, domains, evalsets)
    scores["qlora"] = score_all(built["qlora"], tokenizer, domains, evalsets)
    del built["qlora"], built["qlora_bf16"]
    moe_lora.set_active(moe, "default")
    moe_lora.reset_routing(moe)
    scores["moe_lora (routed)"] = score_all(moe, tokenizer, domains, evalsets, record=True)
    args.out.mkdir(parents=True, exist_ok=True)
    write_routing_report(moe_lora.routing_table(moe), args.out / "moe_lora_routing")

    calibration = [{k: v for k, v in b.items() if k != "labels"} for b in batches[: max(1, 32 // args.batch_size)]]
    collapsed_dir = collapse(moe, calibration, args.out / "moe_lora_collapsed")
    del built, bases
    from peft import PeftModel

    collapsed = PeftModel.from_pretrained(models.load_base(cfg)[0], str(collapsed_dir)).eval()
    scores["moe_lora (collapsed)"] = score_all(collapsed, tokenizer, domains, evalsets)

    moe_s = training["moe_lora"]["median_step_s"]
    ratio = {f"vs_{name}": round(moe_s / training[name]["median_step_s"], 3) for name in ("qlora", "qlora_bf16")}
    result = {
        "command": "PYTHONPATH=. python3 bench/bench_moe_lora.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": f"{platform.machine()} CPU, {torch.get_num_threads()} torch threads, torch {torch.__version__}",
        "config": vars(args) | {"out": str(args.out)},
        "domains": list(domains),
        "data": {name: task.description for name, task in domains.items()},
        "params": params,
        "step_time_ratio": ratio,
        "training": training,
        "scores": scores,
        "train_seconds": round(train_s, 1),
        "total_seconds": round(time.perf_counter() - started, 1),
    }
    (args.out / "moe_lora_vs_qlora.json").write_text(json.dumps(result, indent=2) + "\n")
    table = markdown(result)
    (args.out / "moe_lora_vs_qlora.md").write_text(table)
    print(table)
    print(f"total {result['total_seconds']} s; wrote {args.out}/moe_lora_vs_qlora.json, .md, moe_lora_routing/routing.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
