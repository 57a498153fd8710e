"""Dataset readers: bundled samples (fast), bad data (file:line errors) and, when present, the real data."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest

from adapt.data import conll, legalbench, load_task, medquad, pubmedqa
from adapt.data.common import cut_at_sentence, cut_at_word
from adapt.data.splits import assert_disjoint, label_mix, seeded_sample, split_groups, stratified_split
from adapt.data.types import TextExample, TokenExample
from adapt.domains import load_domain_card
from adapt.errors import AdaptError, DataError
from adapt.recipe import LegalBenchData, MasakhaNERData, MedQuADData, PubMedQAData

REPO = Path(__file__).resolve().parents[2]
PUBMEDQA_SAMPLE = REPO / "domains/healthcare/sample"
MEDQUAD_SAMPLE = REPO / "domains/healthcare/sample_medquad"
LEGAL_SAMPLE = REPO / "domains/legal/sample"
NER_SAMPLE = REPO / "domains/masakhaner/sample"


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Readers' parse caches go to a temporary folder, not ~/.cache/adapt."""
    monkeypatch.setenv("ADAPT_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "adapt-cache"))


def pubmed_cfg(path, **kw) -> PubMedQAData:
    return PubMedQAData(source="pubmedqa", path=str(path), **kw)


def legal_cfg(path, **kw) -> LegalBenchData:
    return LegalBenchData(source="legalbench", path=str(path), **kw)


def ner_cfg(path, **kw) -> MasakhaNERData:
    return MasakhaNERData(source="masakhaner", path=str(path), **kw)


def doc_of(example: TextExample) -> str:
    return example.id.split("#")[0]


# --------------------------------------------------------------------------- splits
def test_stratified_split_is_seeded_proportional_and_covers_labels():
    items = [("a", i) for i in range(60)] + [("b", i) for i in range(30)] + [("c", i) for i in range(3)]
    rest, held = stratified_split(items, lambda x: x[0], 0.2, seed=1)
    assert stratified_split(items, lambda x: x[0], 0.2, seed=1) == (rest, held)
    assert stratified_split(items, lambda x: x[0], 0.2, seed=2)[1] != held
    assert sorted(rest + held) == sorted(items)
    counts = Counter(x[0] for x in held)
    assert counts["a"] == 12 and counts["b"] == 6 and counts["c"] >= 1
    assert {x[0] for x in rest} == {"a", "b", "c"}
    # an absolute size, and a singleton class goes to the held-out side
    _, held = stratified_split(items + [("z", 0)], lambda x: x[0], 10, seed=0)
    assert ("z", 0) in held


def test_seeded_sample_is_never_a_prefix():
    items = list(range(100))
    sample = seeded_sample(items, 10, seed=0)
    assert len(sample) == 10 and sample != items[:10]
    assert sample == seeded_sample(items, 10, seed=0) == sorted(sample)
    assert seeded_sample(items, None, 0) == items and seeded_sample(items, 500, 0) == items


def test_split_groups_and_disjointness_guard():
    keys = [f"doc{i}" for i in range(50)]
    held = split_groups(keys, 0.1, seed=3, stratum_of=lambda k: int(k[3:]) % 2)
    assert len(held) == 5 and held == split_groups(keys, 0.1, seed=3, stratum_of=lambda k: int(k[3:]) % 2)
    assert len(split_groups(keys[:4], 0.1, seed=0, minimum=2)) == 2
    assert_disjoint(["a", "b"], ["c"], "x")
    with pytest.raises(DataError, match="train on test"):
        assert_disjoint(["a", "b"], ["b"], "PubMedQA")
    assert label_mix(["yes", "no", "yes"]) == "yes 2 / no 1"


def test_text_cuts_respect_boundaries():
    text = "First sentence here. Second one is longer. Third."
    assert cut_at_sentence(text, 30) == "First sentence here."
    assert cut_at_sentence(text, 100) == text
    assert cut_at_word("alpha beta gamma delta", 12) == "alpha beta ..."
    assert cut_at_word("alpha", 0) == ""


# --------------------------------------------------------------------------- PubMedQA
def test_pubmedqa_sample_official_split():
    truth = json.loads((PUBMEDQA_SAMPLE / "test_ground_truth.json").read_text())
    data = load_task(pubmed_cfg(PUBMEDQA_SAMPLE, validation_size=8))
    assert data.kind == "classification" and data.labels == ("yes", "no", "maybe")
    assert sorted(e.id for e in data.test) == sorted(truth)
    assert {e.id: e.completion for e in data.test} == truth
    assert not {e.id for e in data.train + data.validation} & set(truth)
    assert len(data.train) == 32 and len(data.validation) == 8
    assert {e.completion for e in data.validation} == {"yes", "no", "maybe"}
    ex = data.train[0]
    assert ex.prompt.startswith("Context: ") and ex.prompt.endswith("Answer yes, no or maybe.")
    assert ex.choices == ("yes", "no", "maybe") and "Question: " in ex.prompt
    assert "test 20 (yes 8 / no 7 / maybe 5)" in data.description and data.license.startswith("MIT")


def test_pubmedqa_validation_is_seeded_and_capped():
    a = pubmedqa.load(pubmed_cfg(PUBMEDQA_SAMPLE, validation_size=8, seed=0))
    b = pubmedqa.load(pubmed_cfg(PUBMEDQA_SAMPLE, validation_size=8, seed=0))
    c = pubmedqa.load(pubmed_cfg(PUBMEDQA_SAMPLE, validation_size=8, seed=5))
    assert [e.id for e in a.validation] == [e.id for e in b.validation] != [e.id for e in c.validation]
    capped = pubmedqa.load(pubmed_cfg(PUBMEDQA_SAMPLE))  # default 50 > the 40 non-test questions
    assert len(capped.validation) == 8 and "capped" in capped.description
    few = pubmedqa.load(pubmed_cfg(PUBMEDQA_SAMPLE, validation_size=4, max_train_examples=10))
    assert len(few.train) == 10 and len(few.test) == 20


def test_pubmedqa_long_context_keeps_its_end_at_a_word_boundary():
    prompt = pubmedqa.format_prompt("Is it?", ("one two three four five six",), 14)
    assert prompt.startswith("Context: ... four five six\n")
    assert pubmedqa.format_prompt("Is it?", ("ctx",), 0) == "Question: Is it?\nAnswer yes, no or maybe."


def _write_pubmedqa(folder: Path, items: dict, truth: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ori_pqal.json").write_text(json.dumps(items, indent=4))
    (folder / "test_ground_truth.json").write_text(json.dumps(truth, indent=4))
    return folder


def _item(label: str) -> dict:
    return {"QUESTION": "Q?", "CONTEXTS": ["c"], "LABELS": ["RESULTS"], "final_decision": label}


def test_pubmedqa_bad_data(tmp_path):
    items = {str(i): _item("yes" if i % 2 else "no") for i in range(1, 11)}
    bad = dict(items, **{"7": _item("perhaps")})
    folder = _write_pubmedqa(tmp_path / "a", bad, {"1": "yes"})
    with pytest.raises(DataError, match=r"ori_pqal\.json:\d+: PMID 7: field final_decision is 'perhaps'"):
        pubmedqa.load(pubmed_cfg(folder))
    folder = _write_pubmedqa(tmp_path / "b", items, {"99": "yes"})
    with pytest.raises(DataError, match=r"test_ground_truth\.json:2: test PMID 99 is not in"):
        pubmedqa.load(pubmed_cfg(folder))
    folder = _write_pubmedqa(tmp_path / "c", items, {"1": "no"})
    with pytest.raises(DataError, match="differs from final_decision"):
        pubmedqa.load(pubmed_cfg(folder))
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "ori_pqal.json").write_text('{\n  "1": {"QUESTION": \n}')
    (tmp_path / "d" / "test_ground_truth.json").write_text("{}")
    with pytest.raises(DataError, match=r"ori_pqal\.json:3:\d+: not valid JSON"):
        pubmedqa.load(pubmed_cfg(tmp_path / "d"))
    with pytest.raises(DataError, match="does not exist"):
        pubmedqa.load(pubmed_cfg(tmp_path / "missing"))


def test_pubmedqa_hub_offline_fails_fast(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(DataError, match=r"HF_HUB_OFFLINE is set; set data\.path"):
        pubmedqa.load(PubMedQAData(source="pubmedqa"))
    assert time.perf_counter() - start < 5


def test_hub_unreachable_fails_fast(monkeypatch):
    import socket

    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)

    def refuse(*args, **kwargs):
        raise OSError(111, "Connection refused")

    monkeypatch.setattr(socket, "create_connection", refuse)
    with pytest.raises(DataError, match=r"huggingface\.co is unreachable .*set data\.path .*masakhaner2"):
        conll.load(MasakhaNERData(source="masakhaner"))


def test_pubmedqa_hub_rows_rebuild_official_split(monkeypatch):
    from adapt.data.pubmedqa_test_ids import TEST_PMIDS

    labels = ("yes", "no", "maybe")
    pmids = sorted(TEST_PMIDS) + list(range(1, 41))
    rows = [
        {"pubid": p, "question": f"Q{p}?", "context": {"contexts": ["a", "b"]}, "final_decision": labels[i % 3]}
        for i, p in enumerate(pmids)
    ]
    monkeypatch.setattr(pubmedqa, "load_hub", lambda *a, **k: {"train": rows})
    data = pubmedqa.load(PubMedQAData(source="pubmedqa", validation_size=5))
    assert len(data.test) == 500 and {int(e.id) for e in data.test} == set(TEST_PMIDS)
    assert len(data.train) + len(data.validation) == 40 and len(data.validation) == 5
    monkeypatch.setattr(pubmedqa, "load_hub", lambda *a, **k: {"train": rows[10:]})
    with pytest.raises(DataError, match="10 of the 500 official test PMIDs are absent"):
        pubmedqa.load(PubMedQAData(source="pubmedqa"))


# --------------------------------------------------------------------------- MedQuAD
def test_medquad_sample_document_split():
    data = load_task(MedQuADData(source="medquad", path=str(MEDQUAD_SAMPLE), eval_fraction=0.3))
    assert data.kind == "generation"
    splits = {s: {doc_of(e) for e in data.split(s)} for s in ("train", "validation", "test")}
    assert all(splits.values())
    assert not (splits["train"] & splits["validation"] or splits["train"] & splits["test"]
                or splits["validation"] & splits["test"])
    assert len(data.train) + len(data.validation) + len(data.test) == 24  # the empty answer is skipped
    assert {e.group for e in data.train} <= {"GHR", "NIDDK", "CDC", "MPlus_Health_Topics"}
    assert all(e.prompt.endswith("?") and " ?" not in e.prompt for e in data.train)
    again = medquad.load(MedQuADData(source="medquad", path=str(MEDQUAD_SAMPLE), eval_fraction=0.3))
    assert [e.id for e in again.test] == [e.id for e in data.test]


def test_medquad_parse_cache_is_keyed_on_the_files(tmp_path, monkeypatch):
    monkeypatch.setenv("ADAPT_CACHE_DIR", str(tmp_path / "cache"))
    pair = '<QAPair pid="1"><Question qtype="information">What is {0} ?</Question><Answer>{1}</Answer></QAPair>'
    def write(answer: str) -> None:
        for i in range(4):
            body = f'<Document id="{i}" source="X"><QAPairs>{pair.format(i, answer)}</QAPairs></Document>'
            _write_xml(tmp_path / "data/1_X_QA", f"{i}.xml", body)

    write("Old answer.")
    cfg = MedQuADData(source="medquad", path=str(tmp_path / "data"), eval_fraction=0.5)
    first = medquad.load(cfg)
    assert len(list((tmp_path / "cache/data").glob("medquad-*.json"))) == 1
    assert medquad.load(cfg).train == first.train  # served from the cache
    write("A new, longer answer.")
    assert {e.completion for e in medquad.load(cfg).train} == {"A new, longer answer."}


def test_medquad_answers_cut_at_sentence_and_train_capped():
    data = medquad.load(MedQuADData(source="medquad", path=str(MEDQUAD_SAMPLE), max_answer_chars=120,
                                    max_train_examples=5))
    assert len(data.train) == 5
    for e in data.train + data.test:
        assert len(e.completion) <= 120 and e.completion.endswith((".", "?", "!"))


def _write_xml(folder: Path, name: str, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(body, encoding="utf-8")
    return folder


def test_medquad_bad_xml_names_file_and_line(tmp_path):
    good = '<Document id="1" source="X"><QAPairs><QAPair pid="1"><Question qtype="information">Q?</Question>' \
           "<Answer>A.</Answer></QAPair></QAPairs></Document>"
    _write_xml(tmp_path / "1_X_QA", "0001.xml", good)
    _write_xml(tmp_path / "1_X_QA", "0002.xml", '<?xml version="1.0"?>\n<Document id="2">\n<QAPairs>\n</Document>\n')
    with pytest.raises(DataError, match=r"0002\.xml:4:\d+: not well-formed XML"):
        medquad.load(MedQuADData(source="medquad", path=str(tmp_path)))
    _write_xml(tmp_path / "1_X_QA", "0002.xml", "<Other/>")
    with pytest.raises(DataError, match=r"0002\.xml:1: root element is <Other>"):
        medquad.load(MedQuADData(source="medquad", path=str(tmp_path)))
    with pytest.raises(DataError, match="holds no <n>_<source>_QA"):
        medquad.load(MedQuADData(source="medquad", path=str(LEGAL_SAMPLE)))


def test_medquad_hub_rows(monkeypatch):
    rows = [
        {"document_id": f"d{i // 3}", "document_source": "GHR" if i % 2 else "GARD", "question_id": str(i),
         "question_type": "information", "question": f"What is thing {i} ?", "answer": "" if i == 0 else f"Answer {i}."}
        for i in range(60)
    ]
    monkeypatch.setattr(medquad, "load_hub", lambda *a, **k: {"train": rows})
    data = medquad.load(MedQuADData(source="medquad", eval_fraction=0.2))
    assert len(data.train) + len(data.validation) + len(data.test) == 59
    assert not {doc_of(e) for e in data.train} & {doc_of(e) for e in data.test + data.validation}


# --------------------------------------------------------------------------- LegalBench
def test_legalbench_sample_cuad_group_and_split():
    data = load_task(legal_cfg(LEGAL_SAMPLE))  # default tasks: ["cuad"]
    assert data.metadata["tasks"] == ["audit_rights", "governing_law"]  # tos_category is not CUAD
    assert data.labels == ("Yes", "No") and data.kind == "classification"
    assert {e.group for e in data.test} == {"audit_rights", "governing_law"}
    for task in ("audit_rights", "governing_law"):
        held = [e for e in data.test if e.group == task]
        assert {e.completion for e in held} == {"Yes", "No"}
    assert not {e.prompt for e in data.train} & {e.prompt for e in data.test}
    ex = data.test[0]
    assert ex.prompt.endswith("Answer Yes or No.") and "\n\nClause: " in ex.prompt and ex.choices == ("Yes", "No")
    assert ex.prompt.count("Answer Yes or No") == 1  # base_prompt.txt's own answer line is not repeated
    again = legalbench.load(legal_cfg(LEGAL_SAMPLE))
    assert [e.id for e in again.test] == [e.id for e in data.test]
    other = legalbench.load(legal_cfg(LEGAL_SAMPLE, seed=1))
    assert [e.id for e in other.test] != [e.id for e in data.test]


def test_legalbench_multiclass_answer_column_and_names():
    data = legalbench.load(legal_cfg(LEGAL_SAMPLE, tasks=["tos_category", "CUAD_Audit Rights", "audit_rights"]))
    assert data.metadata["tasks"] == ["tos_category", "audit_rights"]
    tos = [e for e in data.test if e.group == "tos_category"]
    assert tos[0].choices == ("Arbitration", "Choice of law", "Unilateral change")
    assert {e.completion for e in tos} == set(tos[0].choices)
    assert tos[0].prompt.startswith("Which kind of potentially unfair term")  # README task summary
    assert "Text: " in tos[0].prompt and "Index" not in tos[0].prompt
    # train.tsv rows join training
    assert any(e.id.startswith("tos_category:train.tsv:") for e in data.train)


def _task(root: Path, name: str, test: str, train: str | None = None) -> Path:
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "test.tsv").write_text(test, encoding="utf-8")
    if train is not None:
        (folder / "train.tsv").write_text(train, encoding="utf-8")
    return root


def test_legalbench_bad_data_names_file_and_line(tmp_path):
    rows = "".join(f"clause {i}\t{'Yes' if i % 2 else 'No'}\n" for i in range(10))
    root = _task(tmp_path, "audit_rights", "text\tverdict\n" + rows)
    with pytest.raises(DataError, match=r"audit_rights/test\.tsv:1: no label column .*'label' or 'answer'"):
        legalbench.load(legal_cfg(root, tasks=["audit_rights"]))
    root = _task(tmp_path, "audit_rights", "text\tlabel\n" + rows + "clause x\tMaybe\n")
    with pytest.raises(DataError, match=r"audit_rights/test\.tsv:12: label 'Maybe' is not in .*Yes, No"):
        legalbench.load(legal_cfg(root, tasks=["audit_rights"]))
    root = _task(tmp_path, "audit_rights", "text\tlabel\n" + rows + "clause y\tYes\textra\n")
    with pytest.raises(DataError, match=r"audit_rights/test\.tsv:12: 3 tab-separated fields but the header has 2"):
        legalbench.load(legal_cfg(root, tasks=["audit_rights"]))
    root = _task(tmp_path, "audit_rights", "text\tlabel\n")
    with pytest.raises(DataError, match=r"audit_rights/test\.tsv:2: no labelled rows \(empty split\)"):
        legalbench.load(legal_cfg(root, tasks=["audit_rights"]))
    root = _task(tmp_path, "audit_rights", "text\tlabel\nonly one\tYes\n")
    with pytest.raises(DataError, match="1 labelled row.*split would be empty"):
        legalbench.load(legal_cfg(root, tasks=["audit_rights"]))
    root = _task(tmp_path, "audit_rights", "text\tlabel\n" + rows.replace("clause 3\tYes", "clause 3\t"))
    with pytest.raises(DataError, match=r"test\.tsv:5: empty 'label' value"):
        legalbench.load(legal_cfg(root, tasks=["audit_rights"]))
    with pytest.raises(DataError, match="no LegalBench task folder .*known tasks here: audit_rights"):
        legalbench.load(legal_cfg(root, tasks=["no_such_task"]))


def test_legalbench_reads_quoted_and_multiline_fields(tmp_path):
    rows = ['"EFFECTIVE DATE" means March 3, 2003.\tNo', '"A clause\nover two lines"\tYes']
    rows += [f"clause {i}\t{'Yes' if i % 2 else 'No'}" for i in range(8)]
    root = _task(tmp_path, "effective_date", "text\tlabel\n" + "\n".join(rows) + "\n")
    data = legalbench.load(legal_cfg(root, tasks=["effective_date"]))
    prompts = {e.id: e.prompt for e in data.train + data.validation + data.test}
    assert "Clause: EFFECTIVE DATE means March 3, 2003." in prompts["effective_date:test.tsv:2"]
    assert "Clause: A clause over two lines" in prompts["effective_date:test.tsv:3"]
    assert "effective_date:test.tsv:5" in prompts  # line numbers count the physical lines


def test_legalbench_rejects_open_answer_tasks(tmp_path):
    root = _task(tmp_path, "essay", "text\tanswer\n" + "".join(f"q{i}\tanswer number {i}\n" for i in range(30)))
    with pytest.raises(DataError, match="30 distinct labels in 30 rows: an open-answer task"):
        legalbench.load(legal_cfg(root, tasks=["essay"]))


def test_legalbench_hub_offline(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(DataError, match=r"HF_DATASETS_OFFLINE is set; set data\.path"):
        legalbench.load(LegalBenchData(source="legalbench", tasks=["audit_rights"]))


# --------------------------------------------------------------------------- MasakhaNER (CoNLL)
def test_conll_sample():
    data = load_task(ner_cfg(NER_SAMPLE))
    assert data.kind == "token_classification"
    assert (len(data.train), len(data.validation), len(data.test)) == (36, 12, 12)
    assert data.labels == ("B-DATE", "B-LOC", "B-ORG", "B-PER", "I-DATE", "I-LOC", "I-ORG", "I-PER", "O")
    ex = data.train[0]
    assert isinstance(ex, TokenExample) and len(ex.tokens) == len(ex.tags) and ex.group == "yor"
    assert "CC BY-NC 4.0" in data.license
    sampled = conll.load(ner_cfg(NER_SAMPLE, max_train_examples=10))
    assert len(sampled.train) == 10 and sampled.train != data.train[:10]


def _conll(tmp_path: Path, text: str, name: str = "train.txt") -> Path:
    folder = tmp_path / "yor"
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train.txt", "dev.txt", "test.txt"):
        (folder / split).write_text("Èkó B-LOC\n. O\n", encoding="utf-8")
    (folder / name).write_text(text, encoding="utf-8")
    return tmp_path


def test_conll_bad_lines_name_file_and_line(tmp_path):
    root = _conll(tmp_path, "Adé B-PER\nlọ O\n\nsí O Èkó\n")
    with pytest.raises(DataError, match=r"yor/train\.txt:4: 3 field\(s\) in 'sí O Èkó'.*expected 'token TAG'"):
        conll.load(ner_cfg(root))
    root = _conll(tmp_path, "Adé B-PER\nlọ PERSON\n")
    with pytest.raises(DataError, match=r"yor/train\.txt:2: tag 'PERSON' is not O, B-X or I-X.*expected 'token TAG'"):
        conll.load(ner_cfg(root))
    root = _conll(tmp_path, "Adé\n")
    with pytest.raises(DataError, match=r"train\.txt:1: 1 field\(s\)"):
        conll.load(ner_cfg(root))
    root = _conll(tmp_path, "\n\n", name="dev.txt")
    with pytest.raises(DataError, match=r"yor/dev\.txt:1: no sentences \(empty split\)"):
        conll.load(ner_cfg(root))
    with pytest.raises(DataError, match="no folder .*'hau'; available here: yor"):
        conll.load(ner_cfg(root, languages=["hau"]))


def test_conll_lenient_i_tag_and_blank_lines(tmp_path):
    root = _conll(tmp_path, "\ufeffÈkó I-LOC\nni O\n\n\n\n-DOCSTART- O\nAdé B-PER\r\n")
    data = conll.load(ner_cfg(root))
    assert [ex.tags for ex in data.train] == [("I-LOC", "O"), ("B-PER",)]
    assert data.train[0].tokens[0] == "Èkó"


# --------------------------------------------------------------------------- domain cards
@pytest.mark.parametrize("name,view", [("healthcare", "qa"), ("legal", "classification"), ("masakhaner", "ner")])
def test_domain_cards(name, view):
    card = load_domain_card(name)
    assert card.view == view and card.examples and card.datasets
    for ds in card.datasets:
        assert ds.license and ds.hub_id and card.sample_path(ds.name).is_dir()


def test_domain_card_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("ADAPT_DOMAINS_DIR", str(tmp_path))
    with pytest.raises(AdaptError, match="no .*domain.yaml; known domains: none"):
        load_domain_card("legal")
    (tmp_path / "legal").mkdir()
    (tmp_path / "legal" / "domain.yaml").write_text("name: legal\ntitle: t\ndescription: d\nview: table\ncolour: red\n")
    with pytest.raises(AdaptError) as info:
        load_domain_card("legal")
    message = str(info.value)
    assert "view" in message and "colour" in message and "datasets" in message


# --------------------------------------------------------------------------- real data (skipped when absent)
@pytest.mark.data
def test_real_pubmedqa_official_split(shared_data):
    data = load_task(pubmed_cfg(shared_data / "pubmedqa"))
    truth = json.loads((shared_data / "pubmedqa/test_ground_truth.json").read_text())
    assert len(data.test) == 500 and {e.id for e in data.test} == set(truth)
    assert not {e.id for e in data.train + data.validation} & set(truth)
    assert (len(data.train), len(data.validation)) == (450, 50)
    assert Counter(e.completion for e in data.test) == {"yes": 276, "no": 169, "maybe": 55}
    contexts = [e.prompt.split("\nQuestion: ")[0].removeprefix("Context: ") for e in data.train]
    assert max(map(len, contexts)) <= 1500 + len("... ") and any(c.startswith("... ") for c in contexts)


@pytest.mark.data
def test_real_medquad_no_document_in_two_splits(shared_data):
    data = medquad.load(MedQuADData(source="medquad", path=str(shared_data / "medquad")))
    splits = {s: {doc_of(e) for e in data.split(s)} for s in ("train", "validation", "test")}
    assert not (splits["train"] & splits["validation"] or splits["train"] & splits["test"]
                or splits["validation"] & splits["test"])
    assert len(data.train) > 14000 and len(data.test) == 200 and len(data.validation) == 200
    assert len({e.group for e in data.train}) == 9


@pytest.mark.data
def test_real_legalbench_cuad_split(shared_data):
    cfg = legal_cfg(shared_data / "legalbench")
    data = legalbench.load(cfg)
    tasks = data.metadata["tasks"]
    assert len(tasks) == 38 and "audit_rights" in tasks and "unfair_tos" not in tasks
    assert [e.id for e in legalbench.load(cfg).test] == [e.id for e in data.test]  # deterministic
    for task in tasks:
        held = Counter(e.completion for e in data.test if e.group == task)
        assert set(held) == {"Yes", "No"}, task  # held-out covers the label set
    assert not {e.prompt for e in data.train} & {e.prompt for e in data.test}
    with pytest.raises(DataError, match="open-answer task"):
        legalbench.load(legal_cfg(shared_data / "legalbench", tasks=["eurlex"]))


@pytest.mark.data
@pytest.mark.parametrize("lang,sizes", [("yor", (6876, 983, 1964)), ("hau", (5716, 816, 1633)),
                                        ("swa", (6593, 942, 1883))])
def test_real_masakhaner_counts(shared_data, lang, sizes):
    data = conll.load(ner_cfg(shared_data / "masakhaner2", languages=[lang]))
    assert (len(data.train), len(data.validation), len(data.test)) == sizes
    assert len(data.labels) == 9 and data.labels[-1] == "O"
