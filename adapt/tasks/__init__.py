"""Task kinds: one typed registry, :data:`TASKS` (eval.json's ``task_kind`` -> :class:`Kind`): the kind of a
recipe's data, or the kind a recipe makes of it (``train.sequence_head``: :attr:`Kind.with_sequence_head`).

Where to start reading: ``instruction.py`` (prompt -> generated answer, ROUGE-L), ``classification.py``
(a label scored by log-likelihood), ``token_classification.py`` (a ``score`` head per word, seqeval) and
``sequence_classification.py`` (a ``score`` head per text); the two causal-LM kinds share ``sft.py`` (training)
and ``lm.py`` (merging, scoring variants), the two head kinds ``heads.py`` and ``head_training.py``. Stages,
the demo and the model card never branch on a task kind: they call :func:`of` (or :func:`get`) and use
the record's fields, so what a kind trains, scores, merges, exports and predicts is written down here, once.

The kind strings stay as the data files record them (eval.json ``task_kind``): ``generation`` is the
instruction kind (``task: instruction`` in a user's data). Every callable is a :class:`~adapt.lazy.Lazy`
reference, so this registry imports no torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from adapt.errors import AdaptError
from adapt.lazy import Lazy

if TYPE_CHECKING:
    from adapt.export.formats import Format

SEQUENCE_HEAD_KIND = "sequence_classification"
"""The kind of classification data trained with ``train.sequence_head`` (:attr:`adapt.recipe.Recipe.kind`)."""

View = Literal["qa", "classification", "ner"]
"""How the demo shows a run (a domain card's ``view``)."""


@dataclass(frozen=True)
class Kind:
    """One task kind: what training, scoring, merging, export, prediction, the demo and the card need."""

    name: str
    """The kind as eval.json records it (``task_kind``): a data kind (``TaskData.kind``) or one a recipe chooses."""
    title: str
    """Its name in a user's data config (``task: instruction | classification | token_classification``)."""
    metrics: tuple[str, ...]
    """The primary metrics ``eval.primary_metric`` may name; the first is the default (the recipe's rules check
    the name against them)."""
    headline: tuple[str, ...]
    """eval.json ``headline_metrics``: the columns of the eval table (the primary metric first)."""
    perplexity: Literal["answer", "text"] | None
    """Held-out perplexity: of the reference answers, of the whole text (prompt + label), or none."""
    view: View
    """How the demo shows a run of this kind (a domain card without ``view`` gets it)."""
    pipeline_tag: str
    """The model card's Hub ``pipeline_tag``."""
    hub_task: str
    """The Hub task type of its scores (model card ``model-index``)."""
    columns: str
    """The input columns `adapt predict` reads for a run on built-in data (its help prints them)."""
    train: Lazy
    """``train(recipe, run, task, device, resume) -> metrics | None``: train and save ``run.adapter``; the
    run's metrics (None on processes other than rank 0). The train stage adds the data license and writes them."""
    score: Lazy
    """``score(model, tokenizer, recipe, task, examples, perplexity=True) -> metrics``: `adapt eval`'s metrics
    of one loaded model (validation during training and the combine stage score with it too)."""
    load_variant: Lazy
    """``load_variant(run, recipe, variant, device)``: a context manager yielding (model, tokenizer, load
    seconds) of a run's variant (:class:`adapt.variants.Variant`), freed afterwards."""
    score_variants: Lazy
    """``score_variants(run, recipe, task, examples, device, variants) -> iterator of (name, row)``: one eval.json
    row per variant ({"metrics", "load_time_s", "size_bytes"}), yielded as each is scored."""
    merge: Lazy
    """``merge(run, recipe, target, out_dir)``: the adapter folded into 16-bit weights (``target``: nf4_dequant
    or fp16), written as a plain transformers directory (a causal LM, or a token classifier with its head)."""
    calibration_ids: Lazy
    """``calibration_ids(tokenizer, task, examples, max_len) -> [[token id]]``: training examples as the model
    reads them (``nf4-calibrated`` chooses its block scales on them)."""
    trained_base: Lazy
    """``trained_base(recipe, adapter_dir) -> (model, tokenizer)``: the base the adapter trained against, loaded as
    training loads it (``nf4-lora`` saves its NF4 weights before it runs)."""
    predict: Lazy
    """``predict(model, tokenizer, recipe, inputs, batch_size) -> rows``: one output object per input of an
    :class:`adapt.tasks.inputs.Inputs` (id, input, the prediction; ``gold`` when the file has it)."""
    prediction_metrics: Lazy
    """``prediction_metrics(rows) -> metrics``: the scores of predicted rows that carry their gold."""
    balances_labels: bool = False
    """``train.class_balance`` applies: the examples carry labels to weight or oversample (:mod:`adapt.training.balance`)."""
    token_head: bool = False
    """Trains a token head over the decoder, whose reading ``train.token_head`` sets (:mod:`adapt.tasks.heads`)."""
    with_sequence_head: str | None = None
    """The kind this data trains as under ``train.sequence_head`` (a ``score`` head over the text instead of the
    language-model head); None: a sequence head does not apply to this data."""
    gguf: bool = True
    """llama.cpp's GGUF can carry the model (no classification head: False refuses the GGUF formats)."""

    def export_problem(self, fmt: Format) -> str | None:
        """Why export format ``fmt`` cannot write a run of this kind (one line with the fix); None: it can."""
        if self.gguf or not fmt.gguf:
            return None
        from adapt.export.formats import FORMATS

        usable = [f.name for f in FORMATS.values() if not f.gguf]
        return (f"--format {fmt.name}: a {self.title} run has a {self.pipeline_tag} head that llama.cpp's GGUF cannot "
                f"hold; export {', '.join(usable)} instead, or ship merged/<target>/ (`adapt merge`)")


def _causal(kind: str, module: str, **fields: Any) -> Kind:
    """A kind trained as prompt -> completion on the causal LM (SFT), merged and scored as an LM."""
    return Kind(
        name=kind, pipeline_tag="text-generation",
        train=Lazy("adapt.tasks.sft:train"), score=Lazy(f"{module}:score"), load_variant=Lazy("adapt.variants:loaded"),
        score_variants=Lazy("adapt.tasks.lm:score_variants"), merge=Lazy("adapt.tasks.lm:merge"),
        calibration_ids=Lazy("adapt.tasks.lm:calibration_ids"), trained_base=Lazy("adapt.tasks.lm:trained_base"),
        predict=Lazy(f"{module}:predict"),
        prediction_metrics=Lazy(f"{module}:prediction_metrics"), **fields,
    )  # fmt: skip


CLASSIFICATION_METRICS = ("macro_f1", "accuracy", "balanced_accuracy", "group_mean_macro_f1")
CLASSIFICATION_COLUMNS = "text (+ optional text_pair, + optional label: the gold)"

TASKS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        _causal(
            "generation", "adapt.tasks.instruction", title="instruction", metrics=("rougeL",), headline=("rougeL", "perplexity"),
            perplexity="answer", view="qa", hub_task="text-generation",
            columns="prompt (+ optional response: the gold), or messages, or alpaca instruction/input (+ output)",
        ),
        _causal(
            "classification", "adapt.tasks.classification", title="classification", metrics=CLASSIFICATION_METRICS,
            balances_labels=True, headline=("accuracy", "macro_f1", "balanced_accuracy", "perplexity"), perplexity="text",
            view="classification", hub_task="text-classification", columns=CLASSIFICATION_COLUMNS,
            with_sequence_head=SEQUENCE_HEAD_KIND,
        ),
        Kind(
            name="token_classification", title="token_classification", metrics=("f1",),
            headline=("f1", "precision", "recall"), perplexity=None, view="ner", pipeline_tag="token-classification",
            hub_task="token-classification", columns="tokens: a list of words (+ optional tags: the gold), or a CoNLL file with its tags",
            train=Lazy("adapt.tasks.token_classification:train"), score=Lazy("adapt.tasks.token_classification:score"),
            load_variant=Lazy("adapt.tasks.token_classification:load_variant"),
            score_variants=Lazy("adapt.tasks.token_classification:score_variants"),
            merge=Lazy("adapt.tasks.heads:merge"), calibration_ids=Lazy("adapt.tasks.token_classification:calibration_ids"),
            trained_base=Lazy("adapt.tasks.heads:trained_base"),
            predict=Lazy("adapt.tasks.token_classification:predict"),
            prediction_metrics=Lazy("adapt.tasks.token_classification:prediction_metrics"), token_head=True, gguf=False,
        ),
        Kind(
            name=SEQUENCE_HEAD_KIND, title="classification", metrics=CLASSIFICATION_METRICS,
            headline=("accuracy", "macro_f1", "balanced_accuracy"), perplexity=None, view="classification",
            pipeline_tag="text-classification", hub_task="text-classification", columns=CLASSIFICATION_COLUMNS,
            train=Lazy("adapt.tasks.sequence_classification:train"), score=Lazy("adapt.tasks.sequence_classification:score"),
            load_variant=Lazy("adapt.tasks.sequence_classification:load_variant"),
            score_variants=Lazy("adapt.tasks.sequence_classification:score_variants"),
            merge=Lazy("adapt.tasks.heads:merge"), calibration_ids=Lazy("adapt.tasks.sequence_classification:calibration_ids"),
            trained_base=Lazy("adapt.tasks.heads:trained_base"),
            predict=Lazy("adapt.tasks.sequence_classification:predict"),
            prediction_metrics=Lazy("adapt.tasks.classification:prediction_metrics"), balances_labels=True, gguf=False,
        ),
    )
}  # fmt: skip


METRICS: tuple[str, ...] = tuple(dict.fromkeys(m for kind in TASKS.values() for m in kind.metrics))
"""Every primary metric some kind can name (the choices of ``eval.primary_metric``)."""


def get(name: str) -> Kind:
    """The task kind called ``name``; an AdaptError naming the known ones otherwise."""
    try:
        return TASKS[name]
    except KeyError:
        raise AdaptError(f"task kind {name!r}: not a known kind; use one of {', '.join(TASKS)}") from None


def of(task: Any) -> Kind:
    """The kind of anything with a ``kind``: a :class:`~adapt.recipe.Recipe` (what its run trains: classification
    data with ``train.sequence_head`` is ``sequence_classification``), a TaskData or a data config (the data's)."""
    return get(task.kind)
