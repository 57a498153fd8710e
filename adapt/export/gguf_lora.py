"""A peft LoRA adapter as a llama.cpp GGUF LoRA adapter, and back.

llama.cpp applies such an adapter at load time on any base of the same
architecture, quantized or not, so the LoRA never goes through re-quantization.
The format (llama.cpp ``convert_lora_to_gguf.py`` / ``llama-adapter.cpp``):

- ``general.type = "adapter"``, ``adapter.type = "lora"``, ``adapter.lora.alpha``;
  ``general.architecture`` must equal the base model's;
- per adapted weight ``W`` (GGUF name ``blk.N.attn_q.weight``) two tensors,
  ``<name>.lora_a`` = A (r x in) and ``<name>.lora_b`` = B (out x r);
  llama.cpp adds ``(alpha / r) * B @ A`` where r is read from the tensor shapes;
- B's rows follow the base weight's layout, so for llama Q/K they get the same
  RoPE row permutation as the weight.

peft's own scale (rsLoRA, ``rank_pattern``, ``alpha_pattern``) is folded into B so
that llama.cpp's single ``alpha / r`` reproduces it exactly.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from adapt.errors import AdaptError
from adapt.export.gguf_arch import Arch, WriterLimit, load_arch, unpermute_rows
from adapt.export.gguf_convert import convert_lora, describe, find_converter
from adapt.export.gguf_writer import quiet_gguf_logs

_PEFT_PREFIX = "base_model.model."


@dataclass(frozen=True)
class LoraPair:
    module: str
    """Hugging Face module name, e.g. ``model.layers.0.self_attn.q_proj``."""
    a: np.ndarray
    """r x in."""
    b: np.ndarray
    """out x r."""
    scale: float
    """peft's scaling for this module (B @ A is multiplied by it)."""


def _pattern_value(patterns: dict[str, Any], module: str, default: Any) -> Any:
    for key, value in patterns.items():  # peft's rule: the key matches a dotted suffix of the module name
        if re.match(rf"(.*\.)?({key})$", module):
            return value
    return default


def read_peft_lora(adapter_dir: Path) -> tuple[list[LoraPair], float]:
    """The LoRA pairs of a peft adapter directory and its ``lora_alpha``."""
    from safetensors.numpy import load_file

    adapter_dir = Path(adapter_dir)
    config_path, weights_path = adapter_dir / "adapter_config.json", adapter_dir / "adapter_model.safetensors"
    if not config_path.is_file() or not weights_path.is_file():
        raise AdaptError(f"{adapter_dir}: not a peft adapter (needs adapter_config.json and adapter_model.safetensors)")
    config = json.loads(config_path.read_text())
    if config.get("peft_type") != "LORA":
        raise AdaptError(
            f"{adapter_dir}: peft_type {config.get('peft_type')!r}; llama.cpp adapters are plain LoRA "
            "(use the merged exports for this method, or its LoRA form, e.g. the MoE-LoRA collapse)"
        )
    if config.get("use_dora"):
        raise AdaptError(f"{adapter_dir}: DoRA adapters have no llama.cpp adapter form; use a merged export")
    if config.get("modules_to_save"):
        raise AdaptError(
            f"{adapter_dir}: modules_to_save {config['modules_to_save']} are fully trained layers a llama.cpp LoRA "
            "adapter cannot carry; use a merged export (gguf-q8_0, nf4...)"
        )
    alpha, rank = float(config["lora_alpha"]), int(config["r"])
    tensors = _load_safetensors_f32(weights_path, load_file)
    pairs: dict[str, dict[str, np.ndarray]] = {}
    for name, value in tensors.items():
        match = re.fullmatch(r"(.+)\.lora_(A|B)(?:\.[^.]+)?\.weight", name)
        if match is None:
            raise AdaptError(f"{weights_path}: unexpected tensor {name!r} (a llama.cpp adapter holds only lora_A/lora_B)")
        module = match.group(1).removeprefix(_PEFT_PREFIX)
        pairs.setdefault(module, {})[match.group(2)] = value
    out = []
    for module, ab in sorted(pairs.items()):
        if set(ab) != {"A", "B"}:
            raise AdaptError(f"{weights_path}: {module} has lora_{''.join(ab)} but not both A and B")
        r = _pattern_value(config.get("rank_pattern") or {}, module, rank)
        a_module = float(_pattern_value(config.get("alpha_pattern") or {}, module, alpha))
        scale = a_module / math.sqrt(r) if config.get("use_rslora") else a_module / r
        out.append(LoraPair(module, ab["A"], ab["B"], scale))
    if not out:
        raise AdaptError(f"{weights_path}: no LoRA weights")
    return out, alpha


def _load_safetensors_f32(path: Path, load_file) -> dict[str, np.ndarray]:
    try:
        return {k: v.astype(np.float32) for k, v in load_file(str(path)).items()}
    except (TypeError, ValueError):  # bf16 has no numpy dtype: go through torch
        from safetensors.torch import load_file as load_torch

        return {k: v.float().numpy() for k, v in load_torch(str(path)).items()}


def write_gguf_lora(
    adapter_dir: Path, base_dir: Path, out_file: Path, *, dtype: str = "f16", name: str | None = None
) -> dict[str, Any]:
    """Write the peft LoRA in ``adapter_dir`` (trained on the model in ``base_dir``) as a GGUF adapter."""
    import gguf

    pairs, alpha = read_peft_lora(adapter_dir)
    try:
        arch = load_arch(base_dir)
    except WriterLimit:
        converter = find_converter()
        if converter is None:
            raise
        out_file = Path(out_file)
        convert_lora(converter, Path(adapter_dir), Path(base_dir), out_file, dtype)
        info = describe(out_file)
        return {"arch": info["arch"], "alpha": info["alpha"], "modules": info["n_tensors"] // 2,
                "n_params": info["n_params"], "size_bytes": out_file.stat().st_size, "converter": str(converter)}
    qtype = {"f16": gguf.GGMLQuantizationType.F16, "f32": gguf.GGMLQuantizationType.F32}[dtype]
    with quiet_gguf_logs():
        writer = gguf.GGUFWriter(path=None, arch=arch.name)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
    writer.add_name(name or Path(adapter_dir).name)
    n_params = 0
    for pair in pairs:
        key = arch.hf_key(pair.module + ".weight")
        if key is None:
            raise AdaptError(f"{adapter_dir}: LoRA on {pair.module}, which is no tensor of its own in the GGUF (tied lm_head?)")
        target = arch.gguf_name(key)
        if target == "token_embd.weight":
            raise AdaptError(f"{adapter_dir}: a LoRA on the token embedding is not supported in the GGUF adapter export")
        rank = pair.a.shape[0]
        b = arch.lora_b(pair.module, pair.b) * np.float32(pair.scale / (alpha / rank))
        for suffix, data in ((".lora_a", pair.a), (".lora_b", b)):
            packed = gguf.quants.quantize(np.ascontiguousarray(data, dtype=np.float32), qtype)
            writer.add_tensor(target + suffix, packed, raw_dtype=qtype)
            n_params += data.size
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    with quiet_gguf_logs():
        writer.write_header_to_file(path=out_file)
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return {"arch": arch.name, "alpha": alpha, "modules": len(pairs), "n_params": n_params,
            "size_bytes": out_file.stat().st_size}


def read_gguf_lora(path: Path, arch: Arch) -> tuple[list[LoraPair], float]:
    """The LoRA pairs of a GGUF adapter, in Hugging Face layout (B rows un-permuted), with llama.cpp's scale."""
    from gguf import GGUFReader
    from gguf.quants import dequantize

    reader = GGUFReader(str(path))
    fields = reader.fields

    def text(key: str) -> str | None:
        return fields[key].contents() if key in fields else None

    if text("general.type") != "adapter" or text("adapter.type") != "lora":
        raise AdaptError(f"{path}: not a GGUF LoRA adapter (general.type={text('general.type')!r})")
    if text("general.architecture") != arch.name:
        raise AdaptError(f"{path}: adapter is for {text('general.architecture')!r}, the base is {arch.name!r}")
    alpha = float(fields["adapter.lora.alpha"].contents())
    tensors = {
        t.name: dequantize(t.data, t.tensor_type).reshape([int(n) for n in reversed(t.shape)]) for t in reader.tensors
    }
    names = arch.lora_targets()
    pairs = []
    for name in sorted(n[: -len(".lora_a")] for n in tensors if n.endswith(".lora_a")):
        if name not in names:
            raise AdaptError(f"{path}: adapter tensor {name!r} has no Hugging Face module adapt knows")
        module = names[name]
        a, b = tensors[name + ".lora_a"], tensors[name + ".lora_b"]
        heads = arch.qk_heads(module + ".")
        pairs.append(LoraPair(module, a, unpermute_rows(b, heads) if heads else b, alpha / a.shape[0]))
    return pairs, alpha


def attach_lora(model: Any, pairs: list[LoraPair], alpha: float) -> Any:
    """Wrap ``model`` in a peft LoRA holding ``pairs`` (applied at run time, not merged: no rounding)."""
    import torch
    from peft import LoraConfig, get_peft_model

    from adapt.models.quiet import peft_wrap

    ranks = {pair.module: pair.a.shape[0] for pair in pairs}
    default_rank = max(set(ranks.values()), key=list(ranks.values()).count)
    config = LoraConfig(
        r=default_rank,
        lora_alpha=alpha,
        lora_dropout=0.0,
        target_modules=sorted(ranks),
        rank_pattern={module: r for module, r in ranks.items() if r != default_rank},
        alpha_pattern={
            pair.module: pair.scale * ranks[pair.module]
            for pair in pairs
            if not math.isclose(pair.scale, alpha / ranks[pair.module])
        },
        bias="none",
    )
    with peft_wrap():
        peft_model = get_peft_model(model, config)
    modules = dict(peft_model.base_model.model.named_modules())
    with torch.no_grad():
        for pair in pairs:
            layer = modules[pair.module]
            layer.lora_A["default"].weight.copy_(torch.from_numpy(pair.a))
            layer.lora_B["default"].weight.copy_(torch.from_numpy(pair.b))
    peft_model.eval()
    return peft_model
