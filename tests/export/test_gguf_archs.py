"""GGUF export and GGUF LoRA adapters for every architecture adapt writes, checked in llama.cpp itself.

For each architecture a tiny random model (2 layers, hidden 64, its own kind of tokenizer) is written
as an F16 GGUF; llama.cpp (llama-cpp-python, the ``gguf`` extra) must tokenize like the Hugging Face
tokenizer, give transformers' next-token logits and generate. A random LoRA on it, written as a GGUF
adapter and applied by llama.cpp at load time, must give transformers + peft's logits. The
llama.cpp tests are skipped without llama-cpp-python; the rest (pre-tokenizer table, errors, the
hand-off to llama.cpp's own converter) run everywhere.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from export_fixtures import build_tiny_arch, build_tiny_lora, lora_targets

from adapt.errors import AdaptError
from adapt.export import gguf_convert, llamacpp
from adapt.export.gguf_arch import ARCHS, SUPPORTED_MODEL_TYPES, load_arch
from adapt.quantize import export

ARCH_NAMES = ["llama", "mistral", "qwen2", "qwen3", "gemma2", "gemma3", "phi3"]
TEXT = "Does aspirin reduce the risk of stroke? 120 patients,  yes or no\nỌmọ ilé"
no_llama_cpp = pytest.mark.skipif(not llamacpp.available(), reason="llama-cpp-python (the gguf extra) is not installed")


@pytest.fixture(scope="module", params=ARCH_NAMES)
def tiny(request, tmp_path_factory) -> tuple[str, Path]:
    arch = request.param
    return arch, build_tiny_arch(arch, tmp_path_factory.mktemp(f"tiny-{arch}"))


def _hf_last_logits(model_dir: Path, ids: list[int], adapter: Path | None = None) -> np.ndarray:
    """transformers' reference, eager attention (Gemma 2's attention soft-cap is computed only there)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32, attn_implementation="eager")
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter))
    with torch.no_grad():
        return model.eval()(torch.tensor([ids])).logits[0, -1].numpy()


def _ids(model_dir: Path) -> list[int]:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir))(TEXT)["input_ids"]


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b))


def _close(logits: torch.Tensor, reference: torch.Tensor) -> bool:
    """Every logit within 1% of the largest: the F16 rounding of weights and adapter, nothing more."""
    return bool((logits - reference).abs().max() < 0.01 * reference.abs().max())


# --------------------------------------------------------------------------- in llama.cpp
@pytest.mark.llamacpp
@no_llama_cpp
def test_gguf_loads_tokenizes_matches_and_generates_in_llama_cpp(tiny, tmp_path):
    arch, model_dir = tiny
    ids = _ids(model_dir)
    path = export(model_dir, "gguf-f16", tmp_path / "f16")
    llm = llamacpp.load(path)
    try:
        assert llm.metadata["general.architecture"] == load_arch(model_dir).name
        assert llm.tokenize(TEXT.encode(), add_bos=True, special=True) == ids  # BOS as the GGUF says, like HF
        logits = llamacpp.next_token_logits(llm, ids)
        reference = _hf_last_logits(model_dir, ids)
        assert _cos(logits, reference) > 0.9999, arch
        assert np.abs(logits - reference).max() < 0.05 * np.abs(reference).max(), arch
        out = llm.create_completion("The contract may be", max_tokens=4, temperature=0.0)
        assert out["usage"]["completion_tokens"] > 0
    finally:
        llm.close()


@pytest.mark.llamacpp
@no_llama_cpp
def test_gguf_lora_applied_by_llama_cpp_matches_peft(tiny, tmp_path):
    arch, model_dir = tiny
    targets = lora_targets(arch)
    adapter = build_tiny_lora(model_dir, tmp_path / "adapter", **({"target_modules": targets} if targets else {}))
    ids = _ids(model_dir)
    with_lora = _hf_last_logits(model_dir, ids, adapter)
    assert np.abs(with_lora - _hf_last_logits(model_dir, ids)).max() > 0.1  # the adapter matters

    path = export(model_dir, "gguf-lora", tmp_path / "lora", adapter_dir=adapter, base_dir=model_dir)
    llm = llamacpp.load(path.parent / "base-f16.gguf", lora_path=path)
    try:
        logits = llamacpp.next_token_logits(llm, ids)
    finally:
        llm.close()
    assert _cos(logits, with_lora) > 0.9999, arch
    assert np.abs(logits - with_lora).max() < 0.05 * np.abs(with_lora).max(), arch


# --------------------------------------------------------------------------- the file itself (no llama.cpp needed)
def _fields(path: Path) -> dict:
    from gguf import GGUFReader

    reader = GGUFReader(str(path))
    out = {key: field.contents() for key, field in reader.fields.items() if not key.startswith("GGUF.")}
    out["_tensors"] = {t.name: [int(n) for n in t.shape] for t in reader.tensors}
    return out


EXPECTED = {  # per architecture: metadata and tensors that carry its llama.cpp conventions
    "llama": ({"llama.rope.dimension_count": 16}, {"token_embd.weight": [64, None]}, ["output.weight"]),
    # Mistral runs as llama in llama.cpp, which has no sliding window: the trained context is capped to it
    "mistral": ({"llama.context_length": 256}, {"output.weight": [64, None]}, []),
    "qwen2": ({"qwen2.attention.key_length": 16}, {"blk.0.attn_q.bias": [64], "blk.0.attn_k.bias": [32]},
              ["output.weight"]),
    "qwen3": ({"qwen3.attention.key_length": 128}, {"blk.1.attn_q_norm.weight": [128], "blk.1.attn_k_norm.weight": [128],
                                                    "blk.0.attn_q.weight": [64, 512]}, ["blk.0.attn_q.bias"]),
    "gemma2": ({"gemma2.attn_logit_softcapping": 2.0, "gemma2.final_logit_softcapping": 3.0,
                "gemma2.attention.sliding_window": 64},
               {"blk.0.post_attention_norm.weight": [64], "blk.0.post_ffw_norm.weight": [64]}, ["output.weight"]),
    "gemma3": ({"gemma3.attention.sliding_window": 64}, {"blk.0.attn_q_norm.weight": [256]}, ["output.weight"]),
    # Phi-3's fused projections stay fused, as llama.cpp's phi3 graph reads them
    "phi3": ({"phi3.rope.dimension_count": 16, "phi3.rope.scaling.original_context_length": 512,
              "phi3.attention.sliding_window": 0},
             {"blk.0.attn_qkv.weight": [64, 128], "blk.0.ffn_up.weight": [64, 256]}, ["blk.0.ffn_gate.weight"]),
}


def test_gguf_metadata_and_tensors_follow_llama_cpp_per_architecture(tiny, tmp_path):
    arch, model_dir = tiny
    fields = _fields(export(model_dir, "gguf-f16", tmp_path / "f16"))
    keys, tensors, absent = EXPECTED[arch]
    assert fields["general.architecture"] == SUPPORTED_MODEL_TYPES[json.loads((model_dir / "config.json").read_text())[
        "model_type"]]
    for key, value in keys.items():
        assert fields[key] == pytest.approx(value), key
    for name, shape in tensors.items():
        assert [n for n, want in zip(fields["_tensors"][name], shape) if want is not None] == [
            want for want in shape if want is not None], name
    for name in absent:
        assert name not in fields["_tensors"], name


def test_gguf_and_gguf_lora_reload_in_transformers_for_adapt_eval(tiny, tmp_path):
    """adapt scores GGUF exports through transformers' GGUF loader (adapt.quantize.load_export)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from adapt.export.load import load_export

    arch, model_dir = tiny
    if arch == "gemma2":
        pytest.skip("transformers' GGUF loader takes Gemma 2's soft-caps and query_pre_attn_scalar from its config "
                    "defaults, not from the file; the tiny model's are not the defaults (llama.cpp reads them)")
    ids = torch.tensor([_ids(model_dir)])
    base = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    model, _ = load_export(export(model_dir, "gguf-f16", tmp_path / "f16"), "gguf-f16", dtype=torch.float32)
    with torch.no_grad():
        assert _close(model(ids).logits, base(ids).logits), arch

    targets = lora_targets(arch)
    adapter = build_tiny_lora(model_dir, tmp_path / "adapter", **({"target_modules": targets} if targets else {}))
    path = export(model_dir, "gguf-lora", tmp_path / "lora", adapter_dir=adapter, base_dir=model_dir)
    model, _ = load_export(path, "gguf-lora", dtype=torch.float32)
    with torch.no_grad():
        reference = PeftModel.from_pretrained(base, str(adapter)).eval()(ids).logits
        assert _close(model(ids).logits, reference), arch


def test_one_record_per_architecture_covers_the_common_ones():
    assert {spec.gguf for spec in ARCHS} == {"llama", "qwen2", "qwen3", "gemma2", "gemma3", "phi3"}
    assert {"llama", "mistral", "qwen2", "qwen3", "gemma2", "gemma3_text", "phi3"} <= set(SUPPORTED_MODEL_TYPES)
    assert len(SUPPORTED_MODEL_TYPES) == sum(len(spec.model_types) for spec in ARCHS)  # no model_type twice


@pytest.mark.parametrize("name", ["llama-bpe", "qwen2", "tekken", "gpt-4o"])
def test_split_pre_tokenizers_get_llama_cpp_names(name, tmp_path):
    from export_fixtures import build_split_bpe_tokenizer

    from adapt.export.gguf_tokenizer import SPLIT_PRE_TOKENIZERS, build_vocab

    tokenizer = build_split_bpe_tokenizer(SPLIT_PRE_TOKENIZERS[name])
    tokenizer.save_pretrained(tmp_path)
    assert build_vocab(tmp_path, len(tokenizer)).pre == name


def test_a_split_llama_cpp_does_not_know_is_refused(tmp_path):
    from export_fixtures import build_split_bpe_tokenizer

    from adapt.export.gguf_tokenizer import build_vocab

    tokenizer = build_split_bpe_tokenizer(r"\p{L}+|\p{N}{1,2}|\s+")
    tokenizer.save_pretrained(tmp_path)
    with pytest.raises(AdaptError, match="no llama.cpp equivalent"):
        build_vocab(tmp_path, len(tokenizer))


# --------------------------------------------------------------------------- refusals and llama.cpp's own converter
def _with_config(model_dir: Path, out: Path, **changes) -> Path:
    shutil.copytree(model_dir, out)
    config = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps(config | changes))
    return out


@pytest.fixture(scope="module")
def tiny_qwen2(tmp_path_factory) -> Path:
    return build_tiny_arch("qwen2", tmp_path_factory.mktemp("qwen2"))


def test_unknown_architecture_names_model_type_supported_list_and_fix(tiny_qwen2, tmp_path, monkeypatch):
    monkeypatch.delenv(gguf_convert.ENV, raising=False)
    monkeypatch.setattr(gguf_convert, "find_converter", lambda: None)
    bad = _with_config(tiny_qwen2, tmp_path / "m", model_type="starcoder2")
    with pytest.raises(AdaptError) as error:
        export(bad, "gguf-f16", tmp_path / "out")
    message = str(error.value)
    assert "\n" not in message and "model_type 'starcoder2'" in message
    assert "llama, mistral, qwen2, qwen3, gemma2, gemma3_text, gemma3, phi3" in message
    assert gguf_convert.ENV in message and "--format nf4" in message
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("arch", "changes", "match"),
    [
        ("qwen2", {"use_sliding_window": True}, "use_sliding_window=True: llama.cpp's qwen2 has no sliding-window"),
        ("gemma2", {"layer_types": ["full_attention", "sliding_attention"]}, "fixed sliding/full alternation"),
        ("gemma2", {"query_pre_attn_scalar": 64}, "scales attention by 1/sqrt\\(16\\)"),
        ("gemma2", {"tie_word_embeddings": False}, "untied lm_head"),
        ("qwen3", {"hidden_act": "gelu"}, "activation 'gelu'"),
        ("phi3", {"rope_parameters": {"rope_type": "longrope", "rope_theta": 1e4}}, "ADAPT_LLAMA_CPP_CONVERT"),
    ],
)
def test_configurations_llama_cpp_would_run_differently_are_refused(arch, changes, match, tmp_path):
    model_dir = _with_config(build_tiny_arch(arch, tmp_path / "src"), tmp_path / "m", **changes)
    with pytest.raises(AdaptError, match=match):
        load_arch(model_dir)


STAND_IN = '''
import json, sys
from pathlib import Path
import gguf, numpy as np
args = sys.argv[1:]
Path(sys.argv[0]).with_suffix(".json").write_text(json.dumps(args))
out = args[args.index("--outfile") + 1]
writer = gguf.GGUFWriter(out, "starcoder2")
if "--base" in args:
    writer.add_type("adapter"); writer.add_string("adapter.type", "lora"); writer.add_float32("adapter.lora.alpha", 8.0)
    writer.add_tensor("blk.0.attn_q.weight.lora_a", np.ones((4, 64), np.float32))
    writer.add_tensor("blk.0.attn_q.weight.lora_b", np.ones((64, 4), np.float32))
else:
    writer.add_tensor("token_embd.weight", np.ones((8, 64), np.float32))
writer.write_header_to_file(); writer.write_kv_data_to_file(); writer.write_tensors_to_file(); writer.close()
'''


def test_unknown_architecture_goes_to_llama_cpp_converter_when_installed(tiny_qwen2, tmp_path, monkeypatch):
    """The hand-off's contract: llama.cpp's command line, and the summary read back from the file it wrote.

    (A stand-in script speaks that command line here: no llama.cpp checkout is installed in the test
    environment. Its output is a real GGUF file, read back like any other.)
    """
    from adapt.export.gguf_lora import write_gguf_lora
    from adapt.export.gguf_writer import write_gguf

    checkout = tmp_path / "llama.cpp"
    checkout.mkdir()
    for script in (gguf_convert.SCRIPT, gguf_convert.LORA_SCRIPT):
        (checkout / script).write_text(STAND_IN)
    monkeypatch.setenv(gguf_convert.ENV, str(checkout))
    assert gguf_convert.find_converter() == checkout / gguf_convert.SCRIPT

    model = _with_config(tiny_qwen2, tmp_path / "m", model_type="starcoder2")
    summary = write_gguf(model, tmp_path / "out" / "model.gguf", "q8_0", name="tiny")
    assert json.loads((checkout / "convert_hf_to_gguf.json").read_text()) == [
        str(model), "--outfile", str(tmp_path / "out" / "model.gguf"), "--outtype", "q8_0", "--model-name", "tiny"]
    assert summary.arch == "starcoder2" and summary.n_params == 8 * 64 and summary.tensor_types == {"F32": 1}

    adapter = build_tiny_lora(tiny_qwen2, tmp_path / "adapter")
    info = write_gguf_lora(adapter, model, tmp_path / "out" / "adapter.gguf")
    assert json.loads((checkout / "convert_lora_to_gguf.json").read_text()) == [
        "--base", str(model), "--outfile", str(tmp_path / "out" / "adapter.gguf"), "--outtype", "f16", str(adapter)]
    assert info["arch"] == "starcoder2" and info["alpha"] == 8.0 and info["modules"] == 1

    # a known architecture stays with adapt's own writer even when the converter is there
    assert write_gguf(tiny_qwen2, tmp_path / "own.gguf", "f16", progress=False).arch == "qwen2"
    assert json.loads((checkout / "convert_hf_to_gguf.json").read_text())[0] == str(model)


def test_converter_path_that_does_not_exist_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv(gguf_convert.ENV, str(tmp_path / "nowhere"))
    with pytest.raises(AdaptError, match=f"{gguf_convert.ENV}=.*no convert_hf_to_gguf.py there"):
        gguf_convert.find_converter()


def test_failed_conversion_names_the_converters_last_line(tiny_qwen2, tmp_path):
    script = tmp_path / "convert_hf_to_gguf.py"
    script.write_text("import sys\nprint('loading', file=sys.stderr)\nsys.exit('NotImplementedError: Architecture X')\n")
    with pytest.raises(AdaptError, match="exit 1\\): NotImplementedError: Architecture X"):
        gguf_convert.convert_model(script, tiny_qwen2, tmp_path / "o.gguf", "f16")
