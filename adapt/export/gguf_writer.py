"""Write a 16-bit Hugging Face model directory as one GGUF file (F16, Q8_0 or Q4_0).

Tensors stream from the safetensors shards to the file one at a time (the
header is planned first from the shapes), so memory stays near one tensor.
Quantization uses the ``gguf`` package's own Q8_0/Q4_0 code, the same
reference the llama.cpp converter uses. Type rules, as in llama.cpp:

- 1-D tensors and norms stay F32;
- ``gguf-q4_0`` keeps the token embedding / output matrix at Q8_0 (llama.cpp's
  quantizer keeps that matrix above 4 bits too), every other matrix is Q4_0;
- a matrix whose rows do not split into 32-value blocks falls back to F16.

K-quants (Q4_K_M) are made from the F16 file by llama.cpp; see :mod:`adapt.export.llamacpp`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from adapt.errors import AdaptError
from adapt.export.gguf_arch import Arch, WriterLimit, load_arch
from adapt.export.gguf_convert import convert_model, describe, find_converter
from adapt.export.gguf_tokenizer import build_vocab

PYTHON_TYPES = ("f16", "q8_0", "q4_0")
_HIGH_PRECISION = ("token_embd.weight", "output.weight")


@dataclass(frozen=True)
class PlannedTensor:
    hf_name: str
    gguf_name: str
    shape: tuple[int, ...]
    qtype: Any
    """``gguf.GGMLQuantizationType``."""

    @property
    def nbytes(self) -> int:
        import gguf

        if self.qtype in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16):
            return int(np.prod(self.shape)) * (4 if self.qtype == gguf.GGMLQuantizationType.F32 else 2)
        return int(np.prod(gguf.quant_shape_to_byte_shape(self.shape, self.qtype)))


@dataclass(frozen=True)
class GGUFSummary:
    path: Path
    arch: str
    file_type: str
    tensor_types: dict[str, int]
    """GGML type name -> number of tensors."""
    n_params: int
    size_bytes: int


def safetensors_files(model_dir: Path) -> list[Path]:
    model_dir = Path(model_dir)
    index = model_dir / "model.safetensors.index.json"
    if index.is_file():
        return [model_dir / name for name in sorted(set(json.loads(index.read_text())["weight_map"].values()))]
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise AdaptError(f"{model_dir}: no *.safetensors weights; export reads safetensors only (no pickle)")
    return files


def iter_tensor_shapes(model_dir: Path) -> Iterator[tuple[Path, str, tuple[int, ...]]]:
    from safetensors import safe_open

    for path in safetensors_files(model_dir):
        with safe_open(str(path), framework="pt") as handle:
            for name in handle.keys():
                yield path, name, tuple(handle.get_slice(name).get_shape())


def read_tensor(path: Path, name: str) -> np.ndarray:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return handle.get_tensor(name).float().numpy()


def _tensor_type(name: str, shape: tuple[int, ...], file_type: str):
    import gguf

    T = gguf.GGMLQuantizationType
    if len(shape) <= 1 or name.endswith("_norm.weight"):
        return T.F32
    wanted = {"f16": T.F16, "q8_0": T.Q8_0, "q4_0": T.Q4_0}[file_type]
    if file_type == "q4_0" and name in _HIGH_PRECISION:
        wanted = T.Q8_0
    if wanted not in (T.F16, T.F32) and shape[-1] % gguf.GGML_QUANT_SIZES[wanted][0] != 0:
        return T.F16
    return wanted


def _order(gguf_name: str) -> tuple[int, str]:
    match = re.match(r"blk\.(\d+)\.", gguf_name)
    if match:
        return int(match.group(1)) + 1, gguf_name
    return (0 if gguf_name.startswith("token_embd") else 1 << 30), gguf_name


def plan_tensors(model_dir: Path, arch: Arch, file_type: str) -> tuple[list[PlannedTensor], dict[str, Path], int]:
    """(tensors in file order, HF name -> shard, embedding rows)."""
    planned, where, n_vocab = [], {}, None
    for path, hf_name, shape in iter_tensor_shapes(model_dir):
        key = arch.hf_key(hf_name)
        if key is None:
            continue
        gguf_name = arch.gguf_name(key)
        if gguf_name == "token_embd.weight":
            n_vocab = shape[0]
        where[hf_name] = path
        planned.append(PlannedTensor(hf_name, gguf_name, shape, _tensor_type(gguf_name, shape, file_type)))
    if n_vocab is None:
        raise AdaptError(f"{model_dir}: no token embedding (model.embed_tokens.weight) among the weights")
    return sorted(planned, key=lambda t: _order(t.gguf_name)), where, n_vocab


@contextlib.contextmanager
def quiet_gguf_logs() -> Iterator[None]:
    """The gguf package logs every file plan at INFO; keep the CLI output to adapt's own lines."""
    logger = logging.getLogger("gguf.gguf_writer")
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)


def write_gguf(model_dir: Path, out_file: Path, file_type: str, *, name: str | None = None, progress: bool = True) -> GGUFSummary:
    """Write ``model_dir`` (16-bit HF safetensors + tokenizer) to ``out_file`` as ``file_type``."""
    import gguf
    from tqdm.auto import tqdm

    if file_type not in PYTHON_TYPES:
        raise AdaptError(f"GGUF type {file_type!r}: adapt writes {', '.join(PYTHON_TYPES)} itself; K-quants go through llama.cpp")
    model_dir, out_file = Path(model_dir), Path(out_file)
    try:
        arch = load_arch(model_dir)
    except WriterLimit:
        converter = find_converter()
        if converter is None:
            raise
        return _by_llama_cpp(converter, model_dir, out_file, file_type, name)
    tensors, where, n_vocab = plan_tensors(model_dir, arch, file_type)
    vocab = build_vocab(model_dir, n_vocab)

    with quiet_gguf_logs():
        writer = gguf.GGUFWriter(path=None, arch=arch.name)
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(name or model_dir.name)
    writer.add_quantized_by("adapt")
    arch.write_hparams(writer, n_vocab)
    ftype = {"f16": gguf.LlamaFileType.MOSTLY_F16, "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0, "q4_0": gguf.LlamaFileType.MOSTLY_Q4_0}
    writer.add_file_type(ftype[file_type])
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    vocab.write(writer)
    for tensor in tensors:
        writer.add_tensor_info(tensor.gguf_name, tensor.shape, np.dtype(np.float32), tensor.nbytes, raw_dtype=tensor.qtype)

    out_file.parent.mkdir(parents=True, exist_ok=True)
    with quiet_gguf_logs():
        writer.write_header_to_file(path=out_file)
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    try:
        bar = tqdm(tensors, desc=f"gguf {file_type}", unit="tensor", disable=not progress)
        for tensor in bar:
            data = arch.weight(arch.hf_key(tensor.hf_name), read_tensor(where[tensor.hf_name], tensor.hf_name))
            writer.write_tensor_data(gguf.quants.quantize(np.ascontiguousarray(data, dtype=np.float32), tensor.qtype))
    finally:
        writer.close()
    counts: dict[str, int] = {}
    for tensor in tensors:
        counts[tensor.qtype.name] = counts.get(tensor.qtype.name, 0) + 1
    return GGUFSummary(
        path=out_file,
        arch=arch.name,
        file_type=file_type.upper(),
        tensor_types=counts,
        n_params=sum(int(np.prod(t.shape)) for t in tensors),
        size_bytes=out_file.stat().st_size,
    )


def _by_llama_cpp(converter: Path, model_dir: Path, out_file: Path, file_type: str, name: str | None) -> GGUFSummary:
    """A model adapt's writer refuses as beyond it, written by llama.cpp's converter (:mod:`adapt.export.gguf_convert`)."""
    convert_model(converter, model_dir, out_file, file_type, name=name)
    info = describe(out_file)
    return GGUFSummary(path=out_file, arch=info["arch"], file_type=file_type.upper(), tensor_types=info["tensor_types"],
                       n_params=info["n_params"], size_bytes=out_file.stat().st_size)
