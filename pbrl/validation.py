"""One validation helper for integers, shared by every module that checks user input.

``check_int`` accepts Python and NumPy integers (``np.int64`` from an array or a config), rejects ``bool``
(``True`` is an ``int`` in Python but never a count) and floats, and checks a lower (and optional upper)
bound, raising one ``ValueError`` that names the value and what is allowed.
"""

from __future__ import annotations

import numbers
from typing import Any

__all__ = ["check_int", "is_int"]


def is_int(value: Any) -> bool:
    """Whether ``value`` is an integer (Python or NumPy), not a ``bool``."""
    import numpy as np

    return isinstance(value, (numbers.Integral, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_int(name: str, value: Any, minimum: int | None = None, maximum: int | None = None) -> int:
    """Return ``int(value)`` after checking it is an integer in ``[minimum, maximum]``; else one ``ValueError``.

    >>> check_int("budget", np.int64(3), 0)
    3
    """
    if not is_int(value):
        raise ValueError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    v = int(value)
    if minimum is not None and v < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {v}")
    if maximum is not None and v > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {v}")
    return v
