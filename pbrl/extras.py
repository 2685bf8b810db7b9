"""pbrl's optional extras: which package each one brings, and the one-line error when it is missing.

The core install (``pip install pbrl``) imports none of these packages. A feature that needs one calls
:func:`require` (to import it) or :func:`check_extra` (to fail before any work, without importing it);
both raise :class:`MissingExtra`, a ``ModuleNotFoundError`` whose message names the extra to install,
e.g. ``the labelling server needs the 'label' extra (fastapi is not installed): pip install 'pbrl[label]'``.
The CLI prints that message as its one error line (:mod:`pbrl.app.cli_errors`).
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

__all__ = ["EXTRA_OF", "MissingExtra", "require", "check_extra", "install_hint"]

#: top-level import name -> the extra of pyproject.toml that installs it
EXTRA_OF: dict[str, str] = {
    "fastapi": "label",
    "uvicorn": "label",
    "httpx": "label",
    "pydantic": "label",
    "ray": "sweep",
    "dm_control": "dmc",
    "minari": "offline",
    "ot": "offline",
    "wandb": "wandb",
}


def install_hint(extra: str) -> str:
    """``pip install 'pbrl[extra]'``."""
    return f"pip install 'pbrl[{extra}]'"


class MissingExtra(ModuleNotFoundError):
    """An optional extra's package is not installed. ``str(e)`` is the whole one-line message."""

    def __init__(self, package: str, what: str | None = None):
        top = package.split(".")[0]
        extra = EXTRA_OF.get(top)
        subject = what or "this"
        if extra is None:
            msg = f"{subject} needs the Python package '{top}', which is not installed: pip install {top}"
        else:
            msg = f"{subject} needs the '{extra}' extra ({top} is not installed): {install_hint(extra)}"
        super().__init__(msg, name=top)
        self.extra = extra


def check_extra(package: str, what: str | None = None) -> None:
    """Raise :class:`MissingExtra` unless ``package`` can be imported (checked without importing it)."""
    top = package.split(".")[0]
    try:
        found = importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise MissingExtra(top, what)


def require(module: str, what: str | None = None) -> ModuleType:
    """Import ``module`` (e.g. ``"ot"``, ``"ray.tune"``), or raise :class:`MissingExtra` naming its extra."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name is not None and e.name.split(".")[0] != module.split(".")[0]:
            raise  # the extra is installed but one of its own dependencies is not: keep the real error
        raise MissingExtra(module, what) from None
