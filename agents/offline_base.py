"""The common interface of pbrl's offline preference-based agents (their networks: :mod:`pbrl.agents.networks`).

Every offline agent (``MRIQL``, ``IQL``, ``IPL``, ``CPL``, ``OPPO``, ``PEARL``) subclasses
:class:`OfflineAgent` and is used the same way::

    agent = IPL.from_dataset(ds, seed=0)                  # or IPL(obs_dim, act_dim, **hp)
    info = agent.fit(ds, prefs, steps=10_000, eval_env="mujoco/Hopper-v5", eval_every=2_000)
    action, _ = agent.predict(obs, deterministic=True)    # SB3's signature
    agent.save("runs/ipl.pt"); agent = IPL.load("runs/ipl.pt")

``fit`` takes stable-baselines3 callbacks (a ``BaseCallback``, a list of them, or a function
``callback(agent, step, losses)``): ``on_step`` runs after every update and can stop training, and the run
callbacks of :mod:`pbrl.callbacks` (evaluation, checkpoints, SIGINT) serve ``fit`` as they serve SB3's
``learn``; ``num_timesteps``, ``logger`` and ``get_env()`` are what those callbacks read. Saving and loading
live in :mod:`pbrl.agents.offline_io`.

``predict`` follows stable-baselines3's ``predict(observation, state=None, episode_start=None,
deterministic=False)`` (with ``deterministic=True`` as our default), so SB3's
``stable_baselines3.common.evaluation.evaluate_policy`` and pbrl's
:func:`pbrl.envs.evaluation.evaluate_policy_episodes` both accept an agent directly.

Writing a new agent (what a subclass implements):

* ``__init__``: set the agent's own hyperparameters as attributes, record them with
  ``self._register_config(name=value, ...)``, then call ``super().__init__(obs_dim, act_dim, **common)``;
  the base constructor calls :meth:`OfflineAgent._build` under the agent's seed.
* ``_build()``: create the networks and optimisers and put them into ``self.nets`` / ``self.optims``
  (dicts name -> module / optimiser). Everything in them is saved and restored by ``save`` / ``load``.
* ``_prepare(dataset, preferences)``: turn the inputs into torch tensors once, before the first update
  (relabel rewards, build segment tensors...). Input checks that can fail belong in
  ``_check_inputs`` so that bad input stops before any work. Helpers: :meth:`transitions_from`,
  :meth:`preference_tensors`, :meth:`sample_transitions`.
* ``_sample() -> dict[str, Tensor]``: everything random one update needs (minibatch rows, noise, the seed
  of dropout masks), drawn from ``self.rng`` / ``self.torch_gen`` (default: :meth:`sample_transitions`).
* ``_update_on(batch) -> dict[str, Tensor]``: one gradient step on that batch, reading no RNG; each
  optimiser step is ``self._step(name, loss_closure)``. Returns the losses to log. Written this way, the
  same one-seed code trains K seeds at once: ``from_dataset(ds, seeds=(0, 1, 2))`` gives a
  :class:`MultiSeed` that vmaps ``_update_on`` over parameters stacked on a seed dimension.
* ``_policy_act(obs, deterministic) -> actions``: torch ``[B, obs_dim]`` (normalised obs) ->
  ``[B, act_dim]`` in the policy's ``[-1, 1]`` range.

Conventions: observations are standardised with the dataset's mean / std when ``normalize_obs`` is on
(the statistics are saved with the agent); actions live in ``[-1, 1]`` inside the agent and are mapped
to ``[action_low, action_high]`` on the way out (and back on the way in). All randomness (network init,
minibatches, sampled actions) comes from ``seed``: the same seed gives the same numbers.
"""

from __future__ import annotations

import contextlib
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from tqdm.auto import tqdm

from pbrl.agents.multiseed import MultiSeed
from pbrl.agents.networks import Dropout, dropout_noise
from pbrl.agents.offline_data import OfflineData, check_positive_int, finite_mean
from pbrl.agents.offline_io import CHECKPOINT_FORMAT, SavedAgent
from pbrl.callbacks import as_callback
from pbrl.envs import make_env
from pbrl.envs.evaluation import PbrlEvalCallback, evaluate_policy_episodes, task_normalized_score
from pbrl.memory import keep_freed_memory
from pbrl.preferences import PreferenceDataset

__all__ = ["OfflineAgent", "CHECKPOINT_FORMAT"]

# ---------------------------------------------------------------------------------------------- base agent


def _to_builtin(v: Any) -> Any:
    """Config values as plain Python (tuples -> lists, numpy scalars/arrays -> numbers/lists)."""
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, (tuple, list)):
        return [_to_builtin(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _to_builtin(x) for k, x in v.items()}
    return v


class OfflineAgent(OfflineData, SavedAgent, ABC):
    """Base class of pbrl's offline agents (see the module docstring for the subclass contract).

    Args:
        obs_dim: observation size (> 0).
        act_dim: action size (> 0).
        hidden: hidden layers of every network (default ``(256, 256)``, IQL's).
        lr: Adam learning rate of every network (default ``3e-4``).
        batch_size: transitions per update (default 256).
        gamma: discount (default 0.99).
        normalize_obs: standardise observations with the dataset's mean / std (default True).
        action_low, action_high: the env's action bounds, scalars or ``[act_dim]`` (default -1, 1).
        seed: seeds network init, minibatch sampling and sampled actions.
        device: torch device (``"cpu"``).

    Attributes:
        nets, optims: dicts of the agent's modules / optimisers (filled by ``_build``).
        num_updates: gradient steps taken so far (continues across ``fit`` calls and ``load``).
        config: every constructor argument, as saved with the agent.
    """

    #: ``"offline"``: learns from a fixed dataset (see :mod:`pbrl.agents.registry`)
    kind: str = "offline"
    #: whether ``fit`` needs a non-empty ``PreferenceDataset`` (False only for agents on the true reward)
    requires_preferences: bool = True
    #: default ``fit(eval_every=...)`` when an ``eval_env`` is given
    default_eval_every: int = 5000
    #: the state is complete after every update, so run callbacks checkpoint at any step (:mod:`pbrl.callbacks`)
    steps_are_boundaries: bool = True

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: Sequence[int] = (256, 256),
        lr: float = 3e-4,
        batch_size: int = 256,
        gamma: float = 0.99,
        normalize_obs: bool = True,
        action_low: float | Sequence[float] = -1.0,
        action_high: float | Sequence[float] = 1.0,
        seed: int = 0,
        device: str = "cpu",
    ):
        self.obs_dim = check_positive_int("obs_dim", obs_dim)
        self.act_dim = check_positive_int("act_dim", act_dim)
        self.hidden = tuple(check_positive_int("hidden layer size", h) for h in hidden)
        self.batch_size = check_positive_int("batch_size", batch_size)
        if not (isinstance(lr, (int, float)) and lr > 0):
            raise ValueError(f"lr must be a positive number, got {lr!r}")
        if not (0.0 <= gamma <= 1.0):
            raise ValueError(f"gamma must be in [0, 1], got {gamma!r}")
        low = np.broadcast_to(np.asarray(action_low, dtype=np.float32), (act_dim,)).copy()
        high = np.broadcast_to(np.asarray(action_high, dtype=np.float32), (act_dim,)).copy()
        if not np.all(np.isfinite(low)) or not np.all(np.isfinite(high)) or np.any(high <= low):
            raise ValueError(f"action bounds must be finite with high > low, got low={low}, high={high}")
        if not isinstance(seed, (int, np.integer)):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        self.lr, self.gamma, self.normalize_obs = float(lr), float(gamma), bool(normalize_obs)
        self.action_low, self.action_high = low, high
        self.seed, self.device = int(seed), torch.device(device)
        self.config: dict[str, Any] = getattr(self, "config", {})
        self.config.update(
            obs_dim=self.obs_dim,
            act_dim=self.act_dim,
            hidden=list(self.hidden),
            lr=self.lr,
            batch_size=self.batch_size,
            gamma=self.gamma,
            normalize_obs=self.normalize_obs,
            action_low=low.tolist(),
            action_high=high.tolist(),
            seed=self.seed,
            device=str(device),
        )
        self.rng = np.random.default_rng(self.seed)
        self.torch_gen = torch.Generator(device="cpu").manual_seed(self.seed)
        self.obs_mean = np.zeros(self.obs_dim, np.float32)
        self.obs_std = np.ones(self.obs_dim, np.float32)
        self.num_updates = 0
        self.nets: dict[str, nn.Module] = {}
        self.optims: dict[str, torch.optim.Optimizer] = {}
        self._functional: Any = None  # set while MultiSeed runs this agent's update vmapped over K seeds
        self._logger: Any = None  # see the logger property
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self._build()
        for net in self.nets.values():
            net.to(self.device)

    # ------------------------------------------------------------------ subclass hooks
    def _register_config(self, **kw: Any) -> None:
        """Record agent-specific hyperparameters (call before ``super().__init__``); they are saved."""
        if not hasattr(self, "config"):
            self.config = {}
        self.config.update({k: _to_builtin(v) for k, v in kw.items()})

    @abstractmethod
    def _build(self) -> None:
        """Create ``self.nets`` and ``self.optims`` (called once by ``__init__`` under the seed)."""

    def _check_inputs(self, dataset: Any, preferences: PreferenceDataset | None) -> None:
        """Raise one clear error for unusable inputs, before any work (extend in subclasses)."""
        self._check_dataset(dataset)
        self._check_preferences(preferences)

    def _check_dataset(self, dataset: Any) -> None:
        """The dataset is an ``OfflineDataset`` of this agent's sizes with at least 2 steps."""
        if dataset is None or not hasattr(dataset, "qlearning_view"):
            raise TypeError(
                f"dataset must be a pbrl.envs.datasets.OfflineDataset (load one with load_dataset or collect), "
                f"got {type(dataset).__name__}"
            )
        if dataset.obs_dim != self.obs_dim or dataset.act_dim != self.act_dim:
            raise ValueError(
                f"dataset has obs_dim={dataset.obs_dim}, act_dim={dataset.act_dim} but the agent was built for "
                f"obs_dim={self.obs_dim}, act_dim={self.act_dim}; build it with {type(self).__name__}.from_dataset(ds)"
            )
        if len(dataset) < 2:
            raise ValueError(f"dataset has {len(dataset)} transitions; an offline agent needs at least 2")

    def _check_preferences(self, preferences: PreferenceDataset | None) -> None:
        """Preferences are present when required, a ``PreferenceDataset``, and of this agent's sizes."""
        if preferences is None:
            if self.requires_preferences:
                raise ValueError(
                    f"{type(self).__name__} learns from preferences: pass a PreferenceDataset "
                    "(e.g. pbrl.envs.datasets.label_dataset(ds, teacher, n_pairs))"
                )
            return
        if not isinstance(preferences, PreferenceDataset):
            raise TypeError(f"preferences must be a pbrl PreferenceDataset, got {type(preferences).__name__}")
        if self.requires_preferences and len(preferences) == 0:
            raise ValueError(f"{type(self).__name__} needs at least one labelled pair; the PreferenceDataset is empty")
        if len(preferences) and (preferences.a.obs_dim != self.obs_dim or preferences.a.act_dim != self.act_dim):
            raise ValueError(
                f"preference segments have obs_dim={preferences.a.obs_dim}, act_dim={preferences.a.act_dim}; "
                f"the agent expects {self.obs_dim}, {self.act_dim} (label segments of the same task's dataset)"
            )

    def _prepare(self, dataset: Any, preferences: PreferenceDataset | None) -> None:
        """Turn inputs into tensors before the first update (default: the transitions, see
        :meth:`transitions_from`)."""
        self.data = self.transitions_from(dataset)

    def _sample(self) -> dict[str, torch.Tensor]:
        """Everything random that one update needs (minibatch rows, noise, dropout seeds), drawn from the
        agent's ``rng`` / ``torch_gen``: a dict of tensors. Default: :meth:`sample_transitions`."""
        return self.sample_transitions()

    @abstractmethod
    def _update_on(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor | float]:
        """One gradient step on what :meth:`_sample` drew; returns scalar losses (tensors or floats).

        It reads no RNG and takes its gradient steps through :meth:`_step`, so that the same code runs for
        one seed or, vmapped, for K seeds at once (:class:`MultiSeed`)."""

    def _update(self) -> dict[str, float]:
        """One gradient step: :meth:`_update_on` (:meth:`_sample`); returns scalar losses for logging."""
        return {k: float(v) for k, v in self._update_on(self._sample()).items()}

    def _step(self, optim: str, loss_fn: Callable[[], Any], max_grad_norm: float | None = None) -> Any:
        """One step of ``self.optims[optim]`` on the scalar loss that ``loss_fn()`` returns (optionally clipping
        the global gradient norm of the optimiser's parameters to ``max_grad_norm``).

        ``loss_fn`` returns ``loss`` or ``(loss, aux)`` with ``aux`` a dict of tensors to log; the step returns
        the detached ``loss`` (or ``(loss, aux)`` detached). Writing each gradient step as a closure lets
        :class:`MultiSeed` take it with ``torch.func.grad`` for K seeds at once."""
        if self._functional is not None:
            return self._functional.step(optim, loss_fn, max_grad_norm)
        out = loss_fn()
        loss = out[0] if isinstance(out, tuple) else out
        opt = self.optims[optim]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if max_grad_norm is not None:
            nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], max_grad_norm)
        opt.step()
        if isinstance(out, tuple):
            return loss.detach(), {k: v.detach() for k, v in out[1].items()}
        return loss.detach()

    @contextlib.contextmanager
    def _dropout_scope(self, batch: dict[str, torch.Tensor]) -> Any:
        """Draw the scope's dropout masks from a NumPy generator seeded with ``batch["torch_seed"]`` (drawn
        by ``_sample`` with :meth:`draw_torch_seed`): every :class:`~pbrl.agents.networks.Dropout` in the
        scope takes :func:`~pbrl.agents.networks.dropout_noise` from it, in call order. With K seeds vmapped,
        :class:`MultiSeed` gives every Dropout seed k's masks from a generator seeded with seed k's value
        instead: the same masks."""
        if self._functional is not None:
            yield
            return
        rng = np.random.default_rng(int(batch["torch_seed"]))
        device = self.device
        previous = Dropout.noise_source
        Dropout.noise_source = lambda shape, p: dropout_noise(shape, p, rng, device)
        try:
            yield
        finally:
            Dropout.noise_source = previous

    def draw_torch_seed(self) -> torch.Tensor:
        """A seed for one update's dropout masks from the agent's ``rng`` (a 0-d int64 tensor, for :meth:`_dropout_scope`)."""
        return torch.tensor(int(self.rng.integers(2**62)), dtype=torch.int64)

    def _policy_act(self, obs: torch.Tensor, deterministic: bool) -> torch.Tensor:
        """``[B, obs_dim]`` normalised obs -> ``[B, act_dim]`` actions in ``[-1, 1]``."""
        return self.nets["policy"].act(obs, deterministic=deterministic, generator=self.torch_gen)

    def _extra_state(self) -> dict[str, Any]:
        """Anything besides nets/optims to save (tensors or plain Python); restored by ``_load_extra_state``."""
        return {}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore what ``_extra_state`` saved (nothing by default)."""
        return None

    # ------------------------------------------------------------------ construction
    @classmethod
    def check_run(cls, agent_kwargs: dict[str, Any], segment_length: int, longest_episode: int) -> None:  # noqa: B027
        """Raise one ``ValueError`` if a run's ``agent_kwargs`` cannot work with its segments and episodes
        (called by ``pbrl train offline`` before any work; nothing to check by default)."""

    @classmethod
    def from_dataset(cls, dataset: Any, seeds: Sequence[int] | None = None, **hyperparameters: Any) -> Any:
        """Build an agent sized for ``dataset`` (an ``OfflineDataset``): ``obs_dim``, ``act_dim`` and, when the
        dataset's metadata names a registered task (``metadata["task_id"]``), that task's action bounds.

        With ``seeds=(0, 1, 2)`` (instead of ``seed``) it returns a :class:`MultiSeed` of one such agent per
        seed, trained together in one process (``fit``), and ``split()`` into ordinary agents."""
        if seeds is not None:
            if "seed" in hyperparameters:
                raise ValueError("give either seed=... (one agent) or seeds=(...) (several), not both")
            if isinstance(seeds, (int, np.integer)) or not all(
                isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in seeds
            ) or len(seeds) == 0:
                raise ValueError(f"seeds must be a non-empty sequence of ints, e.g. (0, 1, 2), got {seeds!r}")
            return MultiSeed([cls.from_dataset(dataset, seed=int(s), **hyperparameters) for s in seeds])
        if not hasattr(dataset, "obs_dim") or not hasattr(dataset, "act_dim"):
            raise TypeError(f"from_dataset needs an OfflineDataset, got {type(dataset).__name__}")
        kw = dict(hyperparameters)
        task = (getattr(dataset, "metadata", None) or {}).get("task_id")
        if task and "action_low" not in kw and "action_high" not in kw:
            try:
                env = make_env(task)
                space = env.action_space
                kw["action_low"], kw["action_high"] = space.low.tolist(), space.high.tolist()
                env.close()
            except (ValueError, TypeError, ImportError):  # unknown task: keep [-1, 1]
                pass
        return cls(dataset.obs_dim, dataset.act_dim, **kw)

    # ------------------------------------------------------------------ data helpers
    def _norm_obs_np(self, obs: np.ndarray) -> np.ndarray:
        if not self.normalize_obs:
            return obs.astype(np.float32, copy=False)
        return ((obs - self.obs_mean) / self.obs_std).astype(np.float32, copy=False)

    def _act_to_unit(self, act: np.ndarray) -> np.ndarray:
        """Env actions -> the agent's ``[-1, 1]`` range (clipped)."""
        unit = 2.0 * (act - self.action_low) / (self.action_high - self.action_low) - 1.0
        return np.clip(unit, -1.0, 1.0).astype(np.float32)

    def _unit_to_act(self, unit: np.ndarray) -> np.ndarray:
        return (self.action_low + (unit + 1.0) * 0.5 * (self.action_high - self.action_low)).astype(np.float32)

    def tensor(self, x: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """NumPy -> torch on the agent's device."""
        return torch.as_tensor(np.asarray(x), dtype=dtype, device=self.device)

    def _fit_options(self, **options: Any) -> None:
        """Agent-specific ``fit`` arguments (none here; PEARL's ``target_preferences``)."""
        if options:
            raise TypeError(f"{type(self).__name__}.fit got unexpected arguments {sorted(options)}")

    def _start_fit(self, dataset: Any, preferences: PreferenceDataset | None, steps: int) -> None:
        """Before a ``fit``'s first update (inputs already checked): the obs statistics (first fit only), then
        :meth:`_prepare`. Subclasses that fix something from ``steps`` extend this."""
        if self.normalize_obs and self.num_updates == 0:
            obs = np.asarray(dataset.observations, dtype=np.float64)
            self.obs_mean = obs.mean(0).astype(np.float32)
            self.obs_std = (obs.std(0) + 1e-3).astype(np.float32)
        self._prepare(dataset, preferences)

    def fit(
        self,
        dataset: Any,
        preferences: PreferenceDataset | None = None,
        steps: int = 10_000,
        callback: Any = None,
        eval_env: Any = None,
        eval_every: int | None = None,
        n_eval_episodes: int = 5,
        eval_seed: int = 0,
        progress: bool = True,
        log_interval: int = 100,
    ) -> dict[str, Any]:
        """Train for ``steps`` gradient updates on ``dataset`` (an ``OfflineDataset``) and ``preferences``.

        Args:
            dataset: the offline data (transitions; its true rewards are ignored by preference agents).
            preferences: the labelled segment pairs (``None`` only for agents with ``requires_preferences``
                False, i.e. ``IQL`` on the true reward).
            steps: number of gradient updates (> 0).
            callback: a stable-baselines3 callback (``BaseCallback``), a list of them (a ``CallbackList``) or a
                function ``callback(agent, step, losses)``, as in :mod:`pbrl.callbacks`: ``on_step`` runs after
                every update (``self.num_timesteps`` = updates so far, ``self.locals["losses"]`` its losses)
                and returning ``False`` stops training early.
            eval_env: a task id (``"mujoco/Hopper-v5"``) or a gymnasium env to evaluate on during training
                (a :class:`~pbrl.envs.evaluation.PbrlEvalCallback`); ``None`` for no live evaluation.
            eval_every: evaluate every this many updates (default ``default_eval_every``; at multiples of it,
                counted over the agent's updates) and after the last.
            n_eval_episodes: episodes per evaluation (default 5).
            eval_seed: seed of the evaluation episodes (the same episodes at every evaluation).
            progress: show a tqdm progress bar.
            log_interval: record the losses as ``train/<name>`` in :attr:`logger` every this many updates.

        Returns:
            ``{"steps": updates done in this call, "num_updates": total, "losses": mean of each logged loss
            over the last 10 % of this call's updates, "evaluations": [{"step", "labels", "mean_return",
            "std_return", "success_rate", "normalized_score"}...], "final_eval": the last evaluation or None,
            "wall_time_s": float}``.
        """
        from stable_baselines3.common.callbacks import CallbackList

        steps = check_positive_int("steps", steps)
        n_eval_episodes = check_positive_int("n_eval_episodes", n_eval_episodes)
        if eval_every is not None:
            eval_every = check_positive_int("eval_every", eval_every)
        user_callback = as_callback(callback)
        self._check_inputs(dataset, preferences)
        keep_freed_memory()  # big activations reuse freed heap blocks instead of fresh mmaps (same numbers)
        evaluator = None
        if eval_env is not None:
            env = make_env(eval_env, seed=eval_seed) if isinstance(eval_env, str) else eval_env
            evaluator = PbrlEvalCallback(env, eval_every or self.default_eval_every, n_eval_episodes, seed=eval_seed, dataset=dataset,
                                         labels=len(preferences) if preferences is not None else 0)
        callbacks = CallbackList([c for c in (evaluator, user_callback) if c is not None])
        callbacks.init_callback(self)
        self._start_fit(dataset, preferences, steps)
        recent: dict[str, list[float]] = {}
        tail = max(1, steps // 10)
        t0 = time.perf_counter()
        callbacks.on_training_start({"agent": self, "dataset": dataset, "preferences": preferences, "steps": steps}, {})
        bar = tqdm(range(steps), desc=type(self).__name__, disable=not progress, unit="upd")
        done = 0
        for i in bar:
            for net in self.nets.values():
                net.train()
            losses = self._update()
            self.num_updates += 1
            done = i + 1
            if i >= steps - tail:
                for k, v in losses.items():
                    recent.setdefault(k, []).append(float(v))
            if log_interval and self.num_updates % log_interval == 0:
                for k, v in losses.items():
                    self.logger.record(f"train/{k}", float(v))
            callbacks.update_locals({"losses": losses})
            n_evals = len(evaluator.history) if evaluator is not None else 0
            if not callbacks.on_step():
                break
            if evaluator is not None and len(evaluator.history) > n_evals:
                ev = evaluator.history[-1]
                bar.set_postfix(ret=f"{ev['mean_return']:.1f}", succ=f"{ev['success_rate']:.2f}")
        bar.close()
        callbacks.on_training_end()  # the evaluator's final evaluation
        if evaluator is not None and isinstance(eval_env, str):
            evaluator.eval_env.close()
        evaluations = evaluator.history if evaluator is not None else []
        return {
            "steps": done,
            "num_updates": self.num_updates,
            "losses": {k: finite_mean(v) for k, v in recent.items()},
            "evaluations": evaluations,
            "final_eval": evaluations[-1] if evaluations else None,
            "wall_time_s": time.perf_counter() - t0,
        }

    # ------------------------------------------------------------------ what SB3 callbacks read
    @property
    def num_timesteps(self) -> int:
        """The update count (:attr:`num_updates`), under the name SB3's ``BaseCallback`` reads."""
        return self.num_updates

    @property
    def logger(self) -> Any:
        """The SB3 logger of ``fit``'s losses and of the callbacks (default: one that writes nowhere)."""
        if self._logger is None:
            from stable_baselines3.common.logger import Logger

            self._logger = Logger(folder=None, output_formats=[])
        return self._logger

    def set_logger(self, logger: Any) -> None:
        """Log through ``logger`` (an SB3 ``Logger``, e.g. ``stable_baselines3.common.logger.configure(...)``)."""
        self._logger = logger

    def get_env(self) -> None:
        """``None``: an offline agent has no training env (SB3 callbacks' ``training_env`` needs one)."""
        return None

    def evaluate(self, env: Any, n_episodes: int = 10, dataset: Any = None, seed: int = 0) -> dict[str, Any]:
        """Roll the deterministic policy out on ``env`` (task id or gymnasium env).

        Returns ``{"mean_return", "std_return", "success_rate", "normalized_score"}``; the score is
        ``dataset.normalized_score(mean_return)`` when ``dataset`` knows its reference returns (D4RL's on a
        MuJoCo locomotion task), else D4RL's score of the task ``env`` names, else None.
        """
        res = evaluate_policy_episodes(self, env, n_episodes=n_episodes, deterministic=True, seed=seed)
        score = None
        if dataset is not None and hasattr(dataset, "normalized_score"):
            try:
                score = float(np.mean(dataset.normalized_score(np.asarray(res["returns"]))))
            except (ValueError, KeyError, TypeError):  # no reference returns in the metadata
                score = None
        if score is None and isinstance(env, str):
            score = task_normalized_score(env, res["returns"])
        return {
            "mean_return": res["mean_return"],
            "std_return": res["std_return"],
            "success_rate": res["success_rate"],
            "normalized_score": score,
        }

    # ------------------------------------------------------------------ acting
    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, None]:
        """SB3's ``predict``: ``observation [obs_dim]`` or ``[n, obs_dim]`` -> ``(action [act_dim] or [n, act_dim],
        None)`` in the env's action bounds. ``state`` / ``episode_start`` are accepted and ignored (no recurrence)."""
        obs = np.asarray(observation, dtype=np.float32)
        single = obs.ndim == 1
        if obs.shape[-1] != self.obs_dim or obs.ndim not in (1, 2):
            raise ValueError(f"observation must have shape ({self.obs_dim},) or (n, {self.obs_dim}), got {obs.shape}")
        x = self.tensor(self._norm_obs_np(obs[None] if single else obs))
        for net in self.nets.values():
            net.eval()
        with torch.no_grad():
            unit = self._policy_act(x, deterministic).cpu().numpy()
        act = self._unit_to_act(unit)
        return (act[0] if single else act), None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(obs_dim={self.obs_dim}, act_dim={self.act_dim}, updates={self.num_updates})"
