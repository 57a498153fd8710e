"""The label or tag set of a user's data, declared or taken from the training split, and the checks on it.

A held-out label (or entity type) that training never shows cannot be learned, and with undeclared
labels it is not even a choice: each is one problem naming the row. A declared set makes any other
label an error. Also: the system prompt shared by chat rows, and the options line of classification prompts.
"""

from __future__ import annotations

from collections import Counter
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
    """The label set; every label outside it (or, undeclared, absent from training) is one problem."""
    train = [m.example.completion for m in splits["train"]]
    if task.labels:
        labels = tuple(task.labels)
        fix = "fix the label or add it to data.task.labels"
    else:
        labels = tuple(sorted(set(train)))
        fix = ("add rows with this label (a label needs 2 rows or more to reach both splits of one file) "
               "or declare data.task.labels")
        if len(labels) > MAX_FREE_LABELS and len(labels) > len(train) // 2:
            problems.add(f"column {task.label!r}: {len(labels)} distinct values in {len(train)} training rows is free "
                         "text, not a label; use task: instruction, or declare data.task.labels")
            return labels
        if len(labels) == 1:
            problems.add(f"column {task.label!r}: the training split has one label ({labels[0]!r}); "
                         "classification needs rows of two labels or more")
    for split, mapped in splits.items():
        for m in mapped:
            label = m.example.completion
            if label not in labels:
                where = "is not in data.task.labels" if task.labels else "never occurs in the training split"
                problems.add(f"{m.row.where}: column {task.label!r}: label {label!r} {where} "
                             f"({did_you_mean(label, list(labels))}labels: {', '.join(labels)}); {fix}")
    return labels


def with_choices(mapped: list[Mapped], labels: tuple[str, ...]) -> list:
    """Classification examples with their choices and an options line ending the prompt."""
    options = f"Options: {', '.join(labels)}"
    return [replace(m.example, prompt=f"{m.example.prompt}\n\n{options}", choices=labels) for m in mapped]


def tag_set(task: TokenClassificationTask, splits: dict[str, list[Mapped]], problems: Problems) -> tuple[str, ...]:
    """The BIO tag set; an unknown tag (declared set) or an entity type training lacks is one problem per word."""
    if task.labels:
        known = set(task.labels)
        labels = tuple(task.labels)
    else:
        labels = bio_labels([m.example for m in splits["train"]])
        known = set(labels)
    for split, mapped in splits.items():
        for m in mapped:
            for i, tag in enumerate(m.example.tags):
                if tag in known:
                    continue
                if task.labels:
                    problems.add(f"{m.row.at(i)}: column {task.tags!r}: unknown tag {tag!r} "
                                 f"({did_you_mean(tag, list(labels))}data.task.labels: {', '.join(labels)}); "
                                 "fix the tag or add it to data.task.labels")
                else:
                    problems.add(f"{m.row.at(i)}: column {task.tags!r}: tag {tag!r} ({split} split): its entity type "
                                 f"never occurs in the training split ({', '.join(labels)}); add training sentences "
                                 "with it or declare data.task.labels")
    return labels


def shared_system(task_system: str | None, splits: dict[str, list[Mapped]]) -> tuple[str, dict[str, list]]:
    """(instruction for every prompt, examples): ``system`` if set, else the system turn every chat row shares;
    a row's own different system turn starts its prompt."""
    systems = Counter(m.system for mapped in splits.values() for m in mapped)
    instruction = task_system or (next(iter(systems)) if len(systems) == 1 else "")
    out = {}
    for split, mapped in splits.items():
        out[split] = [
            replace(m.example, prompt=f"System: {m.system}\n\n{m.example.prompt}")
            if m.system and m.system != instruction else m.example
            for m in mapped
        ]
    return instruction, out
