"""adapt's GGUF files in llama.cpp itself (llama-cpp-python, the `gguf` extra); skipped without it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("llama_cpp", reason="llama-cpp-python (the gguf extra) is not installed")

from adapt.export import llamacpp  # noqa: E402
from adapt.quantize import export  # noqa: E402

pytestmark = pytest.mark.llamacpp

TEXT = "Does aspirin reduce the risk of stroke? 120 patients, yes or no"
REAL_SMOLLM2 = Path.home() / ".cache" / "adapt" / "models" / "smollm2-135m-instruct"


def _hf_last_logits(model_dir: Path, ids: list[int], adapter: Path | None = None) -> np.ndarray:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter))
    with torch.no_grad():
        return model.eval()(torch.tensor([ids])).logits[0, -1].numpy()


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b))


@pytest.fixture(scope="module")
def tiny_ids(tiny_llama_dir) -> list[int]:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_llama_dir))(TEXT)["input_ids"]


@pytest.mark.parametrize(
    ("fmt", "min_cos"), [("gguf-f16", 0.9999), ("gguf-q8_0", 0.999), ("gguf-q4_0", 0.98), ("gguf-q4_k_m", 0.98)]
)
def test_llama_cpp_loads_tokenizes_and_generates(tiny_llama_dir, tiny_ids, tmp_path, fmt, min_cos):
    path = export(tiny_llama_dir, fmt, tmp_path / fmt)
    llm = llamacpp.load(path)
    try:
        assert llm.tokenize(TEXT.encode(), add_bos=False, special=True) == tiny_ids
        logits = llamacpp.next_token_logits(llm, tiny_ids)
        assert _cos(logits, _hf_last_logits(tiny_llama_dir, tiny_ids)) >= min_cos
        out = llm.create_completion("The contract may be", max_tokens=6, temperature=0.0)
        assert out["usage"]["completion_tokens"] > 0
        # the chat template inside the GGUF is the one llama.cpp formats chats with
        assert "<|im_start|>" in llm.metadata["tokenizer.chat_template"]
        llamacpp.chat(llm, "Is aspirin effective?", max_tokens=4)
    finally:
        llm.close()


@pytest.mark.parametrize("amx", [True, False])
def test_an_amx_build_loads_without_extra_buffer_types_and_puts_the_default_back(
    tiny_llama_dir, tiny_ids, tmp_path, monkeypatch, amx
):
    """ggml's AMX buffer segfaults in llama_decode on Q8_0 (seen on an AMX Xeon); either build path must decode."""
    import llama_cpp

    this_build_has_amx = llamacpp.amx_built_in(llama_cpp)
    monkeypatch.setattr(llamacpp, "amx_built_in", lambda _: amx)
    default = llama_cpp.llama_cpp.llama_model_default_params
    llm = llamacpp.load(export(tiny_llama_dir, "gguf-q8_0", tmp_path / "q8"))
    try:
        assert llm.model_params.use_extra_bufts is (default().use_extra_bufts and not amx)
        assert llama_cpp.llama_cpp.llama_model_default_params is default
        if not amx and this_build_has_amx:
            return  # the crash itself; decoding it would end the test process
        assert np.isfinite(llamacpp.next_token_logits(llm, tiny_ids)).all()
    finally:
        llm.close()


def test_the_gpu_checks_llama_cpp_step_runs_on_a_cpu_build(tiny_llama_dir, tmp_path):
    """bench/gpu_check.py offloads every layer (-1) through adapt's loader; a CPU build keeps them and still decodes."""
    from bench.gpu_check import llamacpp_offload

    result = llamacpp_offload(export(tiny_llama_dir, "gguf-q8_0", tmp_path / "q8"))
    assert result["n_gpu_layers"] == -1 and result["decode_tokens_per_s"] > 0


def test_q4_k_m_is_llama_cpp_k_quant(tiny_llama_dir, tmp_path):
    from gguf import GGUFReader

    path = export(tiny_llama_dir, "gguf-q4_k_m", tmp_path / "q4km")
    reader = GGUFReader(str(path))
    assert reader.fields["general.file_type"].contents() == 15  # LLAMA_FTYPE_MOSTLY_Q4_K_M
    assert not list(path.parent.glob(".*"))  # the temporary F16 is gone


def test_gguf_lora_adapter_applies_in_llama_cpp(tiny_llama_dir, tiny_ids, tmp_path):
    from export_fixtures import build_tiny_lora

    adapter = build_tiny_lora(tiny_llama_dir, tmp_path / "adapter", rank_pattern={"down_proj": 2})
    path = export(tiny_llama_dir, "gguf-lora", tmp_path / "lora", adapter_dir=adapter, base_dir=tiny_llama_dir)
    base_file = path.parent / "base-f16.gguf"
    with_lora = _hf_last_logits(tiny_llama_dir, tiny_ids, adapter)
    without = _hf_last_logits(tiny_llama_dir, tiny_ids)
    assert np.abs(with_lora - without).max() > 0.1

    llm = llamacpp.load(base_file, lora_path=path)
    try:
        logits = llamacpp.next_token_logits(llm, tiny_ids)
    finally:
        llm.close()
    assert _cos(logits, with_lora) > 0.9999
    assert np.abs(logits - with_lora).max() < 0.02


def test_gemma3_gguf_and_its_lora_match_transformers_in_llama_cpp(tmp_path):
    from export_fixtures import build_tiny_gemma3, build_tiny_lora
    from transformers import AutoTokenizer

    gemma = build_tiny_gemma3(tmp_path / "gemma")
    text = "Does aspirin reduce the risk?  Two  spaces 12345\nỌmọ ilé"
    ids = AutoTokenizer.from_pretrained(str(gemma))(text)["input_ids"]
    path = export(gemma, "gguf-f16", tmp_path / "f16")
    llm = llamacpp.load(path)
    try:
        assert llm.tokenize(text.encode(), add_bos=False, special=True) == ids
        # sliding window, both RoPE bases, the (1 + w) norms and the sqrt(n_embd) embedding scale all line up
        assert _cos(llamacpp.next_token_logits(llm, ids), _hf_last_logits(gemma, ids)) > 0.9999
    finally:
        llm.close()

    adapter = build_tiny_lora(gemma, tmp_path / "adapter")
    lora = export(gemma, "gguf-lora", tmp_path / "lora", adapter_dir=adapter, base_dir=gemma)
    llm = llamacpp.load(lora.parent / "base-f16.gguf", lora_path=lora)
    try:
        assert _cos(llamacpp.next_token_logits(llm, ids), _hf_last_logits(gemma, ids, adapter)) > 0.9999
    finally:
        llm.close()


@pytest.mark.slow
def test_real_smollm2_q8_0_answers_in_llama_cpp(tmp_path):
    if not (REAL_SMOLLM2 / "config.json").is_file():
        pytest.skip(f"real SmolLM2 not converted yet at {REAL_SMOLLM2} (run `adapt models` / any recipe once)")
    # (4-bit SmolLM2 answers this one in French, the untouched Q4_1 from the wheel as well: q8_0 is the fair check)
    path = export(REAL_SMOLLM2, "gguf-q8_0", tmp_path / "q8")
    llm = llamacpp.load(path, n_ctx=256)
    try:
        answer = llamacpp.chat(llm, "What is the capital of France?", max_tokens=24)
    finally:
        llm.close()
    assert "Paris" in answer
