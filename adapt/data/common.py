"""Helpers every reader shares: find the local folder, reach the Hub (fast fail offline), cut text."""

from __future__ import annotations

import os
import re
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from adapt.errors import DataError

HUB_PROBE_TIMEOUT_S = 3.0
_TRUE = {"1", "true", "yes", "on"}


def locate(root: Path, marker: str, subdir: str) -> Path:
    """The dataset folder: ``root`` itself if it holds ``marker``, else ``root/subdir``
    (so data.path may name the dataset folder or the whole ADAPT_DATA_DIR)."""
    if not root.exists():
        raise DataError(
            f"data.path: {root} does not exist; point data.path at the {subdir} folder "
            "(e.g. ${ADAPT_DATA_DIR}/" + subdir + ") or set ADAPT_DATA_DIR"
        )
    if (root / marker).exists():
        return root
    if (root / subdir / marker).exists():
        return root / subdir
    raise DataError(
        f"data.path: {root} holds no {marker} (nor {subdir}/{marker}); point data.path at the {subdir} folder"
    )


def offline_reason() -> str | None:
    """Why the Hub cannot be reached now (an offline variable set, no answer within a few seconds); None: it can."""
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in _TRUE:
            return f"{var} is set"
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None  # behind a proxy a direct probe says nothing: let `datasets` try
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    result: list[str | None] = ["no answer within %.0f s" % HUB_PROBE_TIMEOUT_S]

    def probe() -> None:  # DNS lookups ignore socket timeouts, so probe in a thread
        try:
            socket.create_connection((host, 443), timeout=HUB_PROBE_TIMEOUT_S).close()
            result[0] = None
        except OSError as exc:
            result[0] = f"{host} is unreachable ({exc.strerror or exc})"

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(HUB_PROBE_TIMEOUT_S + 0.5)
    return result[0]


def hub_dataset(hub_id: str, config: str | None, *, offline: Callable[[str], str], failed: Callable[[str], str],
                revision: str | None = None) -> Any:
    """``datasets.load_dataset(hub_id, config)``, or a DataError at once: ``offline(reason)`` when the Hub cannot be
    reached (no retries), ``failed(what went wrong)`` when loading fails. The callers word the fix."""
    reason = offline_reason()
    if reason:
        raise DataError(offline(reason))
    from datasets import load_dataset

    try:
        return load_dataset(hub_id, config, revision=revision)
    except Exception as exc:  # network, unknown id or config, gated or script datasets, ...
        first = str(exc).splitlines()[0][:300] if str(exc) else ""
        raise DataError(failed(f"{type(exc).__name__}: {first}")) from exc


def load_hub(hub_id: str, config: str | None, what: str, local_hint: str) -> Any:
    """A built-in dataset from the Hub (``data.hub_id``), or a DataError that says how to use local files."""
    label = hub_id + (f" (config {config!r})" if config else "")
    return hub_dataset(
        hub_id, config,
        offline=lambda reason: (
            f"data.path is not set, so {what} would come from the Hub ({hub_id}), but {reason}; "
            f"set data.path to a local copy (e.g. data.path: ${{ADAPT_DATA_DIR}}/{local_hint}) and ADAPT_DATA_DIR"
        ),
        failed=lambda problem: (
            f"could not load {what} from the Hub: {label}: {problem}; "
            f"check data.hub_id, or set data.path to a local copy (${{ADAPT_DATA_DIR}}/{local_hint})"
        ),
    )  # fmt: skip


_SENTENCE_END = re.compile(r"[.!?][\"')\]]*(?=\s)")


def clean(text: str) -> str:
    """Collapse whitespace runs (XML and TSV text carry newlines and double spaces)."""
    return " ".join(text.split())


def cut_at_word(text: str, max_chars: int) -> str:
    """``text`` if short enough, else its longest word-boundary prefix within ``max_chars``, plus '...'."""
    if len(text) <= max_chars:
        return text
    if max_chars <= 0:
        return ""
    head = text[: max_chars + 1]
    space = head.rfind(" ")
    cut = head[:space] if space > 0 else text[:max_chars]
    return cut.rstrip(" ,;:") + " ..."


def keep_tail_at_word(text: str, max_chars: int) -> str:
    """``text`` if short enough, else '... ' plus its longest word-boundary suffix within ``max_chars``."""
    if len(text) <= max_chars:
        return text
    if max_chars <= 0:
        return ""
    tail = text[-(max_chars + 1) :]
    space = tail.find(" ")
    return "... " + (tail[space + 1 :] if space >= 0 else text[-max_chars:]).lstrip()


def cut_at_sentence(text: str, max_chars: int) -> str:
    """The longest run of whole sentences within ``max_chars`` (a word cut if the first is longer)."""
    if len(text) <= max_chars:
        return text
    ends = [m.end() for m in _SENTENCE_END.finditer(text[: max_chars + 1]) if m.end() <= max_chars]
    if ends:
        return text[: ends[-1]].strip()
    return cut_at_word(text, max_chars)
