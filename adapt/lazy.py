"""``"package.module:function"`` references imported on first call: tables (methods, export formats, stages)
name their callables without importing torch or each other."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Lazy:
    """``"package.module:function"``, imported on the first call (keeps a table free of heavy imports)."""

    target: str

    def resolve(self) -> Callable[..., Any]:
        module, _, name = self.target.partition(":")
        return getattr(importlib.import_module(module), name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.resolve()(*args, **kwargs)
