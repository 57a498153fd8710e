"""One place that turns an example into model text, shared by training, scoring and the demo.

Instruct models (a tokenizer with a chat template) get a system + user turn
and the answer as the assistant turn; base models get a plain
``instruction / input / Answer:`` layout.
"""

from __future__ import annotations

from dataclasses import dataclass

from transformers import PreTrainedTokenizerBase


@dataclass(frozen=True)
class PromptFormat:
    tokenizer: PreTrainedTokenizerBase
    instruction: str = ""

    @property
    def uses_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    def prompt(self, text: str, max_tokens: int | None = None) -> str:
        """The model input up to where the answer starts, at most ``max_tokens`` tokens.

        An input that is too long loses the start of its text (the instruction
        and the end, where the question sits, are kept): right-truncation would
        cut the answer off and leave nothing to learn or score.
        """
        rendered = self._render(text)
        if max_tokens is None:
            return rendered
        excess = self.count_tokens(rendered) - max_tokens
        if excess <= 0:
            return rendered
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        keep = len(ids) - excess - 2  # two tokens of slack for the ellipsis
        while keep > 0:  # decoding and re-tokenizing can merge differently at the cut: check, then cut more
            cut = self._render("…" + self.tokenizer.decode(ids[len(ids) - keep :]))
            if self.count_tokens(cut) <= max_tokens:
                return cut
            keep -= 1
        return self._render("…")

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _render(self, text: str) -> str:
        if self.uses_chat_template:
            messages = [{"role": "user", "content": text}]
            if self.instruction:
                messages.insert(0, {"role": "system", "content": self.instruction})
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        head = f"{self.instruction}\n\n" if self.instruction else ""
        return f"{head}{text}\nAnswer:"

    def completion(self, answer: str, *, end: bool = True) -> str:
        """The answer as the model should produce it (with the end-of-turn token for training)."""
        text = answer if self.uses_chat_template else f" {answer}"
        if end and self.tokenizer.eos_token:
            text += self.tokenizer.eos_token
        return text
