"""The recipe: one YAML file, one strict typed object (unknown keys are errors).

The pure schema and its YAML loading: ``read_recipe(path, overrides)`` returns the :class:`Recipe` (or None)
and every problem the file itself has, one line each. What the recipe names in the environment (data
folders, model sources, launch configs) is checked by :mod:`adapt.checks`, whose ``load_recipe`` the
command line uses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Union

import yaml
from pydantic import Field, ValidationError, field_validator

from adapt.data.paths import resolve_data_path
from adapt.data.sources import FileData, HubData
from adapt.data.types import TaskKind
from adapt.domains import DomainFile, DomainSpec
from adapt.errors import short
from adapt.export.formats import FormatName
from adapt.methods import METHODS, of
from adapt.models.config import ModelConfig
from adapt.stages import RecipeStage
from adapt.strict import Strict
from adapt.tasks import METRICS, TASKS
from adapt.yaml_io import bounded_yaml, read_yaml

SafeName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)]
"""A name that is also a directory name: letters, digits, '_', '.', '-'; at most 100 characters."""
PathText = Annotated[str, Field(pattern=r"^[^\x00]*$", min_length=1, max_length=4096)]
"""A file-system path as text: no NUL byte, at most 4096 characters."""


# --------------------------------------------------------------------------- methods
MethodConfig = Annotated[Union[tuple(m.config for m in METHODS.values())], Field(discriminator="name")]
"""The ``method:`` section: one config class per registered method (:mod:`adapt.methods`), chosen by ``name``."""


# --------------------------------------------------------------------------- data
class DataBase(Strict):
    path: PathText | None = None
    """Local folder with the dataset's original files; `${ADAPT_DATA_DIR}` expands (default ../shared/data)."""
    hub_id: str | None = None
    """Hugging Face dataset id used when `path` is not set (needs network)."""
    max_train_examples: int | None = Field(None, ge=1)
    """Cap on training examples (seeded sample, never a prefix)."""
    seed: int = 0
    """Seed for splits and samples."""

    def resolved_path(self) -> Path | None:
        return resolve_data_path(self.path)


class PubMedQAData(DataBase):
    kind: ClassVar[TaskKind] = "classification"
    source: Literal["pubmedqa"]
    hub_id: str | None = "qiaojin/PubMedQA"
    validation_size: int = Field(50, ge=0)
    """Of the 500 non-test PQA-L questions, this many are held out for validation."""
    max_context_chars: int = Field(1500, ge=0)
    """Abstract context kept in the prompt (characters, from the end: the results sections)."""


class MedQuADData(DataBase):
    kind: ClassVar[TaskKind] = "generation"
    source: Literal["medquad"]
    hub_id: str | None = "lavita/MedQuAD"
    eval_fraction: float = Field(0.1, gt=0, lt=1)
    """Fraction of documents held out (split by document, never by QA pair)."""
    max_answer_chars: int = Field(600, ge=50)
    """Answers are cut at a sentence boundary below this length."""
    max_eval_examples: int = Field(200, ge=1)
    """Held-out QA pairs scored (seeded sample)."""


class LegalBenchData(DataBase):
    kind: ClassVar[TaskKind] = "classification"
    source: Literal["legalbench"]
    hub_id: str | None = "nguha/legalbench"
    tasks: list[str] = Field(default_factory=lambda: ["cuad"])
    """LegalBench task names, or a group: `cuad` (all CUAD clause tasks)."""
    heldout_fraction: float = Field(0.5, gt=0, lt=1)
    """Share of each task's test.tsv held out for reporting (stratified, seeded)."""
    max_text_chars: int = Field(2000, ge=100)
    """Each text field of a prompt is cut at a word boundary to this length (bill summaries run to 11k chars)."""


class MasakhaNERData(DataBase):
    kind: ClassVar[TaskKind] = "token_classification"
    source: Literal["masakhaner"]
    hub_id: str | None = "masakhane/masakhaner2"
    languages: list[str] = Field(default_factory=lambda: ["yor"])
    """MasakhaNER 2.0 language codes (yor, hau, swa, ...)."""


PartConfig = Annotated[
    Union[PubMedQAData, MedQuADData, LegalBenchData, MasakhaNERData, FileData, HubData], Field(discriminator="source")
]
"""One dataset: a recipe's ``data``, or one part of a mixture; each names its task kind (``part.kind``)."""


class MixtureData(Strict):
    source: Literal["mixture"]
    parts: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")], PartConfig] = Field(min_length=2)
    """Group name -> one dataset config; the name labels the part's examples (eval.json metrics.groups,
    routing.json). Each part keeps its own path, seed, split and max_train_examples."""
    max_eval_examples_per_part: int | None = Field(None, ge=1)
    """Cap on each part's validation and test examples (seeded, in proportion to task and label); None: all."""
    seed: int = 0
    """Seed for interleaving the parts' examples."""

    @property
    def kind(self) -> TaskKind:
        """The parts' task kind (they share one: :func:`rule_problems`)."""
        return next(iter(self.parts.values())).kind


DataConfig = Annotated[Union[PartConfig, MixtureData], Field(discriminator="source")]


# --------------------------------------------------------------------------- stages
class DistributedConfig(Strict):
    config_file: str
    """An accelerate config (YAML/JSON from `accelerate config`: distributed_type MULTI_GPU, FSDP or DEEPSPEED)
    or a DeepSpeed JSON; `adapt train` runs itself under `accelerate launch` with it."""
    num_processes: int | None = Field(None, ge=1)
    """Processes (GPUs) to start; None: the config file's num_processes, else accelerate's default."""


Tracker = Literal["tensorboard", "wandb", "mlflow"]
"""The experiment trackers ``train.report_to`` can name; each name is also its pip package and module."""


HeadAttention = Literal["causal", "bidirectional"]
LabelPosition = Literal["first", "last"]
Pooling = Literal["last", "mean"]
HeadShape = Literal["token", "sequence"]


class TokenHeadConfig(Strict):
    """How a token-classification (NER) head reads the decoder; recorded with the adapter (adapter/labels.json)."""

    attention: HeadAttention = "causal"
    """``causal``: the body as pre-trained; ``bidirectional``: the causal mask dropped, so each word's labelled subword
    sees the whole sentence (LS-unLLaMA, Li et al. 2023; bench/results/ner_head-gemma3-yor-2000.md)."""
    label_position: LabelPosition = "first"
    """The subword that carries a word's label: ``first`` (as for encoders) or ``last`` (for a causal body, the only
    piece that has seen the whole word)."""


class ProbeConfig(Strict):
    """The head fitted alone on the frozen base's pooled hidden states: an L2-regularized logistic regression
    (``train.class_balance: weighted_loss`` weights its loss), its strength (and the layer, when
    ``sequence_head.layer`` lists several) chosen by stratified k-fold cross-validation over the training and
    validation splits together (never test), then refitted on both.

    Chosen: the best cross-validated primary metric among the settings whose cross-validated accuracy reaches
    ``min_accuracy`` (none reaching it: the most accurate). The LoRA is saved at its zero start, so every export
    carries the base's own weights; the epochs, learning rate and validation steps of ``train`` are not used."""

    folds: int = Field(5, ge=2, le=50)
    c: list[float] = Field(default_factory=lambda: [0.001, 0.003, 0.01, 0.03, 0.1], min_length=1)
    """Inverse L2 strengths tried (scikit-learn's ``C``: the loss summed over examples + ||W||^2 / 2C)."""
    min_accuracy: float | None = Field(None, ge=0, le=1)
    """Cross-validated accuracy a strength must reach to be chosen; None: the share of the most frequent label
    (a reader that is less accurate than always answering it is not kept)."""

    @field_validator("c")
    @classmethod
    def _positive(cls, values: list[float]) -> list[float]:
        if any(v <= 0 for v in values):
            raise ValueError("every C must be > 0")
        return values


class SequenceHeadConfig(Strict):
    """Classification through a ``score`` head over the body's hidden states (trained with the LoRA, or fitted alone:
    ``probe``), not by each label's log-likelihood under the language-model head; recorded with the adapter
    (adapter/labels.json)."""

    attention: HeadAttention = "causal"
    """``causal``: the body as pre-trained; ``bidirectional``: the causal mask dropped, so every token sees the whole text."""
    pooling: Pooling = "last"
    """What the head reads: ``last``, the text's last token; ``mean``, the mean of every token's hidden state."""
    layer: Annotated[int, Field(ge=1, le=1000)] | list[Annotated[int, Field(ge=1, le=1000)]] | None = None
    """Read the hidden states after this many decoder layers (the layers above are not loaded, merged or exported);
    None: after all of them. With ``probe``, a list of layers to choose from by the same cross-validation (the base
    reads the texts once, up to the deepest). A linear probe of the frozen base reads PubMedQA best at a middle
    layer (docs/RESULTS.md, sessions 11-12)."""
    probe: ProbeConfig | None = None
    """Fit the head alone on the frozen base (a linear probe), not LoRA + head with the Trainer; None: LoRA + head."""

    @field_validator("layer")
    @classmethod
    def _distinct_layers(cls, value):
        if isinstance(value, list) and (not value or len(set(value)) != len(value)):
            raise ValueError("a list of layers must be non-empty and name each layer once")
        return value

    @property
    def layers(self) -> list[int | None]:
        """The layer (or the layers a probe chooses from); ``[None]``: the whole body."""
        return list(self.layer) if isinstance(self.layer, list) else [self.layer]


class TrainConfig(Strict):
    epochs: float = Field(1.0, gt=0, le=1000)
    max_steps: int = Field(-1, ge=-1, le=10_000_000)
    """Stop after this many optimizer steps (-1: run `epochs` full passes; 0 is refused: it trains nothing)."""
    batch_size: int = Field(4, ge=1, le=4096)
    grad_accum: int = Field(1, ge=1, le=4096)
    learning_rate: float = Field(2e-4, gt=0, le=10)
    lr_scheduler: Literal["cosine", "linear", "constant", "constant_with_warmup"] = "cosine"
    warmup_ratio: float = Field(0.03, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0, le=10)
    max_seq_len: int = Field(512, ge=16, le=131_072)
    seed: int = Field(42, ge=0, lt=2**32)
    logging_steps: int = Field(5, ge=1, le=10_000_000)
    save_steps: int = Field(50, ge=1, le=10_000_000)
    """Checkpoint every N steps (for --resume)."""
    save_total_limit: int = Field(2, ge=1, le=1000)
    gradient_checkpointing: bool = False
    group_by_length: bool = True
    """Batch examples of similar length together (less padding); the batches' order stays random."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    distributed: DistributedConfig | None = None
    """Train on several processes (GPUs) through accelerate: see README 'Scaling out'. None: one process."""
    eval_steps: int | None = Field(None, ge=0, le=10_000_000)
    """Score the validation split (never test) every N optimizer steps, and at the last step, with `adapt eval`'s
    scorer and the recipe's primary metric (eval.primary_metric); None: about 4 times per epoch; 0: never."""
    validation_limit: int | None = Field(None, ge=1, le=10_000_000)
    """Validation examples scored each time: a seeded sample of this size (never a prefix); None: the whole split."""
    select_best: bool | None = None
    """Save the adapter of the step with the best validation score (not the last step's). None: on whenever
    validation runs (a non-empty validation split and eval_steps != 0)."""
    early_stopping_patience: int | None = Field(None, ge=1, le=10_000)
    """Stop after this many validations in a row without a new best score; None: train every step."""
    class_balance: Literal["none", "weighted_loss", "balanced_sampling"] = "none"
    """Classification with skewed labels. `weighted_loss`: each example's loss is weighted by the inverse frequency
    of its label (within its task/group; mean weight 1), same cost per step; `balanced_sampling`: minority-label
    examples are repeated (seeded) until every label of a task is as frequent as its most frequent one (longer epochs)."""
    token_head: TokenHeadConfig = Field(default_factory=TokenHeadConfig)
    """NER recipes only: the head's attention and label position."""
    sequence_head: SequenceHeadConfig | None = None
    """Classification recipes only: train a sequence-classification head (its reading here) instead of scoring
    labels by log-likelihood; the run's task kind becomes ``sequence_classification``. None: log-likelihood."""
    report_to: list[Tracker] = Field(default_factory=lambda: ["tensorboard"])
    """Experiment trackers the training curves go to: tensorboard (logs/tensorboard), wandb, mlflow; one name, a
    list, or `none`. W&B and MLflow read their own settings (WANDB_PROJECT, MLFLOW_TRACKING_URI, ...)."""

    @field_validator("report_to", mode="before")
    @classmethod
    def _one_or_none(cls, value: Any) -> Any:
        if value == "none":
            return []
        if isinstance(value, str):
            return [value]
        strings = isinstance(value, list) and all(isinstance(v, str) for v in value)
        return list(dict.fromkeys(value)) if strings else value  # a name listed twice counts once


Split = Literal["validation", "test"]
"""The held-out split scored (``eval.split``, ``adapt eval --split``); training never reads either."""


class EvalConfig(Strict):
    split: Split = "test"
    limit: int | None = Field(None, ge=1, le=10_000_000)
    """Score a seeded random sample of this size (never a prefix); None: the whole split."""
    batch_size: int = Field(8, ge=1, le=4096)
    max_new_tokens: int = Field(96, ge=1, le=32_768)
    """For generative tasks (ROUGE-L)."""
    seed: int = Field(0, ge=0, lt=2**32)
    perplexity_examples: int = Field(200, ge=0)
    """Held-out examples (seeded sample of those scored, never a prefix) whose text is scored for perplexity; 0: none."""
    primary_metric: Literal[METRICS] | None = None
    """The score that ranks variants, computes retention and picks the best validation step. None: the task
    kind's default (classification macro_f1, generation rougeL, token classification entity f1); each kind's
    metrics: :attr:`adapt.tasks.Kind.metrics`. A classification mixture selects on group_mean_macro_f1 (each part's
    macro-F1, averaged), so no part's labels outweigh the other's."""


MergeTarget = Literal["nf4_dequant", "fp16"]
ExportFormat = FormatName
"""An export format name (:data:`adapt.export.formats.FORMATS`)."""


class ExportConfig(Strict):
    merge: list[MergeTarget] = Field(default_factory=lambda: ["nf4_dequant", "fp16"])
    """Merge the adapter into the dequantized NF4 weights and/or the original 16-bit weights."""
    formats: list[ExportFormat] = Field(default_factory=lambda: ["nf4"])
    """Quantized deliverables written under export/<format>/."""
    quantize_from: MergeTarget = "nf4_dequant"
    """Which merged model the formats are made from. ``nf4_dequant`` (the adapter folded into the very weights
    it was trained against) keeps the adapter's behaviour; on a real PubMedQA QLoRA run the ``fp16`` merge
    changed 96% of the predictions (see docs/RESULTS.md). For a 16-bit base the two are the same."""
    calibration_examples: int = Field(64, ge=1)
    """Training examples (seeded sample) whose activations choose the NF4 block scales of `nf4-calibrated`."""


class ServeConfig(Strict):
    """What the demo (`adapt serve`) does with this run; where it listens is the command's (--host, --port)."""

    max_new_tokens: int = Field(128, ge=1, le=32_768)
    concurrency: int = Field(1, ge=1, le=256)


Stage = RecipeStage


class Recipe(Strict):
    name: SafeName
    """Run name; the default run directory is runs/<name>."""
    domain: DomainSpec
    """A domain card's name in domains/, ``{path: FILE}`` or the card inline (:mod:`adapt.domains`)."""
    description: str = ""
    model: ModelConfig = Field(default_factory=ModelConfig)
    method: MethodConfig
    data: DataConfig
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)
    serve: ServeConfig = Field(default_factory=ServeConfig)
    stages: list[Stage] = Field(default_factory=lambda: ["train", "eval", "merge", "quantize"])
    """What `adapt run` does, in order."""

    @property
    def kind(self) -> str:
        """The task kind the run trains: the data's, or ``sequence_classification`` for classification data with
        ``train.sequence_head`` (:mod:`adapt.tasks` keys the stages on it)."""
        headed = TASKS[self.data.kind].with_sequence_head
        return headed if self.train.sequence_head is not None and headed else self.data.kind

    def to_yaml(self) -> str:
        """The recipe as a run directory keeps it (recipe.resolved.yaml): a relative ``domain.path`` and relative
        ``source: file`` paths made absolute, so the run's card and data are found from any working folder
        (``adapt serve``, ``adapt eval``)."""
        dumped = self.model_dump(mode="json")
        if isinstance(self.domain, DomainFile):
            dumped["domain"]["path"] = str(self.domain.resolved())
        parts = self.data.parts if isinstance(self.data, MixtureData) else {None: self.data}
        for name, part in parts.items():
            if isinstance(part, FileData):
                (dumped["data"] if name is None else dumped["data"]["parts"][name]).update(part.anchored())
        return yaml.safe_dump(dumped, sort_keys=False)


# --------------------------------------------------------------------------- loading
MAX_OVERRIDE_KEY = 200


def _override_problem(item: str, why: str) -> str:
    return f"--set {short(item, 80)!r}: {why}"


def parse_overrides(overrides: list[str]) -> tuple[dict[str, Any], list[str]]:
    """`key.path=value` strings -> nested dict (values parsed as YAML, bounded); a problem line for each bad one."""
    tree: dict[str, Any] = {}
    problems = []
    for item in overrides:
        key, sep, raw = item.partition("=")
        parts = key.split(".")
        if not sep or not key or len(key) > MAX_OVERRIDE_KEY or not all(p.strip() for p in parts) or "\x00" in item:
            problems.append(_override_problem(item, "expected key.path=value, e.g. --set train.max_steps=20"))
            continue
        try:
            value = bounded_yaml(raw) if raw else ""
        except yaml.YAMLError as exc:
            problems.append(_override_problem(item, f"the value is not valid YAML ({short(getattr(exc, 'problem', None) or exc, 80)}); quote it or fix it"))
            continue
        node = tree
        *parents, leaf = parts
        for i, part in enumerate(parents):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                where = ".".join(parts[: i + 1])
                problems.append(_override_problem(item, f"{where} is set to a value by another --set; set {where} or its fields, not both"))
                break
        else:
            if isinstance(node.get(leaf), dict) and not isinstance(value, dict):
                problems.append(_override_problem(item, f"{key} has fields set by another --set; set {key} or its fields, not both"))
                continue
            node[leaf] = value
    return tree, problems


def deep_update(base: dict, update: dict) -> dict:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_update(base[key], value)
        else:
            base[key] = value
    return base


DOMAIN_FORMS = "a card's name in domains/ (e.g. healthcare), {path: FILE}, or the card inline {name, description, license, intended_use, limitations}"


def format_error(source: str, err: dict) -> str:
    if err["loc"][:1] == ("domain",) and len(err["loc"]) >= 2:  # drop the DomainSpec form's tag (name/file/inline)
        if len(err["loc"]) == 2 and not isinstance(err.get("input"), (str, dict)):
            return f"{source}: domain: {short(repr(err.get('input')), 80)} is not a domain; give {DOMAIN_FORMS}"
        err = {**err, "loc": ("domain", *err["loc"][2:])}
    loc = short(".".join(str(p) for p in err["loc"]), 120)
    msg = err["msg"]
    for value in (err.get("ctx") or {}).values():  # pydantic repeats a bad union tag in its message
        if isinstance(value, str) and len(value) > 60:
            msg = msg.replace(value, short(value, 40))
    msg = short(msg, 300)
    if err["type"] == "extra_forbidden":
        return f"{source}: {loc}: unknown key; remove it or fix its spelling (see `adapt validate --help` / README)"
    if err["type"] == "missing":
        return f"{source}: {loc}: required field is missing; add it"
    nested = "parts" in err["loc"] and isinstance(err.get("input"), dict) and err["input"].get("source") == "mixture"
    if err["type"] == "union_tag_invalid" and nested:
        return f"{source}: {loc}: a mixture cannot contain a mixture; list the inner mixture's parts here directly"
    if err["type"] == "union_tag_invalid":
        return f"{source}: {loc}: {msg}"
    if err["type"] == "union_tag_not_found":
        return f"{source}: {loc}: no `source:` key; name the dataset (e.g. source: pubmedqa)"
    if err["loc"][-1:] == ("parts",) and err["type"] in ("too_short", "dict_type"):
        return (
            f"{source}: {loc}: a mixture needs a mapping of at least 2 named parts (got {short(repr(err.get('input')), 80)}), "
            "e.g. parts: {healthcare: {source: pubmedqa, ...}, legal: {source: legalbench, ...}}"
        )
    return f"{source}: {loc}: {msg} (got {short(repr(err.get('input')), 80)}); fix the value"


def rule_problems(source: str, recipe: Recipe) -> list[str]:
    """Rules between fields that pydantic cannot state: steps mean something, the parts of a mixture share a task
    kind, validation and metrics fit the task kind, the method's own rules. Pure: nothing on disk is read (the
    environment checks are :mod:`adapt.checks`)."""
    problems = []
    data = recipe.data
    if recipe.train.max_steps == 0:
        problems.append(f"{source}: train.max_steps: 0 trains nothing; use a positive step count, or -1 to run train.epochs")
    kinds = {f"{name} ({part.source})": part.kind for name, part in getattr(data, "parts", {}).items()}
    if len(set(kinds.values())) > 1:
        mix = ", ".join(f"{name} is {kind}" for name, kind in kinds.items())
        problems.append(f"{source}: data.parts: the parts differ in task kind ({mix}); keep parts of one kind")
    problems += _training_problems(source, recipe, recipe.kind)
    problems += _sequence_head_problems(source, recipe)
    rules = of(recipe).recipe_problems
    return problems + (rules(source, recipe) if rules is not None else [])


def _sequence_head_problems(source: str, recipe: Recipe) -> list[str]:
    if recipe.train.sequence_head is None:
        return []
    if TASKS[recipe.data.kind].with_sequence_head is None:
        able = " or ".join(dict.fromkeys(k.title for k in TASKS.values() if k.with_sequence_head))
        return [f"{source}: train.sequence_head: is for {able} data, and this recipe's data is {recipe.data.kind}; remove it"]
    if isinstance(recipe.data, MixtureData):
        return [f"{source}: train.sequence_head: one head over a mixture's label sets is not supported; "
                "train each part with its own recipe, or remove train.sequence_head"]
    if recipe.train.sequence_head.probe is not None and recipe.train.class_balance == "balanced_sampling":
        return [f"{source}: train.class_balance: balanced_sampling repeats examples, which would leak across the "
                "probe's cross-validation folds; use weighted_loss or none with train.sequence_head.probe"]
    if isinstance(recipe.train.sequence_head.layer, list) and recipe.train.sequence_head.probe is None:
        return [f"{source}: train.sequence_head.layer: a list of layers is chosen from by the probe's cross-validation; "
                "give one layer, or add train.sequence_head.probe"]
    if recipe.train.sequence_head.probe is not None and recipe.train.distributed is not None:
        return [f"{source}: train.distributed: a probe reads the texts once and fits in one process; remove "
                "train.distributed (or train.sequence_head.probe)"]
    return []


def _training_problems(source: str, recipe: Recipe, kind: str) -> list[str]:
    """Validation, model selection and class balance fields that contradict each other or the task kind."""
    t, problems = recipe.train, []
    if t.eval_steps == 0 and t.select_best:
        problems.append(f"{source}: train.select_best: true needs validation; set train.eval_steps to N > 0 (or null)")
    if t.eval_steps == 0 and t.early_stopping_patience:
        problems.append(f"{source}: train.early_stopping_patience: needs validation; set train.eval_steps to N > 0 (or null)")
    if t.class_balance != "none" and not TASKS[kind].balances_labels:
        balanced = " or ".join(dict.fromkeys(k.title for k in TASKS.values() if k.balances_labels))
        problems.append(f"{source}: train.class_balance: {t.class_balance} is for {balanced} data, not {kind}; use none")
    if t.token_head != TokenHeadConfig() and not TASKS[kind].token_head:
        problems.append(f"{source}: train.token_head: sets a NER head's reading, and this recipe's data is {kind}; remove it")
    metric, metrics = recipe.eval.primary_metric, TASKS[kind].metrics
    if metric is not None and metric not in metrics:
        problems.append(f"{source}: eval.primary_metric: {metric} is not a {kind} metric; use one of {', '.join(metrics)}")
    return problems


def read_recipe(path: str | Path, overrides: list[str] | None = None) -> tuple[Recipe | None, list[str]]:
    """The recipe in ``path`` with ``overrides`` applied and its :func:`rule_problems`; (None, problems) when it
    does not parse. Nothing but the file is read: :func:`adapt.checks.collect_problems` adds the environment."""
    path = Path(path)
    source = str(path)
    if not path.is_file():
        return None, [f"{source}: no such recipe file; see recipes/ for examples"]
    raw, unreadable = read_yaml(path)
    if unreadable:
        return None, [f"{source}: {unreadable}"]
    if not isinstance(raw, dict):
        return None, [f"{source}: a recipe is a YAML mapping (name:, domain:, method:, data:, ...)"]
    tree, problems = parse_overrides(overrides or [])
    raw = deep_update(raw, tree)
    try:
        recipe = Recipe.model_validate(raw)
    except ValidationError as exc:
        return None, problems + [format_error(source, e) for e in exc.errors()]
    return recipe, problems + rule_problems(source, recipe)


def recipe_from_yaml_text(text: str) -> Recipe:
    """The inverse of :meth:`Recipe.to_yaml` (pydantic's ValidationError on a bad text; a run directory's file is
    read with :func:`adapt.run_files.load_run_recipe`, which names the file and the fix)."""
    return Recipe.model_validate(bounded_yaml(text))
