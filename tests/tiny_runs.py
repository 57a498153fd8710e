"""Tiny trained runs for the stage tests: the tiny random Llama (tests/tiny.py) trained a few steps on the
three example files of domains/examples/ (``source: file``, one per task kind) or on a built-in reader's
format (a MasakhaNER-style CoNLL folder)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "domains" / "examples"
EXAMPLE_FILES = {
    "instruction": EXAMPLES / "clinic_faq.jsonl",
    "classification": EXAMPLES / "contract_clauses.csv",
    "token_classification": EXAMPLES / "medication_ner.conll",
}
"""A user's own data, per task kind (``task:`` name)."""
CARD = {"name": "tiny-own", "description": "The example files of domains/examples.", "license": "CC0-1.0",
        "intended_use": "Tests of adapt.", "limitations": "A tiny random model: its outputs mean nothing."}
PEOPLE = ["Ade", "Bola", "Musa", "Rais"]
PLACES = ["Èkó", "Kano", "Nairobi"]


def ner_sentence(i: int) -> tuple[list[str], list[str]]:
    person, place = PEOPLE[i % len(PEOPLE)], PLACES[i % len(PLACES)]
    return [person, "lọ", "sí", place, "ní", "ọjọ́", "Ajé", "."], ["B-PER", "O", "O", "B-LOC", "O", "B-DATE", "I-DATE", "O"]


def write_masakhaner(folder: Path, n: int) -> Path:
    """A MasakhaNER-layout folder (``yor/train.txt``, ``dev.txt``, ``test.txt``) of ``n`` repetitive sentences."""
    lang = folder / "yor"
    lang.mkdir(parents=True, exist_ok=True)
    text = "\n\n".join("\n".join(f"{w} {t}" for w, t in zip(*ner_sentence(i))) for i in range(n)) + "\n"
    for name in ("train.txt", "dev.txt", "test.txt"):
        (lang / name).write_text(text, encoding="utf-8")
    return folder


def _recipe(model_dir: Path, name: str, domain, data: dict, steps: int, lr: float):
    from adapt.recipe import Recipe

    return Recipe.model_validate({
        "name": name, "domain": domain,
        "model": {"source": str(model_dir), "quantization": "nf4"},
        "method": {"name": "qlora", "rank": 4, "alpha": 8, "dropout": 0.0},
        "data": data,
        "train": {"max_steps": steps, "batch_size": 4, "learning_rate": lr, "warmup_ratio": 0.0, "lr_scheduler": "constant",
                  "max_seq_len": 64, "save_steps": 100, "logging_steps": 2, "eval_steps": 0},
        "eval": {"batch_size": 4, "max_new_tokens": 6, "perplexity_examples": 2, "limit": 6},
        "export": {"merge": ["nf4_dequant"], "formats": []},
    })  # fmt: skip


def own_recipe(model_dir: Path, title: str, steps: int = 2):
    """A recipe on the example file of task kind ``title`` (``source: file``), with an inline domain card."""
    data = {"source": "file", "path": str(EXAMPLE_FILES[title]), "task": title}
    return _recipe(model_dir, f"tiny-own-{title}", CARD, data, steps, 1e-3)


def masakhaner_recipe(model_dir: Path, data_dir: Path):
    """A built-in-reader NER recipe that a tiny model learns in 12 steps (the sentences repeat)."""
    return _recipe(model_dir, "tiny-ner", "masakhaner", {"source": "masakhaner", "path": str(data_dir), "languages": ["yor"]}, 12, 1e-2)


def train_run(recipe, out: Path):
    """``adapt train`` of ``recipe`` into ``out``; its RunDir."""
    from adapt import train
    from adapt.runs import RunDir

    return RunDir(train.run(recipe, out))
