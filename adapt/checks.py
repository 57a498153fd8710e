"""What a recipe names must exist where it runs: data folders and files, the domain card, the model source, the
experiment trackers, the launch config.

:mod:`adapt.recipe` is the pure schema (and its own rules); these checks read the environment, cheaply
(listings and small files, never a model load or the network), so `adapt validate` reports in seconds what
`adapt train` would find only after loading a model. :func:`load_recipe` is the recipe the command line
runs: schema, rules and environment, every problem at once.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from adapt.data.sources import FileData, HubData
from adapt.errors import AdaptError, RecipeError, short
from adapt.recipe import Recipe, read_recipe


def collect_problems(path: str | Path, overrides: list[str] | None = None) -> tuple[Recipe | None, list[str]]:
    """The recipe in ``path`` (None when it does not parse) and every problem: the file's, then the environment's."""
    recipe, problems = read_recipe(path, overrides)
    if recipe is None:
        return None, problems
    return recipe, problems + environment_problems(str(path), recipe)


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    """The recipe in ``path``, checked; RecipeError listing every problem otherwise."""
    recipe, problems = collect_problems(path, overrides)
    if problems:
        raise RecipeError(problems)
    assert recipe is not None
    return recipe


def environment_problems(source: str, recipe: Recipe) -> list[str]:
    """Each part's data, the domain card, the model source, the trackers and ``train.distributed``'s config file,
    checked where this runs."""
    from adapt.training.launch import config_problems
    from adapt.models.sources import describe_source_problem

    data = recipe.data
    parts = {"data": data} if data.source != "mixture" else {f"data.parts.{n}": p for n, p in data.parts.items()}
    problems = []
    for where, part in parts.items():
        own = isinstance(part, (FileData, HubData))
        problems += _own_data_problems(source, where, part) if own else _folder_problems(source, where, part)
    problems += domain_problems(source, recipe)
    model_problem = describe_source_problem(recipe.model.source)
    if model_problem:
        problems.append(f"{source}: model.source: {model_problem}")
    return problems + tracker_problems(source, recipe) + config_problems(source, recipe)


def domain_problems(source: str, recipe: Recipe) -> list[str]:
    """The recipe's domain card found and valid for its data (a name in domains/, a card file, a view)."""
    from adapt.domains import recipe_domain_card

    try:
        recipe_domain_card(recipe)
    except AdaptError as exc:
        lines = str(exc).splitlines()
        return [f"{source}: {line}" if line.startswith("domain") else f"{source}: domain: {line}" for line in lines]
    return []


def tracker_problems(source: str, recipe: Recipe) -> list[str]:
    """Each tracker of ``train.report_to`` is installed here (found, not imported: W&B and MLflow import slowly)."""
    return [
        f"{source}: train.report_to: {name} is not installed; `pip install {name}`, or leave it out of train.report_to"
        for name in recipe.train.report_to
        if importlib.util.find_spec(name) is None
    ]


def _folder_problems(source: str, where: str, part) -> list[str]:
    """A built-in dataset: its folder exists (resolved once) and holds what the reader reads."""
    from adapt.data_checks import data_problems

    root = part.resolved_path()
    problems = []
    try:
        missing = root is not None and not root.exists()
    except OSError as exc:  # a name too long for the file system
        return [f"{source}: {where}.path: {short(part.path, 80)!r} cannot be a path ({exc.strerror}); fix it"]
    if missing:
        problems.append(
            f"{source}: {where}.path: {part.path!r} does not exist (resolved to {root}); "
            "point it at the dataset folder or set ADAPT_DATA_DIR"
        )
    if part.path is None and part.hub_id is None:
        problems.append(f"{source}: {where}: set {where}.path (a local folder) or {where}.hub_id (a Hub dataset)")
    if root is not None and not missing:
        problems += [f"{source}: {line}" for line in data_problems(where, part, root)]
    return problems


def _own_data_problems(source: str, where: str, part: FileData | HubData) -> list[str]:
    """A user's own files (read: they are usually small) or Hub dataset (checked as a config only)."""
    from adapt.data.own import source_problems

    return [f"{source}: {line}" for line in source_problems(part, where)]
