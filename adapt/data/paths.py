"""Data paths as a recipe writes them: ``${ADAPT_DATA_DIR}`` and ``~`` expanded (relative: to the working folder).

Its own module so the recipe's dataset configs and the own-data configs (:mod:`adapt.data.sources`)
resolve paths one way without importing each other.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_DATA_DIR = "../shared/data"
"""``${ADAPT_DATA_DIR}`` when the environment does not set ADAPT_DATA_DIR."""


def resolve_data_path(path: str | None) -> Path | None:
    """``path`` with ``${ADAPT_DATA_DIR}`` and ``~`` expanded; None stays None."""
    if path is None:
        return None
    data_dir = os.environ.get("ADAPT_DATA_DIR", DEFAULT_DATA_DIR)
    return Path(path.replace("${ADAPT_DATA_DIR}", data_dir)).expanduser()
