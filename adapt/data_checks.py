"""What `adapt validate` can check in a dataset folder without reading it: folders exist, names are known.

`adapt train` finds these only after loading the model (30-40 s on an SLM);
here they cost a directory listing. Each problem is one line: the field, the
value, what is there, and a "did you mean" when a name is close to a known one.
"""

from __future__ import annotations

import difflib
from pathlib import Path


def did_you_mean(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    return f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""


def _folders_with(root: Path, marker: str) -> list[str]:
    return sorted(p.name for p in root.iterdir() if (p / marker).is_file())


def _base(root: Path, marker: str, subfolder: str) -> tuple[Path, list[str]]:
    """(``root`` itself, or ``root/subfolder`` when data.path names the whole data folder (as the readers do),
    the names of its folders holding ``marker``)."""
    known = _folders_with(root, marker)
    if known or not (root / subfolder).is_dir():
        return root, known
    return root / subfolder, _folders_with(root / subfolder, marker)


def _masakhaner(where: str, part, root: Path) -> list[str]:
    base, known = _base(root, "train.txt", "masakhaner2")
    if not part.languages:
        return [f"{where}.languages: empty; name at least one language code ({', '.join(known) or 'yor, hau, swa'})"]
    return [
        f"{where}.languages: {lang!r} is not in {base} ({did_you_mean(lang, known)}available: {', '.join(known) or 'none'}); "
        "fix the code or add the language's folder (train.txt, dev.txt, test.txt)"
        for lang in dict.fromkeys(part.languages)
        if lang not in known
    ]


def _legalbench(where: str, part, root: Path) -> list[str]:
    from adapt.data.legalbench_tasks import CUAD_TASKS, normalize

    base, known = _base(root, "test.tsv", "legalbench")
    by_key = {normalize(k): k for k in known}
    names = sorted(set(known) | CUAD_TASKS)
    problems = []
    for task in part.tasks:
        if task.strip().lower() == "cuad" or task in known or normalize(task) in by_key:
            continue
        elsewhere = " (a LegalBench task, but its folder is missing: add it)" if normalize(task) in CUAD_TASKS else ""
        problems.append(
            f"{where}.tasks: {task!r} is not a task folder in {base}{elsewhere} ({did_you_mean(normalize(task), names)}"
            f"{len(known)} tasks there, or the group 'cuad'); fix the name"
        )
    return problems


def _medquad(where: str, part, root: Path) -> list[str]:
    if not any(root.glob("*_QA*/*.xml")) and not any((root / "medquad").glob("*_QA*/*.xml")):
        return [f"{where}.path: {root} holds no <n>_<source>_QA/*.xml files; point it at the MedQuAD folder"]
    return []


CHECKS = {"masakhaner": _masakhaner, "legalbench": _legalbench, "medquad": _medquad}


def data_problems(where: str, part, root: Path) -> list[str]:
    """Problems of one dataset config (``where``: data or data.parts.NAME) found by listing its folder ``root``
    (its resolved ``path``, which exists: :mod:`adapt.checks` reports a missing one)."""
    try:
        if not root.is_dir():
            return [f"{where}.path: {root} is a file; {part.source} reads a folder, point data.path at the dataset folder"]
        check = CHECKS.get(part.source)
        return check(where, part, root) if check else []
    except OSError as exc:
        return [f"{where}.path: {root} cannot be read ({exc.strerror or exc}); fix the path or its permissions"]
