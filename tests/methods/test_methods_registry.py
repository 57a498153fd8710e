"""The method registry (adapt.methods): every recipe method resolves to a complete record, its capability
fields drive the stages as documented, and no module outside adapt/methods/ names a method."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
import typing
from pathlib import Path

import pytest
import torch

from adapt import methods
from adapt.errors import AdaptError
from adapt.methods import METHODS, Lazy, Method
from adapt.recipe import MethodConfig, Recipe

ADAPT = Path(methods.__file__).resolve().parents[1]
REQUIRED = ("build", "save", "load", "set_active", "auxiliary_loss")
OPTIONAL_CALLABLES = ("fast_switch", "lora_for_merge", "adapter_report", "merge_into", "export_run", "recipe_problems")


def _recipe(method: dict, **model) -> Recipe:
    return Recipe.model_validate(
        {"name": "r", "domain": "healthcare", "method": method, "data": {"source": "pubmedqa"}, "model": model}
    )


def _union_names() -> set[str]:
    union = typing.get_args(MethodConfig)[0]
    return {typing.get_args(cls.model_fields["name"].annotation)[0] for cls in typing.get_args(union)}


def test_every_recipe_method_name_resolves_to_its_record():
    assert _union_names() == set(METHODS)
    for name, method in METHODS.items():
        assert methods.get(name) is method and method.name == name
        assert typing.get_args(method.config.model_fields["name"].annotation) == (name,)
        recipe = _recipe({"name": name})
        assert isinstance(recipe.method, method.config) and methods.of(recipe) is method


def test_an_unknown_name_is_one_line_naming_the_known_ones():
    with pytest.raises(AdaptError, match=r"method 'lora2': not a known method; use one of qlora, moe_lora, peqa"):
        methods.get("lora2")


@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_has_the_required_callables_and_they_resolve(name):
    method = METHODS[name]
    for field in REQUIRED:
        value = getattr(method, field)
        assert isinstance(value, Lazy), field
        assert callable(value.resolve()), f"{name}.{field} -> {value.target}"
    for field in OPTIONAL_CALLABLES:
        value = getattr(method, field)
        assert value is None or callable(value.resolve() if isinstance(value, Lazy) else value), f"{name}.{field}"
    assert inspect.signature(method.build.resolve()).parameters.keys() >= {"cfg", "model"}
    assert inspect.signature(method.load.resolve()).parameters.keys() >= {"model", "adapter_dir", "name"}
    assert method.about and isinstance(method.load_order, int)


def test_the_registry_and_the_recipe_import_without_torch():
    code = "import sys, adapt.recipe, adapt.methods; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_capabilities_are_consistent():
    for method in METHODS.values():
        assert method.merge_into is not None or method.lora_for_merge is not None, f"{method.name}: adapt merge has no path"
        assert not method.lora_is_collapsed or method.lora_for_merge is not None
        assert not method.trains_head or method.lora_for_merge is not None  # the head's merge is a LoRA merge
    orders = [m.load_order for m in METHODS.values()]
    assert len(set(orders)) == len(orders)


# --------------------------------------------------------------------------- capability fields as documented
def test_recipe_problems_are_the_methods_own_rules():
    from adapt.recipe import rule_problems as _semantic_problems

    peqa = _semantic_problems("r.yaml", _recipe({"name": "peqa"}, quantization="none"))
    assert "r.yaml: method: peqa trains the NF4 scales; set model.quantization: nf4" in peqa
    moe = _semantic_problems("r.yaml", _recipe({"name": "moe_lora", "num_experts": 2, "top_k": 3}))
    assert "r.yaml: method.top_k: 3 > num_experts; use top_k <= num_experts" in moe
    qlora = _semantic_problems("r.yaml", _recipe({"name": "qlora"}, quantization="none"))
    assert not any("method" in line for line in qlora)


def test_token_head_and_sharding_capabilities_drive_the_checks(monkeypatch):
    from adapt.training import distributed
    from adapt.tasks.heads import check_method

    for name, method in METHODS.items():
        recipe = _recipe({"name": name})
        if method.trains_head:
            check_method(recipe)
        else:
            with pytest.raises(AdaptError, match=f"'{name}' cannot train a classification head.*method.name: qlora"):
                check_method(recipe)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    for name, method in METHODS.items():
        if method.whole_weights:
            with pytest.raises(AdaptError, match=f"method {name}: fsdp shards the weights"):
                distributed.check_method(name)
        else:
            distributed.check_method(name)


def test_demo_load_order_and_fast_switch_follow_the_registry(tiny_llama_dir):
    from adapt import models
    from adapt.recipe import ModelConfig

    assert sorted(METHODS, key=lambda n: METHODS[n].load_order)[0] == "qlora"  # peft wraps modules by name first
    model, _ = models.load_base(ModelConfig(source=str(tiny_llama_dir), quantization="none", compute_dtype="float32"))
    model = METHODS["qlora"].build(METHODS["qlora"].config(name="qlora", rank=2, dropout=0.0), model).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_()
    ids = torch.tensor([[1, 5, 9, 2]])
    METHODS["qlora"].set_active(model, "default")
    adapted = model(input_ids=ids).logits
    METHODS["qlora"].set_active(model, None)
    base = model(input_ids=ids).logits
    switch = METHODS["qlora"].fast_switch(model)
    switch("default")
    assert torch.equal(model(input_ids=ids).logits, adapted)
    switch(None)
    assert torch.equal(model(input_ids=ids).logits, base) and not torch.equal(base, adapted)


def test_bundle_refuses_methods_without_a_lora_form(tmp_path):
    from safetensors.torch import save_file

    from adapt import bundle
    from adapt.runs import RunDir

    without = [m for m in METHODS.values() if m.lora_for_merge is None]
    assert without, "the registry documents at least one method without a LoRA form"
    for method in without:
        run = RunDir(tmp_path / method.name)
        run.adapter.mkdir(parents=True)
        save_file({"w": torch.zeros(1)}, str(run.adapter / "adapter_model.safetensors"))
        (run.adapter / "adapter_config.json").write_text("{}")
        recipe = _recipe({"name": method.name})
        with pytest.raises(AdaptError, match=f"{method.name} {method.about} and has no LoRA form"):
            bundle._check({"a": (run, recipe)})


# --------------------------------------------------------------------------- no method names outside methods/
def _method_name_constants(tree: ast.AST) -> list[tuple[int, str]]:
    """Method names as string constants where code compares, keys or looks up by them (not messages)."""
    found: dict[int, ast.Constant] = {}

    def add(node: ast.AST) -> None:
        found.update({id(n): n for n in ast.walk(node) if isinstance(n, ast.Constant) and n.value in METHODS})

    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            add(node)
        elif isinstance(node, ast.Dict):
            for key in node.keys:
                if key is not None:
                    add(key)
        elif isinstance(node, ast.Subscript):
            add(node.slice)
        elif isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) in ("get", "hasattr", "getattr"):
            add(node)
        elif isinstance(node, (ast.Tuple, ast.List, ast.Set)) and all(isinstance(e, ast.Constant) for e in node.elts):
            add(node)
    return sorted((n.lineno, n.col_offset, n.value) for n in found.values())


def test_no_module_outside_methods_compares_or_looks_up_a_method_by_name():
    found = []
    for path in sorted(ADAPT.rglob("*.py")):
        if (ADAPT / "methods") in path.parents:
            continue
        found += [f"{path.relative_to(ADAPT.parent)}:{line}: {value!r}" for line, _, value in _method_name_constants(ast.parse(path.read_text()))]
    assert found == []


def test_the_scan_finds_the_patterns_it_forbids():
    code = (
        'if recipe.method.name == "peqa": pass\n'
        'TABLE = {"qlora": 0}\n'
        'ORDER = ("moe_lora", "peqa")\n'
        'x = TABLE["qlora"]\n'
        'hasattr(get("peqa"), "export_run")\n'
        'print(f"{name} is not qlora")\n'
    )
    assert [value for _, _, value in _method_name_constants(ast.parse(code))] == ["peqa", "qlora", "moe_lora", "peqa", "qlora", "peqa"]


def test_method_records_are_frozen():
    with pytest.raises(AttributeError):
        METHODS["qlora"].whole_weights = True  # type: ignore[misc]
    assert all(isinstance(m, Method) for m in METHODS.values())
