"""What a presenter types or clicks, and how it becomes the exact prompt text the run was trained on.

Example inputs come from the run's held-out data (``load_task`` on the recipe's
data section, test split, a seeded sample); when that data is not on this
machine they fall back to the domain card's examples. Typed inputs are turned
into the same user-turn text the dataset reader builds (PubMedQA context +
question, a LegalBench task's instruction and options, a MedQuAD question, the
options line of a user's own classification data);
:class:`~adapt.tasks.prompting.PromptFormat` then renders the model prompt.
"""

from __future__ import annotations

import logging
import random
import re
from dataclasses import dataclass, field

from adapt import tasks
from adapt.demo.runs import DemoRun
from adapt.domains import DemoExample

log = logging.getLogger(__name__)

N_EXAMPLES = 6
_PUBMEDQA = re.compile(r"^(?:Context: (?P<context>.*?)\n)?Question: (?P<question>.*)\nAnswer yes, no or maybe\.$", re.S)


@dataclass(frozen=True)
class LegalTemplate:
    """One LegalBench task's prompt around the clause: ``{instruction}\\n\\n{field}: {text}\\n{answer_line}``."""

    instruction: str
    field: str | None
    """Name of the single text field; None when the task has several (the text is the whole body)."""
    answer_line: str
    choices: tuple[str, ...]

    def render(self, text: str) -> str:
        body = f"{self.field}: {text}" if self.field else text
        return f"{self.instruction}\n\n{body}\n{self.answer_line}"

    @classmethod
    def parse(cls, prompt: str, choices: tuple[str, ...]) -> tuple[LegalTemplate, str]:
        """Split a LegalBench prompt into its template and the text it carries."""
        head, _, rest = prompt.partition("\n\n")
        body, _, answer_line = rest.rpartition("\n")
        name, sep, value = body.partition(": ")
        if sep and "\n" not in body and re.fullmatch(r"[\w ()'/-]{1,40}", name):
            return cls(head, name, answer_line, choices), value
        return cls(head, None, answer_line, choices), body


def _answer_line(choices: tuple[str, ...]) -> str:
    options = f"{choices[0]} or {choices[1]}" if len(choices) == 2 else "one of: " + ", ".join(choices)
    return f"Answer {options}."


@dataclass
class PromptBuilder:
    """Typed input -> the user-turn text and the label choices of one run."""

    source: str
    instruction: str
    choices: tuple[str, ...] = ()
    """Labels scored by log-likelihood (PubMedQA yes/no/maybe); empty for free generation."""
    max_context_chars: int = 1500
    legal: dict[str, LegalTemplate] = field(default_factory=dict)
    """LegalBench task -> its prompt template."""
    suffix: str = ""
    """Text the reader ends every prompt with after the typed text (a user's classification data: its options line)."""

    def user_text(self, inp: DemoExample) -> str:
        if self.source == "pubmedqa":
            from adapt.data.pubmedqa import format_prompt

            contexts = (inp.context,) if inp.context.strip() else ()
            return format_prompt(inp.text, contexts, self.max_context_chars)
        if self.source == "legalbench":
            return self.legal_template(inp.task).render(inp.text.strip())
        if self.source == "medquad":
            return re.sub(r"\s+([?.!,])", r"\1", inp.text.strip())
        return inp.text.strip() + self.suffix

    def legal_template(self, task: str) -> LegalTemplate:
        if task in self.legal:
            return self.legal[task]
        from adapt.data import legalbench_tasks

        info = legalbench_tasks.task_info(task)
        if info is None:
            known = ", ".join(sorted(self.legal)) or "none"
            raise ValueError(f"unknown LegalBench task {task!r}; this adapter knows: {known}")
        choices = info.labels or legalbench_tasks.YES_NO
        template = LegalTemplate(info.instruction, info.field_names.get("text", "Text"), _answer_line(choices), choices)
        self.legal[task] = template
        return template

    def label_choices(self, inp: DemoExample) -> tuple[str, ...]:
        if self.source == "legalbench":
            return self.legal_template(inp.task).choices
        return self.choices

    def classification_prompt(self, inp: DemoExample) -> tuple[str, tuple[str, ...]]:
        """The user-turn text and the labels of a text to classify: a LegalBench task's template around it (the
        task must be known), else the text as the run's reader shapes it, scored against the run's labels."""
        if self.legal or inp.task:
            template = self.legal_template(inp.task)
            return template.render(inp.text.strip()), template.choices
        if not self.choices:
            raise ValueError("this adapter's labels are unknown (its data is not on this machine)")
        return self.user_text(inp), self.choices

    @property
    def tasks(self) -> list[str]:
        return sorted(self.legal)


def _fallback_instruction(source: str) -> str:
    import importlib

    from adapt.data import READERS

    module = importlib.import_module(f"adapt.data.{READERS[source]}")
    return getattr(module, "INSTRUCTION", "")


def _to_demo_example(ex, source: str, builder: PromptBuilder) -> DemoExample | None:
    if hasattr(ex, "tokens"):  # a token-classification sentence (MasakhaNER: its language is its group)
        return DemoExample(text=" ".join(ex.tokens), language=ex.group if source == "masakhaner" else "")
    if source == "pubmedqa":
        m = _PUBMEDQA.match(ex.prompt)
        return DemoExample(text=m["question"], context=m["context"] or "") if m else None
    if source == "legalbench":
        template, text = LegalTemplate.parse(ex.prompt, tuple(ex.choices))
        builder.legal.setdefault(ex.group, template)
        return DemoExample(text=text, task=ex.group)
    if builder.suffix and ex.prompt.endswith(builder.suffix):
        return DemoExample(text=ex.prompt[: -len(builder.suffix)])
    return DemoExample(text=ex.prompt)


def _card_examples(run: DemoRun, builder: PromptBuilder) -> list[DemoExample]:
    data = run.recipe.data
    examples = list(run.card.examples)
    if data.source == "masakhaner":
        mine = [e for e in examples if e.language in data.languages]
        return mine or examples
    if data.source == "legalbench":
        known = []
        for e in examples:
            try:
                builder.legal_template(e.task)
                known.append(e)
            except ValueError:
                log.info("%s: card example task %r unknown; not shown", run.name, e.task)
        return known
    if data.source == "medquad":
        return [e for e in examples if not e.context] or examples
    return examples


def prepare(run: DemoRun, n: int = N_EXAMPLES, seed: int = 0) -> tuple[PromptBuilder, list[DemoExample], str]:
    """The run's prompt builder, a few example inputs, and where the examples come from."""
    from adapt.data import READERS, load_task
    from adapt.data.label_sets import options_suffix

    data = run.recipe.data
    builder = PromptBuilder(data.source, "", max_context_chars=getattr(data, "max_context_chars", 1500))
    try:
        task = load_task(data)
    except Exception as exc:  # data not on this machine, no network, a bad file: the card's examples still work
        log.warning("%s: held-out data unavailable (%s); using the domain card's examples", run.name, exc)
        task = None
    if task is not None:
        builder.instruction = task.instruction
        labelled = tasks.of(task).hub_task == "text-classification"  # labels scored by log-likelihood (not NER tags)
        builder.choices = tuple(task.labels) if labelled and data.source != "legalbench" else ()
        if builder.choices and READERS[data.source] == "own":
            builder.suffix = options_suffix(builder.choices)
        for ex in task.test:  # every task's template, even those not sampled below
            if data.source == "legalbench" and ex.group not in builder.legal:
                builder.legal[ex.group] = LegalTemplate.parse(ex.prompt, tuple(ex.choices))[0]
        pool = list(task.test)
        picked = random.Random(seed).sample(pool, min(n, len(pool)))
        examples = [e for e in (_to_demo_example(ex, data.source, builder) for ex in picked) if e is not None]
        if examples:
            return builder, examples, f"{len(examples)} seeded held-out test examples ({task.description.split(',')[0]})"
    builder.instruction = builder.instruction or _fallback_instruction(data.source)
    if data.source == "pubmedqa" and not builder.choices:
        from adapt.data.pubmedqa import LABELS

        builder.choices = LABELS
    return builder, _card_examples(run, builder), f"examples from the {run.card.name} domain card (held-out data not found)"
