"""``train.distributed``: read and check the config file a recipe names, and launch `adapt train` under accelerate.

The file is either an accelerate config (YAML or JSON, as ``accelerate config``
writes it; ``distributed_type`` MULTI_GPU, MULTI_CPU, FSDP or DEEPSPEED) or a
DeepSpeed JSON (has ``zero_optimization``). `adapt train` started without a
launcher re-runs itself as ``accelerate launch <flags> -m adapt.cli train
<run>/recipe.resolved.yaml --out <run>`` and waits; started by a launcher
(accelerate, torchrun) it just trains.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from adapt.training.distributed import ACCELERATE_ENGINES, shard_problem
from adapt.errors import AdaptError

LAUNCHED_ENV = "ADAPT_LAUNCHED"
ACCELERATE_TYPES = ACCELERATE_ENGINES


@dataclass(frozen=True)
class LaunchConfig:
    path: Path
    kind: str
    """``accelerate`` or ``deepspeed`` (a DeepSpeed JSON)."""
    engine: str
    """``single``, ``ddp``, ``fsdp`` or ``deepspeed``."""
    zero_stage: int | None
    num_processes: int | None

    @property
    def shards_weights(self) -> bool:
        return self.engine == "fsdp" or (self.engine == "deepspeed" and self.zero_stage == 3)


def _deepspeed_json(path: Path, raw) -> LaunchConfig:
    if not isinstance(raw, dict):
        raise ValueError("a DeepSpeed config is a JSON object")
    zero = raw.get("zero_optimization", {})
    stage = zero.get("stage", 0) if isinstance(zero, dict) else None
    if stage not in (0, 1, 2, 3):
        raise ValueError(f"zero_optimization.stage is {stage!r}; use 0, 1, 2 or 3")
    return LaunchConfig(path, "deepspeed", "deepspeed", stage, None)


def read_config(path: str | Path) -> LaunchConfig:
    """Parse and check a launch config file; raises AdaptError with one line naming the problem."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise AdaptError(f"{path}: no such file; write one with `accelerate config --config_file {path}` or see README 'Scaling out'")
    import yaml

    from adapt.yaml_io import bounded_yaml

    try:
        if path.suffix == ".json":
            raw = json.loads(path.read_text())
            if isinstance(raw, dict) and "distributed_type" not in raw and "compute_environment" not in raw:
                return _deepspeed_json(path, raw)
        else:
            raw = bounded_yaml(path.read_text())
        if not isinstance(raw, dict) or "distributed_type" not in raw:
            raise ValueError("an accelerate config is a mapping with distributed_type (MULTI_GPU, FSDP, DEEPSPEED, ...)")
        from accelerate.commands.config.config_args import load_config_from_file

        cfg = load_config_from_file(str(path))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise AdaptError(f"{path}: not a valid accelerate or DeepSpeed config (YAML: {getattr(exc, 'problem', exc)}{where})") from None
    except (ValueError, TypeError, KeyError, AttributeError) as exc:  # JSON syntax, unknown keys, bad enum values
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise AdaptError(f"{path}: not a valid accelerate or DeepSpeed config ({first})") from None
    kind = getattr(cfg.distributed_type, "value", str(cfg.distributed_type))
    if kind not in ACCELERATE_TYPES:
        raise AdaptError(f"{path}: distributed_type {kind} is not supported by adapt; use one of {', '.join(ACCELERATE_TYPES)}")
    stage = None
    if kind == "DEEPSPEED":
        ds = cfg.deepspeed_config or {}
        if ds.get("deepspeed_config_file"):
            stage = read_config(ds["deepspeed_config_file"]).zero_stage  # relative to the working directory, as accelerate reads it
        else:
            stage = ds.get("zero_stage", 0)
        if stage not in (0, 1, 2, 3):
            raise AdaptError(f"{path}: deepspeed_config.zero_stage is {stage!r}; use 0, 1, 2 or 3")
    processes = cfg.num_processes if cfg.num_processes and cfg.num_processes > 0 else None
    return LaunchConfig(path, "accelerate", ACCELERATE_TYPES[kind], stage, processes)


def config_problems(where: str, recipe) -> list[str]:
    """Problems with ``recipe.train.distributed`` (for `adapt validate`), each one line."""
    dist = recipe.train.distributed
    if dist is None:
        return []
    try:
        cfg = read_config(dist.config_file)
    except AdaptError as exc:
        return [f"{where}: train.distributed.config_file: {exc}"]
    problem = shard_problem(recipe.method.name, "FSDP" if cfg.engine == "fsdp" else "DeepSpeed ZeRO-3") if cfg.shards_weights else None
    return [f"{where}: train.distributed: {problem}"] if problem else []


def was_launched() -> bool:
    """True when a launcher started this process (or adapt relaunched itself)."""
    return any(name in os.environ for name in (LAUNCHED_ENV, "LOCAL_RANK", "ACCELERATE_MIXED_PRECISION"))


def launch_args(cfg: LaunchConfig, num_processes: int | None) -> list[str]:
    """``accelerate launch`` flags for a config file."""
    if cfg.kind == "deepspeed":
        flags = ["--use_deepspeed", "--deepspeed_config_file", str(cfg.path)]
    else:
        flags = ["--config_file", str(cfg.path)]
    processes = num_processes or cfg.num_processes
    if processes:
        flags += ["--num_processes", str(processes)]
    return flags


def relaunch(recipe_file: Path, run_dir: Path, resume: bool, recipe) -> None:
    """Run `adapt train` on the resolved recipe under ``accelerate launch`` and wait for every process."""
    dist = recipe.train.distributed
    cfg = read_config(dist.config_file)
    cmd = [sys.executable, "-m", "accelerate.commands.launch", *launch_args(cfg, dist.num_processes)]
    cmd += ["-m", "adapt.cli", "train", str(recipe_file), "--out", str(run_dir), *(["--resume"] if resume else [])]
    env = {**os.environ, LAUNCHED_ENV: "1"}
    if recipe.train.device == "cpu" and cfg.engine == "ddp":
        env.setdefault("CUDA_VISIBLE_DEVICES", "")  # gloo on CPU even on a machine with GPUs
    print("launching: " + " ".join(cmd[1:]), file=sys.stderr)
    code = subprocess.run(cmd, env=env).returncode
    if code != 0:
        raise AdaptError(f"distributed training exited with status {code} (launched with {cfg.path}); see the output above")
