"""The import contract (docs/architecture.md, "The layers"), read from the source with ``ast``.

* Layers point one way: the core (``pbrl.*`` except ``pbrl.app`` and ``pbrl.label``) < ``pbrl.agents`` /
  ``pbrl.envs`` < the application (``pbrl.app``, ``pbrl.label``). No module imports a higher layer, at module
  level, inside a function, or for type checking only.
* No import cycles between modules at module level (imports under ``if TYPE_CHECKING:`` do not run and are
  left out).
* Imports of pbrl's own modules sit at the top of modules: fewer than 20 remain inside functions in
  ``pbrl/``, ``agents/`` and ``envs/``, each with a ``# lazy: <reason>`` comment on its line.

That no file under ``scripts/`` imports another script is ``tests/scripts/test_scripts_independent.py``'s rule.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: source folder -> the package it installs as (pyproject.toml's package-dir)
PACKAGES = {"pbrl": "pbrl", "agents": "pbrl.agents", "envs": "pbrl.envs"}
APP = ("pbrl.app", "pbrl.label")
MIDDLE = ("pbrl.agents", "pbrl.envs")
LAYER_NAMES = ("core", "agents/envs", "app")
MAX_LAZY = 20


def _within(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def layer(module: str) -> int:
    """0 = core, 1 = ``pbrl.agents`` / ``pbrl.envs``, 2 = the application."""
    return 2 if _within(module, APP) else 1 if _within(module, MIDDLE) else 0


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the imported module (a submodule when ``from package import submodule``)
    line: int
    text: str  # the statement's source lines
    in_function: bool
    type_checking: bool


def _module_files() -> dict[str, Path]:
    out = {}
    for folder, package in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join([package, *parts])] = path
    return out


MODULES = _module_files()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The pbrl modules an import statement loads (``from pkg import sub`` names the submodule)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == "pbrl"]
    if node.level:
        base = module.split(".")
        if MODULES.get(module, Path()).name != "__init__.py":
            base = base[:-1]
        base = base[: len(base) - (node.level - 1)]
        name = ".".join(base + ([node.module] if node.module else []))
    else:
        name = node.module or ""
    if name.split(".")[0] != "pbrl":
        return []
    subs = [f"{name}.{a.name}" for a in node.names if f"{name}.{a.name}" in MODULES]
    return subs if len(subs) == len(node.names) else [name, *subs]


def _imports(module: str, path: Path) -> list[Import]:
    lines = path.read_text().splitlines()
    out: list[Import] = []

    def visit(node: ast.AST, in_function: bool, type_checking: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                for t in _targets(module, child):
                    text = "\n".join(lines[child.lineno - 1: child.end_lineno])
                    out.append(Import(module, t, child.lineno, text, in_function, type_checking))
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                visit(child, True, type_checking)
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                for st in child.body:
                    visit(ast.Module(body=[st], type_ignores=[]), in_function, True)
                for st in child.orelse:
                    visit(ast.Module(body=[st], type_ignores=[]), in_function, type_checking)
            else:
                visit(child, in_function, type_checking)

    visit(ast.parse(path.read_text()), False, False)
    return out


IMPORTS = [imp for module, path in MODULES.items() for imp in _imports(module, path)]


def _where(imp: Import) -> str:
    return f"{MODULES[imp.source].relative_to(ROOT)}:{imp.line}: {' '.join(imp.text.split())}"


def test_the_modules_are_found():
    assert {"pbrl.segments", "pbrl.app.cli", "pbrl.app.config", "pbrl.label.server", "pbrl.agents.registry",
            "pbrl.envs.registry", "pbrl.reward_models.transformer"} <= set(MODULES)
    assert layer("pbrl.segments") == 0 and layer("pbrl.reward_models.ensemble") == 0
    assert layer("pbrl.agents.pebble") == 1 and layer("pbrl.envs") == 1
    assert layer("pbrl.app.cli") == 2 and layer("pbrl.label.server") == 2
    assert any(i.in_function for i in IMPORTS) and any(not i.in_function for i in IMPORTS)


def test_no_module_imports_a_higher_layer():
    bad = [f"{_where(i)}  ({LAYER_NAMES[layer(i.source)]} imports {LAYER_NAMES[layer(i.target)]} {i.target})"
           for i in IMPORTS if layer(i.target) > layer(i.source)]
    assert not bad, "imports pointing up a layer:\n" + "\n".join(bad)


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), or a module importing itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in edges.get(v, ()):
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            strong(v)
    return out


def module_graph() -> dict[str, set[str]]:
    """Module-level imports between pbrl's modules (what runs when a module is imported)."""
    edges: dict[str, set[str]] = {m: set() for m in MODULES}
    for i in IMPORTS:
        if not i.in_function and not i.type_checking and i.target in MODULES:
            edges[i.source].add(i.target)
    return edges


def test_no_import_cycles_at_module_level():
    cycles = _cycles(module_graph())
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_the_cycle_finder_finds_cycles():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"a"}}) == [["a"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_few_function_level_imports_of_pbrl_each_with_a_reason():
    lazy = {(i.source, i.line): i for i in IMPORTS if i.in_function}
    unexplained = [_where(i) for i in lazy.values() if not re.search(r"# lazy: \S", i.text)]
    assert not unexplained, ("imports of pbrl's modules inside functions without a '# lazy: <reason>' comment "
                             "(move them to the module top):\n" + "\n".join(unexplained))
    assert len(lazy) < MAX_LAZY, f"{len(lazy)} function-level imports of pbrl's modules (at most {MAX_LAZY - 1}):\n" \
        + "\n".join(_where(i) for i in lazy.values())


def test_the_command_line_loads_without_torch_or_gymnasium():
    """What the CLI's lazy imports are for: ``pbrl --help`` loads the command line, not torch, SB3 or the
    task suites."""
    code = "import sys, pbrl.app.cli; print(sorted(m for m in ('torch', 'stable_baselines3', 'gymnasium') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
