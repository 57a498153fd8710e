"""The model card (README.md) of a run: base model, data and license, method, metrics, intended use."""

from __future__ import annotations

from adapt.recipe import Recipe
from adapt.runs import RunDir, read_json, write_text_atomic

INTENDED_USE = {
    "healthcare": "Research and demonstration of domain adaptation on biomedical question answering. "
    "Not a medical device: never use its answers for diagnosis or treatment.",
    "legal": "Research and demonstration of legal clause classification. Not legal advice.",
    "masakhaner": "Research on named-entity recognition for African languages (non-commercial: the data is CC BY-NC 4.0).",
    "multidomain": "Research and demonstration of one adapter across several domains (see Data). "
    "Not a medical device and not legal advice; check each dataset's license.",
}


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "" if value is None else str(value)


def display_name(name: str, row: dict) -> str:
    """A variant's name for tables: the NER base row says it is the lexicon baseline."""
    return f"{name} ({row['label']})" if row.get("label") else name


def _eval_table(evaluation: dict) -> list[str]:
    variants = evaluation.get("variants", {})
    if not variants:
        return ["Not evaluated yet: run `adapt eval RUN_DIR`."]
    keys = evaluation.get("headline_metrics", [])
    lines = [
        f"Primary metric: {evaluation.get('primary_metric', '?')} on the {evaluation.get('split', '?')} split "
        f"({evaluation.get('n', '?')} examples); retention is relative to the adapter.",
        "",
        "| variant | " + " | ".join(keys) + " | retention | agreement | agreement with base | size (MB) |",
        "|---" * (len(keys) + 5) + "|",
    ]
    for name, row in variants.items():
        cells = [_fmt(row.get("metrics", {}).get(k)) for k in keys]
        size = row.get("size_bytes")
        lines.append(
            f"| {display_name(name, row)} | " + " | ".join(cells) + f" | {_fmt(row.get('retention'))} | {_fmt(row.get('agreement'))} "
            f"| {_fmt(row.get('agreement_base'))} | {_fmt(size / 2**20 if size else None)} |"
        )
    warnings = [f"- warning: {row['warning']}" for row in variants.values() if row.get("warning")]
    return lines + ([""] + warnings if warnings else [])


def _selection(metrics: dict) -> list[str]:
    """Which step's adapter this is, and the validation curve that chose it."""
    v = metrics.get("validation")
    if not v:
        return [f"- selected step: {metrics['selected_step']} (the last; no validation during training)"] if "selected_step" in metrics else []
    curve = ", ".join(f"{step}: {value:.4f}" for step, value in v["curve"].items())
    return [
        f"- selected step: {metrics.get('selected_step')} ({metrics.get('selection', '')}; validation {v['metric']} "
        f"{_fmt(metrics.get('best_validation'))} on {v['n']} validation examples)",
        f"- validation {v['metric']} every {v['every_steps']} steps: {curve}" + (" (stopped early)" if v.get("early_stopped") else ""),
        f"- class balance: {metrics.get('class_balance', 'none')}",
    ]


def write(run: RunDir, recipe: Recipe) -> None:
    """(Re)write the card from the run's recipe, metrics.json and eval.json."""
    metrics = read_json(run.metrics, {})
    evaluation = read_json(run.eval, {})
    task_description = metrics.get("data_description", "")
    task_license = metrics.get("data_license", "")
    lines = [
        f"# {recipe.name}",
        "",
        recipe.description or f"A {recipe.method.name} adapter specializing `{recipe.model.source}` for {recipe.domain}.",
        "",
        "## Model",
        f"- base model: `{recipe.model.source}` (quantization: {recipe.model.quantization}, double quant: {recipe.model.double_quant})",
        f"- method: `{recipe.method.name}` ({', '.join(f'{k}={v}' for k, v in recipe.method.model_dump().items() if k != 'name')})",
        f"- trainable parameters: {metrics.get('trainable_params', '?'):,}" if metrics else "- trainable parameters: ?",
        "",
        "## Data",
        f"- {task_description or recipe.data.source}",
        f"- license: {task_license or 'see the dataset card'}",
        "",
        "## Training",
        f"- steps: {metrics.get('steps')}, train loss: {_fmt(metrics.get('train_loss'))}, "
        f"tokens/s: {metrics.get('tokens_per_s')}, peak RSS: {metrics.get('peak_rss_mb')} MB, device: {metrics.get('device')}",
        *_selection(metrics),
        "",
        "## Evaluation",
        *_eval_table(evaluation),
        "",
        "## Intended use",
        INTENDED_USE[recipe.domain],
        "",
        "## Reproduce",
        "```",
        f"adapt train {run.recipe}  # the resolved recipe of this run",
        f"adapt eval {run.root}",
        "```",
        "",
    ]
    write_text_atomic(run.card, "\n".join(lines))
