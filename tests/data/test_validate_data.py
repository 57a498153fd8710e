"""Issue 13, item 6: what `adapt validate` finds in the data folder without loading a model, and the CLI mistakes
that used to end in tracebacks (--out naming a file, eval --limit 0)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from adapt import cli

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def data_dir(tmp_path) -> Path:
    """A data folder laid out like ../shared/data: two MasakhaNER languages, two LegalBench tasks, a JSONL file."""
    root = tmp_path / "data"
    for lang in ("yor", "hau"):
        (root / "masakhaner2" / lang).mkdir(parents=True)
        (root / "masakhaner2" / lang / "train.txt").write_text("Ọmọ O\n")
    for task in ("anti_assignment", "governing_law"):
        (root / "legalbench" / task).mkdir(parents=True)
        (root / "legalbench" / task / "test.tsv").write_text("text\tanswer\nx\tYes\n")
    (root / "medquad.jsonl").write_text('{"question": "q", "answer": "a"}\n')
    return root


def recipe(tmp_path: Path, data: dict, **train) -> Path:
    body = {"name": "r", "domain": "legal", "method": {"name": "qlora"}, "data": data, "train": train or {"max_steps": 2}}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def validate(path: Path, capsys, *sets: str) -> tuple[int, str]:
    code = cli.main(["validate", str(path), *[a for s in sets for a in ("--set", s)]])
    return code, capsys.readouterr()


@pytest.mark.parametrize(
    "data, expected",
    [
        ({"source": "masakhaner", "path": "masakhaner2", "languages": ["zlu", "yor"]}, "'zlu' is not in"),
        ({"source": "masakhaner", "path": ".", "languages": ["yrr"]}, "did you mean 'yor'"),
        ({"source": "masakhaner", "path": "masakhaner2", "languages": ["swa"]}, "available: hau, yor"),
        ({"source": "legalbench", "path": "legalbench", "tasks": ["anti_asignment"]}, "did you mean 'anti_assignment'"),
        ({"source": "legalbench", "path": ".", "tasks": ["audit_rights"]}, "its folder is missing"),
        ({"source": "medquad", "path": "medquad.jsonl"}, "is a file; medquad reads a folder"),
        ({"source": "medquad", "path": "legalbench"}, "holds no <n>_<source>_QA/*.xml files"),
    ],
)
def test_data_mistakes_are_found_by_validate(tmp_path, data_dir, capsys, data, expected):
    path = recipe(tmp_path, {**data, "path": str(data_dir / data["path"])})
    code, out = validate(path, capsys)
    assert code == 2 and expected in out.err, out.err
    assert len(out.err.strip().splitlines()) == 1


def test_good_data_and_step_counts(tmp_path, data_dir, capsys):
    path = recipe(tmp_path, {"source": "legalbench", "path": str(data_dir), "tasks": ["anti_assignment", "cuad"]})
    code, out = validate(path, capsys)
    assert code == 0 and "ok" in out.out
    code, out = validate(path, capsys, "train.max_steps=0")
    assert code == 2 and "0 trains nothing" in out.err
    code, out = validate(path, capsys, "train.max_steps=-1", "train.epochs=2")
    assert code == 0 and "max_steps -1: 2.0 full epoch(s)" in out.out


def test_train_out_naming_a_file_and_eval_limit_zero(tmp_path, data_dir, capsys):
    path = recipe(tmp_path, {"source": "legalbench", "path": str(data_dir), "tasks": ["governing_law"]})
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    assert cli.main(["train", str(path), "--out", str(a_file)]) == 2
    assert f"--out {a_file}: a file, not a directory" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        cli.main(["eval", str(tmp_path), "--limit", "0"])
    assert exited.value.code == 2 and "1 or more" in capsys.readouterr().err
