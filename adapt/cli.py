"""`adapt` command line: a thin table from subcommand to function."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from adapt.errors import AdaptError


def _recipe(args):
    from adapt.recipe import load_recipe

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


def cmd_validate(args) -> int:
    from adapt.combine import recipe_problems
    from adapt.errors import RecipeError
    from adapt.recipe import collect_problems

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
    if recipe is None or recipe.train.max_steps != -1:
        return ""
    return f" (train.max_steps -1: {recipe.train.epochs} full epoch(s) over the training split; set max_steps to stop sooner)"


def cmd_train(args) -> int:
    from adapt import train

    recipe = _recipe(args)
    run_dir = train.run(recipe, _run_dir(args, recipe), resume=args.resume)
    print(f"adapter written to {run_dir / 'adapter'}")
    return 0


def cmd_eval(args) -> int:
    from adapt import eval as evaluate

    if (Path(args.run_dir) / "combine.json").is_file():  # written by `adapt merge RUN_A RUN_B ... --combine`
        from adapt import combine

        if args.variant:
            raise AdaptError("--variant: a combined model is scored as one model per source domain; drop --variant")
        print(combine.summary_table(combine.evaluate(Path(args.run_dir), split=args.split, limit=args.limit)))
        return 0
    result = evaluate.run(Path(args.run_dir), split=args.split, limit=args.limit, only=args.variant)
    print(evaluate.summary_table(result))
    return 0


def _combine_recipe(args):
    """The CombineRecipe of `adapt merge RUN_A RUN_B ... --combine ...` or of --combine-recipe FILE."""
    from adapt import combine

    if args.target and len(args.target) > 1:
        raise AdaptError("--target: several adapters combine into one model; pass one --target (nf4_dequant or fp16)")
    flags = {"runs": args.run_dirs or None, "combination_type": args.combine, "weights": args.weights, "density": args.density, "out": args.out, "target": (args.target or [None])[0]}
    given = {key: value for key, value in flags.items() if value is not None}
    if args.combine_recipe:
        if given:
            raise AdaptError(f"--combine-recipe {args.combine_recipe} holds runs, weights and the rest; drop the other arguments or edit the file")
        return combine.load_combine_recipe(args.combine_recipe)
    missing = [flag for flag, value in (("--combine", args.combine), ("--weights", args.weights), ("--out", args.out)) if value is None]
    if missing:
        raise AdaptError(f"{', '.join(missing)}: combining several runs needs them, e.g. adapt merge RUN_A RUN_B --combine cat --weights 1,1 --out DIR")
    return combine.validated(given, "adapt merge")


def cmd_merge(args) -> int:
    from adapt import merge

    if args.combine_recipe or args.combine or len(args.run_dirs) > 1:
        from adapt import combine

        out = combine.run(_combine_recipe(args))
        print(f"combined model written to {out}; score it on every source domain with `adapt eval {out}`")
        return 0
    if not args.run_dirs:
        raise AdaptError("adapt merge: name a run directory (or several with --combine, or --combine-recipe FILE)")
    extra = [flag for flag, value in (("--weights", args.weights), ("--density", args.density), ("--out", args.out)) if value is not None]
    if extra:
        raise AdaptError(f"{', '.join(extra)}: only for combining several runs (adapt merge RUN_A RUN_B --combine TYPE ...)")
    for path in merge.run(Path(args.run_dirs[0]), targets=args.target):
        print(f"merged model written to {path}")
    return 0


def cmd_quantize(args) -> int:
    from adapt import quantize

    for fmt, path in quantize.run(Path(args.run_dir), args.format, source=args.source, lora_base=args.lora_base).items():
        print(f"{fmt}: {path}")
    return 0


def cmd_run(args) -> int:
    from adapt.pipeline import run_all

    recipe = _recipe(args)
    print(run_all(recipe, _run_dir(args, recipe), resume=args.resume))
    return 0


def cmd_serve(args) -> int:
    from adapt.serve import launch

    launch([Path(p) for p in args.runs], host=args.host, port=args.port, share=args.share, auth=args.auth)
    return 0


def cmd_bundle(args) -> int:
    from adapt import bundle

    out = bundle.run([Path(p) for p in args.run_dirs], Path(args.out), names=args.name)
    print(f"serving bundle written to {out}; serve it as {out / 'README.md'} says")
    return 0


def cmd_models(args) -> int:
    from adapt.models import main_list

    return main_list()


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give comma-separated numbers, e.g. 0.5,0.5") from None


def build_parser() -> argparse.ArgumentParser:
    from adapt.export.formats import FORMATS, LORA_BASE_TYPES

    parser = argparse.ArgumentParser(prog="adapt", description="Specialize small language models for a domain (QLoRA, MoE-LoRA, PEQA on NF4).")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_recipe(p, many=False):
        if many:
            p.add_argument("recipes", nargs="+", metavar="RECIPE")
        else:
            p.add_argument("recipe", metavar="RECIPE")
        p.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE", help="override a recipe field, e.g. train.max_steps=20")

    p = sub.add_parser("validate", help="check recipes; exit 2 listing every problem")
    with_recipe(p, many=True)
    p.set_defaults(func=cmd_validate)

    for name, func, helptext in (("train", cmd_train, "train the recipe's adapter"), ("run", cmd_run, "every stage the recipe asks for, then a summary table")):
        p = sub.add_parser(name, help=helptext)
        with_recipe(p)
        p.add_argument("--out", help="run directory (default runs/<recipe name>)")
        p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in the run directory")
        p.set_defaults(func=func)

    p = sub.add_parser("eval", help="score base, adapter, merged and exported variants side by side")
    p.add_argument("run_dir")
    p.add_argument("--split", choices=["validation", "test"])
    p.add_argument("--limit", type=_positive_int, help="score a seeded sample of N examples")
    p.add_argument("--variant", action="append", help="only these variants (base, adapter, merged/fp16, export/nf4, ...)")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("merge", help="merge the adapter into full weights; several runs: combine their adapters first")
    p.add_argument("run_dirs", nargs="*", metavar="RUN_DIR", help="one run, or several that share a base (with --combine)")
    p.add_argument("--target", action="append", choices=["nf4_dequant", "fp16"], help="default: the recipe's export.merge (combined: nf4_dequant)")
    p.add_argument("--combine", choices=["linear", "cat", "ties", "dare_ties"], help="peft add_weighted_adapter type: cat is exact; linear/ties/dare_ties need equal ranks")
    p.add_argument("--weights", type=_floats, help="one weight per run, comma-separated, e.g. 0.5,0.5")
    p.add_argument("--density", type=float, help="ties/dare_ties: fraction of each adapter's entries kept, e.g. 0.5")
    p.add_argument("--out", help="output directory of the combined model")
    p.add_argument("--combine-recipe", metavar="FILE", help="a YAML with runs, combination_type, weights, density, target, out")
    p.set_defaults(func=cmd_merge)

    p = sub.add_parser("quantize", help="write quantized deliverables of a merged model")
    p.add_argument("run_dir")
    p.add_argument("--format", action="append", required=True, choices=list(FORMATS))
    p.add_argument(
        "--source", choices=["nf4_dequant", "fp16"], help="which merged model to quantize (default: the recipe's export.quantize_from, nf4_dequant)"
    )
    p.add_argument(
        "--lora-base", choices=LORA_BASE_TYPES, default="auto",
        help="gguf-lora: the base GGUF beside the adapter (auto: the GGUF the base came from when on disk, else f16)",
    )  # fmt: skip
    p.set_defaults(func=cmd_quantize)

    p = sub.add_parser("serve", help="the stakeholder demo (Gradio) over trained runs")
    p.add_argument("runs", nargs="*", default=["runs"], help="run directories, or folders holding them (default: runs/)")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--share", action="store_true", help="also open a public Gradio share link")
    p.add_argument("--auth", help="USER:PASSWORD: a login page (Gradio form login, not HTTP basic auth; repeated failures are slowed down)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("bundle", help="base + adapters + README for multi-adapter serving (vLLM, TGI)")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="runs trained on one base")
    p.add_argument("--out", required=True, help="bundle directory")
    p.add_argument("--name", action="append", help="served name of each run's adapter, in order (default: recipe names)")
    p.set_defaults(func=cmd_bundle)

    p = sub.add_parser("models", help="list known model sources and what is cached")
    p.set_defaults(func=cmd_models)
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
