"""Tiny run directories for the demo tests: untrained (random) adapters on the tiny Llama, no training.

Each run holds what `adapt train` + `adapt eval` would write: recipe.resolved.yaml,
adapter/ (saved by the method's own save), metrics.json, eval.json and the model
card. LoRA B matrices and PEQA scales are randomized so the specialized model
really differs from the base.
"""

from __future__ import annotations

from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]

DATA = {
    "healthcare": {"source": "pubmedqa", "path": str(REPO / "domains/healthcare/sample")},
    "legal": {"source": "legalbench", "path": str(REPO / "domains/legal/sample"), "tasks": ["audit_rights", "governing_law"]},
    "masakhaner": {"source": "masakhaner", "path": str(REPO / "domains/masakhaner/sample"), "languages": ["yor"]},
}
METHODS = {
    "qlora": {"name": "qlora", "rank": 4, "alpha": 8, "dropout": 0.0},
    "peqa": {"name": "peqa", "granularity": "channel"},
    "moe_lora": {"name": "moe_lora", "rank": 2, "alpha": 4, "num_experts": 2, "top_k": 1},
}


def tiny_recipe(name: str, domain: str, model_dir: Path, method: str = "qlora", serve: dict | None = None):
    from adapt.recipe import Recipe

    return Recipe.model_validate({
        "name": name,
        "domain": domain,
        "description": f"tiny {method} test run for {domain}",
        "model": {"source": str(model_dir), "quantization": "nf4"},
        "method": METHODS[method],
        "data": DATA[domain],
        "serve": serve or {"max_new_tokens": 12},
    })  # fmt: skip


def _randomize(model: torch.nn.Module, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.requires_grad and "score" not in name:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.5)


def _write_results(root: Path, recipe, kind: str, trainable: int, total: int) -> None:
    from adapt import card
    from adapt.runs import RunDir, write_json_atomic

    metrics = {
        "method": recipe.method.name, "model": recipe.model.source, "device": "cpu", "steps": 0, "train_loss": None,
        "tokens_per_s": None, "data_description": f"{recipe.data.source} bundled sample (tiny test run)",
        "data_license": "Apache-2.0 (self-written sample)", "trainable_params": trainable, "total_params": total,
    }  # fmt: skip
    if kind == "token_classification":
        primary, keys = "f1", ["f1", "precision", "recall"]
        base, adapter, nf4 = {"f1": 0.10, "precision": 0.2, "recall": 0.07}, {"f1": 0.42, "precision": 0.5, "recall": 0.36}, None
    else:
        primary, keys = "macro_f1", ["accuracy", "macro_f1", "balanced_accuracy"]
        base = {"accuracy": 0.40, "macro_f1": 0.25, "balanced_accuracy": 0.33}
        adapter = {"accuracy": 0.70, "macro_f1": 0.61, "balanced_accuracy": 0.64}
        nf4 = {"accuracy": 0.65, "macro_f1": 0.55, "balanced_accuracy": 0.60}
    variants = {
        "base": {"metrics": base, "retention": round(base[primary] / adapter[primary], 4), "size_bytes": None},
        "adapter": {"metrics": adapter, "retention": 1.0, "size_bytes": 123456},
    }
    if nf4:
        variants["export/nf4"] = {"metrics": nf4, "retention": round(nf4[primary] / adapter[primary], 4), "size_bytes": 4 * 2**20}
    evaluation = {"split": "test", "n": 20, "task_kind": kind, "primary_metric": primary, "headline_metrics": keys, "variants": variants}
    run = RunDir(root)
    write_json_atomic(run.metrics, metrics)
    write_json_atomic(run.eval, evaluation)
    card.write(run, recipe)


def build_causal_run(root: Path, model_dir: Path, domain: str, method: str = "qlora", seed: int = 0) -> Path:
    """A run directory with an untrained (randomized) adapter of ``method`` on the tiny causal Llama."""
    from adapt import models
    from adapt import methods
    from adapt.runs import write_text_atomic
    from adapt.training.trainer import trainable_parameters

    recipe = tiny_recipe(root.name, domain, model_dir, method)
    root.mkdir(parents=True, exist_ok=True)
    write_text_atomic(root / "recipe.resolved.yaml", recipe.to_yaml())
    base, tokenizer = models.load_base(recipe.model)
    mod = methods.get(method)
    model = mod.build(recipe.method, base)
    _randomize(model, seed)
    trainable, total = trainable_parameters(model)
    mod.save(model, root / "adapter")
    tokenizer.save_pretrained(root / "adapter")
    _write_results(root, recipe, "classification", trainable, total)
    return root


def build_ner_run(root: Path, model_dir: Path, seed: int = 0) -> Path:
    """A token-classification run: LoRA + a random ``score`` head, labels.json beside the adapter."""
    from adapt.data import load_task
    from adapt import methods
    from adapt.runs import write_json_atomic, write_text_atomic
    from adapt.tasks.heads import HEAD_FILE, HeadSpec, load_head_model
    from adapt.training.trainer import trainable_parameters

    recipe = tiny_recipe(root.name, "masakhaner", model_dir)
    root.mkdir(parents=True, exist_ok=True)
    write_text_atomic(root / "recipe.resolved.yaml", recipe.to_yaml())
    spec = HeadSpec(load_task(recipe.data).labels)
    base, tokenizer = load_head_model(recipe.model, spec)
    model = methods.get("qlora").build(recipe.method, base)
    _randomize(model, seed)
    with torch.no_grad():  # a head that predicts entities now and then
        gen = torch.Generator().manual_seed(seed)
        for name, param in model.named_parameters():
            if "score" in name and param.requires_grad:
                param.copy_(torch.randn(param.shape, generator=gen) * 2.0)
    trainable, total = trainable_parameters(model)
    methods.get("qlora").save(model, root / "adapter")
    tokenizer.save_pretrained(root / "adapter")
    write_json_atomic(root / "adapter" / HEAD_FILE, spec.to_json())
    _write_results(root, recipe, "token_classification", trainable, total)
    return root


def build_runs(folder: Path, model_dir: Path, methods: tuple[str, ...] = ("qlora",), ner: bool = True) -> Path:
    """A folder of tiny runs: healthcare and legal with ``methods[0]``, extra healthcare runs per other method, NER."""
    build_causal_run(folder / "healthcare-tiny", model_dir, "healthcare", methods[0], seed=1)
    build_causal_run(folder / "legal-tiny", model_dir, "legal", methods[0], seed=2)
    for i, method in enumerate(methods[1:], 3):
        build_causal_run(folder / f"healthcare-{method}", model_dir, "healthcare", method, seed=i)
    if ner:
        build_ner_run(folder / "masakhaner-tiny", model_dir, seed=9)
    return folder
