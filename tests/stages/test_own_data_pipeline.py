"""End to end on your own data: each example recipe (a JSONL of instructions, a CSV of labelled clauses, a
CoNLL file with its own tag set) through train, eval (base vs adapter) and merge, from the recipe alone."""

from __future__ import annotations

import json

import pytest
import yaml
from huggingface_hub import ModelCard

from adapt.runs import RunDir
from own_runs import OWN, REPO, own_runs

PRIMARY = {"own-instruction": "rougeL", "own-classification": "macro_f1", "own-ner": "f1"}
DATASET = {"own-instruction": "Family clinic FAQ", "own-classification": "Contract clauses by type", "own-ner": "Medication instructions"}


@pytest.fixture(scope="module")
def runs(tiny_llama_dir):
    return own_runs(tiny_llama_dir)


@pytest.mark.parametrize("name", OWN)
def test_each_example_trains_scores_base_and_adapter_and_merges(runs, name):
    run = RunDir(runs / name)
    result = json.loads(run.eval.read_text())
    assert result["primary_metric"] == PRIMARY[name] and result["split"] == "test"
    assert {"base", "adapter", "merged/nf4_dequant"} <= set(result["variants"])
    for variant in ("base", "adapter", "merged/nf4_dequant"):
        assert isinstance(result["variants"][variant]["metrics"][PRIMARY[name]], float)
    assert "Own data" in result["data"]
    assert list((run.root / "merged" / "nf4_dequant").glob("*.safetensors"))
    metrics = json.loads(run.metrics.read_text())
    assert metrics["steps"] == 3


@pytest.mark.parametrize("name", OWN)
def test_the_run_carries_the_users_card_and_license(runs, name):
    run = RunDir(runs / name)
    card = ModelCard.load(run.card)
    assert card.data.license == "cc0-1.0"  # the example files' license, never a built-in dataset's
    assert card.data.datasets is None  # a local file has no Hub id
    assert f"- dataset: {DATASET[name]}" in card.content and "license CC0-1.0." in card.content and "- data license: CC0-1.0" in card.content
    for builtin in ("PubMedQA", "LegalBench", "MasakhaNER", "MedQuAD"):
        assert builtin not in card.content
    assert "## Intended use" in card.content


@pytest.mark.parametrize("name", OWN)
def test_training_curves_go_to_tensorboard_by_default(runs, name):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = RunDir(runs / name).logs / "tensorboard"
    accumulator = EventAccumulator(str(events))
    accumulator.Reload()
    assert len(accumulator.Scalars("train/loss")) >= 3  # logging_steps 1, three steps


def test_the_run_directory_finds_its_files_from_any_folder(runs):
    kept = yaml.safe_load((runs / "own-ner" / "recipe.resolved.yaml").read_text())
    assert kept["domain"]["path"] == str(REPO / "domains/examples/medication.domain.yaml")
    assert kept["data"]["path"] == str(REPO / "domains/examples/medication_ner.conll")
