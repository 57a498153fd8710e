"""Readers for the real dataset formats; ``load_task(data_cfg)`` is the one entry point."""

from __future__ import annotations

import importlib

from adapt.data.types import TaskData, TextExample, TokenExample

__all__ = ["TaskData", "TextExample", "TokenExample", "load_task"]

READERS = {
    "pubmedqa": "pubmedqa", "medquad": "medquad", "legalbench": "legalbench", "masakhaner": "conll", "mixture": "mixture",
    "file": "own", "hub": "own",
}
"""``data.source`` -> the module under adapt/data/ whose ``load(cfg)`` reads it."""


def load_task(cfg) -> TaskData:
    """Read the dataset a recipe's ``data`` section names."""
    return importlib.import_module(f"adapt.data.{READERS[cfg.source]}").load(cfg)
