"""The classifier view's models for sequence-head runs (``train.sequence_head``), loaded on first use.

A sequence head is its own model class (``AutoModelForSequenceClassification``, possibly cut after a few layers and
reading the mean of the text), so it cannot ride on the shared causal base. Each run loads its own (base + LoRA +
head, as ``adapt eval`` scores its adapter). The base side of a comparison is what eval's base row is: the causal
base scoring each label by log-likelihood. It is the demo's shared causal base when that is the same model, else
one causal base per model, loaded on first use.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from adapt.data.types import TextExample
from adapt.demo.engine import LabelResult, SharedBase, label_probabilities, label_result
from adapt.demo.runs import BaseKey, DemoRun
from adapt.errors import AdaptError


@dataclass
class HeadModels:
    """Sequence-head runs by name, each model loaded on its first request."""

    runs: list[DemoRun]
    device: str = "cpu"
    shared: SharedBase | None = None
    """The demo's causal base, used for the base side when it is the same model."""
    lock: threading.Lock = field(default_factory=threading.Lock)
    _models: dict[str, tuple] = field(default_factory=dict)
    _bases: dict[BaseKey, tuple] = field(default_factory=dict)
    _tokenizers: dict[str, object] = field(default_factory=dict)

    def run(self, name: str) -> DemoRun:
        for run in self.runs:
            if run.name == name:
                return run
        raise AdaptError(f"no sequence-head adapter {name!r}; served: {', '.join(r.name for r in self.runs) or 'none'}")

    def is_loaded(self, name: str) -> bool:
        return name in self._models

    def tokenizer(self, name: str):
        """The run's tokenizer (its base's, as training read the texts), without loading its model."""
        from adapt.models.loading import load_tokenizer

        if name not in self._tokenizers:
            self._tokenizers[name] = load_tokenizer(self.run(name).recipe.model.source)
        return self._tokenizers[name]

    def _model(self, run: DemoRun) -> tuple:
        from adapt.tasks.heads import load_adapted

        if run.name not in self._models:
            start = time.perf_counter()
            model, tokenizer = load_adapted(run.run, run.recipe, self.device)
            self._models[run.name] = (model, tokenizer, time.perf_counter() - start)
        return self._models[run.name]

    def _base_scores(self, run: DemoRun, user_text: str, instruction: str, choices: tuple[str, ...]) -> LabelResult:
        """The causal base's label probabilities, as eval's base row scores them."""
        if self.shared is not None and BaseKey.of(self.shared.runs[0].recipe) == run.base_key:
            with self.shared.lock:
                swap_ms = self.shared.activate(None)
                return label_result(self.shared.model, self.shared.tokenizer, instruction, user_text, choices, swap_ms)
        if run.base_key not in self._bases:
            from adapt.models.loading import load_base

            self._bases[run.base_key] = load_base(run.recipe.model, device=self.device)
        return label_result(*self._bases[run.base_key], instruction, user_text, choices)

    def label_pair(self, name: str, user_text: str, instruction: str, choices: tuple[str, ...]) -> tuple[dict[str, LabelResult], float | None]:
        """Base (label likelihood) and head probabilities for one text, and the seconds its model took to load on
        this request (None when it was loaded already)."""
        from adapt.tasks.sequence_classification import head_scores

        run = self.run(name)
        with self.lock:
            loaded_before = self.is_loaded(name)
            model, tokenizer, load_s = self._model(run)
            start = time.perf_counter()
            example = TextExample(prompt=user_text, completion=choices[0], choices=tuple(choices))
            (scores,) = head_scores(model, tokenizer, [example], run.recipe.train.max_seq_len, batch_size=1, desc="demo")
            head = LabelResult(label_probabilities(scores.logprobs), scores.logprobs, 0.0, time.perf_counter() - start)
            base = self._base_scores(run, user_text, instruction, choices)
        return {"base": base, "adapter": head}, None if loaded_before else load_s
