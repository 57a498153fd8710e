"""Several processes: launcher detection, config files, `adapt validate`, and a two-process gloo run vs one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from adapt.training import distributed, launch
from adapt.errors import AdaptError

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "domains" / "healthcare" / "sample"
LAUNCH_ENV = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "ACCELERATE_USE_FSDP", "ACCELERATE_USE_DEEPSPEED", "ACCELERATE_DEEPSPEED_ZERO_STAGE")
LOSS_RTOL = 1e-4
"""Per-step loss, two processes x batch 2 vs one x batch 4: only float summation order differs (seen: 2e-5)."""
ADAPTER_RTOL = 2e-2
"""Relative L2 distance of all adapter tensors: bf16 storage rounds at ~4e-3, and Adam's first steps (g / |g|)
turn reassociation noise in near-zero gradients into sign flips of single elements (seen: ~1e-2)."""


@pytest.fixture
def no_launcher(monkeypatch):
    for name in LAUNCH_ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_device_map_and_quant_storage_follow_the_launcher(no_launcher):
    assert distributed.device_map("cuda") == {"": "cuda"} and distributed.engine() == "single"
    assert distributed.quant_storage(torch.bfloat16) == torch.uint8
    no_launcher.setenv("WORLD_SIZE", "4")
    no_launcher.setenv("LOCAL_RANK", "3")
    no_launcher.setenv("RANK", "3")
    assert distributed.device_map("cuda") == {"": "cuda:3"}, "DDP: each process its own GPU, not cuda:0"
    assert distributed.engine() == "ddp" and not distributed.is_main_process()
    no_launcher.setenv("ACCELERATE_USE_FSDP", "true")
    assert distributed.device_map("cuda") is None, "FSDP places and shards the weights itself"
    assert distributed.quant_storage(torch.bfloat16) == torch.bfloat16
    with pytest.raises(AdaptError, match="fsdp shards the weights"):
        distributed.check_method("peqa")
    no_launcher.delenv("ACCELERATE_USE_FSDP")
    no_launcher.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    no_launcher.setenv("ACCELERATE_DEEPSPEED_ZERO_STAGE", "2")
    assert distributed.device_map("cuda") == {"": "cuda:3"} and distributed.quant_storage(torch.float16) == torch.uint8
    no_launcher.setenv("ACCELERATE_DEEPSPEED_ZERO_STAGE", "3")
    assert distributed.shards_weights() and distributed.quant_storage(torch.float16) == torch.float16


def test_batch_metrics_state_the_global_batch():
    class Args:
        world_size, per_device_train_batch_size, gradient_accumulation_steps = 8, 2, 4

    assert distributed.batch_metrics(Args)["global_batch_size"] == 64


@pytest.mark.parametrize(
    ("text", "name", "engine", "stage"),
    [
        ("distributed_type: MULTI_GPU\nnum_processes: 2\n", "ddp.yaml", "ddp", None),
        ("distributed_type: FSDP\nfsdp_config: {fsdp_version: 2, fsdp_cpu_ram_efficient_loading: true}\n", "fsdp.yaml", "fsdp", None),
        ("distributed_type: DEEPSPEED\ndeepspeed_config: {zero_stage: 3, zero3_init_flag: true}\n", "z3.yaml", "deepspeed", 3),
        ('{"zero_optimization": {"stage": 2}, "train_micro_batch_size_per_gpu": "auto"}', "ds.json", "deepspeed", 2),
    ],
)
def test_read_config_recognizes_each_engine(tmp_path, text, name, engine, stage):
    path = tmp_path / name
    path.write_text(text)
    cfg = launch.read_config(path)
    assert (cfg.engine, cfg.zero_stage) == (engine, stage)
    flags = launch.launch_args(cfg, 4)
    assert flags[-2:] == ["--num_processes", "4"] and str(path) in flags


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "no such file"),
        ("distributed_type: MULTI_GPU\nnum_procs: 2\n", "unknown keys"),
        ("distributed_type: SIDEWAYS\n", "SIDEWAYS"),
        ("distributed_type: [MULTI_GPU\n", "not a valid accelerate or DeepSpeed config"),
        ("distributed_type: XLA\n", "not supported by adapt"),
        ("num_processes: 2\n", "distributed_type"),
        ("distributed_type: DEEPSPEED\ndeepspeed_config: {zero_stage: three}\n", "zero_stage is 'three'"),
    ],
)
def test_read_config_rejects_missing_and_malformed_files_in_one_line(tmp_path, text, message):
    path = tmp_path / "accelerate.yaml"
    if text is not None:
        path.write_text(text)
    with pytest.raises(AdaptError, match=message) as err:
        launch.read_config(path)
    assert "\n" not in str(err.value)


def _no_validation() -> dict:
    """Both runs keep their last step's adapter (validation, where adapt has it, would pick the best one)."""
    from adapt.recipe import TrainConfig

    return {"eval_steps": 0} if "eval_steps" in TrainConfig.model_fields else {}


def _recipe(tmp_path: Path, model_dir: Path, **train) -> Path:
    body = {
        "name": "tiny-ddp",
        "domain": "healthcare",
        "model": {"source": str(model_dir), "compute_dtype": "float32"},
        "method": {"name": "qlora", "rank": 4, "alpha": 8, "dropout": 0.0},  # no dropout: the processes' RNGs differ
        "data": {"source": "pubmedqa", "path": str(SAMPLE), "validation_size": 4, "max_context_chars": 200},
        "train": {"max_steps": 3, "batch_size": 2, "learning_rate": 0.01, "lr_scheduler": "constant", "warmup_ratio": 0.0,
                  "max_seq_len": 96, "logging_steps": 1, "save_steps": 3, "device": "cpu", **_no_validation(), **train},
    }  # fmt: skip
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def _accelerate_config(tmp_path: Path, text: str = "distributed_type: MULTI_GPU\nnum_processes: 2\n") -> Path:
    path = tmp_path / "accelerate.yaml"
    path.write_text(text)
    return path


def _validate(capsys, recipe: Path, *sets: str) -> tuple[int, str]:
    from adapt.cli import main

    code = main(["validate", str(recipe), *[f"--set={s}" for s in sets]])
    return code, capsys.readouterr().err


def test_validate_accepts_a_distributed_recipe_and_rejects_bad_config_files(tmp_path, tiny_llama_dir, capsys):
    config = _accelerate_config(tmp_path)
    recipe = _recipe(tmp_path, tiny_llama_dir, distributed={"config_file": str(config)})
    assert _validate(capsys, recipe) == (0, "")

    code, err = _validate(capsys, recipe, f"train.distributed.config_file={tmp_path / 'missing.yaml'}")
    assert code == 2 and err.count("\n") == 1 and "missing.yaml: no such file" in err and "Traceback" not in err
    config.write_text("distributed_type: MULTI_GPU\nnum_procs: 2\n")
    code, err = _validate(capsys, recipe)
    assert code == 2 and err.count("\n") == 1 and "train.distributed.config_file" in err and "num_procs" in err

    config.write_text("distributed_type: FSDP\nfsdp_config: {fsdp_version: 2}\n")
    code, err = _validate(capsys, recipe, "method.name=moe_lora")
    assert code == 2 and "FSDP shards the weights, but moe_lora" in err
    assert _validate(capsys, recipe)[0] == 0, "QLoRA is the method FSDP shards"


def _adapter(run: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(run / "adapter" / "adapter_model.safetensors"))


def _losses(run: Path) -> list[float]:
    return [h["loss"] for h in json.loads((run / "metrics.json").read_text())["log_history"] if "loss" in h]


def test_two_gloo_processes_match_one_process_with_the_same_global_batch(tmp_path, tiny_llama_dir, no_launcher):
    """accelerate launches 2 CPU processes (gloo) from the recipe's config; 3 steps, then --resume for a 4th."""
    from adapt import train
    from adapt.checks import load_recipe

    recipe = _recipe(tmp_path, tiny_llama_dir, distributed={"config_file": str(_accelerate_config(tmp_path))})
    ddp = tmp_path / "ddp"
    env = {k: v for k, v in os.environ.items() if k not in LAUNCH_ENV and not k.startswith("ACCELERATE_")}
    cli = [sys.executable, "-m", "adapt.cli", "train", str(recipe), "--out", str(ddp)]
    for extra in ([], ["--resume", "--set", "train.max_steps=4"]):
        done = subprocess.run(cli + extra, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
    single = train.run(load_recipe(recipe, ["train.batch_size=4", "train.distributed=null", "train.max_steps=4"]), tmp_path / "one")

    metrics = json.loads((ddp / "metrics.json").read_text())
    assert (metrics["engine"], metrics["world_size"], metrics["global_batch_size"], metrics["steps"]) == ("ddp", 2, 4, 4)
    assert metrics["resumed"] is True
    assert json.loads((single / "metrics.json").read_text())["global_batch_size"] == 4
    assert _losses(ddp) == pytest.approx(_losses(single), rel=LOSS_RTOL) and len(_losses(ddp)) == 4

    a, b = _adapter(ddp), _adapter(single)
    assert sorted(a) == sorted(b) and all(a[k].dtype == b[k].dtype and a[k].shape == b[k].shape for k in a)
    diff = torch.cat([(a[k].float() - b[k].float()).flatten() for k in a]).norm()
    assert diff <= ADAPTER_RTOL * torch.cat([b[k].float().flatten() for k in b]).norm()
    configs = [json.loads((run / "adapter" / "adapter_config.json").read_text()) for run in (ddp, single)]
    assert [c | {"target_modules": sorted(c["target_modules"])} for c in configs] == [configs[1] | {"target_modules": sorted(configs[1]["target_modules"])}] * 2

    rows = (ddp / "logs" / "train_log.csv").read_text().splitlines()
    assert len(rows) == 1 + 4, "rank 0 alone logs: one header, one row per step"
    assert sorted(p.name for p in (ddp / "checkpoints").glob("checkpoint-*")) == ["checkpoint-3", "checkpoint-4"]


@pytest.mark.parametrize("path", sorted((REPO / "recipes" / "launch").iterdir()), ids=lambda p: p.name)
def test_the_launch_configs_the_readme_names_are_valid(path):
    engines = {"ddp.yaml": ("ddp", None), "zero2.json": ("deepspeed", 2), "fsdp-qlora.yaml": ("fsdp", None), "deepspeed-zero3.yaml": ("deepspeed", 3)}
    cfg = launch.read_config(path)
    assert (cfg.engine, cfg.zero_stage) == engines[path.name]
    assert f"`{path.name}`" in (REPO / "README.md").read_text()
