"""NER on word-split sentences: subword alignment, batched tagging, seqeval scores, a lexicon baseline.

Words are joined with single spaces and tokenized as plain text (the way the
model sees text at inference); the tokenizer's character offsets map each
subword to the word it overlaps. A word's label goes on one subword, its first
(the usual choice for encoders) or its last (for a causal decoder, the only
piece that has seen the whole word); every other position gets -100 (ignored by
the loss), and at inference the tag predicted there is the word's tag.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import get_args

import torch
from tqdm.auto import tqdm

from adapt.data.types import TokenExample
from adapt.errors import AdaptError
from adapt.recipe import LabelPosition

IGNORE = -100
POSITIONS = get_args(LabelPosition)


@dataclass(frozen=True)
class Encoded:
    input_ids: list[int]
    first: list[int]
    """Index of each word's first subword; -1 when the word got no subword (cut by max_len)."""
    pieces: list[int]
    """Subwords per word (0 when cut)."""

    def positions(self, which: str = "first") -> list[int]:
        """The subword that carries each word's label (-1: cut); a word's subwords are contiguous."""
        if which not in POSITIONS:
            raise AdaptError(f"label position {which!r}: use one of {', '.join(POSITIONS)}")
        if which == "first":
            return self.first
        return [f + n - 1 if f >= 0 else -1 for f, n in zip(self.first, self.pieces)]


def encode(tokenizer, words: tuple[str, ...] | list[str], max_len: int | None = None) -> Encoded:
    if not getattr(tokenizer, "is_fast", False):
        raise AdaptError(f"tokenizer {type(tokenizer).__name__}: NER needs a fast tokenizer (character offsets)")
    spans, pos = [], 0
    for word in words:
        spans.append((pos, pos + len(word)))
        pos += len(word) + 1
    enc = tokenizer(
        " ".join(words), return_offsets_mapping=True, truncation=max_len is not None, max_length=max_len
    )
    first, pieces = [-1] * len(words), [0] * len(words)
    w = 0
    for index, (start, end) in enumerate(enc["offset_mapping"]):
        if end <= start:
            continue  # special tokens
        while w < len(spans) and spans[w][1] <= start:
            w += 1
        if w < len(spans) and start < spans[w][1] and end > spans[w][0]:
            if first[w] < 0:
                first[w] = index
            pieces[w] += 1
    return Encoded(list(enc["input_ids"]), first, pieces)


def training_row(tokenizer, example: TokenExample, label2id: dict[str, int], max_len: int, position: str = "first") -> dict:
    enc = encode(tokenizer, example.tokens, max_len)
    labels = [IGNORE] * len(enc.input_ids)
    for tag, index in zip(example.tags, enc.positions(position)):
        if index >= 0:
            if tag not in label2id:
                raise AdaptError(f"sentence {example.id}: tag {tag!r} is not in the label set {sorted(label2id)}")
            labels[index] = label2id[tag]
    return {"input_ids": enc.input_ids, "attention_mask": [1] * len(enc.input_ids), "labels": labels}


def fertility(tokenizer, examples: list[TokenExample]) -> dict:
    """Subwords per word (no truncation) and the share of words split into more than one subword."""
    words = pieces = split = 0
    for ex in examples:
        enc = encode(tokenizer, ex.tokens)
        words += len(ex.tokens)
        pieces += sum(enc.pieces)
        split += sum(p > 1 for p in enc.pieces)
    return {"words": words, "subwords": pieces, "fertility": round(pieces / max(words, 1), 4), "split_share": round(split / max(words, 1), 4)}


@torch.no_grad()
def predict_tags(
    model, tokenizer, sentences: list, id2label: dict, batch_size: int = 32, max_len: int = 1024, position: str = "first"
) -> tuple[list[list[str]], dict]:
    """Tags for each word-split sentence, batched by length; returns (tags, stats)."""
    device = next(model.parameters()).device
    encoded = [encode(tokenizer, words, max_len) for words in sentences]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i].input_ids))
    out: list[list[str]] = [[] for _ in encoded]
    tokens = 0
    starts = range(0, len(order), batch_size)
    for b in tqdm(starts, desc="tagging", unit="batch", leave=False, disable=len(starts) < 4, mininterval=10):
        batch = [encoded[i] for i in order[b : b + batch_size]]
        padded = tokenizer.pad([{"input_ids": e.input_ids} for e in batch], return_tensors="pt")
        logits = model(input_ids=padded["input_ids"].to(device), attention_mask=padded["attention_mask"].to(device)).logits
        best = logits.argmax(-1).cpu()
        tokens += int(padded["attention_mask"].sum())
        for row, i in enumerate(order[b : b + batch_size]):
            out[i] = [id2label[int(best[row, f])] if f >= 0 else "O" for f in encoded[i].positions(position)]
    cut = sum(f < 0 for e in encoded for f in e.first)
    return out, {"tokens": tokens, "words_cut": cut}


def ner_metrics(gold: list[list[str]], pred: list[list[str]]) -> dict:
    """seqeval entity scores (CoNLL evaluation: exact span and type): micro P/R/F1, macro F1, per type."""
    from seqeval.metrics import classification_report, f1_score, precision_score, recall_score

    report = classification_report(gold, pred, output_dict=True, zero_division=0)
    per_type = {
        name: {"precision": round(float(r["precision"]), 4), "recall": round(float(r["recall"]), 4),
               "f1": round(float(r["f1-score"]), 4), "support": int(r["support"])}
        for name, r in report.items()
        if not name.endswith(" avg")
    }
    return {
        "f1": float(f1_score(gold, pred, zero_division=0)),
        "precision": float(precision_score(gold, pred, zero_division=0)),
        "recall": float(recall_score(gold, pred, zero_division=0)),
        "macro_f1": round(float(report["macro avg"]["f1-score"]), 4) if "macro avg" in report else 0.0,
        "per_type": per_type,
        "sentences": len(gold),
        "gold_entities": sum(t["support"] for t in per_type.values()),
    }


def build_lexicon(train: list[TokenExample]) -> dict[tuple[str, ...], str]:
    """Entity spans of the training data that always carry the same type (the CoNLL-2003 baseline's lexicon)."""
    from seqeval.metrics.sequence_labeling import get_entities

    seen: dict[tuple[str, ...], Counter] = defaultdict(Counter)
    for ex in train:
        for kind, start, end in get_entities(list(ex.tags)):
            seen[ex.tokens[start : end + 1]][kind] += 1
    return {span: kinds.most_common(1)[0][0] for span, kinds in seen.items() if len(kinds) == 1}


def lexicon_tags(lexicon: dict[tuple[str, ...], str], words: tuple[str, ...]) -> list[str]:
    """Greedy longest match, left to right, of the lexicon's spans."""
    longest = max((len(s) for s in lexicon), default=0)
    tags, i = ["O"] * len(words), 0
    while i < len(words):
        for n in range(min(longest, len(words) - i), 0, -1):
            kind = lexicon.get(tuple(words[i : i + n]))
            if kind:
                tags[i : i + n] = [f"B-{kind}"] + [f"I-{kind}"] * (n - 1)
                i += n
                break
        else:
            i += 1
    return tags


def predict_entities(model, tokenizer, words: list[str] | str) -> list[tuple[str, str]]:
    """(span text, type) for each entity the model finds in one sentence (a string is split on whitespace)."""
    from seqeval.metrics.sequence_labeling import get_entities

    words = words.split() if isinstance(words, str) else list(words)
    if not words:
        return []
    id2label = {int(k): v for k, v in model.config.id2label.items()}
    position = getattr(model.config, "adapt_label_position", "first")
    was_training = model.training
    model.eval()
    (tags,), _ = predict_tags(model, tokenizer, [words], id2label, batch_size=1, position=position)
    model.train(was_training)
    return [(" ".join(words[start : end + 1]), kind) for kind, start, end in get_entities(tags)]
