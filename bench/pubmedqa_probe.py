"""How much of PubMedQA's label a linear reader learns from the 500 non-test PQA-L questions.

Two readers, each a logistic regression (scikit-learn) with and without class weights:
- TF-IDF of word uni- and bigrams of context + question;
- the frozen base model's hidden states (bf16), mean-pooled over the text, at every third layer (the model is not
  trained: a linear probe).

Every setting is scored by 5-fold cross-validation on the 500 non-test questions (the pool adapt trains and
validates on). Then, per reader, one setting is chosen by a rule fixed in advance (the best cross-validated macro-F1
among settings whose cross-validated accuracy is >= 0.56), fitted on all 500 and scored once on the 500 official
test questions. They say whether the PQA-L training questions carry the signal the targets ask for (macro-F1 >= base
+ 0.10, accuracy >= 0.56) before an adapter is blamed or credited. Writes bench/results/pubmedqa_probe-<model>.json
and .md.

    PYTHONPATH=. python bench/pubmedqa_probe.py --model smollm2-135m-instruct
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

DATA = Path(os.environ.get("ADAPT_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data")) / "pubmedqa"
OUT = Path(__file__).resolve().parent / "results"
WEIGHTS = {"none": None, "balanced": "balanced"}


def questions(split: str) -> tuple[list[str], np.ndarray]:
    """Context + question and label of every ``pool`` question (non-test: what adapt trains and validates on) or
    ``test`` question (the official 500)."""
    data = json.loads((DATA / "ori_pqal.json").read_text())
    test = json.loads((DATA / "test_ground_truth.json").read_text())
    chosen = [data[k] for k in sorted(data, key=int) if (k in test) == (split == "test")]
    texts = [f"Context: {' '.join(c.strip() for c in q['CONTEXTS'])}\nQuestion: {q['QUESTION'].strip()}" for q in chosen]
    return texts, np.array([q["final_decision"] for q in chosen])


def scores(labels: np.ndarray, predicted: np.ndarray) -> dict:
    from sklearn.metrics import accuracy_score, f1_score

    return {"macro_f1": round(f1_score(labels, predicted, average="macro"), 4), "accuracy": round(accuracy_score(labels, predicted), 4)}


def cross_validated(features, labels: np.ndarray, make) -> dict:
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    return scores(labels, cross_val_predict(make(), features, labels, cv=StratifiedKFold(5, shuffle=True, random_state=0)))


def tfidf_rows(texts: list[str], labels: np.ndarray) -> list[dict]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    rows = []
    for weight, cw in WEIGHTS.items():
        for c in (1.0, 10.0):
            make = lambda c=c, cw=cw: make_pipeline(TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),  # noqa: E731
                                                    LogisticRegression(C=c, class_weight=cw, max_iter=3000))  # fmt: skip
            rows.append({"reader": "tf-idf", "layer": None, "C": c, "class_weight": weight, "make": make}
                        | cross_validated(texts, labels, make))  # fmt: skip
    return rows


def hidden_states(model_source: str, texts: list[str], max_len: int) -> np.ndarray:
    """[texts, layers, hidden]: each layer's states mean-pooled over the text."""
    import torch
    from transformers import AutoModel

    from adapt.models.loading import load_tokenizer
    from adapt.models.sources import resolve

    path = resolve(model_source)
    tokenizer = load_tokenizer(path)
    model = AutoModel.from_pretrained(str(path), dtype=torch.bfloat16, use_safetensors=True).eval()
    pooled = []
    with torch.no_grad():
        for text in texts:
            ids = tokenizer(text, return_tensors="pt", truncation=True, max_length=max_len)
            states = torch.stack(model(**ids, output_hidden_states=True).hidden_states)[:, 0].float()
            pooled.append(states.mean(1).numpy())
    return np.stack(pooled)


def probe_rows(states: np.ndarray, labels: np.ndarray) -> list[dict]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rows = []
    layers = states.shape[1]
    for layer in range(0, layers, 3):
        for weight, cw in WEIGHTS.items():
            for c in (0.003, 0.01, 0.03):
                make = lambda c=c, cw=cw: make_pipeline(StandardScaler(), LogisticRegression(C=c, class_weight=cw, max_iter=3000))  # noqa: E731
                rows.append({"reader": "frozen hidden states", "layer": layer, "C": c, "class_weight": weight, "make": make}
                            | cross_validated(states[:, layer], labels, make))  # fmt: skip
    return rows


def chosen_on_test(rows: list[dict], train, train_labels, test, test_labels) -> dict | None:
    """The rule fixed before test is read: the best cross-validated macro-F1 among settings with cross-validated
    accuracy >= 0.56; fitted on every pool question, scored once on test."""
    able = [r for r in rows if r["accuracy"] >= 0.56]
    if not able:
        return None
    best = max(able, key=lambda r: r["macro_f1"])
    pick = (lambda x: x) if best["layer"] is None else (lambda x: x[:, best["layer"]])
    model = best["make"]().fit(pick(train), train_labels)
    predicted = model.predict(pick(test))
    chosen = {k: best[k] for k in ("reader", "layer", "C", "class_weight")}
    return chosen | {"cv": {"macro_f1": best["macro_f1"], "accuracy": best["accuracy"]}, "test": scores(test_labels, predicted),
                     "test_predicted": {label: int((predicted == label).sum()) for label in ("yes", "no", "maybe")}}  # fmt: skip


def markdown(result: dict) -> str:
    lines = [f"# PubMedQA: what a linear reader learns from the {result['questions']} non-test questions (5-fold CV)", "",
             f"`{result['command']}`; CPU: {result['cpu']}; model: {result['model']}; pool labels: {result['labels']}; "
             f"{result['seconds']} s.", "", "Every setting, 5-fold cross-validation on the pool (no test):", "",
             "| reader | layer | C | class weights | macro-F1 | accuracy |", "|---|---|---|---|---|---|"]  # fmt: skip
    for r in result["rows"]:
        lines.append(f"| {r['reader']} | {'' if r['layer'] is None else r['layer']} | {r['C']} | {r['class_weight']} "
                     f"| {r['macro_f1']:.3f} | {r['accuracy']:.3f} |")  # fmt: skip
    lines += ["", "Chosen per reader by the rule above (cross-validation only), then scored once on the official test set:", "",
              "| reader | layer | C | class weights | CV macro-F1 / acc | test macro-F1 / acc | test predictions |",
              "|---|---|---|---|---|---|---|"]  # fmt: skip
    for c in result["chosen"]:
        lines.append(f"| {c['reader']} | {'' if c['layer'] is None else c['layer']} | {c['C']} | {c['class_weight']} "
                     f"| {c['cv']['macro_f1']:.3f} / {c['cv']['accuracy']:.3f} | {c['test']['macro_f1']:.3f} / "
                     f"{c['test']['accuracy']:.3f} | {c['test_predicted']} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--max-len", type=int, default=640, help="tokens of each text the frozen model reads")
    args = parser.parse_args(argv)
    texts, labels = questions("pool")
    test_texts, test_labels = questions("test")
    start = time.perf_counter()
    states = hidden_states(args.model, texts + test_texts, args.max_len)
    tfidf, probe = tfidf_rows(texts, labels), probe_rows(states[: len(texts)], labels)
    chosen = [chosen_on_test(tfidf, texts, labels, test_texts, test_labels),
              chosen_on_test(probe, states[: len(texts)], labels, states[len(texts) :], test_labels)]
    rows = [{k: v for k, v in r.items() if k != "make"} for r in tfidf + probe]
    result = {
        "command": f"PYTHONPATH=. python bench/pubmedqa_probe.py --model {args.model}",
        "cpu": torch.backends.cpu.get_cpu_capability(), "model": args.model, "questions": len(texts),
        "labels": {label: int((labels == label).sum()) for label in ("yes", "no", "maybe")},
        "seconds": round(time.perf_counter() - start, 1), "rows": rows, "chosen": [c for c in chosen if c],
    }  # fmt: skip
    OUT.mkdir(exist_ok=True)
    stem = OUT / f"pubmedqa_probe-{args.model}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    stem.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
