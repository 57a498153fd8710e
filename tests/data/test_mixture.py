"""`data.source: mixture`: several datasets as one task (reader, recipe checks, per-domain eval on a tiny model)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from adapt.data import load_task
from adapt.errors import AdaptError, DataError
from adapt.checks import collect_problems, load_recipe
from adapt.recipe import MixtureData
from test_data import _private_cache  # noqa: F401 (autouse: readers' caches in a temporary folder)
from test_data import LEGAL_SAMPLE, MEDQUAD_SAMPLE, PUBMEDQA_SAMPLE, REPO


def parts(**changes) -> dict:
    body = {
        "healthcare": {"source": "pubmedqa", "path": str(PUBMEDQA_SAMPLE), "validation_size": 4,
                       "max_context_chars": 200},
        "legal": {"source": "legalbench", "path": str(LEGAL_SAMPLE), "tasks": ["audit_rights", "governing_law"]},
    }
    body.update(changes)
    return body


def mixture(**kw) -> MixtureData:
    return MixtureData.model_validate({"source": "mixture", "parts": kw.pop("parts", parts()), **kw})


# --------------------------------------------------------------------------- reader
def test_parts_merge_tagged_with_their_group():
    data = load_task(mixture())
    health = load_task(mixture().parts["healthcare"])
    legal = load_task(mixture().parts["legal"])
    assert data.kind == "classification"
    for split in ("train", "validation", "test"):
        examples = data.split(split)
        sizes = {"healthcare": len(health.split(split)), "legal": len(legal.split(split))}
        assert Counter(e.group for e in examples) == sizes
        assert {e.id for e in examples} == {f"healthcare:{e.id}" for e in health.split(split)} | {
            f"legal:{e.id}" for e in legal.split(split)
        }
    # each part keeps its own labels (choices per example) and instruction (at the head of its prompts)
    by_group = {e.group: e for e in data.test}
    assert by_group["healthcare"].choices == ("yes", "no", "maybe") and by_group["legal"].choices == ("Yes", "No")
    assert data.labels == ("yes", "no", "maybe", "Yes", "No")
    assert by_group["healthcare"].prompt.startswith(health.instruction + "\n\n")
    assert by_group["legal"].prompt.startswith(legal.instruction + "\n\n")
    assert data.instruction not in (health.instruction, legal.instruction)
    counts = f"train {len(health.train)} / validation {len(health.validation)} / test {len(health.test)}"
    assert f"healthcare (pubmedqa) {counts}" in data.description
    assert f"legal (legalbench) train {len(legal.train)}" in data.description
    assert "MIT" in data.license and "CC BY" in data.license
    # interleaved, not one part after the other
    assert len({e.group for e in data.train[: len(data.train) // 2]}) == 2


def test_mixture_is_seeded_and_part_seeds_are_kept():
    first, again = load_task(mixture()), load_task(mixture())
    assert [e.id for e in first.train] == [e.id for e in again.train]
    reshuffled = load_task(mixture(seed=1))
    assert [e.id for e in reshuffled.train] != [e.id for e in first.train]
    assert sorted(e.id for e in reshuffled.train) == sorted(e.id for e in first.train)  # same examples, new order
    resplit = load_task(mixture(parts=parts(legal={**parts()["legal"], "seed": 1})))
    assert {e.id for e in resplit.test if e.group == "legal"} != {e.id for e in first.test if e.group == "legal"}


def test_both_domains_in_every_split_and_eval_cap_is_stratified_not_a_prefix():
    full = load_task(mixture())
    data = load_task(mixture(max_eval_examples_per_part=6))
    for split in ("train", "validation", "test"):
        assert {e.group for e in data.split(split)} == {"healthcare", "legal"}, split
    assert len(data.train) == len(full.train)  # the cap is for evaluation only
    assert Counter(e.group for e in data.test) == {"healthcare": 6, "legal": 6}
    legal = [e for e in data.test if e.group == "legal"]
    assert {e.completion for e in legal} == {"Yes", "No"}
    assert {e.id.split(":")[1] for e in legal} == {"audit_rights", "governing_law"}  # every task kept
    kept = {e.id for e in data.test}
    in_order = [e.id for e in sorted(full.test, key=lambda e: e.id) if e.group == "healthcare"]
    assert [i for i in in_order if i in kept] != in_order[:6]
    assert "capped at 6 per part" in data.description


def test_part_errors_name_the_part(tmp_path):
    bad = parts(legal={"source": "legalbench", "path": str(tmp_path / "missing")})
    with pytest.raises(DataError, match=r"^data\.parts\.legal \(legalbench\): data\.path: .*missing does not exist"):
        load_task(mixture(parts=bad))
    kinds = parts(legal={"source": "medquad", "path": str(MEDQUAD_SAMPLE)})
    with pytest.raises(DataError, match="differ in task kind.*healthcare is classification, legal is generation"):
        load_task(mixture(parts=kinds))


# --------------------------------------------------------------------------- recipe checks
def write_recipe(tmp_path: Path, data: dict, **changes) -> Path:
    body = {"name": "t", "domain": "multidomain", "method": {"name": "qlora"}, "data": data, **changes}
    path = tmp_path / "recipe.yaml"
    path.write_text("# adapt run recipe.yaml\n" + yaml.safe_dump(body))
    return path


def problems_for(tmp_path: Path, data: dict) -> str:
    recipe, problems = collect_problems(write_recipe(tmp_path, data))
    assert problems, "expected a problem"
    assert all(p.startswith(str(tmp_path / "recipe.yaml") + ": ") and "\n" not in p for p in problems)
    return "\n".join(problems)


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"parts": parts(inner={"source": "mixture", "parts": parts()})},
         "data.mixture.parts.inner: a mixture cannot contain a mixture"),
        ({"parts": parts(legal={**parts()["legal"], "taskz": ["x"]})},
         "data.mixture.parts.legal.legalbench.taskz: unknown key"),
        ({"parts": {}}, "data.mixture.parts: a mixture needs a mapping of at least 2 named parts"),
        ({"parts": {"healthcare": parts()["healthcare"]}}, "at least 2 named parts"),
        ({"parts": list(parts().values())}, "a mixture needs a mapping of at least 2 named parts"),
        ({"parts": parts(legal={})}, "data.mixture.parts.legal: no `source:` key"),
        ({"parts": parts(**{"le gal": parts()["legal"]})}, "data.mixture.parts.le gal.[key]"),
        ({"parts": parts(legal={"source": "medquad", "path": str(MEDQUAD_SAMPLE)})},
         "data.parts: the parts differ in task kind "
         "(healthcare (pubmedqa) is classification, legal (medquad) is generation)"),
        ({"parts": parts(legal={"source": "legalbench", "path": "/nonexistent/legalbench"})},
         "data.parts.legal.path: '/nonexistent/legalbench' does not exist"),
        ({"parts": parts(), "max_eval_examples_per_part": 0}, "data.mixture.max_eval_examples_per_part"),
    ],
)  # fmt: skip
def test_recipe_problems(tmp_path, change, expected):
    assert expected in problems_for(tmp_path, {"source": "mixture", **change})


def test_cli_validate_exits_2_and_shipped_multidomain_recipes_pass(tmp_path):
    bad = write_recipe(tmp_path, {"source": "mixture", "parts": parts(inner={"source": "mixture", "parts": parts()})})
    cmd = [sys.executable, "-m", "adapt.cli", "validate"]
    result = subprocess.run([*cmd, str(bad)], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 2 and "cannot contain a mixture" in result.stderr and "Traceback" not in result.stderr
    shipped = [str(REPO / "recipes" / f"multidomain-{m}.yaml") for m in ("moe_lora", "qlora")]
    env_data = REPO.parent / "shared" / "data"
    if not env_data.is_dir():
        pytest.skip(f"real data not found at {env_data}")
    result = subprocess.run([*cmd, *shipped], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr


def test_overrides_reach_a_part(tmp_path):
    path = write_recipe(tmp_path, {"source": "mixture", "parts": parts()})
    recipe = load_recipe(path, ["data.parts.legal.max_train_examples=5", "data.seed=3"])
    assert recipe.data.parts["legal"].max_train_examples == 5 and recipe.data.seed == 3
    assert list(recipe.data.parts) == ["healthcare", "legal"]


# --------------------------------------------------------------------------- a tiny run: eval and routing per domain
def test_moe_lora_mixture_run_reports_per_domain(tmp_path, tiny_llama_dir):
    from adapt import eval as evaluate
    from adapt import train

    path = write_recipe(
        tmp_path,
        {"source": "mixture", "max_eval_examples_per_part": 3, "parts": parts()},
        model={"source": str(tiny_llama_dir)},
        method={"name": "moe_lora", "num_experts": 2, "top_k": 1, "rank": 2, "alpha": 4},
        train={"max_steps": 1, "batch_size": 2, "max_seq_len": 96, "save_steps": 1},
    )
    run_dir = train.run(load_recipe(path), tmp_path / "run")
    result = evaluate.run(run_dir)
    assert result["n"] == 6 and result["data"].startswith("Mixture of 2 parts")
    for name in ("base", "adapter", "collapsed"):
        metrics = result["variants"][name]["metrics"]
        assert set(metrics["groups"]) == {"healthcare", "legal"}
        assert metrics["groups"]["healthcare"]["n"] == metrics["groups"]["legal"]["n"] == 3
        assert 0.0 <= metrics["macro_f1"] <= 1.0
    routing = json.loads((run_dir / "routing.json").read_text())
    assert set(routing["groups"]) == {"healthcare", "legal"}
    assert "## Intended use" in (run_dir / "README.md").read_text()


def test_demo_skips_a_mixture_run(tmp_path):
    from adapt.demo.runs import discover
    from adapt.recipe import Recipe

    path = write_recipe(tmp_path, {"source": "mixture", "parts": parts()})
    recipe = Recipe.model_validate(yaml.safe_load(path.read_text()))
    run = tmp_path / "runs" / "mix"
    (run / "adapter").mkdir(parents=True)
    (run / "adapter" / "adapter_config.json").write_text("{}")
    (run / "recipe.resolved.yaml").write_text(recipe.to_yaml())
    with pytest.raises(AdaptError, match="nothing to serve: .*mix: a multi-domain run"):
        discover([tmp_path / "runs"])
