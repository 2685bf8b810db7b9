"""Hindsight PRIOR's check: at equal labels on fixed label sets, does the prior make the learned reward agree
better with the true reward? (``docs/agents/hprior.md``)

For each task, a fixed pool of episodes (a random policy mixed with a scripted one, so that returns vary) is
collected once (long episodes cut into pieces of ``--episode-steps``). The first ``--train-episodes`` episodes
give the world model's training data and ``--labels`` oracle-labelled segment pairs; the rest give held-out
pairs and steps. The world model (the agent's sizes: embedding 256, 3 layers, 1 head) is pre-trained for
``--world-steps`` (default 10000, WiseRL's port) once per task and seed; then PEBBLE's reward ensemble is
fitted on the same labels, from the same initial weights, with

* ``Bradley-Terry``: Bradley-Terry alone;
* ``Bradley-Terry + prior``: Bradley-Terry plus the prior (lambda ``--weight``, alpha from the world model);
* ``Bradley-Terry + uniform prior``: the same prior with ``alpha_t = 1/H`` (no world model): an ablation that
  tells the attention's part from the smoothing any such prior brings;
* ``Bradley-Terry + prior (lambda=X)`` and ``Bradley-Terry + uniform prior (lambda=X)``: both priors at each
  ``--sweep-weights`` value (none by default).

Reported per unit: held-out pair accuracy of the mean predicted return, the Pearson correlation of predicted
and true step reward, and diagnostics (the fit's Bradley-Terry and prior losses; the attention on held-out
segments: its entropy relative to uniform, the share on the last step, and how well ``alpha_t * R_true``
tracks the true step reward against the uniform ``R_true / H``).

Resumable: every finished (task, seed, variant) writes ``units/<task>/seed<S>/<variant>.json`` under ``--out``
and a rerun skips it; the world model is checkpointed every ``--world-chunk`` steps (``world.pt``), so a
killed run loses at most one chunk. A unit made with other settings stops the run with one clear error.
``--shared-world`` trains one world model per task (with the first seed) and gives it to every seed: the seeds
then vary the labels, the held-out pairs and the reward model's initialisation, not the world model.
At the end ``<--name>.json``, ``.csv`` and ``.png`` (default ``hprior_reward_quality``) are written from the
requested units and the table is printed. A world model depends only on the pool and the segment length, so its
checkpoint may be copied into another ``--out`` (e.g. one with other ``--epochs``) and is reused there. Cost on one CPU thread: about 0.2-0.3 s per world-model step (the transformer's matrix products), so
10000 steps are about 45 CPU-minutes per task and seed; ``--world-steps 1500`` (the CPU size of the run in
``docs/agents/hprior.md``) is about 6.

    .venv/bin/python scripts/investigations/hprior_reward_quality.py --world-steps 1500 --shared-world --seeds 0 1 2
    .venv/bin/python scripts/investigations/hprior_reward_quality.py --smoke       # tiny sizes: checks the script
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from pbrl.app.bench import BadInput, provenance
from pbrl.io import atomic_write

TASKS = ("metaworld/button-press-v3", "mujoco/HalfCheetah-v5")
BT, PRIOR, UNIFORM = "Bradley-Terry", "Bradley-Terry + prior", "Bradley-Terry + uniform prior"
VARIANTS = (BT, PRIOR, UNIFORM)
#: the settings a unit's numbers depend on (a unit made with others is not reused)
DATA_KEYS = ("labels", "segment_length", "steps", "episode_steps", "train_episodes", "held_out", "epochs")
#: the settings a world model depends on (its training data and window length; its steps are checked apart)
WORLD_KEYS = ("segment_length", "steps", "episode_steps", "train_episodes")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="+", default=list(TASKS))
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="default 0 1 (smoke: 0)")
    p.add_argument("--labels", type=int, default=100)
    p.add_argument("--segment-length", type=int, default=25)
    p.add_argument("--steps", type=int, default=6000, help="env steps in the fixed pool")
    p.add_argument("--episode-steps", type=int, default=250)
    p.add_argument("--train-episodes", type=int, default=16)
    p.add_argument("--held-out", type=int, default=1000)
    p.add_argument("--world-steps", type=int, default=None,
                   help="world-model pre-training steps (default 10000, WiseRL's port; 1500 is the CPU size; smoke: 4)")
    p.add_argument("--shared-world", action="store_true",
                   help="one world model per task (trained with the first seed) for every seed (CPU saving)")
    p.add_argument("--world-chunk", type=int, default=250, help="world-model steps between checkpoints")
    p.add_argument("--weight", type=float, default=1000.0, help="lambda")
    p.add_argument("--sweep-weights", type=float, nargs="*", default=[], help="extra lambdas for the prior")
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--out", default="benchmarks/hprior_reward_quality")
    p.add_argument("--name", default="hprior_reward_quality",
                   help="file name of the summary (.json, .csv, .png) under --out, for runs of a subset")
    p.add_argument("--smoke", action="store_true", help="tiny sizes: checks the script, measures nothing")
    a = p.parse_args(argv)
    if a.smoke:
        a.tasks, a.labels, a.segment_length, a.steps, a.episode_steps = ["mujoco/Reacher-v5"], 10, 10, 300, 50
        a.train_episodes, a.held_out, a.world_chunk, a.epochs = 3, 20, 2, 2
    if a.seeds is None:
        a.seeds = [0] if a.smoke else [0, 1]
    if a.world_steps is None:
        a.world_steps = 4 if a.smoke else 10_000
    for k in ("labels", "segment_length", "steps", "episode_steps", "train_episodes", "held_out", "epochs", "world_chunk"):
        if getattr(a, k) < 1:
            p.error(f"--{k.replace('_', '-')} must be >= 1, got {getattr(a, k)}")
    if a.world_steps < 0 or not all(np.isfinite(w) and w >= 0 for w in [a.weight, *a.sweep_weights]):
        p.error("--world-steps must be >= 0 and --weight / --sweep-weights finite numbers >= 0")
    if not a.name or "/" in a.name or a.name.startswith("."):
        p.error(f"--name must be a plain file name (no folder), got {a.name!r}")
    if a.segment_length >= a.episode_steps:
        p.error(f"--segment-length ({a.segment_length}) must be below --episode-steps ({a.episode_steps})")
    from pbrl.envs.registry import check_task

    for t in a.tasks:
        try:
            check_task(t)
        except ValueError as e:
            p.error(str(e))
    try:
        check_units(a)
    except ValueError as e:
        p.error(str(e))
    return a


# ---------------------------------------------------------------------------------------------- units
def variants(a: argparse.Namespace) -> list[tuple[str, str, float]]:
    """``(name, kind, lambda)`` of every variant: kind ``"none"``, ``"world"`` or ``"uniform"``."""
    out = [(BT, "none", 0.0), (PRIOR, "world", a.weight), (UNIFORM, "uniform", a.weight)]
    for w in a.sweep_weights:
        if w != a.weight:
            out += [(f"{PRIOR} (lambda={w:g})", "world", w), (f"{UNIFORM} (lambda={w:g})", "uniform", w)]
    return out


def setting(a: argparse.Namespace, kind: str, weight: float) -> dict[str, Any]:
    """What a unit of this kind depends on."""
    s: dict[str, Any] = {k: getattr(a, k) for k in DATA_KEYS}
    if kind != "none":
        s["weight"] = weight
    if kind == "world":
        s["world_steps"] = a.world_steps
        s["world_seed"] = a.seeds[0] if a.shared_world else "own"
    return s


def world_setting(a: argparse.Namespace) -> dict[str, Any]:
    """What a world model depends on (its steps apart)."""
    return {k: getattr(a, k) for k in WORLD_KEYS}


def world_seed(a: argparse.Namespace, seed: int) -> int:
    """The seed of the world model a unit of ``seed`` uses (and whose folder holds its checkpoint)."""
    return a.seeds[0] if a.shared_world else seed


def unit_dir(out: Path, task: str, seed: int) -> Path:
    return out / "units" / task.replace("/", "_") / f"seed{seed}"


def unit_path(out: Path, task: str, seed: int, name: str) -> Path:
    slug = name.replace("Bradley-Terry", "bt").replace(" + ", "_").replace(" ", "_").replace("(", "").replace(")", "")
    return unit_dir(out, task, seed) / f"{slug.replace('=', '')}.json"


def check_units(a: argparse.Namespace) -> None:
    """One clear error if a finished unit or a world checkpoint under ``--out`` was made with other settings."""
    out = Path(a.out)
    for task in a.tasks:
        for seed in a.seeds:
            for name, kind, w in variants(a):
                f = unit_path(out, task, seed, name)
                if f.exists() and json.loads(f.read_text())["setting"] != setting(a, kind, w):
                    raise ValueError(f"{f} was made with other settings ({json.loads(f.read_text())['setting']}); "
                                     "use another --out or delete that folder")
            w = unit_dir(out, task, world_seed(a, seed)) / "world.json"
            if w.exists():
                info = json.loads(w.read_text())
                if {k: info["setting"].get(k) for k in WORLD_KEYS} != world_setting(a) or info["steps"] > a.world_steps:
                    raise ValueError(f"{w.with_suffix('.pt')} was trained with other settings or past --world-steps "
                                     f"({info}); use another --out or delete that folder")


# ---------------------------------------------------------------------------------------------- data
def _pool(task: str, a: argparse.Namespace):
    from pbrl.envs.collect import collect
    from pbrl.segments import Trajectory

    # half random, half the task's scripted / noisy policy when there is one, so returns vary
    kinds = ["random", "scripted" if task.startswith("metaworld/") else "random"]
    eps = []
    for i, kind in enumerate(kinds):
        try:
            ds = collect(task, kind, n_steps=a.steps // 2, seed=1000 + i, noise=0.3 if kind == "scripted" else 0.0)
        except ValueError:
            ds = collect(task, "random", n_steps=a.steps // 2, seed=1000 + i)
        for t in ds.episodes():  # long episodes cut into pieces of --episode-steps (more, shorter episodes)
            for s in range(0, len(t) - a.segment_length, a.episode_steps):
                e = min(s + a.episode_steps, len(t))
                eps.append(Trajectory(t.obs[s:e], t.act[s:e], t.reward[s:e],
                                      next_obs=t.obs[e] if e < len(t) else t.next_obs))
    rng = np.random.default_rng(7)
    eps = [eps[i] for i in rng.permutation(len(eps))]
    if len(eps) <= a.train_episodes:
        raise BadInput(f"only {len(eps)} episodes collected on {task}; raise --steps")
    return eps[: a.train_episodes], eps[a.train_episodes:]


def _data(train, test, seed: int, a: argparse.Namespace) -> dict[str, Any]:
    """The fixed label set (oracle), the held-out pairs and the held-out steps of one task and seed."""
    from pbrl.preferences import PreferenceDataset
    from pbrl.segments import sample_segment_pairs
    from pbrl.teachers import make_teacher

    la, lb = sample_segment_pairs(train, a.labels, a.segment_length, np.random.default_rng(seed))
    ta, tb = sample_segment_pairs(test, a.held_out, a.segment_length, np.random.default_rng(10_000 + seed))
    return {"labels": PreferenceDataset(la, lb, make_teacher("oracle").label(la, lb)),  # the oracle skips nothing
            "ta": ta, "tb": tb, "obs": np.concatenate([t.obs for t in test]),
            "act": np.concatenate([t.act for t in test]), "reward": np.concatenate([t.reward for t in test])}


# ---------------------------------------------------------------------------------------------- the world model
def _uniform_prior(weight: float, seed: int):
    """The prior with ``alpha_t = 1/H`` (no world model): the ablation."""
    from pbrl.agents.hprior import HindsightPriorLoss

    class UniformPrior(HindsightPriorLoss):
        def importance(self, obs: np.ndarray, act: np.ndarray) -> np.ndarray:
            return np.full(np.shape(obs)[:2], 1.0 / np.shape(obs)[1], dtype=np.float32)

    return UniformPrior(weight=weight, seed=seed)


def train_world(prior, train, H: int, a: argparse.Namespace, folder: Path, probe: tuple, log=print) -> list[dict]:
    """Pre-train ``prior``'s world model to ``--world-steps`` in chunks of ``--world-chunk``, resuming from and
    saving to ``folder/world.pt`` (its settings in ``world.json``); returns the per-chunk trace (world loss,
    mean |change| of alpha on the ``probe`` segments ``(obs, act)`` relative to ``1/H``, CPU seconds)."""
    import torch

    ck, info = folder / "world.pt", folder / "world.json"
    trace: list[dict] = []
    if ck.exists():
        saved = torch.load(ck, weights_only=False)
        prior.load_state(saved["state"])
        trace = saved["trace"]
    if prior.world is None:
        prior.train_world(train, H, 0)  # builds the model and its input statistics
    last = prior.importance(*probe)
    while prior.steps_trained < a.world_steps:
        t0 = time.process_time()
        prior.train_world(train, H, min(a.world_chunk, a.world_steps - prior.steps_trained))
        alpha = prior.importance(*probe)
        trace.append({"steps": prior.steps_trained, "world_loss": prior.last_world_loss,
                      "alpha_change": float(np.abs(alpha - last).mean() * H), "cpu_s": time.process_time() - t0})
        last = alpha
        with atomic_write(ck, suffix=".pt") as tmp:
            torch.save({"state": prior.state(), "trace": trace}, tmp)
        with atomic_write(info, suffix=".json") as tmp:
            tmp.write_text(json.dumps({"setting": world_setting(a), "steps": prior.steps_trained}))
        log(f"    world model {prior.steps_trained}/{a.world_steps} steps: L1 {prior.last_world_loss:.3f}, "
            f"alpha change {trace[-1]['alpha_change']:.3f} of 1/H ({trace[-1]['cpu_s']:.0f} CPU-s)")
    return trace


def _corr(x: np.ndarray, y: np.ndarray) -> float | None:
    """Pearson correlation, ``None`` when either side is constant."""
    return float(np.corrcoef(x, y)[0, 1]) if np.std(x) > 0 and np.std(y) > 0 else None


def alpha_diagnostics(prior, segs) -> dict[str, float]:
    """How the attention spreads a return on held-out segments ``segs`` (a list of :class:`Segments`)."""
    obs = np.concatenate([s.obs for s in segs])
    act = np.concatenate([s.act for s in segs])
    r = np.concatenate([s.reward for s in segs]).astype(np.float64)  # [N, H]
    alpha = prior.importance(obs, act).astype(np.float64)
    N, H = alpha.shape
    R = r.sum(1, keepdims=True)
    target = alpha * R
    ok = (target.std(1) > 0) & (r.std(1) > 0)
    within = [np.corrcoef(target[i], r[i])[0, 1] for i in np.flatnonzero(ok)]
    ent = -(alpha * np.log(np.clip(alpha, 1e-12, None))).sum(1) / np.log(H)
    # how much of alpha's variance the position in the window explains (1: alpha is a function of t alone)
    position_share = float(np.var(alpha.mean(0)) / np.var(alpha)) if np.var(alpha) > 0 else None
    return {"alpha_entropy_vs_uniform": float(ent.mean()), "alpha_position_share": position_share, "alpha_last_step": float(alpha[:, -1].mean()),
            "alpha_first_step": float(alpha[:, 0].mean()), "alpha_max": float(alpha.max(1).mean()),
            "target_corr": _corr(target.ravel(), r.ravel()),
            "uniform_target_corr": _corr(np.repeat(R / H, H, 1).ravel(), r.ravel()),
            "within_segment_target_corr": _finite(np.mean(within) if within else None)}


# ---------------------------------------------------------------------------------------------- one unit
def fit_and_score(data: dict[str, Any], seed: int, prior, a: argparse.Namespace) -> dict[str, Any]:
    """Fit PEBBLE's ensemble on the labels (with ``prior`` as a second term unless ``None``) and score it."""
    from pbrl.agents.online_base import REWARD_MODEL_DEFAULTS
    from pbrl.reward_models import RewardEnsemble, RewardTrainer
    from pbrl.reward_models.training import BradleyTerryLoss

    labels, ta, tb = data["labels"], data["ta"], data["tb"]
    model = RewardEnsemble(labels.a.obs_dim, labels.a.act_dim, **{**REWARD_MODEL_DEFAULTS, "seed": seed})
    fit = RewardTrainer([BradleyTerryLoss()] + ([prior] if prior is not None else []), epochs=a.epochs).fit(model, labels)
    ra, rb = model.segment_returns(ta).mean(0), model.segment_returns(tb).mean(0)
    pred = model.predict(data["obs"], data["act"])
    true_seg = np.concatenate([ta.reward, tb.reward])
    pred_seg = np.concatenate([model.predict(ta.obs.reshape(-1, ta.obs_dim), ta.act.reshape(-1, ta.act_dim)),
                               model.predict(tb.obs.reshape(-1, tb.obs_dim), tb.act.reshape(-1, tb.act_dim))]
                              ).reshape(true_seg.shape)
    return {"accuracy": float(np.mean((rb > ra) == (tb.returns() > ta.returns()))),
            "correlation": float(np.corrcoef(pred, data["reward"])[0, 1]) if np.std(pred) > 0 else 0.0,
            "pred_within_segment_var_share": _within_share(pred_seg),
            "true_within_segment_var_share": _within_share(true_seg),
            "fit": {"bt_loss": fit["loss"], "train_accuracy": fit["accuracy"], "epochs": fit["epochs"],
                    "prior_loss": _finite(fit.get("prior_loss"))}}


def _within_share(r: np.ndarray) -> float | None:
    """Share of the step rewards' variance ``r [N, H]`` that lies within segments (the rest is between)."""
    total = r.var()
    return float(r.var(1).mean() / total) if total > 0 else None


def _finite(x) -> float | None:
    """``x`` as a float, or ``None`` (JSON ``null``) when missing or not finite."""
    return float(x) if x is not None and np.isfinite(x) else None


def run_unit(task: str, seed: int, kind: str, weight: float, data, train, a, log=print) -> dict:
    """One (task, seed, variant): its result dict."""
    from pbrl.agents.hprior import HindsightPriorLoss

    t0 = time.process_time()
    res: dict[str, Any] = {}
    prior = None
    if kind == "world":
        ws = world_seed(a, seed)  # the prior's seed only seeds its world model
        prior = HindsightPriorLoss(weight=weight, seed=ws)
        probe = (data["ta"].obs[:200], data["ta"].act[:200])
        res["world_trace"] = train_world(prior, train, a.segment_length, a, unit_dir(Path(a.out), task, ws), probe, log)
        res["world_loss"] = prior.last_world_loss
        res["alpha"] = alpha_diagnostics(prior, [data["ta"], data["tb"]])
    elif kind == "uniform":
        prior = _uniform_prior(weight, seed)
    res.update(fit_and_score(data, seed, prior, a))
    res["cpu_s"] = time.process_time() - t0
    return res


# ---------------------------------------------------------------------------------------------- the run
def run(a: argparse.Namespace, log=print) -> dict[str, dict[str, dict]]:
    """Every unit, seeds outermost (so that whole seeds finish first); finished units are read back."""
    out = Path(a.out)
    pools: dict[str, tuple] = {}
    results: dict[str, dict[str, dict]] = {t: {} for t in a.tasks}
    todo = [(s, t, v) for s in a.seeds for t in a.tasks for v in variants(a)]
    for k, (seed, task, (name, kind, w)) in enumerate(todo, 1):
        f = unit_path(out, task, seed, name)
        head = f"[{k}/{len(todo)}] {task} seed {seed} {name}"
        if f.exists():
            res = json.loads(f.read_text())["result"]
            log(f"{head}: done before (accuracy {res['accuracy']:.3f}, correlation {res['correlation']:.3f})")
        else:
            log(f"{head}: running")
            if task not in pools:
                pools[task] = _pool(task, a)
            train, test = pools[task]
            res = run_unit(task, seed, kind, w, _data(train, test, seed, a), train, a, log)
            with atomic_write(f, suffix=".json") as tmp:
                tmp.write_text(json.dumps({"task": task, "seed": seed, "variant": name,
                                           "setting": setting(a, kind, w), **provenance(), "result": res}, indent=1))
            log(f"{head}: accuracy {res['accuracy']:.3f}, correlation {res['correlation']:.3f} "
                f"({res['cpu_s']:.0f} CPU-s)")
        results[task].setdefault(str(seed), {})[name] = res
    return results


def rows(results: dict[str, dict[str, dict]]) -> list[dict[str, Any]]:
    """One flat row per (task, seed, variant) for the CSV."""
    out = []
    for task, per_seed in results.items():
        for seed, per_var in per_seed.items():
            for name, r in per_var.items():
                al = r.get("alpha", {})
                out.append({"task": task, "seed": seed, "variant": name, "accuracy": r["accuracy"],
                            "correlation": r["correlation"], "pred_within_segment_var_share": r["pred_within_segment_var_share"],
                            "bt_loss": r["fit"]["bt_loss"], "prior_loss": r["fit"]["prior_loss"],
                            "train_accuracy": r["fit"]["train_accuracy"], "world_loss": r.get("world_loss", ""),
                            **{k: al.get(k, "") for k in ("alpha_entropy_vs_uniform", "alpha_last_step", "target_corr",
                                                          "uniform_target_corr", "within_segment_target_corr")},
                            "cpu_s": r["cpu_s"]})
    return out


def table(results: dict[str, dict[str, dict]]) -> str:
    """Mean (min-max over seeds) per task and variant, and the prior's paired change against Bradley-Terry."""
    lines = ["| task | variant | seeds | held-out pair accuracy | step-reward correlation | "
             "change vs Bradley-Terry (accuracy / correlation) |", "|---|---|---|---|---|---|"]
    for task, per_seed in results.items():
        names = [n for n in dict.fromkeys(n for r in per_seed.values() for n in r)]
        for v in names:
            seeds = [s for s in per_seed if v in per_seed[s]]
            acc = np.array([per_seed[s][v]["accuracy"] for s in seeds])
            cor = np.array([per_seed[s][v]["correlation"] for s in seeds])
            paired = [s for s in seeds if BT in per_seed[s]]
            d = "" if v == BT or not paired else " / ".join(
                f"{np.mean([per_seed[s][v][m] - per_seed[s][BT][m] for s in paired]):+.3f}" for m in ("accuracy", "correlation"))
            lines.append(f"| {task} | {v} | {len(seeds)} | {acc.mean():.3f} ({acc.min():.3f}-{acc.max():.3f}) | "
                         f"{cor.mean():.3f} ({cor.min():.3f}-{cor.max():.3f}) | {d} |")
    return "\n".join(lines)


def plot(results: dict[str, dict[str, dict]], path: Path) -> Path:
    """Bars (mean over seeds) with each seed's point: accuracy and correlation per task and variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(results)
    names = list(dict.fromkeys(n for t in tasks for r in results[t].values() for n in r))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, axes = plt.subplots(1, 2, figsize=(4.2 + 1.6 * len(tasks) * len(names) / 3, 3.6))
    width = 0.8 / len(names)
    for ax, (m, label) in zip(axes, (("accuracy", "held-out pair accuracy"), ("correlation", "step-reward correlation"))):
        for j, v in enumerate(names):
            for i, t in enumerate(tasks):
                pts = [r[v][m] for r in results[t].values() if v in r]
                if not pts:
                    continue
                x = i + (j - (len(names) - 1) / 2) * width
                ax.bar(x, np.mean(pts), width * 0.9, color=colors[j % len(colors)], alpha=0.7,
                       label=v if i == 0 else None)
                ax.scatter(np.full(len(pts), x) + np.linspace(-0.2, 0.2, len(pts)) * width, pts, s=12, color="k", zorder=3)
        ax.set_xticks(range(len(tasks)), [t.split("/")[-1] for t in tasks], fontsize=8)
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=7, loc="lower left")
    fig.suptitle("Hindsight PRIOR: learned reward vs true reward (bars: mean; dots: seeds)", fontsize=9)
    fig.tight_layout()
    with atomic_write(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return path


def main(argv=None) -> dict[str, Any]:
    a = parse_args(argv)
    import torch

    torch.set_num_threads(1)
    t0 = time.process_time()
    results = run(a, log=functools.partial(print, flush=True))
    out = Path(a.out)
    units_cpu = sum(r["cpu_s"] for per_seed in results.values() for per_var in per_seed.values() for r in per_var.values())
    payload = {**provenance(), "args": vars(a), "cpu_seconds_this_call": time.process_time() - t0,
               "cpu_seconds_units": units_cpu, "results": results}
    with atomic_write(out / f"{a.name}.json", suffix=".json") as tmp:
        tmp.write_text(json.dumps(payload, indent=1))
    flat = rows(results)
    with atomic_write(out / f"{a.name}.csv", suffix=".csv") as tmp, open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(flat[0]))
        w.writeheader()
        w.writerows(flat)
    plot(results, out / f"{a.name}.png")
    print(table(results))
    print(f"CPU time {payload['cpu_seconds_this_call']:.0f} s this call, {units_cpu:.0f} s in the units; "
          f"wrote {out / a.name}.json")
    return payload


if __name__ == "__main__":
    main()
