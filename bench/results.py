"""Build docs/RESULTS.md from real run directories: one row per run (per language for NER), with the command.

    PYTHONPATH=. python3 bench/results.py runs              # every run found under the folder
    PYTHONPATH=. python3 bench/results.py RUN_DIR [RUN_DIR ...] --out docs/RESULTS.md

A run directory counts when it holds recipe.resolved.yaml and eval.json (metrics.json
adds train time and tokens/s). Nothing is typed in by hand: every number comes from
those files, and each row's command is rebuilt from the run's resolved recipe,
diffed against the recipes/*.yaml of the same name (differences become --set flags).
Commands name run directories relative to the repository (``runs/<name>``), wherever
the runs were made. Beside the markdown, ``results.json`` holds the same numbers for
programs: one object per (run, dataset group), scored on the recipe's primary metric.
``--keep`` adds a few new runs to an existing results.json: the records of runs whose
directories are not given (made on another machine) stay as they were generated, and new
mixture runs join the several-domains tables whose single-domain runs are among those records.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from adapt.domains import domain_name  # noqa: E402
from adapt.export.formats import FORMATS  # noqa: E402
from adapt.recipe import Recipe  # noqa: E402
from adapt.run_files import load_run_recipe  # noqa: E402
from bench.results_domains import comparison, comparison_markdown, extend, find_combined, legalbench_task_mean  # noqa: E402

METRICS = {
    "healthcare": ("accuracy", "macro_f1"), "legal": ("balanced_accuracy", "macro_f1"), "masakhaner": ("f1",),
    "multidomain": ("macro_f1", "balanced_accuracy"),
}
NAMES = {"group_mean_macro_f1": "part-mean macro-F1", "accuracy": "acc", "macro_f1": "macro-F1", "balanced_accuracy": "bal. acc", "f1": "entity F1"}
DATASETS = {"pubmedqa": "PubMedQA PQA-L", "legalbench": "LegalBench", "masakhaner": "MasakhaNER 2.0", "medquad": "MedQuAD"}
FULL_FT_F1 = {"yor": (0.86, 0.88), "hau": (0.87, 0.87), "swa": (0.92, 0.92)}
"""Test F1 of full fine-tuning of XLM-R-large / AfroXLMR on MasakhaNER 2.0 (the issue's reference range)."""


@dataclass
class Run:
    root: Path
    recipe: Recipe
    evaluation: dict
    metrics: dict
    command: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def adapter_metrics(self) -> dict:
        """The unmerged adapter's row of eval.json ({} where it was not scored)."""
        return self.evaluation.get("variants", {}).get("adapter", {}).get("metrics") or {}

    @property
    def method(self) -> str:
        """The method, and how a classification run reads its labels when it is not by log-likelihood."""
        if self.metrics.get("probe"):  # the head fitted alone on the frozen base; the method's LoRA is untrained
            layer = self.metrics.get("layer")
            return f"linear probe ({self.metrics.get('pooling', 'last')}-pooled sequence head{f', layer {layer}' if layer else ''})"
        head = " + sequence head" if self.evaluation.get("task_kind") == "sequence_classification" else ""
        return self.recipe.method.name + head


def _probe_record(probe: dict) -> dict:
    """How a linear probe's strength was chosen: each C's cross-validated primary metric and accuracy."""
    metric = probe["metric"]
    return {"chosen_layer": probe.get("chosen_layer"), "chosen_c": probe["chosen_c"], "folds": probe["folds"],
            "examples": probe["examples"], "metric": metric, "min_accuracy": probe["min_accuracy"],
            "cross_validated": [{"layer": r.get("layer"), "c": r["c"], metric: round(r[metric], 4), "accuracy": round(r["accuracy"], 4)}
                                for r in probe["rows"]]}  # fmt: skip


def find_runs(paths: list[Path]) -> list[Path]:
    found = []
    for path in paths:
        candidates = [path] + sorted(p for p in path.rglob("recipe.resolved.yaml") if ".tmp" not in str(p))
        for c in candidates:
            root = c if c.is_dir() else c.parent
            if (root / "recipe.resolved.yaml").is_file() and (root / "eval.json").is_file() and root not in found:
                found.append(root)
    return found


def _leaves(tree, prefix=""):
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _leaves(value, f"{prefix}{key}.")
    else:
        yield prefix[:-1], tree


def _in_repo(value):
    """A run keeps its own files' paths absolute (recipe.resolved.yaml); the recipe names them from the repository."""
    if isinstance(value, str) and value.startswith("/"):
        try:
            return str(Path(value).relative_to(REPO))
        except ValueError:
            return value
    return value


def run_path(root: Path) -> str:
    """How tables name a run directory: relative to the repository, ``runs/<name>`` when it lies elsewhere."""
    try:
        return str(root.resolve().relative_to(REPO))
    except ValueError:
        return f"runs/{root.name}"


def reproduce(root: Path, recipe: Recipe, variants: list[str]) -> str:
    """The adapt commands that rebuild this run from recipes/<file>.yaml (+ --set for what differs)."""
    here = run_path(root)
    source, sets = None, []
    for path in sorted((REPO / "recipes").glob("*.yaml")):
        try:  # schema only: the data folders need not exist where the table is built
            candidate = Recipe.model_validate(yaml.safe_load(path.read_text()))
        except (ValueError, yaml.YAMLError):
            continue
        if candidate.name == recipe.name:
            source = path
            ours, theirs = dict(_leaves(recipe.model_dump(mode="json"))), dict(_leaves(candidate.model_dump(mode="json")))
            sets = [f"--set '{k}={yaml.safe_dump(v, default_flow_style=True).strip().removesuffix('...').strip()}'"
                    for k, v in ours.items() if theirs.get(k) != _in_repo(v)]
            break
    out = f"--out {here}"
    train = f"adapt train {source.relative_to(REPO) if source else here + '/recipe.resolved.yaml'} {out} {' '.join(sets)}".strip()
    steps = [train]
    merged = [v.split("/", 1)[1] for v in variants if v.startswith("merged/")]
    exports = [v.split("/", 1)[1] for v in variants if v.startswith("export/")]
    by_source: dict[str, list[str]] = {}
    lora_base = ""
    for fmt in exports:  # each export.json names the merged model it was made from (and gguf-lora its base GGUF)
        manifest = root / "export" / fmt / "export.json"
        fields = json.loads(manifest.read_text()) if manifest.is_file() else {}
        from_merge = fmt not in FORMATS or FORMATS[fmt].from_merged  # gguf-lora, nf4-lora: made from the adapter
        source = Path(fields.get("source", "")).name if from_merge else ""
        by_source.setdefault(source if source in ("fp16", "nf4_dequant") else "", []).append(fmt)
        base_type = re.fullmatch(r"base-(.+)\.gguf", fields.get("base_file", ""))
        if base_type and base_type.group(1) not in ("f16", "source"):  # what --lora-base auto does not choose
            lora_base = f" --lora-base {base_type.group(1)}"
    merged += [s for s in by_source if s and s not in merged]  # an export's merged source is made first, scored or not
    if merged:
        steps.append(f"adapt merge {here} " + " ".join(f"--target {t}" for t in merged))
    for source, formats in by_source.items():
        flag = f" --source {source}" if source else ""
        steps.append(f"adapt quantize {here}{flag} " + " ".join(f"--format {f}" for f in formats)
                     + (lora_base if "gguf-lora" in formats else ""))
    steps.append(f"adapt eval {here}")
    return " && ".join(steps)


def load_run(root: Path) -> Run:
    recipe = load_run_recipe(root / "recipe.resolved.yaml", root)
    evaluation = json.loads((root / "eval.json").read_text())
    metrics = json.loads((root / "metrics.json").read_text()) if (root / "metrics.json").is_file() else {}
    run = Run(root, recipe, evaluation, metrics)
    run.command = reproduce(root, recipe, list(evaluation.get("variants", {})))
    return run


def _cell(metrics: dict | None, keys: tuple[str, ...]) -> str:
    if not metrics:
        return "-"
    values = [metrics.get(k) for k in keys]
    return " / ".join(f"{v:.3f}" if isinstance(v, (int, float)) else "-" for v in values)


def _scope(metrics: dict, group: str | None) -> dict | None:
    if metrics is None:
        return None
    if group is None:
        return metrics
    return metrics.get("per_group", {}).get(group) or metrics.get("groups", {}).get(group)


def _dataset_name(run: Run, group: str | None) -> str:
    data = run.recipe.data
    name = DATASETS.get(data.source, data.source)
    if data.source == "masakhaner":
        name += f" {group or '+'.join(data.languages)}"
    elif data.source == "legalbench" and group:
        name += f" {group}"
    elif data.source == "legalbench" and [t.lower() for t in data.tasks] == ["cuad"]:
        tasks = run.adapter_metrics.get("groups", {})
        name += f" (all {len(tasks)} CUAD tasks; held-out half)"
    elif data.source == "legalbench":
        name += f" ({len(data.tasks)} tasks: {', '.join(data.tasks)}; held-out half)"
    elif group:
        name += f" {group}"
    return name


def _n(run: Run, group: str | None) -> int | None:
    scoped = _scope(run.adapter_metrics, group) or {}
    n = scoped.get("sentences", scoped.get("n") if group else None)
    return n if n is not None else run.evaluation.get("n")


def _dataset(run: Run, group: str | None) -> str:
    unit = "sentences" if run.recipe.data.source == "masakhaner" else "examples"
    return f"{_dataset_name(run, group)}, {run.evaluation.get('split')} ({_n(run, group)} {unit})"


def metric_keys(run: Run) -> tuple[str, ...]:
    """The recipe's primary metric (eval.json ``primary_metric``) first, then the domain's usual companions."""
    usual = METRICS.get(domain_name(run.recipe.domain), ())
    primary = run.evaluation.get("primary_metric") or (usual[0] if usual else "f1")
    scored = run.adapter_metrics
    return (primary, *(k for k in usual if k != primary and k in scored))  # a MedQuAD run has no accuracy


def is_lexicon(metrics: dict | None) -> bool:
    """The NER base row: the lexicon baseline, not a neural model."""
    return bool(metrics) and ("lexicon_spans" in metrics or "lexicon" in str(metrics.get("note", "")))


def _groups(run: Run, all_groups: bool = False) -> list[str | None]:
    """None (the whole test set) last; NER languages (and, with ``all_groups``, classification groups) before."""
    adapter = run.adapter_metrics
    names = adapter.get("per_group") or (adapter.get("groups") if all_groups else None) or {}
    return sorted(names) + [None]


def records(run: Run) -> list[dict]:
    """results.json: one object per (run, dataset group), every score on the recipe's primary metric."""
    keys = metric_keys(run)
    primary = keys[0]
    variants = run.evaluation.get("variants", {})
    base_metrics = variants.get("base", {}).get("metrics")
    m = run.metrics
    validation = m.get("validation") or {}
    out = []
    for group in _groups(run, all_groups=True):
        adapter = _scope(variants.get("adapter", {}).get("metrics"), group) or {}
        base = _scope(base_metrics, group) or {}
        exports = {}
        for name, row in variants.items():
            scoped = _scope(row.get("metrics"), group) or {}
            if name in ("base", "adapter") or scoped.get(primary) is None:
                continue
            ref = adapter.get(primary)
            exports[name] = {
                "score": scoped[primary], "retention": round(scoped[primary] / ref, 4) if ref else None,
                "agreement": row.get("agreement") if group is None else None,
                "agreement_base": row.get("agreement_base") if group is None else None,
                **({"warning": row["warning"]} if group is None and row.get("warning") else {}),
            }  # fmt: skip
        out.append({
            "run": run_path(run.root), "recipe": run.recipe.name, "domain": domain_name(run.recipe.domain),
            "dataset": _dataset_name(run, group), "group": group, "split": run.evaluation.get("split"), "n": _n(run, group),
            "model": run.recipe.model.source, "method": run.method, "metric": primary,
            "base": base.get(primary), "base_kind": "lexicon baseline" if is_lexicon(base_metrics) else ("model" if base else None),
            "adapter": adapter.get(primary), "exports": exports,
            "other_metrics": {k: {"base": base.get(k), "adapter": adapter.get(k)} for k in keys[1:]},
            "train": {k: m.get(k) for k in ("steps", "selected_step", "best_validation", "class_balance", "train_examples",
                                            "train_runtime_s", "train_runtime_total_s", "tokens_per_s") if k in m}
                     | ({"validation_curve": validation["curve"], "validation_metric": validation["metric"]} if validation else {})
                     | ({"validation_group_curves": validation["group_curves"]} if validation.get("group_curves") else {})
                     | ({"probe": _probe_record(m["probe"])} if m.get("probe") else {}),
            "command": run.command,
        })  # fmt: skip
    return out


def rows(run: Run, index: int) -> list[str]:
    keys = metric_keys(run)
    variants = run.evaluation.get("variants", {})
    adapter = variants.get("adapter", {}).get("metrics")
    groups = _groups(run)
    base_note = " (lexicon baseline)" if is_lexicon(variants.get("base", {}).get("metrics")) else ""
    m = run.metrics
    train_time = f"{train_seconds(m) / 60:.1f} min" if train_seconds(m) else "-"
    speed = f"{m['tokens_per_s']:.0f}" if m.get("tokens_per_s") else "-"
    lines = []
    for group in groups:
        exports = "; ".join(
            f"{name}: {_cell(_scope(row.get('metrics'), group), keys)}"
            + (f" (agrees {row['agreement']:.0%}" + (f", with base {row['agreement_base']:.0%}" if row.get("agreement_base") is not None else "") + ")"
               if group is None and row.get("agreement") is not None else "")
            for name, row in variants.items()
            if name not in ("base", "adapter") and row.get("metrics", {}).get(keys[0]) is not None
        )
        lines.append(
            f"| {domain_name(run.recipe.domain)} | {_dataset(run, group)} | {run.recipe.model.source} | {run.method} "
            f"| {' / '.join(NAMES.get(k, k) for k in keys)} | {_cell(_scope(variants.get('base', {}).get('metrics'), group), keys)}{base_note} "
            f"| {_cell(_scope(adapter, group), keys)} | {exports or '-'} | {train_time} | {speed} | [{index}](#r{index}) |"
        )
    return lines


def ner_details(runs: list[Run]) -> list[str]:
    ner = [r for r in runs if r.recipe.data.source == "masakhaner" and "adapter" in r.evaluation.get("variants", {})]
    if not ner:
        return []
    out = ["## MasakhaNER 2.0: per language, per type, tokenizer fertility", "",
           "| model | lang | train sentences (all langs) | subwords/word | entity F1 | PER | ORG | LOC | DATE | full FT (XLM-R-large / AfroXLMR) | SLM+PEFT / full FT |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for run in ner:
        adapter = run.evaluation["variants"]["adapter"]["metrics"]
        groups = adapter.get("per_group") or {run.recipe.data.languages[0]: adapter}
        for lang, g in sorted(groups.items()):
            per_type = g.get("per_type", {})
            types = [f"{per_type[t]['f1']:.3f}" if t in per_type else "-" for t in ("PER", "ORG", "LOC", "DATE")]
            low, high = FULL_FT_F1.get(lang, (None, None))
            ref = f"{low:.2f}" + (f"-{high:.2f}" if high != low else "") if low else "-"
            ratio = f"{g['f1'] / high:.0%}-{g['f1'] / low:.0%}" if low and high != low else (f"{g['f1'] / low:.0%}" if low else "-")
            fert = g.get("subword_fertility", adapter.get("subword_fertility"))
            out.append(f"| {run.recipe.model.source} | {lang} | {run.metrics.get('train_examples', '-')} | "
                       f"{fert:.2f} | {g['f1']:.3f} | {' | '.join(types)} | {ref} | {ratio} |")
    base = next((r.evaluation["variants"].get("base", {}).get("metrics", {}).get("note") for r in ner), None)
    if base:
        out += ["", f"Base column for NER: {base}."]
    return out + [""]


def classification_details(runs: list[Run]) -> list[str]:
    out, shown = [], set()
    for run in runs:
        variants = run.evaluation.get("variants", {})
        base, adapter = (variants.get(k, {}).get("metrics", {}) for k in ("base", "adapter"))
        if run.evaluation.get("task_kind") != "classification" or not adapter.get("groups") or run.recipe.data.source == "mixture":
            continue  # a mixture's parts: the several-domains table
        scores = (run.recipe.name, json.dumps(adapter["groups"], sort_keys=True))
        if scores in shown:
            continue  # a copy of a run with another export (same adapter, same scores): one table
        shown.add(scores)
        key = metric_keys(run)[0]
        out += [f"## {run.recipe.name}: per task ({NAMES.get(key, key)}, held-out)", "", "| task | n | base | adapted |", "|---|---|---|---|"]
        for task, g in adapter["groups"].items():
            b = base.get("groups", {}).get(task, {})
            out.append(f"| {task} | {g.get('n')} | {b[key]:.3f} | {g.get(key):.3f} |" if key in b else f"| {task} | {g.get('n')} | - | {g.get(key):.3f} |")
        if run.recipe.data.source == "legalbench":
            tasks = target_tasks()
            means = [legalbench_task_mean(m.get("groups", {}), tasks, key) for m in (base, adapter)]
            if means[1] is not None:
                cells = " | ".join(f"{v:.3f}" if v is not None else "-" for v in means)
                out.append(f"| **mean of the {len(tasks)} tasks of recipes/legal-qlora.yaml** | | {cells} |")
        out.append("")
    return out


def target_tasks() -> list[str]:
    """The LegalBench tasks the issue's legal target names: those of recipes/legal-qlora.yaml."""
    return list(yaml.safe_load((REPO / "recipes" / "legal-qlora.yaml").read_text())["data"]["tasks"])


def _train_pool(description: str) -> int | None:
    """Training sentences available (MasakhaNER description: 'yor 6876/983/1964; hau ...')."""
    counts = re.findall(r"\b[a-z]{3} (\d+)/\d+/\d+", description)
    return sum(int(c) for c in counts) or None


def _loss_trend(metrics: dict) -> str:
    losses = [h["loss"] for h in metrics.get("log_history", []) if "loss" in h]
    if len(losses) < 4:
        return ""
    half = losses[len(losses) // 2]
    tail = sum(losses[-3:]) / 3
    trend = "still falling" if tail < 0.9 * half else "flattening"
    return f"; training loss {losses[0]:.2f} -> {half:.2f} (half way) -> {tail:.2f} (last logs), {trend}"


def train_seconds(metrics: dict) -> float | None:
    """The run's training time: every process's when it was resumed (train_runtime_total_s), else the one's."""
    return metrics.get("train_runtime_total_s") or metrics.get("train_runtime_s")


def _throughput(m: dict) -> str:
    """``723979 subword tokens, 68 min at 176.6 tokens/s``; a resumed run's tokens/s is its last process's."""
    minutes = f"{(train_seconds(m) or 0) / 60:.0f} min"
    if m.get("resumed"):
        return f"{minutes} in all, the last process at {m.get('tokens_per_s')} tokens/s"
    return f"{m.get('train_tokens')} subword tokens, {minutes} at {m.get('tokens_per_s')} tokens/s"


def _budget(ner: list[Run]) -> str:
    """The largest NER run's budget and the end of its validation curve, from its metrics.json."""
    run = max(ner, key=lambda r: r.metrics.get("steps") or 0)
    m = run.metrics
    curve = list((m.get("validation") or {}).get("curve", {}).items())[-3:]
    tail = " -> ".join(f"{value:.3f} (step {step})" for step, value in curve)
    trend = f", validation entity F1 {tail}" if tail else ""
    return (f"the largest run here took {m.get('steps')} optimizer steps on {m.get('train_examples')} sentences "
            f"({(train_seconds(m) or 0) / 60:.0f} min on this CPU){trend}")


def _attention(run: Run) -> str:
    """How the run's head read the sentence (eval.json's adapter row; runs before it was recorded read causally)."""
    return run.adapter_metrics.get("attention") or "causal"


def _reads(run: Run) -> str:
    position = run.adapter_metrics.get("label_position")
    return f", {_attention(run)} attention" + (f", label on the {position} subword" if position else "")


def limits(runs: list[Run]) -> list[str]:
    ner = [r for r in runs if r.recipe.data.source == "masakhaner" and r.metrics]
    if not ner:
        return []
    attentions = sorted({_attention(r) for r in ner})
    lines = ["## How close SLM + PEFT comes to full fine-tuning, and what limits it", ""]
    for run in ner:
        m = run.metrics
        pool = _train_pool(m.get("data_description", ""))
        share = f" of {pool}" if pool else ""
        lines.append(
            f"- `{run.recipe.name}` ({run.recipe.model.source}): {m.get('train_examples')}{share} training sentences, "
            f"{m.get('steps')} steps of {run.recipe.train.batch_size} ({_throughput(m)} on a shared 2-core CPU), "
            f"{m.get('trainable_params', 0) / 1e6:.1f}M trainable of {m.get('total_params', 0) / 1e6:.0f}M parameters"
            f"{_reads(run)}{_loss_trend(m)}."
        )
    lines += [
        "- The references fine-tune every weight of a 560M-parameter bidirectional encoder (XLM-R-large; AfroXLMR "
        "is XLM-R further pre-trained on African languages) for several epochs over all training sentences on a GPU. "
        f"The runs here train a rank-16 LoRA and a linear head on a 4-bit, 135M-270M decoder pre-trained causally "
        f"({' or '.join(attentions)} attention while tagging), on the training sentences named above, once.",
        *(["- Causal attention: a decoder tags each word having seen only the words before it (and, with the label "
           "on the first subword, only the first piece of the word itself); an encoder sees the whole sentence."]
          if "causal" in attentions else []),
        "- Tokenizer fertility (table above): SmolLM2's English-centred byte-level BPE splits a Yorùbá word into "
        "about 5 pieces, Gemma 3's 262k vocabulary into about 3; more pieces per word means longer sequences "
        "(slower on CPU) and a first subword that carries less of the word.",
        f"- Training budget: {_budget(ner)}; "
        "these rows are a floor for the method, not a ceiling. Label-on-last-subword and bidirectional attention "
        "(the head's `label_position` and `attention`) are built and compared by `bench/bench_ner_head.py`: at 300 "
        "Hausa sentences (SmolLM2) neither beat causal attention with the label on the first subword; at 2,000 "
        "Yorùbá sentences on Gemma-3-270M bidirectional attention did, 0.528 against 0.473 entity F1, still rising "
        "(bench/results/ner_head-gemma3-yor-2000.md), and over all sentences too (validation 0.753 against 0.577), so "
        "`recipes/masakhaner-qlora-gemma3.yaml` reads bidirectionally.",
        "",
    ]
    return lines


def generated_by(runs: list[Run]) -> str:
    folders = sorted({run_path(r.root).rsplit("/", 1)[0] if "/" in run_path(r.root) else "." for r in runs})
    return "PYTHONPATH=. python3 bench/results.py " + " ".join(folders)


def render_json(runs: list[Run], domains: list[dict] | None = None, kept: dict | None = None) -> str:
    """results.json of ``runs``; with ``kept`` (an earlier results.json), also its records of the runs not given here
    (run directories that are not on this machine), after them, and its several-domains tables if none is new."""
    body = {"generated_by": generated_by(runs), "results": [rec for run in runs for rec in records(run)]}
    if kept:
        fresh = {run_path(r.root) for r in runs}
        old = [rec for rec in kept.get("results", []) if rec.get("run") not in fresh]
        if old:
            body["kept_from"] = kept.get("generated_by")
            body["results"] += old
        domains = domains or kept.get("several_domains")
    if domains:
        body["several_domains"] = domains
    return json.dumps(body, indent=2) + "\n"


def render(runs: list[Run], domains: list[dict] | None = None) -> str:
    lines = [
        "# Results on real data",
        "",
        f"Generated by `{generated_by(runs)}` from each run's eval.json and metrics.json (the same numbers, for programs: "
        "[results.json](results.json)); do not edit by hand. The first metric of each row is the one its recipe names "
        "(eval.primary_metric), which also ranks variants and gives retention. Scores: PubMedQA on the official test "
        "set; LegalBench on each task's held-out half (label log-likelihood); MasakhaNER seqeval entity F1 (micro, exact "
        "span and type) on the full test split, next to the lexicon baseline (no neural base: a decoder has no zero-shot "
        "NER head). Exports: `merged/*` are the adapter folded into 16-bit weights, `export/*` the quantized "
        "deliverables; 'agrees' is the share of examples on which a variant predicts the unmerged adapter's label, "
        "'with base' the share on which it predicts the base's.",
        "",
        "| domain | dataset (split, n) | model | method | metric | base | adapted | exports | train time | tokens/s | # |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for i, run in enumerate(runs, 1):
        lines += rows(run, i)
    lines += ["", *ner_details(runs), *classification_details(runs), *comparison_markdown(domains or [], NAMES), *limits(runs),
              "## Reproduce", ""]
    for i, run in enumerate(runs, 1):
        lines += [f"<a id=\"r{i}\"></a>{i}. `{run.recipe.name}` ({run_path(run.root)})", "", "   ```", f"   {run.command}", "   ```", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", type=Path, help="run directories, or folders searched for them")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "RESULTS.md")
    parser.add_argument("--json", type=Path, default=None, help="default: results.json beside --out")
    parser.add_argument("--keep", action="store_true",
                        help="keep the records of results.json whose run directories are not given (not on this machine)")
    args = parser.parse_args(argv)
    roots, combined = find_runs(args.paths), find_combined(args.paths)
    if not roots:
        print(f"no evaluated run directory (recipe.resolved.yaml + eval.json) under {', '.join(map(str, args.paths))}")
        return 2
    runs = [load_run(r) for r in roots]
    order = {"healthcare": 0, "legal": 1, "masakhaner": 2}
    runs.sort(key=lambda r: (order.get(domain_name(r.recipe.domain), 9), r.recipe.model.source, r.recipe.name))
    from adapt.runs import write_text_atomic

    mixtures = [r for r in runs if r.recipe.data.source == "mixture"]
    domains = comparison(mixtures, combined)
    json_out = args.json or args.out.with_name("results.json")
    kept = None
    if args.keep and json_out.is_file():
        try:
            kept = json.loads(json_out.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            print(f"{json_out}: cannot read the results to keep ({exc}); restore it from git or drop --keep")
            return 2
    tables = domains
    if kept and mixtures and not domains:  # the mixtures join the earlier tables scored on the same examples
        earlier = kept.get("several_domains") or []
        extended = [extend(table, mixtures, kept.get("generated_by")) for table in earlier]
        domains = [table for table in extended if table]
        tables = [new or old for new, old in zip(extended, earlier)]
    write_text_atomic(args.out, render(runs, domains))
    write_text_atomic(json_out, render_json(runs, tables, kept))
    print(f"{args.out}, {json_out}: {len(runs)} runs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
