"""Fixtures for the export tests: a tiny random Gemma 3 with a SentencePiece-style tokenizer, and a tiny LoRA."""

from __future__ import annotations

import json
from pathlib import Path

from tiny import CHATML_TEMPLATE, CORPUS

GEMMA_SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<start_of_turn>", "<end_of_turn>"]
GEMMA_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<start_of_turn>{{ message['role'] }}\n{{ message['content'] }}"
    "<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


def build_gemma_tokenizer(vocab_size: int = 420):
    """A Gemma-style tokenizer: BPE over ``▁``-escaped text with byte fallback, specials first, then <0xNN>."""
    from tokenizers import Tokenizer, models, normalizers, trainers
    from transformers import GemmaTokenizer

    trainer_tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    trainer_tok.normalizer = normalizers.Replace(" ", "\u2581")
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[], show_progress=False)
    trainer_tok.train_from_iterator(CORPUS, trainer=trainer)
    learned = json.loads(trainer_tok.to_str())["model"]
    vocab = {token: index for index, token in enumerate(GEMMA_SPECIALS + [f"<0x{b:02X}>" for b in range(256)])}
    for token, _ in sorted(learned["vocab"].items(), key=lambda item: item[1]):
        vocab.setdefault(token, len(vocab))
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in learned["merges"]]
    tokenizer = GemmaTokenizer(vocab=vocab, merges=merges)
    tokenizer.add_special_tokens({"additional_special_tokens": ["<start_of_turn>", "<end_of_turn>"]})
    tokenizer.chat_template = GEMMA_TEMPLATE
    return tokenizer


def build_tiny_gemma3(out_dir: Path, seed: int = 0) -> Path:
    """A 2-layer Gemma3ForCausalLM with random weights (norms too), saved as bf16 safetensors.

    head_dim and query_pre_attn_scalar are 256 and the local RoPE base 10000, the values
    transformers' GGUF loader assumes for gemma3 (it does not read them from the file).
    """
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    tokenizer = build_gemma_tokenizer()
    torch.manual_seed(seed)
    config = Gemma3TextConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=256,
        query_pre_attn_scalar=256,
        sliding_window=64,
        max_position_embeddings=512,
        layer_types=["sliding_attention", "sliding_attention"],
        rope_parameters={
            "full_attention": {"rope_type": "default", "rope_theta": 1_000_000.0},
            "sliding_attention": {"rope_type": "default", "rope_theta": 10_000.0},
        },
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    model = Gemma3ForCausalLM(config)
    with torch.no_grad():  # Gemma initializes norms at 0 (scale 1); random values exercise the +1 offset
        for name, param in model.named_parameters():
            if name.endswith("norm.weight"):
                param.normal_(0.0, 0.2)
    return save_bf16(model, tokenizer, out_dir)


def save_bf16(model, tokenizer, out_dir: Path) -> Path:
    """``model`` as bf16 safetensors and its tokenizer in ``out_dir``."""
    import torch

    out_dir.mkdir(parents=True, exist_ok=True)
    model.to(torch.bfloat16).save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def build_tiny_lora(base_dir: Path, out_dir: Path, seed: int = 0, **lora_kwargs) -> Path:
    """A peft LoRA on every projection of ``base_dir`` with random (non-zero) B, saved as safetensors."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)
    kwargs = {
        "r": 4,
        "lora_alpha": 8,
        "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    } | lora_kwargs
    peft_model = get_peft_model(model, LoraConfig(**kwargs))
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 0.2)
    peft_model.save_pretrained(str(out_dir))
    return out_dir


# --------------------------------------------------------------------------- one tiny model per GGUF architecture
QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def build_split_bpe_tokenizer(split_regex: str = QWEN2_SPLIT, vocab_size: int = 500):
    """A Qwen2-style byte-level BPE: a regex ``Split`` before a regex-free ``ByteLevel`` (as Llama 3 and Qwen ship)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(split_regex), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    fast.chat_template = CHATML_TEMPLATE
    return fast


PHI3_SPECIALS = ["<|endoftext|>", "<|assistant|>", "<|system|>", "<|end|>", "<|user|>"]
PHI3_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def build_phi3_tokenizer():
    """:func:`build_sentencepiece_tokenizer` with Phi-3's chat tokens (llama.cpp's phi3 vocabulary looks them up)."""
    tokenizer = build_sentencepiece_tokenizer()
    tokenizer.add_special_tokens({"additional_special_tokens": PHI3_SPECIALS, "pad_token": "<|endoftext|>"})
    tokenizer.chat_template = PHI3_TEMPLATE
    return tokenizer


def build_sentencepiece_tokenizer(vocab_size: int = 420):
    """A Llama/Mistral/Phi-3-style tokenizer: ``▁`` prefix on the first word, byte fallback, <unk> <s> </s> first."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaTokenizer

    trainer_tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    trainer_tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first", split=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[], show_progress=False)
    trainer_tok.train_from_iterator(CORPUS, trainer=trainer)
    learned = json.loads(trainer_tok.to_str())["model"]
    vocab = {token: index for index, token in enumerate(["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)])}
    for token, _ in sorted(learned["vocab"].items(), key=lambda item: item[1]):
        vocab.setdefault(token, len(vocab))
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in learned["merges"]]
    tokenizer = LlamaTokenizer(vocab=vocab, merges=merges)
    tokenizer.chat_template = "{{ bos_token }}" + CHATML_TEMPLATE.replace("<|im_start|>", "[").replace("<|im_end|>", "]")
    return tokenizer


#: GGUF test architecture -> (transformers config class name, tokenizer kind, config overrides, LoRA target modules)
TINY_ARCHS = {
    "llama": ("LlamaConfig", "gpt2", {"tie_word_embeddings": True}, None),
    "mistral": ("MistralConfig", "sentencepiece", {"sliding_window": 256, "tie_word_embeddings": False}, None),
    "qwen2": ("Qwen2Config", "split", {"tie_word_embeddings": True}, None),
    # head_dim 128, Qwen3's default: transformers' GGUF loader takes it from the config class, not the file
    "qwen3": ("Qwen3Config", "split", {"head_dim": 128, "tie_word_embeddings": False}, None),
    "gemma2": ("Gemma2Config", "gemma", {"head_dim": 16, "query_pre_attn_scalar": 16, "attn_logit_softcapping": 2.0,
                                         "final_logit_softcapping": 3.0, "sliding_window": 64}, None),
    "phi3": ("Phi3Config", "phi3", {"original_max_position_embeddings": 512, "tie_word_embeddings": False},
             ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]),
}


def _tokenizer(kind: str):
    from tiny import build_tokenizer

    return {"gpt2": build_tokenizer, "sentencepiece": build_sentencepiece_tokenizer, "phi3": build_phi3_tokenizer,
            "split": build_split_bpe_tokenizer, "gemma": build_gemma_tokenizer}[kind]()


def build_tiny_arch(arch: str, out_dir: Path, seed: int = 0) -> Path:
    """A 2-layer random model of ``arch`` (a key of TINY_ARCHS; gemma3 is :func:`build_tiny_gemma3`), hidden 64.

    Weights are drawn wider than the default init (std 0.2) and norms and biases are random too, so that
    every layout rule (Q/K permutation, Gemma's 1 + w, Qwen's biases and Q/K norms, the soft-caps) moves the
    logits; saved as bf16 safetensors with its tokenizer.
    """
    import torch
    import transformers

    if arch == "gemma3":
        return build_tiny_gemma3(out_dir, seed)
    config_name, tokenizer_kind, overrides, _ = TINY_ARCHS[arch]
    tokenizer = _tokenizer(tokenizer_kind)
    torch.manual_seed(seed)
    config = getattr(transformers, config_name)(**{
        "vocab_size": len(tokenizer), "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 512, "initializer_range": 0.2,
        "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id, **overrides,
    })
    model = transformers.AutoModelForCausalLM.from_config(config)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("norm.weight"):
                param.normal_(0.0 if "gemma" in arch else 1.0, 0.2)
            elif name.endswith(".bias"):
                param.normal_(0.0, 0.2)
    return save_bf16(model, tokenizer, out_dir)


def lora_targets(arch: str) -> list[str] | None:
    """The LoRA target modules of a tiny ``arch`` model (None: :func:`build_tiny_lora`'s split projections)."""
    return TINY_ARCHS[arch][3] if arch in TINY_ARCHS else None
