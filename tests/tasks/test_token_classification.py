"""Token classification (NER) on a decoder: alignment, seqeval scores, training, adapter round-trip, Gemma 3 head."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from adapt.data.types import TokenExample
from adapt.errors import AdaptError
from adapt.recipe import ModelConfig, Recipe
from adapt.runs import RunDir
from adapt.tasks import ner
from adapt.tasks.heads import Gemma3TextForTokenClassification, HeadSpec, load_head_model
from tiny_ner import recipe_for, sentence, write_conll

def tokenizer_of(model_dir: Path):
    from adapt.models import load_tokenizer

    return load_tokenizer(model_dir)


# --------------------------------------------------------------------------- alignment
def test_labels_sit_on_the_first_subword_of_each_word(tiny_llama_dir):
    tok = tokenizer_of(tiny_llama_dir)
    words, tags = sentence(0)
    label2id = {t: i for i, t in enumerate(sorted(set(tags)))}
    row = ner.training_row(tok, TokenExample(tuple(words), tuple(tags)), label2id, 64)
    enc = ner.encode(tok, words)
    labelled = [i for i, label in enumerate(row["labels"]) if label != ner.IGNORE]
    assert labelled == enc.first and sorted(enc.first) == enc.first
    assert [row["labels"][i] for i in labelled] == [label2id[t] for t in tags]
    covered = {i for start, n in zip(enc.first, enc.pieces) for i in range(start, start + n)}
    assert len(covered) == sum(enc.pieces)  # no subword counted for two words
    assert all(not tok.decode([t]).strip() for i, t in enumerate(enc.input_ids) if i not in covered)  # only spaces left
    assert any(p > 1 for p in enc.pieces)  # the diacritics really split, so "first" is a real choice
    for word, start, pieces in zip(words, enc.first, enc.pieces):
        assert tok.decode(enc.input_ids[start : start + pieces]).strip() == word


def test_truncated_words_are_reported_not_labelled(tiny_llama_dir):
    tok = tokenizer_of(tiny_llama_dir)
    words, _ = sentence(1)
    enc = ner.encode(tok, words, max_len=3)
    assert len(enc.input_ids) == 3
    assert enc.first[0] == 0 and enc.first[-1] == -1


def test_fertility_counts_subwords_per_word(tiny_llama_dir):
    tok = tokenizer_of(tiny_llama_dir)
    words, tags = sentence(0)
    stats = ner.fertility(tok, [TokenExample(tuple(words), tuple(tags))])
    assert stats["words"] == len(words)
    assert stats["subwords"] == sum(ner.encode(tok, words).pieces)
    assert stats["fertility"] == round(stats["subwords"] / len(words), 4) > 1


# --------------------------------------------------------------------------- metrics
def test_seqeval_scores_on_a_known_case():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-DATE", "O"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG"], ["B-DATE", "B-PER"]]
    m = ner.ner_metrics(gold, pred)
    # gold PER, LOC, DATE; predicted PER (ok), ORG (wrong), DATE (ok), PER (spurious): P 2/4, R 2/3
    assert m["precision"] == pytest.approx(0.5)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert m["per_type"]["LOC"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert m["per_type"]["PER"]["precision"] == 0.5 and m["per_type"]["PER"]["recall"] == 1.0
    assert m["per_type"]["DATE"]["f1"] == 1.0
    assert m["gold_entities"] == 3


def test_partial_span_is_not_a_match():
    m = ner.ner_metrics([["B-PER", "I-PER"]], [["B-PER", "O"]])
    assert m["f1"] == 0.0


def test_lexicon_baseline_tags_unambiguous_training_spans():
    train = [
        TokenExample(("Ade", "lọ", "sí", "Èkó"), ("B-PER", "O", "O", "B-LOC")),
        TokenExample(("ọjọ́", "Ajé", "Kano"), ("B-DATE", "I-DATE", "B-ORG")),
        TokenExample(("Kano",), ("B-LOC",)),  # Kano is ambiguous (ORG and LOC): left out
    ]
    lexicon = ner.build_lexicon(train)
    assert ("Kano",) not in lexicon and lexicon[("ọjọ́", "Ajé")] == "DATE"
    tags = ner.lexicon_tags(lexicon, ("Èkó", "Kano", "ọjọ́", "Ajé", "Ade"))
    assert tags == ["B-LOC", "O", "B-DATE", "I-DATE", "B-PER"]


# --------------------------------------------------------------------------- training and round trip
@pytest.fixture(scope="module")
def trained_run(tiny_llama_dir, tmp_path_factory):
    from adapt import train

    root = tmp_path_factory.mktemp("ner")
    write_conll(root / "data" / "yor", 24)
    recipe = recipe_for(tiny_llama_dir, root / "data")
    train.run(recipe, root / "run")
    return RunDir(root / "run"), recipe


def word_accuracy(model, tok, labels, examples) -> float:
    pred, _ = ner.predict_tags(model, tok, [ex.tokens for ex in examples], dict(enumerate(labels)), batch_size=8)
    pairs = [(p, g) for ps, ex in zip(pred, examples) for p, g in zip(ps, ex.tags)]
    return sum(p == g for p, g in pairs) / len(pairs)


def test_training_writes_peft_adapter_with_head_metrics_and_card(trained_run):
    from safetensors import safe_open

    run, _ = trained_run
    config = json.loads((run.adapter / "adapter_config.json").read_text())
    assert config["task_type"] == "TOKEN_CLS" and "score" in config["modules_to_save"]
    assert "score" not in config["target_modules"]
    with safe_open(str(run.adapter / "adapter_model.safetensors"), "pt") as f:
        keys = list(f.keys())
        head = [k for k in keys if ".score." in k]
        assert head and all(f.get_tensor(k).dtype == torch.float32 for k in head)
    assert any("lora_A" in k for k in keys)
    metrics = json.loads(run.metrics.read_text())
    assert metrics["steps"] == 12 and metrics["tokens_per_s"] > 0 and metrics["peak_rss_mb"] > 0
    assert 0 < metrics["trainable_params"] < metrics["total_params"]
    losses = [h["loss"] for h in metrics["log_history"] if "loss" in h]
    assert losses[-1] < losses[0]
    assert (run.logs / "train_log.csv").is_file() and (run.checkpoints / "checkpoint-12").is_dir()
    card = run.card.read_text()
    assert "trainable parameters" in card and "CC BY-NC 4.0" in card


def test_training_changes_predictions_and_adapter_round_trips(trained_run):
    from adapt.data import load_task
    from adapt.tasks.heads import load_adapted

    run, recipe = trained_run
    task = load_task(recipe.data)
    spec = HeadSpec.read(run.adapter)
    assert spec == HeadSpec(task.labels, "causal", "first")
    labels = spec.labels
    torch.manual_seed(0)
    untrained, tok = load_head_model(recipe.model, spec)
    before = word_accuracy(untrained, tok, labels, task.test)
    first, _ = load_adapted(run, recipe)
    second, _ = load_adapted(run, recipe)
    after = word_accuracy(first, tok, labels, task.test)
    assert after > before and after > 0.9
    batch = tok(["Ade lọ sí Kano", "Musa lọ sí Èkó ní ọjọ́ Ajé ."], return_tensors="pt", padding=True)
    with torch.no_grad():
        assert torch.equal(first(**batch).logits, second(**batch).logits)
    ents = ner.predict_entities(first, tok, "Bola lọ sí Nairobi ní ọjọ́ Ajé .")
    assert ("Bola", "PER") in ents and ("Nairobi", "LOC") in ents and ("ọjọ́ Ajé", "DATE") in ents


def test_resume_continues_from_the_checkpoint(trained_run, tmp_path):
    import shutil

    from adapt import train

    run, recipe = trained_run
    copy = tmp_path / "resumed"
    shutil.copytree(run.root, copy)
    shutil.rmtree(copy / "checkpoints" / "checkpoint-12")
    more = recipe.model_copy(update={"train": recipe.train.model_copy(update={"max_steps": 12})})
    train.run(more, copy, resume=True)
    metrics = json.loads((copy / "metrics.json").read_text())
    assert metrics["resumed"] is True and metrics["steps"] == 12
    # steps 7-12 ran again from checkpoint-6 (optimizer, scheduler and RNG restored): the same adapter
    from adapt.tasks.heads import load_adapted

    original, tok = load_adapted(run, recipe)
    resumed, _ = load_adapted(RunDir(copy), recipe)
    batch = tok(["Ade lọ sí Kano"], return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(resumed(**batch).logits, original(**batch).logits, atol=1e-3, rtol=1e-3)


def test_eval_writes_lexicon_base_adapter_and_merged_rows(trained_run):
    from adapt import eval as evaluate
    from adapt import merge

    run, _ = trained_run
    merge.run(run.root)
    result = evaluate.run(run.root)
    rows = result["variants"]
    assert set(rows) == {"base", "adapter", "merged/nf4_dequant"}
    assert "lexicon baseline" in rows["base"]["metrics"]["note"]
    assert rows["base"]["metrics"]["f1"] == 1.0  # the test sentences repeat the training spans
    adapter = rows["adapter"]["metrics"]
    assert adapter["f1"] > 0.9 and set(adapter["per_type"]) == {"PER", "LOC", "DATE"}
    assert adapter["subword_fertility"] > 1 and adapter["words_cut"] == 0
    assert rows["merged/nf4_dequant"]["metrics"]["f1"] == pytest.approx(adapter["f1"], abs=0.05)
    assert json.loads(run.eval.read_text())["primary_metric"] == "f1"


@pytest.mark.parametrize("method", [{"name": "peqa"}, {"name": "moe_lora"}])
def test_methods_without_a_head_are_refused(tiny_llama_dir, tmp_path, method):
    from adapt import train

    write_conll(tmp_path / "data" / "yor", 4)
    base = recipe_for(tiny_llama_dir, tmp_path / "data").model_dump()
    recipe = Recipe.model_validate(base | {"method": method})
    with pytest.raises(AdaptError, match="cannot train a classification head.*method.name: qlora"):
        train.run(recipe, tmp_path / "run")


# --------------------------------------------------------------------------- Gemma 3
def test_gemma3_head_loads_on_nf4_trains_and_round_trips(tiny_gemma3_dir, tmp_path):
    import bitsandbytes as bnb
    from peft import PeftModel

    from adapt.methods import qlora
    from adapt.methods.qlora import QLoRAConfig

    labels = ("B-LOC", "B-PER", "I-LOC", "I-PER", "O")
    model, tok = load_head_model(ModelConfig(source=str(tiny_gemma3_dir)), HeadSpec(labels))
    assert isinstance(model, Gemma3TextForTokenClassification)
    assert type(model.score) is torch.nn.Linear and model.score.weight.dtype == torch.float32
    assert isinstance(model.model.layers[0].self_attn.q_proj, bnb.nn.Linear4bit)
    peft_model = qlora.build(QLoRAConfig(name="qlora", rank=4, alpha=8), model)
    batch = tok(["Ade lọ sí Kano"], return_tensors="pt")
    targets = torch.zeros_like(batch["input_ids"])
    peft_model.train()  # as the Trainer does (load_base returns eval mode)
    out = peft_model(**batch, labels=targets)
    out.loss.backward()
    grads = {n for n, p in peft_model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert any("lora_B" in n for n in grads) and any("score" in n for n in grads)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if p.requires_grad:
                p.add_(0.01 * torch.randn_like(p))
    peft_model.eval()
    qlora.save(peft_model, tmp_path / "adapter")
    fresh, _ = load_head_model(ModelConfig(source=str(tiny_gemma3_dir)), HeadSpec(labels))
    loaded = PeftModel.from_pretrained(fresh, str(tmp_path / "adapter")).eval()
    with torch.no_grad():
        assert torch.equal(loaded(**batch).logits, peft_model(**batch).logits)


# --------------------------------------------------------------------------- bidirectional attention
@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_bidirectional_attention_sees_right_context_and_respects_padding(tiny_llama_dir, attn):
    from adapt.tasks.heads import apply_spec

    labels = ("B-LOC", "O")
    model, tok = load_head_model(ModelConfig(source=str(tiny_llama_dir), quantization="none"), HeadSpec(labels))
    model.config._attn_implementation = attn
    a = tok(["Ade lọ sí Kano"], return_tensors="pt")
    b = tok(["Ade lọ sí Nairobi"], return_tensors="pt")
    batch = tok(["Ade lọ sí Kano", "Musa lọ sí Èkó ní ọjọ́ Ajé ."], return_tensors="pt", padding=True)
    with torch.no_grad():
        causal = [model(**x).logits for x in (a, b)]
        assert torch.equal(causal[0][0, 0], causal[1][0, 0])  # the first word cannot see the last
        apply_spec(model, HeadSpec(labels, attention="bidirectional"))
        both = [model(**x).logits for x in (a, b)]
        assert not torch.allclose(both[0][0, 0], both[1][0, 0])  # now it does
        n = a["input_ids"].shape[1]
        torch.testing.assert_close(model(**batch).logits[0, :n], both[0][0], atol=2e-2, rtol=2e-2)  # pads unseen


@pytest.mark.parametrize(("attention", "position", "from_recipe"), [("bidirectional", "first", True), ("causal", "last", False)])
def test_head_options_are_recorded_and_reloaded(tiny_llama_dir, tmp_path, attention, position, from_recipe):
    from adapt.data import load_task
    from adapt import merge
    from adapt.tasks.token_classification import train
    from adapt.recipe import TokenHeadConfig
    from adapt.tasks.heads import load_adapted, load_saved

    write_conll(tmp_path / "data" / "yor", 8)
    recipe = recipe_for(tiny_llama_dir, tmp_path / "data")
    head = TokenHeadConfig(attention=attention, label_position=position) if from_recipe else TokenHeadConfig()
    recipe = recipe.model_copy(update={"train": recipe.train.model_copy(update={"max_steps": 3, "token_head": head})})
    run = RunDir(tmp_path / "run")
    run.root.mkdir()
    run.recipe.write_text(recipe.to_yaml())
    task = load_task(recipe.data)
    options = {} if from_recipe else {"attention": attention, "label_position": position}  # arguments override the recipe
    metrics = train(recipe, run, task, "cpu", **options)
    assert HeadSpec.read(run.adapter) == HeadSpec(task.labels, attention, position)
    assert metrics["label_position"] == position
    model, tok = load_adapted(run, recipe)
    merged, _ = load_saved(merge.run(run.root)[0])
    assert HeadSpec.from_config(merged.config) == HeadSpec.read(run.adapter)
    a, b = (tok([s], return_tensors="pt") for s in ("Ade lọ sí Kano", "Ade lọ sí Nairobi"))
    with torch.no_grad():
        for m in (model, merged):
            sees_right = not torch.allclose(m(**a).logits[0, 0], m(**b).logits[0, 0])
            assert sees_right == (attention == "bidirectional")
        torch.testing.assert_close(merged(**a).logits, model(**a).logits, atol=0.1, rtol=0.05)


def test_last_subword_position(tiny_llama_dir):
    tok = tokenizer_of(tiny_llama_dir)
    words, tags = sentence(0)
    enc = ner.encode(tok, words)
    last = enc.positions("last")
    assert last == [f + n - 1 for f, n in zip(enc.first, enc.pieces)]
    assert last[0] > enc.first[0]  # "Ade" is split
    label2id = {t: i for i, t in enumerate(sorted(set(tags)))}
    row = ner.training_row(tok, TokenExample(tuple(words), tuple(tags)), label2id, 64, "last")
    assert [i for i, label in enumerate(row["labels"]) if label != ner.IGNORE] == last
    with pytest.raises(AdaptError, match="label position 'middle'"):
        enc.positions("middle")
