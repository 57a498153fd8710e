"""The three example recipes for your own data (recipes/own-*.yaml), run as a new user runs them (from the
repository, relative paths) through train, eval and merge on the tiny random Llama, once per test session."""

from __future__ import annotations

import contextlib
import functools
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OWN = ("own-instruction", "own-classification", "own-ner")
TINY = [
    "train.max_steps=3", "train.batch_size=4", "train.max_seq_len=96", "train.logging_steps=1",
    "eval.limit=4", "eval.max_new_tokens=6", "eval.perplexity_examples=2", "export.formats=[]",
    "stages=[train, eval, merge]",
]  # fmt: skip
"""The recipes' own settings, cut to seconds; everything else (data, columns, domain card) as written."""


@functools.cache
def own_runs(model_dir: Path) -> Path:
    """A folder holding one run directory per example recipe, trained on ``model_dir`` (the tiny Llama)."""
    from adapt.checks import load_recipe
    from adapt.pipeline import run_all

    root = Path(tempfile.mkdtemp(prefix="adapt-own-runs-"))
    with contextlib.chdir(REPO):
        for name in OWN:
            recipe = load_recipe(REPO / "recipes" / f"{name}.yaml", [f"model.source={model_dir}", *TINY])
            run_all(recipe, root / name)
    return root
