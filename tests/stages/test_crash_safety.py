"""Issue 13, items 1-3: a process killed mid-write loses nothing and poisons nothing; resume is the same run.

Kills are real: a child process trains (or merges, or quantizes) and calls ``os._exit`` at a chosen moment
inside the write, as ``kill -9`` would stop it; the next command must cope with what it left.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from safetensors.torch import load_file

from adapt import cli
from adapt.checks import load_recipe
from adapt.runs import is_leftover
from adapt.training.checkpoints import LOSS_FILE

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "domains" / "healthcare" / "sample"
ADAPTER = "adapter/adapter_model.safetensors"


@pytest.fixture(scope="module")
def recipe_path(tmp_path_factory, tiny_llama_dir) -> Path:
    """A 4-step QLoRA run (LoRA dropout on, cosine schedule) that checkpoints every step."""
    body = {
        "name": "tiny-crash", "domain": "healthcare",
        "model": {"source": str(tiny_llama_dir)},
        "method": {"name": "qlora", "rank": 4, "alpha": 8, "dropout": 0.1},
        "data": {"source": "pubmedqa", "path": str(SAMPLE), "validation_size": 4, "max_context_chars": 200},
        "train": {"max_steps": 4, "batch_size": 2, "learning_rate": 0.01, "max_seq_len": 96, "logging_steps": 1,
                  "save_steps": 1, "save_total_limit": 10},
        "eval": {"limit": 2, "perplexity_examples": 0},
        "export": {"merge": ["nf4_dequant"], "formats": ["nf4"]},
    }  # fmt: skip
    path = tmp_path_factory.mktemp("crash") / "recipe.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


@pytest.fixture(scope="module")
def straight(recipe_path, tmp_path_factory) -> Path:
    """The uninterrupted run every interrupted one is compared with."""
    from adapt import train

    return train.run(load_recipe(recipe_path), tmp_path_factory.mktemp("straight") / "run")


def killed_child(code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh Python; it is expected to end itself with os._exit(9) mid-write."""
    script = tmp_path / "child.py"
    script.write_text("import os, sys\nfrom pathlib import Path\n" + textwrap.dedent(code))
    done = subprocess.run([sys.executable, str(script)], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 9, done.stderr[-3000:]
    return done


def losses(run: Path) -> list[tuple[int, float]]:
    history = json.loads((run / "metrics.json").read_text())["log_history"]
    return [(h["step"], h["loss"]) for h in history if "loss" in h]


def test_kill_during_checkpoint_write_then_resume_reproduces_the_run(recipe_path, straight, tmp_path, caplog):
    """Item 1 + 3: killed while checkpoint-3 is being written, --resume continues from checkpoint-2 (and says so);
    the resumed QLoRA run equals the uninterrupted one bit for bit: losses, adapter bytes and dtype, train_loss."""
    run = tmp_path / "run"
    killed_child(
        f"""
        from transformers import Trainer
        from adapt import train
        from adapt.checks import load_recipe

        original = Trainer._save_rng_state
        def dying(self, output_dir):
            if self.state.global_step == 3:  # weights and optimizer of checkpoint-3 are written, state is not
                os._exit(9)
            return original(self, output_dir)
        Trainer._save_rng_state = dying
        train.run(load_recipe({str(recipe_path)!r}), Path({str(run)!r}))
        """,
        tmp_path,
    )
    left = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert "checkpoint-2" in left and "checkpoint-3" not in left
    assert any(is_leftover(run / "checkpoints" / name) for name in left), left  # the half-written one, hidden

    from adapt import train

    with caplog.at_level(logging.INFO, logger="adapt.training.checkpoints"):
        train.run(load_recipe(recipe_path), run, resume=True)
    assert f"continuing from {run / 'checkpoints' / 'checkpoint-2'}" in caplog.text
    assert not [p for p in (run / "checkpoints").iterdir() if is_leftover(p)]

    assert losses(run) == losses(straight)
    got, want = load_file(str(run / ADAPTER)), load_file(str(straight / ADAPTER))
    assert {k: v.dtype for k, v in got.items()} == {k: v.dtype for k, v in want.items()}
    assert (run / ADAPTER).read_bytes() == (straight / ADAPTER).read_bytes()
    resumed, uninterrupted = (json.loads((d / "metrics.json").read_text()) for d in (run, straight))
    assert resumed["resumed"] is True and resumed["steps"] == uninterrupted["steps"] == 4
    assert resumed["train_loss"] == pytest.approx(uninterrupted["train_loss"], rel=1e-6)
    # the training time counts the killed process's two steps too, kept in checkpoint-2 (tokens/s stays this one's)
    killed_seconds = json.loads((run / "checkpoints" / "checkpoint-2" / LOSS_FILE).read_text())["train_s"]
    assert killed_seconds > 0
    assert resumed["train_runtime_total_s"] == pytest.approx(killed_seconds + resumed["train_runtime_s"], abs=0.5)
    assert uninterrupted["train_runtime_total_s"] == pytest.approx(uninterrupted["train_runtime_s"], abs=1.0)


def test_resume_skips_a_partial_checkpoint_beside_a_complete_one(straight, tmp_path):
    """Item 1 as older versions left it: checkpoint-4 half written (weights only) in place, checkpoint-2 complete."""
    from adapt.training.checkpoints import latest_complete

    folder = tmp_path / "checkpoints"
    shutil.copytree(straight / "checkpoints" / "checkpoint-2", folder / "checkpoint-2")
    (folder / "checkpoint-4").mkdir()
    shutil.copy(straight / "checkpoints" / "checkpoint-4" / "adapter_model.safetensors", folder / "checkpoint-4")
    (folder / "checkpoint-3").mkdir()
    (folder / "checkpoint-3" / "trainer_state.json").write_text("{trunc")
    assert latest_complete(folder) == folder / "checkpoint-2"
    assert latest_complete(tmp_path / "nothing-here") is None


def copy_run(run: Path, to: Path) -> Path:
    shutil.copytree(run, to, ignore=shutil.ignore_patterns("checkpoints", "logs"))
    return to


def eval_variants(run: Path, capsys) -> list[str]:
    assert cli.main(["eval", str(run), "--limit", "2"]) == 0, capsys.readouterr().err
    return list(json.loads((run / "eval.json").read_text())["variants"])


def test_killed_merge_and_quantize_never_poison_eval(straight, tmp_path, capsys):
    """Item 2: a merge killed after writing its weights, then a quantize killed before its manifest: eval scores
    only finished variants, and the next command removes what the killed ones left."""
    run = copy_run(straight, tmp_path / "run")
    killed_child(
        f"""
        from transformers import PreTrainedTokenizerBase
        from adapt import merge
        PreTrainedTokenizerBase.save_pretrained = lambda *a, **k: os._exit(9)  # after the weights, before the tokenizer
        merge.run(Path({str(run)!r}))
        """,
        tmp_path,
    )
    leftovers = [p for p in (run / "merged").iterdir() if is_leftover(p)]
    assert leftovers and (leftovers[0] / "config.json").is_file()  # a loadable-looking half model
    assert eval_variants(run, capsys) == ["base", "adapter"]
    assert not [p for p in (run / "merged").iterdir() if is_leftover(p)]

    assert cli.main(["merge", str(run)]) == 0
    killed_child(
        f"""
        from adapt import quantize
        quantize.dir_size_bytes = lambda path: os._exit(9)  # the export is written, its manifest is not
        quantize.run(Path({str(run)!r}), ["nf4"])
        """,
        tmp_path,
    )
    assert [p for p in (run / "export").iterdir() if is_leftover(p)]
    assert eval_variants(run, capsys) == ["base", "adapter", "merged/nf4_dequant"]
    assert not [p for p in (run / "export").iterdir() if is_leftover(p)]


def test_a_leftover_of_a_live_process_is_kept(tmp_path):
    """Another command still writing (its process alive) keeps its temporary folder; a dead one's goes."""
    from adapt.runs import sweep_stale

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    mine = tmp_path / f".nf4.tmp-{os.getpid()}-abc"
    gone = tmp_path / f".nf4_dequant.tmp-{dead.pid}-xyz"
    old = tmp_path / f".adapter.old-{dead.pid}"
    for folder in (mine, gone, old):
        folder.mkdir()
    (tmp_path / "nf4").mkdir()
    assert sorted(sweep_stale(tmp_path)) == sorted([gone, old])
    assert mine.is_dir() and (tmp_path / "nf4").is_dir()
