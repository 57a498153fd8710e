"""A Hugging Face tokenizer as GGUF ``tokenizer.ggml.*`` metadata (plus the chat template).

Two llama.cpp tokenizer models cover the supported architectures:

- ``gpt2``: byte-level BPE (SmolLM2, Llama 3, the tiny test tokenizer): tokens in
  the byte alphabet, the merges, and a named pre-tokenizer (``tokenizer.ggml.pre``)
  that llama.cpp maps to its split regexes. The name is read from the structure of
  the tokenizer's pre-tokenizer (a regex ``Split`` is looked up in :data:`SPLIT_PRE_TOKENIZERS`),
  never guessed: an unknown one is an error, since llama.cpp would silently split text differently.
- ``llama``: SentencePiece-style BPE with byte fallback (Gemma 2/3, Mistral, Phi-3): ``▁`` tokens,
  ``<0xNN>`` byte tokens, and scores that order the merges (llama.cpp merges the
  pair whose result scores highest). A BPE vocabulary lists pieces in merge order,
  so ``score = -id`` reproduces it; a Unigram vocabulary brings its own scores.

Token types follow llama.cpp's converter: special added tokens are CONTROL,
other added tokens USER_DEFINED (as are SentencePiece runs of spaces, written with
real spaces as llama.cpp's converter writes them for Gemma), ``<0xNN>`` pieces BYTE, ids without a
token UNUSED.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapt.errors import AdaptError

NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
_GPT2_SPLIT = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"
_SPECIAL_SCORE = -1000.0

#: ``Split`` regex of a byte-level BPE tokenizer.json -> the ``tokenizer.ggml.pre`` name llama.cpp splits text with
#: in the same way. The regexes are those the model families publish in their tokenizer.json; the names are the ones
#: llama.cpp's converter writes for them (``get_vocab_base_pre`` in convert_hf_to_gguf.py) and that its
#: ``llama-vocab.cpp`` maps to the same split (spelled there for its own regex engine). Written out here rather than
#: taken from transformers' private GGUF tables, which are no public API; one name per split suffices, since
#: llama.cpp treats the aliases (llama3/llama-v3/llama-bpe...) alike. A tokenizer whose split is not here is refused.
SPLIT_PRE_TOKENIZERS = {
    "llama-bpe": (  # Llama 3
        r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
        r"|\s*[\r\n]+|\s+(?!\S)|\s+"
    ),
    "qwen2": (  # Qwen2, Qwen2.5, Qwen3: single digits
        r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
        r"|\s*[\r\n]+|\s+(?!\S)|\s+"
    ),
    "tekken": (  # Mistral Nemo
        r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+"
        r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*"
        r"|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
    ),
    "gpt-4o": (  # Phi-4, Llama 4
        r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
        r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
        r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
    ),
}


@dataclass
class GGUFVocab:
    """Everything llama.cpp needs to tokenize like the Hugging Face tokenizer."""

    model: str
    """``gpt2`` (byte-level BPE) or ``llama`` (SentencePiece-style)."""
    pre: str
    """llama.cpp pre-tokenizer name (``gpt-2``, ``smollm``, ``llama-bpe``...; ``default`` for SentencePiece)."""
    tokens: list[str]
    token_types: list[int]
    scores: list[float] | None = None
    merges: list[str] = field(default_factory=list)
    special_ids: dict[str, int] = field(default_factory=dict)
    """``bos``, ``eos``, ``unk``, ``pad`` -> token id."""
    add_bos: bool = False
    add_eos: bool = False
    add_space_prefix: bool = False
    chat_template: str | None = None

    def write(self, writer: Any) -> None:
        writer.add_tokenizer_model(self.model)
        writer.add_tokenizer_pre(self.pre)
        writer.add_token_list(self.tokens)
        writer.add_token_types(self.token_types)
        if self.scores is not None:
            writer.add_token_scores(self.scores)
        if self.merges:
            writer.add_token_merges(self.merges)
        for kind, token_id in self.special_ids.items():
            getattr(writer, f"add_{kind}_token_id")(token_id)
        writer.add_add_bos_token(self.add_bos)
        writer.add_add_eos_token(self.add_eos)
        writer.add_add_space_prefix(self.add_space_prefix)
        if self.chat_template:
            writer.add_chat_template(self.chat_template)


def _pre_tokenizer_name(pre: dict[str, Any] | None) -> str:
    """llama.cpp's name for a byte-level BPE pre-tokenizer, from the tokenizers JSON."""
    steps = (pre or {}).get("pretokenizers", [pre] if pre else [])
    kinds = [step.get("type") for step in steps]
    byte_level = [step for step in steps if step.get("type") == "ByteLevel"]
    if kinds == ["ByteLevel"] and byte_level[0].get("use_regex", True):
        return "gpt-2"
    if kinds == ["Digits", "ByteLevel"] and steps[0].get("individual_digits") and byte_level[0].get("use_regex", True):
        return "smollm"
    splits = [step for step in steps if step.get("type") == "Split"]
    if kinds == ["Split", "ByteLevel"] and not byte_level[0].get("use_regex", True):
        pattern = splits[0].get("pattern", {}).get("Regex")
        if pattern == _GPT2_SPLIT:
            return "gpt-2"
        for name, regex in SPLIT_PRE_TOKENIZERS.items():
            if regex == pattern:
                return name
    raise AdaptError(
        f"tokenizer pre-tokenizer {json.dumps(pre)[:200]} has no llama.cpp equivalent adapt knows; "
        "a GGUF would split text differently from the model's tokenizer (use --format nf4 or int8)"
    )


def _model_kind(tokenizer_json: dict[str, Any]) -> str:
    model = tokenizer_json["model"]
    text = json.dumps([tokenizer_json.get("pre_tokenizer"), tokenizer_json.get("decoder")])
    if model["type"] == "BPE" and '"ByteLevel"' in text:
        return "gpt2"
    if model["type"] == "Unigram" or (model["type"] == "BPE" and model.get("byte_fallback")):
        return "llama"
    raise AdaptError(
        f"tokenizer model {model['type']!r} (byte_fallback={model.get('byte_fallback')}) is neither byte-level BPE "
        "nor SentencePiece-style; adapt cannot write it to GGUF"
    )


def _merges(tokenizer_json: dict[str, Any]) -> list[str]:
    merges = tokenizer_json["model"].get("merges") or []
    out = []
    for merge in merges:
        if isinstance(merge, str):
            out.append(merge)
        else:  # [left, right]; a space inside a part is written as U+0120 + 256 like llama.cpp does
            out.append(" ".join("".join(chr(ord(ch) + 256) if ch == " " else ch for ch in part) for part in merge))
    return out


def _looks_special(token: str) -> bool:
    return (token.startswith("<|") and token.endswith("|>")) or (token.startswith("<unused") and token.endswith(">"))


def build_vocab(model_dir: Path, n_vocab: int) -> GGUFVocab:
    """Read the tokenizer of ``model_dir`` into a :class:`GGUFVocab` of exactly ``n_vocab`` tokens."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise AdaptError(f"{model_dir}: the tokenizer has no fast (tokenizers) backend; GGUF export needs tokenizer.json")
    tokenizer_json = json.loads(backend.to_str())
    kind = _model_kind(tokenizer_json)
    vocab = backend.get_vocab(with_added_tokens=True)
    if max(vocab.values()) >= n_vocab:
        raise AdaptError(f"{model_dir}: tokenizer has ids up to {max(vocab.values())} but the embedding has {n_vocab} rows")
    by_id = {index: token for token, index in vocab.items()}
    added = tokenizer.added_tokens_decoder
    unigram_scores = dict(tokenizer_json["model"]["vocab"]) if tokenizer_json["model"]["type"] == "Unigram" else {}

    tokens, types, scores = [], [], []
    for index in range(n_vocab):
        token = by_id.get(index)
        if token is None:
            tokens.append(f"[PAD{index}]")
            types.append(UNUSED)
            scores.append(_SPECIAL_SCORE)
            continue
        if index in added:
            special = added[index].special or _looks_special(token)
            token_type = CONTROL if special else USER_DEFINED
            if kind == "llama" and not special:
                token = token.replace("\u2581", " ")
            score = _SPECIAL_SCORE
        elif kind == "llama" and len(token) == 6 and token.startswith("<0x") and token.endswith(">"):
            token_type, score = BYTE, 0.0
        elif kind == "llama" and len(token) > 1 and not token.strip("\u2581"):
            # runs of spaces are user-defined pieces in SentencePiece (Gemma), matched whole by llama.cpp
            token, token_type, score = token.replace("\u2581", " "), USER_DEFINED, _SPECIAL_SCORE
        else:
            token_type = NORMAL
            score = float(unigram_scores[token]) if unigram_scores else -float(index)
        tokens.append(token)
        types.append(token_type)
        scores.append(score)

    special_ids = {
        kind_: token_id
        for kind_, token_id in (
            ("bos", tokenizer.bos_token_id),
            ("eos", tokenizer.eos_token_id),
            ("unk", tokenizer.unk_token_id),
            ("pad", tokenizer.pad_token_id),
        )
        if token_id is not None
    }
    probe = tokenizer("a")["input_ids"]
    pieces = tokenizer.tokenize("a")
    template = tokenizer.chat_template
    if isinstance(template, dict):
        template = template.get("default") or next(iter(template.values()))
    return GGUFVocab(
        model=kind,
        pre=_pre_tokenizer_name(tokenizer_json.get("pre_tokenizer")) if kind == "gpt2" else "default",
        tokens=tokens,
        token_types=types,
        scores=scores if kind == "llama" else None,
        merges=_merges(tokenizer_json) if kind == "gpt2" else [],
        special_ids=special_ids,
        add_bos=bool(probe) and probe[0] == tokenizer.bos_token_id,
        add_eos=bool(probe) and probe[-1] == tokenizer.eos_token_id and len(probe) > 1,
        add_space_prefix=bool(pieces) and pieces[0].startswith("\u2581"),
        chat_template=template,
    )
