"""Label skew in classification training data (``train.class_balance``).

Labels are counted per group (a LegalBench task, a mixture part): "Yes" of one
task is not "Yes" of another. Both remedies are deterministic:

- :func:`loss_weights`: one weight per example, inverse to its label's frequency
  in its group and scaled so that the group's mean weight is 1 (the loss keeps
  its size; a label seen half as often counts twice as much per example);
- :func:`oversample`: minority-label examples repeated, in a seeded order, until
  each label of a group is as frequent as the group's most frequent one.
"""

from __future__ import annotations

from collections import Counter, defaultdict

from adapt.data.splits import seeded_shuffle
from adapt.data.types import TextExample


def _key(example: TextExample) -> tuple[str, str]:
    return example.group, example.completion


def loss_weights(examples: list[TextExample]) -> list[float]:
    """Per example: n_group / (labels_in_group * count(group, label))."""
    counts = Counter(_key(ex) for ex in examples)
    sizes = Counter(ex.group for ex in examples)
    labels = Counter(group for group, _ in counts)
    return [sizes[ex.group] / (labels[ex.group] * counts[_key(ex)]) for ex in examples]


def oversample(examples: list[TextExample], seed: int) -> list[TextExample]:
    """``examples`` plus repeats of minority-label examples (whole copies first, then a seeded draw), in input order
    followed by the repeats; the trainer's sampler shuffles them."""
    by_key: dict[tuple[str, str], list[TextExample]] = defaultdict(list)
    for ex in examples:
        by_key[_key(ex)].append(ex)
    largest: Counter[str] = Counter()
    for (group, _), items in by_key.items():
        largest[group] = max(largest[group], len(items))
    extra: list[TextExample] = []
    for (group, label), items in sorted(by_key.items()):
        missing = largest[group] - len(items)
        whole, rest = divmod(missing, len(items))
        extra += items * whole + seeded_shuffle(items, seed, f"oversample:{group}:{label}")[:rest]
    return list(examples) + extra


def label_counts(examples: list[TextExample]) -> dict[str, int]:
    """``{"group/label" or "label": count}`` for metrics.json."""
    counts = Counter(f"{g}/{c}" if g else c for g, c in map(_key, examples))
    return dict(sorted(counts.items()))
