"""Issue 16, items 1-2: validation during training, the best adapter, early stopping, resume; label skew remedies."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml

from adapt.data.types import TaskData, TextExample
from adapt.errors import AdaptError
from adapt.checks import collect_problems, load_recipe
from adapt.runs import RunDir

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "domains" / "healthcare" / "sample"


def write_recipe(tmp_path: Path, model_dir: Path, **train) -> Path:
    body = {
        "name": "tiny-validation", "domain": "healthcare",
        "model": {"source": str(model_dir)},
        "method": {"name": "qlora", "rank": 4, "alpha": 8},
        "data": {"source": "pubmedqa", "path": str(SAMPLE), "validation_size": 6, "max_context_chars": 150},
        "train": {"max_steps": 6, "batch_size": 4, "learning_rate": 0.02, "max_seq_len": 128, "logging_steps": 1,
                  "save_steps": 2, "save_total_limit": 10, "eval_steps": 2, **train},
        "eval": {"limit": 4, "batch_size": 4, "perplexity_examples": 0},
    }  # fmt: skip
    path = tmp_path / "recipe.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(body))
    return path


def ex(label: str, group: str = "", i: int = 0) -> TextExample:
    return TextExample(prompt=f"q{i}", completion=label, choices=("yes", "no", "maybe"), group=group, id=f"{group}{label}{i}")


# --------------------------------------------------------------------------- label skew
def test_loss_weights_are_inverse_label_frequency_within_each_group():
    from adapt.training.balance import loss_weights

    data = [ex("yes", i=i) for i in range(6)] + [ex("no", i=i) for i in range(3)] + [ex("maybe")]
    weights = loss_weights(data)
    assert weights[0] == pytest.approx(10 / (3 * 6)) and weights[6] == pytest.approx(10 / (3 * 3))
    assert weights[-1] == pytest.approx(10 / 3)
    assert sum(weights) / len(weights) == pytest.approx(1.0)  # the loss keeps its size
    # each label's total weight is the same: the model is pushed as hard towards "maybe" as towards "yes"
    per_label = {label: sum(w for e, w in zip(data, weights) if e.completion == label) for label in ("yes", "no", "maybe")}
    assert len({round(v, 9) for v in per_label.values()}) == 1
    # groups (LegalBench tasks) are balanced separately: a balanced task keeps weight 1
    mixed = [ex("yes", "a"), ex("no", "a"), ex("yes", "b", 1), ex("yes", "b", 2), ex("no", "b", 3)]
    assert loss_weights(mixed)[:2] == [1.0, 1.0] and loss_weights(mixed)[4] == pytest.approx(1.5)


def test_oversampling_repeats_minority_labels_deterministically():
    from adapt.training.balance import label_counts, oversample

    data = [ex("yes", i=i) for i in range(7)] + [ex("no", i=i) for i in range(3)] + [ex("maybe", i=i) for i in range(2)]
    out = oversample(data, seed=1)
    assert label_counts(out) == {"maybe": 7, "no": 7, "yes": 7}
    assert out[: len(data)] == data  # every original example stays, once
    assert out == oversample(data, seed=1) and set(map(id, out[len(data):])) <= set(map(id, data))
    assert [e.id for e in out] != [e.id for e in oversample(data, seed=2)]  # the partial repeat is a seeded draw


def test_weighted_log_probs_scale_each_row():
    from adapt.training.trainer import WeightCollator, _WeightedLogProbs

    log_probs = torch.tensor([[-1.0, -2.0, 0.0], [-1.0, -1.0, -1.0]])
    model = lambda **kw: SimpleNamespace(log_probs=log_probs.clone(), seen=kw)  # noqa: E731
    out = _WeightedLogProbs(model, torch.tensor([2.0, 0.5]))(input_ids=1)
    assert torch.equal(out.log_probs, torch.tensor([[-2.0, -4.0, 0.0], [-0.5, -0.5, -0.5]])) and out.seen == {"input_ids": 1}
    inner = lambda rows: {"n": len(rows), "keys": sorted(rows[0])}  # noqa: E731
    batch = WeightCollator(inner)([{"input_ids": [1], "loss_weight": 2.0}, {"input_ids": [2], "loss_weight": 0.5}])
    assert batch["keys"] == ["input_ids"] and torch.equal(batch["loss_weight"], torch.tensor([2.0, 0.5]))


def test_class_balance_and_primary_metric_must_fit_the_task(tmp_path, tiny_llama_dir):
    ner = yaml.safe_load((REPO / "recipes" / "masakhaner-qlora.yaml").read_text())
    ner["data"]["path"] = str(REPO / "domains" / "masakhaner" / "sample")
    ner["train"]["class_balance"] = "weighted_loss"
    ner.setdefault("eval", {})["primary_metric"] = "macro_f1"
    path = tmp_path / "ner.yaml"
    path.write_text(yaml.safe_dump(ner))
    _, problems = collect_problems(path)
    assert any("train.class_balance: weighted_loss is for classification data, not token_classification" in p for p in problems)
    assert any("eval.primary_metric: macro_f1 is not a token_classification metric; use one of f1" in p for p in problems)
    _, problems = collect_problems(write_recipe(tmp_path, tiny_llama_dir), ["train.eval_steps=0", "train.select_best=true"])
    assert any("train.select_best: true needs validation" in p for p in problems)
    _, problems = collect_problems(write_recipe(tmp_path, tiny_llama_dir), ["train.token_head.attention=bidirectional"])
    assert any("train.token_head: sets a NER head's reading, and this recipe's data is classification; remove it" in p
               for p in problems)  # fmt: skip
    _, problems = collect_problems(write_recipe(tmp_path, tiny_llama_dir), ["train.token_head.attention=causal"])
    assert not any("token_head" in p for p in problems)  # the default reading, written out (a resolved recipe)


def test_select_best_without_a_validation_split_is_a_one_line_error():
    from adapt.training.validation import make_plan

    recipe = SimpleNamespace(train=SimpleNamespace(eval_steps=None, select_best=True, early_stopping_patience=None),
                             data=SimpleNamespace(source="pubmedqa"))
    task = TaskData(kind="classification", train=[ex("yes")], validation=[], test=[])
    with pytest.raises(AdaptError, match="the pubmedqa data has no validation examples; set them to null"):
        make_plan(recipe, task, "macro_f1", 1)
    recipe.train.select_best = None
    assert make_plan(recipe, task, "macro_f1", 1) is None  # default: on only when there is something to validate


def test_default_plan_validates_about_four_times_an_epoch_on_a_seeded_sample():
    from adapt.training.validation import make_plan

    t = SimpleNamespace(eval_steps=None, select_best=None, early_stopping_patience=None, validation_limit=5, batch_size=8, grad_accum=1)
    recipe = SimpleNamespace(train=t, eval=SimpleNamespace(seed=0))
    validation = [ex("yes", i=i) for i in range(20)]
    task = TaskData(kind="classification", train=[], validation=validation, test=[])
    plan = make_plan(recipe, task, "macro_f1", 450)
    assert plan.every == 14 and plan.select_best and len(plan.examples) == 5  # 57 steps an epoch
    assert [e.id for e in plan.examples] != [e.id for e in validation[:5]]  # a sample, not a prefix


# --------------------------------------------------------------------------- training
@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    from tiny import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="module")
def validated_run(tmp_path_factory, model_dir) -> RunDir:
    from adapt import train

    tmp = tmp_path_factory.mktemp("validated")
    recipe = load_recipe(write_recipe(tmp, model_dir, class_balance="weighted_loss"))
    return RunDir(train.run(recipe, tmp / "run"))


def read_csv(path: Path) -> list[dict]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_validation_curve_best_adapter_and_card(validated_run):
    run = validated_run
    metrics = json.loads(run.metrics.read_text())
    assert metrics["class_balance"] == "weighted_loss" and metrics["steps"] == 6
    v = metrics["validation"]
    assert v["metric"] == "macro_f1" and v["split"] == "validation" and v["n"] == 6 and v["every_steps"] == 2
    assert list(v["curve"]) == ["2", "4", "6"]
    best_step = max(v["curve"], key=lambda s: (v["curve"][s], -int(s)))  # the first step with the top score
    assert metrics["selected_step"] == int(best_step) and metrics["best_validation"] == v["curve"][best_step]
    rows = read_csv(run.logs / "validation.csv")
    assert [r["step"] for r in rows] == ["2", "4", "6"] and {r["metric"] for r in rows} == {"macro_f1"}
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run.logs / "tensorboard")).Reload()  # the Trainer's one writer carries validation too
    assert [e.step for e in events.Scalars("validation/macro_f1")] == [2, 4, 6]
    assert "train/loss" in events.Tags()["scalars"]
    assert [h["step"] for h in metrics["log_history"] if "validation_macro_f1" in h] == [2, 4, 6]
    # adapter/ is the selected step's adapter, byte for byte
    best = run.checkpoints / "best"
    assert json.loads((best / "validation.json").read_text())["step"] == metrics["selected_step"]
    assert (run.adapter / "adapter_model.safetensors").read_bytes() == (best / "adapter_model.safetensors").read_bytes()
    assert not (run.adapter / "validation.json").exists()
    assert f"selected step: {metrics['selected_step']}" in run.card.read_text()


def test_validation_scores_like_adapt_eval_and_restores_train_mode(validated_run):
    """The best step's adapter, scored by `adapt eval` on the validation split, gets the curve's best value."""
    from adapt import eval as evaluate

    metrics = json.loads(validated_run.metrics.read_text())
    result = evaluate.run(validated_run.root, split="validation", limit=6, only=["adapter"])
    assert result["variants"]["adapter"]["metrics"]["macro_f1"] == pytest.approx(metrics["best_validation"], abs=1e-6)


def test_each_groups_value_is_logged_and_comes_back_on_resume(tmp_path):
    """A mixture's mean can hide one part falling while the other rises: each part's value is kept beside it."""
    from transformers import TrainerControl, TrainerState

    from adapt.training.validation import Plan, ValidationCallback

    values = iter([(0.3, {"healthcare": 0.2, "legal": 0.4}), (0.5, {"healthcare": 0.1, "legal": 0.9})])

    def scorer(model, examples):
        mean, parts = next(values)
        return {"group_mean_macro_f1": mean, "groups": {g: {"group_mean_macro_f1": v} for g, v in parts.items()}}

    run = RunDir(tmp_path / "run")
    plan = Plan(examples=[1, 2], every=2, metric="group_mean_macro_f1", select_best=False, patience=None)
    callback = ValidationCallback(run, plan, scorer, saver=lambda model, path: None)
    state, control, model = TrainerState(max_steps=4), TrainerControl(), torch.nn.Linear(2, 2)
    callback.on_train_begin(None, state, control)
    for step in (2, 4):
        state.global_step = step
        callback.on_step_end(None, state, control, model=model)
    validation = callback.summary(4)["validation"]
    assert validation["curve"] == {"2": 0.3, "4": 0.5}
    assert validation["group_curves"] == {"healthcare": {"2": 0.2, "4": 0.1}, "legal": {"2": 0.4, "4": 0.9}}
    assert [r["groups"] for r in read_csv(run.logs / "validation.csv")] == ["healthcare=0.2000 legal=0.4000",
                                                                              "healthcare=0.1000 legal=0.9000"]
    from adapt.card import _selection

    assert "  - legal: 2: 0.4000, 4: 0.9000" in _selection({"validation": validation, "selected_step": 4})  # the model card
    state.global_step = 2  # resumed from checkpoint-2: each group's curve up to it comes back from the log history
    resumed = ValidationCallback(run, plan, scorer, saver=lambda model, path: None)
    resumed.on_train_begin(None, state, control)
    assert resumed.group_curve == {"healthcare": {2: 0.2}, "legal": {2: 0.4}}
    assert [r["step"] for r in read_csv(run.logs / "validation.csv")] == ["2"]


def test_resume_keeps_the_best_so_far_and_the_curve(tmp_path, model_dir):
    from adapt import train

    path = write_recipe(tmp_path, model_dir, max_steps=4)
    run = RunDir(train.run(load_recipe(path), tmp_path / "run"))
    first = json.loads(run.metrics.read_text())
    best_before = json.loads((run.checkpoints / "best" / "validation.json").read_text())
    # as if killed after checkpoint-2: the newer checkpoint is gone, the best adapter (maybe from step 4) stays
    import shutil

    shutil.rmtree(run.checkpoints / "checkpoint-4")
    train.run(load_recipe(path, ["train.max_steps=6"]), run.root, resume=True)
    metrics = json.loads(run.metrics.read_text())
    assert metrics["resumed"] and list(metrics["validation"]["curve"]) == ["2", "4", "6"]
    assert metrics["validation"]["curve"]["2"] == first["validation"]["curve"]["2"]
    assert metrics["best_validation"] >= best_before["value"]
    assert [r["step"] for r in read_csv(run.logs / "validation.csv")] == ["2", "4", "6"]  # no step twice


def test_early_stopping_stops_after_patience_validations_without_a_better_score(tmp_path, model_dir):
    from adapt import train

    # lr 0: the score never changes, so every validation after the first is "no better"
    path = write_recipe(tmp_path, model_dir, max_steps=20, eval_steps=1, early_stopping_patience=2, learning_rate=1e-12,
                        class_balance="balanced_sampling")  # fmt: skip
    run = RunDir(train.run(load_recipe(path), tmp_path / "run"))
    metrics = json.loads(run.metrics.read_text())
    assert metrics["steps"] == 3 and metrics["validation"]["early_stopped"] is True
    assert metrics["selected_step"] == 1
    assert metrics["train_rows"] > metrics["train_examples"]  # minority answers repeated


def test_validating_every_step_leaves_training_unchanged(tmp_path, model_dir):
    """Scoring in eval mode between steps (LoRA dropout on) must not change a single training loss."""
    from adapt import train

    losses = {}
    for every in (0, 1):
        path = write_recipe(tmp_path / str(every), model_dir, max_steps=3, eval_steps=every)
        run = RunDir(train.run(load_recipe(path), tmp_path / str(every) / "run"))
        metrics = json.loads(run.metrics.read_text())
        losses[every] = [h["loss"] for h in metrics["log_history"] if "loss" in h]
    assert "validation" in metrics and len(metrics["validation"]["curve"]) == 3
    assert len(losses[1]) == 3 and losses[0] == losses[1]


def test_ner_training_validates_with_entity_f1_and_keeps_the_head(tmp_path, model_dir):
    from tiny_ner import recipe_for, write_conll

    from adapt import train
    from adapt.tasks.heads import HEAD_FILE

    write_conll(tmp_path / "data" / "yor", 12)
    recipe = recipe_for(model_dir, tmp_path / "data")
    recipe = recipe.model_copy(update={"train": recipe.train.model_copy(update={"max_steps": 4, "eval_steps": 2})})
    run = RunDir(train.run(recipe, tmp_path / "run"))
    metrics = json.loads(run.metrics.read_text())
    assert metrics["validation"]["metric"] == "f1" and list(metrics["validation"]["curve"]) == ["2", "4"]
    assert metrics["selected_step"] in (2, 4)
    assert (run.adapter / HEAD_FILE).is_file() and (run.adapter / "adapter_model.safetensors").is_file()
    best = run.checkpoints / "best" / "adapter_model.safetensors"
    assert (run.adapter / "adapter_model.safetensors").read_bytes() == best.read_bytes()


@pytest.mark.parametrize("method", [{"name": "moe_lora", "num_experts": 2, "top_k": 1, "rank": 2}, {"name": "peqa"}])
def test_best_adapter_of_custom_methods_is_saved_and_loads(tmp_path, model_dir, method):
    """MoE-LoRA and PEQA save through their own `save`; adapter/ is the best step's files and loads for eval."""
    from adapt import eval as evaluate
    from adapt import train

    path = write_recipe(tmp_path, model_dir, max_steps=2, eval_steps=1)
    body = yaml.safe_load(path.read_text()) | {"method": method}
    path.write_text(yaml.safe_dump(body))
    run = RunDir(train.run(load_recipe(path), tmp_path / "run"))
    best = run.checkpoints / "best"
    saved = sorted(p.name for p in best.iterdir() if p.name != "validation.json")
    assert saved and all((run.adapter / name).read_bytes() == (best / name).read_bytes() for name in saved if (best / name).is_file())
    metrics = json.loads(run.metrics.read_text())
    result = evaluate.run(run.root, split="validation", limit=6, only=["adapter"])
    assert result["variants"]["adapter"]["metrics"]["macro_f1"] == pytest.approx(metrics["best_validation"], abs=1e-6)
