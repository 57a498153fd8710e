"""End to end in a real browser: Debian's chromium driven by Playwright against the demo on 127.0.0.1.

Tiny untrained adapters on the tiny Llama (tests/demo_fixtures.py): the test
checks that every domain view works in the page (swap, submit, streamed
answers, probabilities, entities, input messages, metrics panel), not what a
random model says. Screenshots go to tests/artifacts/ (gitignored).

Needs `pip install playwright` and `apt-get install chromium` (no browser download);
skips cleanly without them.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
from pathlib import Path

import pytest

from demo_fixtures import build_causal_run, build_ner_run

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("ADAPT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
TIMEOUT_MS = 120_000
"""Generous: the CPU is shared with training runs."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the Python package only)")
    if not (Path(CHROMIUM).is_file() and shutil.which(CHROMIUM)):
        pytest.skip(f"no chromium at {CHROMIUM} (apt-get install chromium, or set ADAPT_CHROMIUM)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def app_url(tmp_path_factory, tiny_llama_dir, browser):
    from adapt.serve import build_app, start

    folder = tmp_path_factory.mktemp("browser-runs")
    build_causal_run(folder / "healthcare-tiny", tiny_llama_dir, "healthcare", "qlora", seed=1)
    build_causal_run(folder / "legal-tiny", tiny_llama_dir, "legal", "qlora", seed=2)
    build_ner_run(folder / "masakhaner-tiny", tiny_llama_dir, seed=9)
    app = build_app([folder])
    port = _free_port()
    start(app, host="127.0.0.1", port=port, block=False)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        app.close()


@pytest.fixture
def page(browser, app_url):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(app_url)
    page.locator("#adapt-header").wait_for()
    yield page
    context.close()


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _open_tab(page, domain: str) -> None:
    """Click the domain's tab and wait until the swap it triggers is reported."""
    page.get_by_role("tab", name=_TAB_TITLES[domain], exact=True).click()  # not "Healthcare ... · classifier head"
    page.locator(f"#{domain}-swap").get_by_text(re.compile("swapped in|loads on the first request")).wait_for()


_TAB_TITLES = {
    "healthcare": "Healthcare question answering",
    "legal": "Contract and legal-text classification",
    "masakhaner": "Named entities in African languages",
}


def _click_first_example(page, domain: str, field: str) -> str:
    """Click the first example button of the domain's tab; returns the text it put into ``field``."""
    from playwright.sync_api import expect

    page.locator(f"#tab-{domain} button.gallery-item").first.click()
    box = page.locator(f"#{domain}-{field} textarea")
    expect(box).not_to_have_value("", timeout=TIMEOUT_MS)
    return box.input_value()


def test_healthcare_side_by_side_streaming(page):
    page.locator("#healthcare-swap").get_by_text("swapped in").wait_for()  # swap shown on page load
    assert "ms" in page.inner_text("#healthcare-swap")
    assert _click_first_example(page, "healthcare", "question").strip()
    assert page.input_value("#healthcare-context textarea").strip()  # PubMedQA examples carry their abstract
    page.click("#healthcare-submit")
    stats = page.locator("#healthcare-stats")
    stats.get_by_text("Done in").wait_for()
    text = stats.inner_text()
    assert "Base" in text and "Specialized" in text and "first token" in text and "Label likelihood" in text
    for side in ("base", "adapter"):
        page.locator(f"#healthcare-{side}-labels").get_by_text("maybe").first.wait_for()
    metrics = page.inner_text("#healthcare-metrics")
    assert "export/nf4" in metrics and "retention" in metrics and "license" in metrics.lower()
    _shot(page, "healthcare")


def test_empty_and_wrong_script_inputs_show_messages(page):
    page.click("#healthcare-submit")
    page.get_by_text("Please type a question first").first.wait_for()
    page.fill("#healthcare-question textarea", "Каковы симптомы диабета?")
    page.click("#healthcare-submit")
    page.get_by_text("reads Latin script").first.wait_for()
    _shot(page, "input-message")


def test_legal_clause_probabilities(page):
    _open_tab(page, "legal")
    assert "swapped in" in page.inner_text("#legal-swap")
    assert _click_first_example(page, "legal", "clause").strip()
    page.click("#legal-submit")
    page.locator("#legal-stats").get_by_text("Label likelihood").wait_for()
    for side in ("base", "adapter"):
        page.locator(f"#legal-{side}-labels").get_by_text("Yes").first.wait_for()
    _shot(page, "legal")


def test_masakhaner_entities_highlighted(page):
    _open_tab(page, "masakhaner")
    assert "loads on the first request" in page.inner_text("#masakhaner-swap") or "swapped in" in page.inner_text("#masakhaner-swap")
    sentence = _click_first_example(page, "masakhaner", "sentence").strip()
    page.click("#masakhaner-submit")
    page.locator("#masakhaner-stats").get_by_text("tagged in").wait_for()
    page.locator("#masakhaner-swap").get_by_text("base loaded in").wait_for()  # lazily loaded, once
    shown = page.inner_text("#masakhaner-entities")
    assert sentence.split()[0] in shown  # the sentence is rendered, entities marked inline
    page.fill("#masakhaner-sentence textarea", "Привет мир как дела")
    page.click("#masakhaner-submit")
    page.get_by_text("reads Latin script").first.wait_for()
    _shot(page, "masakhaner")


# ----------------------------------------------------------------------------- docs screenshots (real adapters)
REAL_RUNS = os.environ.get("ADAPT_DEMO_RUNS", "")
SCREENSHOTS = Path(os.environ.get("ADAPT_SCREENSHOTS", str(ARTIFACTS / "real")))
DONE_MARKER = {"qa": "Done in", "classification": "Label likelihood", "ner": "tagged in"}
FIRST_FIELD = {"qa": "question", "classification": "clause", "ner": "sentence"}


def _save_small_png(page, path: Path) -> None:
    """Full-page screenshot, reduced to a 256-colour palette (a fraction of the size, crisp text)."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    Image.open(path).convert("RGB").quantize(colors=256, dither=Image.Dither.NONE).save(path, optimize=True)


@pytest.mark.slow
@pytest.mark.skipif(not REAL_RUNS, reason="set ADAPT_DEMO_RUNS=RUN_DIR[:RUN_DIR...] (real adapters) to take the docs screenshots")
def test_real_adapter_screenshots(browser):
    """`ADAPT_DEMO_RUNS=/work/runs/healthcare-qlora:... ADAPT_SCREENSHOTS=docs/screenshots pytest -m browser -k real`."""
    from adapt.serve import build_app, start

    from PIL import Image

    app = build_app([Path(p) for p in REAL_RUNS.split(os.pathsep) if p])
    port = _free_port()
    start(app, host="127.0.0.1", port=port, block=False)
    width = 1200
    context = browser.new_context(viewport={"width": width, "height": 900})
    shots = {}
    try:
        page = context.new_page()
        page.set_default_timeout(600_000)  # real SmolLM2 on a shared 2-core CPU
        page.goto(f"http://127.0.0.1:{port}/")
        page.locator("#adapt-header").wait_for()
        for domain, runs in app.adapt_service.runs.by_domain().items():
            view = runs[0].view
            _TAB_TITLES[domain] = runs[0].tab_title
            _open_tab(page, domain)
            _click_first_example(page, domain, FIRST_FIELD[view])
            shots[domain] = SCREENSHOTS / f"{domain}.png"
            shots[domain].unlink(missing_ok=True)  # an earlier run's file must not pass for this one's
            page.click(f"#{domain}-submit")
            page.locator(f"#{domain}-stats").get_by_text(DONE_MARKER[view]).wait_for()
            assert DONE_MARKER[view] in page.inner_text(f"#{domain}-stats"), domain
            page.wait_for_timeout(1500)  # let the charts finish drawing
            _save_small_png(page, shots[domain])
    finally:
        context.close()
        app.close()
    assert shots, f"no domain found in ADAPT_DEMO_RUNS={REAL_RUNS}"
    for domain, path in shots.items():
        assert path.is_file() and path.stat().st_size > 0, path
        with Image.open(path) as png:
            assert png.format == "PNG" and png.mode == "P", (path, png.format, png.mode)  # the 256-colour palette
            assert png.width == width and png.height >= 900, (path, png.size)  # full page at the viewport's width
