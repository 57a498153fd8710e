"""Issue 13, item 5: recipes and --set overrides, mutated at random (seeded), and the inputs that used to crash.

`adapt validate` must answer every input with exit 0 or a clean exit 2: no traceback, no other code, one
bounded line per problem. Validation only: no model is loaded.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest
import yaml

from adapt import cli

REPO = Path(__file__).resolve().parents[1]
RECIPES = sorted((REPO / "recipes").glob("*.yaml"))
CASES = 600
VALUES = [
    "0", "-1", "1e30", ".inf", "-.inf", ".nan", "1e-300", "2**40", "18446744073709551617", "''", "null", "~", "[]",
    "{}", "[1,", "{a: ", "&a [*a]", "*missing", "yes", "0x1F", "'\x00'", "\"\\0\"", "x" * 3000, "é" * 50, "[[[[[[1]]]]]]",
    "{name: qlora}", "{source: mixture}", "!!python/object:os.system ls", "- a\n- b", ":", "=", "a=b=c", "\udcff",
]  # fmt: skip
KEYS = [
    "name", "domain", "model.source", "method.name", "method.rank", "method.alpha", "method.dropout", "method.top_k",
    "data.source", "data.path", "data.languages", "data.tasks", "data.parts", "train", "train.epochs",
    "train.max_steps", "train.batch_size", "train.learning_rate", "train.seed", "eval.limit", "export.formats",
    "stages", "weights", "runs", "density", "combination_type", "", ".", "a..b", "train.max_steps.x", "x" * 300,
]  # fmt: skip


def mutate_text(rng: random.Random, text: str) -> bytes:
    data = bytearray(text.encode())
    kind = rng.randrange(8)
    if kind == 0:  # flip bytes (invalid UTF-8 included)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    elif kind == 1:  # cut
        data = data[: rng.randrange(len(data))]
    elif kind == 2:  # replace one scalar value
        lines = text.splitlines()
        i = rng.randrange(len(lines))
        if ":" in lines[i]:
            lines[i] = lines[i].split(":", 1)[0] + ": " + rng.choice(VALUES).replace("\n", " ")
        data = bytearray("\n".join(lines).encode("utf-8", "surrogatepass"))
    elif kind == 3:  # deep nesting
        depth = rng.choice([40, 500, 5000])
        data += f"\ndeep: {'[' * depth}1{']' * depth}\n".encode()
    elif kind == 4:  # an alias bomb
        levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
        levels += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, rng.randint(3, 9))]
        data = bytearray(("\n".join(levels) + f"\nname: *a{len(levels) - 1}\n" + text).encode())
    elif kind == 5:  # NUL bytes and control characters
        pos = rng.randrange(len(data))
        data[pos:pos] = rng.choice([b"\x00", b"\x07\x1b", b"\xef\xbb\xbf", b"\r"])
    elif kind == 6:  # not a mapping
        data = bytearray(rng.choice([b"", b"- 1\n- 2\n", b"42", b"null", b"'just a string'"]))
    else:  # a huge value
        data += b"\ndescription: " + b"y" * rng.choice([10_000, 2_000_000]) + b"\n"
    return bytes(data)


def overrides(rng: random.Random) -> list[str]:
    out = []
    for _ in range(rng.randint(0, 4)):
        key, value = rng.choice(KEYS), rng.choice(VALUES)
        out.append(rng.choice([f"{key}={value}", key, f"={value}", f"{key}={value}\x00"]))
    return out


def validate(argv: list[str], capsys) -> tuple[int, str]:
    code = cli.main(["validate", *argv])
    return code, capsys.readouterr().err


def test_mutated_recipes_and_overrides_give_exit_0_or_a_clean_2(tmp_path, capsys):
    rng = random.Random(13)
    codes = []
    for i in range(CASES):
        base = rng.choice(RECIPES)
        path = tmp_path / f"case{i}.yaml"
        text = base.read_text()
        path.write_bytes(mutate_text(rng, text) if rng.random() < 0.7 else text.encode())
        sets = overrides(rng)
        try:
            code, err = validate([str(path), *[arg for s in sets for arg in ("--set", s)]], capsys)
        except BaseException as exc:  # noqa: BLE001 - a traceback is the failure this test looks for
            pytest.fail(f"case {i} ({base.name}, --set {sets!r}): {type(exc).__name__}: {str(exc)[:300]}")
        assert code in (0, 2), (i, code, err[:500])
        assert "Traceback" not in err
        assert all(len(line) < 2000 for line in err.splitlines()), (i, max(map(len, err.splitlines())))
        codes.append(code)
    assert codes.count(2) > CASES // 2 and codes.count(0) > 10  # the mutations do reach both answers


@pytest.fixture
def quickstart(tmp_path) -> Path:
    path = tmp_path / "quickstart.yaml"
    path.write_text((REPO / "recipes" / "quickstart.yaml").read_text())
    return path


@pytest.mark.parametrize(
    "sets, expected",
    [
        (["train.max_steps=[1,"], "not valid YAML"),
        (["train=5", "train.max_steps=3"], "train is set to a value by another --set"),
        (["train.max_steps=3", "train=5"], "train has fields set by another --set"),
        (["name=a\x00b"], "name"),
        (["data.path=domains/\x00x"], "data.path"),
        (["name=" + "n" * 300], "at most 100 characters"),
        (["name=../../etc"], "name"),
        (["train.epochs=.inf"], "finite number"),
        (["train.learning_rate=.nan"], "finite number"),
        (["train.batch_size=1e30"], "train.batch_size"),
        (["train.batch_size=100000000"], "less than or equal to 4096"),
        (["train.max_steps=0"], "0 trains nothing"),
        (["train.seed=-5"], "train.seed"),
        (["data.path=" + "d" * 300], "data.path"),
        (["x..y=1"], "expected key.path=value"),
        (["method.name=" + "q" * 5000], "method: Input tag"),
        (["data.source=" + "d" * 5000, "domain=" + "e" * 5000], "data: Input tag"),
    ],
)
def test_inputs_that_used_to_crash(quickstart, capsys, sets, expected):
    code, err = validate([str(quickstart), *[a for s in sets for a in ("--set", s)]], capsys)
    assert code == 2 and expected in err, err
    assert all(len(line) < 500 for line in err.splitlines())


def test_a_recipe_that_is_not_utf8_or_nested_too_deep(tmp_path, capsys):
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes("name: caf\xe9\n".encode("latin-1"))
    deep = tmp_path / "deep.yaml"
    deep.write_text("name: " + "[" * 5000 + "]" * 5000 + "\n")
    code, err = validate([str(bad), str(deep)], capsys)
    assert code == 2 and "not UTF-8" in err and "nested more than" in err


def test_alias_bombs_and_huge_values_are_bounded(tmp_path, capsys):
    bomb = tmp_path / "bomb.yaml"
    levels = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    levels += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    bomb.write_text("\n".join(levels) + "\nname: *a8\n")
    start = time.perf_counter()
    code, err = validate([str(bomb)], capsys)
    assert code == 2 and "expands to more than" in err and len(err) < 1000
    assert time.perf_counter() - start < 5
    huge = tmp_path / "huge.yaml"
    huge.write_text((REPO / "recipes" / "quickstart.yaml").read_text() + "description: " + "y" * 2_000_000 + "\n")
    code, err = validate([str(huge)], capsys)
    assert code == 2 and "more than the" in err and len(err) < 500
    code, err = validate([str(REPO / "recipes" / "quickstart.yaml"), "--set", "train.epochs=" + "z" * 10_000_000], capsys)
    assert code == 2 and len(err) < 500 and "..." in err


def test_set_is_honoured_for_combine_recipes(capsys):
    combine = REPO / "recipes" / "combine-healthcare-legal.yaml"
    assert yaml.safe_load(combine.read_text())["combination_type"]
    code, err = validate([str(combine), "--set", "density=5"], capsys)
    assert code == 2 and "density" in err
