"""adapt.quantize / adapt.export: every format written from tiny random models, reloaded and compared."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import bitsandbytes as bnb
import numpy as np
import pytest
import torch

from adapt.errors import AdaptError
from adapt.export.gguf_arch import load_arch, permute_rows, unpermute_rows
from adapt.export.load import load_export
from adapt.quantize import export, run

REPO = Path(__file__).resolve().parents[2]

SAMPLES = [
    "Does aspirin reduce the risk of stroke in patients with atrial fibrillation?",
    "Licensee shall not assign this Agreement. 12 345 6789",
    "Ọmọ ilé ìwé náà lọ sí Èkó.  Two  spaces\nand a newline",
]
PROMPT = "Context: a randomized trial of 120 patients. Question: is the treatment effective? Answer: yes"


def _reference_logits(model_dir: Path, text: str = PROMPT) -> tuple[torch.Tensor, torch.Tensor]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    ids = torch.tensor([tokenizer(text)["input_ids"]])
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    with torch.no_grad():
        return ids, model(ids).logits[0]


def _logits(model, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(ids).logits[0].float()


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0).item()


def _fields(path: Path) -> dict:
    from gguf import GGUFReader

    reader = GGUFReader(str(path))
    out = {}
    for key, field in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        out[key] = [field.contents(i) for i in range(len(field.data))] if len(field.data) > 1 else field.contents()
    out["_tensors"] = {t.name: (t.tensor_type.name, [int(n) for n in t.shape]) for t in reader.tensors}
    return out


@pytest.fixture(scope="module")
def reference(tiny_llama_dir):
    return _reference_logits(tiny_llama_dir)


@pytest.fixture(scope="module")
def tiny_gemma_dir(tmp_path_factory) -> Path:
    from export_fixtures import build_tiny_gemma3

    return build_tiny_gemma3(tmp_path_factory.mktemp("tiny-gemma3"))


@pytest.fixture(scope="module")
def tiny_lora_dir(tiny_llama_dir, tmp_path_factory) -> Path:
    from export_fixtures import build_tiny_lora

    return build_tiny_lora(
        tiny_llama_dir, tmp_path_factory.mktemp("lora") / "adapter", rank_pattern={"down_proj": 2}, alpha_pattern={"v_proj": 3}
    )


# --------------------------------------------------------------------------- GGUF, llama
@pytest.mark.parametrize(
    ("fmt", "min_cos", "min_top1"),
    [("gguf-f16", 0.99999, 1.0), ("gguf-q8_0", 0.9995, 1.0), ("gguf-q4_0", 0.98, 0.8)],
)
def test_gguf_llama_reloads_close_to_source(tiny_llama_dir, reference, tmp_path, fmt, min_cos, min_top1):
    ids, ref = reference
    path = export(tiny_llama_dir, fmt, tmp_path / fmt)
    assert path.suffix == ".gguf" and path.parent == tmp_path / fmt and path.is_file()
    manifest = json.loads((tmp_path / fmt / "export.json").read_text())
    assert manifest["format"] == fmt and manifest["size_bytes"] == path.stat().st_size

    model, _ = load_export(path.parent, fmt, dtype=torch.float32)  # the directory works as well as the file
    logits = _logits(model, ids)
    assert _cos(logits, ref) >= min_cos
    assert (logits.argmax(-1) == ref.argmax(-1)).float().mean().item() >= min_top1
    if fmt == "gguf-f16":
        assert torch.allclose(logits, ref, atol=2e-3)


def test_gguf_llama_metadata_and_tensors(tiny_llama_dir, tmp_path):
    fields = _fields(export(tiny_llama_dir, "gguf-q4_0", tmp_path / "q4"))
    config = json.loads((tiny_llama_dir / "config.json").read_text())
    assert fields["general.architecture"] == "llama"
    assert fields["general.file_type"] == 2  # MOSTLY_Q4_0
    expected = {
        "llama.context_length": 512, "llama.embedding_length": 64, "llama.block_count": 2,
        "llama.feed_forward_length": 128, "llama.attention.head_count": 4, "llama.attention.head_count_kv": 2,
        "llama.rope.dimension_count": 16, "llama.vocab_size": config["vocab_size"],
    }
    assert {key: fields[key] for key in expected} == expected
    assert fields["llama.rope.freq_base"] == pytest.approx(10000.0)
    assert fields["llama.attention.layer_norm_rms_epsilon"] == pytest.approx(1e-6)
    # tokenizer: byte-level BPE with its merges, GPT-2 pre-tokenizer, ChatML template, special ids
    assert fields["tokenizer.ggml.model"] == "gpt2" and fields["tokenizer.ggml.pre"] == "gpt-2"
    assert len(fields["tokenizer.ggml.tokens"]) == config["vocab_size"]
    tokenizer_json = json.loads((tiny_llama_dir / "tokenizer.json").read_text())
    assert len(fields["tokenizer.ggml.merges"]) == len(tokenizer_json["model"]["merges"])
    assert fields["tokenizer.ggml.bos_token_id"] == config["bos_token_id"]
    assert fields["tokenizer.ggml.eos_token_id"] == config["eos_token_id"]
    assert fields["tokenizer.ggml.padding_token_id"] == config["pad_token_id"]
    assert fields["tokenizer.ggml.token_type"][:3] == [3, 3, 3]  # <|endoftext|>, <|im_start|>, <|im_end|> are CONTROL
    assert "<|im_start|>" in fields["tokenizer.chat_template"]
    # tensors: tied output not written, norms F32, embedding kept at Q8_0 in a Q4_0 file
    tensors = fields["_tensors"]
    assert "output.weight" not in tensors
    assert tensors["token_embd.weight"] == ("Q8_0", [64, config["vocab_size"]])
    assert tensors["blk.0.attn_norm.weight"][0] == "F32" and tensors["output_norm.weight"][0] == "F32"
    assert tensors["blk.1.attn_k.weight"] == ("Q4_0", [64, 32])
    assert tensors["blk.1.ffn_down.weight"] == ("Q4_0", [128, 64])


def test_gguf_tokenizer_and_chat_template_round_trip(tiny_llama_dir, tmp_path):
    from transformers import AutoTokenizer

    path = export(tiny_llama_dir, "gguf-f16", tmp_path / "f16")
    source = AutoTokenizer.from_pretrained(str(tiny_llama_dir))
    _, from_gguf = load_export(path, "gguf-f16", gguf_tokenizer=True)
    for text in SAMPLES:
        assert from_gguf(text)["input_ids"] == source(text)["input_ids"], text
    messages = [{"role": "user", "content": "Is aspirin effective?"}]
    assert from_gguf.chat_template == source.chat_template
    assert from_gguf.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) == source.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True
    )
    # by default scoring uses the source model's tokenizer (recorded in export.json), with a pad token
    _, default = load_export(path, "gguf-f16")
    assert default.pad_token is not None and default(SAMPLES[0])["input_ids"] == source(SAMPLES[0])["input_ids"]


def test_qk_permutation_is_llama_cpp_layout_and_transformers_inverts_it():
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

    rng = np.random.default_rng(0)
    weight = rng.standard_normal((3 * 8, 5)).astype(np.float32)  # 3 heads, head_dim 8
    permuted = permute_rows(weight, 3)
    # llama.cpp interleaves the two rotate-half halves of every head: rows (0, 4, 1, 5, 2, 6, 3, 7) of head 0
    assert np.array_equal(permuted[:8], weight[[0, 4, 1, 5, 2, 6, 3, 7]])
    assert np.array_equal(unpermute_rows(permuted, 3), weight)
    undone = LlamaTensorProcessor({"num_attention_heads": 3, "num_key_value_heads": 3})._reverse_permute_weights(permuted, 3, 3)
    assert np.array_equal(undone, weight)


# --------------------------------------------------------------------------- GGUF, gemma3
def test_gguf_gemma3_round_trip(tiny_gemma_dir, tmp_path):
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    ids, ref = _reference_logits(tiny_gemma_dir, SAMPLES[0])
    path = export(tiny_gemma_dir, "gguf-f16", tmp_path / "f16")
    model, _ = load_export(path, "gguf-f16", dtype=torch.float32)
    assert type(model).__name__ == "Gemma3ForCausalLM"
    assert torch.allclose(_logits(model, ids), ref, atol=2e-3)

    fields = _fields(path)
    assert fields["general.architecture"] == "gemma3"
    assert fields["gemma3.attention.key_length"] == 256 and fields["gemma3.attention.head_count_kv"] == 1
    assert fields["gemma3.rope.freq_base"] == pytest.approx(1e6) and fields["gemma3.rope.freq_base_swa"] == pytest.approx(1e4)
    assert fields["gemma3.attention.sliding_window"] == 64
    assert fields["gemma3.attention.sliding_window_pattern"] == [True, True]
    # llama.cpp multiplies by the norm weight itself: Gemma's (1 + w) is stored
    from gguf import GGUFReader
    from gguf.quants import dequantize

    stored = {t.name: dequantize(t.data, t.tensor_type) for t in GGUFReader(str(path)).tensors}
    weights = load_file(str(tiny_gemma_dir / "model.safetensors"))
    norm = weights["model.layers.0.post_feedforward_layernorm.weight"].float().numpy()
    assert np.allclose(stored["blk.0.post_ffw_norm.weight"], norm + 1.0, atol=1e-6)
    embedding = weights["model.embed_tokens.weight"].float().numpy()  # unscaled: llama.cpp applies sqrt(n_embd)
    assert np.allclose(stored["token_embd.weight"], embedding, atol=1e-2)
    # SentencePiece-style tokenizer: scores, CONTROL specials, BYTE fallback pieces
    assert fields["tokenizer.ggml.model"] == "llama"
    types, tokens = fields["tokenizer.ggml.token_type"], fields["tokenizer.ggml.tokens"]
    assert types[tokens.index("<bos>")] == 3 and types[tokens.index("<0x0A>")] == 6
    assert len(fields["tokenizer.ggml.scores"]) == len(tokens)
    source = AutoTokenizer.from_pretrained(str(tiny_gemma_dir))
    _, from_gguf = load_export(path, "gguf-f16", gguf_tokenizer=True)
    for text in SAMPLES:
        assert from_gguf(text)["input_ids"] == source(text)["input_ids"], text
    assert "<start_of_turn>" in fields["tokenizer.chat_template"]


def test_gguf_gemma3_q8_0_close(tiny_gemma_dir, tmp_path):
    ids, ref = _reference_logits(tiny_gemma_dir, SAMPLES[1])
    model, _ = load_export(export(tiny_gemma_dir, "gguf-q8_0", tmp_path / "q8"), "gguf-q8_0", dtype=torch.float32)
    assert _cos(_logits(model, ids), ref) > 0.999


# --------------------------------------------------------------------------- GGUF LoRA adapter
def test_gguf_lora_adapter_matches_peft(tiny_llama_dir, tiny_lora_dir, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_llama_dir))
    ids = torch.tensor([tokenizer(PROMPT)["input_ids"]])
    base = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir), dtype=torch.float32)
    plain = _logits(base, ids)
    with_lora = _logits(PeftModel.from_pretrained(base, str(tiny_lora_dir)).eval(), ids)
    assert (with_lora - plain).abs().max() > 0.1  # the adapter matters

    path = export(tiny_llama_dir, "gguf-lora", tmp_path / "lora", adapter_dir=tiny_lora_dir, base_dir=tiny_llama_dir)
    assert path.name == "adapter-lora-f16.gguf" and (path.parent / "base-f16.gguf").is_file()
    fields = _fields(path)
    assert fields["general.type"] == "adapter" and fields["adapter.type"] == "lora"
    assert fields["general.architecture"] == "llama" and fields["adapter.lora.alpha"] == pytest.approx(8.0)
    tensors = fields["_tensors"]
    assert tensors["blk.0.attn_q.weight.lora_a"][1] == [64, 4]  # ggml order: A is (r x in), B is (out x r)
    assert tensors["blk.0.attn_q.weight.lora_b"][1] == [4, 64]
    assert tensors["blk.1.ffn_down.weight.lora_a"][1] == [128, 2]  # rank_pattern
    assert len(tensors) == 2 * 7 * 2

    model, _ = load_export(path.parent, "gguf-lora", dtype=torch.float32)
    assert torch.allclose(_logits(model, ids), with_lora, atol=2e-3)


def test_gguf_lora_reuses_the_gguf_the_base_came_from(tiny_llama_dir, tiny_lora_dir, tmp_path):
    from adapt.export.write import source_gguf

    original = export(tiny_llama_dir, "gguf-q8_0", tmp_path / "original")  # stands in for a downloaded GGUF
    base = tmp_path / "base"
    shutil.copytree(tiny_llama_dir, base)
    assert source_gguf(base) is None
    (base / "adapt_source.json").write_text(json.dumps({"kind": "gguf", "source": str(original)}))
    assert source_gguf(base) == original

    path = export(base, "gguf-lora", tmp_path / "lora", adapter_dir=tiny_lora_dir, base_dir=base)
    reused = path.parent / "base-source.gguf"
    assert reused.read_bytes() == original.read_bytes()
    manifest = json.loads((path.parent / "export.json").read_text())
    assert manifest["base_file"] == "base-source.gguf" and manifest["base"]["tensor_types"]["Q8_0"] == 15

    (base / "adapt_source.json").write_text(json.dumps({"kind": "gguf", "source": str(original), "sha256": "0" * 64}))
    assert source_gguf(base) is None  # a file that changed since the conversion is not reused
    with pytest.raises(AdaptError, match="not on disk"):
        export(base, "gguf-lora", tmp_path / "lora2", adapter_dir=tiny_lora_dir, base_dir=base, lora_base="source")


def test_gguf_lora_refuses_what_llama_cpp_cannot_apply(tiny_llama_dir, tmp_path):
    from export_fixtures import build_tiny_lora

    dora = build_tiny_lora(tiny_llama_dir, tmp_path / "dora", use_dora=True)
    with pytest.raises(AdaptError, match="DoRA"):
        export(tiny_llama_dir, "gguf-lora", tmp_path / "out", adapter_dir=dora, base_dir=tiny_llama_dir)
    with pytest.raises(AdaptError, match="adapter_dir and base_dir"):
        export(tiny_llama_dir, "gguf-lora", tmp_path / "out")
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- bitsandbytes
def test_nf4_export_loads_with_plain_transformers(tiny_llama_dir, reference, tmp_path):
    from transformers import AutoModelForCausalLM

    ids, ref = reference
    out = export(tiny_llama_dir, "nf4", tmp_path / "nf4")
    assert out == tmp_path / "nf4" and (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    config = json.loads((out / "config.json").read_text())["quantization_config"]
    assert config["bnb_4bit_quant_type"] == "nf4" and config["bnb_4bit_use_double_quant"] is True
    assert config["bnb_4bit_compute_dtype"] == "bfloat16"
    model = AutoModelForCausalLM.from_pretrained(str(out))  # no adapt code, no quantization argument
    assert type(model.model.layers[0].self_attn.q_proj).__name__ == "Linear4bit"
    assert _cos(_logits(model, ids), ref) > 0.98
    from safetensors import safe_open

    with safe_open(str(out / "model.safetensors"), framework="pt") as stored:  # packed 4-bit codes: two per byte
        packed = stored.get_tensor("model.layers.0.mlp.down_proj.weight")
        assert packed.dtype == torch.uint8 and packed.numel() == 128 * 64 // 2


def test_int8_export_saves_and_loads_on_cpu(tiny_llama_dir, reference, tmp_path):
    ids, ref = reference
    out = export(tiny_llama_dir, "int8", tmp_path / "int8")
    model, tokenizer = load_export(out, "int8")
    assert type(model.model.layers[0].mlp.down_proj).__name__ == "Linear8bitLt"
    assert _cos(_logits(model, ids), ref) > 0.999
    assert tokenizer(SAMPLES[0])["input_ids"]


def _tensor_layout(model_dir: Path) -> dict[str, tuple]:
    from safetensors import safe_open

    with safe_open(str(model_dir / "model.safetensors"), framework="pt") as stored:
        return {k: (stored.get_slice(k).get_shape(), stored.get_slice(k).get_dtype()) for k in stored.keys() if ".quant_state." not in k}


def _output_error(model, reference, sequences: list[list[int]]) -> float:
    """Mean squared logit error against the 16-bit reference model over ``sequences``."""
    errors = [(_logits(model, torch.tensor([ids])) - _logits(reference, torch.tensor([ids]))).pow(2).mean() for ids in sequences]
    return torch.stack(errors).mean().item()


def test_nf4_calibrated_loads_with_plain_transformers_and_beats_nf4(tiny_llama_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tiny import CORPUS

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_llama_dir))
    texts = list(dict.fromkeys(CORPUS))
    calibration = [tokenizer(t)["input_ids"] for t in texts[:4]]
    held_out = [tokenizer(t)["input_ids"] for t in texts[4:] + SAMPLES + [PROMPT]]
    with pytest.raises(AdaptError, match="calibration"):
        export(tiny_llama_dir, "nf4-calibrated", tmp_path / "none")
    plain = export(tiny_llama_dir, "nf4", tmp_path / "nf4")
    out = export(tiny_llama_dir, "nf4-calibrated", tmp_path / "calibrated", calibration=calibration)
    config = json.loads((out / "config.json").read_text())["quantization_config"]
    assert config["bnb_4bit_quant_type"] == "nf4" and config["bnb_4bit_use_double_quant"] is True
    assert _tensor_layout(out) == _tensor_layout(plain)  # the layout of plain nf4: codes, nested scales
    manifest = json.loads((out / "export.json").read_text())
    assert manifest["calibration"]["examples"] == 4 and manifest["calibration"]["weighted_error_vs_nf4"] < 1.0

    model = AutoModelForCausalLM.from_pretrained(str(out)).eval()  # no adapt code, no quantization argument
    assert type(model.model.layers[0].mlp.down_proj).__name__ == "Linear4bit"
    reference = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir), dtype=torch.float32).eval()
    nf4 = AutoModelForCausalLM.from_pretrained(str(plain)).eval()
    assert _output_error(model, reference, calibration) <= _output_error(nf4, reference, calibration)
    assert _output_error(model, reference, held_out) <= _output_error(nf4, reference, held_out)
    loaded, tokenizer = load_export(out, "nf4-calibrated")
    # still bitsandbytes' 4-bit layer (adapt scores it through its dequantize-once subclass on the CPU)
    assert isinstance(loaded.model.layers[0].self_attn.q_proj, bnb.nn.Linear4bit) and tokenizer(SAMPLES[0])["input_ids"]


def test_calibration_never_does_worse_than_plain_nf4_per_layer():
    from adapt.export.nf4_calibrated import calibrate_layer

    torch.manual_seed(0)
    weight = (torch.randn(96, 128) * 0.02).to(torch.bfloat16)
    layer = bnb.nn.Linear4bit(128, 96, bias=False, compute_dtype=torch.bfloat16, quant_type="nf4")
    layer.weight = bnb.nn.Params4bit(weight.clone(), requires_grad=False, quant_type="nf4", module=layer).to("cpu")
    power = torch.rand(128) ** 4
    power[:64] = 0  # channels no calibration input reaches: their blocks keep the plain scale
    stats = calibrate_layer(layer, weight, power)
    assert stats["error"] < stats["error_nf4"]
    assert layer.weight.quant_state.nested and layer.weight.data.dtype == torch.uint8
    dequantized = bnb.functional.dequantize_4bit(layer.weight.data, layer.weight.quant_state).float()
    packed, state = bnb.functional.quantize_4bit(weight, quant_type="nf4")
    plain = bnb.functional.dequantize_4bit(packed, state).float()
    torch.testing.assert_close(dequantized[:, :64], plain[:, :64], rtol=0.02, atol=1e-4)


# --------------------------------------------------------------------------- errors and atomicity
def test_q4_k_m_without_llama_cpp_names_the_extra(tiny_llama_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # import llama_cpp -> ImportError
    with pytest.raises(AdaptError, match=r"adapt\[gguf\]"):
        export(tiny_llama_dir, "gguf-q4_k_m", tmp_path / "q4km")
    assert not (tmp_path / "q4km").exists()


def test_unsupported_architecture_and_failed_export_keep_the_old_one(tiny_llama_dir, tmp_path):
    bad = tmp_path / "gpt2"
    shutil.copytree(tiny_llama_dir, bad)
    config = json.loads((bad / "config.json").read_text())
    (bad / "config.json").write_text(json.dumps(config | {"model_type": "gpt2"}))
    with pytest.raises(AdaptError, match="model_type 'gpt2'"):
        load_arch(bad)

    out = tmp_path / "export" / "gguf-f16"
    good = export(tiny_llama_dir, "gguf-f16", out)
    before = good.read_bytes()
    with pytest.raises(AdaptError, match="cannot be exported to GGUF"):
        export(bad, "gguf-f16", out)
    assert good.read_bytes() == before
    assert [p.name for p in out.parent.iterdir()] == ["gguf-f16"]  # no temporary left behind
    with pytest.raises(AdaptError, match="--format 'gguf-q2'"):
        export(tiny_llama_dir, "gguf-q2", out)  # type: ignore[arg-type]


def test_run_writes_every_format_under_export(tiny_llama_dir, tiny_lora_dir, tmp_path, capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_llama_dir, run_dir / "merged" / "fp16")
    shutil.copytree(tiny_lora_dir, run_dir / "adapter")
    (run_dir / "recipe.resolved.yaml").write_text(
        "name: tiny\ndomain: healthcare\n"
        f"model: {{source: '{tiny_llama_dir}', quantization: nf4}}\n"
        "method: {name: qlora}\ndata: {source: pubmedqa, path: /nonexistent}\n"
    )
    written = run(run_dir, ["gguf-q8_0", "nf4", "gguf-lora"], source="fp16")
    assert written["gguf-q8_0"] == run_dir / "export" / "gguf-q8_0" / "model-q8_0.gguf"
    assert written["nf4"] == run_dir / "export" / "nf4"
    assert written["gguf-lora"] == run_dir / "export" / "gguf-lora" / "adapter-lora-f16.gguf"
    assert all(path.exists() for path in written.values())
    printed = capsys.readouterr().out
    assert "gguf-q8_0" in printed and "KB" in printed
    lora = json.loads((run_dir / "export" / "gguf-lora" / "export.json").read_text())
    assert lora["base_weights"] == "nf4_dequant" and lora["base_file"] == "base-f16.gguf"  # what the adapter trained on
    assert lora["source"] == str((run_dir / "adapter").resolve())  # written from the adapter, not from a merge
    with pytest.raises(AdaptError, match="adapt merge"):
        run(run_dir, ["gguf-f16"])  # the recipe's default source: the nf4_dequant merge, absent here


def test_nf4_lora_is_the_trained_model_saved_in_4_bits(tiny_llama_dir, tiny_lora_dir, tmp_path):
    """The NF4 codes and scales are those training computed with, so the export scores exactly as the adapter did."""
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from adapt import models
    from adapt.runs import RunDir
    from adapt.variants import Variant, loaded

    run_ = RunDir(_tiny_run(tmp_path / "run", tiny_llama_dir, "qlora"))
    shutil.copytree(tiny_lora_dir, run_.adapter)
    recipe = run_.load_recipe()
    written = run(run_.root, ["nf4-lora"])  # no merged model needed
    assert written["nf4-lora"] == run_.export("nf4-lora") and not (run_.root / "merged").exists()
    out = written["nf4-lora"]
    assert {"adapter_config.json", "adapter_model.safetensors"} <= {p.name for p in (out / "adapter").iterdir()}
    manifest = json.loads((out / "export.json").read_text())
    assert manifest["base"]["quantized_linear_layers"] == 2 * 7 and manifest["base"]["storage_dtype"] == "bfloat16"

    stored = load_file(str(out / "base" / "model.safetensors"))
    trained = models.load_base(recipe.model)[0].state_dict()  # what training quantized and computed with
    assert stored["model.layers.0.mlp.down_proj.weight"].dtype == torch.uint8  # packed codes, two per byte
    assert stored["model.embed_tokens.weight"].dtype == torch.bfloat16
    assert all(torch.equal(stored[k], trained[k].to(stored[k].dtype)) for k in stored), "not the trained NF4 base"

    ids = torch.tensor([[5, 17, 42, 99, 230, 7, 64]])
    with loaded(run_, recipe, Variant("adapter", run_.adapter)) as (model, _, _):
        adapter = _logits(model, ids)
    with loaded(run_, recipe, Variant("export/nf4-lora", out)) as (model, _, _):
        assert torch.equal(_logits(model, ids), adapter)
    plain = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(out / "base")), str(out / "adapter"))
    assert _cos(_logits(plain.eval(), ids), adapter) > 0.999  # plain transformers + peft, no adapt code

    sixteen = run_.root / "recipe.resolved.yaml"
    sixteen.write_text(sixteen.read_text().replace("quantization: nf4", "quantization: none"))
    with pytest.raises(AdaptError, match="trained its adapter on a 16-bit base"):
        run(run_.root, ["nf4-lora"])
    assert torch.equal(load_file(str(out / "base" / "model.safetensors"))["model.norm.weight"], stored["model.norm.weight"])


def _tiny_run(run_dir: Path, model_dir: Path, method: str) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "recipe.resolved.yaml").write_text(
        "name: tiny\ndomain: healthcare\n"
        f"model: {{source: '{model_dir}', quantization: nf4}}\n"
        f"method: {{name: {method}}}\ndata: {{source: pubmedqa, path: '{REPO / 'domains' / 'healthcare' / 'sample'}'}}\n"
        "export: {calibration_examples: 8}\ntrain: {max_seq_len: 96}\n"
    )
    return run_dir


def test_run_calibrates_on_the_training_split_and_eval_finds_it(tiny_llama_dir, tmp_path):
    from adapt.runs import RunDir
    from adapt.variants import discover, loaded

    run_dir = _tiny_run(tmp_path / "run", tiny_llama_dir, "qlora")
    shutil.copytree(tiny_llama_dir, run_dir / "merged" / "fp16")
    written = run(run_dir, ["nf4-calibrated"], source="fp16")
    assert written["nf4-calibrated"] == run_dir / "export" / "nf4-calibrated"
    calibration = json.loads((written["nf4-calibrated"] / "export.json").read_text())["calibration"]
    assert calibration["examples"] == 8 and 8 * 48 < calibration["tokens"] <= 8 * 100  # train.max_seq_len 96 (+ the prompt cut's ellipsis)
    run_ = RunDir(run_dir)
    variant = next(v for v in discover(run_) if v.name == "export/nf4-calibrated")
    with loaded(run_, run_.load_recipe(), variant) as (model, tokenizer, _):
        assert isinstance(model.model.layers[1].mlp.up_proj, bnb.nn.Linear4bit)


def test_quantize_nf4_on_a_peqa_run_writes_the_folded_model(tiny_llama_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    from adapt import models
    from adapt.methods.peqa import io as peqa_io
    from adapt.methods.peqa import model as peqa
    from adapt.runs import RunDir

    run_ = RunDir(_tiny_run(tmp_path / "run", tiny_llama_dir, "peqa"))
    recipe = run_.load_recipe()
    model = peqa.build(recipe.method, models.load_base(recipe.model)[0].train())
    with torch.no_grad():
        for layer in peqa.wrappers(model).values():
            layer.log_scales["default"].normal_(0.0, 0.1, generator=torch.Generator().manual_seed(0))
    peqa_io.save(model, run_.adapter)
    ids = torch.tensor([[5, 17, 42, 99, 230, 7]])
    trained = _logits(model, ids)
    for fmt in ("nf4-calibrated", "gguf-lora", "nf4-lora"):
        with pytest.raises(AdaptError, match="--format nf4` writes that NF4 model"):
            run(run_.root, [fmt])
    written = run(run_.root, ["nf4"])  # no merged model needed: nothing is merged or re-quantized
    assert not (run_.root / "merged").exists()
    assert json.loads((written["nf4"] / "export.json").read_text())["folded"] is True
    exported = AutoModelForCausalLM.from_pretrained(str(written["nf4"])).train()
    assert torch.equal(_logits(exported, ids), trained)
