"""How every ``pbrl`` sub-command reports a problem: one line ``error: <what is wrong and the fix>`` and
exit code 2, never a traceback, unless ``pbrl --debug ...`` (or ``PBRL_DEBUG=1``) asks for one.

Bad input surfaces as ``ValueError`` (pbrl's own checks), ``OSError`` (a missing, unreadable or
unwritable path; h5py's truncated or foreign files) or a missing optional package. Anything else is a
bug and keeps its traceback.
"""

from __future__ import annotations

import os

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from pbrl.extras import MissingExtra

__all__ = ["ErrorHandlingGroup", "fail", "error_message", "set_debug", "debug_enabled", "USER_ERRORS"]

#: exceptions the CLI prints as one ``error:`` line with exit code 2 (bad input, files, missing packages)
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError, ModuleNotFoundError)
_err_console = Console(stderr=True, soft_wrap=True, highlight=False)
_state = {"debug": False}


def set_debug(on: bool) -> None:
    """Show full tracebacks of errors (``pbrl --debug``) when ``on``; otherwise one error line."""
    _state["debug"] = bool(on)


def debug_enabled() -> bool:
    """Whether errors show their traceback: ``pbrl --debug`` or the environment variable ``PBRL_DEBUG`` (not
    empty, not ``0``)."""
    return _state["debug"] or os.environ.get("PBRL_DEBUG", "") not in ("", "0")


def error_message(e: BaseException) -> str:
    """One line naming the problem (and, where pbrl knows it, the fix)."""
    if isinstance(e, MissingExtra):
        return " ".join(str(e).split())
    if isinstance(e, ModuleNotFoundError):
        return " ".join(str(MissingExtra(e.name or "?")).split())
    if isinstance(e, OSError) and e.strerror is None and e.args:  # raised with pbrl's own message
        return " ".join(str(e.args[0]).split())
    if isinstance(e, OSError):
        where = f" '{e.filename}'" if getattr(e, "filename", None) else ""
        what = e.strerror or str(e)
        if isinstance(e, FileNotFoundError):
            return f"no such file or folder{where}; check the path"
        if isinstance(e, PermissionError):
            return f"permission denied{where}; choose a path you can write to"
        if isinstance(e, IsADirectoryError):
            return f"{where.strip()} is a folder; give a file path"
        if "unable to" in what.lower() or "truncated" in what.lower() or "signature" in what.lower():
            return f"cannot read an HDF5 file{where}: {what}; the file is damaged or not HDF5, write it again"
        return f"{what}{where}; check the path"
    msg = str(e) or type(e).__name__
    return " ".join(msg.split())


def fail(msg: str, code: int = 2) -> typer.Exit:
    """Print ``error: msg`` on stderr and return the ``typer.Exit`` to raise."""
    _err_console.print(f"[red]error:[/red] {escape(' '.join(str(msg).split()))}")
    return typer.Exit(code)


class ErrorHandlingGroup(TyperGroup):
    """A Typer group whose sub-commands turn user errors into one line and exit code 2."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort):
            raise
        except BrokenPipeError:  # output piped into `head` and the like: nothing to report
            raise typer.Exit(0) from None
        except USER_ERRORS as e:
            if debug_enabled():
                raise
            raise fail(error_message(e)) from None
