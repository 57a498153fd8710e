"""The package's shape: adapt/'s import graph has no circle, and no stage imports another stage.

The graph is read from the source with ``ast`` (nothing is imported): every ``import adapt...`` and
``from adapt... import ...`` anywhere in a module (function bodies and ``TYPE_CHECKING`` blocks too),
relative imports resolved against the module's package, and ``from package import submodule`` read as
an edge to the submodule. An edge goes to the module a statement names, not to the packages above it
(Python runs those ``__init__`` files first, but a package importing its own submodules is no circle).
``Lazy("module:function")`` references (the stage, method and format tables) are not imports.

The stages are the modules of :data:`adapt.stages.STAGES`. Where method names may appear is checked
by the AST scan in tests/methods/test_methods_registry.py.
"""

from __future__ import annotations

import ast
import graphlib
import shlex
from pathlib import Path

import pytest

from adapt.stages import STAGES

REPO = Path(__file__).resolve().parents[1]
ENTRY_POINTS = {"adapt.cli"}
"""The command line sits above the stages (a table from subcommand to stage); it alone may import one."""


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(package_dir: Path) -> dict[str, set[str]]:
    """Module -> the modules of the same package it imports (by dotted name), from the source of ``package_dir``."""
    root = package_dir.parent
    files = {_module_name(path, root): path for path in sorted(package_dir.rglob("*.py"))}
    top = package_dir.name

    def known(name: str) -> str | None:
        """``name`` or the closest module above it (``adapt.models.load_base`` -> ``adapt.models``)."""
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        targets: list[str] = []
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    above = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(above + ([node.module] if node.module else []))
                targets += [f"{base}.{alias.name}" if f"{base}.{alias.name}" in files else base for alias in node.names]
        graph[module] = {t for t in map(known, targets) if t and t.split(".")[0] == top and t != module}
    return graph


def _path(graph: dict[str, set[str]], start: str, goal: str) -> list[str]:
    """One import chain from ``start`` to ``goal`` (breadth first), for the failure message."""
    came_from = {start: start}
    todo = [start]
    for module in todo:
        for target in sorted(graph[module]):
            if target not in came_from:
                came_from[target] = module
                todo.append(target)
    if goal not in came_from:
        return []
    chain = [goal]
    while chain[-1] != start:
        chain.append(came_from[chain[-1]])
    return chain[::-1]


GRAPH = import_graph(REPO / "adapt")
STAGE_MODULES = {stage.run.target.partition(":")[0] for stage in STAGES.values()}


def test_the_graph_reads_every_import_form(tmp_path):
    """Function-level, relative, ``from package import submodule``, dotted and aliased imports all become edges."""
    pkg = tmp_path / "pkg"
    for path, code in {
        "__init__.py": "from pkg import sub\n",
        "a.py": "def f():\n    from .sub import deep\n    import pkg.b as b\n    return deep, b\n",
        "b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import f\nimport os\n",
        "sub/__init__.py": "from ..b import x\n",
        "sub/deep.py": "from . import helper\nfrom pkg.sub.helper import name\nimport pkg.missing.thing\n",
        "sub/helper.py": "",
    }.items():
        (pkg / path).parent.mkdir(parents=True, exist_ok=True)
        (pkg / path).write_text(code)
    assert import_graph(pkg) == {
        "pkg": {"pkg.sub"},
        "pkg.a": {"pkg.sub.deep", "pkg.b"},
        "pkg.b": {"pkg.a"},
        "pkg.sub": {"pkg.b"},
        "pkg.sub.deep": {"pkg.sub.helper", "pkg"},
        "pkg.sub.helper": set(),
    }
    with pytest.raises(graphlib.CycleError):
        graphlib.TopologicalSorter(import_graph(pkg)).prepare()


def test_every_module_and_stage_is_read():
    assert len(GRAPH) == len(list((REPO / "adapt").rglob("*.py")))
    assert STAGE_MODULES <= set(GRAPH), sorted(STAGE_MODULES - set(GRAPH))
    assert {"adapt.train", "adapt.eval", "adapt.merge", "adapt.quantize"} <= STAGE_MODULES
    assert any(GRAPH[stage] for stage in STAGE_MODULES)  # the stages' library imports were found


def test_no_import_circle():
    try:
        graphlib.TopologicalSorter(GRAPH).prepare()
    except graphlib.CycleError as err:
        # graphlib lists each module before the ones that import it: reversed, each imports the next
        pytest.fail(f"import circle in adapt/: {' -> '.join(reversed(err.args[1]))}")


def test_no_stage_imports_another_stage():
    """Not directly and not through the library: the stages stand side by side on the library layer."""
    chains = [
        " -> ".join(chain)
        for stage in sorted(STAGE_MODULES)
        for other in sorted(STAGE_MODULES - {stage})
        if (chain := _path(GRAPH, stage, other))
    ]
    assert not chains, "a stage imports another stage:\n" + "\n".join(chains)


def test_only_the_command_line_imports_a_stage():
    """The library never imports a stage; the CLI (and `adapt run` through adapt.stages.STAGES) calls them."""
    edges = [f"{module} -> {target}" for module, targets in sorted(GRAPH.items()) if module not in ENTRY_POINTS
             for target in sorted(targets & STAGE_MODULES) if module not in STAGE_MODULES]  # fmt: skip
    assert not edges, "a library module imports a stage:\n" + "\n".join(edges)


def test_the_method_name_scan_is_kept():
    """tests/methods/test_methods_registry.py's AST scan (no method name outside adapt/methods/) and its self-check."""
    tree = ast.parse((REPO / "tests" / "methods" / "test_methods_registry.py").read_text(encoding="utf-8"))
    tests = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert {"test_no_module_outside_methods_compares_or_looks_up_a_method_by_name", "test_the_scan_finds_the_patterns_it_forbids"} <= tests


# ----------------------------------------------------------------------------- the test command
def _readme_test_command() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = text.split("Run the tests:", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    (command,) = block.strip().splitlines()
    return command


def test_ci_runs_exactly_the_readme_test_command_with_every_marker():
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    command = _readme_test_command()
    assert ci.rstrip("\n").splitlines()[-1] == command
    assert "set -euo pipefail" in ci  # any non-zero exit fails CI, pytest's 5 ("no tests ran") too
    pytest_args = shlex.split(command.rpartition("&&")[2])
    assert pytest_args[:3] == ["python", "-m", "pytest"] and "--all-markers" in pytest_args
    assert not any(arg.startswith(("-m", "-k")) for arg in pytest_args[3:])  # nothing left out
