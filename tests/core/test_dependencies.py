"""Every package pbrl imports is declared in pyproject.toml at the level where it is imported, and the core
imports without any extra (the plainest ``pip install`` once crashed on an undeclared ``import click``)."""

from __future__ import annotations

import ast
import functools
import importlib.metadata as md
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pbrl.extras import EXTRA_OF, MissingExtra, check_extra, require

tomllib = pytest.importorskip("tomllib")
ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("pbrl", "agents", "envs")


def _declared() -> dict[str, set[str]]:
    """``{"core" or extra name: {normalised distribution names}}`` from pyproject.toml."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    norm = lambda req: re.split(r"[\s\[<>=!~;]", req, maxsplit=1)[0].lower().replace("_", "-")  # noqa: E731
    out = {"core": {norm(r) for r in project["dependencies"]}}
    for extra, reqs in project["optional-dependencies"].items():
        out[extra] = {norm(r) for r in reqs}
    return out


@functools.cache
def _packages() -> dict[str, list[str]]:
    """``importlib.metadata.packages_distributions()``, read once: it scans every installed distribution."""
    return md.packages_distributions()


@functools.cache
def _imports() -> dict[str, dict[str, bool]]:
    """``{top-level module: {file: imported at module level}}`` for every non-stdlib, non-pbrl import."""
    found: dict[str, dict[str, bool]] = {}
    for src in SOURCES:
        for f in (ROOT / src).rglob("*.py"):
            tree = ast.parse(f.read_text())
            top_level = {id(n) for n in tree.body}
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top in sys.stdlib_module_names or top == "pbrl":
                        continue
                    rel = str(f.relative_to(ROOT))
                    found.setdefault(top, {})[rel] = found.get(top, {}).get(rel, False) or id(node) in top_level
    return found


def _distribution(module: str) -> str:
    dists = _packages().get(module)
    assert dists, f"no installed distribution provides the module '{module}'"
    return dists[0].lower().replace("_", "-")


def test_every_import_is_declared_at_its_level():
    declared = _declared()
    every = set().union(*declared.values())
    for module, files in _imports().items():
        if not _packages().get(module):  # an extra this venv lacks (the sweep extra's ray)
            assert EXTRA_OF.get(module) in declared, f"'{module}' is imported by {sorted(files)}, not installed, not an extra"
            assert not any(files.values()), f"'{module}' of an extra is imported at module level by {sorted(files)}"
            continue
        dist = _distribution(module)
        assert dist in every, f"'{module}' ({dist}) is imported by {sorted(files)} but not declared in pyproject.toml"
        module_level = sorted(f for f, top in files.items() if top)
        if module_level and not f"{module_level}".startswith("['pbrl/label/"):
            assert dist in declared["core"], f"'{module}' is imported at module level by {module_level}: a core dependency"


def test_every_extra_package_is_declared_in_its_extra():
    declared = _declared()
    for module, extra in EXTRA_OF.items():
        if extra == "wandb" and "wandb" not in declared:
            continue
        assert extra in declared, f"EXTRA_OF names the extra '{extra}', which pyproject.toml lacks"
        try:
            dist = _distribution(module)
        except AssertionError:
            continue  # not installed here: the name is checked by the core-only CI check instead
        assert dist in declared[extra], f"'{module}' ({dist}) should be in the '{extra}' extra"


def test_click_is_never_imported():
    """typer 0.29 vendors click and no longer depends on it: an `import click` crashes the core install."""
    assert "click" not in _imports()


def test_core_modules_import_without_the_extras():
    res = subprocess.run([sys.executable, str(ROOT / "tests/core/import_core.py")], capture_output=True, text=True,
                         cwd=ROOT, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr


def test_missing_extra_names_the_extra(monkeypatch):
    e = MissingExtra("fastapi", "the labelling server")
    assert isinstance(e, ModuleNotFoundError)
    assert str(e) == "the labelling server needs the 'label' extra (fastapi is not installed): pip install 'pbrl[label]'"
    import pbrl.extras

    real = pbrl.extras.importlib.util.find_spec
    monkeypatch.setattr(pbrl.extras.importlib.util, "find_spec", lambda n, *a: None if n == "ot" else real(n, *a))
    with pytest.raises(MissingExtra, match=r"PEARL needs the 'offline' extra .*pip install 'pbrl\[offline\]'"):
        check_extra("ot.gromov", "PEARL")
    with pytest.raises(MissingExtra, match="pip install no_such_pkg_xyz"):
        require("no_such_pkg_xyz")
    assert require("json").dumps([1]) == "[1]"
