"""Classification through a sequence head (``train.sequence_head``): recipe rules, training, the base row, merging,
the nf4-lora deliverable, prediction, and a Gemma 3 sequence head."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
import torch

from adapt.errors import AdaptError
from adapt.runs import RunDir

REPO = Path(__file__).resolve().parents[2]
TINY = [
    "train.sequence_head={attention: bidirectional}", "train.epochs=8", "train.batch_size=6",
    "train.learning_rate=0.003", "train.logging_steps=1", "train.save_steps=100", "train.class_balance=weighted_loss",
    "export.merge=[nf4_dequant]", "export.formats=[nf4-lora, int8]", "stages=[train, eval, merge, quantize]",
]  # fmt: skip


def own_recipe(model_dir: Path, *changes: str):
    from adapt.checks import load_recipe

    with contextlib.chdir(REPO):
        return load_recipe(REPO / "recipes" / "own-classification.yaml", [f"model.source={model_dir}", *TINY, *changes])


@pytest.fixture(scope="module")
def head_run(tiny_llama_dir, tmp_path_factory):
    from adapt.pipeline import run_all

    recipe = own_recipe(tiny_llama_dir)
    root = tmp_path_factory.mktemp("seq-head") / "run"
    with contextlib.chdir(REPO):
        run_all(recipe, root)
    return RunDir(root), recipe


# --------------------------------------------------------------------------- the recipe
def test_a_sequence_head_makes_the_run_a_sequence_classification_run(tiny_llama_dir):
    from adapt import tasks

    recipe = own_recipe(tiny_llama_dir)
    assert recipe.data.kind == "classification" and recipe.kind == "sequence_classification"
    kind = tasks.of(recipe)
    assert kind.pipeline_tag == "text-classification" and kind.perplexity is None and not kind.gguf
    assert tasks.of(recipe.data).name == "classification"  # the data is read as it always was


def test_a_sequence_head_is_refused_on_other_data_and_on_mixtures():
    from adapt.recipe import read_recipe

    _, problems = read_recipe(REPO / "recipes" / "healthcare-medquad-qlora.yaml", ["train.sequence_head={attention: causal}"])
    assert any("train.sequence_head: is for classification data, and this recipe's data is generation" in p for p in problems)
    _, problems = read_recipe(REPO / "recipes" / "multidomain-cuad-qlora.yaml", ["train.sequence_head={}"])
    assert any("train.sequence_head: one head over a mixture's label sets" in p for p in problems)
    recipe, problems = read_recipe(REPO / "recipes" / "healthcare-qlora.yaml", ["train.sequence_head={}"])
    assert problems == [] and recipe.train.sequence_head.attention == "causal"


def test_a_method_without_a_head_is_refused_before_training(tiny_llama_dir, tmp_path):
    from adapt import train

    recipe = own_recipe(tiny_llama_dir, "method={name: moe_lora, rank: 4, alpha: 8, num_experts: 2, top_k: 1}")
    with contextlib.chdir(REPO), pytest.raises(AdaptError, match="cannot train a classification head"):
        train.run(recipe, tmp_path / "run")


def test_a_long_text_keeps_its_start_token_and_its_end(tiny_llama_dir):
    from adapt.models import load_tokenizer
    from adapt.tasks.heads import encode

    tok = load_tokenizer(tiny_llama_dir)
    text = " ".join(f"w{i}" for i in range(200)) + " Question: is it?"
    full = tok(text)["input_ids"]
    cut = encode(tok, text, 32)
    assert len(full) > 32 and len(cut) == 32 and cut[-8:] == full[-8:]
    if tok.bos_token_id is not None and full[0] == tok.bos_token_id:
        assert cut[0] == tok.bos_token_id
    assert encode(tok, "short", 32) == tok("short")["input_ids"]


# --------------------------------------------------------------------------- training and scoring
def test_training_writes_a_seq_cls_adapter_with_its_head_and_learns_the_labels(head_run):
    from safetensors import safe_open

    run, recipe = head_run
    config = json.loads((run.adapter / "adapter_config.json").read_text())
    assert config["task_type"] == "SEQ_CLS" and "score" in config["modules_to_save"]
    with safe_open(str(run.adapter / "adapter_model.safetensors"), "pt") as f:
        assert any(".score." in k and f.get_tensor(k).dtype == torch.float32 for k in f.keys())
    spec = json.loads((run.adapter / "labels.json").read_text())
    assert spec["shape"] == "sequence" and spec["attention"] == "bidirectional"
    assert spec["labels"] == list(recipe.data.task.labels)
    metrics = json.loads(run.metrics.read_text())
    assert metrics["task"] == "sequence_classification" and metrics["class_balance"] == "weighted_loss"
    losses = [h["loss"] for h in metrics["log_history"] if "loss" in h]
    assert losses[-1] < losses[0]


def test_eval_holds_the_head_against_the_base_models_label_likelihood(head_run):
    run, recipe = head_run
    result = json.loads(run.eval.read_text())
    assert result["task_kind"] == "sequence_classification" and result["primary_metric"] == "macro_f1"
    rows = result["variants"]
    base, adapter = rows["base"]["metrics"], rows["adapter"]["metrics"]
    assert "log-likelihood" in base["note"] and "perplexity" not in adapter
    assert base["n"] == adapter["n"] == len(adapter["predictions"]) == 12
    assert set(adapter["predictions"]) <= set(recipe.data.task.labels)
    assert adapter["accuracy"] > base["accuracy"]  # 6 labels, 42 training clauses: the head learns them
    # the 16-bit merge and the 4-bit deliverable predict as the adapter does
    assert rows["merged/nf4_dequant"]["agreement"] >= 0.9
    assert rows["export/nf4-lora"]["agreement"] == 1.0
    assert rows["export/nf4-lora"]["metrics"]["macro_f1"] == pytest.approx(adapter["macro_f1"])
    card = run.card.read_text()
    assert "pipeline_tag: text-classification" in card
    assert "- head: a new sequence-classification `score` layer over 6 labels (confidentiality, " in card


def test_merged_model_is_a_plain_sequence_classifier(head_run):
    from transformers import AutoConfig

    run, _ = head_run
    config = AutoConfig.from_pretrained(str(run.merged("nf4_dequant")))
    assert config.architectures == ["LlamaForSequenceClassification"] and config.adapt_attention == "bidirectional"


def test_predict_writes_labels_with_their_log_probabilities(head_run, tmp_path):
    from adapt import predict

    run, recipe = head_run
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(json.dumps({"text": t, "label": "payment"}) for t in ("Fees are due in 30 days.", "Pay on receipt.")) + "\n")
    out = tmp_path / "out.jsonl"
    with contextlib.chdir(REPO):
        predict.run(run.root, source, out)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 2 and all(r["prediction"] in recipe.data.task.labels for r in rows)
    for r in rows:
        assert r["gold"] == "payment" and pytest.approx(sum(2.718281828 ** v for v in r["scores"].values()), abs=1e-3) == 1.0


def test_gguf_refuses_a_sequence_head_run_in_one_line_and_the_demo_serves_it_as_a_classifier(head_run):
    from adapt import quantize
    from adapt.demo.runs import discover

    run, _ = head_run
    with pytest.raises(AdaptError, match="gguf-q8_0: a classification run has a text-classification head"):
        quantize.run(run.root, ["gguf-q8_0"])
    served = discover([run.root])
    assert [r.name for r in served.heads] == [run.root.name] and not served.causal and not served.skipped


def test_gemma3_has_a_sequence_head_that_reads_the_last_token(tiny_gemma3_dir):
    from adapt.models.config import ModelConfig
    from adapt.tasks.heads import HeadSpec, load_head_model

    spec = HeadSpec(("yes", "no"), "bidirectional", shape="sequence")
    model, tok = load_head_model(ModelConfig(source=str(tiny_gemma3_dir), quantization="none"), spec)
    assert type(model).__name__ == "Gemma3TextForSequenceClassification"
    assert HeadSpec.from_config(model.config) == spec
    ids = tok(["a b c", "a b c d e f"], padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**ids).logits
    assert logits.shape == (2, 2) and model.score.weight.dtype == torch.float32


def test_the_warnings_on_a_head_run_point_to_nf4_lora_not_to_a_gguf(head_run):
    from adapt import tasks
    from adapt.eval import base_like_warning, retention_warning

    run, recipe = head_run
    line = retention_warning(run, recipe, "export/nf4", 0.7, "macro_f1")
    assert "retention 0.700 < 0.98" in line and "--format nf4-lora" in line and "gguf" not in line
    like_base = {"agreement": 0.45, "agreement_base": 0.97}
    line = base_like_warning("export/nf4", like_base, tasks.of(recipe).gguf)
    assert "predicts like the base" in line and "--format nf4-lora" in line and "gguf" not in line
    assert "gguf-lora" in base_like_warning("export/gguf-q8_0", like_base)  # a causal run's way out
