"""The converted-model cache: where it lives, what counts as complete, and one conversion of a model at a time."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

SOURCE_FILE = "adapt_source.json"
"""Written last into every converted model folder: where it came from (a complete folder has it)."""


def cache_root() -> Path:
    """Where converted models live: ``$ADAPT_CACHE_DIR`` or ``~/.cache/adapt/models``."""
    env = os.environ.get("ADAPT_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "adapt" / "models"


def cached(dest: Path) -> bool:
    """A complete converted model folder (its origin record and config are written)."""
    return (dest / SOURCE_FILE).is_file() and (dest / "config.json").is_file()


@contextlib.contextmanager
def lock(name: str) -> Iterator[None]:
    """Serialize conversions of one model across processes (POSIX flock; no-op elsewhere)."""
    lock_dir = cache_root() / ".locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows: the unique temp dir + rename below still keeps the cache whole
        yield
        return
    with open(lock_dir / f"{name}.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("another process is preparing %s; waiting for it", name)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            for stale in [*cache_root().glob(f".{name}-fetch-*"), *cache_root().glob(f".{name}-tmp-*")]:
                shutil.rmtree(stale, ignore_errors=True)  # left by a killed run; we hold the lock
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def normal_permissions(folder: Path) -> None:
    """mkdtemp makes 0700 and some writers 0600: give the cache the usual umask-based modes."""
    from adapt.runs import current_umask

    umask = current_umask()
    folder.chmod(0o777 & ~umask)
    for f in folder.iterdir():
        f.chmod(0o666 & ~umask)
