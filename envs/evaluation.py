"""Evaluation on the live environment: returns and success rates of a policy, and the evaluation callback
both training loops run (:class:`PbrlEvalCallback`, one of :mod:`pbrl.callbacks`' run callbacks).

An episode counts as a success if ``info["success"]`` was true at *any* step (Meta-World's protocol;
SB3's ``EvalCallback`` only looks at the last step).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from stable_baselines3.common.vec_env import VecEnv

from pbrl.callbacks import BoundaryCallback
from pbrl.envs.datasets import normalized_score
from pbrl.envs.registry import make_env
from pbrl.envs.rollout import rollout
from pbrl.progress import Progress
from pbrl.reward_models.metrics import saturation
from pbrl.validation import check_int

__all__ = ["evaluate_policy_episodes", "normalising_policy", "task_normalized_score", "evaluation_row",
           "PbrlEvalCallback"]


def evaluate_policy_episodes(
    policy: Any,
    env: Any,
    n_episodes: int = 10,
    deterministic: bool = True,
    seed: int | None = 0,
) -> dict[str, Any]:
    """Run ``n_episodes`` whole episodes and report true returns and success.

    Args:
        policy: anything with SB3's ``predict(obs, deterministic) -> (action, state)``, or a callable
            ``obs -> action``, or ``"random"``.
        env: a ``gymnasium.Env`` or a task id of :func:`pbrl.envs.make_env`.
        n_episodes: number of episodes (> 0).
        deterministic: passed to ``predict``.
        seed: seed of the first reset (later resets continue the env's RNG).

    Returns:
        ``{"mean_return", "std_return", "success_rate", "mean_length", "returns" [n], "successes" [n]}``.
    """
    if n_episodes < 1:
        raise ValueError(f"n_episodes must be >= 1, got {n_episodes}")
    if isinstance(env, str):
        env = make_env(env, seed=seed)
    policy = normalising_policy(policy)
    trajs = rollout(env, policy, n_episodes=n_episodes, seed=seed, deterministic=deterministic)
    returns = np.array([t.ret for t in trajs], dtype=np.float64)
    successes = np.array([bool(t.success is not None and t.success.any()) for t in trajs])
    return {
        "mean_return": float(returns.mean()),
        "std_return": float(returns.std()),
        "success_rate": float(successes.mean()),
        "mean_length": float(np.mean([len(t) for t in trajs])),
        "returns": returns,
        "successes": successes,
    }


def task_normalized_score(task: str | None, returns: Any) -> float | None:
    """The mean normalised score of episode ``returns`` on ``task`` (D4RL's reference returns, see
    :func:`pbrl.envs.datasets.normalized_score`), or ``None`` when the task has none."""
    if task is None:
        return None
    try:
        return float(np.mean(normalized_score(task, np.asarray(returns, dtype=np.float64))))
    except Exception:  # noqa: BLE001 - no reference returns for this task
        return None


class _NormalisedPolicy:
    """An SB3 model trained behind ``VecNormalize`` (PrefPPO), fed raw observations: normalise, then predict."""

    def __init__(self, model: Any, vec_normalize: Any):
        self.model, self.vn = model, vec_normalize

    def predict(self, obs, state=None, episode_start=None, deterministic: bool = True):
        obs = self.vn.normalize_obs(np.asarray(obs, np.float32))
        return self.model.predict(obs, state=state, episode_start=episode_start, deterministic=deterministic)


def normalising_policy(policy: Any) -> Any:
    """``policy``, or a wrapper that normalises raw observations first when it is an SB3 model trained behind
    ``VecNormalize`` (so evaluation and ``predict`` feed it what it was trained on)."""
    get = getattr(policy, "get_vec_normalize_env", None)
    vn = get() if callable(get) else None
    return policy if vn is None else _NormalisedPolicy(policy, vn)


# ---------------------------------------------------------------------------- evaluation
def evaluation_row(policy: Any, env: Any, n_episodes: int, seed: int, step: int, labels: int,
                   task: str | None = None, dataset: Any = None) -> dict[str, Any]:
    """One evaluation as a ``curve.csv`` row: ``{"step", "labels", "mean_return", "std_return", "success_rate",
    "normalized_score"}`` over ``n_episodes`` deterministic episodes (the first reset seeded with ``seed``).

    The score uses ``task``'s reference returns, else ``dataset.normalized_score`` of the mean return, else
    it is ``None``."""
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
    ``n_eval_episodes`` deterministic episodes with :func:`evaluate_policy_episodes` (an
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
