"""`adapt predict RUN FILE --out predictions.jsonl`: batch inference of a run's adapter (or one of its merged
models or exports) over a file in the format of its data.

The file is read with the run's own column mapping (``source: file`` / ``hub`` runs) or the task kind's
default columns (runs on built-in data, :attr:`adapt.tasks.Kind.columns`); its gold column is optional
(:mod:`adapt.tasks.inputs`). Each row becomes one JSON object (the kind's :attr:`~adapt.tasks.Kind.predict`);
the output file appears only once every row is predicted. With the gold, the file's metrics are returned.
"""

from __future__ import annotations

import json
from pathlib import Path

from adapt import tasks
from adapt.errors import AdaptError
from adapt.runs import RunDir, write_text_atomic

def _variant(run: RunDir, name: str):
    from adapt.variants import discover

    found = {v.name: v for v in discover(run)}
    if name not in found:
        raise AdaptError(f"--variant {name}: not in {run.root} (there: {', '.join(n for n in found if n != 'base')}); "
                         f"pick one of those, or write it first (`adapt merge`, `adapt quantize`)")  # fmt: skip
    return found[name]


def run(run_dir: Path, file: Path, out: Path, variant: str = "adapter", limit: int | None = None) -> dict:
    """Predict every row of ``file`` (the first ``limit``) with ``variant``; write ``out`` (JSONL) atomically.

    Returns {"out", "rows", "variant", "metrics"} (metrics: None when the file has no gold column).
    """
    from adapt.data import load_task
    from adapt.models import dtypes
    from adapt.tasks.inputs import read_inputs

    run = RunDir(Path(run_dir))
    recipe = run.load_recipe()
    run.require_adapter()
    out = Path(out)
    if out.is_dir():
        raise AdaptError(f"--out {out}: a directory; name a file, e.g. {out / 'predictions.jsonl'}")
    chosen = _variant(run, variant)
    kind = tasks.of(recipe)
    trained = load_task(recipe.data)  # the run's instruction and label set
    inputs = read_inputs(Path(file), recipe.data, kind.title, trained.instruction, trained.labels, limit)
    device = dtypes.pick_device(recipe.train.device)
    with kind.load_variant(run, recipe, chosen, device) as (model, tokenizer, _):
        rows = kind.predict(model, tokenizer, recipe, inputs, recipe.eval.batch_size)  # each kind shows its own progress
    write_text_atomic(out, "".join(json.dumps(row) + "\n" for row in rows))
    metrics = kind.prediction_metrics(rows) if inputs.gold else None
    return {"out": out, "rows": len(rows), "variant": chosen.name, "metrics": metrics}


def summary(result: dict) -> str:
    """What the command line prints: where the predictions went and, with the gold, the file's scores."""
    lines = [f"{result['rows']} predictions of {result['variant']} written to {result['out']}"]
    if result["metrics"]:
        lines.append("scores against the file's gold: " + ", ".join(
            f"{key} {value:.4f}" if isinstance(value, float) else f"{key} {value}" for key, value in result["metrics"].items()
        ))  # fmt: skip
    return "\n".join(lines)
