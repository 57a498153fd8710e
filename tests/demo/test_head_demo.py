"""The demo serves a sequence-head run (``train.sequence_head``) in its domain's classifier tab: its own model,
loaded on the first request, held against the base's label likelihood as eval's base row is."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from own_runs import REPO, own_runs

HEAD = ["train.sequence_head={pooling: mean, layer: 1, probe: {folds: 3}}", "stages=[train]"]


@pytest.fixture(scope="module")
def head_run_dir(tiny_llama_dir, tmp_path_factory) -> Path:
    from adapt.checks import load_recipe
    from adapt.pipeline import run_all

    root = tmp_path_factory.mktemp("head-demo") / "own-classification-head"
    with contextlib.chdir(REPO):
        recipe = load_recipe(REPO / "recipes" / "own-classification.yaml", [f"model.source={tiny_llama_dir}", *HEAD])
        run_all(recipe, root)
    return root


def start(*paths: Path):
    from adapt.demo.runs import discover
    from adapt.demo.service import DemoService

    with contextlib.chdir(REPO):
        return DemoService.start(discover(list(paths)))


@pytest.fixture(scope="module")
def service(tiny_llama_dir, head_run_dir):
    return start(own_runs(tiny_llama_dir), head_run_dir)


def test_a_head_run_is_served_in_its_domains_classifier_tab(service):
    from adapt.demo.panel import method_lines
    from adapt.demo.ui import build_blocks

    assert [r.name for r in service.runs.heads] == ["own-classification-head"] and not service.runs.skipped
    assert "own-classification-head" not in service.base.names  # not attached to the causal base
    head = service.run("own-classification-head")
    assert head.view == "classification" and head.tab == "clauses-classifier" and "classifier head" in head.tab_title
    assert head.label == "own-classification-head (linear probe)"
    probe = head.metrics["probe"]
    assert method_lines(head)[0].startswith(f"- method: linear probe, the head alone fitted on the frozen base (layer 1, C {probe['chosen_c']}")
    assert [r.name for r in service.runs.by_domain()["clauses"]] == ["own-classification"]
    blocks = build_blocks(service)
    tabs = {block.id for block in blocks.blocks.values() if type(block).__name__ == "Tab"}
    assert {"clauses", "clauses-classifier"} <= tabs


def test_the_head_loads_on_first_use_and_predicts_as_eval_does(service, head_run_dir):
    from adapt.data.types import TextExample
    from adapt.tasks.heads import load_adapted
    from adapt.tasks.sequence_classification import head_scores

    name = "own-classification-head"
    assert "loads on the first request" in service.swap(name) and not service.heads.is_loaded(name)
    text = service.prepared[name].examples[0].text
    first = service.classify(name, text)
    again = service.classify(name, text)
    assert first.load_s is not None and again.load_s is None and "loaded" in service.swap(name)
    run = service.run(name)
    user_text, choices = service.prepared[name].builder.classification_prompt(type(service.prepared[name].examples[0])(text=text))
    model, tok = load_adapted(run.run, run.recipe)
    (expected,) = head_scores(model, tok, [TextExample(prompt=user_text, completion=choices[0], choices=choices)], run.recipe.train.max_seq_len, 1)
    assert first.results["adapter"].logprobs == pytest.approx(expected.logprobs, abs=1e-4)
    # the base side is the shared causal base's label likelihood, as for the causal run of the same text
    causal = service.classify("own-classification", text).results["base"]
    assert first.results["base"].logprobs == pytest.approx(causal.logprobs, abs=1e-4)


def test_a_head_run_alone_loads_its_own_causal_base_for_the_base_side(head_run_dir):
    service = start(head_run_dir)
    assert service.base is None and [r.name for r in service.runs.heads] == ["own-classification-head"]
    answer = service.classify("own-classification-head", service.prepared["own-classification-head"].examples[0].text)
    assert set(answer.results) == {"base", "adapter"}
    assert sum(answer.results["base"].probs.values()) == pytest.approx(1.0)
