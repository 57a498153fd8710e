"""Several datasets as one task: healthcare + legal in one recipe and one adapter.

``data: {source: mixture, parts: {healthcare: {source: pubmedqa, ...}, legal: {source: legalbench, ...}}}``.
Each part is read by its own reader, with its own split, seed and ``max_train_examples``.
Every example is tagged with its part's name as its group (so eval.json's metrics.groups
and routing.json report per part) and its id is prefixed with it; each split is the
seeded interleaving of the parts' splits. The parts share one task kind.

A part keeps its own label set (a classification example carries its own choices) and
its own instruction: when the parts' instructions differ, each part's goes at the head of
its examples' prompts, under one shared system instruction.
"""

from __future__ import annotations

from dataclasses import replace

from adapt.data import load_task
from adapt.data.splits import seeded_sample, seeded_shuffle, stratified_split
from adapt.data.types import TaskData, TextExample
from adapt.errors import DataError

SPLITS = ("train", "validation", "test")
SHARED_INSTRUCTION = "You work across several specialist domains. Follow the instruction at the start of each request."


def _load_part(name: str, part) -> TaskData:
    try:
        task = load_task(part)
    except DataError as exc:  # every line of a many-line error names the part
        raise DataError("\n".join(f"data.parts.{name} ({part.source}): {line}" for line in (str(exc).splitlines() or [""]))) from exc
    for split in ("train", "test"):
        if not task.split(split):
            raise DataError(
                f"data.parts.{name} ({part.source}): the {split} split is empty; "
                "every part needs training and test examples (check its path and caps)"
            )
    return task


def _cap(examples: list, k: int | None, kind: str, seed: int, salt: str) -> list:
    """At most ``k`` examples, seeded, never a prefix; classification: in proportion to (task, label)."""
    if k is None or k >= len(examples):
        return list(examples)
    if kind != "classification":
        return seeded_sample(examples, k, seed, salt)
    return stratified_split(examples, lambda e: (e.group, e.completion), k, seed, salt, cover=False)[1]


def _tag(example, name: str, instruction: str):
    if isinstance(example, TextExample) and instruction:
        example = replace(example, prompt=f"{instruction}\n\n{example.prompt}")
    return replace(example, group=name, id=f"{name}:{example.id}")


def load(cfg) -> TaskData:
    """Read every part of the mixture ``cfg`` names and interleave them (see module docstring)."""
    parts = {name: _load_part(name, part) for name, part in cfg.parts.items()}
    kinds = {name: task.kind for name, task in parts.items()}
    if len(set(kinds.values())) > 1:
        mix = ", ".join(f"{name} is {kind}" for name, kind in kinds.items())
        raise DataError(f"data.parts: the parts differ in task kind ({mix}); keep parts of one kind")
    kind = next(iter(kinds.values()))
    instructions = {task.instruction for task in parts.values()}
    shared = instructions.pop() if len(instructions) == 1 else SHARED_INSTRUCTION
    splits: dict[str, list] = {split: [] for split in SPLITS}
    counts: dict[str, list[str]] = {}
    labels: list[str] = []
    for name, task in parts.items():
        own = "" if task.instruction == shared else task.instruction
        for split in SPLITS:
            examples = task.split(split)
            if split != "train":
                examples = _cap(examples, cfg.max_eval_examples_per_part, kind, cfg.seed, f"mixture:{name}:{split}")
            splits[split] += [_tag(ex, name, own) for ex in examples]
            counts.setdefault(name, []).append(f"{split} {len(examples)}")
        labels += [label for label in task.labels if label not in labels]
    per_part = "; ".join(f"{name} ({cfg.parts[name].source}) {' / '.join(counts[name])}" for name in parts)
    cap = cfg.max_eval_examples_per_part
    capped = f", validation and test capped at {cap} per part (seeded, by task and label)" if cap else ""
    description = (
        f"Mixture of {len(parts)} parts, interleaved (seed {cfg.seed}){capped}: {per_part}. "
        + " | ".join(f"{name}: {task.description}" for name, task in parts.items())
    )
    return TaskData(
        kind=kind,
        train=seeded_shuffle(splits["train"], cfg.seed, "mixture:train"),
        validation=seeded_shuffle(splits["validation"], cfg.seed, "mixture:validation"),
        test=seeded_shuffle(splits["test"], cfg.seed, "mixture:test"),
        labels=tuple(labels),
        instruction=shared,
        description=description,
        license="; ".join(f"{name}: {task.license}" for name, task in parts.items()),
        metadata={"dataset": "mixture", "seed": cfg.seed, "parts": {name: t.metadata for name, t in parts.items()}},
    )
