"""`model.compute_dtype: auto` per device, end to end on a CPU without native bf16; 16-bit storage of merges."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
import yaml
from safetensors import safe_open

from adapt.models import dtypes
from adapt.checks import load_recipe
from adapt.recipe import ModelConfig

SAMPLE = Path(__file__).resolve().parents[2] / "domains" / "healthcare" / "sample"


@pytest.fixture
def cpu_without_bf16(monkeypatch):
    """An AVX2-only CPU (AMD Zen 3, most laptops): torch dispatches AVX2 kernels, no bf16 instructions."""
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)


@pytest.fixture
def cpu_with_bf16(monkeypatch):
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)


def test_auto_on_each_device(cpu_without_bf16, monkeypatch):
    assert dtypes.resolve("auto", "cpu") == torch.float32
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert dtypes.resolve("auto", "cuda") == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert dtypes.resolve("auto", "cuda") == torch.float16  # T4, V100


def test_auto_picks_bf16_on_a_cpu_with_native_bf16(cpu_with_bf16):
    assert dtypes.resolve("auto", "cpu") == torch.bfloat16


def test_explicit_dtype_wins_and_slow_bf16_warns_once(cpu_without_bf16, caplog):
    dtypes._warn_slow_bf16.cache_clear()
    with caplog.at_level(logging.WARNING, logger="adapt.models.dtypes"):
        assert dtypes.resolve("bfloat16", "cpu") == torch.bfloat16
        assert dtypes.resolve("bfloat16", "cpu") == torch.bfloat16
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "30-60x" in lines[0] and "compute_dtype: auto" in lines[0]
    assert dtypes.resolve("float32", "cpu") == torch.float32


def test_storage_dtype_stays_16_bit():
    assert dtypes.storage_dtype("auto") == dtypes.storage_dtype("float32") == torch.bfloat16
    assert dtypes.storage_dtype("float16") == torch.float16


def test_auto_is_float32_end_to_end_without_native_bf16(cpu_without_bf16, tmp_path, tiny_llama_dir):
    """Train, eval and merge on the tiny model: fp32 compute everywhere, recorded; the merge is written in bf16."""
    from adapt import eval as eval_stage
    from adapt import merge, models, train

    assert ModelConfig().compute_dtype == "auto"
    body = {
        "name": "tiny-auto",
        "domain": "healthcare",
        "model": {"source": str(tiny_llama_dir)},
        "method": {"name": "qlora", "rank": 4, "alpha": 8},
        "data": {"source": "pubmedqa", "path": str(SAMPLE), "validation_size": 4, "max_context_chars": 200},
        "train": {"max_steps": 2, "batch_size": 2, "max_seq_len": 96, "save_steps": 5, "device": "cpu"},
        "eval": {"limit": 3, "perplexity_examples": 0},
        "export": {"merge": ["nf4_dequant"], "formats": []},
    }
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(body))
    recipe = load_recipe(path)

    base, _ = models.load_base(recipe.model)
    assert base.get_input_embeddings().weight.dtype == torch.float32
    nf4 = next(m for m in base.modules() if type(m).__name__.endswith("Linear4bit"))
    assert nf4.compute_dtype == torch.float32

    run = Path(train.run(recipe, tmp_path / "run"))
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["compute_dtype"] == "float32" and metrics["compute_dtype_setting"] == "auto"
    assert metrics["cpu_capability"] == "AVX2"
    assert metrics["nf4_cpu_path"] == "dequantize_once"

    result = eval_stage.run(run, only=["base", "adapter"])
    assert result["compute_dtype"] == "float32"

    (merged,) = merge.run(run)
    with safe_open(str(merged / "model.safetensors"), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.bfloat16}
