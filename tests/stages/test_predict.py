"""`adapt predict RUN FILE --out predictions.jsonl`: each task kind from a tiny run, with and without the gold,
a built-in-data run's default columns, a bad file (exit 2, one line per problem) and the atomic write."""

from __future__ import annotations

import json
import math

import pytest

from adapt import cli
from tiny_runs import EXAMPLE_FILES, masakhaner_recipe, ner_sentence, own_recipe, train_run, write_masakhaner

TITLES = ("instruction", "classification", "token_classification")


@pytest.fixture(scope="module")
def own_runs(tiny_llama_dir, tmp_path_factory):
    """A run per task kind on the example files (``source: file``)."""
    root = tmp_path_factory.mktemp("own-runs")
    return {title: train_run(own_recipe(tiny_llama_dir, title), root / title) for title in TITLES}


def predict(run, file, out, *extra, capsys=None) -> tuple[int, list[dict], str]:
    code = cli.main(["predict", str(run.root), str(file), "--out", str(out), *extra])
    rows = [json.loads(line) for line in out.read_text().splitlines()] if out.is_file() else []
    return code, rows, capsys.readouterr().out if capsys else ""


def _labels(run) -> tuple[str, ...]:
    from adapt.data import load_task

    return load_task(run.load_recipe().data).labels


@pytest.mark.parametrize("title", TITLES)
def test_each_kind_predicts_the_file_with_its_gold(own_runs, tmp_path, capsys, title):
    run = own_runs[title]
    code, rows, out = predict(run, EXAMPLE_FILES[title], tmp_path / "p.jsonl", "--limit", "5", capsys=capsys)
    assert code == 0 and len(rows) == 5
    assert f"5 predictions of adapter written to {tmp_path / 'p.jsonl'}" in out
    assert rows[0]["id"].startswith(EXAMPLE_FILES[title].name) and len({r["id"] for r in rows}) == 5
    assert all("gold" in r and r["input"] for r in rows)
    if title == "classification":
        labels = _labels(run)
        for r in rows:
            assert set(r["scores"]) == set(labels) and r["prediction"] == max(r["scores"], key=r["scores"].get)
            assert all(s <= 0 for s in r["scores"].values())  # log-likelihoods
        accuracy = sum(r["prediction"] == r["gold"] for r in rows) / 5
        assert f"accuracy {accuracy:.4f}" in out
    elif title == "token_classification":
        labels = set(_labels(run))
        for r in rows:
            assert len(r["tags"]) == len(r["tokens"]) == len(r["gold"]) and set(r["tags"]) <= labels
            assert r["input"] == " ".join(r["tokens"])
        assert "scores against the file's gold: sentences 5, f1 " in out
    else:
        assert all(isinstance(r["prediction"], str) for r in rows)
        assert "scores against the file's gold: n 5, rougeL " in out


def test_without_the_gold_column_each_kind_still_predicts(own_runs, tmp_path, capsys):
    inputs = {
        "instruction": [{"prompt": "When is the clinic open?"}, {"prompt": "How do I book?"}],
        "classification": [{"text": "Either party may terminate this Agreement."}, {"text": "Customer shall pay each invoice."}],
        "token_classification": [{"tokens": ["Take", "500", "mg", "of", "amoxicillin"]}, {"tokens": ["Use", "two", "drops"]}],
    }
    for title, rows_in in inputs.items():
        file = tmp_path / f"{title}.jsonl"
        file.write_text("".join(json.dumps(r) + "\n" for r in rows_in))
        code, rows, out = predict(own_runs[title], file, tmp_path / f"{title}.out.jsonl", capsys=capsys)
        assert code == 0 and [r["id"] for r in rows] == [f"{file.name}:1", f"{file.name}:2"]
        assert not any("gold" in r for r in rows) and "scores against" not in out
    tagged = json.loads((tmp_path / "token_classification.out.jsonl").read_text().splitlines()[0])
    assert tagged["tokens"] == inputs["token_classification"][0]["tokens"] and len(tagged["tags"]) == 5


def test_a_chat_input_without_an_answer_is_predicted(own_runs, tmp_path):
    file = tmp_path / "chat.jsonl"
    file.write_text(json.dumps({"messages": [{"role": "user", "content": "Are you open on Sunday?"}]}) + "\n")
    run = own_runs["instruction"]
    code, rows, _ = predict(run, file, tmp_path / "chat.out.jsonl")
    assert code == 0 and rows[0]["input"] == "Are you open on Sunday?" and "gold" not in rows[0]


def test_a_built_in_data_run_reads_the_default_columns_and_each_variant(tiny_llama_dir, tmp_path, capsys):
    run = train_run(masakhaner_recipe(tiny_llama_dir, write_masakhaner(tmp_path / "data", 24)), tmp_path / "run")
    assert cli.main(["merge", str(run.root)]) == 0
    file = tmp_path / "sentences.jsonl"
    sentences = [ner_sentence(i) for i in range(6)]
    file.write_text("".join(json.dumps({"tokens": w, "tags": t}) + "\n" for w, t in sentences))
    _, adapter, out = predict(run, file, tmp_path / "a.jsonl", capsys=capsys)
    _, merged, _ = predict(run, file, tmp_path / "m.jsonl", "--variant", "merged/nf4_dequant")
    assert [r["tags"] for r in adapter] == [t for _, t in sentences]  # the tiny model learned the repeated spans
    words = [(a, m) for ra, rm in zip(adapter, merged) for a, m in zip(ra["tags"], rm["tags"])]
    assert sum(a == m for a, m in words) / len(words) > 0.95
    assert "f1 1.0000" in out
    code = cli.main(["predict", str(run.root), str(file), "--out", str(tmp_path / "b.jsonl"), "--variant", "base"])
    assert code == 2 and "--variant base: the base has no trained head" in capsys.readouterr().err


def test_a_bad_file_is_one_line_per_problem_and_exit_2(own_runs, tmp_path, capsys):
    file = tmp_path / "bad.jsonl"
    file.write_text('{"text": "Customer shall pay.", "label": "payment"}\n{"text": broken\n'
                    '{"label": "payment"}\n{"text": "Fine.", "label": "salary"}\n')
    out = tmp_path / "p.jsonl"
    assert cli.main(["predict", str(own_runs["classification"].root), str(file), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert all(line.startswith("error: ") for line in err)
    assert any(f"{file}:2: broken JSON" in line for line in err)
    assert not out.exists()
    file.write_text('{"text": "Customer shall pay.", "label": "payment"}\n{"label": "payment"}\n{"text": "Fine.", "label": "salary"}\n')
    assert cli.main(["predict", str(own_runs["classification"].root), str(file), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and f"{file}:2: column 'text' is missing" in err[0]
    assert f"{file}:3: column 'label': label 'salary' is not in data.task.labels" in err[1]
    assert not out.exists()
    (tmp_path / "notes.docx").write_text("x")
    assert cli.main(["predict", str(own_runs["classification"].root), str(tmp_path / "notes.docx"), "--out", str(out)]) == 2
    assert "cannot tell the format from the extension '.docx'" in capsys.readouterr().err


def test_predictions_are_written_atomically(own_runs, tmp_path, monkeypatch):
    from adapt import predict as stage
    from adapt.tasks import classification

    run, out = own_runs["classification"], tmp_path / "p.jsonl"
    out.write_text("earlier predictions\n")
    real, calls = classification.predict, []

    def failing(*args, **kwargs):  # every row is predicted, then the run dies before the file is written
        calls.append(real(*args, **kwargs))
        raise RuntimeError("out of memory")

    monkeypatch.setattr(classification, "predict", failing)
    with pytest.raises(RuntimeError, match="out of memory"):
        stage.run(run.root, EXAMPLE_FILES["classification"], out, limit=6)
    assert out.read_text() == "earlier predictions\n" and sorted(p.name for p in tmp_path.iterdir()) == ["p.jsonl"]
    monkeypatch.setattr(classification, "predict", real)
    result = stage.run(run.root, EXAMPLE_FILES["classification"], out, limit=6)
    assert result["rows"] == 6 and len(out.read_text().splitlines()) == 6
    assert not math.isnan(result["metrics"]["accuracy"])
