"""Evaluation while training: :class:`PbrlEvalCallback`, which now lives in :mod:`pbrl.callbacks` (one
evaluation callback for online and offline training); kept importable from here."""

from __future__ import annotations

from pbrl.callbacks import PbrlEvalCallback

__all__ = ["PbrlEvalCallback"]
