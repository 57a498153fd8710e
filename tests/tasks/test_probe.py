"""A sequence head over the mean of a cut body's states, fitted alone as a linear probe
(``train.sequence_head: {pooling: mean, layer: N or [N, ...], probe: {...}}``): the folds, the fit, the pooling,
the cut, one read for several layers, the whole pipeline on the tiny Llama, and the recipe rules."""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from pathlib import Path

import pytest
import torch

from adapt.errors import AdaptError
from adapt.runs import RunDir

REPO = Path(__file__).resolve().parents[2]
PROBE = "train.sequence_head={pooling: mean, layer: [1, 2], probe: {folds: 3, c: [0.01, 0.1, 1.0]}}"


def probe_recipe(model_dir: Path, *changes: str):
    from adapt.checks import load_recipe

    fixed = [f"model.source={model_dir}", PROBE, "train.class_balance=weighted_loss", "export.merge=[nf4_dequant]",
             "export.formats=[nf4-lora, int8]", "stages=[train, eval, merge, quantize]"]  # fmt: skip
    with contextlib.chdir(REPO):
        return load_recipe(REPO / "recipes" / "own-classification.yaml", [*fixed, *changes])


@pytest.fixture(scope="module")
def probe_run(tiny_llama_dir, tmp_path_factory):
    from adapt.pipeline import run_all

    recipe = probe_recipe(tiny_llama_dir)
    root = tmp_path_factory.mktemp("probe") / "run"
    with contextlib.chdir(REPO):
        run_all(recipe, root)
    return RunDir(root), recipe


# --------------------------------------------------------------------------- the parts
def test_folds_spread_every_label_evenly_and_repeat_with_the_seed():
    from adapt.tasks.probe import stratified_folds

    labels = ["yes"] * 11 + ["no"] * 7 + ["maybe"] * 3
    folds = stratified_folds(labels, 3, seed=1)
    assert folds == stratified_folds(labels, 3, seed=1) and folds != stratified_folds(labels, 3, seed=2)
    for label in set(labels):
        per_fold = Counter(f for f, l in zip(folds, labels) if l == label)
        assert max(per_fold.values()) - min(per_fold.get(k, 0) for k in range(3)) <= 1
    sizes = Counter(folds)
    assert max(sizes.values()) - min(sizes.values()) <= 1


def test_the_fit_is_the_minimum_of_the_regularized_loss_on_the_raw_features():
    from adapt.tasks.probe import fit_logistic

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(60, 5, generator=gen) * torch.tensor([1.0, 10.0, 0.1, 3.0, 1.0]) + 4.0  # unscaled, off-centre
    y = (x[:, 0] + x[:, 1] / 10 > 4.0).long() + (x[:, 3] > 6.0).long()
    c = 0.5
    w, b = fit_logistic(x, y, 3, c)
    assert ((x @ w.T + b).argmax(1) == y).float().mean() > 0.85
    # at the returned (W, b), the objective on standardized features has zero gradient: a minimum, not a few steps
    mean, std = x.mean(0), x.std(0)
    ws = (w * std).double().requires_grad_()  # the same logits: x @ w.T + b == z @ (w * std).T + (b + w @ mean)
    bs = (b + w @ mean).double().requires_grad_()
    z = ((x - mean) / std).double()
    loss = torch.nn.functional.cross_entropy(z @ ws.T + bs, y, reduction="sum") + (ws * ws).sum() / (2 * c)
    loss.backward()
    assert ws.grad.abs().max() < 1e-3 and bs.grad.abs().max() < 1e-3
    # a weaker penalty fits larger weights
    assert (fit_logistic(x, y, 3, 50.0)[0] * std).norm() > (w * std).norm()


def test_the_rule_keeps_the_best_metric_among_accurate_enough_strengths():
    from adapt.tasks.probe import choose

    rows = [{"c": 0.01, "accuracy": 0.58, "macro_f1": 0.38}, {"c": 0.03, "accuracy": 0.55, "macro_f1": 0.41},
            {"c": 0.1, "accuracy": 0.57, "macro_f1": 0.40}]  # fmt: skip
    assert choose(rows, "macro_f1", 0.56)["c"] == 0.1
    assert choose(rows, "macro_f1", 0.5)["c"] == 0.03
    assert choose(rows, "macro_f1", 0.9)["c"] == 0.01  # none reaches it: the most accurate


def test_mean_pooling_reads_the_mean_of_each_texts_own_tokens_in_a_padded_batch(tiny_llama_dir):
    from adapt.models.config import ModelConfig
    from adapt.tasks.heads import HeadSpec, load_head_model

    cfg = ModelConfig(source=str(tiny_llama_dir), quantization="none", compute_dtype="float32")
    mean_model, tok = load_head_model(cfg, HeadSpec(("a", "b"), shape="sequence", pooling="mean"))
    plain, _ = load_head_model(cfg, HeadSpec(("a", "b"), shape="sequence"))
    plain.score.weight.data.copy_(mean_model.score.weight.data)
    texts = ["one two", "one two three four five six"]
    batch = tok(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        pooled = mean_model(**batch).logits
        for i, text in enumerate(texts):
            ids = tok(text, return_tensors="pt")
            states = plain.model(**ids).last_hidden_state[0]
            assert torch.allclose(pooled[i], plain.score(states.mean(0)), atol=1e-5)


def test_a_cut_body_keeps_only_its_first_layers_and_refuses_too_many(tiny_llama_dir, tiny_gemma3_dir):
    from adapt.models.config import ModelConfig
    from adapt.tasks.heads import HeadSpec, load_head_model

    for source in (tiny_llama_dir, tiny_gemma3_dir):
        cfg = ModelConfig(source=str(source), quantization="none")
        model, _ = load_head_model(cfg, HeadSpec(("a", "b"), shape="sequence", layer=1))
        assert len(model.model.layers) == 1 and model.config.num_hidden_layers == 1
        assert HeadSpec.from_config(model.config).layer == 1
        with pytest.raises(AdaptError, match="train.sequence_head.layer: 9 is more than the 2 decoder layers"):
            load_head_model(cfg, HeadSpec(("a", "b"), shape="sequence", layer=9))


@pytest.mark.parametrize("pooling", ["mean", "last"])
def test_one_read_gives_each_layers_states_as_a_body_cut_there_reads_them(tiny_llama_dir, pooling):
    from adapt.data.types import TextExample
    from adapt.models.config import ModelConfig
    from adapt.tasks.heads import HeadSpec, encode, load_head_model
    from adapt.tasks.probe import pooled_states

    cfg = ModelConfig(source=str(tiny_llama_dir), quantization="none", compute_dtype="float32")
    spec = HeadSpec(("a", "b"), shape="sequence", pooling=pooling)
    examples = [TextExample(prompt=t, completion="a") for t in ("one two", "one two three four five six", "seven")]
    whole, tok = load_head_model(cfg, spec)
    read = pooled_states(whole, tok, examples, 64, 2, [1, 2])
    for layer in (1, 2):
        cut, _ = load_head_model(cfg, HeadSpec(("a", "b"), shape="sequence", pooling=pooling, layer=layer))
        with torch.no_grad():  # what the cut model's head reads: the (pooled) body output at each text's last token
            for i, ex in enumerate(examples):
                ids = torch.tensor([encode(tok, ex.prompt, 64)])
                assert torch.allclose(read[layer][i], cut.model(input_ids=ids).last_hidden_state[0, -1].float(), atol=1e-5)


def test_a_layer_list_needs_a_probe_and_distinct_layers():
    from adapt.recipe import read_recipe

    _, problems = read_recipe(REPO / "recipes" / "healthcare-seqhead.yaml", ["train.sequence_head.layer=[9, 12]"])
    assert any("a list of layers is chosen from by the probe's cross-validation" in p for p in problems)
    _, problems = read_recipe(REPO / "recipes" / "healthcare-probe.yaml", ["train.sequence_head.layer=[9, 9]"])
    assert any("name each layer once" in p for p in problems)


def test_a_probe_with_balanced_sampling_or_several_processes_is_refused():
    from adapt.recipe import read_recipe

    _, problems = read_recipe(REPO / "recipes" / "healthcare-probe.yaml", ["train.class_balance=balanced_sampling"])
    assert any("would leak across the probe's cross-validation folds" in p for p in problems)
    _, problems = read_recipe(REPO / "recipes" / "healthcare-probe.yaml", ["train.sequence_head.probe.c=[0.1, -1]"])
    assert any("every C must be > 0" in p for p in problems)
    _, problems = read_recipe(REPO / "recipes" / "healthcare-probe.yaml", ["train.distributed={config_file: recipes/accelerate/ddp.yaml}"])
    assert any("a probe reads the texts once and fits in one process" in p for p in problems)


def test_validate_says_a_probe_takes_no_training_steps(capsys, monkeypatch):
    from adapt.cli import main

    monkeypatch.chdir(REPO)
    assert main(["validate", "recipes/own-classification.yaml", "--set", PROBE]) == 0
    out = capsys.readouterr().out
    assert "the layer and C chosen by 3-fold cross-validation; no training steps" in out and "full epoch" not in out


# --------------------------------------------------------------------------- the pipeline
def test_the_probe_chooses_c_by_cross_validation_and_records_it(probe_run):
    from adapt.data import load_task

    run, recipe = probe_run
    metrics = json.loads(run.metrics.read_text())
    probe = metrics["probe"]
    assert metrics["task"] == "sequence_classification" and metrics["steps"] == 0
    with contextlib.chdir(REPO):
        task = load_task(recipe.data)
    assert probe["examples"] == len(task.train) + len(task.validation) and len(task.validation) > 0
    assert [(r["layer"], r["c"]) for r in probe["rows"]] == [(1, 0.01), (1, 0.1), (1, 1.0), (2, 0.01), (2, 0.1), (2, 1.0)]
    able = [r for r in probe["rows"] if r["accuracy"] >= probe["min_accuracy"]]
    best = max(able, key=lambda r: r["macro_f1"]) if able else max(probe["rows"], key=lambda r: r["accuracy"])
    assert (probe["chosen_layer"], probe["chosen_c"]) == (best["layer"], best["c"]) and probe["folds"] == 3
    assert metrics["layer"] == best["layer"]
    card = run.card.read_text()
    assert f"layer {best['layer']}, C {best['c']}, chosen by 3-fold cross-validation" in card
    assert "- fitted in " in card and "steps: 0" not in card
    first = "decoder layer" if best["layer"] == 1 else f"{best['layer']} decoder layers"
    assert f"reading the mean of the text after the first {first} (the layers above" in card and "fitted alone on the frozen base (saved" in card


def test_the_adapter_is_the_fitted_head_over_an_untouched_base(probe_run):
    from safetensors import safe_open

    from adapt.data import load_task
    from adapt.tasks.heads import HeadSpec, load_adapted
    from adapt.tasks.probe import pooled_states

    run, recipe = probe_run
    spec = HeadSpec.read(run.adapter)
    layer = json.loads(run.metrics.read_text())["probe"]["chosen_layer"]
    assert (spec.pooling, spec.layer, len(spec.intercept)) == ("mean", layer, len(spec.labels))
    with safe_open(str(run.adapter / "adapter_model.safetensors"), "pt") as f:
        lora_b = [f.get_tensor(k) for k in f.keys() if "lora_B" in k]
    assert lora_b and all(t.abs().max() == 0 for t in lora_b)  # the LoRA stays at its zero start
    model, tok = load_adapted(run, recipe)
    with contextlib.chdir(REPO):
        examples = load_task(recipe.data).test
    features = pooled_states(model.base_model.model, tok, examples, recipe.train.max_seq_len, 4, [layer])[layer]
    head = model.base_model.model.score.modules_to_save["default"]
    expected = features @ head.weight.T + torch.tensor(spec.intercept)
    batch = tok([ex.prompt for ex in examples[:4]], padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits
    assert torch.allclose(logits, expected[:4], atol=1e-3)


def test_every_deliverable_of_a_probe_run_predicts_as_the_adapter(probe_run):
    from transformers import AutoConfig

    run, _ = probe_run
    rows = json.loads(run.eval.read_text())["variants"]
    assert rows["adapter"]["metrics"]["accuracy"] > rows["base"]["metrics"]["accuracy"]
    for name in ("export/nf4-lora", "merged/nf4_dequant"):
        assert rows[name]["agreement"] == 1.0, name
    config = AutoConfig.from_pretrained(str(run.merged("nf4_dequant")))
    layer = json.loads(run.metrics.read_text())["probe"]["chosen_layer"]
    assert config.num_hidden_layers == layer and config.adapt_pooling == "mean" and len(config.adapt_intercept) == config.num_labels
