"""What an existing GGUF file says about itself (architecture, tensor types), read with the gguf package."""

from __future__ import annotations

from pathlib import Path


def tensor_types(path: Path) -> dict[str, int]:
    """GGUF tensor type name -> how many tensors of ``path`` have it."""
    from gguf import GGUFReader

    counts: dict[str, int] = {}
    for tensor in GGUFReader(str(path)).tensors:
        counts[tensor.tensor_type.name] = counts.get(tensor.tensor_type.name, 0) + 1
    return counts


def arch_name(path: Path) -> str:
    """``general.architecture`` of a GGUF file (llama, gemma3, ...)."""
    from gguf import GGUFReader

    return GGUFReader(str(path)).fields["general.architecture"].contents()
