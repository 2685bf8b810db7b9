"""Evaluation on the live environment: returns and success rates of a policy.

An episode counts as a success if ``info["success"]`` was true at *any* step (Meta-World's protocol;
SB3's ``EvalCallback`` only looks at the last step).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["evaluate_policy_episodes", "normalising_policy", "task_normalized_score"]


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
    from pbrl.envs import make_env, rollout

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
        from pbrl.envs.datasets import normalized_score

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
