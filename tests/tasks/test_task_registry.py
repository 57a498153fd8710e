"""The task-kind registry: every kind is complete, the registry imports without torch, kinds drive export
support, and no module outside adapt/tasks/ and adapt/data/ branches on a task kind (an AST scan)."""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import FrozenInstanceError, fields
from pathlib import Path

import pytest

from adapt.errors import AdaptError
from adapt.export.formats import FORMATS
from adapt.lazy import Lazy
from adapt.tasks import TASKS, Kind, get, of

ADAPT = Path(__file__).resolve().parents[2] / "adapt"
KIND_STRINGS = set(TASKS) | {kind.title for kind in TASKS.values()}

def test_every_data_kind_has_a_complete_record():
    from adapt.data.sources import KINDS
    from adapt.data.types import TaskKind
    from adapt.recipe import EvalConfig
    from adapt.tasks import METRICS

    data_kinds = {k.name: k for k in TASKS.values() if k.name in TaskKind.__args__}
    assert set(data_kinds) == set(TaskKind.__args__)  # every kind of data; the others are chosen by the recipe
    assert {k.with_sequence_head for k in data_kinds.values()} - {None} == set(TASKS) - set(data_kinds)
    assert {title: kind for title, kind in KINDS.items()} == {k.title: k.name for k in data_kinds.values()}  # task: <title>
    assert [EvalConfig(primary_metric=m).primary_metric for m in METRICS] == list(METRICS)  # the schema's choices
    with pytest.raises(ValueError, match="'rougeL', 'macro_f1', 'accuracy', 'balanced_accuracy', 'group_mean_macro_f1' or 'f1'"):
        EvalConfig(primary_metric="bleu")
    for name, kind in TASKS.items():
        assert kind.name == name and kind.metrics and set(kind.metrics) <= set(METRICS)
        assert kind.headline[0] in kind.metrics  # the default primary metric leads the table
        assert kind.perplexity in ("answer", "text", None) and kind.view in ("qa", "classification", "ner")
        for field in fields(Kind):
            value = getattr(kind, field.name)
            if isinstance(value, Lazy):
                assert callable(value.resolve()), f"{name}.{field.name}: {value.target} does not resolve"
            elif field.type == "str":
                assert value, f"{name}.{field.name} is empty"


def test_kinds_differ_where_the_issue_says():
    assert TASKS["generation"].title == "instruction" and TASKS["generation"].perplexity == "answer"
    labels = ("macro_f1", "accuracy", "balanced_accuracy", "group_mean_macro_f1")
    assert {name: kind.metrics for name, kind in TASKS.items()} == {
        "generation": ("rougeL",), "classification": labels, "token_classification": ("f1",), "sequence_classification": labels}
    assert [n for n, kind in TASKS.items() if kind.balances_labels] == ["classification", "sequence_classification"]  # train.class_balance
    assert [name for name, kind in TASKS.items() if kind.token_head] == ["token_classification"]  # train.token_head
    assert {name: kind.with_sequence_head for name, kind in TASKS.items() if kind.with_sequence_head} == {
        "classification": "sequence_classification"}  # train.sequence_head
    assert {name: kind.view for name, kind in TASKS.items()} == {
        "generation": "qa", "classification": "classification", "token_classification": "ner", "sequence_classification": "classification"}
    assert TASKS["classification"].perplexity == "text" and TASKS["token_classification"].perplexity is None
    assert TASKS["sequence_classification"].perplexity is None  # a head predicts no text
    for head in ("token_classification", "sequence_classification"):
        assert TASKS[head].merge.target == "adapt.tasks.heads:merge" and not TASKS[head].gguf  # the head is merged too
    assert {k.pipeline_tag for k in TASKS.values()} == {"text-generation", "token-classification", "text-classification"}


def test_gguf_is_refused_for_token_classification_in_one_line():
    ner = TASKS["token_classification"]
    for name, fmt in FORMATS.items():
        problem = ner.export_problem(fmt)
        assert (problem is not None) == name.startswith("gguf-"), name  # nf4-lora carries the head in its adapter
        if problem:
            assert "\n" not in problem and problem.startswith(f"--format {name}:") and "nf4" in problem
        for causal in ("generation", "classification"):
            assert TASKS[causal].export_problem(fmt) is None


def test_lookups():
    from adapt.data.types import TaskData

    assert of(TaskData("classification", [], [], [])) is TASKS["classification"]
    with pytest.raises(AdaptError, match="'ner': not a known kind; use one of generation, classification, token_classification, sequence_classification"):
        get("ner")
    with pytest.raises(FrozenInstanceError):
        TASKS["generation"].gguf = False


def test_the_registry_imports_without_torch():
    code = "import sys, adapt.tasks, adapt.tasks.scoring; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


# --------------------------------------------------------------------------- no branching on a kind
def _is_kind(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and node.value in KIND_STRINGS


def _kind_branches(tree: ast.AST) -> list[int]:
    """Lines comparing something with a kind string, or building a dict keyed by two kinds or more."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            values = [node.left, *node.comparators]
            values += [e for v in values if isinstance(v, (ast.Tuple, ast.List, ast.Set)) for e in v.elts]
            if any(_is_kind(v) for v in values):
                lines.append(node.lineno)
        elif isinstance(node, ast.Dict) and sum(_is_kind(k) for k in node.keys if k is not None) >= 2:
            lines.append(node.lineno)
    return lines


def test_no_module_outside_tasks_and_data_branches_on_a_task_kind():
    found = []
    for path in sorted(ADAPT.rglob("*.py")):
        rel = path.relative_to(ADAPT.parent).as_posix()
        if rel.startswith(("adapt/tasks/", "adapt/data/")):
            continue
        found += [f"{rel}:{line}" for line in _kind_branches(ast.parse(path.read_text(encoding="utf-8")))]
    assert not found, "branches on a task kind (use adapt.tasks.of(...) and the record's fields): " + ", ".join(found)


def test_the_scan_finds_the_patterns_it_forbids():
    code = (
        "if task.kind == 'token_classification': pass\n"
        "x = kind in ('classification', 'x')\n"
        "TABLE = {'generation': 1, 'classification': 2}\n"
        "fine = cfg.kind == 'deepspeed'\n"
    )
    assert _kind_branches(ast.parse(code)) == [1, 2, 3]
