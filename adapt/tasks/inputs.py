"""`adapt predict`'s input file, read with the data layer: the run's own column mapping (``source: file`` /
``hub`` runs) or the kind's default columns (runs on built-in data), the gold column optional.

The data layer (:mod:`adapt.data.files`, :mod:`adapt.data.columns`) reads and maps training data, where
every row carries its gold (response, label, tags). A prediction input may lack that column: then a
placeholder gold is put into each row before mapping and dropped after (``Inputs.gold`` is False), so
every other problem is still the data layer's one line naming the file, the line and the fix.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from adapt.data.columns import ROLES, layout_of, map_table, required_columns
from adapt.data.files import read_file
from adapt.data.label_sets import shared_system, with_choices
from adapt.data.problems import Problems
from adapt.data.sources import EXTENSIONS, ClassificationTask, InstructionTask, Task, TokenClassificationTask
from adapt.data.table import Row, Table
from adapt.errors import DataError

GOLD = {"prompt_response": "response", "alpaca": "output"}
"""Instruction layout -> the config field naming its gold column (messages: the last assistant turn)."""
PLACEHOLDER = "-"


@dataclass(frozen=True)
class Inputs:
    """The examples to predict, in file order."""

    examples: list
    """TextExample (classification: with the run's labels as choices) or TokenExample; ``id`` names the row."""
    instruction: str
    """The system prompt the run was trained with."""
    gold: bool
    """Every row carries its gold (the file can be scored)."""


def task_config(data: Any, title: str, labels: tuple[str, ...]):
    """The column mapping of a run's data (its own ``task``), else the kind's defaults; with the run's labels."""
    task = getattr(data, "task", None) or TypeAdapter(Task).validate_python({"type": title})
    if isinstance(task, (ClassificationTask, TokenClassificationTask)) and labels:
        task = task.model_copy(update={"labels": list(labels)})
    return task


def file_format(path: Path, data: Any, task) -> str:
    suffix = path.suffix.lower()
    fmt = EXTENSIONS.get(suffix) or ("conll" if suffix == ".txt" and isinstance(task, TokenClassificationTask) else None)
    fmt = fmt or getattr(data, "format", None)
    if fmt is None:
        raise DataError(f"{path}: cannot tell the format from the extension {suffix or '(none)'!r}; "
                        f"name the file .jsonl, .json, .csv, .tsv, .parquet or .conll")  # fmt: skip
    return fmt


def read_inputs(path: Path, data: Any, title: str, instruction: str, labels: tuple[str, ...], limit: int | None = None) -> Inputs:
    """The rows of ``path`` as examples of the run's kind (``title``: its ``task:`` name), the first ``limit`` only;
    every problem of the file is one line of one DataError."""
    path = Path(path)
    task = task_config(data, title, labels)
    problems = Problems()
    conll = (task.tokens, task.tags) if isinstance(task, TokenClassificationTask) else ("tokens", "tags")
    table = read_file(path, file_format(path, data, task), problems, conll)
    problems.raise_if_any()
    if not table.rows:
        raise DataError(f"{path}: no rows; add one row per example")
    table.rows = table.rows[:limit] if limit else table.rows
    layout = layout_of(task, table.columns) if isinstance(task, InstructionTask) else None
    gold = _fill_gold(task, table, layout, labels)
    mapped = map_table(task, table, layout, problems)
    problems.raise_if_any()
    if isinstance(task, InstructionTask):
        instruction, splits = shared_system(instruction or task.system, {"input": mapped})
        examples = splits["input"]
    elif isinstance(task, ClassificationTask):
        examples = with_choices(mapped, tuple(task.labels or labels))
    else:
        examples = [m.example for m in mapped]
    return Inputs(examples, instruction, gold)


def _fill_gold(task, table: Table, layout: str | None, labels: tuple[str, ...]) -> bool:
    """Put a placeholder gold into rows without one; True when every row had its own."""
    if layout == "messages":
        column = required_columns(task, layout, table.columns)["messages"]
        filled = [_with_answer(row, column) for row in table.rows]
        had = all(row is same for row, same in zip(filled, table.rows))
        table.rows = filled
        return had
    if isinstance(task, InstructionTask):
        column = getattr(task, GOLD[layout]) or GOLD[layout]
        value = lambda row: PLACEHOLDER  # noqa: E731
    elif isinstance(task, ClassificationTask):
        column, value = task.label, lambda row: (task.labels or labels)[0]
    else:
        column, value = task.tags, lambda row: ["O"] * _word_count(row.values.get(task.tokens))
    if column in table.columns:
        return True
    table.rows = [replace(row, values={**row.values, column: value(row)}) for row in table.rows]
    table.columns.append(column)
    return False


def _with_answer(row: Row, column: str) -> Row:
    """A chat row ending without an assistant turn, with a placeholder one (the turns before it are the prompt)."""
    turns = row.values.get(column)
    if isinstance(turns, str):
        try:
            turns = json.loads(turns)
        except json.JSONDecodeError:
            return row  # the data layer reports it
    if not isinstance(turns, list) or not turns or not isinstance(turns[-1], dict):
        return row
    if ROLES.get(str(turns[-1].get("role", turns[-1].get("from", ""))).lower()) == "assistant":
        return row
    return replace(row, values={**row.values, column: [*turns, {"role": "assistant", "content": PLACEHOLDER}]})


def _word_count(value: Any) -> int:
    """Words in a tokens cell as the data layer reads it (a list, a JSON list in a CSV cell, or spaced words)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            value = value.split()
    return len(value) if isinstance(value, (list, tuple)) else 1
