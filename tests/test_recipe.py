"""The recipe schema: strict, every problem at once, overrides, and the CLI's exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from adapt.errors import RecipeError
from adapt.checks import collect_problems, load_recipe
from adapt.recipe import Recipe, parse_overrides

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "domains" / "healthcare" / "sample"


def write_recipe(tmp_path: Path, **changes) -> Path:
    body = {
        "name": "t",
        "domain": "healthcare",
        "method": {"name": "qlora"},
        "data": {"source": "pubmedqa", "path": str(SAMPLE)},
    }
    for key, value in changes.items():
        body[key] = value
    path = tmp_path / "recipe.yaml"
    path.write_text("# adapt run recipe.yaml\n" + yaml.safe_dump(body))
    return path


def test_minimal_recipe_gets_defaults(tmp_path):
    recipe = load_recipe(write_recipe(tmp_path))
    assert recipe.model.source == "smollm2-135m-instruct"
    assert recipe.model.quantization == "nf4" and recipe.model.double_quant
    assert recipe.method.rank == 16
    assert recipe.stages == ["train", "eval", "merge", "quantize"]


def test_every_problem_is_reported_at_once(tmp_path):
    path = write_recipe(
        tmp_path,
        model={"source": "no-such-model"},
        train={"batch_size": "eight", "epochz": 2},
        data={"source": "pubmedqa", "path": str(tmp_path / "missing")},
    )
    _, problems = collect_problems(path)
    text = "\n".join(problems)
    assert "train.batch_size" in text and "'eight'" in text
    assert "train.epochz: unknown key" in text
    # semantic checks run only once the types are right
    fixed = write_recipe(tmp_path, model={"source": "no-such-model"}, data={"source": "pubmedqa", "path": str(tmp_path / "missing")})
    _, problems = collect_problems(fixed)
    text = "\n".join(problems)
    assert "data.path" in text and "does not exist" in text
    assert "model.source" in text and "smollm2-135m-instruct" in text
    assert len(problems) == 2


def test_method_discriminator_and_method_fields(tmp_path):
    path = write_recipe(tmp_path, method={"name": "lora-plus"})
    _, problems = collect_problems(path)
    assert any("method" in p and "qlora" in p for p in problems)
    path = write_recipe(tmp_path, method={"name": "qlora", "num_experts": 4})
    _, problems = collect_problems(path)
    assert any("method.qlora.num_experts: unknown key" in p for p in problems)


def test_overrides_are_typed_and_validated(tmp_path):
    path = write_recipe(tmp_path)
    recipe = load_recipe(path, ["train.max_steps=7", "method.rank=4", "export.formats=[nf4, gguf-q8_0]"])
    assert recipe.train.max_steps == 7 and recipe.method.rank == 4
    assert recipe.export.formats == ["nf4", "gguf-q8_0"]
    with pytest.raises(RecipeError, match="train.max_steps"):
        load_recipe(path, ["train.max_steps=many"])
    _, problems = parse_overrides(["novalue"])
    assert problems and "key.path=value" in problems[0]


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nmethod: [qlora\n")
    _, problems = collect_problems(path)
    assert problems[0].startswith(f"{path}:") and "line" in problems[0]


def test_resolved_recipe_round_trips(tmp_path):
    from adapt.recipe import recipe_from_yaml_text

    recipe = load_recipe(write_recipe(tmp_path), ["train.max_steps=3"])
    assert recipe_from_yaml_text(recipe.to_yaml()) == recipe


@pytest.mark.parametrize("recipe_path", sorted((REPO / "recipes").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_recipes_parse_and_name_their_command(recipe_path):
    first_line = recipe_path.read_text().splitlines()[0]
    assert first_line.startswith("# adapt ") and recipe_path.name in first_line
    if recipe_path.name.startswith("combine-"):  # `adapt merge --combine-recipe FILE`, see tests/stages/test_combine.py
        return
    Recipe.model_validate(yaml.safe_load(recipe_path.read_text()))


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "adapt.cli", *args], capture_output=True, text=True, cwd=REPO, timeout=120)


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"surprise": 1}, "surprise: unknown key"),
        ({"train": {"epochs": "lots"}}, "train.epochs"),
        ({"data": {"source": "pubmedqa", "path": "/nonexistent/pubmedqa"}}, "does not exist"),
        ({"model": {"source": "llama-9000"}}, "model.source"),
    ],
)
def test_cli_validate_bad_recipes_exit_2_without_traceback(tmp_path, change, expected):
    result = run_cli("validate", str(write_recipe(tmp_path, **change)))
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_train_on_bad_recipe_exits_2_and_writes_nothing(tmp_path):
    out = tmp_path / "run"
    result = run_cli("train", str(write_recipe(tmp_path, model={"source": "llama-9000"})), "--out", str(out))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert not out.exists()
