"""Read a user's JSONL, JSON, CSV/TSV, Parquet or CoNLL file into rows that know their line.

Hand-written for the text formats rather than read with ``datasets.load_dataset("json"/"csv")``: Arrow's
readers report a broken line, a ragged CSV row or a non-UTF-8 byte without the line number (or not at
all, after a schema cast), stop at the first, and cache a copy of the file; here every problem is one
line naming the file, the line and the fix, and all of them are collected. Parquet is binary and
column-typed, so pyarrow reads it (rows are named by their 0-based index). CoNLL has no ``datasets``
loader; it is read here too (word first, tag last on each line).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from adapt.data.problems import Problems
from adapt.data.table import Row, Table

HINTS = {
    "jsonl": 'one JSON object per line, e.g. {"prompt": "...", "response": "..."}',
    "json": 'a JSON array of objects, e.g. [{"text": "...", "label": "..."}]',
    "csv": "a header line, then one row per example",
    "tsv": "a header line, then one tab-separated row per example",
    "conll": "one 'word TAG' per line, a blank line between sentences",
}
_MAX_FIELD = 1 << 27  # long documents run past csv's default 128 KiB field limit


def read_file(path: Path, fmt: str, problems: Problems, conll_columns: tuple[str, str] = ("tokens", "tags")) -> Table | None:
    """The rows of one file (None when it cannot be read at all: the reason is in ``problems``)."""
    if not path.is_file():
        problems.add(f"{path}: no such file; fix the path (relative paths start at the working folder)")
        return None
    if fmt == "parquet":
        return _parquet(path, problems)
    text = _text(path, fmt, problems)
    if text is None:
        return None
    table = Table(str(path), path.name, [])
    if fmt == "jsonl":
        _jsonl(text, table, problems)
    elif fmt == "json":
        _json(text, table, problems)
    elif fmt in ("csv", "tsv"):
        _delimited(text, "\t" if fmt == "tsv" else ",", table, problems)
    else:
        _conll(text, conll_columns, table, problems)
    return table


def _text(path: Path, fmt: str, problems: Problems) -> str | None:
    try:
        data = path.read_bytes()
    except OSError as exc:
        problems.add(f"{path}: cannot be read ({exc.strerror or exc}); fix the path or its permissions")
        return None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        offset = 0
        for number, line in enumerate(data.split(b"\n"), 1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                problems.add(
                    f"{path}:{number}: not UTF-8 (byte 0x{line[exc.start]:02x} at byte offset {offset + exc.start}); "
                    "re-save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8 IN > OUT)"
                )
            offset += len(line) + 1
        return None
    if not text.strip():
        problems.add(f"{path}: empty file; it needs {HINTS[fmt]}")
        return None
    return text


def _add(table: Table, line: int | str, values: dict) -> None:
    for key in values:
        if key not in table.columns:
            table.columns.append(key)
    place = f":{line}" if isinstance(line, int) else line
    table.rows.append(Row(table.name, place, values, table.ref))


def _object_problem(where: str, value: object, fmt: str) -> str:
    kind = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean"}.get(type(value), "null")
    return f"{where}: {kind}, not an object; the file needs {HINTS[fmt]}"


def _jsonl(text: str, table: Table, problems: Problems) -> None:
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.add(f"{table.name}:{number}: broken JSON ({exc.msg}, column {exc.colno}); fix the line ({HINTS['jsonl']})")
            continue
        if isinstance(value, dict):
            _add(table, number, value)
        else:
            problems.add(_object_problem(f"{table.name}:{number}", value, "jsonl"))


def _json(text: str, table: Table, problems: Problems) -> None:
    """A top-level array, decoded item by item so each row keeps the line it starts on."""
    decoder = json.JSONDecoder()
    lines = _LineIndex(text)
    pos = _skip(text, 0)
    if not text.startswith("[", pos):
        problems.add(f"{table.name}:{lines.of(pos)}: not a JSON array; the file needs {HINTS['json']} (or use .jsonl)")
        return
    pos = _skip(text, pos + 1)
    while not text.startswith("]", pos):
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            problems.add(f"{table.name}:{exc.lineno}: broken JSON ({exc.msg}, column {exc.colno}); fix the file ({HINTS['json']})")
            return
        if isinstance(value, dict):
            _add(table, lines.of(pos), value)
        else:
            problems.add(_object_problem(f"{table.name}:{lines.of(pos)}", value, "json"))
        pos = _skip(text, end)
        if text.startswith(",", pos):
            pos = _skip(text, pos + 1)
        elif not text.startswith("]", pos):
            problems.add(f"{table.name}:{lines.of(pos)}: broken JSON (expected ',' or ']' after an item); fix the file")
            return
    if text[pos + 1 :].strip():
        problems.add(f"{table.name}:{lines.of(_skip(text, pos + 1))}: broken JSON (text after the closing ']'); remove it")


def _skip(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


class _LineIndex:
    """Line number of a character offset (offsets asked in increasing order, as the JSON reader does)."""

    def __init__(self, text: str):
        self.text, self.pos, self.line = text, 0, 1

    def of(self, pos: int) -> int:
        self.line += self.text.count("\n", self.pos, pos)
        self.pos = pos
        return self.line


def _delimited(text: str, delimiter: str, table: Table, problems: Problems) -> None:
    if csv.field_size_limit() < _MAX_FIELD:
        csv.field_size_limit(_MAX_FIELD)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header: list[str] | None = None
    start = 1
    try:
        for cells in reader:
            if not any(c.strip() for c in cells):
                start = reader.line_num + 1
                continue
            if header is None:
                header = [c.strip() for c in cells]
                twice = sorted({h for h in header if header.count(h) > 1})
                if twice:
                    problems.add(f"{table.name}:{start}: column {', '.join(map(repr, twice))} appears twice in the header; rename one")
                table.columns = list(dict.fromkeys(header))
            elif len(cells) != len(header):
                sep = "tab" if delimiter == "\t" else "comma"
                problems.add(
                    f"{table.name}:{start}: {len(cells)} {sep}-separated fields but the header has {len(header)} "
                    f"({', '.join(header)}); fix the row (quote fields that hold a {sep} or a line break)"
                )
            else:
                table.rows.append(Row(table.name, f":{start}", dict(zip(header, cells)), table.ref))
            start = reader.line_num + 1
    except csv.Error as exc:
        problems.add(f"{table.name}:{reader.line_num}: not valid CSV ({exc}); check the quotes on this line")


def _conll(text: str, columns: tuple[str, str], table: Table, problems: Problems) -> None:
    tokens: list[str] = []
    tags: list[str] = []
    lines: list[int] = []

    def close() -> None:
        if tokens:
            values = {columns[0]: list(tokens), columns[1]: list(tags)}
            table.rows.append(Row(table.name, f":{lines[0]}", values, table.ref, tuple(lines)))
            for part in (tokens, tags, lines):
                part.clear()

    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            close()
        elif fields[0] == "-DOCSTART-":
            continue
        elif len(fields) < 2:
            problems.add(f"{table.name}:{number}: one field ({line.strip()!r:.60}); the file needs {HINTS['conll']}")
        else:
            tokens.append(fields[0])
            tags.append(fields[-1])
            lines.append(number)
    close()
    table.columns = list(columns)


def _parquet(path: Path, problems: Problems) -> Table | None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        data = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        problems.add(f"{path}: not a readable Parquet file ({str(exc).splitlines()[0][:200]}); re-export it as Parquet or JSONL")
        return None
    if data.num_rows == 0:
        problems.add(f"{path}: no rows (empty file); add rows")
        return None
    rows = [Row(str(path), f" row {i}", values, path.name) for i, values in enumerate(data.to_pylist())]
    return Table(str(path), path.name, rows, list(data.column_names))
