"""`adapt` command line: a table from subcommand to stage (:data:`COMMANDS`; the stages: :data:`adapt.stages.STAGES`).

Each command reads its arguments, calls its stage through the stage table and prints what the stage
returns. Choices (export formats, merge targets, combination types, splits) come from the schema and
the format table, never written out here.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import get_args

from adapt.errors import AdaptError
from adapt.stages import STAGES


def _recipe(args):
    from adapt.checks import load_recipe

    return load_recipe(args.recipe, args.set)


def _run_dir(args, recipe) -> Path:
    out = Path(args.out) if args.out else Path("runs") / recipe.name
    if out.exists() and not out.is_dir():
        raise AdaptError(f"--out {out}: a file, not a directory; name a new or existing run directory")
    return out


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text[:40]!r}: give a whole number of examples, 1 or more (leave it out to score the whole split)")
    return value


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give comma-separated numbers, e.g. 0.5,0.5") from None


# --------------------------------------------------------------------------- commands
def cmd_validate(args) -> int:
    from adapt.combine_recipe import recipe_problems
    from adapt.errors import RecipeError
    from adapt.checks import collect_problems

    problems = []
    for path in args.recipes:
        recipe = None
        found = recipe_problems(path, args.set)  # a combine recipe (adapt merge --combine-recipe FILE)?
        if found is None:
            recipe, found = collect_problems(path, args.set)
        problems += found
        if not found:
            print(f"{path}: ok{_steps_note(recipe)}")
    if problems:
        raise RecipeError(problems)
    return 0


def _steps_note(recipe) -> str:
    head = None if recipe is None else recipe.train.sequence_head
    if head is not None and head.probe is not None:
        chosen = "the layer and C" if len(head.layers) > 1 else "C"
        return f" (train.sequence_head.probe: the head alone, {chosen} chosen by {head.probe.folds}-fold cross-validation; no training steps)"
    if recipe is None or recipe.train.max_steps != -1:
        return ""
    return f" (train.max_steps -1: {recipe.train.epochs} full epoch(s) over the training split; set max_steps to stop sooner)"


def cmd_train(args) -> int:
    recipe = _recipe(args)
    run_dir = STAGES["train"](recipe, _run_dir(args, recipe), resume=args.resume)
    print(f"adapter written to {run_dir / 'adapter'}")
    return 0


def cmd_run(args) -> int:
    recipe = _recipe(args)
    print(STAGES["pipeline"](recipe, _run_dir(args, recipe), resume=args.resume))
    return 0


def cmd_eval(args) -> int:
    from adapt.combine import MANIFEST

    if (Path(args.run_dir) / MANIFEST).is_file():  # written by `adapt merge RUN_A RUN_B ... --combine`
        if args.variant:
            raise AdaptError("--variant: a combined model is scored as one model per source domain; drop --variant")
        stage = STAGES["combine_eval"]
        print(stage.summary(stage(Path(args.run_dir), split=args.split, limit=args.limit)))
        return 0
    stage = STAGES["eval"]
    print(stage.summary(stage(Path(args.run_dir), split=args.split, limit=args.limit, only=args.variant)))
    return 0


def _combine_recipe(args):
    """The CombineRecipe of `adapt merge RUN_A RUN_B ... --combine ...` or of --combine-recipe FILE."""
    from adapt.combine_recipe import load_combine_recipe, validated

    if args.target and len(args.target) > 1:
        raise AdaptError("--target: several adapters combine into one model; pass one --target (nf4_dequant or fp16)")
    flags = {"runs": args.run_dirs or None, "combination_type": args.combine, "weights": args.weights, "density": args.density, "out": args.out, "target": (args.target or [None])[0]}
    given = {key: value for key, value in flags.items() if value is not None}
    if args.combine_recipe:
        if given:
            raise AdaptError(f"--combine-recipe {args.combine_recipe} holds runs, weights and the rest; drop the other arguments or edit the file")
        return load_combine_recipe(args.combine_recipe)
    missing = [flag for flag, value in (("--combine", args.combine), ("--weights", args.weights), ("--out", args.out)) if value is None]
    if missing:
        raise AdaptError(f"{', '.join(missing)}: combining several runs needs them, e.g. adapt merge RUN_A RUN_B --combine cat --weights 1,1 --out DIR")
    return validated(given, "adapt merge")


def cmd_merge(args) -> int:
    if args.combine_recipe or args.combine or len(args.run_dirs) > 1:
        out = STAGES["combine"](_combine_recipe(args))
        print(f"combined model written to {out}; score it on every source domain with `adapt eval {out}`")
        return 0
    if not args.run_dirs:
        raise AdaptError("adapt merge: name a run directory (or several with --combine, or --combine-recipe FILE)")
    extra = [flag for flag, value in (("--weights", args.weights), ("--density", args.density), ("--out", args.out)) if value is not None]
    if extra:
        raise AdaptError(f"{', '.join(extra)}: only for combining several runs (adapt merge RUN_A RUN_B --combine TYPE ...)")
    for path in STAGES["merge"](Path(args.run_dirs[0]), targets=args.target):
        print(f"merged model written to {path}")
    return 0


def cmd_quantize(args) -> int:
    for fmt, path in STAGES["quantize"](Path(args.run_dir), args.format, source=args.source, lora_base=args.lora_base).items():
        print(f"{fmt}: {path}")
    return 0


def cmd_predict(args) -> int:
    stage = STAGES["predict"]
    print(stage.summary(stage(Path(args.run_dir), Path(args.file), Path(args.out), variant=args.variant, limit=args.limit)))
    return 0


def cmd_serve(args) -> int:
    STAGES["serve"]([Path(p) for p in args.runs], host=args.host, port=args.port, share=args.share, auth=args.auth)
    return 0


def cmd_bundle(args) -> int:
    out = STAGES["bundle"]([Path(p) for p in args.run_dirs], Path(args.out), names=args.name)
    print(f"serving bundle written to {out}; serve it as {out / 'README.md'} says")
    return 0


def cmd_models(args) -> int:
    from adapt.models.listing import main_list

    return main_list()


# --------------------------------------------------------------------------- arguments
def _with_recipe(p: argparse.ArgumentParser, many: bool = False) -> None:
    if many:
        p.add_argument("recipes", nargs="+", metavar="RECIPE")
    else:
        p.add_argument("recipe", metavar="RECIPE")
    p.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE", help="override a recipe field, e.g. train.max_steps=20")


def _validate_args(p) -> None:
    _with_recipe(p, many=True)


def _train_args(p) -> None:
    _with_recipe(p)
    p.add_argument("--out", help="run directory (default runs/<recipe name>)")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in the run directory")


def _eval_args(p) -> None:
    from adapt.recipe import Split

    p.add_argument("run_dir")
    p.add_argument("--split", choices=get_args(Split))
    p.add_argument("--limit", type=_positive_int, help="score a seeded sample of N examples")
    p.add_argument("--variant", action="append", help="only these variants (base, adapter, merged/fp16, export/nf4, ...)")


def _merge_args(p) -> None:
    from adapt.combine_recipe import CombinationType
    from adapt.recipe import MergeTarget

    p.add_argument("run_dirs", nargs="*", metavar="RUN_DIR", help="one run, or several that share a base (with --combine)")
    p.add_argument("--target", action="append", choices=get_args(MergeTarget), help="default: the recipe's export.merge (combined: nf4_dequant)")
    p.add_argument("--combine", choices=get_args(CombinationType), help="peft add_weighted_adapter type: cat is exact; linear/ties/dare_ties need equal ranks")
    p.add_argument("--weights", type=_floats, help="one weight per run, comma-separated, e.g. 0.5,0.5")
    p.add_argument("--density", type=float, help="ties/dare_ties: fraction of each adapter's entries kept, e.g. 0.5")
    p.add_argument("--out", help="output directory of the combined model")
    p.add_argument("--combine-recipe", metavar="FILE", help="a YAML with runs, combination_type, weights, density, target, out")


def _quantize_args(p) -> None:
    from adapt.export.formats import FORMATS, LORA_BASE_TYPES
    from adapt.recipe import MergeTarget

    p.add_argument("run_dir")
    p.add_argument("--format", action="append", required=True, choices=list(FORMATS))
    p.add_argument(
        "--source", choices=get_args(MergeTarget), help="which merged model to quantize (default: the recipe's export.quantize_from, nf4_dequant)"
    )
    p.add_argument(
        "--lora-base", choices=LORA_BASE_TYPES, default="auto",
        help="gguf-lora: the base GGUF beside the adapter (auto: the GGUF the base came from when on disk, else f16)",
    )  # fmt: skip


def _predict_args(p) -> None:
    from adapt.tasks import TASKS

    p.add_argument("run_dir", metavar="RUN")
    p.add_argument("file", metavar="FILE", help="inputs in the format of the run's data (see below)")
    p.add_argument("--out", required=True, help="predictions file (JSONL, one object per input row), written when complete")
    p.add_argument("--variant", default="adapter", help="adapter (default), merged/<target> or export/<format>")
    p.add_argument("--limit", type=_positive_int, help="predict the first N rows only")
    kinds = "\n".join(textwrap.fill(f"{kind.title}: {kind.columns}", 100, initial_indent="  ", subsequent_indent="    ")
                      for kind in TASKS.values())  # fmt: skip
    p.epilog = "\n".join((
        textwrap.fill("FILE: a run on your own data (source: file or hub) reads it with the recipe's column mapping and "
                      "format; a run on built-in data reads a JSONL (or CSV, Parquet, ...) with these columns:", 100),
        kinds,
        textwrap.fill("With the gold column each output row also has `gold`, and the file's scores are printed. Each "
                      "output row: id (file:line), input, and the prediction: `prediction` and `scores` (each label's "
                      "log-likelihood) for classification, `tokens` and `tags` for token_classification, `prediction` "
                      "(the generated answer) for instruction.", 100),
    ))  # fmt: skip
    p.formatter_class = argparse.RawDescriptionHelpFormatter


def _serve_args(p) -> None:
    from adapt.serve import DEFAULT_HOST, DEFAULT_PORT

    p.add_argument("runs", nargs="*", default=["runs"], help="run directories, or folders holding them (default: runs/)")
    p.add_argument("--host", default=DEFAULT_HOST, help="bind address (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT)
    p.add_argument("--share", action="store_true", help="also open a public Gradio share link")
    p.add_argument("--auth", help="USER:PASSWORD: a login page (Gradio form login, not HTTP basic auth; repeated failures are slowed down)")


def _bundle_args(p) -> None:
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="runs trained on one base")
    p.add_argument("--out", required=True, help="bundle directory")
    p.add_argument("--name", action="append", help="served name of each run's adapter, in order (default: recipe names)")


@dataclass(frozen=True)
class Command:
    help: str
    arguments: Callable[[argparse.ArgumentParser], None] | None
    call: Callable[[argparse.Namespace], int]
    stages: tuple[str, ...] = ()
    """The stages (:data:`adapt.stages.STAGES`) the command runs."""


COMMANDS: dict[str, Command] = {
    "validate": Command("check recipes; exit 2 listing every problem", _validate_args, cmd_validate),
    "train": Command("train the recipe's adapter", _train_args, cmd_train, ("train",)),
    "run": Command("every stage the recipe asks for, then a summary table", _train_args, cmd_run, ("pipeline",)),
    "eval": Command("score base, adapter, merged and exported variants side by side", _eval_args, cmd_eval, ("eval", "combine_eval")),
    "merge": Command("merge the adapter into full weights; several runs: combine their adapters first", _merge_args, cmd_merge,
                     ("merge", "combine")),  # fmt: skip
    "quantize": Command("write quantized deliverables (of a merged model, or the adapter beside its base)", _quantize_args,
                        cmd_quantize, ("quantize",)),  # fmt: skip
    "predict": Command("predict a file of inputs with a run's adapter, merged model or export", _predict_args, cmd_predict,
                       ("predict",)),  # fmt: skip
    "serve": Command("the stakeholder demo (Gradio) over trained runs", _serve_args, cmd_serve, ("serve",)),
    "bundle": Command("base + adapters + README for multi-adapter serving (vLLM, TGI)", _bundle_args, cmd_bundle, ("bundle",)),
    "models": Command("list known model sources and what is cached", None, cmd_models),
}
assert all(stage in STAGES for command in COMMANDS.values() for stage in command.stages)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="adapt", description="Specialize small language models for a domain (QLoRA, MoE-LoRA, PEQA on NF4).")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, command in COMMANDS.items():
        p = sub.add_parser(name, help=command.help)
        if command.arguments is not None:
            command.arguments(p)
        p.set_defaults(func=command.call)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        return args.func(args)
    except AdaptError as exc:
        for line in str(exc).splitlines() or [type(exc).__name__]:
            print(f"error: {line}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
