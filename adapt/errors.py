"""User-facing errors: one clear line, exit code 2, no traceback."""

from __future__ import annotations

MAX_REASON = 120
"""Characters of a parser's message kept in an error line."""


def short(text: object, limit: int = MAX_REASON) -> str:
    """``text`` on one line, cut to ``limit`` characters (a bad value can be megabytes long)."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


class AdaptError(Exception):
    """A problem the user can fix (bad recipe, missing file, unknown model).

    The CLI prints ``str(error)`` without a traceback and exits with code 2.
    Messages name the file, field or value and say what to do.
    """

    exit_code = 2


class RecipeError(AdaptError):
    """Every problem found in one or more recipes, reported at once."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


class DataError(AdaptError):
    """Malformed or missing data; the message names the file and line."""
