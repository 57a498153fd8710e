"""``train.report_to`` reaches both training paths (TRL's SFT for the causal-LM kinds, the Trainer of the token
head): ``none`` writes no TensorBoard events, the default writes them; the CSV log is written either way."""

from __future__ import annotations

import csv

import pytest

from tiny_runs import own_recipe, train_run


def events(run) -> list:
    return sorted(run.root.rglob("events.out.tfevents*"))


@pytest.mark.parametrize("title", ["instruction", "token_classification"])
@pytest.mark.parametrize("report_to", ["none", "tensorboard"])
def test_report_to_decides_the_tensorboard_events(tiny_llama_dir, tmp_path, title, report_to):
    from adapt.recipe import Recipe

    recipe = own_recipe(tiny_llama_dir, title).model_dump()
    recipe["train"]["report_to"] = report_to
    run = train_run(Recipe.model_validate(recipe), tmp_path / "run")

    assert (run.adapter / "adapter_config.json").is_file()
    with open(run.logs / "train_log.csv", newline="") as f:
        assert any(row.get("loss") for row in csv.DictReader(f))  # the CSV log does not depend on report_to
    if report_to == "none":
        assert events(run) == [] and not (run.logs / "tensorboard").exists()
    else:
        assert [p.parent for p in events(run)] == [run.logs / "tensorboard"]
