"""The demo without a browser: run discovery, one shared base, adapter swaps, views, input limits, metrics panel."""

from __future__ import annotations

import inspect
import shutil

import pytest
import torch
import yaml

from demo_fixtures import build_causal_run, build_ner_run

from adapt.demo.limits import InputProblem, Limits, check_text, check_words, script_shares
from adapt.demo.runs import adapter_name, discover, find_run_dirs
from adapt.errors import AdaptError


def _available_methods() -> tuple[str, ...]:
    """qlora always; the custom methods when their modules import (they are written alongside)."""
    import importlib

    found = ["qlora"]
    for name in ("peqa", "moe_lora"):
        try:
            importlib.import_module(f"adapt.methods.{name}")
            found.append(name)
        except ImportError:
            pass
    return tuple(found)


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory, tiny_llama_dir):
    folder = tmp_path_factory.mktemp("demo-runs")
    build_causal_run(folder / "healthcare-tiny", tiny_llama_dir, "healthcare", "qlora", seed=1)
    build_causal_run(folder / "legal-tiny", tiny_llama_dir, "legal", "qlora", seed=2)
    for i, method in enumerate(_available_methods()[1:], 3):
        build_causal_run(folder / f"healthcare-{method}", tiny_llama_dir, "healthcare", method, seed=i)
    build_ner_run(folder / "masakhaner-tiny", tiny_llama_dir, seed=9)
    return folder


@pytest.fixture(scope="module")
def service(runs_dir):
    from adapt.demo.service import DemoService

    return DemoService.start(discover([runs_dir]))


@pytest.fixture(scope="module")
def ids(service):
    return service.base.tokenizer("Does aspirin reduce the risk of stroke?", return_tensors="pt")["input_ids"]


def _logits(service, ids) -> torch.Tensor:
    with torch.no_grad():
        return service.base.model(input_ids=ids).logits.float()


# ----------------------------------------------------------------------------- discovery
def test_discovery_finds_runs_and_skips_untrained(runs_dir, tmp_path):
    pending = tmp_path / "pending"
    pending.mkdir()
    shutil.copy(runs_dir / "healthcare-tiny" / "recipe.resolved.yaml", pending / "recipe.resolved.yaml")
    found, skipped = find_run_dirs([runs_dir, pending])
    assert {p.name for p in found} >= {"healthcare-tiny", "legal-tiny", "masakhaner-tiny"}
    assert len(skipped) == 1 and "no trained adapter yet" in skipped[0]
    direct, _ = find_run_dirs([runs_dir / "legal-tiny", runs_dir / "legal-tiny"])
    assert [p.name for p in direct] == ["legal-tiny"]  # listed twice, served once


def test_discovery_errors_say_what_to_do(tmp_path):
    with pytest.raises(AdaptError, match="no such directory"):
        find_run_dirs([tmp_path / "missing"])
    with pytest.raises(AdaptError, match="adapt train"):
        find_run_dirs([tmp_path])


def test_adapter_names_are_unique_and_safe():
    taken = {"healthcare"}
    assert adapter_name("healthcare", taken) == "healthcare-2"
    assert adapter_name("run.v1 (copy)", set()) == "run_v1_copy"
    assert "." not in adapter_name("a.b.c", set())


def test_runs_split_by_model_class_and_load_order(runs_dir):
    runs = discover([runs_dir])
    assert [r.name for r in runs.token] == ["masakhaner-tiny"]
    methods = [r.method for r in runs.causal]
    assert methods[0] == "qlora" and methods == sorted(methods, key=["qlora", "moe_lora", "peqa"].index)
    assert runs.get("legal-tiny").view == "classification"


def test_mixed_bases_are_refused_with_groups(runs_dir, tmp_path):
    other = tmp_path / "legal-16bit"
    shutil.copytree(runs_dir / "legal-tiny", other)
    raw = yaml.safe_load((other / "recipe.resolved.yaml").read_text())
    raw["model"]["quantization"] = "none"
    (other / "recipe.resolved.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(AdaptError, match="do not share one base") as err:
        discover([runs_dir / "healthcare-tiny", other])
    assert "healthcare-tiny" in str(err.value) and "legal-16bit" in str(err.value) and "--port" in str(err.value)


# ----------------------------------------------------------------------------- swap
def test_base_loaded_once_with_every_adapter(service):
    assert set(service.base.names) == {r.name for r in service.runs.causal}
    assert service.base.load_s > 0


def test_swap_changes_the_model_and_none_restores_the_base(service, ids):
    base = service.base
    base.activate(None)
    plain = _logits(service, ids)
    outputs = {}
    for name in base.names:
        ms = base.activate(name)
        assert 0 < ms < 1000
        outputs[name] = _logits(service, ids)
        assert not torch.allclose(outputs[name], plain), f"{name} did not change the output"
    for name in reversed(base.names):  # switching back and forth is exact: nothing stays enabled by mistake
        base.activate(name)
        torch.testing.assert_close(_logits(service, ids), outputs[name])
    base.activate(None)
    torch.testing.assert_close(_logits(service, ids), plain)


def test_fast_swap_matches_each_methods_set_active(service, ids):
    """The demo's cached-flag switch leaves the model exactly as the methods' own set_active does."""
    base = service.base
    order = [None, *base.names]
    outputs = {}
    try:
        for fast, names in ((True, order), (False, order[::-1]), (True, order[::-1])):
            base.use_fast_swap(fast)
            for name in names:
                base.activate(name)
                outputs.setdefault(name, []).append(_logits(service, ids))
    finally:
        base.use_fast_swap(True)
    for name, (fast, slow, fast_again) in outputs.items():
        torch.testing.assert_close(fast, slow, msg=f"{name}: fast switch differs from set_active")
        torch.testing.assert_close(fast_again, slow)


def test_swap_status_reports_milliseconds(service):
    text = service.swap("legal-tiny")
    assert "legal-tiny" in text and " ms" in text and service.base.active == "legal-tiny"
    with pytest.raises(AdaptError, match="no adapter"):
        service.base.activate("nope")


# ----------------------------------------------------------------------------- views
def test_qa_streams_both_sides_then_label_probabilities(service):
    ex = service.prepared["healthcare-tiny"].examples[0]
    steps = list(service.ask("healthcare-tiny", ex.text, ex.context))
    assert len(steps) >= 2  # streamed, then the final step
    final = steps[-1]
    assert final.update.done and final.labels is not None
    for side in ("base", "adapter"):
        stats = final.update.stats[side]
        assert stats.ttft_s is not None and stats.tokens > 0 and stats.swap_ms > 0
        probs = final.labels[side].probs
        assert list(probs) == ["yes", "no", "maybe"] and sum(probs.values()) == pytest.approx(1.0)
    assert final.labels["base"].probs != final.labels["adapter"].probs
    assert not service.base.lock.locked()


def test_stream_releases_the_lock_when_the_reader_leaves(service, ids):
    stream = service.base.stream_pair("healthcare-tiny", ids, max_new_tokens=50)
    next(stream)
    stream.close()  # the client went away mid-answer
    assert service.base.lock.acquire(timeout=30)
    service.base.lock.release()


def test_classification_probabilities_per_label(service):
    ex = service.prepared["legal-tiny"].examples[0]
    results = service.classify("legal-tiny", ex.text, ex.task).results
    for side in ("base", "adapter"):
        assert set(results[side].probs) == {"Yes", "No"}
        assert sum(results[side].probs.values()) == pytest.approx(1.0)
    with pytest.raises(InputProblem, match="pick the clause type"):
        service.classify("legal-tiny", ex.text, "")


def test_ner_base_loads_lazily_and_highlights(service):
    assert not service.ner.is_loaded("masakhaner-tiny")
    assert "loads on the first request" in service.swap("masakhaner-tiny")
    sentence = "Adéwálé Ọlábísí lọ sí Ìbàdàn ní ọjọ́ Ajé ."
    first = service.tag("masakhaner-tiny", sentence, "yor")
    again = service.tag("masakhaner-tiny", sentence, "yor")
    assert first.load_s is not None and again.load_s is None
    assert first.tags == again.tags and len(first.tags) == len(sentence.split())
    assert "".join(text for text, _ in first.highlighted()) == sentence
    assert {label for _, label in first.highlighted() if label} <= {"PER", "ORG", "LOC", "DATE"}
    assert "swapped in" in service.swap("masakhaner-tiny")


# ----------------------------------------------------------------------------- examples and prompts
def test_examples_rebuild_the_exact_held_out_prompts(service):
    from adapt.data import load_task

    for name in ("healthcare-tiny", "legal-tiny"):
        prepared = service.prepared[name]
        assert "held-out" in prepared.examples_source and prepared.examples
        test_prompts = {ex.prompt for ex in load_task(service.run(name).recipe.data).test}
        for ex in prepared.examples:
            assert prepared.builder.user_text(ex) in test_prompts


def test_examples_fall_back_to_the_domain_card(service):
    from adapt.demo.inputs import prepare

    run = service.run("legal-tiny")
    moved = run.recipe.model_copy(update={"data": run.recipe.data.model_copy(update={"path": "/nonexistent/legalbench"})})
    offline = type(run)(run.name, run.run, moved, run.card)
    builder, examples, source = prepare(offline)
    assert "domain card" in source and examples
    assert all(e.task for e in examples)
    prompt = builder.user_text(examples[0])
    assert examples[0].text.strip() in prompt and prompt.endswith("Answer Yes or No.")


# ----------------------------------------------------------------------------- input limits
@pytest.mark.parametrize(
    "text, kwargs, message",
    [
        ("   ", {}, "Please type a question first"),
        ("word " * 300, {}, "characters long; the demo takes up to 1,000"),
        ("12345 67890 !!! ???", {}, "mostly digits or symbols"),
        ("Каковы симптомы диабета?", {"who": "The healthcare model"}, "reads Latin script, but this question is mostly in Cyrillic"),
        ("ሰላም ለዓለም ዛሬ", {"who": "The Yoruba NER model"}, "mostly in Ethiopic"),
    ],
)
def test_input_problems_have_friendly_messages(text, kwargs, message):
    with pytest.raises(InputProblem, match=message):
        check_text(text, what="question", max_chars=1000, **kwargs)


def test_valid_inputs_pass_with_diacritics():
    yoruba = "Àwọn akẹ́kọ̀ọ́ Yunifásítì Ìbàdàn ṣe ìwọ́de ní Èkó ní ọdún 2023 ."
    assert check_text(yoruba, what="sentence", max_chars=600) == yoruba
    assert script_shares(yoruba)["LATIN"] == 1.0
    assert check_text("  Is 5 mg/day of drug X safe?  ", what="question", max_chars=100) == "Is 5 mg/day of drug X safe?"
    with pytest.raises(InputProblem, match="words"):
        check_words("a " * 200, Limits(max_words=120))


def test_service_checks_inputs_before_the_model(service):
    with pytest.raises(InputProblem, match="Please type a question"):
        next(service.ask("healthcare-tiny", ""))
    with pytest.raises(InputProblem, match="context is 4,179 characters"):
        next(service.ask("healthcare-tiny", "Is it safe?", "context words here " * 220))
    saved, service.limits = service.limits, Limits(max_prompt_tokens=20)
    try:
        with pytest.raises(InputProblem, match="tokens; the demo takes up to 20"):
            next(service.ask("healthcare-tiny", "Is it safe?", "A trial of walking in older adults."))
    finally:
        service.limits = saved
    with pytest.raises(InputProblem, match="Latin script"):
        service.tag("masakhaner-tiny", "Привет мир как дела", "yor")
    assert not service.base.lock.locked()


# ----------------------------------------------------------------------------- metrics panel
def test_metrics_panel_content(service):
    from adapt.demo.panel import headline, metrics_markdown, model_card_text

    run = service.run("healthcare-tiny")
    text = metrics_markdown(run)
    assert "base 0.250 → specialized **0.610** (+0.360)" in headline(run)
    assert "| export/nf4 | 0.6500 | 0.5500 | 0.6000 | 0.902 | 4.0 |" in text  # the retention table
    assert "trainable parameters: **" in text and "`qlora`" in text
    assert "data license: Apache-2.0" in text and "license MIT" in text  # metrics.json and the domain card
    assert "## Intended use" in model_card_text(run)


def test_metrics_panel_without_eval(service):
    from adapt.demo.panel import metrics_markdown

    run = service.run("healthcare-tiny")
    bare = type(run)(run.name, run.run, run.recipe, run.card)
    text = metrics_markdown(bare)
    assert "not evaluated yet" in text and "adapt eval" in text and "not recorded" in text


# ----------------------------------------------------------------------------- app and launch
def test_build_app_sets_a_bounded_queue(runs_dir):
    import gradio as gr

    from adapt.serve import MAX_QUEUE, build_app

    app = build_app([runs_dir / "healthcare-tiny", runs_dir / "legal-tiny"])
    assert isinstance(app, gr.Blocks)
    assert app._queue.max_size == MAX_QUEUE and app._queue.default_concurrency_limit == 1
    by_name = {d.api_name: d for d in app.fns.values() if d.api_name}
    assert {"healthcare_ask", "legal_classify"} <= set(by_name)
    # every event that uses the shared model (answers, scoring, swaps) queues in one group
    model_events = [d for d in app.fns.values() if d.concurrency_id == "causal-model"]
    assert by_name["healthcare_ask"] in model_events and by_name["legal_classify"] in model_events
    assert len(model_events) >= 6
    assert app.adapt_service.ner is None  # no NER run given: no token-classification base


def test_input_problems_are_errors_with_the_reason_for_pages_and_api_clients():
    """A refused input raises gr.Error (the page shows it, outputs stay as they were, and an API client gets the
    reason instead of an empty update); adapt errors the same, without a traceback."""
    import gradio as gr

    from adapt.demo.ui import _friendly

    @_friendly(2)
    def handler(text):
        if text == "broken":
            raise AdaptError("adapter files are missing")
        return check_text(text, what="question", max_chars=10), "ok"

    assert list(handler("fine")) == [("fine", "ok")]
    with pytest.raises(gr.Error, match="Please type a question") as refused:
        list(handler(""))
    assert refused.value.title == "Please check the input"
    with pytest.raises(gr.Error, match="adapter files are missing"):
        list(handler("broken"))


def test_safe_launch_defaults_and_auth():
    from adapt.cli import build_parser
    from adapt.serve import launch, parse_auth

    assert inspect.signature(launch).parameters["host"].default == "127.0.0.1"
    assert inspect.signature(launch).parameters["share"].default is False
    args = build_parser().parse_args(["serve", "runs"])
    assert args.host == "127.0.0.1" and not args.share and args.auth is None
    assert parse_auth("demo:s3:cret") == ("demo", "s3:cret")
    for bad in ("nopassword", ":x", "user:"):
        with pytest.raises(AdaptError, match="USER:PASSWORD"):
            parse_auth(bad)
