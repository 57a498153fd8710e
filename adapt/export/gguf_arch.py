"""What llama.cpp expects of each architecture: GGUF metadata, tensor names and tensor layouts.

One :class:`ArchSpec` record per GGUF architecture (the table :data:`ARCHS`) holds
everything adapt's writer needs to know about it; :class:`Arch` applies a record to
one model's config. The conventions follow llama.cpp's own converter
(``convert_hf_to_gguf.py``: ``LlamaModel``, ``Qwen2Model``, ``Qwen3Model``,
``Gemma2Model``, ``Gemma3Model``, ``Phi3MiniModel``) and the graphs in llama.cpp's
``llama-model.cpp``:

- tensor names come from ``gguf.get_tensor_name_map`` (``blk.N.attn_q.weight``...),
  which also names Qwen3's ``q_norm``/``k_norm``, Gemma's post-norms and Phi-3's
  fused ``qkv_proj`` (``attn_qkv``) and ``gate_up_proj`` (``ffn_up``, twice the
  feed-forward width): llama.cpp's phi3 graph reads them fused, so they are kept;
- ``llama`` (also Mistral, which llama.cpp runs as llama): the Q and K projection
  rows are permuted from Hugging Face's rotate-half RoPE layout to llama.cpp's
  interleaved one (:func:`permute_rows`); the other architectures run NEOX-style
  RoPE in llama.cpp, the Hugging Face layout, and are written as they are;
- gemma2/gemma3: every RMSNorm weight is stored as ``1 + w`` (Gemma's norm
  multiplies by ``1 + w``; llama.cpp's by ``w``); the embedding is stored unscaled
  (llama.cpp multiplies by ``sqrt(n_embd)`` itself); gemma2 adds attention and final
  logit soft-capping, gemma3 the local RoPE base and a per-layer sliding pattern;
- a tied ``lm_head`` is not written (llama.cpp reuses ``token_embd``).

Configurations llama.cpp would run differently from transformers are refused.
Two kinds of refusal: :class:`WriterLimit` (adapt's writer lacks it, llama.cpp's own
converter may have it: an unknown architecture, RoPE scaling other than linear), which
:mod:`adapt.export.gguf_convert` hands to that converter when it is installed; and a
plain :class:`AdaptError` (llama.cpp itself computes another model).

Both the model writer and the LoRA adapter writer use :class:`Arch`, so a LoRA's
``B`` rows get the same Q/K permutation as the weight it updates.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np

from adapt.errors import AdaptError

_SKIP_PREFIXES = ("vision_tower.", "multi_modal_projector.", "model.vision_tower.", "model.multi_modal_projector.")
_LORA_SPLIT = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
               "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")
_LORA_FUSED = ("self_attn.qkv_proj", "self_attn.o_proj", "mlp.gate_up_proj", "mlp.down_proj")
_GEMMA_ACT = ("gelu_pytorch_tanh", "gelu")


class WriterLimit(AdaptError):
    """adapt's GGUF writer cannot write this model; llama.cpp's own converter may (see gguf_convert)."""


@dataclass(frozen=True)
class ArchSpec:
    """One GGUF architecture as llama.cpp's converter writes it and its graph runs it."""

    gguf: str
    """GGUF ``general.architecture``."""
    model_types: tuple[str, ...]
    """Hugging Face ``model_type`` values written as this architecture."""
    activations: tuple[str, ...]
    """``hidden_act`` values llama.cpp's graph computes for it (the first is the one it runs)."""
    lora_modules: tuple[str, ...] = _LORA_SPLIT
    """Projections under ``model.layers.N`` that a GGUF LoRA may adapt."""
    permute_qk: bool = False
    """llama.cpp runs interleaved (non-NEOX) RoPE: Q/K rows are permuted."""
    norm_offset: float = 0.0
    """Added to every RMSNorm weight (Gemma's ``1 + w``)."""
    tied_default: bool = False
    """``tie_word_embeddings`` when the config does not say."""
    rope_theta_default: float = 10_000.0
    rope_dims: bool = False
    """Write ``rope.dimension_count`` (llama, phi3: partial rotary)."""
    head_dims_always: bool = True
    """Write ``attention.key_length``/``value_length`` even when ``head_dim`` is implied."""
    sliding: Literal["none", "per_layer", "alternate", "all", "context"] = "none"
    """How llama.cpp applies the sliding window: ``per_layer`` (gemma3: window, pattern and local RoPE base from
    the file), ``alternate`` (gemma2: every other layer, fixed in llama.cpp), ``all`` (phi3: every layer, 0 = none),
    ``context`` (llama for Mistral: no sliding window; the trained context is capped to it), ``none``."""
    softcap: bool = False
    """Attention logit soft-capping (gemma2)."""
    orig_context: bool = False
    """Write ``rope.scaling.original_context_length`` (phi3)."""
    wide_layers: int | None = None
    """Layer count at which llama.cpp scales attention by ``1/sqrt(n_embd/n_head)`` instead of ``1/sqrt(head_dim)``
    (Gemma 27B); the config's ``query_pre_attn_scalar`` must agree."""
    must_be_off: dict[str, str] = field(default_factory=dict)
    """Config keys that must be unset/false, with what llama.cpp lacks when they are on."""


ARCHS: tuple[ArchSpec, ...] = (
    ArchSpec("llama", ("llama", "mistral"), ("silu",), permute_qk=True, rope_dims=True, head_dims_always=False,
             sliding="context"),
    ArchSpec("qwen2", ("qwen2",), ("silu",),
             must_be_off={"use_sliding_window": "sliding-window attention (llama.cpp's qwen2 attends to the full context)"}),
    ArchSpec("qwen3", ("qwen3",), ("silu",),
             must_be_off={"use_sliding_window": "sliding-window attention (llama.cpp's qwen3 attends to the full context)"}),
    ArchSpec("gemma2", ("gemma2",), _GEMMA_ACT, norm_offset=1.0, tied_default=True, sliding="alternate", softcap=True,
             wide_layers=46),
    ArchSpec("gemma3", ("gemma3_text", "gemma3"), _GEMMA_ACT, norm_offset=1.0, tied_default=True,
             rope_theta_default=1_000_000.0, sliding="per_layer", wide_layers=62,
             must_be_off={"attn_logit_softcapping": "attention soft-capping",
                          "use_bidirectional_attention": "bidirectional attention"}),
    ArchSpec("phi3", ("phi3",), ("silu",), lora_modules=_LORA_FUSED, rope_dims=True, sliding="all", orig_context=True),
)
BY_GGUF = {spec.gguf: spec for spec in ARCHS}
#: Hugging Face ``model_type`` -> GGUF architecture name.
SUPPORTED_MODEL_TYPES = {model_type: spec.gguf for spec in ARCHS for model_type in spec.model_types}


def read_config(model_dir: Path) -> dict[str, Any]:
    """``config.json`` as a dict, with a multimodal ``text_config`` lifted to the top level."""
    path = Path(model_dir) / "config.json"
    if not path.is_file():
        raise AdaptError(f"{model_dir}: no config.json; pass a Hugging Face model directory (e.g. run_dir/merged/fp16)")
    config = json.loads(path.read_text())
    if isinstance(config.get("text_config"), dict):
        config = {**config, **config["text_config"]}
    return config


def _rope(config: dict[str, Any], layer_kind: str) -> dict[str, Any]:
    """RoPE parameters of one attention kind (transformers 5 ``rope_parameters``, or the older flat keys)."""
    params = config.get("rope_parameters") or config.get("rope_scaling") or {}
    if layer_kind in params:
        return dict(params[layer_kind])
    if "full_attention" in params or "sliding_attention" in params:
        return {}
    params = dict(params)
    if layer_kind == "sliding_attention":
        local = config.get("rope_local_base_freq")
        return {"rope_theta": local} if local is not None else {}
    params.setdefault("rope_theta", config.get("rope_theta"))
    return params


@dataclass(frozen=True)
class Arch:
    """One model's architecture as llama.cpp sees it."""

    name: str
    """GGUF architecture (a key of :data:`BY_GGUF`)."""
    config: dict[str, Any]
    """The Hugging Face config (text part)."""

    @property
    def spec(self) -> ArchSpec:
        if self.name not in BY_GGUF:
            raise WriterLimit(f"GGUF architecture {self.name!r} is not one adapt reads or writes; supported: "
                              f"{', '.join(BY_GGUF)}")
        return BY_GGUF[self.name]

    # ------------------------------------------------------------------ shape
    @property
    def n_layers(self) -> int:
        return int(self.config["num_hidden_layers"])

    @property
    def n_head(self) -> int:
        return int(self.config["num_attention_heads"])

    @property
    def n_head_kv(self) -> int:
        return int(self.config.get("num_key_value_heads") or self.n_head)

    @property
    def head_dim(self) -> int:
        return int(self.config.get("head_dim") or self.config["hidden_size"] // self.n_head)

    @property
    def tied_embeddings(self) -> bool:
        return bool(self.config.get("tie_word_embeddings", self.spec.tied_default))

    @property
    def rope_dim(self) -> int:
        """Rotated dimensions per head (Phi's ``partial_rotary_factor``)."""
        factor = self.config.get("partial_rotary_factor") or _rope(self.config, "full_attention").get("partial_rotary_factor")
        return int(self.head_dim * float(factor or 1.0))

    @cached_property
    def _name_map(self):
        import gguf

        arch = next(key for key, value in gguf.MODEL_ARCH_NAMES.items() if value == self.name)
        return gguf.get_tensor_name_map(arch, self.n_layers)

    # ------------------------------------------------------------------ names
    def hf_key(self, hf_name: str) -> str | None:
        """The text-model tensor name (``model.layers.N...``), or None for tensors llama.cpp does not use."""
        name = hf_name.replace("model.language_model.", "model.").replace("language_model.model.", "model.")
        if name.startswith(_SKIP_PREFIXES) or name.endswith("rotary_emb.inv_freq"):
            return None
        if name == "lm_head.weight" and self.tied_embeddings:
            return None
        return name

    def gguf_name(self, hf_name: str) -> str:
        """``model.layers.0.self_attn.q_proj.weight`` -> ``blk.0.attn_q.weight``."""
        base, dot, suffix = hf_name.rpartition(".")
        if suffix not in ("weight", "bias"):
            base, dot, suffix = hf_name, "", ""
        mapped = self._name_map.get_name(base)
        if mapped is None:
            raise AdaptError(
                f"tensor {hf_name!r} has no llama.cpp name for architecture {self.name}; this model has layers "
                f"adapt's GGUF export does not know (a {self.name} GGUF holds: {', '.join(self.spec.lora_modules)}, "
                "norms and embeddings)"
            )
        return mapped + dot + suffix

    def lora_targets(self) -> dict[str, str]:
        """GGUF weight name -> Hugging Face module, for every module a GGUF LoRA may adapt."""
        names = {}
        for index in range(self.n_layers):
            for proj in self.spec.lora_modules:
                module = f"model.layers.{index}.{proj}"
                names[self.gguf_name(module + ".weight")] = module
        if not self.tied_embeddings:
            names["output.weight"] = "lm_head"
        return names

    # ------------------------------------------------------------------ layouts
    def qk_heads(self, hf_name: str) -> int | None:
        """Heads to permute over when ``hf_name`` is a Q or K projection of an interleaved-RoPE arch, else None."""
        if not self.spec.permute_qk:
            return None
        if ".q_proj." in hf_name:
            return self.n_head
        if ".k_proj." in hf_name:
            return self.n_head_kv
        return None

    def weight(self, hf_name: str, data: np.ndarray) -> np.ndarray:
        """A Hugging Face tensor (float32) in llama.cpp's layout for this architecture."""
        heads = self.qk_heads(hf_name)
        if heads is not None:
            data = permute_rows(data, heads)
        if self.spec.norm_offset and hf_name.endswith("norm.weight"):
            data = data + np.float32(self.spec.norm_offset)
        return data

    def lora_b(self, hf_module: str, b: np.ndarray) -> np.ndarray:
        """LoRA ``B`` (out x r) for the module: its rows follow the weight's row permutation."""
        heads = self.qk_heads(hf_module + ".")
        return permute_rows(b, heads) if heads is not None else b

    # ------------------------------------------------------------------ checks
    def check(self) -> None:
        """Refuse configurations llama.cpp would run differently from transformers."""
        spec, c = self.spec, self.config
        act = c.get("hidden_act") or c.get("hidden_activation")
        if act is not None and act not in spec.activations:
            raise AdaptError(
                f"{self.name}: activation {act!r} is not what llama.cpp runs for this architecture ({spec.activations[0]})"
            )
        full = _rope(c, "full_attention")
        rope_type = full.get("rope_type") or full.get("type") or "default"
        if rope_type not in ("default", "linear"):
            raise WriterLimit(
                f"{self.name}: RoPE scaling {rope_type!r} is not written by adapt's GGUF writer (default and linear are); "
                "llama.cpp's own converter handles it: set ADAPT_LLAMA_CPP_CONVERT to its convert_hf_to_gguf.py"
            )
        for key, what in spec.must_be_off.items():
            if c.get(key):
                raise AdaptError(f"{self.name}: {key}={c[key]!r}: llama.cpp's {self.name} has no {what}; "
                                 "the GGUF would compute a different model (use --format nf4 or int8)")
        if spec.wide_layers is not None:
            scalar = c.get("query_pre_attn_scalar", self.head_dim)
            expected = c["hidden_size"] // self.n_head if self.n_layers == spec.wide_layers else self.head_dim
            if scalar != expected:
                raise AdaptError(
                    f"{self.name}: query_pre_attn_scalar={scalar} but llama.cpp scales attention by 1/sqrt({expected}) "
                    "for this size; the GGUF would compute a different model"
                )
        if spec.sliding == "alternate" and c.get("layer_types"):
            fixed = ["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(self.n_layers)]
            if list(c["layer_types"]) != fixed:
                raise AdaptError(f"{self.name}: layer_types {c['layer_types']} differ from llama.cpp's fixed "
                                 "sliding/full alternation; the GGUF would compute a different model")
        if not self.tied_embeddings and self._name_map.get_name("lm_head") is None:
            raise AdaptError(f"{self.name}: an untied lm_head has no place in llama.cpp's {self.name} (it reuses the "
                             "token embedding); the GGUF would compute a different model")

    # ------------------------------------------------------------------ metadata
    def write_hparams(self, writer: Any, vocab_size: int) -> None:
        """The ``<arch>.*`` keys llama.cpp (and transformers' GGUF loader) read."""
        spec, c = self.spec, self.config
        context = int(c.get("max_position_embeddings") or 2048)
        if spec.sliding == "context" and c.get("sliding_window"):
            context = min(context, int(c["sliding_window"]))  # llama.cpp's llama has no window: train context = window
        writer.add_vocab_size(vocab_size)
        writer.add_context_length(context)
        writer.add_embedding_length(int(c["hidden_size"]))
        writer.add_block_count(self.n_layers)
        writer.add_feed_forward_length(int(c["intermediate_size"]))
        writer.add_head_count(self.n_head)
        writer.add_head_count_kv(self.n_head_kv)
        writer.add_layer_norm_rms_eps(float(c.get("rms_norm_eps", 1e-6)))
        full = _rope(c, "full_attention")
        writer.add_rope_freq_base(float(full.get("rope_theta") or spec.rope_theta_default))
        if (full.get("rope_type") or full.get("type")) == "linear":
            import gguf

            writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
            writer.add_rope_scaling_factor(float(full["factor"]))
        if spec.rope_dims:
            writer.add_rope_dimension_count(self.rope_dim)
        if spec.head_dims_always or "head_dim" in c:
            writer.add_key_length(self.head_dim)
            writer.add_value_length(self.head_dim)
        if spec.orig_context and (c.get("original_max_position_embeddings") or full.get("original_max_position_embeddings")):
            writer.add_rope_scaling_orig_ctx_len(int(c.get("original_max_position_embeddings")
                                                     or full["original_max_position_embeddings"]))
        if spec.softcap and c.get("attn_logit_softcapping"):
            writer.add_attn_logit_softcapping(float(c["attn_logit_softcapping"]))
        if c.get("final_logit_softcapping"):
            writer.add_final_logit_softcapping(float(c["final_logit_softcapping"]))
        self._write_sliding(writer)

    def _write_sliding(self, writer: Any) -> None:
        sliding, c = self.spec.sliding, self.config
        window = int(c.get("sliding_window") or 0)
        if sliding == "all":
            writer.add_sliding_window(window)  # 0: none (llama.cpp's phi3 reads the key)
        elif sliding == "alternate" and window:
            writer.add_sliding_window(window)
        elif sliding == "per_layer":
            local = _rope(c, "sliding_attention").get("rope_theta")
            if local is not None:
                writer.add_rope_freq_base_swa(float(local))
            layer_types = c.get("layer_types")
            if window and (layer_types is None or "sliding_attention" in layer_types):
                writer.add_sliding_window(window)
                if layer_types:
                    writer.add_sliding_window_pattern([kind == "sliding_attention" for kind in layer_types])


def load_arch(model_dir: Path) -> Arch:
    """The :class:`Arch` of a Hugging Face model directory, or a clear error for an unsupported one."""
    config = read_config(model_dir)
    model_type = config.get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise WriterLimit(
            f"{model_dir}: model_type {model_type!r} cannot be exported to GGUF by adapt; "
            f"supported: {', '.join(SUPPORTED_MODEL_TYPES)}. Fix: set ADAPT_LLAMA_CPP_CONVERT to llama.cpp's "
            "convert_hf_to_gguf.py (adapt then hands it this model), or use --format nf4 or int8"
        )
    arch = Arch(SUPPORTED_MODEL_TYPES[model_type], config)
    arch.check()
    return arch


def permute_rows(data: np.ndarray, n_head: int) -> np.ndarray:
    """Hugging Face rotate-half Q/K rows -> llama.cpp's interleaved RoPE rows (per head)."""
    rows = data.shape[0]
    return data.reshape(n_head, 2, rows // n_head // 2, *data.shape[1:]).swapaxes(1, 2).reshape(data.shape)


def unpermute_rows(data: np.ndarray, n_head: int) -> np.ndarray:
    """The inverse of :func:`permute_rows`."""
    rows = data.shape[0]
    return data.reshape(n_head, rows // n_head // 2, 2, *data.shape[1:]).swapaxes(1, 2).reshape(data.shape)
