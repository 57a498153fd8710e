"""The run directory: its layout, and atomic writes (a killed process never leaves half an artifact)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapt.errors import AdaptError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunDir:
    """Paths inside one run directory (see DESIGN.md, artifact contract)."""

    root: Path

    @property
    def recipe(self) -> Path:
        return self.root / "recipe.resolved.yaml"

    @property
    def adapter(self) -> Path:
        return self.root / "adapter"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    @property
    def eval(self) -> Path:
        return self.root / "eval.json"

    @property
    def card(self) -> Path:
        return self.root / "README.md"

    def merged(self, target: str) -> Path:
        return self.root / "merged" / target

    def export(self, fmt: str) -> Path:
        return self.root / "export" / fmt

    def load_recipe(self):
        """The run's recipe (a damaged file: one AdaptError line)."""
        from adapt.run_files import load_run_recipe

        if not self.recipe.is_file():
            raise AdaptError(f"{self.root}: not a run directory (no recipe.resolved.yaml); run `adapt train RECIPE` first")
        return load_run_recipe(self.recipe, self.root)

    def sweep_leftovers(self) -> list[Path]:
        """Remove what killed writers (train, merge, quantize) left in the run folder, merged/ and export/; the
        stages that write or score a run (train, merge, quantize, eval) call it first."""
        return [path for folder in (self.root, self.root / "merged", self.root / "export") for path in sweep_stale(folder)]

    def require_adapter(self) -> Path:
        """The adapter folder, checked: a readable adapter_config.json and complete safetensors weights."""
        from adapt.run_files import check_adapter

        return check_adapter(self.adapter, self.root)


def temp_prefix(name: str) -> str:
    """Prefix of a temporary sibling of ``name``: hidden, and naming the writing process (see :func:`sweep_stale`)."""
    return f".{name}.tmp-{os.getpid()}-"


_LEFTOVER = re.compile(r"^\..+\.(?:tmp|old)-(\d+)(?:-.*)?$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):  # someone else's process, or no pid at all: leave it alone
        pass
    return True


def is_leftover(path: Path) -> bool:
    """A temporary or replaced sibling (``.<name>.tmp-<pid>-*``, ``.<name>.old-<pid>``): never a run artifact."""
    return _LEFTOVER.match(path.name) is not None


def sweep_stale(folder: Path) -> list[Path]:
    """Remove the leftovers in ``folder`` whose writing process is gone (a killed train, merge or quantize)."""
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for path in folder.iterdir():
        match = _LEFTOVER.match(path.name)
        if not match or _alive(int(match.group(1))):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        log.info("removed %s, left by a killed process", path)
        removed.append(path)
    return removed


@contextlib.contextmanager
def atomic_dir(target: Path) -> Iterator[Path]:
    """Yield a temporary sibling directory; on success it replaces ``target``."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(target.parent)  # what a killed writer left beside it
    tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(target.name), dir=target.parent))
    tmp.chmod(0o777 & ~current_umask())  # mkdtemp makes 0700; a run folder is as readable as any other output
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    replace_dir(tmp, target)


def replace_dir(written: Path, target: Path) -> None:
    """Rename the finished folder ``written`` to ``target``, replacing a folder already there."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    os.replace(written, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def current_umask() -> int:
    """The process umask (reading it means setting it, so it is set straight back)."""
    umask = os.umask(0)
    os.umask(umask)
    return umask


def write_text_atomic(path: Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path.name), dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600; run files read like any other output
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json_atomic(path: Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: Path, default: Any = None) -> Any:
    """A run file's JSON object (``default`` when absent); a damaged file is one AdaptError line naming it."""
    from adapt.run_files import read_json_object

    return read_json_object(path, default)


def dir_size_bytes(path: Path) -> int:
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
