"""The model card (README.md) of a run: Hub metadata, base model, data and license, method, metrics, intended use.

Written with huggingface_hub's :class:`~huggingface_hub.ModelCard`: YAML front matter the Hub reads
(``base_model`` as a Hub id, ``library_name: peft``, ``license``, ``datasets``, ``tags``,
``pipeline_tag``, ``model-index`` with the adapter's scores from eval.json) above the body. Intended
use and limitations come from the run's domain card (:mod:`adapt.domains`), the data's license from
:func:`adapt.domains.run_datasets`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from adapt import tasks
from adapt.models.registry import OFFLINE_MODELS
from adapt.models.sources import source_hub_id
from adapt.domains import NOT_STATED, DomainCard, RunData, data_lines, recipe_domain_card, run_datasets
from adapt.recipe import Recipe
from adapt.runs import RunDir, read_json, write_json_atomic, write_text_atomic

HUB_LICENSES = {
    "mit", "apache-2.0", "cc0-1.0", "cc-by-4.0", "cc-by-sa-4.0", "cc-by-nc-4.0", "cc-by-nc-sa-4.0", "cc-by-nd-4.0",
    "cc-by-nc-nd-4.0", "cc-by-3.0", "cc-by-sa-3.0", "cc-by-nc-3.0", "gpl-3.0", "lgpl-3.0", "agpl-3.0", "bsd-2-clause",
    "bsd-3-clause", "mpl-2.0", "odc-by", "odbl", "pddl", "unlicense", "gemma", "unknown",
}
"""License ids the Hub's metadata accepts (a subset of its list; huggingface_hub ships none), that data cards use."""
LICENSE_ALIASES = {"cc0": "cc0-1.0", "apache-2": "apache-2.0", "apache": "apache-2.0", "public-domain": "cc0-1.0"}


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "" if value is None else str(value)


def display_name(name: str, row: dict) -> str:
    """A variant's name for tables: the NER base row says it is the lexicon baseline."""
    return f"{name} ({row['label']})" if row.get("label") else name


# --------------------------------------------------------------------------- base model
def portable_adapter_config(adapter_dir: Path, base: str) -> bool:
    """Point ``adapter_dir/adapter_config.json``'s ``base_model_name_or_path`` at ``base`` (a Hub id, or the
    recipe's own source when it has none), never at adapt's local cache; the file is replaced atomically
    and every other field kept. False when there is no config or it already names ``base``."""
    path = Path(adapter_dir) / "adapter_config.json"
    config = read_json(path, None)
    if not isinstance(config, dict) or config.get("base_model_name_or_path") == base:
        return False
    config["base_model_name_or_path"] = base
    write_json_atomic(path, config)
    return True


def make_adapter_portable(run: RunDir, recipe: Recipe) -> bool:
    """What the train stage does once the adapter is saved: its config names the base model's Hub id (or the
    recipe's own source when it has none; see :func:`portable_adapter_config`)."""
    source = recipe.model.source
    return portable_adapter_config(run.adapter, source_hub_id(source) or source)


def _local_config(source: str) -> dict:
    """The config.json of a local or already-cached source (no download), or {}."""
    path = Path(source).expanduser() / "config.json"
    if not path.is_file() and source_hub_id(source) == source:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(source, "config.json")
        path = Path(cached) if isinstance(cached, str) else path
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _family(source: str) -> str | None:
    """The base model's architecture (``model_type``), for tags."""
    if source in OFFLINE_MODELS:
        return OFFLINE_MODELS[source].arch
    return _local_config(source).get("model_type")


def _base_line(recipe: Recipe, hub_id: str | None) -> str:
    source = recipe.model.source
    quant = f"(quantization: {recipe.model.quantization}, double quant: {recipe.model.double_quant})"
    if hub_id is None:
        return (
            f"- base model: the local model `{Path(source).name}` {quant}; it names no Hub id, so the metadata "
            "has no base_model (set `_name_or_path` in its config.json to the Hub id to name one)"
        )
    offline = OFFLINE_MODELS.get(source)
    how = (
        f" through adapt's offline copy `{source}` (its {offline.gguf_file} dequantized to bf16; license {offline.license})"
        if offline else "" if hub_id == source else f" (from the local directory `{Path(source).name}`)"
    )
    return f"- base model: [`{hub_id}`](https://huggingface.co/{hub_id}){how} {quant}"


# --------------------------------------------------------------------------- metadata
def hub_license(text: str) -> str:
    """A data license as written ("CC BY-NC 4.0", "MIT (PubMedQA ...)") -> a Hub license id, or "other"."""
    if text == NOT_STATED:
        return "unknown"
    key = re.sub(r"[\s_]+", "-", text.split("(")[0].strip().lower())
    key = LICENSE_ALIASES.get(key, key)
    return key if key in HUB_LICENSES else "other"


def _license_fields(run_data: RunData) -> dict:
    texts = [ds.license for ds in run_data.datasets] if not run_data.own else [run_data.license]
    ids = sorted({hub_license(t) for t in texts} or {"unknown"})
    if len(ids) == 1 and ids[0] != "other":
        return {"license": ids[0]}
    name = re.sub(r"[^a-z0-9.]+", "-", run_data.license.lower()).strip("-")[:64].rstrip("-.") or "other"
    urls = [ds.url for ds in run_data.datasets if ds.url]
    return {"license": "other", "license_name": name, **({"license_link": urls[0]} if len(urls) == 1 else {})}


def _eval_results(recipe: Recipe, evaluation: dict, run_data: RunData, domain: DomainCard, kind: str):
    """The adapter's headline scores (primary metric first) on the evaluated split, as Hub EvalResults."""
    from huggingface_hub import EvalResult

    row = evaluation.get("variants", {}).get("adapter", {}).get("metrics", {})
    primary = evaluation.get("primary_metric")
    keys = [primary] + [k for k in evaluation.get("headline_metrics", []) if k != primary]
    ds = run_data.datasets
    configs = {d.hub_config for d in ds if d.hub_config and "<" not in d.hub_config}
    dataset = {
        "dataset_type": "+".join(d.hub_id or d.name for d in ds) or domain.name,
        "dataset_name": " + ".join(d.title for d in ds) or f"{domain.title} (own data)",
        "dataset_config": next(iter(configs)) if len(ds) == 1 and len(configs) == 1 else None,
        "dataset_split": evaluation.get("split"),
    }
    return [
        EvalResult(task_type=tasks.get(kind).hub_task, metric_type=key, metric_name=key,
                   metric_value=float(row[key]), **dataset)
        for key in keys
        if isinstance(row.get(key), (int, float)) and not isinstance(row.get(key), bool)
    ]


def metadata(recipe: Recipe, evaluation: dict, domain: DomainCard, run_data: RunData, hub_id: str | None):
    """The card's front matter: a :class:`huggingface_hub.ModelCardData`."""
    from huggingface_hub import ModelCardData

    kind = evaluation.get("task_kind") or recipe.kind
    tags = ["adapt", "peft", recipe.method.name, domain.name, _family(recipe.model.source)]
    return ModelCardData(
        base_model=hub_id,
        library_name="peft",
        datasets=list(dict.fromkeys(d.hub_id for d in run_data.datasets if d.hub_id)) or None,
        tags=list(dict.fromkeys(t for t in tags if t)),
        pipeline_tag=tasks.get(kind).pipeline_tag,
        model_name=recipe.name,
        eval_results=_eval_results(recipe, evaluation, run_data, domain, kind) or None,
        **_license_fields(run_data),
        **({"base_model_relation": "adapter"} if hub_id else {}),
    )


# --------------------------------------------------------------------------- body
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
    if metrics.get("probe"):
        return _probe_lines(metrics["probe"])
    v = metrics.get("validation")
    if not v:
        return [f"- selected step: {metrics['selected_step']} (the last; no validation during training)"] if "selected_step" in metrics else []
    curve = ", ".join(f"{step}: {value:.4f}" for step, value in v["curve"].items())
    return [
        f"- selected step: {metrics.get('selected_step')} ({metrics.get('selection', '')}; validation {v['metric']} "
        f"{_fmt(metrics.get('best_validation'))} on {v['n']} validation examples)",
        f"- validation {v['metric']} every {v['every_steps']} steps: {curve}" + (" (stopped early)" if v.get("early_stopped") else ""),
        *_group_curves(v),
        f"- class balance: {metrics.get('class_balance', 'none')}",
    ]


def _training_line(metrics: dict) -> str:
    """Steps, loss and speed of a Trainer run; a probe's fitting time (it takes no steps)."""
    where = f"peak RSS: {metrics.get('peak_rss_mb')} MB, device: {metrics.get('device')}"
    if metrics.get("probe"):
        return f"- fitted in {metrics.get('train_runtime_s')} s (reading the texts: {metrics['probe'].get('read_seconds')} s), {where}"
    return (f"- steps: {metrics.get('steps')}, train loss: {_fmt(metrics.get('train_loss'))}, "
            f"tokens/s: {metrics.get('tokens_per_s')}, {where}")  # fmt: skip


def probe_setting(layer: int | None, c: float) -> str:
    """A probe's setting as the card and the demo name it: ``layer 12, C 0.03`` (``C 0.03`` with one layer)."""
    return f"layer {layer}, C {c}" if layer is not None else f"C {c}"


def _probe_lines(probe: dict) -> list[str]:
    """How a linear probe's head was chosen: each setting's cross-validated scores and the one kept."""
    metric = probe["metric"]
    layers = len({r.get("layer") for r in probe["rows"]}) > 1  # one layer: the rows differ by C alone
    where = lambda r: probe_setting(r.get("layer") if layers else None, r["c"])  # noqa: E731
    rows = "; ".join(f"{where(r)}: {r[metric]:.4f} / {r['accuracy']:.4f}" for r in probe["rows"])
    return [
        f"- head fitted alone on the frozen base (a linear probe; the LoRA is untrained): "
        f"{where({'layer': probe.get('chosen_layer'), 'c': probe['chosen_c']})}, chosen by {probe['folds']}-fold "
        f"cross-validation on {probe['examples']} train + validation examples (the best {metric} with accuracy >= "
        f"{probe['min_accuracy']:.3f})",
        f"- cross-validated {metric} / accuracy: {rows}",
    ]


def _group_curves(validation: dict) -> list[str]:
    """Each group's validation curve (a mixture's parts, NER's languages), for a few groups (not 38 CUAD tasks)."""
    from adapt.training.validation import LOGGED_GROUPS

    groups = validation.get("group_curves") or {}
    if len(groups) > LOGGED_GROUPS:
        return [f"- per group ({len(groups)} groups): logs/validation.csv"]
    return [f"  - {name}: " + ", ".join(f"{step}: {value:.4f}" for step, value in curve.items()) for name, curve in groups.items()]


def _head_line(run: RunDir, metrics: dict) -> list[str]:
    """A trained classification head (adapter/labels.json): its shape, labels and reading."""
    from adapt.tasks.heads import HEAD_FILE, HeadSpec

    if not (run.adapter / HEAD_FILE).is_file():
        return []
    spec = HeadSpec.read(run.adapter)
    reads = "" if spec.shape == "token" else f", reading the {'mean of the text' if spec.pooling == 'mean' else 'last token'}"
    first = "decoder layer" if spec.layer == 1 else f"{spec.layer} decoder layers"
    cut = f" after the first {first} (the layers above are not part of this model)" if spec.layer else ""
    how = "fitted alone on the frozen base" if metrics.get("probe") else "trained with the adapter"
    return [f"- head: a new {spec.shape}-classification `score` layer over {len(spec.labels)} labels "
            f"({', '.join(spec.labels[:8])}{', ...' if len(spec.labels) > 8 else ''}), {spec.attention} attention{reads}{cut}, "
            f"{how} (saved in it: peft `modules_to_save`; {HEAD_FILE})"]  # fmt: skip


def body(run: RunDir, recipe: Recipe, metrics: dict, evaluation: dict, domain: DomainCard, run_data: RunData,
         hub_id: str | None) -> str:
    method = recipe.method
    lines = [
        f"# {recipe.name}",
        "",
        recipe.description or f"A {method.name} adapter specializing `{hub_id or Path(recipe.model.source).name}` for {domain.name}.",
        "",
        "## Model",
        _base_line(recipe, hub_id),
        f"- method: `{method.name}` ({', '.join(f'{k}={v}' for k, v in method.model_dump().items() if k != 'name')})",
        f"- trainable parameters: {metrics.get('trainable_params', '?'):,}" if metrics else "- trainable parameters: ?",
        *_head_line(run, metrics),
        "",
        "## Data",
        *data_lines(metrics.get("data_description") or recipe.data.source, run_data),
        "",
        "## Training",
        _training_line(metrics),
        *_selection(metrics),
        "",
        "## Evaluation",
        *_eval_table(evaluation),
        "",
        "## Intended use",
        domain.intended_use,
        "",
        "## Limitations",
        domain.limitations,
        "",
        "## Reproduce",
        "```",
        f"adapt train {run.recipe}  # the resolved recipe of this run",
        f"adapt eval {run.root}",
        "```",
        "",
    ]
    return "\n".join(lines)


def write(run: RunDir, recipe: Recipe) -> None:
    """(Re)write the card from the run's recipe, metrics.json and eval.json (the adapter's config is the train
    stage's: :func:`make_adapter_portable`)."""
    from huggingface_hub import ModelCard

    metrics = read_json(run.metrics, {})
    evaluation = read_json(run.eval, {})
    domain = recipe_domain_card(recipe)
    run_data = run_datasets(recipe.data, domain, metrics.get("data_license", ""))
    hub_id = source_hub_id(recipe.model.source)  # reads the model folder's files: once per card
    card = ModelCard(f"---\n{metadata(recipe, evaluation, domain, run_data, hub_id).to_yaml()}\n---\n\n"
                     + body(run, recipe, metrics, evaluation, domain, run_data, hub_id))
    write_text_atomic(run.card, str(card))
