"""Checked reads of a run directory's files: a damaged file is one AdaptError line naming it and the fix.

A run directory is edited by hand, copied half, or left by a killed process;
every stage that reads one (eval, merge, quantize, serve) reads it through
these functions, so a truncated safetensors, a broken JSON or YAML file or a
deleted adapter ends in exit 2 with one line instead of a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from adapt.errors import AdaptError, short


def damaged(path: Path, reason: object, fix: str) -> AdaptError:
    return AdaptError(f"{path}: damaged ({short(reason)}); {fix}")


def retrain_fix(root: Path) -> str:
    return f"train the run again (`adapt train RECIPE --out {root}`) or restore the file from a copy"


def read_text(path: Path, fix: str, limit: int = 64 * 2**20) -> str:
    """The text of a run file (yaml_io's one bounded reader); a damaged file is one AdaptError line naming it."""
    from adapt.yaml_io import UnreadableFile
    from adapt.yaml_io import read_text as read_bounded

    try:
        return read_bounded(Path(path), limit)
    except UnreadableFile as exc:
        raise damaged(path, exc.reason, fix) from None


def read_json_object(path: Path, default: Any = None, fix: str | None = None) -> Any:
    """A JSON object from ``path`` (``default`` when there is no file); AdaptError when it is not one."""
    path = Path(path)
    if not path.exists():
        return default
    fix = fix or "delete it and run the stage that writes it again"
    try:
        value = json.loads(read_text(path, fix))
    except json.JSONDecodeError as exc:
        raise damaged(path, f"not valid JSON: {exc.msg} at line {exc.lineno}", fix) from None
    if not isinstance(value, dict):
        raise damaged(path, f"a JSON {type(value).__name__}, not an object", fix)
    return value


RETIRED_RUN_KEYS = (("serve", "host"), ("serve", "port"))
"""Keys an older adapt wrote into recipe.resolved.yaml and never read (the demo takes --host/--port on the
command line). A run directory keeps loading after their removal; a recipe a user writes gets the usual
unknown-key error for them."""


def _drop_retired_keys(raw: dict) -> dict:
    for section, key in RETIRED_RUN_KEYS:
        if isinstance(raw.get(section), dict):
            raw[section].pop(key, None)
    return raw


def load_run_recipe(path: Path, root: Path):
    """The Recipe in a run directory's recipe.resolved.yaml, or one line saying what is wrong with the file."""
    import yaml
    from pydantic import ValidationError

    from adapt.recipe import Recipe
    from adapt.yaml_io import bounded_yaml

    fix = f"write it again with `adapt train RECIPE --out {root}` (or fix it by hand; `adapt validate {path}` lists the problems)"
    try:
        raw = bounded_yaml(read_text(path, fix, limit=2**20))
    except yaml.YAMLError as exc:
        raise damaged(path, f"not valid YAML: {getattr(exc, 'problem', None) or exc}", fix) from None
    if not isinstance(raw, dict):
        raise damaged(path, f"a YAML {type(raw).__name__}, not a mapping", fix)
    try:
        return Recipe.model_validate(_drop_retired_keys(raw))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise damaged(path, f"{where}: {first['msg']}", fix) from None


def check_adapter(adapter: Path, root: Path) -> Path:
    """``adapter`` holds a readable config and complete safetensors weights; returns it."""
    fix = retrain_fix(root)
    config = adapter / "adapter_config.json"
    if not config.is_file():
        raise AdaptError(f"{adapter}: no trained adapter here (no adapter_config.json); run `adapt train` for this run first")
    read_json_object(config, fix=fix)
    weights = sorted(adapter.glob("*.safetensors"))
    if not weights:
        raise AdaptError(f"{adapter}: no adapter weights (*.safetensors) beside adapter_config.json; {fix}")
    for path in weights:
        check_safetensors(path, fix)
    return adapter


def check_safetensors(path: Path, fix: str) -> None:
    """Header and size of a safetensors file agree (a truncated or overwritten file does not)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), "pt"):
            pass
    except (SafetensorError, OSError) as exc:
        raise damaged(path, f"not a complete safetensors file: {exc}", fix) from None


def check_model_dir(folder: Path, fix: str) -> Path:
    """A saved model folder (merged/<target>, export/<format>) has a readable config and complete weights."""
    for config in ("config.json", "export.json"):
        if (folder / config).exists():
            read_json_object(folder / config, fix=fix)
    for path in sorted(folder.glob("*.safetensors")):
        check_safetensors(path, fix)
    return folder
