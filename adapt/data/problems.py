"""Collect every data problem (one line each: where, what, the fix) and raise them together as one DataError."""

from __future__ import annotations

from adapt.errors import DataError

MAX_LINES = 20


class Problems:
    """Lines of a DataError still being gathered; the first ``limit`` are kept, the rest counted."""

    def __init__(self, limit: int = MAX_LINES):
        self.limit = limit
        self.lines: list[str] = []
        self.count = 0

    def add(self, line: str) -> None:
        self.count += 1
        if len(self.lines) < self.limit:
            self.lines.append(line)

    def raise_if_any(self) -> None:
        if not self.count:
            return
        more = self.count - len(self.lines)
        tail = [f"... and {more} more problem(s) like these; fix the ones above and run again"] if more else []
        raise DataError("\n".join(self.lines + tail))
