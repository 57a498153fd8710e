"""Typed configs for a user's own data: ``source: file`` (local files) and ``source: hub`` (a Hub dataset).

Each names its ``task`` and the columns that task reads::

    data:
      source: file
      path: domains/examples/clinic_faq.jsonl     # one file, split by the seeded fractions
      task: {type: instruction, prompt: question, response: answer}

``task`` may also be a bare name (``task: classification``): the default columns are used
(instruction: ``messages``, alpaca ``instruction``/``output`` or ``prompt``/``response``, whichever the
file has). Nothing here reads a file; :mod:`adapt.data.own` does.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import Field, field_validator, model_validator

from adapt.data.paths import resolve_data_path
from adapt.data.types import TaskKind
from adapt.strict import Strict


Column = Annotated[str, Field(min_length=1, max_length=200)]
"""A column (JSON key, CSV header, Hub feature) name."""
FilePath = Annotated[str, Field(pattern=r"^[^\x00]*$", min_length=1, max_length=4096)]
Label = Annotated[str, Field(pattern=r"\S", max_length=200)]
System = Annotated[str, Field(max_length=8000)]

Format = Literal["jsonl", "json", "csv", "tsv", "parquet", "conll"]
EXTENSIONS: dict[str, Format] = {
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "tsv",
    ".parquet": "parquet", ".pq": "parquet", ".conll": "conll", ".iob": "conll", ".bio": "conll",
}
BIO_TAG = r"^(O|[BI]-\S+)$"


# --------------------------------------------------------------------------- tasks
class InstructionTask(Strict):
    """Prompt -> response pairs, in one of three layouts (set the fields of one; none set: found from the columns)."""

    type: Literal["instruction"]
    prompt: Column | None = None
    response: Column | None = None
    """Layout 1: a prompt column and a response column."""
    messages: Column | None = None
    """Layout 2: a column of chat turns, [{role, content}] (OpenAI) or [{from, value}] (ShareGPT); the last
    assistant turn is the response, the turns before it the prompt."""
    instruction: Column | None = None
    input: Column | None = None
    output: Column | None = None
    """Layout 3 (alpaca): instruction, optional input, output."""
    system: System | None = None
    """System prompt put before every prompt."""

    @model_validator(mode="after")
    def _one_layout(self) -> InstructionTask:
        used = [name for name, fields in LAYOUTS.items() if any(getattr(self, f) for f in fields)]
        if len(used) > 1:
            raise ValueError(f"columns of {' and '.join(used)} layouts are both set; set the columns of one layout")
        return self

    @property
    def layout(self) -> str | None:
        """prompt_response, messages or alpaca; None: decide from the data's columns."""
        return next((name for name, fields in LAYOUTS.items() if any(getattr(self, f) for f in fields)), None)


LAYOUTS = {"prompt_response": ("prompt", "response"), "messages": ("messages",),
           "alpaca": ("instruction", "input", "output")}


class ClassificationTask(Strict):
    """A text (and an optional second text) with one label; scored by each label's log-likelihood."""

    type: Literal["classification"]
    text: Column = "text"
    text_pair: Column | None = None
    """A second text shown after the first (premise/hypothesis, question/passage)."""
    label: Column = "label"
    labels: list[Label] | None = Field(None, min_length=2, max_length=200)
    """The label set, in the order the prompt lists it; unset: the labels of the training split."""
    system: System | None = None

    @field_validator("labels")
    @classmethod
    def _distinct(cls, labels: list[str] | None) -> list[str] | None:
        return _distinct_labels(labels)


class TokenClassificationTask(Strict):
    """Words with one BIO tag each (O, B-X, I-X for any entity types X)."""

    type: Literal["token_classification"]
    tokens: Column = "tokens"
    tags: Column = "tags"
    """Columns holding lists (CoNLL files need none: word first, tag last on each line)."""
    labels: list[Label] | None = Field(None, min_length=2, max_length=1000)
    """The tag set (also the names of integer tags, in index order); unset: the tags of the training split."""
    system: System | None = None

    @field_validator("labels")
    @classmethod
    def _bio(cls, labels: list[str] | None) -> list[str] | None:
        labels = _distinct_labels(labels)
        if labels is None:
            return None
        bad = [t for t in labels if not re.match(BIO_TAG, t)]
        if bad:
            raise ValueError(f"{', '.join(map(repr, bad[:5]))} not O, B-X or I-X; use BIO tags (B-DRUG, I-DRUG, O)")
        if "O" not in labels:
            raise ValueError("no 'O' tag; add O, the tag of words outside any entity")
        return labels


def _distinct_labels(labels: list[str] | None) -> list[str] | None:
    if labels is None:
        return None
    labels = [label.strip() for label in labels]
    twice = sorted({label for label in labels if labels.count(label) > 1})
    if twice:
        raise ValueError(f"{', '.join(map(repr, twice))} listed twice; list each label once")
    return labels


Task = Annotated[Union[InstructionTask, ClassificationTask, TokenClassificationTask], Field(discriminator="type")]
KINDS: dict[str, TaskKind] = {"instruction": "generation", "classification": "classification",
                              "token_classification": "token_classification"}


# --------------------------------------------------------------------------- sources
class _OwnData(Strict):
    task: Task
    validation_fraction: float = Field(0.1, ge=0, lt=1)
    """Share of the training rows held out for validation when no validation split is given (0: none)."""
    test_fraction: float = Field(0.2, gt=0, lt=1)
    """Share of the training rows held out for the test when no test split is given."""
    max_train_examples: int | None = Field(None, ge=1)
    """Cap on training examples (seeded sample, never a prefix)."""
    seed: int = 0
    """Seed for the held-out splits and the sample."""

    @field_validator("task", mode="before")
    @classmethod
    def _bare_name(cls, value: Any) -> Any:
        return {"type": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _fractions(self) -> _OwnData:
        if self.validation_fraction + self.test_fraction >= 1:
            raise ValueError("validation_fraction + test_fraction >= 1 leaves no training rows; lower them")
        return self

    @property
    def kind(self) -> TaskKind:
        return KINDS[self.task.type]


class FileData(_OwnData):
    """Local files: ``path`` (one file, split by the fractions) or ``train`` (+ optional ``validation``, ``test``)."""

    source: Literal["file"]
    path: FilePath | None = None
    train: FilePath | None = None
    validation: FilePath | None = None
    test: FilePath | None = None
    format: Format | None = None
    """jsonl, json (an array of objects), csv, tsv, parquet or conll; unset: from each file's extension."""

    @model_validator(mode="after")
    def _files(self) -> FileData:
        if (self.path is None) == (self.train is None):
            raise ValueError("set one of path (one file, split by the fractions) or train (with optional validation, test)")
        if self.path is not None and (self.validation or self.test):
            raise ValueError("path is one file split by the fractions; with validation or test files name the train file as train")
        for split, text in self.files().items():
            fmt = self.format or EXTENSIONS.get(Path(text).suffix.lower())
            if fmt is None and Path(text).suffix.lower() == ".txt" and self.task.type == "token_classification":
                fmt = "conll"
            if fmt is None:
                raise ValueError(f"cannot tell the format of {split} file {text!r} from its extension; "
                                 f"set format: one of {', '.join(Format.__args__)}")
            if fmt == "conll" and self.task.type != "token_classification":
                raise ValueError(f"{text!r} is CoNLL (tagged words); use task: token_classification, or another format")
        return self

    def files(self) -> dict[str, str]:
        """Split name -> path text, for the splits given as files (``path`` counts as train)."""
        named = {"train": self.path or self.train, "validation": self.validation, "test": self.test}
        return {split: text for split, text in named.items() if text}

    def file_format(self, text: str) -> Format:
        suffix = Path(text).suffix.lower()
        return self.format or EXTENSIONS.get(suffix) or "conll"  # the validator lets only .txt (CoNLL) through here

    def resolved(self, text: str) -> Path:
        """A path as written, with ``${ADAPT_DATA_DIR}`` and ``~`` expanded (relative: to the working folder)."""
        return resolve_data_path(text)

    def anchored(self) -> dict[str, str]:
        """The file fields (path, train, validation, test) whose path is relative to the working folder, made
        absolute, for a run directory's recipe; ``${ADAPT_DATA_DIR}`` paths stay as written (portable)."""
        fields = {"path": self.path, "train": self.train, "validation": self.validation, "test": self.test}
        return {key: str(Path(text).expanduser().absolute()) for key, text in fields.items()
                if text and "${" not in text and not Path(text).expanduser().is_absolute()}  # fmt: skip


class HubSplits(Strict):
    train: Column = "train"
    validation: Column | None = None
    """Unset: the dataset's 'validation' (or 'dev', 'valid') split if it has one, else held out of train."""
    test: Column | None = None
    """Unset: the dataset's 'test' split if it has one, else held out of train."""


class HubData(_OwnData):
    """A Hugging Face Hub dataset, read with ``datasets.load_dataset`` (needs network or ``source: file``)."""

    source: Literal["hub"]
    dataset: Annotated[str, Field(pattern=r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$", max_length=200)]
    """Hub id, e.g. 'org/name'."""
    config: Column | None = None
    """The dataset's configuration (subset) name, if it has several."""
    revision: Annotated[str, Field(pattern=r"^[\w./-]+$", max_length=200)] | None = None
    """Branch, tag or commit; unset: the default branch."""
    splits: HubSplits = Field(default_factory=HubSplits)


OwnDataConfig = Annotated[Union[FileData, HubData], Field(discriminator="source")]
