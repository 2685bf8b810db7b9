"""Small file utilities every module shares: atomic writes with the usual file modes, output checks.

* :class:`atomic_write`: a temp file next to the target, renamed onto it on success (a crash leaves the old
  file or the new one, never half of one). The file gets the usual mode (``0644`` under the common umask
  ``022``) unless ``private=True`` (``0600``: files that hold a secret, such as a token).
* :func:`check_writable_file`: before any work, whether an output file may be written (its folder can be
  made and written, it is not a folder, and it does not exist unless ``overwrite``).
* :func:`remove_temp_files`: leftovers of writes killed mid-way (``.NAME.*<suffix>``).
* :func:`portable_paths`: a result with the absolute paths under the working folder made relative, so that a
  committed JSON names no machine's folders.
* :func:`sha256_of`: a file's SHA-256 (remembered while its size and modification time stay the same).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

__all__ = ["atomic_write", "default_file_mode", "check_writable_file", "check_writable_dir", "portable_paths",
           "remove_temp_files", "sha256_of"]

_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def sha256_of(path: str | os.PathLike) -> str:
    """The SHA-256 hex digest of the file at ``path``, read in 1 MiB blocks. A digest is remembered for the
    process while the file's size and modification time stay the same (a config validated twice hashes a
    large dataset once)."""
    st = os.stat(path)
    key = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _SHA_CACHE[key] = h.hexdigest()
    return _SHA_CACHE[key]


def portable_paths(obj, base: str | os.PathLike | None = None):
    """A copy of ``obj`` (nested dicts, lists, tuples, strings) in which every string that is an absolute path
    inside ``base`` (default: the working folder) is made relative to it; other values are returned as they
    are. Results written to files go through it, so a committed ``*.json`` reads the same on every machine.

    Example: with ``base="/work/main"``, ``{"out": "/work/main/benchmarks/x", "y": "/tmp/z"}`` becomes
    ``{"out": "benchmarks/x", "y": "/tmp/z"}``.
    """
    root = Path(base if base is not None else os.getcwd()).resolve()

    def walk(v):
        if isinstance(v, str):
            if os.path.isabs(v):
                try:
                    return Path(v).relative_to(root).as_posix() or "."
                except ValueError:
                    return v
            return v
        if isinstance(v, dict):
            return {k: walk(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return type(v)(walk(x) for x in v)
        return v

    return walk(obj)


def default_file_mode() -> int:
    """``0o666`` minus the process umask (what ``open(path, "w")`` would give), e.g. ``0o644``."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


class atomic_write:
    """Context manager yielding a temporary path next to ``path``; on success it is renamed onto ``path``.

    A crash at any moment leaves either the old file or the new one, never a half-written file. The
    temp file is named ``.<name>.<random><suffix>`` (see :func:`remove_temp_files`). The final file has the
    usual mode (:func:`default_file_mode`), or ``0600`` with ``private=True``.
    """

    def __init__(self, path: str | os.PathLike, suffix: str = ".tmp", private: bool = False):
        self.path = Path(path)
        self.suffix = suffix
        self.private = private
        self.tmp: Path | None = None

    def __enter__(self) -> Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=self.suffix, dir=self.path.parent)
        os.close(fd)
        self.tmp = Path(tmp)
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        assert self.tmp is not None
        if exc_type is None:
            with open(self.tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.chmod(self.tmp, 0o600 if self.private else default_file_mode())
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)


def _nearest_existing(path: Path) -> Path:
    p = path.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_writable_dir(path: str | os.PathLike, what: str = "folder") -> Path:
    """Raise one ``ValueError`` unless ``path`` is (or can be made as) a writable folder; creates nothing."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{what} '{path}' is an existing file, not a folder; choose another path")
    base = _nearest_existing(path)
    if not base.is_dir():
        raise ValueError(f"{what} '{path}' cannot be made: '{base}' is a file; choose another path")
    if not _can_create_in(base):
        raise ValueError(f"{what} '{path}' is not writable (cannot create files in '{base}'); choose another path")
    return path


def _can_create_in(folder: Path) -> bool:
    """Whether a file can really be created in ``folder`` (``os.access`` says yes to root even on
    read-only or virtual file systems such as ``/proc``): create and delete a probe file."""
    if not os.access(folder, os.W_OK | os.X_OK):
        return False
    try:
        fd, probe = tempfile.mkstemp(prefix=".pbrl-write-probe.", dir=folder)
    except OSError:
        return False
    os.close(fd)
    os.unlink(probe)
    return True


def check_writable_file(path: str | os.PathLike, what: str = "output file", overwrite: bool = False,
                        flag: str = "--overwrite") -> Path:
    """Raise one ``ValueError`` unless ``path`` may be written: not a folder, not an existing file (unless
    ``overwrite``), and its folder exists or can be made and is writable. Creates nothing."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{what} '{path}' is a folder; give a file path")
    if path.exists() and not overwrite:
        raise ValueError(f"{what} '{path}' already exists; choose another path, or pass {flag} to replace it")
    check_writable_dir(path.parent if str(path.parent) else Path("."), f"the folder of {what}")
    return path


def remove_temp_files(folder: str | os.PathLike, names: tuple[str, ...] = ("",)) -> list[Path]:
    """Delete leftovers of :class:`atomic_write` calls killed mid-write in ``folder`` (files ``.NAME.*``
    for each prefix ``NAME`` in ``names``; ``""`` matches every dot-file with a random part). Returns them."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    out = []
    for n in names:
        for p in folder.glob(f".{n}*"):
            if p.is_file() and p.name.count(".") >= 2:
                p.unlink(missing_ok=True)
                out.append(p)
    return out
