"""A NER run goes through `adapt merge` (merged/<target>/ keeps the trained head), `adapt eval` scores the merged
model beside the adapter, and GGUF exports of it are refused in one line."""

from __future__ import annotations

import json

import pytest
import torch

from adapt import cli
from tiny_runs import masakhaner_recipe, train_run, write_masakhaner


@pytest.fixture(scope="module")
def ner_run(tiny_llama_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("ner-merge")
    return train_run(masakhaner_recipe(tiny_llama_dir, write_masakhaner(root / "data", 24)), root / "run")


def test_merge_writes_a_token_classifier_with_the_trained_head(ner_run, capsys):
    from safetensors.torch import load_file

    assert cli.main(["merge", str(ner_run.root)]) == 0
    merged = ner_run.merged("nf4_dequant")
    assert f"merged model written to {merged}" in capsys.readouterr().out
    config = json.loads((merged / "config.json").read_text())
    labels = json.loads((ner_run.adapter / "labels.json").read_text())["labels"]
    assert config["architectures"][0].endswith("ForTokenClassification")
    assert [config["id2label"][str(i)] for i in range(len(labels))] == labels
    weights = load_file(str(merged / "model.safetensors"))
    adapter = load_file(str(ner_run.adapter / "adapter_model.safetensors"))
    head = next(v for k, v in adapter.items() if k.endswith("score.modules_to_save.default.weight") or k.endswith("score.weight"))
    torch.testing.assert_close(weights["score.weight"].float(), head.float(), atol=1e-2, rtol=1e-2)  # stored in 16 bits
    assert not list(merged.parent.glob(".*tmp*"))  # written through a temporary sibling


def test_eval_scores_the_merged_model_like_the_adapter(ner_run):
    if not (ner_run.merged("nf4_dequant") / "config.json").is_file():
        assert cli.main(["merge", str(ner_run.root)]) == 0
    assert cli.main(["eval", str(ner_run.root)]) == 0
    rows = json.loads(ner_run.eval.read_text())["variants"]
    assert set(rows) == {"base", "adapter", "merged/nf4_dequant"}
    adapter, merged = rows["adapter"]["metrics"], rows["merged/nf4_dequant"]["metrics"]
    assert adapter["f1"] > 0.9
    assert merged["f1"] == pytest.approx(adapter["f1"], abs=0.05)
    assert merged["attention"] == adapter["attention"] and merged["label_position"] == adapter["label_position"]


@pytest.mark.parametrize("fmt", ["gguf-q8_0", "gguf-lora"])
def test_gguf_export_of_a_ner_run_is_one_line(ner_run, capsys, fmt):
    assert cli.main(["quantize", str(ner_run.root), "--format", fmt]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: --format {fmt}: a token_classification run")
    assert "nf4" in err[0] and not (ner_run.root / "export" / fmt).exists()


def test_nf4_lora_of_a_ner_run_tags_exactly_as_the_adapter(ner_run):
    """The NF4 base the head and LoRA trained against, saved in 4 bits, with the adapter (and its head) beside it."""
    assert cli.main(["quantize", str(ner_run.root), "--format", "nf4-lora"]) == 0
    out = ner_run.export("nf4-lora")
    config = json.loads((out / "base" / "config.json").read_text())
    assert config["architectures"][0].endswith("ForTokenClassification") and config["quantization_config"]["load_in_4bit"]
    assert (out / "adapter" / "labels.json").is_file()
    assert cli.main(["eval", str(ner_run.root), "--variant", "adapter", "--variant", "export/nf4-lora"]) == 0
    rows = json.loads(ner_run.eval.read_text())["variants"]
    adapter, exported = rows["adapter"]["metrics"], rows["export/nf4-lora"]["metrics"]
    assert adapter["f1"] > 0.9
    assert {k: exported[k] for k in ("f1", "precision", "recall")} == {k: adapter[k] for k in ("f1", "precision", "recall")}
    assert rows["export/nf4-lora"]["retention"] == 1.0


def test_nf4_lora_of_a_bidirectional_head_reads_the_sentence_as_the_adapter(tiny_llama_dir, tmp_path):
    """The recipe's head attention (bidirectional, as recipes/masakhaner-qlora-gemma3.yaml) travels into nf4-lora:
    the export tags exactly as the adapter and says it reads bidirectionally."""
    recipe = masakhaner_recipe(tiny_llama_dir, write_masakhaner(tmp_path / "data", 24))
    recipe.train.token_head.attention = "bidirectional"
    run = train_run(recipe, tmp_path / "run")
    assert cli.main(["quantize", str(run.root), "--format", "nf4-lora"]) == 0
    assert cli.main(["eval", str(run.root), "--variant", "adapter", "--variant", "export/nf4-lora"]) == 0
    rows = json.loads(run.eval.read_text())["variants"]
    adapter, exported = rows["adapter"]["metrics"], rows["export/nf4-lora"]["metrics"]
    assert adapter["attention"] == exported["attention"] == "bidirectional"
    assert {k: exported[k] for k in ("f1", "precision", "recall")} == {k: adapter[k] for k in ("f1", "precision", "recall")}
    assert rows["export/nf4-lora"]["agreement"] == 1.0
