"""Read a Hugging Face Hub dataset (``source: hub``) into rows, with ``datasets.load_dataset``.

Without network (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE set, or the Hub unreachable within a few seconds)
this fails at once with one line naming the local-file alternative, instead of ``datasets``' retries.
Integer labels and tags stored as ``ClassLabel`` features come back as their names.
"""

from __future__ import annotations

from typing import Any

from adapt.data.common import hub_dataset
from adapt.data.sources import HubData
from adapt.data.table import Row, Table
from adapt.errors import DataError

DEFAULT_SPLITS = {"validation": ("validation", "dev", "valid"), "test": ("test",)}


def _local_hint(cfg: HubData) -> str:
    args = repr(cfg.dataset) + (f", {cfg.config!r}" if cfg.config else "")
    return (
        "without network use source: file with path: train.jsonl (or train/validation/test files) and the same task, "
        f"saved once where there is network: datasets.load_dataset({args})['train'].to_json('train.jsonl')"
    )


def _load(cfg: HubData) -> Any:
    label = cfg.dataset + (f" (config {cfg.config})" if cfg.config else "")
    return hub_dataset(
        cfg.dataset, cfg.config, revision=cfg.revision,
        offline=lambda reason: f"data.dataset: {label} is on the Hub, but {reason}; {_local_hint(cfg)}",
        failed=lambda problem: (
            f"data.dataset: could not load {label} from the Hub ({problem}); "
            f"check data.dataset and data.config, or {_local_hint(cfg)}"
        ),
    )  # fmt: skip


def _names(feature: Any) -> list[str] | None:
    """The label names of a ClassLabel feature, or of a list of them (tags)."""
    names = getattr(feature, "names", None)
    if names is None:
        names = getattr(getattr(feature, "feature", None), "names", None)
    return list(names) if names else None


def _named(value: Any, names: list[str] | None) -> Any:
    if names is None:
        return value
    if isinstance(value, list):
        return [names[v] if isinstance(v, int) and 0 <= v < len(names) else v for v in value]
    return names[value] if isinstance(value, int) and 0 <= value < len(names) else value


def _table(cfg: HubData, split: str, ds: Any) -> Table:
    names = {column: _names(feature) for column, feature in ds.features.items()}
    source = f"{cfg.dataset} {split}"
    rows = [
        Row(source, f" row {i}", {k: _named(v, names.get(k)) for k, v in record.items()}, split)
        for i, record in enumerate(ds)
    ]
    return Table(f"{cfg.dataset} (split {split})", split, rows, list(ds.column_names))


def read_hub(cfg: HubData) -> dict[str, Table]:
    """Split name (train/validation/test) -> rows, for the splits the dataset has; a missing named split is an error."""
    dataset = _load(cfg)
    have = list(dataset)
    chosen = {"train": cfg.splits.train, "validation": cfg.splits.validation, "test": cfg.splits.test}
    tables = {}
    for split, name in chosen.items():
        if name is None:
            name = next((n for n in DEFAULT_SPLITS[split] if n in have), None)
            if name is None or name == cfg.splits.train:
                continue
        elif name not in have:
            raise DataError(
                f"data.splits.{split}: {cfg.dataset} has no split {name!r} (it has {', '.join(have)}); "
                f"set data.splits.{split} to one of them" + ("" if split == "train" else " or remove it to hold rows out of train")
            )
        tables[split] = _table(cfg, name, dataset[name])
    return tables
