"""The example recipes for your own data, the forms of a recipe's domain, the experiment trackers and a Hub
dataset source: what `adapt validate` accepts, what it reports (one line each), and what a run directory keeps."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from adapt.checks import collect_problems, load_recipe
from adapt.domains import DomainCard, DomainFile, recipe_domain_card
from adapt.recipe import recipe_from_yaml_text

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "domains" / "examples"
OWN = {"own-instruction": "generation", "own-classification": "classification", "own-ner": "token_classification"}
CARD = {"name": "clinic", "description": "Clinic answers.", "intended_use": "Drafts staff review.",
        "limitations": "Invented clinic.", "license": "CC0-1.0"}  # fmt: skip


def write(tmp_path: Path, body: dict, name: str = "recipe.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(body))
    return path


def own_recipe(**fields) -> dict:
    return {"name": "mine", "domain": CARD, "method": {"name": "qlora"},
            "data": {"source": "file", "path": str(EXAMPLES / "clinic_faq.jsonl"), "task": "instruction"}, **fields}  # fmt: skip


@pytest.mark.parametrize("name", sorted(OWN))
def test_each_example_recipe_validates_with_its_own_card(name, monkeypatch):
    monkeypatch.chdir(REPO)  # the recipes name their files relative to the repository, as the README runs them
    recipe, problems = collect_problems(REPO / "recipes" / f"{name}.yaml")
    assert problems == []
    assert recipe.data.source == "file" and recipe.data.kind == OWN[name]
    assert recipe.data.path.startswith("domains/examples/")
    card = recipe_domain_card(recipe)
    assert card.license == "CC0-1.0"  # the example files' license, not a built-in dataset's
    assert card.intended_use and card.limitations
    assert card.view == {"generation": "qa", "classification": "classification", "token_classification": "ner"}[OWN[name]]
    written = recipe.export.formats
    assert "nf4" not in written  # a 4-bit re-quantization loses a small adapter (see the recipes' comments)
    if OWN[name] == "token_classification":
        assert written == [] and recipe.export.merge == ["nf4_dequant"]


def test_example_recipes_write_their_column_mapping_out(monkeypatch):
    monkeypatch.chdir(REPO)
    instruction = load_recipe(REPO / "recipes/own-instruction.yaml").data.task
    assert (instruction.prompt, instruction.response) == ("prompt", "response")
    classification = load_recipe(REPO / "recipes/own-classification.yaml").data.task
    assert (classification.text, classification.label) == ("text", "label") and len(classification.labels) == 6


def test_a_domain_card_file_is_read_and_kept_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cards").mkdir()
    (tmp_path / "cards" / "clinic.yaml").write_text(yaml.safe_dump(CARD))
    recipe = load_recipe(write(tmp_path, own_recipe(domain={"path": "cards/clinic.yaml"})))
    assert isinstance(recipe.domain, DomainFile)
    assert recipe_domain_card(recipe).name == "clinic"
    kept = recipe_from_yaml_text(recipe.to_yaml())  # recipe.resolved.yaml
    assert kept.domain.path == str(tmp_path / "cards" / "clinic.yaml")
    monkeypatch.chdir(REPO)  # another working folder (adapt serve, adapt eval) still finds the card
    assert recipe_domain_card(kept).license == "CC0-1.0"


def test_an_inline_card_and_a_built_in_name(tmp_path):
    recipe = load_recipe(write(tmp_path, own_recipe()))
    assert isinstance(recipe.domain, DomainCard) and recipe_domain_card(recipe).view == "qa"
    assert recipe_from_yaml_text(recipe.to_yaml()).domain == recipe.domain
    named = load_recipe(write(tmp_path, own_recipe(domain="healthcare"), "named.yaml"))
    assert named.domain == "healthcare"


@pytest.mark.parametrize(
    ("domain", "expected"),
    [
        ("nosuch", "domain 'nosuch': no "),
        (5, "domain: 5 is not a domain; give a card's name in domains/"),
        ({**CARD, "limitations": None}, "domain.limitations: "),
        ({k: v for k, v in CARD.items() if k != "intended_use"}, "domain.intended_use: required field is missing"),
        ({**CARD, "colour": "red"}, "domain.colour: unknown key"),
        ({"path": "missing.yaml"}, "domain.path: 'missing.yaml' is not a file"),
    ],
)
def test_a_bad_domain_is_one_line_naming_the_field(tmp_path, monkeypatch, domain, expected):
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, own_recipe(domain=domain))
    _, problems = collect_problems(path)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{path}: {expected}"), problems[0]


def test_a_card_file_with_problems_lists_each(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "card.yaml").write_text(yaml.safe_dump({"name": "c", "description": "d", "intended_use": "u"}))
    path = write(tmp_path, own_recipe(domain={"path": "card.yaml"}))
    _, problems = collect_problems(path)
    assert [p.split(": ")[3] for p in problems] == ["limitations", "license"]
    assert all(p.startswith(f"{path}: domain: {tmp_path / 'card.yaml'}: ") for p in problems)


# --------------------------------------------------------------------------- train.report_to
@pytest.mark.parametrize(("given", "expected"), [(None, ["tensorboard"]), ("none", []), ("tensorboard", ["tensorboard"]),
                                                 (["tensorboard", "tensorboard"], ["tensorboard"])])  # fmt: skip
def test_report_to_takes_a_name_a_list_or_none(tmp_path, given, expected):
    train = {} if given is None else {"report_to": given}
    assert load_recipe(write(tmp_path, own_recipe(train=train))).train.report_to == expected


def test_a_tracker_that_is_not_installed_is_one_line_naming_the_package(tmp_path, monkeypatch):
    import adapt.checks

    real = importlib.util.find_spec
    monkeypatch.setattr(adapt.checks.importlib.util, "find_spec", lambda name: None if name in ("wandb", "mlflow") else real(name))
    path = write(tmp_path, own_recipe(train={"report_to": ["tensorboard", "wandb", "mlflow"]}))
    _, problems = collect_problems(path)
    assert problems == [
        f"{path}: train.report_to: wandb is not installed; `pip install wandb`, or leave it out of train.report_to",
        f"{path}: train.report_to: mlflow is not installed; `pip install mlflow`, or leave it out of train.report_to",
    ]
    _, problems = collect_problems(write(tmp_path, own_recipe(train={"report_to": ["comet"]})))
    assert problems and "train.report_to.0" in problems[0] and "'tensorboard', 'wandb' or 'mlflow'" in problems[0]


def test_trackers_reach_the_trainer(tmp_path):
    from adapt.runs import RunDir
    from adapt.training.trainer import log_callbacks, trainer_integrations, training_kwargs

    assert trainer_integrations(["tensorboard"]) == "none"  # adapt's own writer, shared with validation
    assert trainer_integrations(["tensorboard", "wandb", "mlflow"]) == ["wandb", "mlflow"]
    recipe = load_recipe(write(tmp_path, own_recipe(train={"report_to": "none"})))
    kwargs = training_kwargs(recipe, RunDir(tmp_path / "run"), "cpu")
    assert kwargs["report_to"] == "none" and kwargs["run_name"] == "mine"
    kinds = lambda report_to: [type(c).__name__ for c in log_callbacks(RunDir(tmp_path / "run"), None, report_to)]  # noqa: E731
    assert kinds(["tensorboard"]) == ["CsvLogCallback", "TensorBoardCallback"]
    assert kinds([]) == ["CsvLogCallback"]


# --------------------------------------------------------------------------- source: hub
def hub_recipe(tmp_path: Path) -> Path:
    data = {"source": "hub", "dataset": "example-org/clinic-faq", "config": "en",
            "task": {"type": "instruction", "prompt": "question", "response": "answer"}}  # fmt: skip
    return write(tmp_path, own_recipe(data=data), "hub.yaml")


def test_a_hub_dataset_with_a_column_mapping_validates_without_network(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    recipe, problems = collect_problems(hub_recipe(tmp_path))
    assert problems == []
    assert (recipe.data.dataset, recipe.data.task.prompt, recipe.data.task.response) == ("example-org/clinic-faq", "question", "answer")


def test_training_on_a_hub_dataset_offline_fails_fast_naming_the_local_file(tmp_path):
    env = {"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "HOME": str(Path.home()), "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "adapt.cli", "train", str(hub_recipe(tmp_path)), "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=120, env=env)  # fmt: skip
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 2, done.stderr[-2000:]
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert "example-org/clinic-faq" in lines[0] and "HF_HUB_OFFLINE is set" in lines[0]
    assert "source: file with path: train.jsonl" in lines[0]
    assert not (tmp_path / "run" / "adapter").exists()
