"""The metrics panel of one adapter: scores, export retention, data and license, method, model card.

Everything comes from files the pipeline already wrote (eval.json,
metrics.json, the model card README.md) and the domain card; nothing is
recomputed here. Missing files say which command writes them.
"""

from __future__ import annotations

from adapt.card import probe_setting
from adapt.demo.runs import DemoRun
from adapt.domains import data_lines, run_datasets


def _num(value, digits: int = 4) -> str:
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def headline(run: DemoRun) -> str:
    """One line: the primary metric of the base and the adapter, and the change."""
    ev = run.evaluation
    variants = ev.get("variants", {})
    primary = ev.get("primary_metric")
    base = variants.get("base", {}).get("metrics", {}).get(primary)
    adapter = variants.get("adapter", {}).get("metrics", {}).get(primary)
    if primary is None or adapter is None:
        return f"`{run.name}`: not evaluated yet (run `adapt eval {run.run.root}`)."
    where = f"on {ev.get('n', '?')} {ev.get('split', '')} examples"
    if base is None:
        return f"**{primary}** of the adapter: **{adapter:.3f}** {where}."
    return f"**{primary}**: base {base:.3f} → specialized **{adapter:.3f}** ({adapter - base:+.3f}) {where}."


def score_table(run: DemoRun) -> str:
    """Every evaluated variant (base, adapter, merged, exports) with its headline metrics and retention."""
    ev = run.evaluation
    variants = ev.get("variants", {})
    if not variants:
        return f"No eval.json yet: `adapt eval {run.run.root}` scores the base and the adapter side by side."
    keys = ev.get("headline_metrics") or sorted({k for v in variants.values() for k in v.get("metrics", {})})[:3]
    head = "| variant | " + " | ".join(keys) + " | retention vs adapter | size MB |"
    lines = [head, "|---" * (len(keys) + 3) + "|"]
    for name, row in variants.items():
        metrics = row.get("metrics", {})
        size = row.get("size_bytes")
        cells = [_num(metrics.get(k)) for k in keys]
        retention = row.get("retention")
        lines.append(
            f"| {name} | " + " | ".join(cells) + f" | {_num(retention, 3)} | {_num(size / 2**20, 1) if size else ''} |"
        )
    notes = [f"- {name}: {row['metrics']['note']}" for name, row in variants.items() if row.get("metrics", {}).get("note")]
    return "\n".join(lines + ([""] + notes if notes else []))


def method_lines(run: DemoRun) -> list[str]:
    m = run.metrics
    recipe = run.recipe
    params = ", ".join(f"{k}={v}" for k, v in recipe.method.model_dump().items() if k != "name" and not isinstance(v, list))
    probe = m.get("probe")
    if probe:  # the head alone was fitted: the method's LoRA is untrained
        setting = probe_setting(probe.get("chosen_layer"), probe["chosen_c"])
        lines = [f"- method: linear probe, the head alone fitted on the frozen base ({setting}, chosen by "
                 f"{probe['folds']}-fold cross-validation); the `{recipe.method.name}` adapter's LoRA is untrained"]  # fmt: skip
    else:
        lines = [f"- method: `{recipe.method.name}` ({params})"]
    lines.append(f"- base: `{recipe.model.source}`, {recipe.model.quantization}, double quant {recipe.model.double_quant}")
    trainable, total = m.get("trainable_params"), m.get("total_params")
    if trainable:
        share = f" of {total:,} ({100 * trainable / total:.2f} %)" if total else ""
        lines.append(f"- trainable parameters: **{trainable:,}**{share}")
    else:
        lines.append(f"- trainable parameters: not recorded (no metrics.json in {run.run.root})")
    if m.get("steps"):
        parts = [f"{m['steps']:,} steps"]
        if m.get("train_loss") is not None:
            parts.append(f"train loss {_num(m['train_loss'])}")
        if m.get("tokens_per_s"):
            parts.append(f"{_num(m['tokens_per_s'], 1)} tokens/s")
        lines.append(f"- training: {', '.join(parts)} on {m.get('device', '?')}")
    return lines


def run_data_lines(run: DemoRun) -> list[str]:
    """The panel's "Data and license" lines: those of the run's model card (:func:`adapt.domains.data_lines`)."""
    m = run.metrics
    datasets = run_datasets(run.recipe.data, run.card, m.get("data_license", ""))
    return data_lines(m.get("data_description") or run.recipe.data.source, datasets)


def metrics_markdown(run: DemoRun) -> str:
    """The panel's text for one adapter (markdown)."""
    return "\n".join(
        [
            f"### {run.name}: {run.card.title}",
            headline(run),
            "",
            "#### Scores and export retention (eval.json)",
            score_table(run),
            "",
            "#### Method",
            *method_lines(run),
            "",
            "#### Data and license",
            *run_data_lines(run),
        ]
    )


def model_card_text(run: DemoRun) -> str:
    """The model card's body (its YAML front matter is for the Hub, not for reading)."""
    if not run.model_card:
        return f"No model card yet: `adapt train` writes {run.run.card}."
    if not run.model_card.startswith("---"):  # a card without front matter (written before adapt had one)
        return run.model_card
    from huggingface_hub import ModelCard

    return ModelCard(run.model_card, ignore_metadata_errors=True).text
