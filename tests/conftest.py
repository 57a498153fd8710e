from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from tiny import build_tiny_gemma3, build_tiny_llama  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("ADAPT_DATA_DIR", REPO.parent / "shared" / "data"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--all-markers",
        action="store_true",
        help="run every test, the slow, browser and llamacpp ones too (pyproject's addopts leave them out); "
        "the README's test command and CI use it",
    )


def pytest_configure(config: pytest.Config) -> None:
    """``--all-markers`` clears the marker expression pyproject's addopts set (an explicit ``-m`` already replaces it)."""
    if not config.getoption("all_markers"):
        return
    if any(arg.startswith("-m") for arg in config.invocation_params.args):
        raise pytest.UsageError("--all-markers runs every test, so it takes no -m EXPR; drop one of the two")
    config.option.markexpr = ""


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory) -> Path:
    """A local HF directory with a tiny random Llama and a ChatML tokenizer."""
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_gemma3_dir(tmp_path_factory) -> Path:
    """A local HF directory with a tiny random Gemma 3 text model and the tiny tokenizer."""
    return build_tiny_gemma3(tmp_path_factory.mktemp("tiny-gemma3"))


@pytest.fixture
def shared_data() -> Path:
    """The real datasets; tests that use this skip when they are absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (set ADAPT_DATA_DIR)")
    return SHARED_DATA
