"""Rows as read from a user's file or a Hub split, each knowing where it came from (for one-line errors)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Row:
    source: str
    """The file path (or 'org/name split') the row came from."""
    place: str
    """':12' (line 12 of a text file) or ' row 3' (0-based index of a Parquet table or Hub split)."""
    values: dict[str, Any]
    short: str = ""
    """The file's name (or the Hub split): with ``place``, the example's machine-independent id."""
    lines: tuple[int, ...] = ()
    """CoNLL: the line of each word, so a bad tag is reported on its own line."""

    @property
    def where(self) -> str:
        return f"{self.source}{self.place}"

    @property
    def ref(self) -> str:
        return f"{self.short}{self.place}"

    def at(self, index: int) -> str:
        """Where item ``index`` of a list column sits: its own line in CoNLL, else 'row, item N'."""
        if self.lines:
            return f"{self.source}:{self.lines[index]}"
        return f"{self.where} (item {index + 1})"


@dataclass
class Table:
    name: str
    """What the rows were read from, as errors name it."""
    ref: str
    """A short, machine-independent name for example ids (file name, or the Hub split)."""
    rows: list[Row]
    columns: list[str] = field(default_factory=list)
    """Every column seen, in the order first seen."""
