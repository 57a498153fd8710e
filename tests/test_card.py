"""Model cards the Hub reads (front matter through huggingface_hub), portable adapter configs, and domain
cards: built-in, inline or a file, with a user's data labelled only with the user's license."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from huggingface_hub import ModelCard
from huggingface_hub.repocard import metadata_load
from huggingface_hub.repocard_data import model_index_to_eval_results
from pydantic import TypeAdapter, ValidationError

from adapt import card, models
from adapt.data.sources import FileData, HubData
from adapt.domains import NOT_STATED, DomainCard, DomainFile, DomainSpec, domain_card, domain_name, load_domain_card
from adapt.errors import AdaptError
from adapt.recipe import MixtureData, PubMedQAData, Recipe
from adapt.runs import RunDir

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "domains" / "healthcare" / "sample"
EXAMPLES = REPO / "domains" / "examples"
CACHE_PATH = "/root/.cache/adapt/models/smollm2-135m-instruct"
BUILTIN_MARKS = ("MIT", "CC BY", "PubMedQA", "MedQuAD", "qiaojin", "Jin et al", "pubmedqa.github.io")

ADAPTER_CONFIG = {"alpha_pattern": {}, "base_model_name_or_path": CACHE_PATH, "bias": "none", "lora_alpha": 32.0,
                  "peft_type": "LORA", "r": 16, "target_modules": ["q_proj", "v_proj"], "task_type": "CAUSAL_LM"}
METRICS = {"trainable_params": 4884480, "steps": 12, "train_loss": 0.74, "device": "cpu", "selected_step": 12,
           "data_description": "PubMedQA PQA-L bundled sample", "data_license": "MIT (PubMedQA, Jin et al. 2019)"}


def evaluation(kind: str = "classification", primary: str = "macro_f1") -> dict:
    scores = {"macro_f1": 0.41, "accuracy": 0.5, "f1": 0.62, "perplexity": 12.5}
    return {
        "split": "test", "n": 40, "task_kind": kind, "primary_metric": primary,
        "headline_metrics": [primary, "accuracy", "perplexity"],
        "variants": {
            "base": {"metrics": {k: v / 2 for k, v in scores.items()}, "size_bytes": None},
            "adapter": {"metrics": scores, "size_bytes": 10 * 2**20, "retention": 1.0},
        },
    }


def recipe(**changes) -> Recipe:
    body = {"name": "tiny", "domain": "healthcare", "method": {"name": "qlora"},
            "data": {"source": "pubmedqa", "path": str(SAMPLE)}, **changes}
    return Recipe.model_validate(body)


def own(base: Recipe, domain, data) -> Recipe:
    """A recipe with a domain spec and data source the recipe's types take once wired (issue 11)."""
    return base.model_copy(update={"domain": domain, "data": data})


def make_run(tmp_path: Path, metrics: dict | None = METRICS, ev: dict | None = None) -> RunDir:
    run = RunDir(tmp_path / "run")
    (run.adapter).mkdir(parents=True)
    (run.adapter / "adapter_config.json").write_text(json.dumps(ADAPTER_CONFIG, indent=2, sort_keys=True))
    if metrics is not None:
        run.metrics.write_text(json.dumps(metrics))
    if ev is not None:
        run.eval.write_text(json.dumps(ev))
    return run


def written(run: RunDir, r: Recipe) -> tuple[ModelCard, str]:
    card.write(run, r)
    return ModelCard.load(run.card), run.card.read_text(encoding="utf-8")


INLINE = {
    "name": "clinic", "description": "Answers to a made-up clinic's patient questions.", "license": "CC0-1.0",
    "intended_use": "Drafting replies that a nurse reviews before they are sent.",
    "limitations": "Not a medical device; trained on 30 invented question and answer pairs.",
    "datasets": [{"name": "clinic_faq", "title": "Clinic FAQ (self-written)", "license": "CC0-1.0"}],
}


def instruction_data() -> FileData:
    return FileData(source="file", path=str(EXAMPLES / "clinic_faq.jsonl"), task="instruction")


# --------------------------------------------------------------------------- front matter
def test_front_matter_of_an_offline_run_is_hub_metadata(tmp_path):
    run = make_run(tmp_path, ev=evaluation())
    model_card, text = written(run, recipe())
    data = model_card.data
    assert data.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct" and data.library_name == "peft"
    assert data.license == "mit" and data.datasets == ["qiaojin/PubMedQA"] and data.pipeline_tag == "text-generation"
    assert {"adapt", "peft", "qlora", "healthcare", "llama"} <= set(data.tags)
    assert data.to_dict().get("base_model_relation") == "adapter"
    results = {r.metric_type: r for r in data.eval_results}
    assert list(results) == ["macro_f1", "accuracy", "perplexity"]  # the primary metric first, then the headline ones
    primary = results["macro_f1"]
    assert (primary.metric_value, primary.dataset_split, primary.dataset_type, primary.task_type) == (
        0.41, "test", "qiaojin/PubMedQA", "text-classification")
    assert primary.dataset_config == "pqa_labeled" and primary.dataset_name.startswith("PubMedQA")
    # the same YAML through the Hub's plain metadata reader and its model-index parser
    raw = metadata_load(run.card)
    assert raw["base_model"] == data.base_model and raw["license"] == "mit"
    name, parsed = model_index_to_eval_results(raw["model-index"])
    assert name == "tiny" and [r.metric_value for r in parsed] == [0.41, 0.5, 12.5]
    # the body keeps its sections, with intended use and limitations from the domain card
    healthcare = load_domain_card("healthcare")
    for section in ("## Model", "## Data", "## Training", "## Evaluation", "## Intended use", "## Limitations", "## Reproduce"):
        assert section in text
    assert healthcare.intended_use in text and healthcare.limitations in text
    assert "- data license: MIT (PubMedQA, Jin et al. 2019)" in text and "| adapter | 0.4100 | 0.5000 | 12.5000 |" in text
    assert CACHE_PATH not in text


def test_no_eval_yet_means_no_model_index(tmp_path):
    model_card, text = written(make_run(tmp_path), recipe())
    assert model_card.data.eval_results is None and "model-index" not in metadata_load(tmp_path / "run" / "README.md")
    assert "Not evaluated yet" in text


def test_token_classification_run(tmp_path):
    r = recipe(domain="masakhaner", data={"source": "masakhaner", "path": str(REPO / "domains/masakhaner/sample")})
    run = make_run(tmp_path, {**METRICS, "data_license": "CC BY-NC 4.0 (MasakhaNER 2.0)"}, evaluation("token_classification", "f1"))
    model_card, text = written(run, r)
    assert model_card.data.pipeline_tag == "token-classification" and model_card.data.license == "cc-by-nc-4.0"
    assert model_card.data.datasets == ["masakhane/masakhaner2"]
    first = model_card.data.eval_results[0]
    assert (first.task_type, first.metric_type, first.metric_value) == ("token-classification", "f1", 0.62)
    assert first.dataset_config is None  # the card's '<language code>' stands for a config, it is none
    assert "CC BY-NC 4.0" in text


def test_mixture_of_builtin_datasets(tmp_path):
    parts = {"healthcare": {"source": "pubmedqa", "path": str(SAMPLE)},
             "legal": {"source": "legalbench", "path": str(REPO / "domains/legal/sample"), "tasks": ["audit_rights"]}}
    r = recipe(domain="multidomain", data={"source": "mixture", "parts": parts})
    model_card, text = written(make_run(tmp_path, {**METRICS, "data_license": "healthcare: MIT; legal: CC BY 4.0"}), r)
    assert model_card.data.datasets == ["qiaojin/PubMedQA", "nguha/legalbench"]
    assert model_card.data.license == "other" and model_card.data.license_name == "healthcare-mit-legal-cc-by-4.0"
    for name in ("healthcare", "legal"):
        assert load_domain_card(name).limitations in text
    assert "Check each dataset's license." in text


# --------------------------------------------------------------------------- base model
def test_source_hub_id(tmp_path):
    assert models.source_hub_id("smollm2-135m-instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert models.source_hub_id("gemma-3-270m") == "google/gemma-3-270m"
    assert models.source_hub_id("Qwen/Qwen2.5-0.5B") == "Qwen/Qwen2.5-0.5B"
    named = tmp_path / "named"
    named.mkdir()
    (named / "config.json").write_text(json.dumps({"model_type": "llama", "_name_or_path": "org/model"}))
    assert models.source_hub_id(str(named)) == "org/model"
    converted = tmp_path / "converted"  # a folder of adapt's cache, passed as a local directory
    converted.mkdir()
    (converted / "config.json").write_text("{}")
    (converted / models.SOURCE_FILE).write_text(json.dumps({"source": "smollm2-135m-instruct"}))
    assert models.source_hub_id(str(converted)) == "HuggingFaceTB/SmolLM2-135M-Instruct"
    anonymous = tmp_path / "anonymous"
    anonymous.mkdir()
    (anonymous / "config.json").write_text(json.dumps({"_name_or_path": str(named)}))  # a local path is no Hub id
    assert models.source_hub_id(str(anonymous)) is None
    assert models.source_hub_id(str(tmp_path / "model.gguf")) is None and models.source_hub_id("./org/x") is None


def test_hub_id_source_is_the_base_model(tmp_path):
    run, r = make_run(tmp_path), recipe(model={"source": "org/tiny-llm", "quantization": "none"})
    model_card, text = written(run, r)
    assert model_card.data.base_model == "org/tiny-llm"
    assert "[`org/tiny-llm`](https://huggingface.co/org/tiny-llm)" in text
    config = json.loads((tmp_path / "run/adapter/adapter_config.json").read_text())
    assert config == ADAPTER_CONFIG  # writing the card leaves the adapter alone: the train stage makes it portable
    assert card.make_adapter_portable(run, r)
    config = json.loads((tmp_path / "run/adapter/adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "org/tiny-llm"


def test_local_dir_without_hub_id_leaves_base_model_out(tmp_path):
    local = tmp_path / "my-model"
    local.mkdir()
    (local / "config.json").write_text(json.dumps({"model_type": "qwen2"}))
    run, r = make_run(tmp_path), recipe(model={"source": str(local)})
    model_card, text = written(run, r)
    assert card.make_adapter_portable(run, r)  # as the train stage does
    raw = metadata_load(tmp_path / "run" / "README.md")
    assert "base_model" not in raw and "base_model_relation" not in raw and "qwen2" in raw["tags"]
    assert "the local model `my-model`" in text and "no base_model" in text
    assert str(local) not in text.split("## Reproduce")[0]
    config = json.loads((tmp_path / "run/adapter/adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(local)  # the user's own folder, not adapt's cache


# --------------------------------------------------------------------------- adapter_config.json
def test_adapter_config_rewrite_keeps_every_other_field(tmp_path):
    run = make_run(tmp_path)
    path = run.adapter / "adapter_config.json"
    assert card.portable_adapter_config(run.adapter, "HuggingFaceTB/SmolLM2-135M-Instruct")
    after = json.loads(path.read_text())
    assert after.pop("base_model_name_or_path") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert after == {k: v for k, v in ADAPTER_CONFIG.items() if k != "base_model_name_or_path"}
    assert list(json.loads(path.read_text())) == sorted(ADAPTER_CONFIG)  # peft's key order kept
    stamp = path.stat().st_mtime_ns
    assert not card.portable_adapter_config(run.adapter, "HuggingFaceTB/SmolLM2-135M-Instruct")
    assert path.stat().st_mtime_ns == stamp  # already portable: not rewritten
    assert not card.portable_adapter_config(tmp_path / "no-adapter", "org/x")


def test_adapter_config_rewrite_is_atomic(tmp_path, monkeypatch):
    run = make_run(tmp_path)
    path = run.adapter / "adapter_config.json"
    before = path.read_bytes()

    def killed(src, dst):
        raise KeyboardInterrupt("killed while replacing")

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        card.portable_adapter_config(run.adapter, "org/x")
    assert path.read_bytes() == before and sorted(p.name for p in run.adapter.iterdir()) == ["adapter_config.json"]


# --------------------------------------------------------------------------- domain cards
def test_domain_spec_forms():
    spec = TypeAdapter(DomainSpec)
    assert spec.validate_python("healthcare") == "healthcare"
    assert spec.validate_python({"path": "my.yaml"}) == DomainFile(path="my.yaml")
    inline = spec.validate_python(INLINE)
    assert isinstance(inline, DomainCard) and inline.title == "clinic" and inline.view is None
    with pytest.raises(ValidationError, match="no data license"):
        spec.validate_python({k: v for k, v in INLINE.items() if k not in ("license", "datasets")})
    with pytest.raises(ValidationError, match="intended_use"):
        spec.validate_python({k: v for k, v in INLINE.items() if k != "intended_use"})
    with pytest.raises(ValidationError, match="name"):
        spec.validate_python({"path": "my.yaml", "name": "clinic"})
    with pytest.raises(ValidationError, match="String should match pattern"):
        spec.validate_python("../etc")


def test_builtin_inline_and_path_cards(tmp_path, monkeypatch):
    builtin = domain_card("legal", recipe().data)
    assert builtin.view == "classification" and builtin.intended_use and builtin.limitations
    for task, view in (("instruction", "qa"), ("classification", "classification"), ("token_classification", "ner")):
        path = {"instruction": "clinic_faq.jsonl", "classification": "contract_clauses.csv",
                "token_classification": "medication_ner.conll"}[task]
        data = FileData(source="file", path=str(EXAMPLES / path), task=task)
        assert domain_card(DomainCard.model_validate(INLINE), data).view == view  # from the task kind
    assert domain_card(DomainCard.model_validate({**INLINE, "view": "classification"}), instruction_data()).view == "classification"
    (tmp_path / "clinic.yaml").write_text(json.dumps({**INLINE, "title": "Clinic"}))  # JSON is YAML
    monkeypatch.chdir(tmp_path)
    from_file = domain_card(DomainFile(path="clinic.yaml"), instruction_data())
    assert (from_file.name, from_file.title, from_file.license, from_file.view) == ("clinic", "Clinic", "CC0-1.0", "qa")
    assert from_file.directory == tmp_path


def test_domain_card_errors_name_the_file_field_and_fix(tmp_path, monkeypatch):
    data = instruction_data()
    with pytest.raises(AdaptError, match=r"domain 'clinic': no .*domain.yaml; known domains: healthcare, legal, masakhaner.*domain: \{path: FILE\}"):
        domain_card("clinic", data)
    with pytest.raises(AdaptError, match=r"^domain.path: 'missing.yaml' is not a file \(resolved to .*\); fix the path$"):
        domain_card(DomainFile(path="missing.yaml"), data)
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: clinic\ndescription: [unclosed\n")
    with pytest.raises(AdaptError, match=rf"^{bad}:\d+: not valid YAML .*; fix the syntax$"):
        domain_card(DomainFile(path=str(bad)), data)
    bad.write_text("- a list\n")
    with pytest.raises(AdaptError, match="a domain card is a YAML mapping"):
        domain_card(DomainFile(path=str(bad)), data)
    bad.write_bytes("name: café\n".encode("latin-1"))
    with pytest.raises(AdaptError, match="not UTF-8 text .*save the card as UTF-8"):
        domain_card(DomainFile(path=str(bad)), data)
    bad.write_text("name: clinic\ndescription: d\nintended_use: u\nview: table\n")
    with pytest.raises(AdaptError) as info:
        domain_card(DomainFile(path=str(bad)), data)
    lines = str(info.value).splitlines()
    assert all(line.startswith(f"{bad}: ") for line in lines)
    assert any("limitations: Field required" in l for l in lines) and any("view: Input should be" in l for l in lines)
    assert any("license: no data license" in l for l in lines)
    monkeypatch.setattr("adapt.domains.data_kind", lambda data, builtin=None: None)
    with pytest.raises(AdaptError, match="view: unset, and no task kind to derive it from; set view"):
        domain_card(DomainCard.model_validate(INLINE), data)


# --------------------------------------------------------------------------- a user's data, a user's license
def test_users_domain_gets_the_users_license_never_a_builtin_one(tmp_path):
    r = own(recipe(), DomainCard.model_validate(INLINE), instruction_data())
    metrics = {**METRICS, "data_description": "clinic_faq.jsonl, held out test 20%", "data_license": ""}
    model_card, text = written(make_run(tmp_path, metrics, evaluation("generation", "rougeL")), r)
    assert model_card.data.license == "cc0-1.0" and model_card.data.datasets is None
    assert "clinic" in model_card.data.tags and "healthcare" not in model_card.data.tags
    result = model_card.data.eval_results[0]
    assert (result.task_type, result.dataset_type, result.dataset_name) == ("text-generation", "clinic_faq", "Clinic FAQ (self-written)")
    assert "- data license: CC0-1.0" in text and INLINE["intended_use"] in text and INLINE["limitations"] in text
    assert not [mark for mark in BUILTIN_MARKS if mark in text]


def test_own_data_under_a_builtin_domain_is_not_labelled_with_its_datasets(tmp_path):
    r = own(recipe(), "healthcare", instruction_data())
    model_card, text = written(make_run(tmp_path, {**METRICS, "data_description": "clinic_faq.jsonl", "data_license": ""}), r)
    assert model_card.data.license == "unknown" and model_card.data.datasets is None
    assert f"- data license: {NOT_STATED}" in text and load_domain_card("healthcare").limitations in text
    assert not [mark for mark in BUILTIN_MARKS if mark in text]


def test_a_hub_source_names_its_dataset(tmp_path):
    data = HubData(source="hub", dataset="org/clinic-faq", config="en", task="instruction")
    r = own(recipe(), DomainCard.model_validate({k: v for k, v in INLINE.items() if k != "datasets"}), data)
    model_card, text = written(make_run(tmp_path, {**METRICS, "data_license": ""}, evaluation("generation", "rougeL")), r)
    assert model_card.data.datasets == ["org/clinic-faq"] and model_card.data.license == "cc0-1.0"
    assert model_card.data.eval_results[0].dataset_type == "org/clinic-faq"
    assert model_card.data.eval_results[0].dataset_config == "en"
    assert "https://huggingface.co/datasets/org/clinic-faq" in text


def test_mixture_card_is_composed_from_its_parts_cards():
    parts = {"a": PubMedQAData(source="pubmedqa", path=str(SAMPLE)), "b": PubMedQAData(source="pubmedqa", path=str(SAMPLE))}
    composed = domain_card("multidomain", MixtureData(source="mixture", parts=parts))
    healthcare = load_domain_card("healthcare")
    assert composed.name == "multidomain" and [d.name for d in composed.datasets] == ["pubmedqa"]
    assert healthcare.intended_use in composed.intended_use and composed.view == "classification"


def test_domain_name_of_each_form(tmp_path):
    (tmp_path / "clinic.yaml").write_text(json.dumps(INLINE))
    assert domain_name("healthcare") == "healthcare"
    assert domain_name(DomainCard.model_validate(INLINE)) == "clinic"
    assert domain_name(DomainFile(path=str(tmp_path / "clinic.yaml"))) == "clinic"  # no view needed for the name
    with pytest.raises(AdaptError, match="domain.path: .* is not a file"):
        domain_name(DomainFile(path=str(tmp_path / "gone.yaml")))
