"""Optional llama.cpp helpers through llama-cpp-python (the ``gguf`` extra).

- :func:`quantize` runs llama.cpp's own quantizer (``llama_model_quantize``), the
  only source of K-quants (Q4_K_M...) here: the ``gguf`` package writes Q8_0/Q4_0 only.
- :func:`load` opens a GGUF in ``llama_cpp.Llama``, optionally with a GGUF LoRA
  adapter applied at load time (``lora_path``), for generation and scoring. Where llama.cpp
  was built with its AMX path (Intel Xeon with AMX), models load without ggml's extra
  buffer types: the AMX buffer crashes ``llama_decode`` with a segmentation fault on
  SmolLM2 Q8_0/Q4_0 (llama-cpp-python 0.3.36; ggml-org/llama.cpp#20824).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from pathlib import Path
from typing import Any

from adapt.errors import AdaptError

INSTALL_HINT = (
    "pip install 'adapt[gguf]' (llama-cpp-python; it builds llama.cpp from source, about 6 minutes on 2 cores)"
)
#: adapt's K-quant format names -> llama.cpp ``LLAMA_FTYPE_*`` attribute.
K_QUANTS = {"q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M", "q4_k_s": "LLAMA_FTYPE_MOSTLY_Q4_K_S", "q5_k_m": "LLAMA_FTYPE_MOSTLY_Q5_K_M",
            "q6_k": "LLAMA_FTYPE_MOSTLY_Q6_K"}
#: what :func:`quantize` makes: the K-quants, and Q4_0 for GGUFs that llama.cpp's converter wrote (adapt writes its own)
FTYPES = K_QUANTS | {"q4_0": "LLAMA_FTYPE_MOSTLY_Q4_0"}


def available() -> bool:
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return False
    return True


def require(what: str) -> Any:
    """``llama_cpp``, or a one-line error naming the extra that provides it."""
    try:
        import llama_cpp
    except ImportError:
        raise AdaptError(f"{what} needs llama.cpp: {INSTALL_HINT}") from None
    return llama_cpp


@contextlib.contextmanager
def _quiet_stderr():
    """llama.cpp logs to the C stderr; keep it out of the CLI output unless asked (ADAPT_LLAMACPP_VERBOSE=1)."""
    if os.environ.get("ADAPT_LLAMACPP_VERBOSE"):
        yield
        return
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def quantize(src: Path, dst: Path, kind: str = "q4_k_m", *, threads: int = 0) -> None:
    """llama.cpp's quantizer: an F16/F32 GGUF ``src`` -> ``dst`` as ``kind`` (e.g. ``q4_k_m``)."""
    llama_cpp = require(f"gguf-{kind}")
    if kind not in FTYPES:
        raise AdaptError(f"llama.cpp quantization {kind!r}: adapt knows {', '.join(FTYPES)}")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, FTYPES[kind])
    params.nthread = threads
    with _quiet_stderr():
        status = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params))
    if status != 0 or not Path(dst).is_file():
        raise AdaptError(f"llama.cpp could not quantize {src} to {kind} (status {status}); rerun with ADAPT_LLAMACPP_VERBOSE=1")


def amx_built_in(llama_cpp: Any) -> bool:
    """Whether this llama.cpp build has ggml's AMX matmul path (its system info says ``AMX_INT8 = 1``)."""
    return "AMX_INT8 = 1" in llama_cpp.llama_print_system_info().decode(errors="replace")


@contextlib.contextmanager
def _without_extra_buffer_types(llama_cpp: Any):
    """Models loaded inside get ``use_extra_bufts = False`` (ggml's plain CPU buffers, no AMX or repacked weights).

    ``llama_cpp.Llama`` takes no argument for it: it starts from ``llama_model_default_params()`` of its
    binding module, so that one function is wrapped while the model loads, and put back after.
    """
    binding = llama_cpp.llama_cpp
    default = binding.llama_model_default_params

    def params() -> Any:
        model_params = default()
        model_params.use_extra_bufts = False
        return model_params

    binding.llama_model_default_params = params
    try:
        yield
    finally:
        binding.llama_model_default_params = default


def load(model_path: Path, *, lora_path: Path | None = None, lora_scale: float = 1.0, n_ctx: int = 512,
         n_threads: int | None = None, logits_all: bool = False, n_gpu_layers: int = 0) -> Any:
    """A ``llama_cpp.Llama`` for a GGUF file, with an optional GGUF LoRA adapter applied at load time
    (``n_gpu_layers``: layers offloaded to a GPU build's device, -1 for all)."""
    llama_cpp = require("loading a GGUF in llama.cpp")
    kwargs: dict[str, Any] = {"model_path": str(model_path), "n_ctx": n_ctx, "verbose": False, "logits_all": logits_all,
                              "n_threads": n_threads or max(1, (os.cpu_count() or 2)), "n_gpu_layers": n_gpu_layers}
    if lora_path is not None:
        kwargs |= {"lora_path": str(lora_path), "lora_scale": lora_scale}
    buffers = _without_extra_buffer_types(llama_cpp) if amx_built_in(llama_cpp) else contextlib.nullcontext()
    try:
        with _quiet_stderr(), buffers:
            return llama_cpp.Llama(**kwargs)
    except (ValueError, RuntimeError) as exc:
        raise AdaptError(f"llama.cpp cannot load {model_path}{f' with {lora_path}' if lora_path else ''}: {exc}") from exc


def chat(llm: Any, question: str, *, max_tokens: int = 64) -> str:
    """One greedy chat turn through the GGUF's own chat template."""
    with _quiet_stderr():
        out = llm.create_chat_completion(messages=[{"role": "user", "content": question}], max_tokens=max_tokens, temperature=0.0)
    return out["choices"][0]["message"]["content"]


def complete(llm: Any, prompt: str, *, max_tokens: int = 32) -> str:
    """Greedy plain-text continuation."""
    with _quiet_stderr():
        out = llm.create_completion(prompt, max_tokens=max_tokens, temperature=0.0)
    return out["choices"][0]["text"]


def next_token_logits(llm: Any, token_ids: list[int]) -> Any:
    """llama.cpp's logits (numpy, one per vocabulary entry) after ``token_ids``, for comparing with transformers."""
    import numpy as np

    llama_cpp = require("llama.cpp logits")
    llm.reset()
    with _quiet_stderr():
        llm.eval(token_ids)
    pointer = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
    return np.ctypeslib.as_array(pointer, shape=(llm.n_vocab(),)).astype(np.float32)
