"""pbrl's application layer: what turns the library into runs.

Configs and their validation (:mod:`.config`, :mod:`.config_feedback`, :mod:`.config_resolve`, the per-task
hyperparameter files' reader :mod:`.hyperparams`), run directories and exact resume (:mod:`.run_dir`,
:mod:`.runs`, :mod:`.train_common`, :mod:`.train_online`, :mod:`.train_offline`), sweeps (:mod:`.sweep`),
reports (:mod:`.report`), W&B tracking (:mod:`.tracking`), SB3 zips trained elsewhere (:mod:`.sb3_zip`),
videos (:mod:`.video`), the demo (:mod:`.demo`) and the ``pbrl`` command (:mod:`.cli`, :mod:`.cli_run`,
:mod:`.cli_dataset`, :mod:`.cli_errors`). The labelling server, :mod:`pbrl.label`, belongs to this layer too.

The layer sits above ``pbrl.agents`` and ``pbrl.envs``, which sit above the core (the rest of ``pbrl``):
nothing below imports it (``tests/core/test_layers.py`` holds the rule). This package imports nothing
itself, so ``import pbrl.app.cli`` loads only what the command needs.
"""
