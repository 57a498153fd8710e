"""The Trainer arguments adapt builds: no hidden gradient checkpointing, length-grouped batches, precision per device."""

from __future__ import annotations

import pytest
import torch
import yaml

from adapt.checks import load_recipe
from adapt.runs import RunDir


@pytest.fixture
def recipe(tmp_path):
    def make(**train):
        body = {"name": "t", "domain": "healthcare", "method": {"name": "qlora"},
                "data": {"source": "pubmedqa", "path": str(tmp_path)}, "train": train}
        path = tmp_path / "r.yaml"
        path.write_text(yaml.safe_dump(body))
        return load_recipe(path)

    return make


def test_sft_config_has_no_gradient_checkpointing_unless_asked(recipe, tmp_path):
    from adapt.tasks.sft import sft_config

    args = sft_config(recipe(), RunDir(tmp_path / "run"), "cpu")  # TRL's own default would be True
    assert args.gradient_checkpointing is False
    assert args.train_sampling_strategy == "group_by_length"
    assert not args.bf16 and not args.fp16  # a CPU computes in the model's dtype, no autocast
    asked = sft_config(recipe(gradient_checkpointing=True, group_by_length=False), RunDir(tmp_path / "run"), "cpu")
    assert asked.gradient_checkpointing is True and asked.train_sampling_strategy == "random"


def test_mixed_precision_follows_the_gpu(recipe, tmp_path, monkeypatch):
    from adapt.training.trainer import training_kwargs

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    kwargs = training_kwargs(recipe(), RunDir(tmp_path / "run"), "cuda")
    assert kwargs["fp16"] and not kwargs["bf16"]  # T4 / V100: fp16 with a loss scaler
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    kwargs = training_kwargs(recipe(), RunDir(tmp_path / "run"), "cuda")
    assert kwargs["bf16"] and not kwargs["fp16"]


def test_a_length_cut_that_drops_every_answer_is_a_clear_error(tmp_path, tiny_llama_dir):
    from pathlib import Path

    from adapt import train
    from adapt.errors import AdaptError

    sample = Path(__file__).resolve().parents[2] / "domains" / "healthcare" / "sample"
    body = {"name": "short", "domain": "healthcare", "model": {"source": str(tiny_llama_dir)}, "method": {"name": "qlora"},
            "data": {"source": "pubmedqa", "path": str(sample), "validation_size": 4},
            "train": {"max_steps": 1, "max_seq_len": 16, "eval_steps": 0}}
    path = tmp_path / "short.yaml"
    path.write_text(yaml.safe_dump(body))
    with pytest.raises(AdaptError, match="raise train.max_seq_len"):
        train.run(load_recipe(path), tmp_path / "run")
