"""The label or tag set of a user's data, declared or taken from the training split, and the checks on it.

With undeclared labels, a held-out label (or entity type) that training never shows is not even a
choice: each is one problem naming the row (a declared set is checked row by row while mapping). Also: the system prompt shared by chat rows, and the options line of classification prompts.
"""

from __future__ import annotations

from dataclasses import replace

from adapt.data.columns import Mapped
from adapt.data.conll import bio_labels
from adapt.data.problems import Problems
from adapt.data.sources import ClassificationTask, TokenClassificationTask
from adapt.data_checks import did_you_mean

DEFAULT_INSTRUCTIONS = {
    "classification": "Classify the text. Answer with exactly one of the options given.",
    "token_classification": "Tag each word with its entity label (BIO scheme).",
}
MAX_FREE_LABELS = 50


def class_labels(task: ClassificationTask, splits: dict[str, list[Mapped]], problems: Problems) -> tuple[str, ...]:
    """The declared labels (rows outside them were reported while mapping), else those of the training
    split: a held-out label that training lacks is then one problem per row."""
    if task.labels:
        return tuple(task.labels)
    train = [m.example.completion for m in splits["train"]]
    labels = tuple(sorted(set(train)))
    if len(labels) > MAX_FREE_LABELS and len(labels) > len(train) // 2:
        problems.add(f"column {task.label!r}: {len(labels)} distinct values in {len(train)} training rows is free "
                     "text, not a label; use task: instruction, or declare data.task.labels")
        return labels
    if len(labels) == 1:
        problems.add(f"column {task.label!r}: the training split has one label ({labels[0]!r}); "
                     "classification needs rows of two labels or more")
    for mapped in splits.values():
        for m in mapped:
            if m.example.completion not in labels:
                problems.add(f"{m.row.where}: column {task.label!r}: label {m.example.completion!r} never occurs in the "
                             f"training split ({did_you_mean(m.example.completion, list(labels))}labels: "
                             f"{', '.join(labels)}); add rows with this label (a label needs 2 rows or more to reach "
                             "both splits of one file) or declare data.task.labels")
    return labels


def options_suffix(labels: tuple[str, ...]) -> str:
    """What ends every classification prompt of a user's data: the options line (the demo appends it too)."""
    return f"\n\nOptions: {', '.join(labels)}"


def with_choices(mapped: list[Mapped], labels: tuple[str, ...]) -> list:
    """Classification examples with their choices and an options line ending the prompt."""
    return [replace(m.example, prompt=m.example.prompt + options_suffix(labels), choices=labels) for m in mapped]


def tag_set(task: TokenClassificationTask, splits: dict[str, list[Mapped]], problems: Problems) -> tuple[str, ...]:
    """The declared tags (unknown ones were reported while mapping), else O plus B-/I- of every entity type
    in the training split: a held-out word of a type training lacks is then one problem."""
    if task.labels:
        return tuple(task.labels)
    labels = bio_labels([m.example for m in splits["train"]])
    if labels == ("O",):
        problems.add(f"column {task.tags!r}: every word of the training split is tagged O; tag the entities (B-X, I-X)")
    for split, mapped in splits.items():
        for m in mapped:
            for i, tag in enumerate(m.example.tags):
                if tag not in labels:
                    problems.add(f"{m.row.at(i)}: column {task.tags!r}: tag {tag!r} ({split} split): its entity type "
                                 f"never occurs in the training split ({', '.join(labels)}); add training sentences "
                                 "with it or declare data.task.labels")
    return labels


def shared_system(task_system: str | None, splits: dict[str, list[Mapped]]) -> tuple[str, dict[str, list]]:
    """(instruction for every prompt, examples): ``system`` if set, else the system turn every chat row shares;
    a row's own different system turn starts its prompt."""
    systems = {m.system for mapped in splits.values() for m in mapped}
    instruction = task_system or (next(iter(systems)) if len(systems) == 1 else "")
    out = {}
    for split, mapped in splits.items():
        out[split] = [
            replace(m.example, prompt=f"System: {m.system}\n\n{m.example.prompt}")
            if m.system and m.system != instruction else m.example
            for m in mapped
        ]
    return instruction, out
