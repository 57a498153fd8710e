"""Seeded, deterministic splits and samples shared by every reader.

Rules (DESIGN.md, shared/data/README.md): a sample is a seeded random draw,
never a prefix (PubMedQA's ground truth is ordered by label); classification
hold-outs are stratified by label; generation hold-outs are by document. Every
function but ``seeded_shuffle`` returns items in their original order, so results
do not depend on the order a caller shuffles in, only on the seed.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import TypeVar

from adapt.errors import DataError

T = TypeVar("T")


def _rng(seed: int, salt: str = "") -> random.Random:
    # A string seed is hashed deterministically by `random` (not by PYTHONHASHSEED).
    return random.Random(f"{seed}:{salt}")


def seeded_sample(items: Sequence[T], k: int | None, seed: int, salt: str = "sample") -> list[T]:
    """``k`` items drawn at random with ``seed`` (all of them when k is None or >= len)."""
    if k is None or k >= len(items):
        return list(items)
    if k < 0:
        raise ValueError(f"sample size must be >= 0, got {k}")
    chosen = sorted(_rng(seed, salt).sample(range(len(items)), k))
    return [items[i] for i in chosen]


def seeded_shuffle(items: Sequence[T], seed: int, salt: str = "shuffle") -> list[T]:
    """A copy of ``items`` in a seeded random order (the one function here that reorders)."""
    out = list(items)
    _rng(seed, salt).shuffle(out)
    return out


def _quotas(counts: dict[Hashable, int], total: int, cover: bool = True) -> dict[Hashable, int]:
    """Split ``total`` over classes in proportion to ``counts`` (largest remainder).

    With ``cover``, every class with >= 2 members then keeps at least one item on
    each side (taking from the largest quota; the total can grow by a few when
    there are many small classes), and a class with one member goes to the
    held-out side (so the reported split covers the label set; one example
    cannot be learned from).
    """
    n = sum(counts.values())
    order = sorted(counts, key=str)
    raw = {c: counts[c] * total / n for c in order}
    quota = {c: math.floor(raw[c]) for c in order}
    left = total - sum(quota.values())
    for c in sorted(order, key=lambda c: (-(raw[c] - quota[c]), str(c)))[:left]:
        quota[c] += 1
    if not cover:
        return quota
    for c in order:
        if counts[c] == 1:
            quota[c] = 1 if total > 0 else 0
        elif quota[c] == 0 and total > 0:
            donor = max(order, key=lambda d: (quota[d] - 1 if counts[d] > 1 else -1, str(d)))
            if quota[donor] > 1:
                quota[donor] -= 1
            quota[c] = 1
        elif quota[c] >= counts[c]:
            quota[c] = counts[c] - 1
    return quota


def stratified_split(
    items: Sequence[T],
    label_of: Callable[[T], Hashable],
    heldout: float | int,
    seed: int,
    salt: str = "split",
    cover: bool = True,
) -> tuple[list[T], list[T]]:
    """Split into (rest, held_out), stratified by ``label_of(item)``.

    ``heldout`` is a fraction (0 < f < 1) or an absolute count. Deterministic for
    a given seed and item set; both lists keep the input order. ``cover``: see
    :func:`_quotas` (label coverage on both sides; off for document splits).
    """
    n = len(items)
    if n == 0:
        return [], []
    if isinstance(heldout, float):
        if not 0 < heldout < 1:
            raise ValueError(f"held-out fraction must be in (0, 1), got {heldout}")
        total = min(n, max(1, round(heldout * n)))
    else:
        total = min(n, max(0, int(heldout)))
    groups: dict[Hashable, list[int]] = defaultdict(list)
    for i, item in enumerate(items):
        groups[label_of(item)].append(i)
    quota = _quotas({c: len(v) for c, v in groups.items()}, total, cover)
    held: set[int] = set()
    for c in sorted(groups, key=str):
        idx = list(groups[c])
        _rng(seed, f"{salt}:{c}").shuffle(idx)
        held.update(idx[: quota[c]])
    rest = [items[i] for i in range(n) if i not in held]
    return rest, [items[i] for i in range(n) if i in held]


def split_groups(
    keys: Iterable[Hashable],
    fraction: float,
    seed: int,
    stratum_of: Callable[[Hashable], Hashable] | None = None,
    salt: str = "groups",
    minimum: int = 1,
) -> set[Hashable]:
    """Pick the held-out groups (documents): a seeded ``fraction`` of the distinct
    keys (at least ``minimum``, always leaving one), in proportion to the strata
    ``stratum_of(key)`` (e.g. a document's source) if given."""
    unique = sorted(set(keys), key=str)
    if len(unique) < 2:
        raise ValueError(f"need at least 2 groups to hold some out, got {len(unique)}")
    count = min(len(unique) - 1, max(minimum, round(fraction * len(unique))))
    strata = stratum_of or (lambda _key: "")
    _, held = stratified_split(unique, strata, count, seed, salt, cover=False)
    return set(held)


def assert_disjoint(train_ids: Iterable[Hashable], eval_ids: Iterable[Hashable], what: str) -> None:
    """Raise a DataError if any evaluation id is also a training id (never train on test)."""
    overlap = set(train_ids) & set(eval_ids)
    if overlap:
        sample = ", ".join(sorted(map(str, overlap))[:5])
        raise DataError(
            f"{what}: {len(overlap)} evaluation item(s) also in the training split ({sample}); "
            "this would train on test: check the split files"
        )


def label_mix(labels: Iterable[str]) -> str:
    """'yes 276 / no 169 / maybe 55' (most frequent first, ties by name)."""
    counts: dict[str, int] = defaultdict(int)
    for label in labels:
        counts[label] += 1
    return " / ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
