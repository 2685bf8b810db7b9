"""One callback model for both training loops: stable-baselines3 callbacks, run by SB3's learners (online) and
by :meth:`pbrl.agents.offline_base.OfflineAgent.fit` (offline).

A callback is an SB3 :class:`~stable_baselines3.common.callbacks.BaseCallback`; a list of them runs as a
:class:`~stable_baselines3.common.callbacks.CallbackList`, exactly as SB3 does. An offline agent offers what
``BaseCallback`` reads from its model: ``num_timesteps`` (its update count), ``logger`` (an SB3 logger) and
``get_env()`` (``None``: an offline agent has no training env). The events:

=====================  ===============================================  ========================================
event                  SB3 learner (online)                             ``OfflineAgent.fit`` (offline)
=====================  ===============================================  ========================================
``on_training_start``  ``learn()`` starts                               before the first update
``on_rollout_start``   before each rollout, after the gradient steps    not called (no rollouts)
``on_step``            after each env step; ``False`` stops             after each update, ``locals["losses"]``
                                                                        holding its losses; ``False`` stops
``on_training_end``    ``learn()`` ends                                 ``fit()`` ends
=====================  ===============================================  ========================================

A plain function ``callback(agent, step, losses)`` is accepted by ``fit`` too (:class:`FunctionCallback`).

The callbacks of a run act at **checkpointable points**, where the training state is complete: an SB3
learner's at the start of a rollout (after the previous gradient steps), an offline agent's after every
update (its class says so with ``steps_are_boundaries = True``). :class:`BoundaryCallback` calls
``_on_boundary(step)`` there. Three of them serve both loops (``pbrl.app.train_online`` and
``pbrl.app.train_offline``), sharing one :class:`~pbrl.progress.Progress` record:

* :class:`~pbrl.envs.evaluation.PbrlEvalCallback` (in :mod:`pbrl.envs.evaluation`: it plays episodes on a
  live task): evaluates every ``eval_every`` steps on a separate env (one curve row each, the same columns
  online and offline), logs through the logger and writes ``curve.csv``;
* :class:`PbrlCheckpointCallback`: every ``checkpoint_every`` steps, calls the loop's ``save(step)``;
* :class:`StopOnSignal`: on SIGINT, checkpoints at the next point and stops (a second SIGINT aborts).

In a list they run in that order, so a checkpoint holds the evaluation made at its step.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stable_baselines3.common.callbacks import BaseCallback, CallbackList

from pbrl.progress import Progress
from pbrl.validation import check_int

__all__ = [
    "BoundaryCallback",
    "PbrlCheckpointCallback",
    "StopOnSignal",
    "FunctionCallback",
    "as_callback",
    "Progress",
]


def as_callback(callback: Any) -> BaseCallback | None:
    """``None``, an SB3 ``BaseCallback``, a list of them (-> ``CallbackList``) or a function
    ``callback(agent, step, losses)`` (-> :class:`FunctionCallback`) as one callback."""
    if callback is None or isinstance(callback, BaseCallback):
        return callback
    if isinstance(callback, list):
        return CallbackList([as_callback(c) for c in callback])
    if callable(callback):
        return FunctionCallback(callback)
    raise TypeError("callback must be a stable-baselines3 BaseCallback, a list of them, or a function "
                    f"callback(agent, step, losses); got {type(callback).__name__}")


class FunctionCallback(BaseCallback):
    """A function ``fn(agent, step, losses) -> bool | None`` called after every offline update; ``False`` stops."""

    def __init__(self, fn: Callable[[Any, int, dict[str, float]], bool | None]):
        super().__init__(0)
        self.fn = fn

    def _on_step(self) -> bool:
        return self.fn(self.model, int(self.model.num_timesteps), self.locals.get("losses", {})) is not False


class BoundaryCallback(BaseCallback):
    """A callback that acts at checkpointable points: ``_on_boundary(step)`` at every rollout start of an SB3
    learner, after every ``on_step`` of a model with ``steps_are_boundaries`` (an offline agent).
    ``_continue_training()`` is what ``on_step`` returns."""

    def _steps_are_boundaries(self) -> bool:
        return bool(getattr(self.model, "steps_are_boundaries", False))

    def _on_rollout_start(self) -> None:
        if not self._steps_are_boundaries():
            self._on_boundary(int(self.model.num_timesteps))

    def _on_step(self) -> bool:
        if self._steps_are_boundaries():
            self._on_boundary(int(self.model.num_timesteps))
        return self._continue_training()

    def _on_boundary(self, step: int) -> None:
        """Act at a checkpointable point (``step``: the model's env steps or updates so far)."""

    def _continue_training(self) -> bool:
        return True


# ---------------------------------------------------------------------------- checkpoints
class PbrlCheckpointCallback(BoundaryCallback):
    """Checkpoint every ``checkpoint_every`` steps, at the first checkpointable point at or after each
    scheduled step (``progress.next_ckpt``, then the next multiple of ``checkpoint_every``).

    Args:
        save: ``save(step)`` writes the checkpoint (a run loop's, which knows what its state is), or a folder:
            the model's own ``save`` to ``<folder>/<name_prefix>_<step>_steps`` (SB3 adds ``.zip``).
        checkpoint_every: steps between checkpoints (>= 1).
        progress: the run's :class:`~pbrl.progress.Progress` (``next_ckpt``, ``last_ckpt``; saved in the
            checkpoint it describes); default a new one whose first checkpoint is at the first multiple of
            ``checkpoint_every`` after the step training first starts at.
        name_prefix: file name prefix when ``save`` is a folder.
    """

    def __init__(self, save: Callable[[int], None] | str | Path, checkpoint_every: int,
                 progress: Progress | None = None, name_prefix: str = "model", verbose: int = 0):
        super().__init__(verbose)
        check_int("checkpoint_every", checkpoint_every, 1)
        if not callable(save):
            folder = Path(save)

            def save(step: int) -> None:
                folder.mkdir(parents=True, exist_ok=True)
                self.model.save(folder / f"{name_prefix}_{step}_steps")

        self.save = save
        self.checkpoint_every = int(checkpoint_every)
        self._own_schedule = progress is None  # then the first checkpoint is checkpoint_every after the start
        self.progress = progress if progress is not None else Progress(next_ckpt=self.checkpoint_every)

    def _on_training_start(self) -> None:
        if self._own_schedule:
            self._own_schedule = False
            self.progress.next_ckpt = (self.num_timesteps // self.checkpoint_every + 1) * self.checkpoint_every

    def _on_boundary(self, step: int) -> None:
        if step >= self.progress.next_ckpt:
            self.save_now(step)

    def save_now(self, step: int) -> None:
        """Checkpoint at ``step`` now (the schedule moves on to the next multiple of ``checkpoint_every``)."""
        self.progress.next_ckpt = (step // self.checkpoint_every + 1) * self.checkpoint_every
        self.progress.last_ckpt = int(step)
        self.save(int(step))


# ---------------------------------------------------------------------------- SIGINT
#: a process-wide stop check that every :class:`StopOnSignal` honours (see :func:`set_external_stop`)
_EXTERNAL_STOP: Callable[[], bool] | None = None


def set_external_stop(check: Callable[[], bool] | None) -> None:
    """Make every :class:`StopOnSignal` of this process stop at its next checkpointable point once ``check()``
    is true, as if it had taken a SIGINT itself (``None`` removes the check).

    A sweep's pool worker sets it to the sweep's stop event: a SIGINT that arrives while a run is still
    preparing (collecting its dataset, labelling) reaches the worker's own handler, not the run's, and
    without this check the run would then train to its end."""
    global _EXTERNAL_STOP
    _EXTERNAL_STOP = check


class StopOnSignal(BoundaryCallback):
    """Turns the first SIGINT into a request to stop at the next checkpointable point, after a checkpoint
    there (through ``checkpoint``, unless one was just written at that step); a second SIGINT aborts
    (``KeyboardInterrupt``). ``stopping`` tells afterwards whether training stopped so.

    The handler is installed for a ``with`` block (or from ``on_training_start`` to ``on_training_end``)
    and only in the main thread; :meth:`request` asks to stop without a signal. ``requested`` is also true
    once the process's external stop check (:func:`set_external_stop`) is.
    """

    def __init__(self, checkpoint: PbrlCheckpointCallback | None = None, signum: int = signal.SIGINT,
                 verbose: int = 0):
        super().__init__(verbose)
        self.checkpoint = checkpoint
        self.signum = signum
        self._requested = False
        self.stopping = False
        self._old: Any = None
        self._installed = False
        self._installed_at_start = False

    def __enter__(self) -> StopOnSignal:
        self._install()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._restore()

    def _install(self) -> None:
        if self._installed:
            return
        try:
            self._old = signal.signal(self.signum, self._handler)
            self._installed = True
        except ValueError:  # not the main thread: no handler
            self._old = None

    def _restore(self) -> None:
        if self._installed:
            signal.signal(self.signum, self._old)
            self._installed = False

    @property
    def requested(self) -> bool:
        """Whether a stop was asked: a SIGINT, :meth:`request`, or the external stop check."""
        if not self._requested and _EXTERNAL_STOP is not None and _EXTERNAL_STOP():
            self._requested = True
        return self._requested

    def _handler(self, signum, frame) -> None:
        if self._requested:
            raise KeyboardInterrupt
        self.request()
        print("\n[pbrl] SIGINT: stopping after the next checkpoint (Ctrl-C again to abort now)", file=sys.stderr)

    def request(self) -> None:
        """Ask training to stop at the next checkpointable point."""
        self._requested = True

    def _on_training_start(self) -> None:
        self._installed_at_start = not self._installed
        self._install()

    def _on_training_end(self) -> None:
        if self._installed_at_start:
            self._restore()

    def _on_boundary(self, step: int) -> None:
        if self.requested and not self.stopping:
            ck = self.checkpoint
            if ck is not None and ck.progress.last_ckpt != step:
                ck.save_now(step)
            self.stopping = True

    def _continue_training(self) -> bool:
        return not self.stopping
