"""NER on a decoder: how to read the head. Causal vs bidirectional body, first vs last subword; same data and steps.

    cd /work/main && OMP_NUM_THREADS=1 PYTHONPATH=. python3 bench/bench_ner_head.py \\
        --recipe recipes/masakhaner-qlora.yaml --language hau --train 300 --out /work/runs/ner-head

Each arm (``<attention>-<label position>``) trains the recipe's QLoRA adapter +
head (adapt.tasks.token_classification) on the same seeded sample of one
language's training sentences, for the same steps with the same seed, and is
scored with seqeval on that language's full test split.

- ``causal-first``: the decoder as pre-trained, label on each word's first subword
  (the encoder convention): that subword has seen neither the rest of its word
  nor anything to its right.
- ``causal-last``: label on the last subword, the only one that has seen the whole word.
- ``bidirectional-first``: causal mask dropped in the body (LS-unLLaMA, Li et al. 2023).

An arm whose run directory already holds eval.json is read, not retrained
(``--fresh`` retrains). Writes <out>/head.json and head.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

ARMS = ("causal-first", "causal-last", "bidirectional-first")


def run_arm(recipe, arm: str, out: Path, fresh: bool) -> dict:
    from adapt.data import load_task
    from adapt.runs import RunDir, write_json_atomic, write_text_atomic
    from adapt.tasks.token_classification import score_variants, train
    from adapt.variants import Variant

    attention, position = arm.split("-")
    run = RunDir(out / arm)
    if fresh or not run.eval.is_file():
        run.root.mkdir(parents=True, exist_ok=True)
        write_text_atomic(run.recipe, recipe.to_yaml())
        task = load_task(recipe.data)
        write_json_atomic(run.metrics, train(recipe, run, task, "cpu", attention=attention, label_position=position))
        rows = dict(score_variants(run, recipe, task, task.test, "cpu", [Variant("base"), Variant("adapter", run.adapter)]))
        write_json_atomic(run.eval, {"split": "test", "n": len(task.test), "task_kind": "token_classification",
                                     "data": task.description, "primary_metric": "f1",
                                     "headline_metrics": ["f1", "precision", "recall"], "variants": rows})  # fmt: skip
    rows = json.loads(run.eval.read_text())["variants"]
    metrics = json.loads(run.metrics.read_text())
    adapter = rows["adapter"]["metrics"]
    return {"arm": arm, "f1": adapter["f1"], "precision": adapter["precision"], "recall": adapter["recall"],
            "per_type": {k: v["f1"] for k, v in adapter["per_type"].items()}, "lexicon_f1": rows["base"]["metrics"]["f1"],
            "train_s": metrics["train_runtime_s"], "tokens_per_s": metrics["tokens_per_s"], "steps": metrics["steps"],
            "final_logged_loss": metrics["final_logged_loss"], "run_dir": str(run.root)}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="recipes/masakhaner-qlora.yaml")
    parser.add_argument("--language", default="hau")
    parser.add_argument("--train", type=int, default=300, help="training sentences (seeded sample)")
    parser.add_argument("--out", type=Path, default=Path("/work/runs/ner-head"))
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    parser.add_argument("--fresh", action="store_true", help="retrain arms that already have results")
    args = parser.parse_args()

    from adapt.checks import load_recipe
    from adapt.runs import write_json_atomic, write_text_atomic

    overrides = [f"data.languages=[{args.language}]", f"data.max_train_examples={args.train}",
                 f"name=ner-head-{args.language}"]  # fmt: skip
    recipe = load_recipe(REPO / args.recipe, overrides)
    results = [run_arm(recipe, arm, args.out, args.fresh) for arm in args.arms]
    write_json_atomic(args.out / "head.json", {"recipe": args.recipe, "overrides": overrides, "arms": results})
    lines = [f"# {recipe.model.source}, MasakhaNER 2.0 {args.language}: attention and label position of the NER head", "",
             f"{args.train} training sentences, {results[0]['steps']} steps of {recipe.train.batch_size}, "
             f"lr {recipe.train.learning_rate}; full {args.language} test split (seqeval entity F1).", "",
             "| arm | entity F1 | P | R | PER | ORG | LOC | DATE | train min | tokens/s | final loss |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in results:
        types = " | ".join(f"{r['per_type'].get(t, 0):.3f}" for t in ("PER", "ORG", "LOC", "DATE"))
        lines.append(f"| {r['arm']} | {r['f1']:.3f} | {r['precision']:.3f} | {r['recall']:.3f} | {types} | "
                     f"{r['train_s'] / 60:.1f} | {r['tokens_per_s']} | {r['final_logged_loss']:.3f} |")  # fmt: skip
    lines += ["", f"Lexicon baseline (training spans, greedy match) on the same test split: F1 {results[0]['lexicon_f1']:.3f}.",
              "", "```", f"OMP_NUM_THREADS=1 PYTHONPATH=. python3 bench/bench_ner_head.py --recipe {args.recipe} "
              f"--language {args.language} --train {args.train} --out {args.out} --arms {' '.join(args.arms)}", "```", ""]  # fmt: skip
    write_text_atomic(args.out / "head.md", "\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
