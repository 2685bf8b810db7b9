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

* :class:`PbrlEvalCallback`: evaluates every ``eval_every`` steps on a separate env (one curve row each,
  the same columns online and offline), logs through the logger and writes ``curve.csv``;
* :class:`PbrlCheckpointCallback`: every ``checkpoint_every`` steps, calls the loop's ``save(step)``;
* :class:`StopOnSignal`: on SIGINT, checkpoints at the next point and stops (a second SIGINT aborts).

In a list they run in that order, so a checkpoint holds the evaluation made at its step.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.vec_env import VecEnv

from pbrl.progress import Progress
from pbrl.reward_models.metrics import saturation
from pbrl.validation import check_int

__all__ = [
    "BoundaryCallback",
    "PbrlEvalCallback",
    "PbrlCheckpointCallback",
    "StopOnSignal",
    "FunctionCallback",
    "as_callback",
    "evaluation_row",
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


# ---------------------------------------------------------------------------- evaluation
def evaluation_row(policy: Any, env: Any, n_episodes: int, seed: int, step: int, labels: int,
                   task: str | None = None, dataset: Any = None) -> dict[str, Any]:
    """One evaluation as a ``curve.csv`` row: ``{"step", "labels", "mean_return", "std_return", "success_rate",
    "normalized_score"}`` over ``n_episodes`` deterministic episodes (the first reset seeded with ``seed``).

    The score uses ``task``'s reference returns, else ``dataset.normalized_score`` of the mean return, else
    it is ``None``."""
    from pbrl.evaluation import evaluate_policy_episodes, task_normalized_score

    res = evaluate_policy_episodes(policy, env, n_episodes, deterministic=True, seed=seed)
    score = task_normalized_score(task, res["returns"])
    if score is None and dataset is not None and hasattr(dataset, "normalized_score"):
        try:
            score = float(np.mean(dataset.normalized_score(np.array([res["mean_return"]]))))
        except (ValueError, KeyError, TypeError):  # no reference returns in the metadata
            score = None
    return {
        "step": int(step),
        "labels": int(labels),
        "mean_return": res["mean_return"],
        "std_return": res["std_return"],
        "success_rate": res["success_rate"],
        "normalized_score": score,
    }


class PbrlEvalCallback(BoundaryCallback):
    """Evaluate every ``eval_every`` steps on a separate env and log through the model's logger.

    Online the steps are env steps, offline updates. The first checkpointable point at or after each
    scheduled step (``progress.next_eval``, then the next multiple of ``eval_every``) runs
    ``n_eval_episodes`` deterministic episodes with :func:`pbrl.evaluation.evaluate_policy_episodes` (an
    episode is a success if ``info["success"]`` was true at any step: Meta-World's protocol) and appends
    one row to ``history`` (= ``progress.curve``): :func:`evaluation_row`'s ``step, labels, mean_return,
    std_return, success_rate, normalized_score``, plus ``asked``, ``reward_accuracy`` and ``reward_saturated`` (:func:`pbrl.reward_models.saturation` on the
    last 10 recorded episodes) when a ``preference_callback`` is given. It logs ``eval/mean_return``, ``eval/std_return``,
    ``eval/success_rate``, ``feedback/labels_used`` (and ``feedback/asked``, ``reward_model/accuracy``,
    ``reward_model/saturated`` from the preference callback), dumps the logger at the step (unless ``dump=False``), and rewrites
    ``run``'s ``curve.csv``.

    Args:
        eval_env: a ``gymnasium.Env`` (not vectorised) or a task id.
        eval_every: steps between evaluations (>= 1).
        n_eval_episodes: episodes per evaluation (default 10).
        preference_callback: the online run's :class:`~pbrl.online.PreferenceCallback` (labels used, queries
            asked, reward accuracy), or None.
        seed: seed of each evaluation's first reset (and of the env made from a task id).
        eval_at_end: also evaluate when training ends, unless the last evaluation was at that step
            (default True; :meth:`finish` does it on demand).
        labels: labels used, when there is no preference callback (an offline run's label count).
        task: task id whose reference returns give ``normalized_score`` (default: none).
        dataset: an ``OfflineDataset`` whose reference returns give the score when ``task`` has none.
        progress: the run's :class:`~pbrl.progress.Progress` (its ``next_eval`` and ``curve``); default a
            new one whose first evaluation is ``eval_every`` steps after the first training start's step
            (rounded down to a multiple of ``eval_every``).
        run: a :class:`~pbrl.app.run_dir.RunDir` whose ``curve.csv`` is rewritten after every evaluation.
        dump: write the logger out at the evaluation's step (default True, as SB3's ``EvalCallback``). An
            online run passes False: SB3's learner dumps at its own log interval, and a second dump at
            the same step would write the values recorded in between twice for that step.
    """

    def __init__(
        self,
        eval_env: Any,
        eval_every: int,
        n_eval_episodes: int = 10,
        preference_callback: Any = None,
        seed: int = 12345,
        eval_at_end: bool = True,
        verbose: int = 0,
        *,
        labels: int = 0,
        task: str | None = None,
        dataset: Any = None,
        progress: Progress | None = None,
        run: Any = None,
        dump: bool = True,
    ):
        super().__init__(verbose)
        check_int("eval_every", eval_every, 1)
        check_int("n_eval_episodes", n_eval_episodes, 1)
        if isinstance(eval_env, str):
            from pbrl.envs import make_env

            eval_env = make_env(eval_env, seed=seed)
        if isinstance(eval_env, VecEnv):
            raise TypeError("eval_env must be a single gymnasium.Env (or a task id), not a VecEnv")
        self.eval_env = eval_env
        self.eval_every = int(eval_every)
        self.n_eval_episodes = int(n_eval_episodes)
        self.preference_callback = preference_callback
        self.seed = int(seed)
        self.eval_at_end = bool(eval_at_end)
        self.labels, self.task, self.dataset, self.run, self.dump = int(labels), task, dataset, run, bool(dump)
        self._own_schedule = progress is None  # then the first evaluation is eval_every after training starts
        self.progress = progress if progress is not None else Progress(next_eval=self.eval_every)
        self.eval_seconds = 0.0  #: wall time spent evaluating (benchmarks subtract it)

    @property
    def history(self) -> list[dict[str, Any]]:
        """Every evaluation so far (``progress.curve``)."""
        return self.progress.curve

    @property
    def last_eval_step(self) -> int:
        return self.progress.step

    def _on_training_start(self) -> None:
        if self._own_schedule:
            self._own_schedule = False
            self.progress.next_eval = (self.num_timesteps // self.eval_every + 1) * self.eval_every

    def _on_boundary(self, step: int) -> None:
        if step >= self.progress.next_eval:
            self.evaluate()
            self.progress.next_eval = (step // self.eval_every + 1) * self.eval_every

    def _on_training_end(self) -> None:
        if self.eval_at_end:
            self.finish()

    def finish(self) -> dict[str, Any] | None:
        """Evaluate the final policy unless the last evaluation was at this step; returns the new row."""
        if not self.history or self.history[-1]["step"] != int(self.model.num_timesteps):
            return self.evaluate()
        return None

    def evaluate(self) -> dict[str, Any]:
        """Run one evaluation of the model now, log it, record it and return it."""
        step = int(self.model.num_timesteps)
        pc = self.preference_callback
        t0 = time.perf_counter()
        rec = evaluation_row(self.model, self.eval_env, self.n_eval_episodes, self.seed, step,
                             pc.labels_used if pc is not None else self.labels, self.task, self.dataset)
        self.eval_seconds += time.perf_counter() - t0
        if pc is not None:
            rec["asked"] = int(pc.asked)
            rec["reward_accuracy"] = float(pc.last_fit.get("accuracy", float("nan")))
            rec["reward_saturated"] = _saturation(pc)
        self.history.append(rec)
        self.logger.record("eval/mean_return", rec["mean_return"])
        self.logger.record("eval/std_return", rec["std_return"])
        self.logger.record("eval/success_rate", rec["success_rate"])
        self.logger.record("feedback/labels_used", rec["labels"])
        if pc is not None:
            self.logger.record("feedback/asked", rec["asked"])
            if pc.last_fit:
                self.logger.record("reward_model/accuracy", rec["reward_accuracy"])
            if rec["reward_saturated"] == rec["reward_saturated"]:
                self.logger.record("reward_model/saturated", rec["reward_saturated"])
        if self.dump:
            self.logger.dump(step)
        if self.run is not None:
            self.run.write_curve(self.history)
        return rec


def _saturation(pc: Any, n_episodes: int = 10) -> float:
    """:func:`pbrl.reward_models.saturation` of the learned reward on the last ``n_episodes`` episodes the
    run recorded (NaN before the first reward update, or for a model without per-member outputs)."""
    episodes = list(getattr(getattr(pc, "wrapper", None), "episodes", []))[-n_episodes:]
    if not episodes or getattr(pc, "updates", 0) == 0 or not hasattr(pc.reward_model, "member_rewards"):
        return float("nan")
    obs = np.concatenate([t.obs for t in episodes])
    act = np.concatenate([t.act for t in episodes])
    return saturation(pc.reward_model, obs, act)


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
