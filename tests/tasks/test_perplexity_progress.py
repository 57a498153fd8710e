"""The perplexity phase shows a progress bar like the other scoring phases, and the bar changes no number."""

from __future__ import annotations

import math

from adapt.data.types import TextExample
from adapt.tasks.perplexity import perplexity, text_nll
from adapt.tasks.prompting import PromptFormat

EXAMPLES = [
    TextExample("What are the symptoms of diabetes?", "Frequent urination, thirst and hunger."),
    TextExample("May either party terminate the contract?", "Yes, upon thirty days written notice."),
    TextExample("Does aspirin reduce the risk of stroke?", "yes"),
]


def test_perplexity_shows_its_bar_and_keeps_its_value(tiny_llama_dir, capsys):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir))
    fmt = PromptFormat(AutoTokenizer.from_pretrained(str(tiny_llama_dir)))

    value = perplexity(model, fmt, EXAMPLES, max_length=64, answer_only=True)
    bar = capsys.readouterr().err
    nll, tokens = text_nll(model.eval(), fmt, EXAMPLES, max_length=64, answer_only=True)

    assert "perplexity:" in bar and f"| 0/{len(EXAMPLES)} [" in bar and "example/s" in bar  # drawn, then cleared
    assert tokens > len(EXAMPLES) and value == math.exp(nll / tokens) and math.isfinite(value)
    assert model.training is False  # perplexity() restores the mode it found (eval, as from_pretrained leaves it)
