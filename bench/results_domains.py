"""Sections of docs/RESULTS.md that read across runs (used by bench/results.py).

- :func:`comparison`: several domains in one model. The routes are the single-domain adapters, those adapters
  combined after training (``adapt merge --combine``: combine.json + eval.json), one QLoRA trained on the mixture,
  and one MoE-LoRA trained on it (routed, and collapsed into one LoRA). Every route is scored per domain on the
  domain's primary metric, on the same test examples; the route to recommend is the one that keeps the most of the
  single-domain adapters' scores, on average over the domains.
- :func:`legalbench_task_mean`: a LegalBench run's mean per-task score over a named set of tasks (LegalBench's own
  convention: balanced accuracy per task, averaged), so a multi-task run is read on the tasks another recipe names.
"""

from __future__ import annotations

import json
from pathlib import Path


def find_combined(paths: list[Path]) -> list[Path]:
    """Combined models that were scored: a folder holding combine.json and eval.json."""
    found = []
    for path in paths:
        for manifest in [path / "combine.json", *sorted(path.rglob("*/combine.json"))]:
            if manifest.is_file() and (manifest.parent / "eval.json").is_file() and manifest.parent not in found:
                found.append(manifest.parent)
    return found


def comparison(mixtures: list, combined: list[Path]) -> dict | None:
    """Every route's score per domain. ``mixtures``: bench.results.Run objects of mixture recipes; ``combined``:
    folders of combined models (their eval.json names the single-domain runs, their base and their metric)."""
    results = [json.loads((c / "eval.json").read_text()) for c in combined]
    domains: dict[str, str] = {}  # domain -> its primary metric (the single-domain recipe's)
    singles: dict[str, dict] = {}
    for result in results:
        for row in result["rows"]:
            domains.setdefault(row["domain"], row["primary_metric"])
            singles.setdefault(row["domain"], row)
    if not domains:
        return None
    routes = [
        {"route": "base (no adapter)", "trainable_params": None, "scores": {d: singles[d].get("base") for d in domains}},
        {"route": "single-domain adapters, one per domain", "runs": [f"runs/{Path(singles[d]['path']).name}" for d in domains],
         "trainable_params": [_params(Path(singles[d]["path"]), combined) for d in domains],
         "scores": {d: singles[d].get("single") for d in domains}},
    ]  # fmt: skip
    for folder, result in zip(combined, results):
        c = result["combine"]
        density = f", density {c['density']}" if c.get("density") is not None else ""
        routes.append({"route": f"combined after training: {c['combination_type']}{density}", "runs": [f"runs/{folder.name}"],
                       "trainable_params": None, "scores": {row["domain"]: row.get("combined") for row in result["rows"]}})  # fmt: skip
    for run in mixtures:
        moe = run.recipe.method.name == "moe_lora"
        for variant in ("adapter", "collapsed") if moe else ("adapter",):
            if variant not in run.evaluation.get("variants", {}):
                continue
            label = ("MoE-LoRA, routed" if variant == "adapter" else "MoE-LoRA, collapsed to one LoRA") if moe else "QLoRA"
            groups = run.evaluation["variants"][variant].get("metrics", {}).get("groups", {})
            routes.append({"route": f"{label}, trained on the mixture", "runs": [f"runs/{run.root.name}"],
                           "trainable_params": run.metrics.get("trainable_params"),
                           "scores": {d: groups.get(d, {}).get(m) for d, m in domains.items()}})  # fmt: skip
    for route in routes:
        ratios = [route["scores"][d] / singles[d]["single"] for d in domains
                  if route["scores"].get(d) is not None and singles[d].get("single")]  # fmt: skip
        route["kept"] = round(sum(ratios) / len(ratios), 4) if len(ratios) == len(domains) else None
    candidates = [r for r in routes[2:] if r["kept"] is not None]
    best = max(candidates, key=lambda r: r["kept"]) if candidates else None
    return {
        "domains": {d: {"metric": m, "n": singles[d].get("n"), "split": singles[d].get("split")} for d, m in domains.items()},
        "routes": routes,
        "recommended": best and {"route": best["route"], "runs": best["runs"], "kept": best["kept"]},
    }


def comparison_markdown(table: dict | None, names: dict[str, str]) -> list[str]:
    if not table:
        return []
    domains = table["domains"]
    head = " | ".join(f"{d}: {names.get(v['metric'], v['metric'])} (n={v['n']})" for d, v in domains.items())
    lines = [
        "## Several domains in one model: which route",
        "",
        "Each domain is scored on its single-domain recipe's test examples and primary metric. 'kept' is the mean, over "
        "the domains, of the route's score divided by the single-domain adapter's.",
        "",
        f"| route | runs | trainable params | {head} | kept |",
        "|---|---|---|" + "---|" * len(domains) + "---|",
    ]
    for r in table["routes"]:
        params = r["trainable_params"]
        params = " + ".join(_millions(p) for p in params) if isinstance(params, list) else _millions(params)
        cells = " | ".join(f"{r['scores'][d]:.3f}" if r["scores"].get(d) is not None else "-" for d in domains)
        kept = f"{r['kept']:.2f}" if r["kept"] is not None and r["route"] != "base (no adapter)" else "-"
        lines.append(f"| {r['route']} | {', '.join(r.get('runs', [])) or '-'} | {params} | {cells} | {kept} |")
    if table["recommended"]:
        best = table["recommended"]
        lines += ["", f"Keeps the most of the single-domain adapters: {best['route']} ({best['kept']:.2f})."]
    return lines + [""]


def _millions(value) -> str:
    return f"{value / 1e6:.2f}M" if value else "-"


def _params(run_dir: Path, combined: list[Path]) -> int | None:
    """The run's trainable parameters (metrics.json), where it was made or beside the combined models."""
    for folder in (run_dir, *(c.parent / run_dir.name for c in combined)):
        if (folder / "metrics.json").is_file():
            return json.loads((folder / "metrics.json").read_text()).get("trainable_params")
    return None


def legalbench_task_mean(groups: dict, tasks: list[str], metric: str) -> float | None:
    """Mean of ``metric`` over ``tasks`` (each a key of eval.json's metrics.groups); None if one is missing."""
    values = [groups.get(t, {}).get(metric) for t in tasks]
    return sum(values) / len(values) if values and None not in values else None
