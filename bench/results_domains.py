"""Sections of docs/RESULTS.md that read across runs (used by bench/results.py).

- :func:`comparison`: several domains in one model, one table per set of single-domain adapters. The routes are
  the single-domain adapters, those adapters combined after training (``adapt merge --combine``: combine.json +
  eval.json), one QLoRA trained on the mixture, and one MoE-LoRA trained on it (routed, and collapsed into one
  LoRA). Every route is scored per domain on the domain's primary metric, on the same test examples; the route to
  recommend is the one that keeps the most of the single-domain adapters' gain over the base, on average over the
  domains whose adapter gains enough over its base for the share to mean something (:data:`NOISE`); the others are
  named, not ranked.
- :func:`extend`: a table of an earlier results.json (its single-domain and combined runs made on another machine)
  with the routes of new mixture runs scored on the same examples added (``bench/results.py --keep``).
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


BASE = "base (no adapter)"
SINGLE = "single-domain adapters, one per domain"
"""The names of the two reference routes every table holds: what the other routes are measured against."""

NOISE = 0.05
"""A single-domain adapter that gains less than this over its base (on the primary metric) makes every route's
'kept' a ratio of differences these test sets do not resolve: the table says so instead of recommending."""


def comparison(mixtures: list, combined: list[Path]) -> list[dict]:
    """One table per set of single-domain adapters that were combined: every route's score per domain.

    ``mixtures``: bench.results.Run objects of mixture recipes, each placed in the table whose domains it was
    scored on with the same number of test examples; ``combined``: folders of combined models (their eval.json
    names the single-domain runs, their base and their metric)."""
    results = [(c, json.loads((c / "eval.json").read_text())) for c in combined]
    groups: dict[tuple, list] = {}
    for folder, result in results:  # combined models of the same single-domain runs, scored on the same examples
        key = tuple(sorted((row["domain"], Path(row["path"]).name, row.get("n")) for row in result["rows"]))  # run dirs:
        # two runs of one recipe (legal-cuad-qlora, 3 epochs and 1) are two tables
        groups.setdefault(key, []).append((folder, result))
    return [_table(members, mixtures, combined) for members in groups.values()]


def _table(members: list, mixtures: list, combined: list[Path]) -> dict:
    singles = {row["domain"]: row for row in members[0][1]["rows"]}
    domains = {d: row["primary_metric"] for d, row in singles.items()}
    trained = [_metrics(Path(singles[d]["path"]), combined) for d in domains]  # each single run's metrics.json, read once
    routes = [
        {"route": BASE, "trainable_params": None, "scores": {d: singles[d].get("base") for d in domains}},
        {"route": SINGLE, "runs": [f"runs/{Path(singles[d]['path']).name}" for d in domains],
         "trainable_params": [m.get("trainable_params") for m in trained], "steps": [_step(m) for m in trained],
         "scores": {d: singles[d].get("single") for d in domains}},
    ]  # fmt: skip
    for folder, result in members:
        c = result["combine"]
        density = f", density {c['density']}" if c.get("density") is not None else ""
        routes.append({"route": f"combined after training: {c['combination_type']}{density}", "runs": [f"runs/{folder.name}"],
                       "trainable_params": None, "scores": {row["domain"]: row.get("combined") for row in result["rows"]}})  # fmt: skip
    routes += mixture_routes(mixtures, singles, domains)
    return _ranked(routes, singles, domains)


def mixture_routes(mixtures: list, singles: dict, domains: dict[str, str]) -> list[dict]:
    """The routes of the mixture runs scored on a table's examples (each domain's ``n``): QLoRA; MoE routed and collapsed."""
    routes = []
    for run in mixtures:
        moe = run.recipe.method.name == "moe_lora"
        for variant in ("adapter", "collapsed") if moe else ("adapter",):
            groups = run.evaluation.get("variants", {}).get(variant, {}).get("metrics", {}).get("groups", {})
            if not groups or any(groups.get(d, {}).get("n") != singles[d].get("n") for d in domains):
                continue  # not scored on this table's examples
            label = ("MoE-LoRA, routed" if variant == "adapter" else "MoE-LoRA, collapsed to one LoRA") if moe else "QLoRA"
            routes.append({"route": f"{label}, trained on the mixture", "runs": [f"runs/{run.root.name}"],
                           "trainable_params": run.metrics.get("trainable_params"), "steps": [_step(run.metrics)],
                           "scores": {d: groups.get(d, {}).get(m) for d, m in domains.items()}})  # fmt: skip
    return routes


def extend(table: dict, mixtures: list, kept_from: str | None) -> dict | None:
    """A table of an earlier results.json (its single-domain and combined runs not on this machine) with the routes of
    ``mixtures`` scored on its examples added, replacing earlier routes of the same run directories, and ranked again;
    None when none of ``mixtures`` was scored on its examples."""
    domains = {d: v["metric"] for d, v in table["domains"].items()}
    named = {r["route"]: r["scores"] for r in table["routes"]}
    base, single = named.get(BASE, {}), named.get(SINGLE, {})
    singles = {d: {"base": base.get(d), "single": single.get(d), **table["domains"][d]} for d in domains}
    new = mixture_routes(mixtures, singles, domains)
    if not new:
        return None
    fresh = {run for route in new for run in route["runs"]}
    routes = [dict(r) for r in table["routes"] if not fresh & set(r.get("runs", []))] + new
    return _ranked(routes, singles, domains) | {"kept_from": kept_from}


def _ranked(routes: list[dict], singles: dict, domains: dict[str, str]) -> dict:
    """The table: every route's share of the single-domain adapters' score and gain, and the route to recommend."""
    gains = {d: round(singles[d]["single"] - singles[d]["base"], 4) for d in domains
             if singles[d].get("single") is not None and singles[d].get("base") is not None}  # fmt: skip
    ranked = [d for d in domains if gains.get(d, 0) >= NOISE]
    for route in routes:
        route["kept"] = _kept(route, singles, list(domains))
        route["gain_kept"] = _gain_kept(route, singles, ranked) if ranked else None
    by = "gain_kept" if ranked else "kept"  # with no gain resolved, only the score ratio is shown (and not recommended)
    candidates = [r for r in routes if r["route"] not in (BASE, SINGLE) and r[by] is not None]
    best = max(candidates, key=lambda r: r[by]) if candidates else None
    on = ranked or list(domains)
    return {
        "domains": {d: {"metric": m, "n": singles[d].get("n"), "split": singles[d].get("split")} for d, m in domains.items()},
        "single_gain": gains,
        "routes": routes,
        "recommended": best and {"route": best["route"], "runs": best["runs"], "kept": _kept(best, singles, on),
                                 "gain_kept": best["gain_kept"], "on": on},  # fmt: skip
        "resolved": bool(gains) and min(gains.values()) >= NOISE,
    }


def _kept(route: dict, singles: dict, domains: list[str]) -> float | None:
    """Mean over ``domains`` of the route's score / the single-domain adapter's; None unless scored on every one."""
    ratios = [route["scores"][d] / singles[d]["single"] for d in domains
              if route["scores"].get(d) is not None and singles[d].get("single")]  # fmt: skip
    return round(sum(ratios) / len(ratios), 4) if ratios and len(ratios) == len(domains) else None


def _gain_kept(route: dict, singles: dict, domains: list[str]) -> float | None:
    """Mean over ``domains`` of (route - base) / (single - base): the share of the single adapter's gain the route keeps
    (a route at the base's score keeps 0, whatever its score ratio)."""
    shares = [(route["scores"][d] - singles[d]["base"]) / (singles[d]["single"] - singles[d]["base"]) for d in domains
              if route["scores"].get(d) is not None and singles[d].get("base") is not None
              and (singles[d].get("single") or 0) > singles[d]["base"]]  # fmt: skip
    return round(sum(shares) / len(shares), 4) if shares and len(shares) == len(domains) else None


def comparison_markdown(tables: list[dict], names: dict[str, str]) -> list[str]:
    if not tables:
        return []
    lines = [
        "## Several domains in one model: which route",
        "",
        "Each domain is scored on its single-domain recipe's test examples and primary metric. 'kept' is the mean, over "
        "the domains, of the route's score divided by the single-domain adapter's; 'gain kept' the mean, over the domains "
        "whose single-domain adapter gains more than the test set resolves, of (route - base) / (single - base): the "
        "route to recommend keeps the most of it. Each trained run names the step validation kept, of the steps and "
        "epochs it ran, so the budgets behind the routes can be compared.",
    ]
    for table in tables:
        lines += _markdown_table(table, names)
    return lines + [""]


def _markdown_table(table: dict, names: dict[str, str]) -> list[str]:
    domains = table["domains"]
    head = " | ".join(f"{d}: {names.get(v['metric'], v['metric'])} (n={v['n']})" for d, v in domains.items())
    singles = table["routes"][1].get("runs", [])
    best = table["recommended"]
    on = " + ".join(best["on"]) if best and best["gain_kept"] is not None else ""
    lines = ["", f"### {' + '.join(singles)}", "",
             f"| route | runs | trainable params | {head} | kept | gain kept{' (' + on + ')' if on else ''} |",
             "|---|---|---|" + "---|" * len(domains) + "---|---|"]  # fmt: skip
    for r in table["routes"]:
        params = r["trainable_params"]
        params = " + ".join(_millions(p) for p in params) if isinstance(params, list) else _millions(params)
        cells = " | ".join(f"{r['scores'][d]:.3f}" if r["scores"].get(d) is not None else "-" for d in domains)
        base = r["route"] == "base (no adapter)"
        kept = f"{r['kept']:.2f}" if r["kept"] is not None and not base else "-"
        gain = f"{r['gain_kept']:.2f}" if r["gain_kept"] is not None and not base else "-"
        steps = r.get("steps") or [None] * len(r.get("runs", []))
        runs = ", ".join(f"{run} ({step})" if step else run for run, step in zip(r.get("runs", []), steps)) or "-"
        lines.append(f"| {r['route']} | {runs} | {params} | {cells} | {kept} | {gain} |")
    if table.get("kept_from"):
        lines += ["", "The base, single-domain and combined rows, and those of runs not listed above, are the records of "
                      f"docs/results.json (from `{table['kept_from']}`; their run directories are not on this machine); the "
                      "mixture runs listed above were added to them (`bench/results.py --keep`)."]  # fmt: skip
    small = ", ".join(f"{d} {g:+.3f}" for d, g in table["single_gain"].items() if g < NOISE)
    if best and table["resolved"]:
        lines += ["", f"Keeps the most of the single-domain adapters' gain over the base: {best['route']} "
                      f"({best['gain_kept']:.2f} of the gain, {best['kept']:.2f} of the score)."]  # fmt: skip
    elif best and best["gain_kept"] is not None:
        lines += ["", f"Recommended on {on}, the domain{'s' if len(best['on']) > 1 else ''} whose single-domain adapter gains "
                      f"more than its test set resolves: {best['route']} (keeps {best['gain_kept']:.2f} of the gain over "
                      f"the base and {best['kept']:.2f} of the score there). Not ranked on {small}: that adapter gains less "
                      "over its base than the test set resolves, so no route's share of it means anything."]  # fmt: skip
    elif best:
        lines += ["", f"Keeps the most: {best['route']} ({best['kept']:.2f}); not a recommendation: the single-domain "
                      f"adapters gain little over their base here ({small}), less than these test sets resolve."]  # fmt: skip
    return lines


def _step(metrics: dict) -> str | None:
    """``step 60 of 140, 1.6 epochs, early-stopped``: the step validation kept and the budget run, from metrics.json."""
    if metrics.get("selected_step") is None:
        return None
    epochs = f", {metrics['epochs']:.1f} epochs" if metrics.get("epochs") else ""
    stopped = ", early-stopped" if (metrics.get("validation") or {}).get("early_stopped") else ""
    return f"step {metrics['selected_step']} of {metrics.get('steps')}{epochs}{stopped}"


def _millions(value) -> str:
    return f"{value / 1e6:.2f}M" if value else "-"


def _metrics(run_dir: Path, combined: list[Path]) -> dict:
    """The run's metrics.json (trainable parameters, kept step), where it was made or beside the combined models."""
    for folder in (run_dir, *(c.parent / run_dir.name for c in combined)):
        if (folder / "metrics.json").is_file():
            return json.loads((folder / "metrics.json").read_text())
    return {}


def legalbench_task_mean(groups: dict, tasks: list[str], metric: str) -> float | None:
    """Mean of ``metric`` over ``tasks`` (each a key of eval.json's metrics.groups); None if one is missing."""
    values = [groups.get(t, {}).get(metric) for t in tasks]
    return sum(values) / len(values) if values and None not in values else None
