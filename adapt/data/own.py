"""A user's own data (``source: file`` or ``source: hub``) as a :class:`TaskData`: ``load(cfg)``.

Reads the files or the Hub splits, maps their columns to examples, holds validation and test rows out
of train where no split of that name is given (seeded; stratified by label for classification), and
checks the label or tag set. Every problem found is one line; all of them are raised together as one
DataError (the CLI prints each as ``error: ...`` and exits 2).
"""

from __future__ import annotations

from adapt.data.columns import Mapped, layout_of, map_table, required_columns
from adapt.data.files import read_file
from adapt.data.label_sets import DEFAULT_INSTRUCTIONS, class_labels, shared_system, tag_set, with_choices
from adapt.data.problems import Problems
from adapt.data.sources import FileData, HubData, InstructionTask
from adapt.data.splits import seeded_sample, stratified_split
from adapt.data.table import Table
from adapt.data.types import TaskData
from adapt.errors import DataError

SPLITS = ("train", "validation", "test")


def _read(cfg: FileData | HubData, problems: Problems) -> dict[str, Table]:
    if isinstance(cfg, HubData):
        from adapt.data.hub import read_hub

        return read_hub(cfg)
    columns = (cfg.task.tokens, cfg.task.tags) if cfg.task.type == "token_classification" else ("tokens", "tags")
    tables = {}
    for split, text in cfg.files().items():
        before = problems.count
        table = read_file(cfg.resolved(text), cfg.file_format(text), problems, columns)
        if table is not None:
            tables[split] = table
            if not table.rows and problems.count == before:
                problems.add(f"{table.name}: no rows (empty {split} split); add rows")
    return tables


def _hold_out(cfg: FileData | HubData, mapped: dict[str, list[Mapped]], problems: Problems) -> dict[str, list[Mapped]]:
    """Validation and test rows taken from train (seeded) where the data gives no such split."""
    train = mapped.get("train", [])
    total = len(train)
    classification = cfg.kind == "classification"

    def label(m: Mapped) -> str:
        return m.example.completion if classification else ""

    out = dict(mapped)
    if "test" not in mapped:
        train, out["test"] = stratified_split(train, label, cfg.test_fraction, cfg.seed, "own:test", cover=classification)
    if "validation" not in mapped:
        count = max(1, round(cfg.validation_fraction * total)) if cfg.validation_fraction and train else 0
        train, out["validation"] = stratified_split(train, label, count, cfg.seed, "own:validation", cover=classification)
    out["train"] = train
    held = [s for s in SPLITS if s not in mapped]
    for split in SPLITS:
        if not out[split] and not (split == "validation" and "validation" not in mapped and not cfg.validation_fraction):
            after = f" after holding out {' and '.join(held)}" if held else ""
            problems.add(f"the {split} split is empty{after}: {total} usable training row(s); add rows"
                         + (" (or lower data.validation_fraction / data.test_fraction)" if held else ""))
    return out


def _describe(cfg: FileData | HubData, splits: dict, held: list[str]) -> str:
    if isinstance(cfg, HubData):
        where = f"Hub dataset {cfg.dataset}" + (f" ({cfg.config})" if cfg.config else "")
    else:
        where = "; ".join(f"{split} {text}" for split, text in cfg.files().items())
    counts = "/".join(str(len(splits[s])) for s in SPLITS)
    cut = f"; {' and '.join(held)} held out of train (seed {cfg.seed})" if held else ""
    return f"Own data ({cfg.task.type}), {where}; examples train/validation/test {counts}{cut}"


def load(cfg: FileData | HubData) -> TaskData:
    """Read, map, split and check a ``source: file`` or ``source: hub`` config (see the module docstring)."""
    problems = Problems()
    tables = _read(cfg, problems)
    task = cfg.task
    train_columns = tables["train"].columns if "train" in tables else []
    layout = layout_of(task, train_columns) if isinstance(task, InstructionTask) else None
    mapped = {split: map_table(task, table, layout, problems) for split, table in tables.items()}
    problems.raise_if_any()
    splits = _hold_out(cfg, mapped, problems)
    problems.raise_if_any()
    splits["train"] = seeded_sample(splits["train"], cfg.max_train_examples, cfg.seed, "own:train")
    if cfg.kind == "generation":
        labels: tuple[str, ...] = ()
        instruction, examples = shared_system(task.system, splits)
    else:
        checked = class_labels if cfg.kind == "classification" else tag_set
        labels = checked(task, splits, problems)
        problems.raise_if_any()
        instruction = task.system or DEFAULT_INSTRUCTIONS[cfg.kind]
        finish = (lambda m: with_choices(m, labels)) if cfg.kind == "classification" else (lambda m: [x.example for x in m])
        examples = {split: finish(mapped_split) for split, mapped_split in splits.items()}
    held = [s for s in SPLITS if s not in mapped]
    return TaskData(
        kind=cfg.kind,
        train=examples["train"],
        validation=examples["validation"],
        test=examples["test"],
        labels=labels,
        instruction=instruction,
        description=_describe(cfg, examples, held),
        metadata={
            "dataset": cfg.source,
            "task": task.type,
            "columns": required_columns(task, layout, train_columns),
            "held_out_of_train": held,
            "seed": cfg.seed,
            **({"files": cfg.files()} if isinstance(cfg, FileData) else {"hub": cfg.dataset, "config": cfg.config}),
        },
    )


def source_problems(cfg: FileData | HubData, where: str = "data") -> list[str]:
    """For ``adapt validate``: each problem of a file source as one line (its files are read: they are the
    user's own, usually small); a Hub source is checked only as a config (no network at validate time).
    ``where``: the config's place in the recipe (``data``, or ``data.parts.NAME`` in a mixture)."""
    if isinstance(cfg, HubData):
        return []
    missing = [
        f"{where}.{'path' if cfg.path else split}: {text!r} is not a file (resolved to {cfg.resolved(text)}); fix the path"
        for split, text in cfg.files().items()
        if not cfg.resolved(text).is_file()
    ]
    if missing:
        return missing
    try:
        load(cfg)
    except DataError as exc:
        lines = str(exc).splitlines()
        return lines if where == "data" else [f"{where}: {line}" for line in lines]
    return []
