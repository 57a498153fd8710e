"""Harmless library messages, silenced where they arise (a filter around the one call, never a global one).

- transformers' LOAD REPORT when a model is loaded with a new head (the classification ``score``): it
  lists the head's weights as MISSING on every run, though a new head has none to load; and, for a body cut after
  N layers (``train.sequence_head.layer``), the layers above as UNEXPECTED. Any other row (another unexpected or
  mismatched key, a missing weight outside the new head) keeps the whole report.
- the ``is_gradient_checkpointing`` FutureWarning transformers 5 raises when peft wraps a model
  (``PeftModel.__init__`` reads the deprecated property; peft has not moved to ``is_activation_checkpointing``).
"""

from __future__ import annotations

import contextlib
import logging
import re
import warnings
from collections.abc import Iterator

LOAD_LOGGER = "transformers.modeling_utils"
"""The logger transformers' ``from_pretrained`` writes its LOAD REPORT to."""
PEFT_WRAP_WARNING = r"`is_gradient_checkpointing` is deprecated"


class _NewHeadReport(logging.Filter):
    """Drops a LOAD REPORT whose every row is a MISSING weight of one of ``heads``, or an UNEXPECTED weight of a
    decoder layer at or above ``layers_from`` (a body cut after that many layers)."""

    def __init__(self, heads: list[str], layers_from: int | None = None):
        super().__init__()
        self.prefixes = tuple(f"{head}." for head in heads)
        self.layers_from = layers_from

    def _expected(self, key: str, status: str) -> bool:
        if key.startswith(self.prefixes) and "MISSING" in status:
            return True
        layer = re.match(r"^[\w.]*?layers\.\{?(\d+)", key)  # "model.layers.12." or "model.layers.{12...29}."
        return self.layers_from is not None and "UNEXPECTED" in status and layer is not None and int(layer[1]) >= self.layers_from

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if "LOAD REPORT" not in text:
            return True
        rows = [[cell.strip() for cell in line.split("|")] for line in text.splitlines() if line.count("|") >= 2]
        keys = [row for row in rows[1:] if row[0]]  # the first row is the table's header
        return not keys or not all(self._expected(key, status) for key, status, *_ in keys)


@contextlib.contextmanager
def new_head_load(heads: list[str] | None, layers_from: int | None = None) -> Iterator[None]:
    """Around a ``from_pretrained`` that adds ``heads`` (new modules), and keeps only the decoder layers below
    ``layers_from``: no LOAD REPORT about the heads' missing weights or the dropped layers'."""
    if not heads:
        yield
        return
    logger, drop = logging.getLogger(LOAD_LOGGER), _NewHeadReport(heads, layers_from)
    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)


@contextlib.contextmanager
def peft_wrap() -> Iterator[None]:
    """Around ``get_peft_model`` / ``PeftModel.from_pretrained``: no ``is_gradient_checkpointing`` FutureWarning."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=PEFT_WRAP_WARNING, category=FutureWarning)
        yield
