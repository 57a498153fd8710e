"""Domain cards: what a run's domain is for, whose data it uses under which license, how the demo shows it.

A built-in card lives in ``domains/<name>/domain.yaml`` (``$ADAPT_DOMAINS_DIR`` overrides the folder;
default: ``domains/`` beside the ``adapt`` package) and describes the built-in datasets its readers read.
A recipe's ``domain`` (:data:`DomainSpec`) is one of::

    domain: healthcare                      # a card in the domains folder
    domain: {path: my_domain.yaml}          # a card file anywhere (relative: to the working folder)
    domain:                                 # the card itself
      name: clinic
      description: Answers to our clinic's patient questions.
      license: CC0-1.0                      # the license of the data this run trains on
      intended_use: Drafting replies that a nurse reviews.
      limitations: Not a medical device.

:func:`recipe_domain_card` returns the :class:`DomainCard` of a recipe; the model card, the demo and
the results use it. :func:`run_datasets` says which datasets a run's data is and under which license:
a built-in reader's data carries its built-in dataset card, a user's data (``source: file`` / ``hub``)
only the user's card, never a built-in dataset's license or citation.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Union

import yaml
from pydantic import BaseModel, ConfigDict, Discriminator, Field, PrivateAttr, Tag, ValidationError, model_validator

from adapt.data.types import TaskKind
from adapt.errors import AdaptError
from adapt.tasks import TASKS, View

NOT_STATED = "not stated (add `license:` to the domain card: the license of your data)"
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)]
Text = Annotated[str, Field(pattern=r"\S", max_length=4000)]
NO_LICENSE = "no data license: set license (the license of your data) or list datasets with theirs"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatasetCard(_Strict):
    name: Name
    """Built-in cards: the recipe's ``data.source`` that reads it; a user's card: any name."""
    title: Text
    license: Text
    task: TaskKind | None = None
    url: str | None = None
    citation: str | None = None
    hub_id: str | None = None
    """The Hub dataset id (model cards' ``datasets``)."""
    hub_config: str | None = None
    """Hub config; for per-task/per-language datasets, what it stands for (e.g. '<task>')."""
    data_dir: str | None = None
    """Built-in readers: folder name under ``$ADAPT_DATA_DIR`` holding the original files."""
    sample: str | None = None
    """Folder of self-written sample data in the same format, relative to the domain folder."""


class DemoExample(_Strict):
    text: str
    """The question, clause or sentence a stakeholder types in."""
    context: str = ""
    """Optional passage (PubMedQA abstract) the question is asked about."""
    task: str = ""
    """LegalBench task the text belongs to (classification view)."""
    language: str = ""
    """Language code (NER view)."""


class DomainCard(_Strict):
    name: Name
    title: str = ""
    """Shown on the demo's tab; empty: the name."""
    description: Text
    intended_use: Text
    """What the adapters of this domain are for (model card, demo)."""
    limitations: Text
    """What they must not be used for, and what is known to go wrong (model card, demo)."""
    license: Text | None = None
    """The license of the data a run of this domain trains on, when it is the user's own; a built-in
    card leaves it out: each of its datasets states its own."""
    view: View | None = None
    """How the demo presents the domain; unset: from the run's task kind (instruction: qa)."""
    datasets: list[DatasetCard] = Field(default_factory=list)
    examples: list[DemoExample] = Field(default_factory=list)
    _dir: Path = PrivateAttr(default=Path("."))

    @model_validator(mode="after")
    def _states_a_license(self) -> DomainCard:
        if not self.license and not self.datasets:
            raise ValueError(NO_LICENSE)
        self.title = self.title or self.name
        return self

    @property
    def directory(self) -> Path:
        return self._dir

    def dataset(self, name: str) -> DatasetCard:
        for ds in self.datasets:
            if ds.name == name:
                return ds
        raise AdaptError(f"domain {self.name}: no dataset {name!r}; it has {', '.join(d.name for d in self.datasets)}")

    def sample_path(self, name: str) -> Path | None:
        """The bundled sample folder of dataset ``name`` (None when the card names none)."""
        ds = self.dataset(name)
        return self._dir / ds.sample if ds.sample else None


class DomainFile(_Strict):
    path: Annotated[str, Field(pattern=r"^[^\x00]*$", min_length=1, max_length=4096)]
    """A domain card YAML; ``~`` expands, a relative path is relative to the working folder."""

    def resolved(self) -> Path:
        return Path(self.path).expanduser().absolute()


def _spec_form(value: Any) -> str:
    """Which form of :data:`DomainSpec` ``value`` is: a text is a name, a mapping with ``path`` a file."""
    if isinstance(value, str):
        return "name"
    return "file" if isinstance(value, DomainFile) or (isinstance(value, dict) and "path" in value) else "inline"


DomainSpec = Annotated[
    Union[Annotated[Name, Tag("name")], Annotated[DomainFile, Tag("file")], Annotated[DomainCard, Tag("inline")]],
    Discriminator(_spec_form),
]
"""A recipe's ``domain``: a card's name in the domains folder, ``{path: FILE}``, or the card inline."""


# --------------------------------------------------------------------------- reading
def domains_dir() -> Path:
    env = os.environ.get("ADAPT_DOMAINS_DIR")
    if env:
        return Path(env).expanduser()
    beside_package = Path(__file__).resolve().parents[1] / "domains"
    return beside_package if beside_package.is_dir() else Path.cwd() / "domains"


def list_domains() -> list[str]:
    root = domains_dir()
    return sorted(p.parent.name for p in root.glob("*/domain.yaml")) if root.is_dir() else []


def _read_card(path: Path) -> DomainCard:
    """Read and validate one card file; an AdaptError names the file and every problem, one per line."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise AdaptError(f"{path}: not UTF-8 text (byte {exc.start}); save the card as UTF-8") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise AdaptError(f"{where}: not valid YAML ({getattr(exc, 'problem', exc)}); fix the syntax") from exc
    if not isinstance(raw, dict):
        raise AdaptError(
            f"{path}: a domain card is a YAML mapping (name, description, intended_use, limitations, license or datasets)"
        )
    try:
        card = DomainCard.model_validate(raw)
    except ValidationError as exc:
        problems = _problems(exc)
        if not raw.get("license") and not raw.get("datasets") and not any(NO_LICENSE in p for p in problems):
            problems.append(f"license: {NO_LICENSE}")  # pydantic checks it only once every field is valid
        raise AdaptError("\n".join(f"{path}: {problem}" for problem in problems)) from exc
    card._dir = path.parent
    return card


def _problems(exc: ValidationError) -> list[str]:
    return [f"{'.'.join(map(str, e['loc'])) or 'card'}: {e['msg']} (got {e.get('input')!r:.60})" for e in exc.errors()]


def _with_view(card: DomainCard, kind: str | None, where: str) -> DomainCard:
    if card.view is None:
        if kind not in TASKS:
            raise AdaptError(f"{where}: view: unset, and no task kind to derive it from; set view (qa, classification or ner)")
        card.view = TASKS[kind].view  # the demo view of the run's task kind
    return card


def load_domain_card(name: str, kind: str | None = None, with_view: bool = True) -> DomainCard:
    """The card ``domains/<name>/domain.yaml``; ``kind``: the run's task kind, for a card without ``view``."""
    path = domains_dir() / name / "domain.yaml"
    if not path.is_file():
        known = ", ".join(list_domains()) or "none"
        raise AdaptError(
            f"domain {name!r}: no {path}; known domains: {known} (set ADAPT_DOMAINS_DIR to use another folder, "
            "or give the card in the recipe: domain: {path: FILE} or domain: {name, description, license, intended_use, limitations})"
        )
    card = _read_card(path)
    if card.name != name:
        raise AdaptError(f"{path}: name: {card.name!r} differs from its folder {name!r}; make them equal")
    return _with_view(card, kind, str(path)) if with_view else card


def builtin_datasets() -> dict[str, tuple[DomainCard, DatasetCard]]:
    """Built-in dataset name (a reader's ``data.source``) -> its domain card and dataset card."""
    found: dict[str, tuple[DomainCard, DatasetCard]] = {}
    for name in list_domains():
        card = load_domain_card(name)
        for ds in card.datasets:
            found.setdefault(ds.name, (card, ds))
    return found


# --------------------------------------------------------------------------- a recipe's domain
def _sources(data: Any) -> list[str]:
    """The data sources of a recipe's ``data`` (a mixture's parts, in order)."""
    parts = getattr(data, "parts", None)
    return [p.source for p in parts.values()] if parts else [data.source]


def data_kind(data: Any, builtin: dict[str, tuple[DomainCard, DatasetCard]] | None = None) -> str | None:
    """The task kind of a recipe's ``data``: a user's source says it, a built-in reader's dataset card does."""
    kind = getattr(data, "kind", None)
    if kind:
        return kind
    parts = getattr(data, "parts", None)
    if parts:
        return data_kind(next(iter(parts.values())), builtin)
    entry = (builtin if builtin is not None else builtin_datasets()).get(data.source)
    return entry[1].task if entry else None


def _mixture_card(name: str, data: Any, builtin: dict[str, tuple[DomainCard, DatasetCard]]) -> DomainCard:
    """A mixture of built-in datasets without a card of its own: its parts' domain cards, combined."""
    domains: dict[str, DomainCard] = {}
    datasets: list[DatasetCard] = []
    for part, source in zip(data.parts, _sources(data)):
        if source not in builtin:
            raise AdaptError(
                f"domain {name!r}: no card for data.parts.{part} (source: {source}); give the domain's card in the "
                "recipe: domain: {path: FILE} or domain: {name, description, license, intended_use, limitations}"
            )
        card, ds = builtin[source]
        domains.setdefault(card.name, card)
        if ds not in datasets:
            datasets.append(ds)
    return DomainCard(
        name=name,
        title="Several domains: " + ", ".join(c.title for c in domains.values()),
        description=" ".join(f"{c.name}: {c.description}" for c in domains.values()),
        intended_use="One adapter across several domains (see Data). "
        + " ".join(f"{c.name}: {c.intended_use}" for c in domains.values()),
        limitations=" ".join(f"{c.name}: {c.limitations}" for c in domains.values()) + " Check each dataset's license.",
        view=TASKS[data.kind].view,  # a mixture's parts share one kind (recipe.rule_problems)
        datasets=datasets,
    )


def domain_card(spec: str | DomainFile | DomainCard, data: Any) -> DomainCard:
    """The card of a recipe's ``domain`` for its ``data``: a name -> ``domains/<name>/domain.yaml`` (a mixture
    of built-in datasets without one: its parts' cards combined); ``{path: FILE}`` -> that file; inline -> it."""
    if isinstance(spec, DomainCard):
        card, where = spec.model_copy(), f"domain {spec.name!r} (recipe)"
    elif isinstance(spec, DomainFile):
        card, where = _card_file(spec), spec.path
    elif spec not in list_domains() and getattr(data, "parts", None):
        return _mixture_card(spec, data, builtin_datasets())
    else:
        card, where = load_domain_card(spec, kind=None, with_view=False), spec
    # the kind (which may read every built-in card) only for a card that does not name its view
    return _with_view(card, data_kind(data) if card.view is None else None, str(where))


def _card_file(spec: DomainFile) -> DomainCard:
    path = spec.resolved()
    if not path.is_file():
        raise AdaptError(f"domain.path: {spec.path!r} is not a file (resolved to {path}); fix the path")
    return _read_card(path)


def domain_name(spec: str | DomainFile | DomainCard) -> str:
    """The name of a recipe's domain (run tables, demo tabs, bundle.json) without resolving its view."""
    if isinstance(spec, DomainCard):
        return spec.name
    return _card_file(spec).name if isinstance(spec, DomainFile) else spec


def recipe_domain_card(recipe: Any) -> DomainCard:
    """The :class:`DomainCard` of a recipe (see :func:`domain_card`)."""
    return domain_card(recipe.domain, recipe.data)


# --------------------------------------------------------------------------- a run's datasets
@dataclass(frozen=True)
class RunData:
    """What a run's data is, for model cards and the demo: its dataset cards and its license."""

    datasets: tuple[DatasetCard, ...]
    license: str
    """The data license as text ("MIT (PubMedQA ...)", the user's own, or :data:`NOT_STATED`)."""
    own: bool
    """The user's own data (``source: file`` / ``hub``): described by the user's card only."""


def run_datasets(data: Any, card: DomainCard, reader_license: str = "") -> RunData:
    """The datasets a recipe's ``data`` is. A built-in reader's data: its built-in dataset card (license:
    ``reader_license``, what the reader reports, else the card's). A user's own data: the datasets of the
    user's card that are not built-in ones, plus a Hub source's dataset; license: the card's ``license``,
    else those datasets' licenses, else :data:`NOT_STATED`; never a built-in dataset's."""
    builtin = builtin_datasets()
    sources = _sources(data)
    if all(s in builtin for s in sources):
        cards = _unique(builtin[s][1] for s in sources)
        return RunData(cards, reader_license or "; ".join(ds.license for ds in cards), own=False)
    mine = [ds for ds in card.datasets if ds.name not in builtin]
    hub_id = getattr(data, "dataset", None) if data.source == "hub" else None
    license = card.license or "; ".join(_unique(ds.license for ds in mine)) or NOT_STATED
    if hub_id and not any(ds.hub_id == hub_id for ds in mine):
        config = getattr(data, "config", None)
        mine.append(DatasetCard(name=hub_id.replace("/", "__"), title=hub_id, license=license, hub_id=hub_id, hub_config=config))
    return RunData(tuple(mine), license, own=True)


def data_lines(description: str, data: RunData) -> list[str]:
    """The "Data" lines of a model card and of the demo's panel: what the run trained on, its license, and each
    dataset with its own license, link and citation (markdown)."""
    lines = [f"- data: {description}", f"- data license: {data.license}"]
    for ds in data.datasets:
        url = ds.url or (f"https://huggingface.co/datasets/{ds.hub_id}" if ds.hub_id else "")
        link = f"; [{url}]({url})" if url else ""
        cite = f" {ds.citation}" if ds.citation else ""
        lines.append(f"- dataset: {ds.title}, license {ds.license}{link}.{cite}")
    return lines


def _unique(items) -> tuple:
    out: list = []
    for item in items:
        if item not in out:
            out.append(item)
    return tuple(out)
