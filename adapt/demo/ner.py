"""The NER view's model: a token-classification base (its own instance), loaded on first use.

MasakhaNER adapters train a ``score`` head on ``AutoModelForTokenClassification``,
a different model class from the causal LM, so they cannot ride on the shared
causal base. Runs with the same base model and head spec (labels, attention,
label position) share one such base; each adapter
(LoRA + its head, peft ``modules_to_save``) is attached by run name and picked
with peft's ``set_adapter``, which switches the LoRA layers and the head.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from adapt.demo.runs import DemoRun
from adapt.errors import AdaptError
from adapt.tasks.heads import HeadSpec

log = logging.getLogger(__name__)


@dataclass
class Tagged:
    words: list[str]
    tags: list[str]
    entities: list[tuple[str, str, int, int]]
    """(type, text, first word, last word)."""
    swap_ms: float
    seconds: float
    load_s: float | None
    """Seconds spent loading the token-classification base for this request (first use), else None."""

    def highlighted(self) -> list[tuple[str, str | None]]:
        """``gr.HighlightedText`` value: entity spans labelled with their type, other words unlabelled."""
        out: list[tuple[str, str | None]] = []
        starts = {start: (kind, end) for kind, _, start, end in self.entities}
        i = 0
        while i < len(self.words):
            if i in starts:
                kind, end = starts[i]
                out.append((" ".join(self.words[i : end + 1]), kind))
                i = end + 1
            else:
                out.append((self.words[i], None))
                i += 1
            if i < len(self.words):
                out.append((" ", None))
        return out


@dataclass
class _Group:
    spec: HeadSpec
    runs: list[DemoRun]
    model: object = None
    tokenizer: object = None


@dataclass
class NerModels:
    """Token-classification adapters, grouped by label set; each group's base loads lazily."""

    runs: list[DemoRun]
    device: str = "cpu"
    lock: threading.Lock = field(default_factory=threading.Lock)
    _groups: dict[str, _Group] = field(default_factory=dict)

    def __post_init__(self) -> None:
        groups: dict[tuple, _Group] = {}
        for run in self.runs:
            spec = HeadSpec.read(run.run.require_adapter())
            model = run.recipe.model
            group = groups.setdefault((model.source, model.quantization, spec), _Group(spec, []))
            group.runs.append(run)
            self._groups[run.name] = group

    def is_loaded(self, name: str) -> bool:
        return self._group(name).model is not None

    def swap(self, name: str) -> float | None:
        """Switch the loaded NER base to adapter ``name`` (LoRA and head); milliseconds, or None if not loaded."""
        group = self._group(name)
        with self.lock:
            if group.model is None:
                return None
            start = time.perf_counter()
            group.model.set_adapter(name)
            return (time.perf_counter() - start) * 1000

    def _group(self, name: str) -> _Group:
        if name not in self._groups:
            raise AdaptError(f"no NER adapter {name!r}; served: {', '.join(self._groups) or 'none'}")
        return self._groups[name]

    def _load(self, group: _Group) -> float:
        from adapt import methods
        from adapt.tasks.heads import load_head_model

        start = time.perf_counter()
        first = group.runs[0]
        model, tokenizer = load_head_model(first.recipe.model, group.spec, self.device)
        for run in group.runs:
            model = methods.get(run.method).load(model, run.run.require_adapter(), name=run.name)
        group.model, group.tokenizer = model.eval(), tokenizer
        seconds = time.perf_counter() - start
        log.info("token-classification base + %d adapter(s) loaded in %.1f s", len(group.runs), seconds)
        return seconds

    def tag(self, name: str, words: list[str]) -> Tagged:
        """Entity tags for one word-split sentence with adapter ``name`` (loads its base on first use)."""
        from seqeval.metrics.sequence_labeling import get_entities

        from adapt.tasks.ner import predict_tags

        group = self._group(name)
        with self.lock:
            load_s = self._load(group) if group.model is None else None
            start = time.perf_counter()
            group.model.set_adapter(name)
            swap_ms = (time.perf_counter() - start) * 1000
            start = time.perf_counter()
            id2label = dict(enumerate(group.spec.labels))
            (tags,), _ = predict_tags(group.model, group.tokenizer, [words], id2label, batch_size=1, position=group.spec.label_position)
            seconds = time.perf_counter() - start
        entities = [(kind, " ".join(words[s : e + 1]), s, e) for kind, s, e in get_entities(tags)]
        return Tagged(words, tags, entities, swap_ms, seconds, load_s)
