"""Which run directories the demo serves: discovery, what each run tells the demo, one shared base.

A run directory holds ``recipe.resolved.yaml`` and a trained ``adapter/``; a
folder passed on the command line may also be a parent of run directories
(one level). Causal-LM runs must share one base (source + quantization), which
is loaded once; token-classification runs (MasakhaNER, a user's CoNLL file) share a
second base of their own class, loaded on first use; a sequence-head run
(``train.sequence_head``) is its own model, loaded on first use, in its domain's
classifier tab.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from adapt import methods, tasks
from adapt.domains import DomainCard, recipe_domain_card
from adapt.errors import AdaptError
from adapt.recipe import Recipe
from adapt.runs import RunDir, read_json

log = logging.getLogger(__name__)

HEAD_TAB = "classifier"
"""The suffix of a domain's tab for its sequence-head runs (e.g. ``healthcare-classifier``)."""

@dataclass(frozen=True)
class BaseKey:
    """What must match for two adapters to share one loaded base."""

    source: str
    quantization: str
    double_quant: bool
    compute_dtype: str

    @classmethod
    def of(cls, recipe: Recipe) -> BaseKey:
        m = recipe.model
        return cls(m.source, m.quantization, m.double_quant, m.compute_dtype)

    def __str__(self) -> str:
        dq = "+dq" if self.double_quant and self.quantization == "nf4" else ""
        return f"{self.source} ({self.quantization}{dq}, {self.compute_dtype})"


@dataclass
class DemoRun:
    """One servable run: its recipe, domain card and the files the metrics panel shows."""

    name: str
    """Adapter name inside the shared model (unique, no '.')."""
    run: RunDir
    recipe: Recipe
    card: DomainCard
    evaluation: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    model_card: str = ""

    @property
    def is_sequence_head(self) -> bool:
        """Trained with a sequence-classification head (the one recipe setting that makes its data another kind): its
        own model class, served by the classifier view."""
        return self.recipe.kind != self.recipe.data.kind

    @property
    def view(self) -> str:
        return "classification" if self.is_sequence_head else self.card.view

    @property
    def tab(self) -> str:
        """The tab it is served in: its domain's, or the domain's classifier tab for a sequence head."""
        return f"{self.card.name}-{HEAD_TAB}" if self.is_sequence_head else self.card.name

    @property
    def tab_title(self) -> str:
        return f"{self.card.title} · classifier head" if self.is_sequence_head else self.card.title

    @property
    def method(self) -> str:
        return self.recipe.method.name

    @property
    def is_token_classification(self) -> bool:
        """Trained as token classification: its own model class, not the causal LM."""
        return tasks.of(self.recipe).pipeline_tag == "token-classification"

    @property
    def base_key(self) -> BaseKey:
        return BaseKey.of(self.recipe)

    @property
    def label(self) -> str:
        """What a presenter picks from: the run name and its method (a probe: the head alone was fitted)."""
        return f"{self.name} ({'linear probe' if self.metrics.get('probe') else self.method})"


def is_run_dir(path: Path) -> bool:
    return (path / "recipe.resolved.yaml").is_file() and (path / "adapter" / "adapter_config.json").is_file()


def find_run_dirs(paths: list[Path]) -> tuple[list[Path], list[str]]:
    """Run directories under ``paths`` (each a run dir or a folder of them), and why others were skipped."""
    found: list[Path] = []
    skipped: list[str] = []
    for path in map(Path, paths):
        if not path.exists():
            raise AdaptError(f"{path}: no such directory; pass run directories or a folder holding them (e.g. runs/)")
        if is_run_dir(path):
            found.append(path)
            continue
        if (path / "recipe.resolved.yaml").is_file():
            skipped.append(f"{path}: no trained adapter yet (adapter/adapter_config.json)")
            continue
        for child in sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if is_run_dir(child):
                found.append(child)
            elif (child / "recipe.resolved.yaml").is_file():
                skipped.append(f"{child}: no trained adapter yet (adapter/adapter_config.json)")
    unique = list(dict.fromkeys(p.resolve() for p in found))
    if not unique:
        where = ", ".join(str(p) for p in paths) or "(none given)"
        extra = f" ({'; '.join(skipped)})" if skipped else ""
        raise AdaptError(
            f"no trained runs in {where}{extra}; train one first, e.g. "
            "`adapt train recipes/quickstart.yaml --out runs/quickstart`, then `adapt serve runs/`"
        )
    return unique, skipped


def adapter_name(text: str, taken: set[str]) -> str:
    """A unique adapter name from a directory name: letters, digits, '-' and '_' only."""
    base = re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_") or "adapter"
    name, i = base, 2
    while name in taken:
        name, i = f"{base}-{i}", i + 1
    return name


def read_run(path: Path, name: str, recipe=None) -> DemoRun:
    """The run at ``path`` served as ``name``; ``recipe``: its recipe when the caller has loaded it already."""
    run = RunDir(path)
    recipe = recipe or run.load_recipe()
    run.require_adapter()
    card = recipe_domain_card(recipe)
    model_card = run.card.read_text(encoding="utf-8", errors="replace") if run.card.is_file() else ""
    return DemoRun(name, run, recipe, card, read_json(run.eval, {}) or {}, read_json(run.metrics, {}) or {}, model_card)


def check_one_base(runs: list[DemoRun], what: str) -> BaseKey | None:
    """The base all ``runs`` share; an AdaptError that groups them by base otherwise."""
    keys = {r.base_key for r in runs}
    if len(keys) <= 1:
        return next(iter(keys), None)
    groups = "; ".join(
        f"{key}: {', '.join(str(r.run.root) for r in runs if r.base_key == key)}" for key in sorted(keys, key=str)
    )
    raise AdaptError(
        f"the {what} runs do not share one base model, and the demo loads exactly one: {groups}. "
        "Serve each group on its own (`adapt serve RUN... --port N`)"
    )


@dataclass
class DemoRuns:
    causal: list[DemoRun]
    """Adapters on the shared causal-LM base, in load order."""
    token: list[DemoRun]
    """Token-classification adapters (their own base, loaded lazily)."""
    skipped: list[str]
    heads: list[DemoRun] = field(default_factory=list)
    """Sequence-head runs (each its own model, loaded lazily)."""

    @property
    def all(self) -> list[DemoRun]:
        return self.causal + self.token + self.heads

    def get(self, name: str) -> DemoRun:
        for run in self.all:
            if run.name == name:
                return run
        raise AdaptError(f"no adapter named {name!r}; served: {', '.join(r.name for r in self.all)}")

    def by_domain(self) -> dict[str, list[DemoRun]]:
        out: dict[str, list[DemoRun]] = {}
        for run in self.all:
            out.setdefault(run.tab, []).append(run)  # the domain's name in each form of recipe.domain
        return out


def discover(paths: list[Path]) -> DemoRuns:
    dirs, skipped = find_run_dirs(paths)
    taken: set[str] = set()
    runs = []
    for path in dirs:
        try:  # one damaged run is listed as not served, with the reason; the others are served
            recipe = RunDir(path).load_recipe()
            if recipe.data.source == "mixture":  # no one domain card, view or prompt builder
                skipped.append(f"{path}: a multi-domain run (data.source: mixture); the demo serves one domain per adapter")
                continue
            name = adapter_name(path.name, taken)
            run = read_run(path, name, recipe)
        except AdaptError as exc:
            skipped.append(f"unavailable: {exc}")
            continue
        taken.add(name)
        runs.append(run)
    if not runs:
        raise AdaptError(f"nothing to serve: {'; '.join(skipped)}; pass single-domain run directories")
    for line in skipped:
        log.warning("skipped %s", line)
    heads = [r for r in runs if r.is_sequence_head]
    causal = sorted((r for r in runs if not r.is_token_classification and not r.is_sequence_head), key=lambda r: methods.get(r.method).load_order)
    token = [r for r in runs if r.is_token_classification]
    check_one_base(causal, "causal-LM")
    check_one_base(token, "token-classification")
    return DemoRuns(causal, token, skipped, heads)
