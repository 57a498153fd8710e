"""ROUGE-L of the instruction kind: scored as rouge-score's stemmed default, with no absl "Using default
tokenizer." line, from one scorer built once."""

from __future__ import annotations

import logging

from rouge_score import rouge_scorer

from adapt.tasks import instruction

REFERENCES = ["Frequent urination, thirst and fatigue are common symptoms.", "Either party may terminate it.", "yes"]
ANSWERS = ["Thirst and frequent urinating are common.", "The agreement terminates on notice.", ""]
LINE = "Using default tokenizer."


def test_rouge_l_is_the_stemmed_default_without_absls_line(caplog):
    caplog.set_level(logging.INFO)
    default = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    assert LINE in caplog.messages  # the line this test listens for, from rouge-score's own default
    caplog.clear()

    scores = instruction.rouge_l(REFERENCES, ANSWERS)
    again = instruction.rouge_l(REFERENCES[:1], ANSWERS[:1])

    assert scores == [default.score(r, a)["rougeL"].fmeasure for r, a in zip(REFERENCES, ANSWERS)]
    assert 0 < scores[0] < 1 and scores[2] == 0.0 and again == scores[:1]
    assert instruction._rouge_scorer() is instruction._rouge_scorer()  # built once per process
    assert LINE not in caplog.messages
