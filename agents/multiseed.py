"""K seeds of an offline agent in one process: :class:`MultiSeed`.

``Agent.from_dataset(ds, seeds=(0, 1, 2), **hp)`` builds one ordinary agent per seed (each initialised exactly
like a single-seed agent) and wraps them in a :class:`MultiSeed`, whose ``fit`` stacks their parameters and
Adam states on a seed dimension and runs the agent's one-seed ``_update_on`` for all seeds at once with
``torch.func.vmap``; ``split()`` gives the K ordinary agents back.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn as nn
from tqdm.auto import tqdm

from pbrl.agents.networks import Dropout, dropout_noise
from pbrl.agents.offline_data import check_positive_int, finite_mean
from pbrl.memory import keep_freed_memory
from pbrl.preferences import PreferenceDataset

if TYPE_CHECKING:
    from pbrl.agents.offline_base import OfflineAgent

__all__ = ["MultiSeed"]


class _VmappedSeeds:
    """The K members' parameters and Adam states stacked on a leading seed dimension, and one update of all K
    as ``torch.func.vmap`` of the first member's :meth:`OfflineAgent._update_on` (the other members hold their
    own data and RNGs; only their tensors are used here).

    Inside the vmap every network of the template is re-parametrised with its seed's slice
    (``functional_call``-style); :meth:`step` differentiates the agent's loss closure with ``torch.func.grad``
    and applies torch's own functional Adam/AdamW (``torch.optim.adam.adam``, the single-tensor code path
    that ``torch.optim.Adam`` runs on CPU) in place on the stacked tensors, so that each seed's update is
    elementwise the one its own optimiser would make.
    """

    def __init__(self, members: Sequence[OfflineAgent]):
        from torch.optim import Adam

        self.members, self.template = list(members), members[0]
        t = self.template
        self.params: dict[str, dict[str, torch.Tensor]] = {}
        for name, net in t.nets.items():
            named = dict(net.named_parameters()) | dict(net.named_buffers())
            self.params[name] = {
                pn: torch.stack([_named_tensor(m.nets[name], pn).detach() for m in self.members]).clone()
                for pn in named
            }
        self._owner = {id(p): (name, pn) for name, net in t.nets.items() for pn, p in net.named_parameters()}
        self.groups: dict[str, list[list[tuple[str, str]]]] = {}
        self.opt_state: dict[str, list[tuple[list[torch.Tensor], list[torch.Tensor]]]] = {}
        self.steps: dict[str, list[list[torch.Tensor]]] = {}
        self._opt_ids: dict[str, int] = {}
        for o, opt in t.optims.items():
            if not isinstance(opt, Adam) or any(g.get("amsgrad") for g in opt.param_groups):
                raise TypeError(f"K seeds at once support Adam/AdamW optimisers without amsgrad; {o!r} is {type(opt).__name__}")
            self._load_optimizer(o)

    def _load_optimizer(self, o: str) -> None:
        """Map the template optimiser ``o``'s groups to (net, name) keys and stack the members' Adam moments."""
        t = self.template
        opt = t.optims[o]
        self._opt_ids[o] = id(opt)
        self.groups[o], self.opt_state[o], self.steps[o] = [], [], []
        for gi, g in enumerate(opt.param_groups):
            keys = [self._owner[id(p)] for p in g["params"]]
            ea, eas, st = [], [], []
            for j, (n, pn) in enumerate(keys):
                states = [m.optims[o].state.get(m.optims[o].param_groups[gi]["params"][j], {}) for m in self.members]
                p = self.params[n][pn]
                if all("exp_avg" in s for s in states):
                    ea.append(torch.stack([s["exp_avg"] for s in states]).clone())
                    eas.append(torch.stack([s["exp_avg_sq"] for s in states]).clone())
                    st.append(torch.as_tensor(states[0]["step"], dtype=torch.float32).clone())
                else:
                    ea.append(torch.zeros_like(p))
                    eas.append(torch.zeros_like(p))
                    st.append(torch.tensor(0.0))
            self.groups[o].append(keys)
            self.opt_state[o].append((ea, eas))
            self.steps[o].append(st)

    # ------------------------------------------------------------------ one update of all K
    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One update of every seed on ``batch`` (each tensor ``[K, ...]``); returns ``{loss: [K]}``."""
        t = self.template
        # randomness="error": everything random was drawn by _sample, except dropout masks, which Dropout draws
        # outside the transforms from each seed's own generator, seeded like a single-seed run's _dropout_scope
        fn = torch.func.vmap(self._run, randomness="error")
        self._gens = None
        if "torch_seed" in batch:
            self._gens = [np.random.default_rng(int(s)) for s in batch["torch_seed"]]
        Dropout.noise_source = self._noise
        try:
            logs = fn(self.params, self.opt_state, batch)
        finally:
            Dropout.noise_source = None
        for o, opt in list(t.optims.items()):  # an agent that replaced an optimiser (CPL after BC) starts it afresh
            if id(opt) != self._opt_ids[o]:
                for m in self.members:
                    m.optims[o] = _rebuilt_like(opt, m, self.groups[o])
                self._load_optimizer(o)
        return logs

    def _run(self, params: dict, opt_state: dict, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        from torch._C._functorch import maybe_get_level  # private: the vmap level, for per-seed dropout masks
        from torch.nn.utils.stateless import _reparametrize_module

        t = self.template
        self._cur_params, self._cur_state = params, opt_state
        self._level = maybe_get_level(next(iter(next(iter(params.values())).values())))
        with contextlib.ExitStack() as stack:
            for name, net in t.nets.items():
                stack.enter_context(_reparametrize_module(net, params[name]))
            t._functional = self
            try:
                logs = t._update_on(batch)
            finally:
                t._functional = None
        return {k: torch.as_tensor(v, dtype=torch.float32) for k, v in logs.items()}

    def _noise(self, shape: torch.Size, p: float) -> torch.Tensor:
        """Inside the vmap: dropout noise of per-seed ``shape``, seed k's from generator k
        (:func:`~pbrl.agents.networks.dropout_noise`, the draws a single-seed run's ``_dropout_scope`` makes)."""
        from torch._C._functorch import _add_batch_dim  # private: seed k's noise as the vmap's k-th slice

        if self._gens is None:
            raise RuntimeError("a vmapped update used dropout without a torch_seed in its batch (see _dropout_scope)")
        with torch._C._DisableFuncTorch():  # plain tensors, drawn outside the transforms
            noise = torch.stack([dropout_noise(shape, p, g, self.template.device) for g in self._gens])
        return _add_batch_dim(noise, 0, self._level)

    def step(self, o: str, loss_fn: Callable[[], torch.Tensor], max_grad_norm: float | None) -> torch.Tensor:
        """Inside the vmap: the gradient of ``loss_fn`` w.r.t. optimiser ``o``'s parameters, then its Adam step."""
        from torch.nn.utils.stateless import _reparametrize_module

        t = self.template
        keys = [k for g in self.groups[o] for k in g]
        tensors = [self._cur_params[n][pn] for n, pn in keys]

        def f(plist: list[torch.Tensor]) -> tuple[torch.Tensor, Any]:
            per_net: dict[str, dict[str, torch.Tensor]] = {}
            for (n, pn), p in zip(keys, plist):
                per_net.setdefault(n, {})[pn] = p
            with contextlib.ExitStack() as stack:
                for n, sub in per_net.items():
                    stack.enter_context(_reparametrize_module(t.nets[n], sub))
                out = loss_fn()
            if isinstance(out, tuple):
                return out[0], (out[0].detach(), {k: v.detach() for k, v in out[1].items()})
            return out, out.detach()

        grads, result = torch.func.grad(f, has_aux=True)(tensors)
        if max_grad_norm is not None:  # torch.nn.utils.clip_grad_norm_, per seed
            total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g, 2.0) for g in grads]), 2.0)
            coef = torch.clamp(max_grad_norm / (total + 1e-6), max=1.0)
            grads = [g * coef for g in grads]
        i = 0
        for gi, group in enumerate(t.optims[o].param_groups):
            n_g = len(self.groups[o][gi])
            ea, eas = self._cur_state[o][gi]
            _adam_step(tensors[i : i + n_g], grads[i : i + n_g], ea, eas, self.steps[o][gi], group)
            i += n_g
        return result

    # ------------------------------------------------------------------ back to K ordinary agents
    def write_back(self) -> None:
        """Copy seed k's slice of every network and Adam state into member k's own modules and optimisers."""
        t = self.template
        for k, m in enumerate(self.members):
            for name, net in m.nets.items():
                with torch.no_grad():
                    for pn, v in self.params[name].items():
                        _named_tensor(net, pn).copy_(v[k])
            for o in t.optims:
                opt = _rebuilt_like(t.optims[o], m, self.groups[o])
                for gi in range(len(self.groups[o])):
                    ea, eas = self.opt_state[o][gi]
                    for j, p in enumerate(opt.param_groups[gi]["params"]):
                        if float(self.steps[o][gi][j]) > 0:
                            opt.state[p] = {"step": self.steps[o][gi][j].clone(), "exp_avg": ea[j][k].clone(),
                                            "exp_avg_sq": eas[j][k].clone()}
                m.optims[o] = opt
        for o in t.optims:
            self._load_optimizer(o)  # the template's optimisers are new objects now


def _adam_step(params: list[torch.Tensor], grads: list[torch.Tensor], exp_avgs: list[torch.Tensor],
               exp_avg_sqs: list[torch.Tensor], steps: list[torch.Tensor], group: dict[str, Any]) -> None:
    """``torch.optim.Adam`` / ``AdamW``'s single-tensor step (the CPU path; amsgrad off), op for op, written with
    out-of-place ops and ``copy_`` because vmap has batching rules for those (not for ``lerp_``, ``addcmul_``,
    ``addcdiv_``)."""
    beta1, beta2 = group["betas"]
    lr, wd, eps = group["lr"], group["weight_decay"], group["eps"]
    for param, grad, exp_avg, exp_avg_sq, step_t in zip(params, grads, exp_avgs, exp_avg_sqs, steps):
        grad = -grad if group["maximize"] else grad
        step_t += 1
        if wd != 0:
            if group.get("decoupled_weight_decay", False):
                param.copy_(param * (1 - lr * wd))
            else:
                grad = grad.add(param, alpha=wd)
        exp_avg.copy_(torch.lerp(exp_avg, grad, 1 - beta1))
        exp_avg_sq.copy_(torch.addcmul(exp_avg_sq * beta2, grad, grad, value=1 - beta2))
        step = float(step_t)
        bias_correction1 = 1 - beta1**step
        bias_correction2 = 1 - beta2**step
        step_size = lr / bias_correction1
        denom = (exp_avg_sq.sqrt() / bias_correction2**0.5).add_(eps)
        param.copy_(torch.addcdiv(param, exp_avg, denom, value=-step_size))


def _named_tensor(module: nn.Module, name: str) -> torch.Tensor:
    """The parameter or buffer ``name`` (dotted) of ``module``."""
    try:
        return module.get_parameter(name)
    except AttributeError:
        return module.get_buffer(name)


def _rebuilt_like(opt: torch.optim.Optimizer, member: OfflineAgent, groups: list[list[tuple[str, str]]]) -> torch.optim.Optimizer:
    """A fresh optimiser of ``opt``'s class and per-group settings over ``member``'s corresponding parameters."""
    new_groups = []
    for g, keys in zip(opt.param_groups, groups):
        settings = {k: v for k, v in g.items() if k != "params"}
        new_groups.append({**settings, "params": [member.nets[n].get_parameter(pn) for n, pn in keys]})
    return type(opt)(new_groups)


class MultiSeed:
    """K independent seeds of one offline agent, trained together in one process.

    ``IPL.from_dataset(ds, seeds=(0, 1, 2), **hp)`` builds one :class:`OfflineAgent` per seed (each initialised
    exactly as a single-seed agent with that seed) and wraps them. :meth:`fit` draws every seed's minibatch
    from that seed's own RNG and data, then runs the agent's one-seed update (:meth:`OfflineAgent._update_on`)
    for all K at once with ``torch.func.vmap`` over parameters stacked on a seed dimension; each seed keeps its
    own Adam state. Agents with a per-seed preprocessing step (MR+IQL's and PEARL's reward models, PEARL's
    label transfer) run that step once per seed before the updates. :meth:`split` returns the K ordinary
    agents, which predict, save, load and train on as usual.

    Args:
        members: the K agents, one class and one configuration apart from ``seed``, none trained yet or all
            trained for the same number of updates.
    """

    def __init__(self, members: Sequence[OfflineAgent]):
        members = list(members)
        if not members:
            raise ValueError("MultiSeed needs at least one agent")
        klass = type(members[0])
        base_cfg = {k: v for k, v in members[0].config.items() if k != "seed"}
        for m in members:
            if type(m) is not klass or {k: v for k, v in m.config.items() if k != "seed"} != base_cfg:
                raise ValueError("MultiSeed members must be one agent class with one configuration apart from the seed")
        seeds = [m.seed for m in members]
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds must be distinct, got {seeds}")
        if len({m.num_updates for m in members}) != 1:
            raise ValueError("MultiSeed members must have taken the same number of updates")
        self.members, self.seeds, self.agent_class = members, seeds, klass

    def __len__(self) -> int:
        return len(self.members)

    def __repr__(self) -> str:
        return f"MultiSeed({self.agent_class.__name__}, seeds={self.seeds}, updates={self.members[0].num_updates})"

    @property
    def num_updates(self) -> int:
        return self.members[0].num_updates

    def fit(
        self,
        dataset: Any,
        preferences: PreferenceDataset | None = None,
        steps: int = 10_000,
        eval_env: Any = None,
        n_eval_episodes: int = 5,
        eval_seed: int = 0,
        progress: bool = True,
        prepare: bool = True,
        **fit_options: Any,
    ) -> dict[str, Any]:
        """Train every seed for ``steps`` updates (as :meth:`OfflineAgent.fit` would, seed by seed).

        ``preferences``: one labelled set for every seed, or a list of one per seed (a sweep's seeds draw
        their own labels). ``eval_env`` (a task id or env) evaluates each seed after the last update.
        ``prepare=False`` continues on inputs an earlier ``fit`` (or ``_start_fit``) of the same data already
        prepared, without redoing it (a run trained in chunks: MR+IQL would relabel the dataset each time). ``fit_options`` are the
        agent's own extra ``fit`` arguments (PEARL's ``target_preferences``).

        Returns:
            ``{"steps", "num_updates", "seeds", "losses": [per seed: mean of each loss over the last 10 % of
            the updates], "final_eval": [per seed] or None, "wall_time_s": the updates' wall time, after the
            per-seed preparation, as in ``OfflineAgent.fit``}``.
        """
        steps = check_positive_int("steps", steps)
        n_eval_episodes = check_positive_int("n_eval_episodes", n_eval_episodes)
        if isinstance(preferences, (list, tuple)):
            if len(preferences) != len(self):
                raise ValueError(f"preferences: one per seed expected ({len(self)}), got {len(preferences)}")
            per_seed = list(preferences)
        else:
            per_seed = [preferences] * len(self)
        for m, p in zip(self.members, per_seed):
            m._fit_options(**fit_options)
            m._check_inputs(dataset, p)
        keep_freed_memory()  # big activations reuse freed heap blocks instead of fresh mmaps (same numbers)
        for m, p in zip(self.members, per_seed):
            if prepare or not getattr(m, "_multiseed_prepared", False):
                m._start_fit(dataset, p, steps)
                m._multiseed_prepared = True
        engine = _VmappedSeeds(self.members)
        t0 = time.perf_counter()
        t = self.members[0]
        for net in t.nets.values():
            net.train()
        tail = max(1, steps // 10)
        recent: dict[str, list[torch.Tensor]] = {}
        for i in tqdm(range(steps), desc=f"{type(t).__name__} x{len(self)}", disable=not progress, unit="upd"):
            batches = [m._sample() for m in self.members]
            batch = {k: torch.stack([b[k] for b in batches]) for k in batches[0]}
            logs = engine.update(batch)
            for m in self.members:
                m.num_updates += 1
            if i >= steps - tail:
                for k, v in logs.items():
                    recent.setdefault(k, []).append(v.detach())
        engine.write_back()
        wall = time.perf_counter() - t0
        losses = [{k: finite_mean(torch.stack(v)[:, j].tolist()) for k, v in recent.items()} for j in range(len(self))]
        final = None
        if eval_env is not None:
            final = [m.evaluate(eval_env, n_eval_episodes, dataset=dataset, seed=eval_seed) for m in self.members]
        return {"steps": steps, "num_updates": self.num_updates, "seeds": list(self.seeds), "losses": losses,
                "final_eval": final, "wall_time_s": wall}

    def split(self) -> list[OfflineAgent]:
        """The K trained agents as ordinary single-seed agents (independent copies)."""
        import copy

        return [copy.deepcopy(m) for m in self.members]

    def save(self, directory: str | Path) -> list[Path]:
        """Save each seed's agent as ``directory/seed_<seed>.pt`` (load them with ``OfflineAgent.load``)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        return [m.save(directory / f"seed_{m.seed}.pt") for m in self.members]
