"""The demo serves runs of your own data: one tab per domain card, held-out examples from the user's file,
classification against the file's labels (no LegalBench task), NER with the file's own tags, the user's card."""

from __future__ import annotations

import pytest

from own_runs import own_runs

LABELS = ("confidentiality", "termination", "governing_law", "payment", "indemnification", "limitation_of_liability")


@pytest.fixture(scope="module")
def service(tiny_llama_dir, tmp_path_factory):
    from adapt.demo.runs import discover
    from adapt.demo.service import DemoService

    runs = own_runs(tiny_llama_dir)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path_factory.mktemp("elsewhere"))  # not the folder the runs were trained from
        return DemoService.start(discover([runs]))


def test_each_domain_card_is_a_tab(service):
    by_domain = service.runs.by_domain()
    assert sorted(by_domain) == ["clauses", "clinic", "medication"]
    assert [r.name for r in service.runs.token] == ["own-ner"]  # token classification by task kind, not by source
    assert {r.card.view for r in service.runs.all} == {"qa", "classification", "ner"}


def test_examples_come_from_the_users_held_out_rows(service):
    for name, prepared in service.prepared.items():
        assert prepared.examples, name
        assert "held-out test examples" in prepared.examples_source
    clauses = service.prepared["own-classification"]
    assert clauses.builder.suffix == "\n\nOptions: " + ", ".join(LABELS)
    assert not any("Options:" in e.text for e in clauses.examples)  # the typed text, without the reader's options line
    assert all(" " in e.text and not e.language for e in service.prepared["own-ner"].examples)


def test_a_text_is_classified_against_the_files_labels(service):
    text = service.prepared["own-classification"].examples[0].text
    results = service.classify("own-classification", text).results
    assert set(results) == {"base", "adapter"}
    assert tuple(results["adapter"].probs) == LABELS
    assert abs(sum(results["base"].probs.values()) - 1) < 1e-6


def test_a_sentence_is_tagged_with_the_files_tags(service):
    tagged = service.tag("own-ner", "Take 500 mg of amoxicillin three times a day", "")
    assert tagged.words[:2] == ["Take", "500"]
    kinds = {"DRUG", "DOSE", "FREQ", "ROUTE", "DURATION"}
    assert all(tag == "O" or tag[2:] in kinds for tag in tagged.tags)


def test_a_question_is_answered_by_both_models(service):
    steps = list(service.ask("own-instruction", "What are the clinic's opening hours?"))
    assert steps[-1].update.done and steps[-1].labels is None


def test_the_panel_shows_the_users_card_without_front_matter(service):
    from adapt.demo.panel import metrics_markdown, model_card_text, run_data_lines

    run = service.run("own-classification")
    lines = run_data_lines(run)
    assert any("Contract clauses by type" in line and "license CC0-1.0" in line for line in lines)
    assert not any("None" in line for line in lines)
    assert "### own-classification: Contract clause types (your own data)" in metrics_markdown(run)
    text = model_card_text(run)
    assert not text.lstrip().startswith("---") and "base_model:" not in text and "## Intended use" in text


def test_the_page_builds_one_tab_per_domain(service):
    from adapt.demo.ui import build_blocks

    blocks = build_blocks(service)
    tabs = {block.id for block in blocks.blocks.values() if type(block).__name__ == "Tab"}
    assert {"clinic", "clauses", "medication"} <= tabs
