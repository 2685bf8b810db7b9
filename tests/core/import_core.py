"""Import every module of pbrl (core, ``pbrl.agents``, ``pbrl.envs``, the app) with the optional extras'
packages made unimportable, and fail naming each module that needs one at import time.

Run as a script (``python tests/core/import_core.py``) by ``scripts/ci_core.sh`` in a core-only venv, and
by ``tests/core/test_dependencies.py`` in the full venv, where the extras' packages are blocked here.
"""

from __future__ import annotations

import importlib
import importlib.abc
import pkgutil
import sys

#: the top-level packages of pbrl's optional extras (pyproject.toml's [project.optional-dependencies]),
#: plus click, which no part of pbrl may import (typer 0.29 vendors its own and no longer depends on it)
BLOCKED = ("fastapi", "uvicorn", "httpx", "starlette", "pydantic", "ray", "dm_control", "minari", "ot",
           "wandb", "click", "playwright", "pytest")
#: modules that are an optional extra's own code, imported only after ``check_extra`` has named the extra
#: (the labelling server's FastAPI routes, imported by ``create_app``): module -> the one package it may
#: fail on here
EXTRA_MODULES = {"pbrl.label.routes": "fastapi"}


class _Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named '{name}' (blocked: an optional extra)", name=name)
        return None


def main() -> int:
    for name in list(sys.modules):
        if name.split(".")[0] in BLOCKED:
            del sys.modules[name]
    sys.meta_path.insert(0, _Block())
    import pbrl

    bad, extra_only = [], []
    names = ["pbrl"] + [m.name for m in pkgutil.walk_packages(pbrl.__path__, "pbrl.")]
    for pkg in ("pbrl.agents", "pbrl.envs"):
        mod = importlib.import_module(pkg)
        names += [pkg] + [m.name for m in pkgutil.walk_packages(mod.__path__, pkg + ".")]
    for name in sorted(set(names)):
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as e:
            if (e.name or "").split(".")[0] != EXTRA_MODULES.get(name):
                bad.append(f"{name}: {type(e).__name__}: {e}")
            else:
                extra_only.append(name)
        except Exception as e:  # noqa: BLE001 - report every failing module, not just the first
            bad.append(f"{name}: {type(e).__name__}: {e}")
    for line in bad:
        print("cannot import", line)
    n = len(set(names))
    print(f"{n - len(bad) - len(extra_only)} of {n} modules import without the extras "
          f"({len(extra_only)} are an extra's own code: {', '.join(extra_only) or 'none'})")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
