"""Keep large freed blocks in the process for reuse (glibc's malloc): cheaper big tensors on the CPU.

glibc serves every allocation above its mmap threshold (at most 32 MiB, adapted as blocks are freed) with
a fresh ``mmap`` and gives it back to the system on ``free``. Torch's CPU allocator calls ``malloc`` for
each tensor, so an update whose activations exceed 32 MiB (CPL's 96 pairs x 100 steps x 512 units: 39 MB
per layer) pays a page fault for every 4 KiB of every such tensor, every time: on one thread that costs as
much as the arithmetic on it. :func:`keep_freed_memory` raises the mmap threshold and the trim threshold
so that freed blocks stay in the heap and the next update reuses them. The numbers computed do not change;
the process keeps up to ``trim`` bytes of freed memory instead of returning it at once.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

__all__ = ["keep_freed_memory"]

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
_state = {"done": False}


def keep_freed_memory(mmap_threshold: int = 1 << 30, trim: int = 1 << 30) -> bool:
    """Serve allocations below ``mmap_threshold`` bytes (default 1 GiB) from the heap and keep up to ``trim``
    bytes (default 1 GiB) of freed memory at its top for reuse, through glibc's ``mallopt``.

    Called by the offline agents' ``fit`` and the online agents' ``learn``; once per process (later calls do
    nothing). Returns True when the setting is in force, False where the C library is not glibc (macOS,
    Windows, musl): there it changes nothing.
    """
    if _state["done"]:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = bool(mallopt(_M_MMAP_THRESHOLD, int(min(mmap_threshold, 2**31 - 1))))
    ok = bool(mallopt(_M_TRIM_THRESHOLD, int(min(trim, 2**31 - 1)))) and ok
    _state["done"] = ok
    return ok
