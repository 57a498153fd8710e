"""Turn rows into examples through a task's column mapping; each bad value is one problem line.

Instruction rows become prompt -> completion pairs (``TextExample``), classification rows a text with
its gold label (the choices are added once the label set is known, :mod:`adapt.data.label_sets`),
token classification rows words with their tags (``TokenExample``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from adapt.data.problems import Problems
from adapt.data.sources import BIO_TAG, LAYOUTS, ClassificationTask, InstructionTask, TokenClassificationTask
from adapt.data.table import Row, Table
from adapt.data.types import TextExample, TokenExample
from adapt.data_checks import did_you_mean

ROLES = {"user": "user", "human": "user", "assistant": "assistant", "gpt": "assistant", "bot": "assistant",
         "model": "assistant", "system": "system", "tool": "tool", "function": "tool", "observation": "tool"}
SPEAKERS = {"user": "User", "assistant": "Assistant", "tool": "Tool"}
MESSAGE_COLUMNS = ("messages", "conversations")
_BIO = re.compile(BIO_TAG)


@dataclass(frozen=True)
class Mapped:
    """One example and the row it came from (for later checks that name the row)."""

    row: Row
    example: TextExample | TokenExample
    system: str = ""
    """The row's own system turn (messages layout)."""


def layout_of(task: InstructionTask, columns: list[str]) -> str:
    """The instruction layout the config names, else the one the columns show (messages, alpaca, prompt/response)."""
    if task.layout:
        return task.layout
    if any(c in columns for c in MESSAGE_COLUMNS):
        return "messages"
    if "instruction" in columns and "output" in columns:
        return "alpaca"
    return "prompt_response"


def required_columns(task, layout: str | None, columns: list[str]) -> dict[str, str]:
    """Config field -> column name, for every column each row must have."""
    if isinstance(task, InstructionTask):
        if layout == "messages":
            found = next((c for c in MESSAGE_COLUMNS if c in columns), "messages")
            return {"messages": task.messages or found}
        fields = [f for f in LAYOUTS[layout] if f != "input"]
        return {f: getattr(task, f) or f for f in fields}
    if isinstance(task, ClassificationTask):
        need = {"text": task.text, "label": task.label}
        return need | ({"text_pair": task.text_pair} if task.text_pair else {})
    return {"tokens": task.tokens, "tags": task.tags}


def map_table(task, table: Table, layout: str | None, problems: Problems) -> list[Mapped]:
    """Examples of every good row of ``table``; a missing column is one problem for the whole table."""
    need = required_columns(task, layout, table.columns)
    missing = {f: c for f, c in need.items() if c not in table.columns}
    for field, column in missing.items():
        problems.add(
            f"{table.name}: no column {column!r} ({did_you_mean(column, table.columns)}columns: "
            f"{', '.join(table.columns) or 'none'}); set data.task.{field} to the column's name or rename the column"
        )
    if missing:
        return []
    mapper = {InstructionTask: _instruction, ClassificationTask: _classification, TokenClassificationTask: _tokens}
    out = []
    for row in table.rows:
        mapped = mapper[type(task)](task, row, need, layout, problems)
        if mapped is not None:
            out.append(mapped)
    return out


def _text(row: Row, column: str, problems: Problems, optional: bool = False) -> str | None:
    value = row.values.get(column)
    if value is None:
        if not optional:
            problems.add(f"{row.where}: column {column!r} is missing or null; fill it in or delete the row")
        return None
    if isinstance(value, (dict, list)):
        problems.add(f"{row.where}: column {column!r} holds a {type(value).__name__}, not text; put text in it")
        return None
    text = str(value).strip()
    if not text and not optional:
        problems.add(f"{row.where}: column {column!r} is empty; fill it in or delete the row")
        return None
    return text or None


def _instruction(task: InstructionTask, row: Row, need: dict, layout: str, problems: Problems) -> Mapped | None:
    system = ""
    if layout == "messages":
        parsed = _conversation(row, need["messages"], problems)
        if parsed is None:
            return None
        system, prompt, completion = parsed
    elif layout == "alpaca":
        instruction, completion = _text(row, need["instruction"], problems), _text(row, need["output"], problems)
        extra = _text(row, task.input or "input", problems, optional=True)
        if instruction is None or completion is None:
            return None
        prompt = f"{instruction}\n\n{extra}" if extra else instruction
    else:
        prompt, completion = _text(row, need["prompt"], problems), _text(row, need["response"], problems)
        if prompt is None or completion is None:
            return None
    return Mapped(row, TextExample(prompt=prompt, completion=completion, id=row.ref), system)


def _cell_list(value, fallback=None):
    """A cell's value, with a CSV cell's JSON list text parsed (``fallback(text)`` when it is not JSON)."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return fallback(value) if fallback else value


def _turns(row: Row, column: str, problems: Problems) -> list[tuple[str, str]] | None:
    value = _cell_list(row.values.get(column))
    if not isinstance(value, list) or not value:
        problems.add(f"{row.where}: column {column!r} is not a list of chat turns; give it "
                     '[{"role": "user", "content": ...}, {"role": "assistant", "content": ...}]')
        return None
    turns = []
    for number, turn in enumerate(value, 1):
        role = turn.get("role", turn.get("from")) if isinstance(turn, dict) else None
        content = turn.get("content", turn.get("value")) if isinstance(turn, dict) else None
        if isinstance(content, list):  # OpenAI content parts
            content = "\n".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
        if role is None or not isinstance(content, str):
            problems.add(f"{row.where}: column {column!r}, turn {number}: needs role and content (OpenAI) or from "
                         "and value (ShareGPT) keys with text; fix the turn")
            return None
        if str(role).lower() not in ROLES:
            problems.add(f"{row.where}: column {column!r}, turn {number}: role {role!r} is not user, assistant or "
                         "system (ShareGPT: human, gpt, system); fix the role")
            return None
        turns.append((ROLES[str(role).lower()], content.strip()))
    return turns


def _conversation(row: Row, column: str, problems: Problems) -> tuple[str, str, str] | None:
    """(system text, prompt, completion): the last assistant turn answers the turns before it."""
    turns = _turns(row, column, problems)
    if turns is None:
        return None
    last = max((i for i, (role, _) in enumerate(turns) if role == "assistant"), default=None)
    if last is None:
        problems.add(f"{row.where}: column {column!r} has no assistant turn; add the answer the model should learn "
                     "as the last assistant (ShareGPT: gpt) turn")
        return None
    system = "\n\n".join(text for role, text in turns[:last] if role == "system" and text)
    dialog = [(role, text) for role, text in turns[:last] if role != "system"]
    if not turns[last][1] or not any(role == "user" and text for role, text in dialog):
        what = "the last assistant turn is empty" if not turns[last][1] else "no user turn before the last assistant turn"
        problems.add(f"{row.where}: column {column!r}: {what}; fix the conversation")
        return None
    prompt = dialog[0][1] if len(dialog) == 1 else "\n\n".join(f"{SPEAKERS[r]}: {t}" for r, t in dialog)
    return system, prompt, turns[last][1]


def _classification(task: ClassificationTask, row: Row, need: dict, layout: None, problems: Problems) -> Mapped | None:
    text = _text(row, task.text, problems)
    pair = _text(row, task.text_pair, problems) if task.text_pair else None
    label = _text(row, task.label, problems)
    if text is None or label is None or (task.text_pair and pair is None):
        return None
    if task.labels and label not in task.labels:
        problems.add(f"{row.where}: column {task.label!r}: label {label!r} is not in data.task.labels "
                     f"({did_you_mean(label, task.labels)}labels: {', '.join(task.labels)}); "
                     "fix the label or add it to data.task.labels")
        return None
    if pair is not None:
        text = f"{_title(task.text)}: {text}\n{_title(task.text_pair)}: {pair}"
    return Mapped(row, TextExample(prompt=text, completion=label, id=row.ref))


def _title(column: str) -> str:
    return column.replace("_", " ").strip().capitalize()


def _list(row: Row, column: str, problems: Problems) -> list | None:
    value = _cell_list(row.values.get(column), fallback=str.split)  # a CSV cell: a JSON list, else words
    if not isinstance(value, (list, tuple)) or not value:
        problems.add(f"{row.where}: column {column!r} is {'empty' if value in ([], (), '') else 'not a list'}; "
                     "give it one entry per word")
        return None
    return list(value)


def _tokens(task: TokenClassificationTask, row: Row, need: dict, layout: None, problems: Problems) -> Mapped | None:
    tokens, tags = _list(row, task.tokens, problems), _list(row, task.tags, problems)
    if tokens is None or tags is None:
        return None
    if len(tokens) != len(tags):
        problems.add(f"{row.where}: {len(tokens)} tokens but {len(tags)} tags; give every word one tag")
        return None
    names = _tag_names(task, row, tags, problems)
    if names is None:
        return None
    bad = [i for i, tok in enumerate(tokens) if not isinstance(tok, str) or not tok.strip()]
    for i in bad:
        problems.add(f"{row.at(i)}: word {i + 1} in column {task.tokens!r} is empty or not text; fix it")
    return None if bad else Mapped(row, TokenExample(tuple(tokens), tuple(names), id=row.ref))


def _tag_names(task: TokenClassificationTask, row: Row, tags: list, problems: Problems) -> list[str] | None:
    names, ok = [], True
    for i, tag in enumerate(tags):
        if isinstance(tag, int) and not isinstance(tag, bool):
            if not task.labels or not 0 <= tag < len(task.labels):
                problems.add(f"{row.at(i)}: tag {tag} is a number; declare data.task.labels (the tag names, in index order)"
                             + (f" with at least {tag + 1} names" if task.labels else ""))
                ok = False
                continue
            tag = task.labels[tag]
        tag = str(tag).strip()
        if not _BIO.match(tag):
            problems.add(f"{row.at(i)}: tag {tag!r} is not O, B-X or I-X; use BIO tags (e.g. B-DRUG, I-DRUG, O)")
            ok = False
        elif task.labels and tag not in task.labels:
            problems.add(f"{row.at(i)}: column {task.tags!r}: unknown tag {tag!r} ({did_you_mean(tag, task.labels)}"
                         f"data.task.labels: {', '.join(task.labels)}); fix the tag or add it to data.task.labels")
            ok = False
        names.append(tag)
    return names if ok else None
