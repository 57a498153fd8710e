"""One causal-LM base loaded once, every adapter attached by name, swapped in memory.

Base vs specialized answers come from the same model object: ``activate(None)``
then ``activate(name)`` for each request, under one lock (requests serialize;
Gradio's queue bounds how many wait). A swap is timed with ``time.perf_counter``.

How a swap switches (``fast_swap``). Each method's ``set_active`` walks every
module of the model (2,499 on SmolLM2-135M with one LoRA) and peft's
``set_adapter``/``enable_adapters`` also toggle ``requires_grad`` on every LoRA
parameter: about 20 ms per swap on this CPU. The demo never trains, so after
loading it caches each method's layers once and flips only the flags their
forward reads (the registry's ``fast_switch``: peft ``LoraLayer``'s
``_disable_adapters`` and ``_active_adapter``, exactly what ``qlora.set_active``
leaves set; ``PEQALinear.active``), well under a millisecond. Methods without a
fast path (MoE-LoRA's ``set_active`` is one attribute already) go through their
``set_active``. ``fast_swap=False`` uses
``set_active`` for every method; tests check both give identical outputs.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from adapt import methods
from adapt.demo.runs import DemoRun
from adapt.errors import AdaptError

log = logging.getLogger(__name__)

SIDES = ("base", "adapter")
STREAM_TIMEOUT_S = 300.0
"""A consumer waits at most this long for the next piece of text (the worker holds the lock meanwhile)."""


@dataclass
class GenStats:
    """Timing of one generation: swap before it, time to first token, decode speed."""

    swap_ms: float = 0.0
    ttft_s: float | None = None
    tokens: int = 0
    total_s: float = 0.0

    @property
    def tokens_per_s(self) -> float | None:
        if self.ttft_s is None or self.tokens < 2 or self.total_s <= self.ttft_s:
            return None
        return (self.tokens - 1) / (self.total_s - self.ttft_s)

    def describe(self) -> str:
        if self.ttft_s is None:
            return f"swap {self.swap_ms:.2f} ms"
        speed = f", {self.tokens_per_s:.1f} tok/s" if self.tokens_per_s else ""
        return f"swap {self.swap_ms:.2f} ms, first token {self.ttft_s:.2f} s, {self.tokens} tokens{speed}"


@dataclass
class PairUpdate:
    """The side-by-side answer so far."""

    base: str
    adapter: str
    stats: dict[str, GenStats]
    done: bool = False


@dataclass
class LabelResult:
    probs: dict[str, float]
    """Softmax over the label log-likelihoods."""
    logprobs: dict[str, float]
    swap_ms: float
    seconds: float

    @property
    def predicted(self) -> str:
        return max(self.probs, key=self.probs.get)


def label_result(model, tokenizer, instruction: str, user_text: str, choices: tuple[str, ...], swap_ms: float = 0.0) -> LabelResult:
    """A causal LM's label probabilities for ``user_text`` (each label's log-likelihood after the prompt), timed."""
    from adapt.data.types import TextExample
    from adapt.tasks.classification import score_example
    from adapt.tasks.prompting import PromptFormat

    start = time.perf_counter()
    example = TextExample(prompt=user_text, completion="", choices=tuple(choices))
    scores = score_example(model, PromptFormat(tokenizer, instruction), example)
    return LabelResult(label_probabilities(scores.logprobs), scores.logprobs, swap_ms, time.perf_counter() - start)


def label_probabilities(logprobs: dict[str, float]) -> dict[str, float]:
    top = max(logprobs.values())
    exp = {k: math.exp(v - top) for k, v in logprobs.items()}
    total = sum(exp.values())
    return {k: v / total for k, v in exp.items()}


def _timed_streamer_class():
    from transformers import TextIteratorStreamer

    class TimedStreamer(TextIteratorStreamer):
        """A TextIteratorStreamer that records when generated tokens arrive (the prompt is skipped)."""

        def __init__(self, tokenizer, stats: GenStats):
            super().__init__(tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=STREAM_TIMEOUT_S)
            self.stats = stats
            self.start = time.perf_counter()

        def put(self, value):
            if not (self.skip_prompt and self.next_tokens_are_prompt):
                now = time.perf_counter()
                if self.stats.ttft_s is None:
                    self.stats.ttft_s = now - self.start
                self.stats.tokens += int(value.numel())
                self.stats.total_s = now - self.start
            super().put(value)

    return TimedStreamer


class _StopOnEvent(StoppingCriteria):
    """A generate() stopping criterion that ends every sequence once ``event`` is set (client left)."""

    def __init__(self, event: threading.Event):
        self.event = event

    def __call__(self, input_ids, scores, **kwargs):
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


@dataclass
class SharedBase:
    """The shared causal-LM base with every adapter of ``runs`` attached."""

    runs: list[DemoRun]
    device: str = "cpu"
    model: torch.nn.Module | None = None
    tokenizer: object = None
    load_s: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)
    _methods: dict[str, methods.Method] = field(default_factory=dict)
    _method_of: dict[str, str] = field(default_factory=dict)
    _switches: dict[str, Callable[[str | None], None]] = field(default_factory=dict)
    fast_swap: bool = True
    active: str | None = None

    def load(self) -> SharedBase:
        """Load the base once (NF4 per the recipes) and attach each adapter under its run name."""
        from adapt.models.loading import load_base

        if not self.runs:
            raise AdaptError("no causal-LM adapters to serve")
        start = time.perf_counter()
        model, self.tokenizer = load_base(self.runs[0].recipe.model, device=self.device)
        for run in self.runs:  # in the registry's load_order (demo.runs.discover sorts them)
            method = methods.get(run.method)
            log.info("attaching %s adapter %s from %s", run.method, run.name, run.run.adapter)
            model = method.load(model, run.run.require_adapter(), name=run.name)
            self._methods[run.method] = method
            self._method_of[run.name] = run.method
        self.model = model.eval()
        self.load_s = time.perf_counter() - start
        self.use_fast_swap(self.fast_swap)
        return self

    def use_fast_swap(self, fast: bool) -> None:
        """Cache each method's switch (see the module docstring); ``fast=False``: each method's ``set_active``."""
        self.fast_swap = fast
        self._switches = {}
        for method_name, method in self._methods.items():
            if fast and method.fast_switch is not None:
                self._switches[method_name] = method.fast_switch(self.model)
            else:
                self._switches[method_name] = lambda name, m=method: m.set_active(self.model, name)
        self.activate(None)

    @property
    def names(self) -> list[str]:
        return list(self._method_of)

    def activate(self, name: str | None) -> float:
        """Make adapter ``name`` (None: the plain base) the one the forward pass uses; returns milliseconds."""
        if name is not None and name not in self._method_of:
            raise AdaptError(f"no adapter {name!r} on the shared base; loaded: {', '.join(self.names)}")
        start = time.perf_counter()
        owner = self._method_of.get(name) if name else None
        for method_name, switch in self._switches.items():
            switch(name if method_name == owner else None)
        self.active = name
        return (time.perf_counter() - start) * 1000

    def prompt_ids(self, user_text: str, instruction: str) -> torch.Tensor:
        from adapt.tasks.prompting import PromptFormat

        prompt = PromptFormat(self.tokenizer, instruction).prompt(user_text)
        return self.tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"].to(self.device)

    def _generate(self, input_ids: torch.Tensor, streamer, stop: threading.Event, max_new_tokens: int) -> None:
        with torch.no_grad():
            self.model.generate(
                input_ids=input_ids,
                attention_mask=torch.ones_like(input_ids),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                repetition_penalty=1.1,
                streamer=streamer,
                stopping_criteria=StoppingCriteriaList([_StopOnEvent(stop)]),
                pad_token_id=self.tokenizer.pad_token_id,
                eos_token_id=self.tokenizer.eos_token_id,
            )

    def stream_pair(self, name: str, input_ids: torch.Tensor, max_new_tokens: int) -> Iterator[PairUpdate]:
        """Stream the base answer, then the adapter's, from one worker thread that holds the lock.

        The worker runs to completion (or until this generator is closed) even if
        the consumer stops reading, so the lock is always released.
        """
        streamer_cls = _timed_streamer_class()
        stats = {side: GenStats() for side in SIDES}
        streamers = {side: streamer_cls(self.tokenizer, stats[side]) for side in SIDES}
        stop = threading.Event()
        errors: list[BaseException] = []

        def work() -> None:
            try:
                with self.lock:
                    for side, target in zip(SIDES, (None, name)):
                        stats[side].swap_ms = self.activate(target)
                        streamers[side].start = time.perf_counter()
                        self._generate(input_ids, streamers[side], stop, max_new_tokens)
            except BaseException as exc:  # surfaced to the consumer below
                errors.append(exc)
                for s in streamers.values():
                    s.end()

        worker = threading.Thread(target=work, name=f"demo-generate-{name}", daemon=True)
        worker.start()
        texts = dict.fromkeys(SIDES, "")
        try:
            for side in SIDES:
                for piece in streamers[side]:
                    texts[side] += piece
                    yield PairUpdate(texts["base"], texts["adapter"], stats)
                if errors:
                    raise errors[0]
            worker.join(timeout=STREAM_TIMEOUT_S)
            yield PairUpdate(texts["base"].strip(), texts["adapter"].strip(), stats, done=True)
        finally:
            stop.set()

    def label_pair(self, name: str, user_text: str, instruction: str, choices: tuple[str, ...]) -> dict[str, LabelResult]:
        """Per-label probabilities (from label log-likelihoods) for the base and the adapter."""
        if not choices:
            raise AdaptError("no labels to score for this input")
        with self.lock:
            return {side: label_result(self.model, self.tokenizer, instruction, user_text, choices, self.activate(target))
                    for side, target in zip(SIDES, (None, name))}  # fmt: skip
