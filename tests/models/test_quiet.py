"""Harmless library noise is silenced around the call that causes it, and nothing else is."""

from __future__ import annotations

import logging
import warnings

import pytest

from adapt.models.quiet import LOAD_LOGGER, new_head_load, peft_wrap


class Reports(logging.Handler):
    """The LOAD REPORTs the loading logger lets through (transformers' loggers do not propagate to pytest's)."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "LOAD REPORT" in record.getMessage():
            self.seen.append(record.getMessage())


@pytest.fixture
def reports():
    handler = Reports()
    logging.getLogger(LOAD_LOGGER).addHandler(handler)
    yield handler.seen
    logging.getLogger(LOAD_LOGGER).removeHandler(handler)


def test_a_new_heads_missing_weights_are_not_reported(tiny_llama_dir, reports):
    from transformers import AutoModelForTokenClassification

    from adapt.models.config import ModelConfig
    from adapt.models.loading import load_base

    load_base(ModelConfig(source=str(tiny_llama_dir), quantization="none"), model_class=AutoModelForTokenClassification,
              skip_modules=["score"], num_labels=3)  # fmt: skip
    assert reports == []
    with new_head_load(["lm_head"]):  # another module named: the score head's report stays
        AutoModelForTokenClassification.from_pretrained(str(tiny_llama_dir), num_labels=3)
    assert len(reports) == 1 and "score.weight" in reports[0]
    assert not logging.getLogger(LOAD_LOGGER).filters  # the filter lives only around the call


def test_a_cut_bodys_dropped_layers_are_not_reported_and_a_lower_one_is(tiny_llama_dir, reports):
    from transformers import AutoModelForSequenceClassification

    from adapt.models.config import ModelConfig
    from adapt.models.loading import load_base

    load_base(ModelConfig(source=str(tiny_llama_dir), quantization="none"), model_class=AutoModelForSequenceClassification,
              skip_modules=["score"], num_labels=3, num_hidden_layers=1)  # fmt: skip
    assert reports == []
    with new_head_load(["score"], layers_from=2):  # layer 1 is dropped but not said to be: its report stays
        AutoModelForSequenceClassification.from_pretrained(str(tiny_llama_dir), num_labels=3, num_hidden_layers=1)
    assert len(reports) == 1 and "layers.1." in reports[0]


def test_peft_wrapping_drops_only_the_deprecated_property_warning():
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with peft_wrap():
            warnings.warn("`is_gradient_checkpointing` is deprecated and will be removed in v6.", FutureWarning)
            warnings.warn("something else", FutureWarning)
        warnings.warn("`is_gradient_checkpointing` is deprecated and will be removed in v6.", FutureWarning)
    assert [str(w.message)[:20] for w in seen] == ["something else", "`is_gradient_checkpo"]


@pytest.mark.parametrize("heads", [None, []])
def test_no_heads_no_filter(heads):
    with new_head_load(heads):
        assert not logging.getLogger(LOAD_LOGGER).filters
