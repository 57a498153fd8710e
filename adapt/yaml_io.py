"""User files read with bounds: the text reader every recipe and run-file read goes through (size, UTF-8), and
YAML with bounds on nesting depth and the size an alias-laden document expands to.

``yaml.safe_load`` of a 1 KB "billion laughs" file builds a small graph whose
expansion (by pydantic, by a message that repeats the value) is gigabytes; a
document nested thousands of levels deep ends in RecursionError. Both become a
clean ``yaml.YAMLError`` here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

MAX_BYTES = 1 << 20
"""A recipe is a few KB; anything past 1 MiB is a mistake."""
MAX_DEPTH = 32
MAX_NODES = 100_000
"""Nodes the document has once every alias is expanded."""


class BoundedLoader(yaml.SafeLoader):
    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.YAMLError(f"nested more than {MAX_DEPTH} levels deep")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_document(self, node):
        _check_expanded_size(node)
        return super().construct_document(node)


def _check_expanded_size(root) -> None:
    sizes: dict[int, int] = {}

    def size(node) -> int:  # depth is bounded by MAX_DEPTH, so the recursion is too
        if id(node) in sizes:
            if sizes[id(node)] < 0:
                raise yaml.YAMLError("an alias refers to the value that holds it (a value containing itself)")
            return sizes[id(node)]
        sizes[id(node)] = -1  # in progress
        children = node.value if isinstance(node.value, list) else []
        total = 1
        for child in children:
            total += sum(size(n) for n in child) if isinstance(child, tuple) else size(child)
            if total > MAX_NODES:
                raise yaml.YAMLError(f"expands to more than {MAX_NODES} values (aliases repeated inside aliases?)")
        sizes[id(node)] = total
        return total

    size(root)


def bounded_yaml(text: str) -> Any:
    return yaml.load(text, Loader=BoundedLoader)  # noqa: S506 (a SafeLoader subclass)


class UnreadableFile(ValueError):
    """A file that cannot be read as bounded UTF-8 text; ``reason`` is one line, without the path."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def read_text(path: Path, limit: int = MAX_BYTES) -> str:
    """The UTF-8 text of ``path``, at most ``limit`` bytes; UnreadableFile saying why not."""
    path = Path(path)
    try:
        if not path.is_file():
            raise UnreadableFile("no such file")
        size = path.stat().st_size
        if size > limit:
            raise UnreadableFile(f"{size} bytes, more than the {limit} such a file may have")
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnreadableFile(f"not UTF-8 text ({exc.reason} at byte {exc.start}); save the file as UTF-8") from None
    except OSError as exc:
        raise UnreadableFile(f"cannot be read ({exc.strerror or exc})") from None


def read_yaml(path: Path) -> tuple[Any, str | None]:
    """(value, None), or (None, why the file cannot be read as YAML: one line, without the path)."""
    try:
        text = read_text(path)
    except UnreadableFile as exc:
        return None, exc.reason
    try:
        return bounded_yaml(text), None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        reason = " ".join(str(getattr(exc, "problem", None) or exc).split())[:120]
        return None, f"{where}not valid YAML ({reason}); fix the syntax"
