"""pbrl's IPL beside the IPL authors' own code, on the same dataset, the same labels and the same batches.

Issue 30 asks whether IPL's collapse on Hopper is a pbrl defect or a property of IPL on that data. Trained
with the same seeds and the same number of updates (``--variants``):

* ``pbrl``: :class:`pbrl.agents.IPL` at its defaults (the authors' locomotion configuration); ``pbrl-mask``:
  ``mask_segment_terminals=True``; ``pbrl-rawobs``: ``normalize_obs=False`` (the authors feed raw observations);
* ``peer``: ``IPL_IQL`` of the authors' code (``jhejna/inverse-preference-learning``), built by their own
  ``Algorithm`` constructors with their ``ActorCriticValuePolicy`` and the values of their
  ``configs/gym_locomotion/ipl_iql.yaml``, trained through their ``train_step``. Their files are loaded, never
  copied; only their imports of old ``gym`` (``gymnasium``'s spaces stand in) and ``imageio`` (unused in
  training) are replaced, and only while their modules load.

:class:`PeerBatches` feeds the peer in their batch format, drawn with pbrl IPL's sampling rule and in the order
of its random draws, so that with the same seed both train on the same pairs, crops and transitions. Where the
authors' own loaders differ: their feedback loader crops every pair of a batch at one shared start and walks
the pairs in epochs; their crop of ``subsample_size`` states holds one transition less than pbrl's crop of
``segment_crop`` transitions (used here); a segment without a known successor repeats its last observation
(their D4RL loader's rule), where pbrl drops that step from the loss.

At every ``--eval-every`` updates each run is evaluated on the live env (deterministic: the authors'
``_predict``, ``dist.loc`` clamped) and its implicit reward is measured over every dataset transition
(:func:`reward_stats`). Every (variant, seed) runs in its own process (``--threads`` torch threads, default 1;
``--jobs`` at once) and is saved to ``<out>/runs/<variant>-s<seed>.json`` when it ends, so a stopped comparison
run again with the same arguments runs only what it lacks. Writes ``<out>/ipl_peer.json`` and ``.png`` and
prints a Markdown table::

    python scripts/ipl_peer.py --dataset data/datasets/mujoco_Hopper-v5/medium-replay.hdf5 \\
        --labels data/datasets/mujoco_Hopper-v5/medium-replay.prefs_oracle_500.h5 --seeds 0 1 2 --jobs 2
    python scripts/ipl_peer.py --report-only          # the table and figure of the saved results
    python scripts/ipl_peer.py --fall-returns         # what the true reward says of the steps before a fall

The authors' code: ``--peer DIR``, a checkout of https://github.com/jhejna/inverse-preference-learning or its
git directory (``research/`` and ``configs/`` then come from ``HEAD`` by ``git archive``); default
``$PBRL_IPL_PEER``, else :data:`DEFAULT_PEER`.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
VARIANTS = ("pbrl", "pbrl-mask", "pbrl-rawobs", "peer")
DEFAULT_VARIANTS = ("pbrl", "pbrl-mask", "peer")
#: what each pbrl variant changes in :class:`pbrl.agents.IPL`'s defaults
PBRL_VARIANTS: dict[str, dict[str, Any]] = {"pbrl": {}, "pbrl-mask": {"mask_segment_terminals": True},
                                            "pbrl-rawobs": {"normalize_obs": False}}
PEER_URL = "https://github.com/jhejna/inverse-preference-learning"
PEER_ENV = "PBRL_IPL_PEER"
#: where this project's machines keep a mirror of the authors' repository (a bare git directory)
DEFAULT_PEER = Path("/work/.mirror/jhejna+inverse-preference-learning/repo")
PEER_FILES = ("research/algs/ipl_iql.py", "configs/gym_locomotion/ipl_iql.yaml")
PEER_CONFIG = "configs/gym_locomotion/ipl_iql.yaml"
#: the command-line overrides, applied to every implementation alike (None: each one's own configuration)
OVERRIDES = ("hidden", "segment_crop", "pref_batch_size", "batch_size")


# ---------------------------------------------------------------------------------------------- the authors' code
def peer_problem(src: Path) -> str | None:
    """Why ``src`` is not a usable copy of the authors' code (None when it is: a checkout or a git directory)."""
    if all((src / f).is_file() for f in PEER_FILES):
        return None
    if src.is_dir() and all(subprocess.run(["git", "-C", str(src), "cat-file", "-e", f"HEAD:{f}"],
                                             capture_output=True).returncode == 0 for f in PEER_FILES):
        return None
    return (f"the IPL authors' code is not at {src} (no {PEER_FILES[0]}); get it with `git clone {PEER_URL} DIR` "
            f"and pass --peer DIR (or set {PEER_ENV}), or run only pbrl's variants (--variants pbrl pbrl-mask)")


def peer_commit(src: Path) -> str | None:
    """The commit of the authors' code at ``src`` (None for a copy outside git)."""
    out = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True)
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def extract_peer(src: Path, dest: Path) -> Path:
    """A directory holding the authors' ``research/`` and ``configs/``: ``src`` itself when it is a checkout,
    else their ``HEAD`` unpacked into ``dest`` from the git directory ``src``."""
    if all((src / f).is_file() for f in PEER_FILES):
        return src
    tar = subprocess.run(["git", "-C", str(src), "archive", "HEAD", "research", "configs"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=tar.stdout, check=True)
    return dest


@contextlib.contextmanager
def _stand_ins():
    """``gym`` (the authors' code reads only ``gym.spaces``, ``gym.Space`` and ``gym.Env``) as ``gymnasium``'s,
    and an empty ``imageio`` (imported, unused in training), while the authors' modules load."""
    import gymnasium

    gym = types.ModuleType("gym")
    gym.spaces, gym.Space, gym.Env = gymnasium.spaces, gymnasium.Space, gymnasium.Env
    saved = {k: sys.modules.get(k) for k in ("gym", "imageio")}
    sys.modules.update(gym=gym, imageio=types.ModuleType("imageio"))
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


def load_peer(root: Path) -> types.SimpleNamespace:
    """The authors' classes, imported from their files under ``root``. Their package ``__init__`` files of
    ``research``, ``research.algs``, ``research.datasets`` and ``research.envs`` import D4RL, robomimic and
    Meta-World, so those packages are entered by path without running them."""
    def package(name: str, path: Path) -> types.ModuleType:
        mod = types.ModuleType(name)
        mod.__path__ = [str(path)]
        sys.modules[name] = mod
        return mod

    with _stand_ins():
        research = package("research", root / "research")
        for sub in ("algs", "datasets", "envs"):
            setattr(research, sub, package(f"research.{sub}", root / "research" / sub))
        ipl = importlib.import_module("research.algs.ipl_iql")
        networks = importlib.import_module("research.networks")
        envs = importlib.import_module("research.envs.base")
        feedback = importlib.import_module("research.datasets.feedback_buffer")
    return types.SimpleNamespace(IPL_IQL=ipl.IPL_IQL, ActorCriticValuePolicy=networks.ActorCriticValuePolicy,
                                 Empty=envs.Empty, ReplayAndFeedbackBuffer=feedback.ReplayAndFeedbackBuffer)


def _resolve_imports(value: Any) -> Any:
    """Their config's ``["import", "torch.nn", "Tanh"]`` values as the objects they name (their Config's rule)."""
    if isinstance(value, list) and len(value) == 3 and value[0] == "import":
        return getattr(importlib.import_module(value[1]), value[2])
    if isinstance(value, dict):
        return {k: _resolve_imports(v) for k, v in value.items()}
    return value


def peer_config(root: Path) -> dict[str, Any]:
    """The authors' locomotion configuration (:data:`PEER_CONFIG`), as the values this script uses."""
    import yaml

    cfg = yaml.safe_load((root / PEER_CONFIG).read_text())
    ds = cfg["dataset_kwargs"]
    return {"alg_kwargs": dict(cfg["alg_kwargs"]), "network_kwargs": cfg["network_kwargs"], "optim": cfg["optim"],
            "optim_kwargs": dict(cfg["optim_kwargs"]), "discount": float(ds["discount"]),
            "pref_batch_size": int(ds["feedback_kwargs"]["batch_size"]),
            "segment_crop": int(ds["feedback_kwargs"]["subsample_size"]),
            "batch_size": int(ds["replay_kwargs"]["batch_size"]),
            "action_eps": float(ds["replay_kwargs"].get("action_eps", 0.0))}


def build_peer(mods: types.SimpleNamespace, cfg: dict[str, Any], obs_dim: int, act_dim: int, seed: int,
               hidden: list[int] | None = None) -> Any:
    """The authors' ``IPL_IQL`` through their own constructors (``Algorithm.__init__`` makes the network and
    its target, ``setup_optimizers`` / ``setup`` what their trainer calls before training), on a
    ``[-1, 1]`` action space; ``torch`` seeded with ``seed`` first."""
    import gymnasium
    import torch

    torch.manual_seed(seed)
    env = mods.Empty(observation_space=gymnasium.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32),
                     action_space=gymnasium.spaces.Box(-1.0, 1.0, (act_dim,), np.float32))
    net_kwargs = _resolve_imports(copy.deepcopy(cfg["network_kwargs"]))
    if hidden:
        net_kwargs["hidden_layers"] = list(hidden)
    alg = mods.IPL_IQL(env, mods.ActorCriticValuePolicy, mods.ReplayAndFeedbackBuffer, network_kwargs=net_kwargs,
                       optim_class=getattr(torch.optim, cfg["optim"]), optim_kwargs=cfg["optim_kwargs"],
                       device="cpu", **cfg["alg_kwargs"])
    alg.setup_optimizers()
    alg.setup()
    alg.train()
    return alg


# ---------------------------------------------------------------------------------------------- batches
class PeerBatches:
    """Batches in the format of the authors' ``IPL_IQL.train_step``, drawn like pbrl's IPL draws its own.

    ``sample()`` returns ``(replay, feedback)`` NumPy dicts:

    * feedback: ``obs_1, obs_2 [B, S+1, obs_dim]``, ``action_1, action_2 [B, S+1, act_dim]`` (step ``S`` only
      as the successor of step ``S - 1``; its action is never read), ``label [B]`` (1.0 = the second
      segment preferred, pbrl's convention and the authors'), ``discount [B]``: ``discount`` for every
      segment, terminal steps included (the authors' feedback buffer);
    * replay: ``obs, next_obs [batch_size, obs_dim]``, ``action [batch_size, act_dim]``,
      ``discount [batch_size]`` = ``discount * (1 - terminal)`` (their replay buffer).

    Draws from ``np.random.default_rng(seed)`` in :class:`pbrl.agents.IPL`'s order: ``B`` pair indices, ``B``
    crop starts (each pair its own, uniform in ``[0, H - S]``, ``S = min(segment_crop, H)``), then
    ``batch_size`` rows of the dataset's q-learning view (pbrl's ``transitions_from`` rows). Observations are
    raw (the authors' configuration has no observation normaliser); actions are mapped from
    ``[action_low, action_high]`` to ``[-1, 1]`` and clipped to ``+-(1 - action_eps)`` (their D4RL loader).

    Args:
        dataset: an ``OfflineDataset``.
        preferences: a ``PreferenceDataset`` of segments from it (``a`` = segment 1, ``b`` = segment 2).
        seed: the sampling seed (pbrl's ``IPL(seed=...)``).
        pref_batch_size: ``B`` (default 8); segment_crop: ``S`` (default 64, None = whole segments);
        batch_size: unlabelled transitions (default 256); discount: gamma (default 0.99).
        action_low, action_high: the env's action bounds (scalars or ``[act_dim]``, default -1, 1).
        action_eps: default 1e-5.
    """

    def __init__(self, dataset: Any, preferences: Any, seed: int = 0, pref_batch_size: int = 8,
                 segment_crop: int | None = 64, batch_size: int = 256, discount: float = 0.99,
                 action_low: Any = -1.0, action_high: Any = 1.0, action_eps: float = 1e-5):
        from pbrl.agents.offline_data import OfflineData

        low, high = np.asarray(action_low, np.float32), np.asarray(action_high, np.float32)
        lim = 1.0 - action_eps

        def unit(a: np.ndarray) -> np.ndarray:
            return np.clip(2.0 * (a - low) / (high - low) - 1.0, -lim, lim).astype(np.float32)

        view = OfflineData.qlearning_view(dataset)
        self.replay = {"obs": view["observations"].astype(np.float32), "action": unit(view["actions"]),
                       "next_obs": view["next_observations"].astype(np.float32),
                       "discount": (discount * (1.0 - view["terminals"])).astype(np.float32)}
        self.segments: dict[str, np.ndarray] = {}
        for key, seg in (("1", preferences.a), ("2", preferences.b)):
            last = seg.obs[:, -1] if seg.next_obs is None else seg.next_obs
            self.segments[f"obs_{key}"] = np.concatenate([seg.obs, last[:, None]], 1).astype(np.float32)
            act = unit(seg.act)
            self.segments[f"action_{key}"] = np.concatenate([act, act[:, -1:]], 1)
        self.label = np.asarray(preferences.label, np.float32)
        self.n_pairs, self.H = preferences.a.obs.shape[:2]
        self.S = self.H if segment_crop is None else min(int(segment_crop), self.H)
        self.pref_batch_size, self.batch_size, self.discount = int(pref_batch_size), int(batch_size), float(discount)
        self.rng = np.random.default_rng(seed)

    def sample(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        B, S = self.pref_batch_size, self.S
        idx = self.rng.integers(0, self.n_pairs, size=B)
        start = self.rng.integers(0, self.H - S + 1, size=B)
        cols = start[:, None] + np.arange(S + 1)[None, :]
        feedback = {k: v[idx[:, None], cols] for k, v in self.segments.items()}
        feedback["label"] = self.label[idx]
        feedback["discount"] = np.full(B, self.discount, np.float32)
        rows = self.rng.integers(0, len(self.replay["obs"]), size=self.batch_size)
        return {k: v[rows] for k, v in self.replay.items()}, feedback


# ---------------------------------------------------------------------------------------------- measurements
#: transitions counted as "before a fall": the terminal one and the PRE_FALL - 1 rows before it
PRE_FALL = 10


def pre_fall_rows(terminal: np.ndarray, k: int = PRE_FALL) -> np.ndarray:
    """``[N]`` bool: the transitions within ``k`` rows before a terminal one, the terminal one included (rows in
    the dataset's order, where an episode's transitions are contiguous)."""
    term = np.asarray(terminal) > 0.5
    out = np.zeros(len(term), bool)
    for t in np.flatnonzero(term):
        out[max(0, t - k + 1): t + 1] = True
    return out


def by_fall_offset(x: np.ndarray, terminal: np.ndarray, k: int = PRE_FALL) -> list[float]:
    """``[k]``: the mean of ``x [N]`` at ``j`` rows before each terminal transition, for ``j = 0`` (the fall
    step itself) to ``k - 1``; a fall's rows stop at the previous terminal one (another episode). NaN where
    no fall has a row that far back."""
    term = np.asarray(terminal) > 0.5
    ends = np.flatnonzero(term)
    starts = np.concatenate([[0], ends[:-1] + 1])  # the first row after the previous fall
    out = []
    for j in range(k):
        rows = ends - j
        rows = rows[rows >= starts]
        out.append(float(np.asarray(x)[rows].mean()) if len(rows) else float("nan"))
    return out


def discounted_returns_to_go(rewards: np.ndarray, starts: np.ndarray, ends: np.ndarray, gamma: float) -> np.ndarray:
    """``[N]``: ``G_t = sum_k gamma^k r_{t+k}`` to the end of each episode (rows ``starts[i]..ends[i]``, inclusive)."""
    r = np.asarray(rewards, np.float64)
    out = np.zeros_like(r)
    for s, e in zip(starts, ends):
        acc = 0.0
        for t in range(int(e), int(s) - 1, -1):
            acc = r[t] + gamma * acc
            out[t] = acc
    return out


def fall_returns(dataset: Any, gamma: float = 0.99) -> dict[str, Any]:
    """The true reward's view of the steps before a fall: the discounted return-to-go ``G`` and the reward at
    each of the :data:`PRE_FALL` steps before a fall (:func:`by_fall_offset`, the fall step first), their means
    over the data, and the share of the data's states whose ``G`` is above the mean over those steps."""
    starts, ends = dataset.episode_bounds
    term = np.asarray(dataset.terminals, np.float64)
    g = discounted_returns_to_go(dataset.rewards, starts, ends, gamma)
    pre = pre_fall_rows(term)
    return {"gamma": gamma, "falls": int((term > 0.5).sum()), "return_to_go_by_fall_offset": by_fall_offset(g, term),
            "reward_by_fall_offset": by_fall_offset(np.asarray(dataset.rewards, np.float64), term),
            "return_to_go_mean": float(g.mean()), "reward_mean": float(np.mean(dataset.rewards)),
            "share_above_pre_fall": float((g > g[pre].mean()).mean()) if pre.any() else float("nan")}


def reward_stats(q: np.ndarray, gv: np.ndarray, true: np.ndarray, terminal: np.ndarray,
                 v: np.ndarray | None = None) -> dict[str, float]:
    """The implicit reward over the dataset's transitions, from ``q [N]`` = ``Q(s, a)`` (mean of the heads) and
    ``gv [N]`` = ``gamma V(s')``: ``r = q - (1 - terminal) gv`` (the unlabelled transitions' rule) has mean
    ``reward_mean``, mean ``reward_terminal_mean`` on terminal transitions and Pearson correlation
    ``reward_pearson`` with the true reward ``true [N]``; ``reward_terminal_segment_mean`` is the mean of
    ``q - gv`` on terminal transitions, the fall step's reward inside a preference segment (no masking).

    With ``v [N]`` = ``V(s)``: ``value_mean``, the mean of ``V`` over the data's states, and the advantage the
    policy is weighted by, ``A = Q(s, a) - V(s)``, averaged over every transition (``adv_mean``) and over the
    :data:`PRE_FALL` transitions before each fall (``adv_pre_fall_mean``): whether the critic favours the
    actions that lead into a fall; and ``q_by_fall_offset``, ``v_by_fall_offset``, ``adv_by_fall_offset``:
    ``Q``, ``V`` and ``A`` averaged at each of the ``PRE_FALL`` steps before a fall (:func:`by_fall_offset`,
    the fall step first), to see where along the approach the critic's values rise."""
    term = terminal > 0.5
    r = q - (1.0 - terminal) * gv
    nan = float("nan")
    out = {"reward_mean": float(r.mean()), "reward_terminal_mean": float(r[term].mean()) if term.any() else nan,
           "reward_terminal_segment_mean": float((q - gv)[term].mean()) if term.any() else nan,
           "reward_pearson": float(np.corrcoef(r, true)[0, 1]) if r.std() > 0 and true.std() > 0 else nan}
    if v is not None:
        adv, pre = q - v, pre_fall_rows(terminal)
        out.update(value_mean=float(v.mean()), adv_mean=float(adv.mean()),
                   adv_pre_fall_mean=float(adv[pre].mean()) if pre.any() else nan,
                   q_by_fall_offset=by_fall_offset(q, terminal), v_by_fall_offset=by_fall_offset(v, terminal),
                   adv_by_fall_offset=by_fall_offset(adv, terminal))
    return out


def _chunked(fn: Any, *arrays: Any, chunk: int = 65536) -> np.ndarray:
    """``fn`` over row chunks of ``arrays`` (torch, no gradient), its ``[k, rows]`` outputs joined on rows."""
    import torch

    with torch.no_grad():
        return np.concatenate([fn(*(a[i:i + chunk] for a in arrays)) for i in range(0, len(arrays[0]), chunk)], -1)


def evaluate(policy: Any, task: str, n_episodes: int, seed: int) -> dict[str, Any]:
    """Deterministic returns on the live env and D4RL's normalised score of them (:mod:`pbrl.envs.scores`;
    None on a task without D4RL's reference returns)."""
    from pbrl.envs.evaluation import evaluate_policy_episodes, task_normalized_score

    res = evaluate_policy_episodes(policy, task, n_episodes=n_episodes, deterministic=True, seed=seed)
    return {"return": res["mean_return"], "return_std": res["std_return"], "length": res["mean_length"],
            "score": task_normalized_score(task, res["returns"])}


def _tail_means(logs: list[dict[str, float]]) -> dict[str, float]:
    """The mean of each logged value over the last 10 % of ``logs`` (as ``OfflineAgent.fit`` reports)."""
    tail = logs[-max(1, len(logs) // 10):]
    return {k: float(np.nanmean([m[k] for m in tail])) for k in tail[0]}


# ---------------------------------------------------------------------------------------------- children
def _inputs(spec: dict) -> tuple[Any, Any]:
    from pbrl.envs.datasets import load_dataset
    from pbrl.preferences import PreferenceDataset

    return load_dataset(spec["dataset"]), PreferenceDataset.load(spec["labels"])


def _log(spec: dict, rows: list[dict], row: dict) -> None:
    rows.append(row)
    print(f"[{spec['variant']} s{spec['seed']}] {json.dumps(row)}", flush=True)


def _chunks(steps: int, every: int) -> list[int]:
    """Update counts between evaluations: every ``every`` updates and at ``steps``."""
    return [min(every, steps - s) for s in range(0, steps, every)]


def child_pbrl(spec: dict) -> dict[str, Any]:
    import torch

    from pbrl.agents import IPL

    ds, prefs = _inputs(spec)
    kw = {**PBRL_VARIANTS[spec["variant"]], **{k: v for k, v in spec["overrides"].items() if v is not None}}
    if "hidden" in kw:
        kw["hidden"] = tuple(kw["hidden"])
    agent = IPL.from_dataset(ds, seed=spec["seed"], **kw)

    def q_gv(o, a, nx):
        return torch.stack([agent.nets["q"](o, a).mean(0), agent.gamma * agent.nets["v"](nx),
                            agent.nets["v"](o)]).numpy()

    rows, done = [], 0
    for n in _chunks(spec["steps"], spec["eval_every"]):
        losses = agent.fit(ds, prefs, steps=n, progress=False)["losses"]
        done += n
        d = agent.data  # normalised observations, [-1, 1] actions, the true rewards of the same rows
        q, gv, v = _chunked(q_gv, d["observations"], d["actions"], d["next_observations"])
        stats = reward_stats(q, gv, d["rewards"].numpy(), d["dones"].numpy(), v)
        ev = evaluate(agent, spec["task"], spec["eval_episodes"], spec["seed"])
        _log(spec, rows, {"step": done, **ev, **stats, **{k: losses.get(k) for k in ("pref_loss", "chi2_loss")}})
    return {"rows": rows, "config": agent.config, "true_reward_mean": float(agent.data["rewards"].mean()),
            "torch_threads": torch.get_num_threads()}


def child_peer(spec: dict) -> dict[str, Any]:
    import torch

    from pbrl.agents.offline_data import OfflineData
    from pbrl.envs import make_env

    ds, prefs = _inputs(spec)
    root = Path(spec["peer_root"])
    mods, cfg = load_peer(root), peer_config(root)
    ov = {k: v for k, v in spec["overrides"].items() if v is not None}
    env = make_env(spec["task"])
    low, high = env.action_space.low.astype(np.float32), env.action_space.high.astype(np.float32)
    env.close()
    batches = PeerBatches(ds, prefs, seed=spec["seed"], pref_batch_size=ov.get("pref_batch_size", cfg["pref_batch_size"]),
                          segment_crop=ov.get("segment_crop", cfg["segment_crop"]),
                          batch_size=ov.get("batch_size", cfg["batch_size"]), discount=cfg["discount"],
                          action_low=low, action_high=high, action_eps=cfg["action_eps"])
    alg = build_peer(mods, cfg, ds.obs_dim, ds.act_dim, spec["seed"], ov.get("hidden"))
    rep, gamma = batches.replay, cfg["discount"]

    def q_gv(o, a, nx):
        return torch.stack([alg.network.critic(o, a).mean(0), gamma * alg.network.value(nx).mean(0),
                            alg.network.value(o).mean(0)]).numpy()

    def act(obs: np.ndarray) -> np.ndarray:  # their predict: dist.loc clamped to [-1, 1], then the env's bounds
        unit = alg.predict({"obs": np.asarray(obs, np.float32)}, is_batched=False)
        return (low + (unit + 1.0) * 0.5 * (high - low)).astype(np.float32)

    view = {k: torch.as_tensor(v) for k, v in rep.items()}
    true = np.asarray(OfflineData.qlearning_view(ds)["rewards"], np.float64)  # the rows of batches.replay
    rows, step = [], 0
    for n in _chunks(spec["steps"], spec["eval_every"]):
        logs = []
        for _ in range(n):
            m = alg.train_step(alg.format_batch(batches.sample()), step, spec["steps"])
            logs.append({"pref_loss": m["q_loss"], "chi2_loss": m["chi2_loss"]})
            step += 1
        alg.eval()
        q, gv, v = _chunked(q_gv, view["obs"], view["action"], view["next_obs"])
        stats = reward_stats(q, gv, true, (rep["discount"] == 0).astype(np.float64), v)
        ev = evaluate(act, spec["task"], spec["eval_episodes"], spec["seed"])
        alg.train()
        _log(spec, rows, {"step": step, **ev, **stats, **_tail_means(logs)})
    config = {**cfg, "overrides": ov}
    return {"rows": rows, "config": json.loads(json.dumps(config, default=str)), "true_reward_mean": float(true.mean()),
            "torch_threads": torch.get_num_threads()}


def child_main(argv: list[str]) -> None:
    spec = json.loads(argv[argv.index("--child") + 1])
    out = Path(argv[argv.index("--child-out") + 1])
    import torch

    torch.set_num_threads(spec["threads"])
    t0 = time.process_time()
    res = (child_peer if spec["variant"] == "peer" else child_pbrl)(spec)
    res["cpu_s"], res["spec"] = time.process_time() - t0, spec
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(res))
    tmp.replace(out)


# ---------------------------------------------------------------------------------------------- parent
def _fail(msg: str) -> None:
    """Bad input: one line on stderr, exit code 2, nothing created."""
    print(f"ipl_peer.py: error: {msg}", file=sys.stderr)
    sys.exit(2)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="data/datasets/mujoco_Hopper-v5/medium-replay.hdf5", help="D4RL-layout file")
    p.add_argument("--labels", default=None, help="PreferenceDataset file (default: <dataset>.prefs_oracle_500.h5)")
    p.add_argument("--task", default=None, help="evaluation env (default: the dataset's task_id)")
    p.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS), choices=VARIANTS)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--steps", type=int, default=10_000, help="updates of every run")
    p.add_argument("--eval-every", type=int, default=1_000)
    p.add_argument("--eval-episodes", type=int, default=5)
    p.add_argument("--peer", default=None, help=f"the authors' code: a checkout or git dir (default ${PEER_ENV} or "
                                                f"{DEFAULT_PEER})")
    p.add_argument("--hidden", type=int, nargs="+", default=None, help="override both: hidden layers")
    p.add_argument("--segment-crop", type=int, default=None, help="override both: steps per cropped segment")
    p.add_argument("--pref-batch-size", type=int, default=None, help="override both: pairs per update")
    p.add_argument("--batch-size", type=int, default=None, help="override both: unlabelled transitions per update")
    p.add_argument("--threads", type=int, default=1, help="torch threads of each run")
    p.add_argument("--jobs", type=int, default=1, help="runs at once (one process each)")
    p.add_argument("--out", default="benchmarks/ipl_peer")
    p.add_argument("--report-only", action="store_true", help="print and plot the saved results")
    p.add_argument("--fall-returns", action="store_true",
                   help="print the true reward's return-to-go and reward at each step before a fall (no training)")
    return p.parse_args(argv)


def check_args(args: argparse.Namespace) -> None:
    """Every input problem as one line and exit code 2, before any work (files are read, nothing written)."""
    if args.report_only:
        return
    for flag in ("steps", "eval_every", "eval_episodes", "threads", "jobs", *OVERRIDES):
        value = getattr(args, flag)
        if value is not None and min(np.atleast_1d(value)) < 1:
            _fail(f"--{flag.replace('_', '-')} must be >= 1, got {value}")
    if args.eval_every > args.steps:
        _fail(f"--eval-every ({args.eval_every}) must be <= --steps ({args.steps})")
    args.labels = args.labels or f"{args.dataset.rsplit('.', 1)[0]}.prefs_oracle_500.h5"
    for flag, path in (("--dataset", args.dataset), ("--labels", args.labels)):
        if not Path(path).is_file():
            _fail(f"{flag} {path} does not exist (build it with scripts/make_datasets.py, or pass {flag} PATH)")
    if "peer" in args.variants:
        args.peer = str(args.peer or os.environ.get(PEER_ENV) or DEFAULT_PEER)
        problem = peer_problem(Path(args.peer))
        if problem:
            _fail(problem)
    _check_data(args)


def _check_data(args: argparse.Namespace) -> None:
    from pbrl.envs.datasets import load_dataset
    from pbrl.envs.registry import check_task
    from pbrl.preferences import PreferenceDataset

    try:
        ds = load_dataset(args.dataset)
        prefs = PreferenceDataset.load(args.labels)
    except (ValueError, OSError, KeyError) as e:
        _fail(f"cannot read the inputs: {e}")
    args.task = args.task or (ds.metadata or {}).get("task_id")
    if not args.task:
        _fail(f"{args.dataset} names no task_id in its metadata; pass --task (e.g. mujoco/Hopper-v5)")
    try:
        check_task(args.task)
    except ValueError as e:
        _fail(f"--task: {e}")
    if prefs.a.obs.shape[-1] != ds.obs_dim or prefs.a.act.shape[-1] != ds.act_dim:
        _fail(f"--labels {args.labels} has obs/act sizes {prefs.a.obs.shape[-1]}/{prefs.a.act.shape[-1]}, the dataset "
              f"{ds.obs_dim}/{ds.act_dim}: label pairs from this dataset")


def _specs(args: argparse.Namespace, peer_root: str | None) -> list[dict[str, Any]]:
    """One spec per (variant, seed), seed-major: every variant's first seed (the authors' code among them) comes
    before any second seed, so a comparison stopped part-way already sets both implementations side by side."""
    base = {k: getattr(args, k) for k in ("dataset", "labels", "task", "steps", "eval_every", "eval_episodes", "threads")}
    overrides = {k: getattr(args, k) for k in OVERRIDES}
    return [{**base, "variant": v, "seed": s, "overrides": overrides, "peer_root": peer_root}
            for s in args.seeds for v in args.variants]


def _run_file(runs_dir: Path, spec: dict[str, Any]) -> Path:
    return runs_dir / f"{spec['variant']}-s{spec['seed']}.json"


def _finished(path: Path, spec: dict[str, Any]) -> bool:
    """Whether ``path`` holds a finished run of ``spec`` (the same inputs and settings; the peer's copy aside)."""
    if not path.exists():
        return False
    same = {k: v for k, v in json.loads(path.read_text())["spec"].items() if k != "peer_root"}
    return same == {k: v for k, v in spec.items() if k != "peer_root"}


def run_children(specs: list[dict[str, Any]], jobs: int, runs_dir: Path) -> list[dict[str, Any]]:
    """Each spec in its own process (``jobs`` at once), each result saved to ``runs_dir`` when it finishes, so
    that a stopped comparison resumes (a finished run of the same spec is not run again); results in order."""
    env = {**os.environ, "OMP_NUM_THREADS": str(specs[0]["threads"]), "MKL_NUM_THREADS": str(specs[0]["threads"])}
    pending = [sp for sp in specs if not _finished(_run_file(runs_dir, sp), sp)]
    runs_dir.mkdir(parents=True, exist_ok=True)
    running: list[tuple[dict, subprocess.Popen]] = []
    while pending or running:
        while pending and len(running) < jobs:
            spec = pending.pop(0)
            cmd = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec), "--child-out",
                   str(_run_file(runs_dir, spec))]
            running.append((spec, subprocess.Popen(cmd, env=env)))
        time.sleep(0.2)
        for spec, proc in [r for r in running if r[1].poll() is not None]:
            running.remove((spec, proc))
            if proc.returncode != 0:
                for _, other in running:
                    other.kill()
                raise RuntimeError(f"run {spec['variant']} seed {spec['seed']} failed (exit {proc.returncode})")
    return [json.loads(_run_file(runs_dir, sp).read_text()) for sp in specs]


def _commit() -> str | None:
    out = subprocess.run(["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Train every (variant, seed), each saved under ``<out>/runs/`` (see :func:`run_children`), and collect
    the results (see the module docstring)."""
    with tempfile.TemporaryDirectory() as tmp:
        root = str(extract_peer(Path(args.peer), Path(tmp))) if "peer" in args.variants else None
        specs = _specs(args, root)
        t0 = time.time()
        results = run_children(specs, args.jobs, Path(args.out) / "runs")
    peer = {"source": args.peer, "repository": PEER_URL, "commit": peer_commit(Path(args.peer))} if root else None
    return assemble(args, results, peer, time.time() - t0)


def assemble(args: argparse.Namespace, results: list[dict[str, Any]], peer: dict[str, Any] | None,
             wall_s: float | None) -> dict[str, Any]:
    """``ipl_peer.json``'s content from the runs' saved results (each with its ``spec``), grouped by variant
    and seed in the order given."""
    result: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d", time.gmtime()), "commit": _commit(), "dataset": args.dataset,
        "labels": args.labels, "task": args.task, "seeds": args.seeds, "steps": args.steps,
        "eval_every": args.eval_every, "eval_episodes": args.eval_episodes, "threads": args.threads,
        "overrides": {k: getattr(args, k) for k in OVERRIDES}, "wall_s": wall_s, "peer": peer,
        "runs": {}, "configs": {}, "cpu_s": {}}
    for res in results:
        v, s = res["spec"]["variant"], str(res["spec"]["seed"])
        result["runs"].setdefault(v, {})[s] = res["rows"]
        result["cpu_s"].setdefault(v, {})[s] = res["cpu_s"]
        result["configs"][v] = res["config"]
        result["true_reward_mean"] = res["true_reward_mean"]
    return result


def partial_result(out: Path) -> dict[str, Any]:
    """What a stopped comparison has finished (``<out>/runs/*.json``, seed-major as run), as
    :func:`assemble` gives it, marked ``"partial"``; one line (exit 2) when nothing has finished."""
    files = sorted((out / "runs").glob("*.json")) if (out / "runs").is_dir() else []
    results = [json.loads(f.read_text()) for f in files]
    if not results:
        _fail(f"{out / 'ipl_peer.json'} does not exist and no run under {out / 'runs'} has finished; run without "
              f"--report-only first")
    rank = {v: i for i, v in enumerate(VARIANTS)}
    results.sort(key=lambda r: (r["spec"]["seed"], rank.get(r["spec"]["variant"], len(rank))))
    spec = results[0]["spec"]
    seeds = sorted({r["spec"]["seed"] for r in results})
    args = argparse.Namespace(**{k: spec[k] for k in ("dataset", "labels", "task", "steps", "eval_every",
                                                      "eval_episodes", "threads")},
                              seeds=seeds, **{k: spec["overrides"].get(k) for k in OVERRIDES})
    result = assemble(args, results, None, None)
    result["partial"] = f"{len(results)} finished runs ({', '.join(f.stem for f in files)})"
    return result


def _mean_rows(by_seed: dict[str, list[dict]]) -> list[dict[str, Any]]:
    """Per evaluation step: the mean over seeds of each number, and the seeds' spread of the return."""
    runs = list(by_seed.values())
    out = []
    for rows in zip(*runs):
        row: dict[str, Any] = {"step": rows[0]["step"], "seeds": len(rows)}
        for k in ("return", "score", "reward_mean", "reward_terminal_mean", "reward_terminal_segment_mean",
                  "reward_pearson", "pref_loss", "value_mean", "adv_mean", "adv_pre_fall_mean"):
            vals = [r.get(k) for r in rows if r.get(k) is not None]
            row[k] = float(np.mean(vals)) if vals else None
        row["return_seed_std"] = float(np.std([r["return"] for r in rows]))
        out.append(row)
    return out


def markdown(result: dict[str, Any]) -> str:
    def f(x: Any, fmt: str) -> str:
        return "-" if x is None or not np.isfinite(x) else format(x, fmt)

    lines = [f"true reward: mean {result.get('true_reward_mean', float('nan')):.3f} per step; "
             f"{len(result['seeds'])} seed(s), {result['eval_episodes']} episodes per evaluation",
             "", "| implementation | updates | return | normalised score | mean r | r at terminals: Q | "
             "r at terminals: Q - gamma V(s') | Pearson(r, true) | preference loss | mean V(s) | mean A(s, a) | "
             f"A in the {PRE_FALL} steps before a fall |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    if result.get("partial"):
        lines.insert(0, f"partial: {result['partial']}; the other runs have not finished")
    for name, by_seed in result["runs"].items():
        for r in _mean_rows(by_seed):
            ret = f(r["return"], ".0f") + (f" ± {r['return_seed_std']:.0f}" if r["seeds"] > 1 else "")
            lines.append(f"| {name} | {r['step']} | {ret} | {f(r['score'], '.1f')} | {f(r['reward_mean'], '+.3f')} | "
                         f"{f(r['reward_terminal_mean'], '+.3f')} | {f(r['reward_terminal_segment_mean'], '+.3f')} | "
                         f"{f(r['reward_pearson'], '+.2f')} | {f(r['pref_loss'], '.3f')} | "
                         f"{f(r['value_mean'], '+.2f')} | {f(r['adv_mean'], '+.3f')} | {f(r['adv_pre_fall_mean'], '+.3f')} |")
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    for name, by_seed in result["runs"].items():
        mean = _mean_rows(by_seed)
        s = [r["step"] for r in mean]
        (line,) = axes[0].plot(s, [r["return"] for r in mean], marker="o", label=name)
        for rows in by_seed.values() if len(by_seed) > 1 else []:
            axes[0].plot(s, [r["return"] for r in rows], color=line.get_color(), alpha=0.3, lw=0.8)
        axes[1].plot(s, [r["reward_pearson"] for r in mean], marker="o", color=line.get_color(), label=name)
        axes[2].plot(s, [r["reward_mean"] for r in mean], marker="o", color=line.get_color(), label=f"{name}: all")
        axes[2].plot(s, [r["reward_terminal_mean"] for r in mean], ls="--", color=line.get_color(),
                     label=f"{name}: terminals, Q")
        axes[2].plot(s, [r["reward_terminal_segment_mean"] for r in mean], ls=":", color=line.get_color(),
                     label=f"{name}: terminals, Q - gamma V(s')")
    titles = ("return (deterministic policy)", "Pearson(implicit r, true reward)", "mean implicit r over the data")
    for ax, t in zip(axes, titles):
        ax.set_title(t, fontsize=10)
        ax.set_xlabel("updates")
    axes[0].legend(fontsize=8)
    axes[2].legend(fontsize=7)
    fig.suptitle(f"IPL: pbrl and the authors' code on {Path(result['dataset']).name} "
                 f"({len(result['seeds'])} seed(s); thin lines: seeds)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    out = Path(args.out)
    path = out / "ipl_peer.json"
    if args.fall_returns:
        from pbrl.envs.datasets import load_dataset

        if not Path(args.dataset).is_file():
            _fail(f"--dataset {args.dataset} does not exist (build it with scripts/make_datasets.py)")
        res = fall_returns(load_dataset(args.dataset))
        steps = " | ".join(f"t-{j}" if j else "fall" for j in range(PRE_FALL))
        print(f"{args.dataset}: {res['falls']} falls; gamma {res['gamma']}\n| | {steps} | all steps |\n|---|"
              + "---:|" * (PRE_FALL + 1))
        for key, name in (("return_to_go", "true return-to-go"), ("reward", "true reward")):
            print(f"| {name} | " + " | ".join(f"{v:.2f}" for v in res[f"{key}_by_fall_offset"])
                  + f" | {res[key + '_mean']:.2f} |")
        print(f"states worth more (return-to-go) than the steps before a fall on average: "
              f"{100 * res['share_above_pre_fall']:.1f} %")
        return res
    if args.report_only:
        result = json.loads(path.read_text()) if path.exists() else partial_result(out)
    else:
        check_args(args)
        result = run(args)
        out.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=1))
        tmp.replace(path)
    plot(result, out / "ipl_peer.png")
    print(markdown(result))
    return result


if __name__ == "__main__":
    if "--child" in sys.argv:
        child_main(sys.argv)
    else:
        main()
