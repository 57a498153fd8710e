"""The stages: one table (:data:`STAGES`, name -> ``"module:function"``, imported on first call).

A stage reads a run directory (or a recipe) and writes artifacts into one; it uses the library
(models, methods, data, tasks, export, trainer, variants, ...) and never another stage. `adapt run`
(:mod:`adapt.pipeline`) and the command line (:mod:`adapt.cli`) call stages only through this table.

Where to start reading each one:

| stage      | module           | what it writes                                                   |
|------------|------------------|------------------------------------------------------------------|
| `train`    | adapt/train.py   | adapter/, checkpoints/, logs/, metrics.json, README.md            |
| `eval`     | adapt/eval.py    | eval.json (every variant side by side)                            |
| `merge`    | adapt/merge.py   | merged/<target>/                                                  |
| `quantize` | adapt/quantize.py| export/<format>/ (formats: adapt/export/formats.py)               |
| `predict`  | adapt/predict.py | predictions.jsonl: the run's predictions over a file of inputs    |
| `combine`  | adapt/combine.py | several runs' adapters as one merged model (+ its eval.json)      |
| `bundle`   | adapt/bundle.py  | base + adapters + README for multi-adapter serving (vLLM, TGI)    |
| `serve`    | adapt/serve.py   | nothing: the Gradio demo over trained runs                        |
| `pipeline` | adapt/pipeline.py| every stage a recipe names, then the eval table (`adapt run`)     |

``launch`` (accelerate relaunch of `adapt train`) is training plumbing, not a stage.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from adapt.lazy import Lazy


@dataclass(frozen=True)
class Stage:
    name: str
    run: Lazy
    """The stage function."""
    summary: Lazy | None = None
    """``summary(result) -> str``: the table the command line prints after ``run``; None: none."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.run(*args, **kwargs)


STAGES: dict[str, Stage] = {
    stage.name: stage
    for stage in (
        Stage("train", Lazy("adapt.train:run")),
        Stage("merge", Lazy("adapt.merge:run")),
        Stage("quantize", Lazy("adapt.quantize:run")),
        Stage("eval", Lazy("adapt.eval:run"), Lazy("adapt.eval:summary_table")),
        Stage("predict", Lazy("adapt.predict:run"), Lazy("adapt.predict:summary")),
        Stage("combine", Lazy("adapt.combine:run")),
        Stage("combine_eval", Lazy("adapt.combine:evaluate"), Lazy("adapt.combine:summary_table")),
        Stage("bundle", Lazy("adapt.bundle:run")),
        Stage("serve", Lazy("adapt.serve:launch")),
        Stage("pipeline", Lazy("adapt.pipeline:run_all")),
    )
}

RecipeStage = Literal["train", "eval", "merge", "quantize"]
"""The stages a recipe's ``stages:`` may name."""
PIPELINE_ORDER: tuple[RecipeStage, ...] = ("train", "merge", "quantize", "eval")
"""The order `adapt run` runs them in, whatever the recipe's order (eval scores what merge and quantize wrote)."""
assert set(PIPELINE_ORDER) == set(RecipeStage.__args__) <= set(STAGES)
