"""A user's own data: source: file (every format, layout and column mapping), source: hub, and bad data
reported as one line per problem naming the file, line or row, column and fix."""

from __future__ import annotations

import csv
import json
import re
import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from adapt.data import common as data_common
from adapt.data.own import load, source_problems
from adapt.data.sources import FileData, HubData
from adapt.errors import AdaptError, DataError

EXAMPLES = Path(__file__).resolve().parents[2] / "domains/examples"


def file_cfg(path=None, task="instruction", **kw) -> FileData:
    return FileData(source="file", path=None if path is None else str(path), task=task, **kw)


def jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_csv(path: Path, header: list[str], rows: list[list[str]], delimiter: str = ",") -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def conll_text(sentences: list[list[tuple[str, str]]]) -> str:
    return "\n\n".join("\n".join(f"{w} {t}" for w, t in s) for s in sentences) + "\n"


def problems_of(cfg) -> list[str]:
    with pytest.raises(DataError) as info:
        load(cfg)
    assert isinstance(info.value, AdaptError) and info.value.exit_code == 2
    return str(info.value).splitlines()


def qa_rows(n: int) -> list[dict]:
    return [{"prompt": f"Question {i}?", "response": f"Answer {i}."} for i in range(n)]


def clause_rows(n_per_label: int, labels=("payment", "termination", "confidentiality")) -> list[list[str]]:
    return [[f"Clause {i} about {label}.", label] for i in range(n_per_label) for label in labels]


SENTENCES = [
    [("Take", "O"), ("aspirin", "B-DRUG"), ("daily", "B-FREQ")],
    [("Give", "O"), ("5", "B-DOSE"), ("mg", "I-DOSE"), ("of", "O"), ("morphine", "B-DRUG")],
    [("Stop", "O"), ("ibuprofen", "B-DRUG"), ("now", "O")],
    [("Use", "O"), ("10", "B-DOSE"), ("ml", "I-DOSE"), ("twice", "B-FREQ"), ("daily", "I-FREQ")],
] * 3


# --------------------------------------------------------------------------- formats
def test_jsonl_one_file_is_split_by_seeded_fractions(tmp_path):
    path = jsonl(tmp_path / "qa.jsonl", qa_rows(30))
    data = load(file_cfg(path))
    assert data.kind == "generation"
    assert (len(data.train), len(data.validation), len(data.test)) == (21, 3, 6)
    ids = [e.id for e in data.train + data.validation + data.test]
    assert len(set(ids)) == 30 and all(i.startswith("qa.jsonl:") for i in ids)
    assert data.train[0].prompt == "Question 0?" and data.train[0].completion == "Answer 0."
    assert [e.id for e in load(file_cfg(path)).test] == [e.id for e in data.test]
    assert [e.id for e in load(file_cfg(path, seed=1)).test] != [e.id for e in data.test]
    assert len(load(file_cfg(path, max_train_examples=5)).train) == 5
    assert data.metadata["held_out_of_train"] == ["validation", "test"]


def test_three_files_are_used_as_given(tmp_path):
    files = {s: jsonl(tmp_path / f"{s}.jsonl", qa_rows(n)) for s, n in (("train", 8), ("validation", 2), ("test", 3))}
    data = load(FileData(source="file", task="instruction", **{s: str(p) for s, p in files.items()}))
    assert (len(data.train), len(data.validation), len(data.test)) == (8, 2, 3)
    assert data.test[0].id == "test.jsonl:1" and data.metadata["held_out_of_train"] == []
    # a missing validation file: validation is held out of train, the test file stays as given
    data = load(FileData(source="file", task="instruction", train=str(files["train"]), test=str(files["test"])))
    assert (len(data.train), len(data.validation), len(data.test)) == (7, 1, 3)
    data = load(FileData(source="file", task="instruction", train=str(files["train"]), test=str(files["test"]),
                         validation_fraction=0))
    assert (len(data.train), len(data.validation)) == (8, 0)


def test_json_array_csv_tsv_and_parquet_read_the_same_rows(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = clause_rows(5)
    (tmp_path / "c.json").write_text(json.dumps([{"text": t, "label": lab} for t, lab in rows], indent=2), encoding="utf-8")
    write_csv(tmp_path / "c.csv", ["text", "label"], rows)
    write_csv(tmp_path / "c.tsv", ["text", "label"], rows, delimiter="\t")
    pq.write_table(pa.table({"text": [t for t, _ in rows], "label": [lab for _, lab in rows]}), tmp_path / "c.parquet")
    loaded = {ext: load(file_cfg(tmp_path / f"c.{ext}", "classification")) for ext in ("json", "csv", "tsv", "parquet")}
    for data in loaded.values():
        assert data.kind == "classification" and data.labels == ("confidentiality", "payment", "termination")
        everything = sorted((e.prompt, e.completion) for e in data.train + data.validation + data.test)
        assert everything == sorted((e.prompt, e.completion) for e in loaded["csv"].train + loaded["csv"].validation
                                    + loaded["csv"].test)
        assert {e.completion for e in data.test} == set(data.labels)  # stratified: every label held out
    assert loaded["json"].train[0].id.startswith("c.json:") and loaded["parquet"].train[0].id.startswith("c.parquet row ")
    # an explicit format for an unusual extension
    (tmp_path / "c.data").write_text((tmp_path / "c.csv").read_text(encoding="utf-8"), encoding="utf-8")
    assert len(load(file_cfg(tmp_path / "c.data", "classification", format="csv")).test) == 3


def test_conll_one_file_and_three_files(tmp_path):
    (tmp_path / "all.conll").write_text("-DOCSTART- O\n\n" + conll_text(SENTENCES), encoding="utf-8")
    data = load(file_cfg(tmp_path / "all.conll", "token_classification"))
    assert data.kind == "token_classification" and len(data.train + data.validation + data.test) == 12
    assert data.labels == ("B-DOSE", "B-DRUG", "B-FREQ", "I-DOSE", "I-DRUG", "I-FREQ", "O")
    for name, part in (("train.txt", SENTENCES), ("dev.txt", SENTENCES[:4]), ("test.txt", SENTENCES[4:8])):
        (tmp_path / name).write_text(conll_text(part), encoding="utf-8")
    data = load(FileData(source="file", task="token_classification", train=str(tmp_path / "train.txt"),
                         validation=str(tmp_path / "dev.txt"), test=str(tmp_path / "test.txt")))
    assert (len(data.train), len(data.validation), len(data.test)) == (12, 4, 4)
    assert data.test[0].tokens == ("Take", "aspirin", "daily") and data.test[0].tags == ("O", "B-DRUG", "B-FREQ")
    # more than two fields per line: word first, tag last; an I- tag after O is kept (seqeval reads a new entity)
    (tmp_path / "wide.conll").write_text("Give VB x O\n5 CD x I-DOSE\n\n" + conll_text(SENTENCES), encoding="utf-8")
    rows = load(file_cfg(tmp_path / "wide.conll", "token_classification", test_fraction=0.5))
    assert ("Give", "5") in [e.tokens for e in rows.train + rows.validation + rows.test]


# --------------------------------------------------------------------------- column mappings
def test_prompt_response_with_own_column_names(tmp_path):
    path = jsonl(tmp_path / "qa.jsonl", [{"question": f"Q{i}", "answer": f"A{i}", "extra": 1} for i in range(10)])
    data = load(file_cfg(path, {"type": "instruction", "prompt": "question", "response": "answer",
                                "system": "You answer for the clinic."}))
    assert data.instruction == "You answer for the clinic."
    assert {(e.prompt[1:], e.completion[1:]) for e in data.train} <= {(str(i), str(i)) for i in range(10)}


def test_messages_openai_shared_system_multi_turn_and_content_parts(tmp_path):
    system = {"role": "system", "content": "You are the clinic's assistant."}
    rows = [{"messages": [system, {"role": "user", "content": f"Q{i}"}, {"role": "assistant", "content": f"A{i}"}]}
            for i in range(8)]
    rows.append({"messages": [system, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."},
                              {"role": "user", "content": [{"type": "text", "text": "Hours?"}]},
                              {"role": "assistant", "content": "9 to 5."}, {"role": "user", "content": "Thanks"}]})
    path = jsonl(tmp_path / "chat.jsonl", rows)
    data = load(file_cfg(path, "instruction", test_fraction=0.5, validation_fraction=0))
    examples = {e.id: e for e in data.train + data.test}
    assert data.instruction == "You are the clinic's assistant."
    assert examples["chat.jsonl:1"].prompt == "Q0" and examples["chat.jsonl:1"].completion == "A0"
    multi = examples["chat.jsonl:9"]  # the last assistant turn answers; the trailing user turn has no answer
    assert multi.prompt == "User: Hi\n\nAssistant: Hello.\n\nUser: Hours?" and multi.completion == "9 to 5."
    # a row whose system turn differs from the shared one keeps it at the start of its prompt
    rows[0] = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Q0"},
                            {"role": "assistant", "content": "A0"}]}
    data = load(file_cfg(jsonl(path, rows), {"type": "instruction", "system": "You are the clinic's assistant."},
                         test_fraction=0.5, validation_fraction=0))
    first = next(e for e in data.train + data.test if e.id == "chat.jsonl:1")
    assert first.prompt == "System: Be brief.\n\nQ0" and data.instruction == "You are the clinic's assistant."


def test_messages_sharegpt_from_value_in_a_conversations_column(tmp_path):
    rows = [{"conversations": [{"from": "human", "value": f"Q{i}"}, {"from": "gpt", "value": f"A{i}"}]} for i in range(6)]
    data = load(file_cfg(jsonl(tmp_path / "sg.jsonl", rows), "instruction", test_fraction=0.5, validation_fraction=0))
    assert data.instruction == "" and data.metadata["columns"] == {"messages": "conversations"}
    assert sorted(e.prompt + e.completion for e in data.train + data.test) == [f"Q{i}A{i}" for i in range(6)]
    # a CSV cell may hold the JSON list
    write_csv(tmp_path / "sg.csv", ["chat"], [[json.dumps(r["conversations"])] for r in rows])
    data = load(file_cfg(tmp_path / "sg.csv", {"type": "instruction", "messages": "chat"}, test_fraction=0.5,
                         validation_fraction=0))
    assert sorted(e.completion for e in data.train + data.test) == [f"A{i}" for i in range(6)]


def test_alpaca_instruction_input_output(tmp_path):
    rows = [{"instruction": f"Summarize note {i}.", "input": f"Note {i} text." if i % 2 else "", "output": f"S{i}"}
            for i in range(10)]
    data = load(file_cfg(jsonl(tmp_path / "alpaca.jsonl", rows), "instruction"))
    by_id = {e.id: e for e in data.train + data.validation + data.test}
    assert data.metadata["columns"] == {"instruction": "instruction", "output": "output"}
    assert by_id["alpaca.jsonl:1"].prompt == "Summarize note 0."
    assert by_id["alpaca.jsonl:2"].prompt == "Summarize note 1.\n\nNote 1 text." and by_id["alpaca.jsonl:2"].completion == "S1"


def test_classification_text_pair_and_declared_labels(tmp_path):
    rows = [[f"Premise {i}.", f"Hypothesis {i}.", lab] for i in range(6) for lab in ("entailment", "contradiction")]
    path = write_csv(tmp_path / "nli.csv", ["premise", "hypothesis", "gold"], rows)
    task = {"type": "classification", "text": "premise", "text_pair": "hypothesis", "label": "gold",
            "labels": ["entailment", "neutral", "contradiction"]}
    data = load(file_cfg(path, task))
    assert data.labels == ("entailment", "neutral", "contradiction")  # declared order, a label without rows is kept
    example = data.test[0]
    assert example.choices == data.labels
    assert example.prompt.startswith("Premise: Premise ") and "\nHypothesis: Hypothesis " in example.prompt
    assert example.prompt.endswith("\n\nOptions: entailment, neutral, contradiction")
    assert data.instruction.startswith("Classify the text")
    undeclared = load(file_cfg(path, {k: v for k, v in task.items() if k != "labels"}))
    assert undeclared.labels == ("contradiction", "entailment")


def test_token_lists_in_jsonl_with_integer_tags_named_by_declared_labels(tmp_path):
    names = ["O", "B-DRUG", "I-DRUG"]
    rows = [{"words": ["take", "vitamin", "d"], "ner": [0, 1, 2]}, {"words": ["stop", "aspirin"], "ner": [0, 1]}] * 4
    task = {"type": "token_classification", "tokens": "words", "tags": "ner", "labels": names}
    data = load(file_cfg(jsonl(tmp_path / "t.jsonl", rows), task))
    assert data.labels == tuple(names)
    assert ("vitamin", "B-DRUG") in [p for e in data.train for p in zip(e.tokens, e.tags)]


# --------------------------------------------------------------------------- bad data: one line per problem
def test_missing_or_misnamed_column_suggests_close_names(tmp_path):
    path = jsonl(tmp_path / "qa.jsonl", [{"prompts": "Q", "answer": "A"}] * 5)
    lines = problems_of(file_cfg(path))
    assert lines == [
        f"{path}: no column 'prompt' (did you mean 'prompts'? columns: prompts, answer); "
        "set data.task.prompt to the column's name or rename the column",
        f"{path}: no column 'response' (columns: prompts, answer); "
        "set data.task.response to the column's name or rename the column",
    ]


def test_empty_label_and_empty_text_name_the_line_and_column(tmp_path):
    path = write_csv(tmp_path / "c.csv", ["text", "label"], clause_rows(4) + [["Orphan clause.", " "], ["", "payment"]])
    lines = problems_of(file_cfg(path, "classification"))
    assert lines == [f"{path}:14: column 'label' is empty; fill it in or delete the row",
                     f"{path}:15: column 'text' is empty; fill it in or delete the row"]


def test_label_outside_declared_set_and_test_label_absent_from_training(tmp_path):
    path = write_csv(tmp_path / "c.csv", ["text", "label"], clause_rows(4) + [["Pay now.", "paymnet"]])
    task = {"type": "classification", "labels": ["payment", "termination", "confidentiality"]}
    assert problems_of(file_cfg(path, task)) == [
        f"{path}:14: column 'label': label 'paymnet' is not in data.task.labels (did you mean 'payment'? labels: "
        "payment, termination, confidentiality); fix the label or add it to data.task.labels"]
    train = write_csv(tmp_path / "train.csv", ["text", "label"], clause_rows(4, ("payment", "termination")))
    test = write_csv(tmp_path / "test.csv", ["text", "label"], [["Keep it secret.", "confidentiality"], ["Pay.", "payment"]])
    lines = problems_of(FileData(source="file", task="classification", train=str(train), test=str(test)))
    assert len(lines) == 1 and lines[0].startswith(f"{test}:2: column 'label': label 'confidentiality' never occurs "
                                                   "in the training split (labels: payment, termination); add rows")
    # one file: a label with a single row goes to the held-out side, and is reported the same way
    single = write_csv(tmp_path / "one.csv", ["text", "label"], clause_rows(4, ("payment", "termination")) + [["x", "rare"]])
    assert "label 'rare' never occurs in the training split" in problems_of(file_cfg(single, "classification"))[0]


def test_unknown_tag_names_its_own_conll_line(tmp_path):
    path = tmp_path / "ner.conll"
    path.write_text(conll_text(SENTENCES[:2]) + "\nTake O\nasprin B-DRUGG\n\nGive O\nx PERSON\n", encoding="utf-8")
    task = {"type": "token_classification", "labels": ["O", "B-DRUG", "I-DRUG", "B-FREQ", "I-FREQ", "B-DOSE", "I-DOSE"]}
    lines = problems_of(file_cfg(path, task))
    assert lines == [
        f"{path}:12: column 'tags': unknown tag 'B-DRUGG' (did you mean 'B-DRUG' or 'I-DRUG'? data.task.labels: O, B-DRUG, "
        "I-DRUG, B-FREQ, I-FREQ, B-DOSE, I-DOSE); fix the tag or add it to data.task.labels",
        f"{path}:15: tag 'PERSON' is not O, B-X or I-X; use BIO tags (e.g. B-DRUG, I-DRUG, O)",
    ]
    # undeclared: a held-out entity type that training never shows
    (tmp_path / "train.conll").write_text(conll_text(SENTENCES[:1] * 3), encoding="utf-8")
    (tmp_path / "test.conll").write_text(conll_text(SENTENCES[1:2]), encoding="utf-8")
    lines = problems_of(FileData(source="file", task="token_classification", train=str(tmp_path / "train.conll"),
                                 test=str(tmp_path / "test.conll")))
    assert lines[0].startswith(f"{tmp_path / 'test.conll'}:2: column 'tags': tag 'B-DOSE' (test split): its entity "
                               "type never occurs in the training split")
    assert len(lines) == 2  # B-DOSE and I-DOSE, each on its own line
    (tmp_path / "train.conll").write_text(conll_text([[("no", "O"), ("entity", "O")]] * 3), encoding="utf-8")
    lines = problems_of(FileData(source="file", task="token_classification", train=str(tmp_path / "train.conll"),
                                 test=str(tmp_path / "test.conll")))
    assert lines[0] == "column 'tags': every word of the training split is tagged O; tag the entities (B-X, I-X)"


def test_broken_json_at_line_n_in_jsonl_and_json(tmp_path):
    path = tmp_path / "qa.jsonl"
    path.write_text('{"prompt": "a", "response": "b"}\n{"prompt": "c" "response": "d"}\n["x"]\n', encoding="utf-8")
    lines = problems_of(file_cfg(path))
    assert lines[0].startswith(f"{path}:2: broken JSON (Expecting ',' delimiter, column 16); fix the line")
    assert lines[1].startswith(f"{path}:3: an array, not an object; the file needs one JSON object per line")
    path = tmp_path / "qa.json"
    path.write_text('[\n  {"prompt": "a", "response": "b"},\n  {"prompt": "c",\n   "response": }\n]\n', encoding="utf-8")
    assert problems_of(file_cfg(path))[0].startswith(f"{path}:4: broken JSON (Expecting value, column 16)")
    path.write_text('{"prompt": "a"}', encoding="utf-8")
    assert problems_of(file_cfg(path))[0].startswith(f"{path}:1: not a JSON array")


def test_wrong_encoding_names_byte_offset_line_and_fix(tmp_path):
    path = tmp_path / "c.csv"
    path.write_bytes("text,label\nPay now.,payment\n".encode() + "Résiliation,termination\n".encode("latin-1"))
    assert problems_of(file_cfg(path, "classification")) == [
        f"{path}:3: not UTF-8 (byte 0xe9 at byte offset 29); re-save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8 IN > OUT)"
    ]


def test_messages_without_assistant_turn(tmp_path):
    rows = [{"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]}] * 4
    rows.append({"messages": [{"role": "user", "content": "Anyone there?"}]})
    rows.append({"messages": [{"role": "user", "content": "Q"}, {"role": "robot", "content": "A"}]})
    path = jsonl(tmp_path / "chat.jsonl", rows)
    assert problems_of(file_cfg(path)) == [
        f"{path}:5: column 'messages' has no assistant turn; add the answer the model should learn as the last "
        "assistant (ShareGPT: gpt) turn",
        f"{path}:6: column 'messages', turn 2: role 'robot' is not user, assistant or system (ShareGPT: human, gpt, "
        "system); fix the role",
    ]


def test_empty_file_empty_split_and_too_few_rows(tmp_path):
    empty = tmp_path / "e.jsonl"
    empty.write_text("\n  \n", encoding="utf-8")
    assert problems_of(file_cfg(empty)) == [f"{empty}: empty file; it needs one JSON object per line, "
                                             'e.g. {"prompt": "...", "response": "..."}']
    header_only = write_csv(tmp_path / "test.csv", ["text", "label"], [])
    train = write_csv(tmp_path / "train.csv", ["text", "label"], clause_rows(3))
    lines = problems_of(FileData(source="file", task="classification", train=str(train), test=str(header_only)))
    assert lines == [f"{header_only}: no rows (empty test split); add rows"]
    two = jsonl(tmp_path / "two.jsonl", qa_rows(2))
    assert problems_of(file_cfg(two))[0].startswith(
        "the train split is empty after holding out validation and test: 2 usable training row(s); add rows")


def test_conll_csv_and_parquet_shape_problems(tmp_path):
    path = tmp_path / "n.conll"
    path.write_text("Take O\naspirin\n", encoding="utf-8")
    assert problems_of(file_cfg(path, "token_classification"))[0] == (
        f"{path}:2: one field ('aspirin'); the file needs one 'word TAG' per line, a blank line between sentences")
    path = tmp_path / "c.csv"
    path.write_text("text,label\nPay, now,payment\n", encoding="utf-8")
    assert problems_of(file_cfg(path, "classification"))[0].startswith(
        f"{path}:2: 3 comma-separated fields but the header has 2 (text, label); fix the row")
    path = tmp_path / "p.parquet"
    path.write_bytes(b"not parquet at all")
    assert problems_of(file_cfg(path, "classification"))[0].startswith(f"{path}: not a readable Parquet file")
    missing = tmp_path / "nope.jsonl"
    assert problems_of(file_cfg(missing)) == [f"{missing}: no such file; fix the path (relative paths start at the working folder)"]


def test_problems_are_collected_and_capped(tmp_path):
    rows = [{"prompt": "Q", "response": ""} for _ in range(30)]
    lines = problems_of(file_cfg(jsonl(tmp_path / "qa.jsonl", rows)))
    assert len(lines) == 21
    assert lines[0] == f"{tmp_path / 'qa.jsonl'}:1: column 'response' is empty; fill it in or delete the row"
    assert lines[19].startswith(f"{tmp_path / 'qa.jsonl'}:20:")
    assert lines[20] == "... and 10 more problem(s) like these; fix the ones above and run again"


def test_config_errors_are_caught_before_reading(tmp_path):
    cases = [
        ({"path": "a.jsonl", "train": "b.jsonl"}, "set one of path (one file"),
        ({}, "set one of path"),
        ({"path": "a.xlsx"}, "cannot tell the format of train file 'a.xlsx'"),
        ({"path": "a.conll"}, "use task: token_classification"),
        ({"path": "a.jsonl", "validation_fraction": 0.5, "test_fraction": 0.5}, "leaves no training rows"),
        ({"path": "a.jsonl", "task": {"type": "instruction", "prompt": "q", "messages": "m"}}, "set the columns of one layout"),
        ({"path": "a.jsonl", "task": {"type": "token_classification", "labels": ["B-X", "I-X"]}}, "no 'O' tag"),
        ({"path": "a.jsonl", "task": {"type": "classification", "labels": ["a", "a "]}}, "'a' listed twice"),
        ({"path": "a.jsonl", "task": {"type": "classification", "colour": "x"}}, "Extra inputs are not permitted"),
    ]
    for fields, message in cases:
        with pytest.raises(ValidationError, match=re.escape(message)):
            FileData.model_validate({"source": "file", "task": "instruction"} | fields)
    assert FileData(source="file", path="train.txt", task="token_classification").file_format("train.txt") == "conll"


def test_source_problems_for_validate(tmp_path):
    assert source_problems(file_cfg(tmp_path / "nope.csv", "classification")) == [
        f"data.path: '{tmp_path / 'nope.csv'}' is not a file (resolved to {tmp_path / 'nope.csv'}); fix the path"]
    path = write_csv(tmp_path / "c.csv", ["txt", "label"], clause_rows(3))
    assert source_problems(file_cfg(path, "classification"))[0].startswith(f"{path}: no column 'text' (did you mean 'txt'?")
    assert source_problems(file_cfg(EXAMPLES / "contract_clauses.csv", "classification")) == []
    assert source_problems(HubData(source="hub", dataset="org/data", task="classification")) == []


# --------------------------------------------------------------------------- hub
def test_hub_offline_fails_fast_naming_the_local_file_alternative(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = HubData(source="hub", dataset="org/clinic-faq", config="en", task="instruction")
    start = time.monotonic()
    lines = problems_of(cfg)
    assert time.monotonic() - start < 5
    assert len(lines) == 1 and lines[0].startswith("data.dataset: org/clinic-faq (config en) is on the Hub, but HF_HUB_OFFLINE is set")
    assert "without network use source: file with path: train.jsonl" in lines[0]
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(data_common, "offline_reason", lambda: "huggingface.co is unreachable (Name or service not known)")
    assert "huggingface.co is unreachable" in problems_of(cfg)[0]


def test_hub_dataset_with_class_label_features_and_split_names(monkeypatch):
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Sequence, Value

    features = Features({"sentence": Value("string"), "verdict": ClassLabel(names=["neg", "pos"])})
    make = lambda n: Dataset.from_dict({"sentence": [f"s{i}" for i in range(n)], "verdict": [i % 2 for i in range(n)]},
                                       features=features)
    seen = {}

    def fake_load(dataset, config=None, revision=None):
        seen.update(dataset=dataset, config=config, revision=revision)
        return DatasetDict({"train": make(10), "dev": make(4), "eval": make(6)})

    monkeypatch.setattr(data_common, "offline_reason", lambda: None)
    monkeypatch.setattr("datasets.load_dataset", fake_load)
    task = {"type": "classification", "text": "sentence", "label": "verdict"}
    data = load(HubData(source="hub", dataset="org/reviews", revision="v1", task=task, splits={"test": "eval"}))
    assert seen == {"dataset": "org/reviews", "config": None, "revision": "v1"}
    assert data.labels == ("neg", "pos") and (len(data.train), len(data.validation), len(data.test)) == (10, 4, 6)
    assert data.test[0].id == "eval row 0" and data.test[0].completion == "neg"
    lines = problems_of(HubData(source="hub", dataset="org/reviews", task=task, splits={"test": "testing"}))
    assert lines == ["data.splits.test: org/reviews has no split 'testing' (it has train, dev, eval); set data.splits.test "
                     "to one of them or remove it to hold rows out of train"]
    tags = Features({"tokens": Sequence(Value("string")), "ner_tags": Sequence(ClassLabel(names=["O", "B-LOC", "I-LOC"]))})
    monkeypatch.setattr("datasets.load_dataset", lambda *a, **k: DatasetDict({"train": Dataset.from_dict(
        {"tokens": [["in", "Lagos"]] * 6, "ner_tags": [[0, 1]] * 6}, features=tags)}))
    data = load(HubData(source="hub", dataset="org/ner", task={"type": "token_classification", "tags": "ner_tags"}))
    assert data.train[0].tags == ("O", "B-LOC") and data.labels == ("B-LOC", "I-LOC", "O")


# --------------------------------------------------------------------------- the example files
@pytest.mark.parametrize(
    "name, task, sizes, labels",
    [
        ("clinic_faq.jsonl", "instruction", (21, 3, 6), 0),
        ("contract_clauses.csv", "classification", (42, 6, 12), 6),
        ("medication_ner.conll", "token_classification", (42, 6, 12), 11),
    ],
)
def test_example_files_load(name, task, sizes, labels):
    data = load(file_cfg(EXAMPLES / name, task))
    assert (len(data.train), len(data.validation), len(data.test)) == sizes
    assert len(data.labels) == labels
    assert "CC0" in (EXAMPLES / "README.md").read_text(encoding="utf-8")
