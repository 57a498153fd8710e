"""Hub model ids (``org/name``): a snapshot of safetensors only, and a fast one-line failure without network."""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import getproxies, proxy_bypass

from adapt.errors import AdaptError
from adapt.models.registry import OFFLINE_MODELS, choices

HUB_PROBE_TIMEOUT_S = 2.5
HUB_ALLOW = ["*.json", "*.safetensors", "*.jinja", "tokenizer.model", "*.txt", "*.tiktoken"]


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
            f"pick a repository with safetensors, or use {choices()}"
        )
    return path


def resolve_hub(repo_id: str) -> Path:
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
        problem = f"does not exist (or is private); check the id or use {choices()}"
    except (HfHubHTTPError, OSError) as exc:
        problem = f"could not be downloaded ({exc}); retry or use {choices()}"
    raise AdaptError(f"Hub model {repo_id!r} {problem}")
