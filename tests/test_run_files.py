"""Issue 13, item 4: every damaged file of a run directory, for every command that reads run directories.

Each (command, damage) pair ends in exit 0 (the command does not read that file) or exit 2 with one
`error:` line naming the file; never a traceback. One damaged run never stops the demo from serving others.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from adapt import cli
from adapt.checks import load_recipe

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "domains" / "healthcare" / "sample"


@pytest.fixture(scope="module")
def good_run(tmp_path_factory, tiny_llama_dir) -> Path:
    """A trained, merged and evaluated tiny QLoRA run."""
    from adapt import eval as evaluate
    from adapt import merge, train

    body = {
        "name": "tiny-files", "domain": "healthcare",
        "model": {"source": str(tiny_llama_dir)},
        "method": {"name": "qlora", "rank": 4, "alpha": 8},
        "data": {"source": "pubmedqa", "path": str(SAMPLE), "validation_size": 4, "max_context_chars": 200},
        "train": {"max_steps": 1, "batch_size": 2, "max_seq_len": 96, "save_steps": 10},
        "eval": {"limit": 2, "perplexity_examples": 0},
        "export": {"merge": ["nf4_dequant"], "formats": ["nf4"]},
    }  # fmt: skip
    root = tmp_path_factory.mktemp("files")
    (root / "recipe.yaml").write_text(yaml.safe_dump(body))
    run = train.run(load_recipe(root / "recipe.yaml"), root / "good")
    merge.run(run)
    evaluate.run(run)
    shutil.rmtree(run / "checkpoints")
    return run


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


DAMAGE = {
    "truncated-adapter": ("adapter/adapter_model.safetensors", truncate),
    "broken-adapter-config": ("adapter/adapter_config.json", lambda p: p.write_text('{"peft_type": "LORA", "r": ')),
    "garbage-eval": ("eval.json", lambda p: p.write_bytes(b"\x00\xff garbage")),
    "non-object-eval": ("eval.json", lambda p: p.write_text("[1, 2, 3]")),
    "garbage-recipe": ("recipe.resolved.yaml", lambda p: p.write_text("name: [unclosed\n  domain: {")),
    "deleted-adapter": ("adapter", shutil.rmtree),
    "truncated-merged": ("merged/nf4_dequant/model.safetensors", truncate),
}
READS = {
    "eval": set(DAMAGE),
    "merge": {"truncated-adapter", "broken-adapter-config", "garbage-recipe", "deleted-adapter"},
    "quantize": {"garbage-recipe", "truncated-merged"},
    "serve": set(DAMAGE) - {"truncated-merged"},
}
ARGS = {"eval": ["--limit", "2"], "merge": [], "quantize": ["--format", "nf4"], "serve": []}


def damaged_copy(good_run: Path, tmp_path: Path, damage: str) -> tuple[Path, Path]:
    run = Path(shutil.copytree(good_run, tmp_path / "run"))
    relative, spoil = DAMAGE[damage]
    spoil(run / relative)
    return run, run / relative


@pytest.mark.parametrize("command", list(READS))
@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_run_file_is_one_error_line(good_run, tmp_path, capsys, command, damage):
    run, spoiled = damaged_copy(good_run, tmp_path, damage)
    if damage not in READS[command] and command == "serve":
        pytest.skip("serve would start serving (it does not read merged/); the demo test below covers a good run")
    code = cli.main([command, str(run), *ARGS[command]])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert "Traceback" not in err
    if damage in READS[command]:
        assert code == 2 and len(errors) == 1, err
        named = run if damage == "deleted-adapter" and command == "serve" else spoiled  # serve: "RUN: no trained adapter"
        assert str(named) in errors[0], errors[0]
        assert len(errors[0].replace(str(run), "RUN")) < 320 and ";" in errors[0]  # the file, what is wrong; the fix
    else:
        assert code == 0 and not errors, err


def test_the_demo_serves_the_good_runs_and_lists_a_damaged_one_with_the_reason(good_run, tmp_path):
    from adapt.demo.runs import discover

    bad, _ = damaged_copy(good_run, tmp_path, "garbage-eval")
    runs = discover([good_run, bad])
    assert [r.run.root for r in runs.all] == [good_run.resolve()]
    (line,) = runs.skipped
    assert line.startswith("unavailable: ") and str(bad / "eval.json") in line and "damaged (not UTF-8" in line


def test_run_files_get_the_usual_modes(tmp_path):
    """mkstemp/mkdtemp make 0600/0700; eval.json, metrics.json, README.md and artifact folders read like any output."""
    import os

    from adapt.runs import atomic_dir, write_json_atomic

    old = os.umask(0o022)
    try:
        write_json_atomic(tmp_path / "eval.json", {"a": 1})
        with atomic_dir(tmp_path / "adapter") as tmp:
            (tmp / "adapter_config.json").write_text("{}")
    finally:
        os.umask(old)
    assert (tmp_path / "eval.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "adapter").stat().st_mode & 0o777 == 0o755


def test_a_run_written_before_serve_host_port_were_retired_still_loads(tmp_path):
    """recipe.resolved.yaml files written by an older adapt carry serve.host/port; the run still loads."""
    from adapt.runs import RunDir

    recipe = load_recipe(REPO / "recipes" / "quickstart.yaml", [])
    body = yaml.safe_load(recipe.to_yaml())
    body.setdefault("serve", {}).update({"host": "127.0.0.1", "port": 7860})
    (tmp_path / "recipe.resolved.yaml").write_text(yaml.safe_dump(body))
    loaded = RunDir(tmp_path).load_recipe()
    assert loaded.name == recipe.name and "host" not in loaded.serve.model_dump()
