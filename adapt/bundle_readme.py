"""The serving bundle's README: the vLLM command that serves it and a client example (TGI and LoRAX alike)."""

from __future__ import annotations

from pathlib import Path


def serve_command(adapters: dict[str, dict], max_rank: int) -> str:
    modules = " ".join(f"{name}=adapters/{name}" for name in adapters)
    return f"vllm serve base --enable-lora --lora-modules {modules} --max-lora-rank {max_rank} --max-loras {len(adapters)}"


def _client_example(name: str, chat: bool) -> str:
    call = (
        f'reply = client.chat.completions.create(model="{name}", messages=[{{"role": "user", "content": "..."}}], max_tokens=64)\n'
        "print(reply.choices[0].message.content)"
        if chat
        else f'reply = client.completions.create(model="{name}", prompt="...", max_tokens=64)\nprint(reply.choices[0].text)'
    )
    return 'from openai import OpenAI\n\nclient = OpenAI(base_url="http://localhost:8000/v1", api_key="EMPTY")\n' + call


def write_readme(folder: Path, manifest: dict, chat: bool) -> None:
    adapters = manifest["adapters"]
    rows = "\n".join(
        f"| `{name}` | {a['domain']} | {a['method']}{' (collapsed to one LoRA)' if a['collapsed'] else ''} | {a['rank']} | `{a['run']}` |"
        for name, a in adapters.items()
    )
    first = next(iter(adapters))
    tgi = ",".join(f"{name}=adapters/{name}" for name in adapters)
    text = f"""# Serving bundle

`base/` is the model the adapters were trained against: {manifest['base_origin']}.
Serving the 16-bit original instead would not reproduce the trained adapters.
Each `adapters/<name>/` is a plain peft LoRA; its `base_model_name_or_path` is `base`, the folder beside it,
so run the commands below from this folder.

| name | domain | method | rank | trained in |
|---|---|---|---|---|
{rows}

## vLLM

```bash
pip install vllm openai
{manifest['vllm_command']}
```

`--max-lora-rank` is the smallest value vLLM accepts that holds every adapter's rank; `--max-loras` lets all
adapters share one batch. The served model names are the adapter names (`base` is the base alone).

```python
{_client_example(first, chat)}
```

Prompts should be built as adapt built them in training (see each adapter's `adapt_recipe.yaml`).

## Other servers

- TGI: `text-generation-launcher --model-id base --lora-adapters {tgi}`
- plain transformers + peft: `PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained("base"), "adapters/{first}")`
"""
    (folder / "README.md").write_text(text)
