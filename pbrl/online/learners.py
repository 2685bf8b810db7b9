"""Which learner trains an online agent: SB3's own (torch) or SBX's JAX port of it (``sbx-rl``).

SBX (the SB3 team's JAX port) keeps SB3's API, its off-policy loop (``collect_rollouts``) and its replay
buffers, so pbrl's env wrapper, feedback callback and :class:`~pbrl.online.PbrlReplayBuffer` work on it
unchanged; SBX's ``train`` samples all ``batch_size * gradient_steps`` rows of an update in one
``replay_buffer.sample`` call (the buffer splits the sampler's draw per minibatch, see ``minibatch_size``).
What differs lives here: the learner class of a name, and the parts of a model that are JAX state (flax
``TrainState`` parameters and optimiser states, PRNG keys), which PEBBLE's critic reset and pbrl's run
checkpoints must handle. SBX is optional: ``pip install -e '.[jax]'``.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

__all__ = [
    "LEARNERS",
    "learner_class",
    "is_off_policy",
    "is_jax_model",
    "gradient_steps_now",
    "reset_jax_critic",
    "jax_state",
    "set_jax_state",
]

#: learner names: SB3's torch learners, SBX's JAX ones
LEARNERS = ("sb3", "sbx")

_INSTALL_HINT = "install the optional extra: pip install -e '.[jax]' (sbx-rl and JAX)"


def learner_class(algo: str, learner: str = "sb3") -> type:
    """The learner class for ``algo`` (``"SAC"``, ``"PPO"``) from ``learner`` (``"sb3"`` / ``"sbx"``).

    One clear ``ValueError`` for an unknown name, an algorithm SBX lacks, or SBX not installed.
    """
    if learner not in LEARNERS:
        raise ValueError(f"unknown learner '{learner}'; allowed values: {', '.join(LEARNERS)}")
    if learner == "sb3":
        import stable_baselines3

        return getattr(stable_baselines3, algo)
    try:
        import sbx
    except ImportError:
        raise ValueError(f"learner 'sbx' needs sbx-rl, which is not installed; {_INSTALL_HINT}") from None
    if not hasattr(sbx, algo):
        raise ValueError(f"sbx has no {algo}; use learner 'sb3'")
    return getattr(sbx, algo)


def is_off_policy(cls: type) -> bool:
    """Whether a learner class keeps a replay buffer (SB3's SAC/TD3 and SBX's, all ``OffPolicyAlgorithm``)."""
    return isinstance(cls, type) and issubclass(cls, OffPolicyAlgorithm)


def is_jax_model(model: Any) -> bool:
    """Whether ``model`` is an SBX learner (checked without importing JAX when SBX was never imported)."""
    mod = sys.modules.get("sbx.common.off_policy_algorithm")
    return mod is not None and isinstance(model, mod.OffPolicyAlgorithmJax)


def gradient_steps_now(model: Any, n: int) -> None:
    """``n`` gradient steps of an off-policy learner right now, outside its loop (PEBBLE's and RIME's updates
    after the switch to the learned reward). SB3: one ``train(n)`` call. SBX compiles its update for each
    number of steps (a static argument of its jitted loop), so it runs them as calls of its own per-update
    ``gradient_steps``, which reuse the update compiled for training (a 100-step compile costs seconds)."""
    if not is_jax_model(model):
        model.train(gradient_steps=n, batch_size=model.batch_size)
        return
    g = int(model.gradient_steps) if model.gradient_steps > 0 else int(model.train_freq.frequency)
    full, rest = divmod(int(n), max(g, 1))
    for k in [g] * full + ([rest] if rest else []):
        model.train(gradient_steps=k, batch_size=model.batch_size)


def reset_jax_critic(model: Any) -> None:
    """PEBBLE's critic reset on an SBX SAC: new critic parameters from the model's PRNG key, the target set
    to them, and a fresh critic optimiser state (Adam moments and step count cleared); the actor and the
    entropy temperature are kept. ``model.key`` is advanced, so the reset is reproducible and checkpointed.
    """
    import jax

    policy = model.policy
    qf_state = getattr(policy, "qf_state", None)
    if qf_state is None:
        raise TypeError(f"{type(model).__name__} has no critic to reset (needs an SBX SAC model)")
    model.key, qf_key, dropout_key = jax.random.split(model.key, 3)
    # flax initialises from shapes; zeros leave the observation space's RNG untouched (SBX's build samples it)
    obs = np.zeros((1, *model.observation_space.shape), np.float32)
    act = np.zeros((1, *model.action_space.shape), np.float32)
    params = policy.qf.init({"params": qf_key, "dropout": dropout_key}, obs, act)
    policy.qf_state = qf_state.replace(step=0, params=params, target_params=params,
                                       opt_state=qf_state.tx.init(params))


def _jax_attrs(obj: Any) -> dict[str, Any]:
    """The attributes of ``obj`` that are JAX state: flax ``TrainState`` objects and JAX arrays (PRNG keys)."""
    import jax
    from flax.training.train_state import TrainState

    return {k: v for k, v in vars(obj).items() if isinstance(v, (TrainState, jax.Array))}


def jax_state(model: Any) -> dict[str, Any]:
    """Snapshot of an SBX model's JAX state: for the model and its policy, every ``TrainState`` (parameters,
    target parameters, optimiser state, step) and PRNG key, as NumPy leaves (Python scalars kept as they are,
    so a restored state calls the jitted updates with the same argument types)."""
    import jax

    out: dict[str, Any] = {}
    for part, obj in (("model", model), ("policy", model.policy)):
        out[part] = {k: [np.array(x) if isinstance(x, jax.Array) else x for x in jax.tree_util.tree_leaves(v)]
                     for k, v in _jax_attrs(obj).items()}
    return out


def set_jax_state(model: Any, state: dict[str, Any]) -> None:
    """Restore :func:`jax_state` into an SBX model built the same way (same learner, sizes and spaces)."""
    import jax
    import jax.numpy as jnp

    for part, obj in (("model", model), ("policy", model.policy)):
        current = _jax_attrs(obj)
        saved = state.get(part, {})
        if set(saved) != set(current):
            raise ValueError(f"the checkpoint's JAX state of the {part} ({sorted(saved)}) does not match this "
                             f"learner's ({sorted(current)}); resume with the learner the run was started with")
        for k, leaves in saved.items():
            tree = jax.tree_util.tree_structure(current[k])
            if tree.num_leaves != len(leaves):
                raise ValueError(f"the checkpoint's {part}.{k} has {len(leaves)} arrays, this learner's "
                                 f"{tree.num_leaves}; resume with the sizes the run was started with")
            leaves = [jnp.asarray(x) if isinstance(x, np.ndarray) else x for x in leaves]
            setattr(obj, k, jax.tree_util.tree_unflatten(tree, leaves))
