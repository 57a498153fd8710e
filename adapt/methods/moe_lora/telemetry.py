"""Router telemetry: per-expert utilization per routed layer, grouped by a caller-set label.

The layers feed :class:`RoutingRecorder` while ``moe_lora.record_routing(model, group=...)``
is open; :meth:`RoutingRecorder.table` returns a typed :class:`RoutingTable`, and
:func:`write_routing_report` writes ``routing.json`` and ``routing.png`` (a heat map,
experts x layers, one panel per group) into a run directory.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from adapt.methods.moe_lora.routing import Routing

ROUTING_JSON = "routing.json"
ROUTING_PNG = "routing.png"


@dataclass
class LayerUsage:
    """Utilization of one routed layer's experts over the tokens of one group."""

    layer: str
    tokens: int
    mean_gate: list[float]
    """Per expert: mean gate weight over tokens (sums to 1 over experts)."""
    top1_share: list[float]
    """Per expert: share of tokens whose highest gate is this expert."""


@dataclass
class RoutingTable:
    adapter: str
    num_experts: int
    top_k: int
    groups: dict[str, list[LayerUsage]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> RoutingTable:
        groups = {g: [LayerUsage(**row) for row in rows] for g, rows in data["groups"].items()}
        return cls(adapter=data["adapter"], num_experts=data["num_experts"], top_k=data["top_k"], groups=groups)

    def mean_gates(self, group: str) -> dict[str, list[float]]:
        """Layer path -> mean gate per expert, for one group (what collapse needs)."""
        return {row.layer: row.mean_gate for row in self.groups[group]}


@dataclass
class _Sums:
    gate: torch.Tensor
    top1: torch.Tensor
    tokens: torch.Tensor


class RoutingRecorder:
    """Accumulates gate sums on the layers' device; reads them back only in :meth:`table`."""

    def __init__(self) -> None:
        self._sums: dict[tuple[str, str], _Sums] = {}
        self._order: list[str] = []

    def reset(self) -> None:
        self._sums.clear()
        self._order.clear()

    def add(self, group: str, layer: str, routing: Routing, mask: torch.Tensor | None) -> None:
        gates, first = routing.gates.detach(), routing.top_idx[:, 0]
        n_experts = gates.shape[-1]
        if mask is None:
            gate_sum, top1, tokens = gates.sum(0), torch.bincount(first, minlength=n_experts), gates.shape[0]
        else:
            weight = mask.to(gates.dtype)
            gate_sum, top1, tokens = weight @ gates, torch.bincount(first, weights=weight, minlength=n_experts), weight.sum()
        key = (group, layer)
        sums = self._sums.get(key)
        if sums is None:
            zeros = torch.zeros(n_experts, device=gates.device, dtype=torch.float64)
            sums = self._sums[key] = _Sums(zeros.clone(), zeros.clone(), torch.zeros((), device=gates.device, dtype=torch.float64))
            if layer not in self._order:
                self._order.append(layer)
        sums.gate += gate_sum
        sums.top1 += top1
        sums.tokens += tokens

    def table(self, adapter: str, num_experts: int, top_k: int) -> RoutingTable:
        table = RoutingTable(adapter=adapter, num_experts=num_experts, top_k=top_k)
        for (group, layer), sums in sorted(self._sums.items(), key=lambda kv: (kv[0][0], self._order.index(kv[0][1]))):
            n = float(sums.tokens.item())
            denom = max(n, 1.0)
            table.groups.setdefault(group, []).append(
                LayerUsage(
                    layer=layer,
                    tokens=int(round(n)),
                    mean_gate=[v / denom for v in sums.gate.tolist()],
                    top1_share=[v / denom for v in sums.top1.tolist()],
                )
            )
        return table


def _short(layer: str) -> str:
    """`model.layers.3.mlp.gate_proj` -> `3.gate`."""
    parts = layer.split(".")
    index = next((p for p in parts if p.isdigit()), "")
    return f"{index}.{parts[-1].removesuffix('_proj')}" if index else parts[-1]


def write_routing_report(table: RoutingTable, run_dir: Path) -> tuple[Path, Path]:
    """Write ``routing.json`` and ``routing.png`` into ``run_dir`` (atomically); return both paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from adapt.errors import AdaptError
    from adapt.runs import write_json_atomic

    if not table.groups:
        raise AdaptError("routing table is empty: run forwards inside moe_lora.record_routing(model, group=...) first")
    run_dir = Path(run_dir)
    json_path, png_path = run_dir / ROUTING_JSON, run_dir / ROUTING_PNG
    write_json_atomic(json_path, table.to_dict())

    groups = list(table.groups)
    layers = [row.layer for row in table.groups[groups[0]]]
    width = min(4 + 0.18 * len(layers), 30)
    height = 1.0 + (0.6 + 0.3 * table.num_experts) * len(groups)
    fig, axes = plt.subplots(len(groups), 1, figsize=(width, height), squeeze=False, sharex=True, constrained_layout=True)
    image = None
    vmax = max(max(row.mean_gate) for rows in table.groups.values() for row in rows)
    for ax, group in zip(axes[:, 0], groups):
        rows = {row.layer: row for row in table.groups[group]}
        grid = torch.tensor([rows[layer].mean_gate if layer in rows else [float("nan")] * table.num_experts for layer in layers])
        image = ax.imshow(grid.T.numpy(), aspect="auto", cmap="viridis", vmin=0.0, vmax=max(vmax, 1e-6))
        tokens = sum(row.tokens for row in table.groups[group]) // max(len(rows), 1)
        ax.set_title(f"{group} ({tokens} tokens): mean gate per expert", fontsize=9)
        ax.set_ylabel("expert")
        ax.set_yticks(range(table.num_experts))
    bottom = axes[-1, 0]
    bottom.set_xticks(range(len(layers)))
    bottom.set_xticklabels([_short(layer) for layer in layers], rotation=90, fontsize=6)
    bottom.set_xlabel("routed layer (block.projection)")
    fig.colorbar(image, ax=axes[:, 0].tolist(), fraction=0.02, pad=0.01)
    tmp = png_path.with_name(f".{png_path.name}.tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(png_path)
    return json_path, png_path
