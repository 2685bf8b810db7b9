"""Evaluation while training: true return and any-step success on a separate env, through SB3's logger."""

from __future__ import annotations

import time
from typing import Any

from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv

from pbrl.validation import check_int

__all__ = ["PbrlEvalCallback"]


class PbrlEvalCallback(BaseCallback):
    """Evaluate every ``eval_every`` env steps on a separate env and log through SB3's logger.

    Runs ``n_eval_episodes`` deterministic episodes with :func:`pbrl.evaluation.evaluate_policy_episodes`;
    an episode is a success if ``info["success"]`` was true at any step (Meta-World's protocol). Logs
    ``eval/mean_return``, ``eval/std_return``, ``eval/success_rate``, ``feedback/labels_used``,
    ``feedback/asked`` and ``reward_model/accuracy`` (from ``preference_callback``), then dumps the
    logger at the current step. ``self.history`` keeps every evaluation as a dict.

    Args:
        eval_env: a ``gymnasium.Env`` (not vectorised) or a task id.
        eval_every: env steps between evaluations (>= 1).
        n_eval_episodes: episodes per evaluation (default 10).
        preference_callback: the run's :class:`PreferenceCallback` (for labels and accuracy), or None.
        seed: seed of each evaluation's first reset.
        eval_at_end: also evaluate when training ends (default True).
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
        self.last_eval_step = 0
        self.history: list[dict[str, Any]] = []
        self.eval_seconds = 0.0  #: wall time spent evaluating (benchmarks subtract it)

    def _on_step(self) -> bool:
        if self.num_timesteps - self.last_eval_step >= self.eval_every:
            self.evaluate()
        return True

    def _on_training_end(self) -> None:
        if self.eval_at_end and (not self.history or self.history[-1]["step"] != self.num_timesteps):
            self.evaluate()

    def evaluate(self) -> dict[str, Any]:
        """Run one evaluation now, log it and return it."""
        from pbrl.evaluation import evaluate_policy_episodes

        t0 = time.perf_counter()
        res = evaluate_policy_episodes(self.model, self.eval_env, self.n_eval_episodes, deterministic=True, seed=self.seed)
        self.eval_seconds += time.perf_counter() - t0
        pc = self.preference_callback
        rec = {
            "step": int(self.num_timesteps),
            "mean_return": res["mean_return"],
            "std_return": res["std_return"],
            "success_rate": res["success_rate"],
            "labels_used": pc.labels_used if pc is not None else 0,
            "asked": pc.asked if pc is not None else 0,
            "reward_accuracy": float(pc.last_fit.get("accuracy", float("nan"))) if pc is not None else float("nan"),
        }
        self.history.append(rec)
        self.last_eval_step = self.num_timesteps
        self.logger.record("eval/mean_return", rec["mean_return"])
        self.logger.record("eval/std_return", rec["std_return"])
        self.logger.record("eval/success_rate", rec["success_rate"])
        self.logger.record("feedback/labels_used", rec["labels_used"])
        self.logger.record("feedback/asked", rec["asked"])
        if pc is not None and pc.last_fit:
            self.logger.record("reward_model/accuracy", rec["reward_accuracy"])
        self.logger.dump(self.num_timesteps)
        return rec
