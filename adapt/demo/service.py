"""What the demo does per request, without any UI: swap, answer, classify, tag.

:class:`DemoService` owns the shared causal base, the lazily loaded NER base and
sequence-head models, each run's prompt builder and example inputs. Handlers validate inputs first
(:mod:`adapt.demo.limits`) and raise :class:`InputProblem` with a friendly
message; the UI turns it into a toast.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

from adapt.demo.engine import LabelResult, PairUpdate, SharedBase
from adapt.demo.heads import HeadModels
from adapt.demo.inputs import PromptBuilder, prepare
from adapt.demo.limits import InputProblem, Limits, check_prompt_tokens, check_text, check_words, language_name, language_script
from adapt.demo.ner import NerModels, Tagged
from adapt.demo.runs import DemoRun, DemoRuns
from adapt.domains import DemoExample

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    builder: PromptBuilder
    examples: list[DemoExample]
    examples_source: str


@dataclass
class Classified:
    """The classification view's answer: both sides' label probabilities (and a sequence head's first load)."""

    results: dict[str, LabelResult]
    load_s: float | None = None
    """Seconds a sequence-head run's model took to load on this request (its first), else None."""


@dataclass
class QAResult:
    """One step of the QA view: the streamed answers, and at the end the label probabilities (if any)."""

    update: PairUpdate
    labels: dict[str, LabelResult] | None = None


@dataclass
class DemoService:
    runs: DemoRuns
    device: str = "cpu"
    limits: Limits = field(default_factory=Limits)
    base: SharedBase | None = None
    ner: NerModels | None = None
    heads: HeadModels | None = None
    prepared: dict[str, Prepared] = field(default_factory=dict)

    @classmethod
    def start(cls, runs: DemoRuns, device: str = "cpu", limits: Limits | None = None) -> DemoService:
        """Load the causal base once with every adapter; the NER base waits for its first request."""
        service = cls(runs, device, limits or Limits())
        if runs.causal:
            service.base = SharedBase(runs.causal, device).load()
            log.info("shared base %s + %d adapter(s) loaded in %.1f s", runs.causal[0].base_key, len(runs.causal), service.base.load_s)
        if runs.token:
            service.ner = NerModels(runs.token, device)
        if runs.heads:
            service.heads = HeadModels(runs.heads, device, service.base)
        for run in runs.all:
            service.prepared[run.name] = Prepared(*prepare(run))
        return service

    def run(self, name: str) -> DemoRun:
        return self.runs.get(name)

    def max_new_tokens(self, name: str) -> int:
        return self.run(name).recipe.serve.max_new_tokens

    # ------------------------------------------------------------------ swap
    def swap(self, name: str) -> str:
        """Make ``name`` active now and say how long it took (markdown)."""
        run = self.run(name)
        if run.is_token_classification:
            assert self.ner is not None
            ms = self.ner.swap(name)
            if ms is None:
                return (
                    f"NER adapter **{name}** selected. Its base is a token-classification model "
                    "(`AutoModelForTokenClassification`, a separate instance from the causal LM): "
                    "it loads on the first request, once."
                )
            return f"Active NER adapter **{name}**: swapped in **{ms:.2f} ms** in memory (LoRA and head)."
        if run.is_sequence_head:
            assert self.heads is not None
            state = "loaded" if self.heads.is_loaded(name) else "loads on the first request, once"
            return (
                f"Classifier **{name}**: a sequence-classification head (`AutoModelForSequenceClassification`, its own "
                f"model: {state}). The base side is the base model scoring each label by likelihood, as in eval."
            )
        assert self.base is not None
        with self.base.lock:
            ms = self.base.activate(name)
        return (
            f"Active adapter **{name}** ({run.method}): swapped in **{ms:.2f} ms** in memory; the NF4 base "
            f"`{run.recipe.model.source}` stays loaded (loaded once in {self.base.load_s:.1f} s, "
            f"{len(self.base.names)} adapter(s) attached)."
        )

    # ------------------------------------------------------------------ views
    def _prompt_ids(self, name: str, inp: DemoExample):
        builder = self.prepared[name].builder
        ids = self.base.prompt_ids(builder.user_text(inp), builder.instruction)
        check_prompt_tokens(ids.shape[1], self.limits)
        return builder, ids

    def ask(self, name: str, question: str, context: str = "") -> Iterator[QAResult]:
        """Base and specialized answers, streamed side by side; then label probabilities when the task has labels."""
        run = self.run(name)
        who = f"The {run.card.name} model (English data)"
        question = check_text(question, what="question", max_chars=self.limits.max_chars, who=who, limits=self.limits)
        context = (context or "").strip()
        if context:
            context = check_text(context, what="context", max_chars=self.limits.max_context_chars, who=who, limits=self.limits)
        inp = DemoExample(text=question, context=context)
        builder, ids = self._prompt_ids(name, inp)
        update = None
        for update in self.base.stream_pair(name, ids, self.max_new_tokens(name)):
            if not update.done:
                yield QAResult(update)
        labels = None
        if builder.choices:
            labels = self.base.label_pair(name, builder.user_text(inp), builder.instruction, builder.choices)
        yield QAResult(update, labels)

    def classify(self, name: str, text: str, task: str = "", context: str = "") -> Classified:
        """Both models' label probabilities for ``text``; ``task``: the LegalBench task (clause type), if the run has
        tasks; ``context``: a PubMedQA abstract."""
        run = self.run(name)
        builder = self.prepared[name].builder
        if builder.tasks and not task:
            raise InputProblem("Please pick the clause type (task) to check the text against.")
        who, what = (f"The {run.card.name} model (English contracts)", "clause") if builder.tasks else (f"The {run.card.name} model", "text")
        text = check_text(text, what=what, max_chars=self.limits.max_chars, who=who, limits=self.limits)
        context = (context or "").strip()
        if context:
            context = check_text(context, what="context", max_chars=self.limits.max_context_chars, who=who, limits=self.limits)
        try:
            user_text, choices = builder.classification_prompt(DemoExample(text=text, task=task or "", context=context))
        except ValueError as exc:
            raise InputProblem(str(exc).capitalize() + ".") from None
        if run.is_sequence_head:
            assert self.heads is not None
            check_prompt_tokens(len(self.heads.tokenizer(name)(user_text)["input_ids"]), self.limits)
            return Classified(*self.heads.label_pair(name, user_text, builder.instruction, choices))
        check_prompt_tokens(self.base.prompt_ids(user_text, builder.instruction).shape[1], self.limits)
        return Classified(self.base.label_pair(name, user_text, builder.instruction, choices))

    def tag(self, name: str, sentence: str, language: str) -> Tagged:
        assert self.ner is not None
        script = language_script(language)
        who = f"The {language_name(language)} NER model" if language else "The NER model"
        text = check_text(sentence, what="sentence", max_chars=self.limits.max_chars, script=script, who=who, limits=self.limits)
        return self.ner.tag(name, check_words(text, self.limits))
