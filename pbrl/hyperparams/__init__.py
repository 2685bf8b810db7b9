"""The per-task hyperparameter files, ``pbrl/hyperparams/<agent>.yml``: package data, no code.

They are data of the application layer, read by :mod:`pbrl.app.hyperparams` (which ``pbrl train`` and
``pbrl sweep`` use); they stay at this path because runs record it (``config.json``'s provenance names
``pbrl/hyperparams/<agent>.yml``) and the documentation points people to it.
"""
