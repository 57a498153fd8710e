"""The Gradio Blocks of the demo: one tab per domain, a view per domain card ``view``, a metrics panel.

qa: base and specialized answers side by side, streamed (plus label
probabilities for label tasks such as PubMedQA); classification: per-label
probabilities of both models as bar charts (a sequence-head run: its head against
the base's label likelihood, in the domain's classifier tab); ner: entities
highlighted in the sentence. Picking a tab or an adapter swaps it in memory and shows the time.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import gradio as gr
import pandas as pd

from adapt.demo.engine import LabelResult
from adapt.demo.limits import InputProblem, language_name
from adapt.demo.panel import metrics_markdown, model_card_text
from adapt.demo.runs import DemoRun
from adapt.demo.service import DemoService
from adapt.domains import DemoExample
from adapt.errors import AdaptError

MAX_EXAMPLES = 8
CAUSAL, NER = "causal-model", "ner-model"
"""Concurrency groups: every event that uses one model shares one queue slot limit (the model is shared)."""
ENTITY_COLORS = {"PER": "#f97316", "ORG": "#3b82f6", "LOC": "#10b981", "DATE": "#a855f7"}
CSS = """
.adapt-swap p { font-size: 0.9em; opacity: 0.85; }
footer { display: none !important; }
"""


def _friendly(n_outputs: int) -> Callable[[Callable], Callable]:
    """Input problems and adapt errors -> an error event with the reason (a toast on the page, the message for
    API clients); the outputs stay as they were, no traceback."""

    def decorate(fn: Callable) -> Callable:
        def wrapper(*args):
            try:
                result = fn(*args)
                if hasattr(result, "__next__"):
                    yield from result
                else:
                    yield result
            except InputProblem as exc:  # an error event: the page shows it and API clients get the reason too
                raise gr.Error(str(exc), title="Please check the input", print_exception=False) from None
            except AdaptError as exc:
                raise gr.Error(str(exc)) from None

        wrapper.__name__ = fn.__name__
        return wrapper

    return decorate


def probability_frame(result: LabelResult) -> pd.DataFrame:
    return pd.DataFrame({"label": list(result.probs), "probability": [round(p, 4) for p in result.probs.values()]})


def probability_plot(result: LabelResult) -> gr.BarPlot:
    """Bars in the task's label order (yes, no, maybe), not alphabetical."""
    return gr.BarPlot(value=probability_frame(result), sort=list(result.probs))


def _verdict(results: dict[str, LabelResult], head: bool = False) -> str:
    base, adapter = results["base"], results["adapter"]
    specialized = "specialized (head)" if head else "specialized"
    return (
        f"Label likelihood: base → **{base.predicted}** ({base.probs[base.predicted]:.0%}), "
        f"{specialized} → **{adapter.predicted}** ({adapter.probs[adapter.predicted]:.0%}). "
        f"Swaps {base.swap_ms:.2f} / {adapter.swap_ms:.2f} ms; scored in {base.seconds:.2f} / {adapter.seconds:.2f} s."
    )


def _examples(service: DemoService, runs: list[DemoRun]) -> list[DemoExample]:
    seen, out = set(), []
    for run in runs:
        for ex in service.prepared[run.name].examples:
            if ex.text not in seen:
                seen.add(ex.text)
                out.append(ex)
    return out[:MAX_EXAMPLES]


def _short(text: str, n: int = 90) -> str:
    return text if len(text) <= n else text[: n - 1].rsplit(" ", 1)[0] + " …"


def _bar(label: str, elem_id: str, visible: bool = True) -> gr.BarPlot:
    return gr.BarPlot(
        x="label", y="probability", y_lim=[0, 1], label=label, elem_id=elem_id, visible=visible,
        y_title="probability", x_title="label",
    )


def _qa_view(service: DemoService, domain: str, runs: list[DemoRun], adapter: gr.Dropdown, swap: gr.Markdown) -> None:
    examples = _examples(service, runs)
    has_context = any(r.recipe.data.source == "pubmedqa" for r in runs)
    has_labels = any(service.prepared[r.name].builder.choices for r in runs)
    question = gr.Textbox(label="Question", lines=2, max_lines=4, elem_id=f"{domain}-question", placeholder="Ask a question")
    context = gr.Textbox(
        label="Context (optional): the study abstract the question is about", lines=3, max_lines=8,
        elem_id=f"{domain}-context", visible=has_context,
    )
    ask = gr.Button("Ask both models", variant="primary", elem_id=f"{domain}-submit")
    with gr.Row(equal_height=True):
        base_out = gr.Textbox(label="Base model", lines=6, interactive=False, elem_id=f"{domain}-base-answer")
        adapter_out = gr.Textbox(label="Specialized (adapter)", lines=6, interactive=False, elem_id=f"{domain}-adapter-answer")
    with gr.Row(visible=has_labels):
        base_plot = _bar("Base: label probabilities", f"{domain}-base-labels")
        adapter_plot = _bar("Specialized: label probabilities", f"{domain}-adapter-labels")
    stats = gr.Markdown(elem_id=f"{domain}-stats")

    @_friendly(5)
    def answer(name, q, ctx):
        start = time.perf_counter()
        for step in service.ask(name, q, ctx):
            u = step.update
            line = " · ".join(f"**{label}**: {u.stats[side].describe()}" for side, label in (("base", "Base"), ("adapter", "Specialized")))
            if not u.done:
                yield u.base, u.adapter, gr.skip(), gr.skip(), line
                continue
            plots = (gr.skip(), gr.skip())
            if step.labels is not None:
                plots = (probability_plot(step.labels["base"]), probability_plot(step.labels["adapter"]))
                line += "  \n" + _verdict(step.labels)
            yield u.base, u.adapter, *plots, line + f"  \nDone in {time.perf_counter() - start:.1f} s."

    outputs = [base_out, adapter_out, base_plot, adapter_plot, stats]
    ask.click(answer, [adapter, question, context], outputs, api_name=f"{domain}_ask", concurrency_id=CAUSAL)
    question.submit(answer, [adapter, question, context], outputs, api_name=False, concurrency_id=CAUSAL)
    if examples:
        gr.Examples(
            [[e.text, e.context] for e in examples], [question, context], label=service.prepared[runs[0].name].examples_source,
            example_labels=[_short(e.text) for e in examples],
        )


def _classification_view(service: DemoService, domain: str, runs: list[DemoRun], adapter: gr.Dropdown, swap: gr.Markdown) -> None:
    examples = _examples(service, runs)
    tasks = sorted({t for r in runs for t in service.prepared[r.name].builder.tasks} | {e.task for e in examples if e.task})
    has_context = any(r.recipe.data.source == "pubmedqa" for r in runs)  # a PubMedQA classifier: question + abstract
    what = "Clause" if tasks else ("Question" if has_context else "Text")  # LegalBench: a clause checked against a task
    with gr.Row():
        task = gr.Dropdown(
            tasks, value=examples[0].task if examples and tasks else (tasks[0] if tasks else None),
            label="Clause type (LegalBench task)", elem_id=f"{domain}-task", scale=1, visible=bool(tasks),
        )
        clause = gr.Textbox(
            label=what, lines=4, max_lines=10, elem_id=f"{domain}-clause", scale=3,
            placeholder="Paste a contract clause" if tasks else "Type the text to classify",
        )
    context = gr.Textbox(
        label="Context: the study abstract the question is about", lines=3, max_lines=8, elem_id=f"{domain}-context",
        visible=has_context,
    )
    go = gr.Button("Classify with both models", variant="primary", elem_id=f"{domain}-submit")
    with gr.Row():
        base_plot = _bar("Base: label probabilities", f"{domain}-base-labels")
        adapter_plot = _bar("Specialized: label probabilities", f"{domain}-adapter-labels")
    verdict = gr.Markdown(elem_id=f"{domain}-stats")

    @_friendly(4)
    def classify(name, text, task_name, ctx):
        answer = service.classify(name, text, task_name, ctx)
        results, head = answer.results, service.run(name).is_sequence_head
        line, swap_text = _verdict(results, head), gr.skip()
        if answer.load_s is not None:
            line += f"  \nFirst request: loaded the classifier (base + LoRA + head) in {answer.load_s:.1f} s, once."
            swap_text = f"Classifier **{name}** loaded in {answer.load_s:.1f} s (once)."
        return probability_plot(results["base"]), probability_plot(results["adapter"]), line, swap_text

    inputs, outputs = [adapter, clause, task, context], [base_plot, adapter_plot, verdict, swap]
    go.click(classify, inputs, outputs, api_name=f"{domain}_classify", concurrency_id=CAUSAL)
    if examples:
        gr.Examples(
            [[e.text, e.task or None, e.context] for e in examples], [clause, task, context],  # None: no task picker
            label=service.prepared[runs[0].name].examples_source,
            example_labels=[f"{e.task}: {_short(e.text, 70)}" if e.task else _short(e.text) for e in examples],
        )


def _ner_view(service: DemoService, domain: str, runs: list[DemoRun], adapter: gr.Dropdown, swap: gr.Markdown) -> None:
    examples = _examples(service, runs)
    languages = list(dict.fromkeys([lang for r in runs for lang in getattr(r.recipe.data, "languages", [])] + [e.language for e in examples if e.language]))
    with gr.Row():
        language = gr.Dropdown(
            [(f"{language_name(c)} ({c})", c) for c in languages], value=languages[0] if languages else None,
            label="Language", elem_id=f"{domain}-language", scale=1, visible=bool(languages),
        )
        sentence = gr.Textbox(label="Sentence", lines=2, elem_id=f"{domain}-sentence", scale=3, placeholder="Type a sentence")
    go = gr.Button("Find entities", variant="primary", elem_id=f"{domain}-submit")
    entities = gr.HighlightedText(
        label="Entities (specialized model)", color_map=ENTITY_COLORS, show_legend=True, elem_id=f"{domain}-entities",
        combine_adjacent=False,
    )
    status = gr.Markdown(elem_id=f"{domain}-stats")

    @_friendly(3)
    def tag(name, text, lang):
        result = service.tag(name, text, lang)
        found = ", ".join(f"{t} ({k})" for k, t, _, _ in result.entities) or "no entities"
        line = f"{found} · tagged in {result.seconds:.2f} s · swap {result.swap_ms:.2f} ms"
        swap_text = gr.skip()
        if result.load_s is not None:
            line += (
                f"  \nFirst NER request: loaded the token-classification base (`AutoModelForTokenClassification`, "
                f"a separate instance from the causal LM) with its adapter(s) in {result.load_s:.1f} s."
            )
            swap_text = f"Active NER adapter **{name}** (base loaded in {result.load_s:.1f} s, once); swapped in {result.swap_ms:.2f} ms."
        return result.highlighted(), line, swap_text

    outputs = [entities, status, swap]
    go.click(tag, [adapter, sentence, language], outputs, api_name=f"{domain}_tag", concurrency_id=NER)
    sentence.submit(tag, [adapter, sentence, language], outputs, api_name=False, concurrency_id=NER)
    if examples:
        gr.Examples(
            [[e.text, e.language or (languages[0] if languages else None)] for e in examples], [sentence, language],
            label=service.prepared[runs[0].name].examples_source, example_labels=[_short(e.text) for e in examples],
        )


VIEWS = {"qa": _qa_view, "classification": _classification_view, "ner": _ner_view}
DOMAIN_ORDER = {"healthcare": 0, "legal": 1, "masakhaner": 2}


def _header(service: DemoService) -> str:
    lines = ["# adapt · domain-specialized small language models"]
    if service.base is not None:
        first = service.runs.causal[0]
        lines.append(
            f"One NF4 base, `{first.recipe.model.source}`, loaded once in {service.base.load_s:.1f} s; "
            f"{len(service.base.names)} adapter(s) swap in memory. Each request answers with the base and the "
            "specialized model on the same input."
        )
    if service.runs.token:
        lines.append(f"{len(service.runs.token)} NER adapter(s) on a token-classification base, loaded on first use.")
    if service.runs.heads:
        lines.append(f"{len(service.runs.heads)} classifier(s) with a sequence-classification head, each loaded on first use.")
    return "\n\n".join(lines)


def build_blocks(service: DemoService) -> gr.Blocks:
    with gr.Blocks(title="adapt demo") as demo:
        gr.Markdown(_header(service), elem_id="adapt-header")
        domains = sorted(service.runs.by_domain().items(), key=lambda kv: (DOMAIN_ORDER.get(kv[1][0].card.name, 9), kv[0]))
        with gr.Tabs():
            for domain, runs in domains:
                card, view = runs[0].card, runs[0].view
                with gr.Tab(runs[0].tab_title, id=domain, elem_id=f"tab-{domain}") as tab:
                    gr.Markdown(f"{card.description.split('. ')[0]}. {card.intended_use} {card.limitations}")
                    queue_id = NER if view == "ner" else CAUSAL
                    adapter = gr.Dropdown([(r.label, r.name) for r in runs], value=runs[0].name, label="Adapter", elem_id=f"{domain}-adapter")
                    swap = gr.Markdown(elem_id=f"{domain}-swap", elem_classes="adapt-swap")
                    VIEWS[view](service, domain, runs, adapter, swap)
                    with gr.Accordion("Metrics, data and license", open=True):
                        panel = gr.Markdown(metrics_markdown(runs[0]), elem_id=f"{domain}-metrics")
                    with gr.Accordion("Model card", open=False):
                        model_card = gr.Markdown(model_card_text(runs[0]), elem_id=f"{domain}-card")

                    def picked(name):
                        run = service.run(name)
                        return service.swap(name), metrics_markdown(run), model_card_text(run)

                    adapter.change(picked, [adapter], [swap, panel, model_card], api_name=False, concurrency_id=queue_id)
                    tab.select(service.swap, [adapter], [swap], api_name=False, concurrency_id=queue_id)
                    if domain == domains[0][0]:  # the first tab is open on page load: show its swap
                        demo.load(service.swap, [adapter], [swap], api_name=False, concurrency_id=queue_id)
        if service.runs.skipped:
            with gr.Accordion("Not served", open=False):
                gr.Markdown("\n".join(f"- {line}" for line in service.runs.skipped))
    return demo
