"""llama.cpp's own converters, for the models adapt's GGUF writer does not know.

adapt writes GGUF itself (:mod:`adapt.export.gguf_writer`, :mod:`adapt.export.gguf_lora`)
for the architectures in :data:`adapt.export.gguf_arch.ARCHS`: offline, with no
llama.cpp checkout, and tested against llama.cpp for each of them. That stays the
default. When the writer refuses a model as beyond it (:class:`~adapt.export.gguf_arch.WriterLimit`:
an unknown ``model_type``, a RoPE scaling it does not write) and llama.cpp's
``convert_hf_to_gguf.py`` is installed, the model is handed to that script instead,
and a LoRA to ``convert_lora_to_gguf.py`` beside it. The script is found as:

1. ``ADAPT_LLAMA_CPP_CONVERT``: the path of ``convert_hf_to_gguf.py`` (or of the llama.cpp
   checkout holding it);
2. ``convert_hf_to_gguf.py`` (or ``convert_hf_to_gguf``) on ``PATH``;
3. an importable module ``convert_hf_to_gguf``.

It runs with this Python (it needs torch, transformers and the ``gguf`` package, all
adapt dependencies). It writes ``f32``/``f16``/``bf16``/``q8_0``; ``q4_0`` is made from its
F16 by llama.cpp's quantizer (llama-cpp-python, the ``gguf`` extra).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from adapt.errors import AdaptError

ENV = "ADAPT_LLAMA_CPP_CONVERT"
SCRIPT = "convert_hf_to_gguf.py"
LORA_SCRIPT = "convert_lora_to_gguf.py"
_OUTTYPES = ("f32", "f16", "bf16", "q8_0")


def find_converter() -> Path | None:
    """llama.cpp's ``convert_hf_to_gguf.py`` when installed (see the module doc), else None."""
    configured = os.environ.get(ENV)
    if configured:
        path = Path(configured).expanduser()
        if path.is_dir():
            path = path / SCRIPT
        if not path.is_file():
            raise AdaptError(f"{ENV}={configured}: no {SCRIPT} there; point it at llama.cpp's {SCRIPT} or unset it")
        return path
    for name in (SCRIPT, SCRIPT.removesuffix(".py")):
        found = shutil.which(name)
        if found:
            return Path(found)
    spec = importlib.util.find_spec("convert_hf_to_gguf")
    return Path(spec.origin) if spec is not None and spec.origin else None


def _command(script: Path) -> list[str]:
    return [sys.executable, str(script)] if script.suffix == ".py" else [str(script)]


def _run(command: list[str], what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        raise AdaptError(f"llama.cpp's converter failed on {what} (exit {done.returncode}): "
                         f"{lines[-1] if lines else 'no output'}")


def convert_model(script: Path, model_dir: Path, out_file: Path, file_type: str, *, name: str | None = None) -> None:
    """``model_dir`` -> ``out_file`` through llama.cpp's converter (``q4_0`` via its F16 and llama.cpp's quantizer)."""
    out_file.parent.mkdir(parents=True, exist_ok=True)
    outtype = "f16" if file_type == "q4_0" else file_type
    if outtype not in _OUTTYPES:
        raise AdaptError(f"GGUF type {file_type!r}: llama.cpp's converter writes {', '.join(_OUTTYPES)} (and adapt q4_0)")
    target = out_file.with_name(f".{out_file.stem}.f16.gguf") if file_type == "q4_0" else out_file
    command = _command(script) + [str(model_dir), "--outfile", str(target), "--outtype", outtype]
    _run(command + (["--model-name", name] if name else []), str(model_dir))
    if file_type == "q4_0":
        from adapt.export import llamacpp

        try:
            llamacpp.quantize(target, out_file, "q4_0")
        finally:
            target.unlink(missing_ok=True)


def convert_lora(script: Path, adapter_dir: Path, base_dir: Path, out_file: Path, dtype: str) -> None:
    """A peft LoRA -> GGUF adapter through llama.cpp's ``convert_lora_to_gguf.py`` (beside ``script``)."""
    lora_script = script.with_name(LORA_SCRIPT)
    if not lora_script.is_file():
        raise AdaptError(f"{script}: no {LORA_SCRIPT} beside it; a LoRA of this architecture needs llama.cpp's "
                         "LoRA converter (point ADAPT_LLAMA_CPP_CONVERT at a llama.cpp checkout)")
    out_file.parent.mkdir(parents=True, exist_ok=True)
    _run(_command(lora_script) + ["--base", str(base_dir), "--outfile", str(out_file), "--outtype", dtype,
                                   str(adapter_dir)], str(adapter_dir))


def describe(path: Path) -> dict[str, Any]:
    """Architecture, tensor types and parameter count of a GGUF file, read back from it."""
    from gguf import GGUFReader

    reader = GGUFReader(str(path))
    counts: dict[str, int] = {}
    for tensor in reader.tensors:
        counts[tensor.tensor_type.name] = counts.get(tensor.tensor_type.name, 0) + 1
    fields = reader.fields
    alpha = fields["adapter.lora.alpha"].contents() if "adapter.lora.alpha" in fields else None
    return {"arch": fields["general.architecture"].contents(), "tensor_types": counts, "alpha": alpha,
            "n_params": sum(int(t.n_elements) for t in reader.tensors), "n_tensors": len(reader.tensors)}
