"""A tiny run through train, merge and eval, and a GGUF LoRA attached for scoring, warn nothing about
``is_gradient_checkpointing``: every peft wrap (get_peft_model, PeftModel.from_pretrained) sits inside
:func:`adapt.models.quiet.peft_wrap`."""

from __future__ import annotations

import warnings

import pytest

from tiny_runs import own_recipe, train_run

DEPRECATED = "is_gradient_checkpointing"


def deprecated(record) -> list[str]:
    return [str(w.message) for w in record if DEPRECATED in str(w.message)]


@pytest.mark.parametrize("title", ["instruction", "token_classification"])
def test_train_merge_and_eval_warn_nothing_about_the_deprecated_property(tiny_llama_dir, tmp_path, recwarn, title):
    from adapt import eval as evaluate
    from adapt import merge

    run = train_run(own_recipe(tiny_llama_dir, title), tmp_path / "run")
    written = merge.run(run.root, ["nf4_dequant"])
    result = evaluate.run(run.root, limit=2)

    assert [p.name for p in written] == ["nf4_dequant"] and (written[0] / "model.safetensors").is_file()
    assert {"base", "adapter", "merged/nf4_dequant"} <= set(result["variants"])
    assert deprecated(recwarn) == []


def test_a_gguf_lora_attaches_without_the_warning(tiny_llama_dir):
    import numpy as np
    from transformers import AutoModelForCausalLM

    from adapt.export.gguf_lora import LoraPair, attach_lora

    model = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir))
    module = "model.layers.0.self_attn.q_proj"
    pair = LoraPair(module, a=np.full((2, 64), 0.5, np.float32), b=np.full((64, 2), 0.25, np.float32), scale=2.0)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        model.is_gradient_checkpointing  # noqa: B018 - the property still warns outside the wrap
        peft_model = attach_lora(model, [pair], alpha=4.0)
    layer = dict(peft_model.base_model.model.named_modules())[module]
    assert layer.lora_A["default"].weight.sum().item() == pytest.approx(0.5 * 2 * 64)
    assert layer.scaling["default"] == pytest.approx(2.0)
    assert len(deprecated(seen)) == 1  # the direct read above, none from attach_lora
