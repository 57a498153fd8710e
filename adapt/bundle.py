"""`adapt bundle RUN... --out DIR`: what vLLM (or TGI, LoRAX) loads to serve several domain adapters on one base.

::

    DIR/base/                  the 16-bit base the adapters were trained against (NF4 runs: the dequantized
                               NF4 weights, see dequantized_base.base_for), with its tokenizer
    DIR/adapters/<name>/       each run's adapter in plain peft form (MoE-LoRA: its collapse to one LoRA),
                               base_model_name_or_path "base" (the folder beside it), + the run's recipe
    DIR/bundle.json            runs, methods, ranks, the serve command
    DIR/README.md              `vllm serve base --enable-lora --lora-modules ...` and an OpenAI-client example

Runs must share one base (model source and quantization). PEQA has no LoRA form (it rescales the NF4 weights
themselves; `adapt quantize --format nf4` makes its own checkpoint) and token-classification runs add a head
vLLM's LoRA serving cannot load: both are refused.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from adapt import methods, tasks
from adapt.domains import domain_name
from adapt.errors import AdaptError
from adapt.recipe import Recipe
from adapt.runs import RunDir, atomic_dir

BASE_DIR = "base"
ADAPTERS_DIR = "adapters"
VLLM_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
"""The values vLLM accepts for --max-lora-rank."""
ADAPTER_FILES = ("adapter_model.safetensors", "collapse.json")


def _base_key(recipe: Recipe) -> tuple:
    m = recipe.model
    return (m.source, m.quantization, m.double_quant if m.quantization == "nf4" else None)


def _check(runs: dict[str, tuple[RunDir, Recipe]]) -> None:
    for name, (run, recipe) in runs.items():
        run.require_adapter()
        method = methods.of(recipe)
        if method.lora_for_merge is None:
            raise AdaptError(f"{run.root}: {method.name} {method.about} and has no LoRA form to serve beside others; "
                             f"serve its own checkpoint (adapt quantize {run.root} --format nf4)")  # fmt: skip
        if tasks.of(recipe).pipeline_tag != "text-generation":
            raise AdaptError(f"{run.root}: a run with a classification head (token or sequence) adds a head that LoRA "
                             "serving cannot load; bundle generative runs")
    keys = {name: _base_key(recipe) for name, (_, recipe) in runs.items()}
    if len(set(keys.values())) > 1:
        listed = "; ".join(f"{name}: {src} ({quant})" for name, (src, quant, _) in keys.items())
        raise AdaptError(f"the runs were trained against different bases ({listed}); bundle runs of one base together")


def _names(recipes: list[Recipe], names: list[str] | None) -> list[str]:
    """The served names: ``names`` (--name), else the recipe names made safe."""
    chosen = names or [re.sub(r"[^A-Za-z0-9_.-]+", "-", recipe.name) for recipe in recipes]
    bad = [n for n in chosen if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", n)]
    if bad:
        raise AdaptError(f"--name {bad[0]!r}: use letters, digits, '.', '_' or '-' (it becomes the served model name)")
    if len(set(chosen)) < len(chosen):
        raise AdaptError(f"adapter names repeat ({', '.join(chosen)}); pass --name once per run with distinct names")
    return chosen


def lora_rank(adapter_config: dict) -> int:
    """The largest rank in a peft LoRA config (its r and any rank_pattern entry)."""
    return max([int(adapter_config["r"]), *map(int, (adapter_config.get("rank_pattern") or {}).values())])


def vllm_max_rank(rank: int) -> int:
    fitting = [r for r in VLLM_RANKS if r >= rank]
    if not fitting:
        raise AdaptError(f"LoRA rank {rank} exceeds vLLM's largest --max-lora-rank ({VLLM_RANKS[-1]}); retrain with a lower rank")
    return fitting[0]


def _write_adapter(src: Path, dest: Path, run: RunDir) -> dict:
    config = json.loads((src / "adapter_config.json").read_text())
    if config.get("peft_type") != "LORA":
        raise AdaptError(f"{src}: not a LoRA adapter (peft_type {config.get('peft_type')}); only LoRA adapters are served")
    if config.get("modules_to_save"):
        raise AdaptError(f"{src}: modules_to_save {config['modules_to_save']} are full weights LoRA serving cannot swap")
    scale = config["lora_alpha"] / config["r"]
    ranks, alphas = config.get("rank_pattern") or {}, config.get("alpha_pattern") or {}
    if any(alphas.get(m, config["lora_alpha"]) / r != scale for m, r in ranks.items()):
        raise AdaptError(f"{src}: layers differ in alpha/r; servers that apply one lora_alpha/r to every layer would scale them wrongly")
    config["base_model_name_or_path"] = BASE_DIR
    dest.mkdir(parents=True)
    (dest / "adapter_config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    for name in ADAPTER_FILES:
        if (src / name).is_file():
            shutil.copy2(src / name, dest / name)
    shutil.copy2(run.recipe, dest / "adapt_recipe.yaml")
    return config


def _write_base(recipe: Recipe, dest: Path) -> tuple[str, bool]:
    """The base the adapters were trained against, in 16 bits; returns how it was made and whether its
    tokenizer has a chat template."""
    from adapt.models import dequantized_base
    from adapt.models.loading import storage_dtype

    model, tokenizer = dequantized_base.base_for(recipe, "nf4_dequant")
    model.to(storage_dtype(recipe.model))
    model.save_pretrained(dest, safe_serialization=True)
    tokenizer.save_pretrained(dest)
    chat = bool(getattr(tokenizer, "chat_template", None))
    if recipe.model.quantization == "nf4":
        return f"{recipe.model.source}, NF4 (double quant: {recipe.model.double_quant}) dequantized: the weights the adapters trained against", chat
    return f"{recipe.model.source}, 16-bit", chat


def run(run_dirs: list[Path], out: Path, names: list[str] | None = None) -> Path:
    """Write the serving bundle of ``run_dirs`` into ``out``; returns ``out``."""
    from adapt.bundle_readme import serve_command, write_readme

    if not run_dirs:
        raise AdaptError("adapt bundle: name at least one run directory")
    if names and len(names) != len(run_dirs):
        raise AdaptError(f"--name: give one name per run ({len(run_dirs)} runs, {len(names)} names) or none")
    dirs = [RunDir(Path(p)) for p in run_dirs]
    recipes = [d.load_recipe() for d in dirs]  # each read once
    runs = {name: (d, recipe) for name, d, recipe in zip(_names(recipes, names), dirs, recipes)}
    _check(runs)
    first = next(iter(runs.values()))[1]
    adapters = {}
    with atomic_dir(Path(out)) as tmp:
        base_origin, chat = _write_base(first, tmp / BASE_DIR)
        for name, (run, recipe) in runs.items():
            config = _write_adapter(methods.lora_adapter_dir(run, recipe), tmp / ADAPTERS_DIR / name, run)
            adapters[name] = {"run": str(run.root.resolve()), "method": recipe.method.name, "rank": lora_rank(config),
                              "collapsed": methods.of(recipe).lora_is_collapsed, "domain": domain_name(recipe.domain)}  # fmt: skip
        max_rank = vllm_max_rank(max(a["rank"] for a in adapters.values()))
        manifest = {"base": BASE_DIR, "base_origin": base_origin, "max_lora_rank": max_rank, "adapters": adapters,
                    "vllm_command": serve_command(adapters, max_rank)}  # fmt: skip
        (tmp / "bundle.json").write_text(json.dumps(manifest, indent=2) + "\n")
        write_readme(tmp, manifest, chat=chat)
    return Path(out)
