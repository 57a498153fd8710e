"""A tiny Yoruba-like NER corpus and the recipe that trains the tiny Llama on it (token-classification tests)."""

from __future__ import annotations

from pathlib import Path

from adapt.recipe import Recipe

PEOPLE = ["Ade", "Bola", "Musa", "Rais"]
PLACES = ["Èkó", "Kano", "Nairobi"]


def sentence(i: int) -> tuple[list[str], list[str]]:
    person, place = PEOPLE[i % len(PEOPLE)], PLACES[i % len(PLACES)]
    words = [person, "lọ", "sí", place, "ní", "ọjọ́", "Ajé", "."]
    tags = ["B-PER", "O", "O", "B-LOC", "O", "B-DATE", "I-DATE", "O"]
    return words, tags


def write_conll(folder: Path, n: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    text = "\n\n".join("\n".join(f"{w} {t}" for w, t in zip(*sentence(i))) for i in range(n)) + "\n"
    for name in ("train.txt", "dev.txt", "test.txt"):
        (folder / name).write_text(text)


def recipe_for(model_dir: Path, data_dir: Path, **method) -> Recipe:
    return Recipe.model_validate(
        {
            "name": "tiny-ner",
            "domain": "masakhaner",
            "model": {"source": str(model_dir), "quantization": "nf4"},
            "method": {"name": "qlora", "rank": 4, "alpha": 8, "dropout": 0.0, **method},
            "data": {"source": "masakhaner", "path": str(data_dir), "languages": ["yor"]},
            "train": {"max_steps": 12, "batch_size": 4, "learning_rate": 1e-2, "warmup_ratio": 0.0,
                      "lr_scheduler": "constant", "max_seq_len": 64, "save_steps": 6, "logging_steps": 2},
            "eval": {"batch_size": 4},
            "export": {"merge": ["nf4_dequant"], "formats": []},
        }
    )
