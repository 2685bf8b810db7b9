"""Benchmark the online preference-based agents against SAC on the true reward.

For one task, a step budget, a label budget and seeds, runs

* ``SAC``: SB3's SAC on the true reward (the upper bound), with PEBBLE's SAC settings;
* ``PEBBLE``, ``QPA`` (SAC-based) and ``PrefPPO`` with the oracle teacher (B-Pref's ``oracle``);

evaluates every ``--eval-every`` steps (deterministic episodes on a separate env: mean true return, any-step
success rate), and writes

* ``<out>/bench_online.json``: per algorithm, the final return / success rate (mean and std over seeds, per
  seed values), wall time, env steps per second of training (evaluation time excluded), CPU seconds and
  steps per CPU second (comparable on a shared machine), the time PEBBLE-style
  agents spent on queries, reward fitting and relabelling, and the ratio of each agent's final return to SAC's;
* ``<out>/bench_online.png``: learning curves (return vs env steps; return vs labels).

Defaults: ``mujoco/HalfCheetah-v5``, 100k steps, 500 labels (10 sessions of 50, one every 5000 steps after
PEBBLE's 1000 seed + 9000 unsupervised steps), 3 seeds, two worker processes of one torch thread each.
So that the default run fits about an hour on 2 CPU cores, the SAC-based runs (SAC, PEBBLE, QPA alike) use
``BENCH_SAC_KWARGS`` (2 x 128 networks, batch 256, one gradient step every 2 env steps) instead of B-Pref's
3 x 256 / batch 512 / one step per env step, which costs about 6x more CPU here (95 vs 15.6 CPU-minutes
per 100k-step SAC run); pass
``--paper-sizes`` for the paper's sizes. Everything else is each agent's default (the paper's): PrefPPO runs
B-Pref's PrefPPO (16 envs x 250 steps, 3 x 256, gSDE, observation normalisation, 32000 pre-training steps),
and each agent's reward model trains its own number of epochs per session. Each finished run is saved under
``<out>/runs/`` with the settings it ran with, and ``--resume`` skips those (and refuses saved runs made with
other settings); a run's live evaluation log is ``<out>/logs/<algo>_s<seed>/progress.csv``.
Example::

    .venv/bin/python scripts/bench_online.py                                   # the full default run
    .venv/bin/python scripts/bench_online.py --task metaworld/button-press-v3 --steps 500000 --labels 10000
    .venv/bin/python scripts/bench_online.py --steps 3000 --labels 40 --seeds 1 --unsup-steps 500 \\
        --feedback-every 500 --eval-every 1000 --n-eval-episodes 1              # a smoke run
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

ALGOS = ("SAC", "PEBBLE", "QPA", "PrefPPO")

#: SAC sizes of the default benchmark (all SAC-based runs alike), chosen for 2 CPU cores; see the module docstring.
BENCH_SAC_KWARGS = {"policy_kwargs": {"net_arch": [128, 128]}, "batch_size": 256, "train_freq": 2, "gradient_steps": 1}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default="mujoco/HalfCheetah-v5")
    p.add_argument("--steps", type=int, default=100_000, help="env steps per run")
    p.add_argument("--labels", type=int, default=500, help="query budget (total_feedback)")
    p.add_argument("--seeds", type=int, default=3, help="number of seeds (0 .. seeds-1)")
    p.add_argument("--algos", default=",".join(ALGOS), help=f"comma-separated subset of {ALGOS}")
    p.add_argument("--per-session", type=int, default=None, help="queries per session (default labels // 10)")
    p.add_argument("--feedback-every", type=int, default=5000)
    p.add_argument("--unsup-steps", type=int, default=9000, help="PEBBLE/QPA state-entropy pre-training steps")
    p.add_argument("--ppo-unsup-steps", type=int, default=None,
                   help="PrefPPO pre-training steps (default: the agent's, B-Pref's 32000)")
    p.add_argument("--eval-every", type=int, default=5000)
    p.add_argument("--n-eval-episodes", type=int, default=5)
    p.add_argument("--segment-length", type=int, default=50)
    p.add_argument("--learner-kwargs", default=None,
                   help="JSON overrides of the SB3 SAC defaults for the SAC-based runs (default BENCH_SAC_KWARGS)")
    p.add_argument("--paper-sizes", action="store_true", help="use B-Pref's SAC sizes (ignore BENCH_SAC_KWARGS)")
    p.add_argument("--reward-model-kwargs", default="{}", help="JSON overrides of the reward model defaults")
    p.add_argument("--fit-epochs", type=int, default=None,
                   help="reward-model epochs per session (default: each agent's own, e.g. PEBBLE's B-Pref value)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    p.add_argument("--workers", type=int, default=2, help="runs in parallel (processes)")
    p.add_argument("--resume", action="store_true", help="reuse the runs already saved under <out>/runs/")
    p.add_argument("--out", default="results/bench_online")
    a = p.parse_args(argv)
    algos = [x.strip() for x in a.algos.split(",") if x.strip()]
    bad = [x for x in algos if x not in ALGOS]
    if bad:
        p.error(f"unknown algorithm(s) {bad}; choose from {ALGOS}")
    a.algos = algos
    for name in ("steps", "labels", "seeds", "feedback_every", "eval_every", "n_eval_episodes", "segment_length",
                 "workers", "threads"):
        if getattr(a, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    a.per_session = a.per_session or max(1, a.labels // 10)
    try:
        if a.learner_kwargs is None:
            a.learner_kwargs = {} if a.paper_sizes else dict(BENCH_SAC_KWARGS)
        else:
            a.learner_kwargs = json.loads(a.learner_kwargs)
        a.reward_model_kwargs = json.loads(a.reward_model_kwargs)
    except json.JSONDecodeError as e:
        p.error(f"--learner-kwargs / --reward-model-kwargs must be JSON objects ({e})")
    if not isinstance(a.learner_kwargs, dict) or not isinstance(a.reward_model_kwargs, dict):
        p.error("--learner-kwargs / --reward-model-kwargs must be JSON objects")
    from pbrl.envs.registry import check_task

    try:
        check_task(a.task)
    except ValueError as e:
        p.error(str(e))
    return a


def run_one(algo: str, seed: int, a: argparse.Namespace) -> dict:
    """One training run; returns its evaluation history and timings."""
    torch.set_num_threads(a.threads)
    from stable_baselines3 import SAC
    from stable_baselines3.common.logger import configure

    from pbrl.agents.online_base import SAC_DEFAULTS
    from pbrl.agents.pebble import PEBBLE
    from pbrl.agents.pref_ppo import PrefPPO
    from pbrl.agents.qpa import QPA
    from pbrl.envs import make_env, make_vec_env
    from pbrl.sb3 import PbrlEvalCallback
    from pbrl.teachers import make_teacher

    eval_env = make_env(a.task, seed=10_000 + seed)
    logger = configure(str(Path(a.out) / "logs" / f"{algo}_s{seed}"), ["csv"])
    t0 = time.perf_counter()
    c0 = time.process_time()  # CPU seconds of this process: comparable across runs on a shared machine
    timing = {}
    if algo == "SAC":
        kw = copy.deepcopy({**SAC_DEFAULTS, **a.learner_kwargs})  # SB3 mutates the nested policy_kwargs
        model = SAC("MlpPolicy", make_vec_env(a.task, 1, seed=seed), seed=seed, verbose=0, **kw)
        ev = PbrlEvalCallback(eval_env, a.eval_every, a.n_eval_episodes, seed=10_000 + seed)
        model.set_logger(logger)
        model.learn(a.steps, callback=ev)
    else:
        cls = {"PEBBLE": PEBBLE, "QPA": QPA, "PrefPPO": PrefPPO}[algo]
        unsup = a.unsup_steps if algo != "PrefPPO" else a.ppo_unsup_steps  # None: the agent's default
        agent = cls(
            a.task, make_teacher("oracle", seed=seed), total_feedback=a.labels, feedback_per_session=a.per_session,
            feedback_every=a.feedback_every, segment_length=a.segment_length, seed=seed,
            learner_kwargs=copy.deepcopy(a.learner_kwargs) if algo != "PrefPPO" else None,
            reward_model_kwargs=a.reward_model_kwargs, unsup_steps=unsup,
            fit_kwargs={"epochs": a.fit_epochs} if a.fit_epochs else None,
            eval_env=eval_env, eval_every=a.eval_every, n_eval_episodes=a.n_eval_episodes,
        )
        agent.model.set_logger(logger)
        agent.learn(a.steps)
        ev = agent.eval_callback
        timing = dict(agent.callback.timing)
        timing["labels_asked"] = agent.callback.asked
        timing["labels_used"] = agent.callback.labels_used
    wall = time.perf_counter() - t0
    logger.close()  # a worker process runs several jobs: do not keep each run's CSV open
    cpu = time.process_time() - c0
    train = wall - ev.eval_seconds
    return {
        "algo": algo,
        "seed": seed,
        "wall_s": wall,
        "eval_s": ev.eval_seconds,
        "cpu_s": cpu,
        "train_steps_per_s": a.steps / max(train, 1e-9),
        "steps_per_cpu_s": a.steps / max(cpu, 1e-9),
        "history": ev.history,
        "final_return": ev.history[-1]["mean_return"],
        "final_success": ev.history[-1]["success_rate"],
        **timing,
    }


def summarise(runs: list[dict], algos: list[str]) -> dict:
    table = {}
    for algo in algos:
        rs = [r for r in runs if r["algo"] == algo]
        if not rs:
            continue
        ret = np.array([r["final_return"] for r in rs])
        suc = np.array([r["final_success"] for r in rs])
        sps = np.array([r["train_steps_per_s"] for r in rs])
        row = {
            "final_return_mean": float(ret.mean()),
            "final_return_std": float(ret.std()),
            "final_return_per_seed": ret.tolist(),
            "final_success_mean": float(suc.mean()),
            "final_success_std": float(suc.std()),
            "wall_s_mean": float(np.mean([r["wall_s"] for r in rs])),
            "train_steps_per_s_mean": float(sps.mean()),
            "cpu_s_mean": float(np.mean([r["cpu_s"] for r in rs])),
            "steps_per_cpu_s_mean": float(np.mean([r["steps_per_cpu_s"] for r in rs])),
        }
        for k in ("query", "fit", "relabel", "labels_asked", "labels_used"):
            if k in rs[0]:
                row[f"{k}_mean"] = float(np.mean([r[k] for r in rs]))
        table[algo] = row
    if "SAC" in table:
        base = table["SAC"]
        for row in table.values():
            # a ratio of returns means something only when SAC's return is positive
            b = base["final_return_mean"]
            row["return_ratio_to_SAC"] = row["final_return_mean"] / b if b > 0 else None
            row["wall_overhead_vs_SAC"] = row["wall_s_mean"] / base["wall_s_mean"]
            row["train_speed_ratio_vs_SAC"] = row["train_steps_per_s_mean"] / base["train_steps_per_s_mean"]
            row["cpu_overhead_vs_SAC"] = row["cpu_s_mean"] / base["cpu_s_mean"]
    return table


def plot(runs: list[dict], algos: list[str], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    colors = {algo: f"C{i}" for i, algo in enumerate(ALGOS)}
    for algo in algos:
        rs = [r for r in runs if r["algo"] == algo]
        if not rs:
            continue
        n = min(len(r["history"]) for r in rs)
        steps = np.array([h["step"] for h in rs[0]["history"][:n]])
        ret = np.array([[h["mean_return"] for h in r["history"][:n]] for r in rs])
        m, s = ret.mean(0), ret.std(0)
        ax1.plot(steps, m, label=algo, color=colors[algo])
        ax1.fill_between(steps, m - s, m + s, alpha=0.2, color=colors[algo])
        if algo != "SAC":
            labels = np.array([[h.get("labels", h.get("labels_used")) for h in r["history"][:n]] for r in rs]).mean(0)
            ax2.plot(labels, m, marker="o", ms=3, label=algo, color=colors[algo])
    ax1.set_xlabel("env steps")
    ax1.set_ylabel("eval return (true reward)")
    ax1.legend()
    ax1.set_title(title)
    ax2.set_xlabel("labels used")
    ax2.set_ylabel("eval return (true reward)")
    ax2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def markdown_table(table: dict, task: str) -> str:
    """The summary as a Markdown table (the README's), one row per algorithm."""
    lines = [f"| {task} | final return (mean ± std over seeds) | per seed | vs SAC | CPU-min per run | CPU vs SAC | labels used |",
             "|---|---:|---|---:|---:|---:|---:|"]
    for algo, row in table.items():
        ratio = row.get("return_ratio_to_SAC")
        per_seed = ", ".join(f"{v:.0f}" for v in row["final_return_per_seed"])
        lines.append(
            f"| {algo} | {row['final_return_mean']:.0f} ± {row['final_return_std']:.0f} | {per_seed} | "
            f"{'-' if ratio is None else f'{100 * ratio:.0f} %'} | {row['cpu_s_mean'] / 60:.1f} | "
            f"{row.get('cpu_overhead_vs_SAC', float('nan')):.2f}x | {row.get('labels_used_mean', 0):.0f} |"
        )
    return "\n".join(lines)


def _job_order(algos: list[str], seeds: int) -> list[tuple[str, int]]:
    """SAC and PEBBLE first (the acceptance pair), seed by seed, then the other agents."""
    first = [x for x in algos if x in ("SAC", "PEBBLE")]
    rest = [x for x in algos if x not in first]
    return [(x, s) for s in range(seeds) for x in first] + [(x, s) for x in rest for s in range(seeds)]


def _run_file(out: Path, algo: str, seed: int) -> Path:
    return out / "runs" / f"{algo}_s{seed}.json"


#: the flags that change a run's result; a saved run is reused by --resume only if they match
RUN_SETTINGS = ("task", "steps", "labels", "per_session", "feedback_every", "unsup_steps", "ppo_unsup_steps",
                "eval_every", "n_eval_episodes", "segment_length", "learner_kwargs", "reward_model_kwargs", "fit_epochs")


def _settings(a: argparse.Namespace) -> dict:
    return json.loads(json.dumps({k: getattr(a, k) for k in RUN_SETTINGS}))


def _run_and_save(algo: str, seed: int, a: argparse.Namespace) -> dict:
    from pbrl.preferences import atomic_write

    r = {**run_one(algo, seed, a), "settings": _settings(a)}
    path = _run_file(Path(a.out), algo, seed)
    with atomic_write(path, suffix=".json") as tmp:
        tmp.write_text(json.dumps(r, default=float))
    return r


def main(argv=None) -> dict:
    a = parse_args(argv)
    torch.set_num_threads(a.threads)
    from pbrl.preferences import atomic_write

    out = Path(a.out)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    jobs = _job_order(a.algos, a.seeds)
    runs: list[dict] = []
    todo = []
    settings = _settings(a)
    for algo, seed in jobs:
        f = _run_file(out, algo, seed)
        if a.resume and f.exists():
            saved = json.loads(f.read_text())
            if "settings" in saved and saved["settings"] != settings:
                diff = sorted(k for k in RUN_SETTINGS if saved["settings"].get(k) != settings[k])
                raise SystemExit(f"error: {f} was run with other settings ({', '.join(diff)}); "
                                 "use another --out or the same flags")
            runs.append(saved)
        else:
            todo.append((algo, seed))
    if runs:
        print(f"resuming: {len(runs)} run(s) already saved under {out / 'runs'}")

    def report(r: dict) -> None:
        runs.append(r)
        tqdm.write(f"{r['algo']} seed {r['seed']}: final return {r['final_return']:.1f}, success "
                   f"{r['final_success']:.2f}, {r['train_steps_per_s']:.1f} steps/s, wall {r['wall_s']:.0f} s")

    bar = tqdm(total=len(todo), desc="bench_online runs", unit="run")
    if a.workers == 1 or len(todo) <= 1:
        for algo, seed in todo:
            report(_run_and_save(algo, seed, a))
            bar.update()
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(a.workers, mp_context=mp.get_context("spawn")) as pool:
            futs = [pool.submit(_run_and_save, algo, seed, a) for algo, seed in todo]
            for fut in as_completed(futs):
                report(fut.result())
                bar.update()
    bar.close()
    order = {job: i for i, job in enumerate(jobs)}
    runs.sort(key=lambda r: order[(r["algo"], r["seed"])])
    table = summarise(runs, a.algos)
    cfg = {k: v for k, v in vars(a).items()}
    result = {"config": cfg, "table": table, "runs": runs, "torch_threads": a.threads, "workers": a.workers}
    with atomic_write(out / "bench_online.json", suffix=".json") as tmp:
        tmp.write_text(json.dumps(result, indent=1, default=float))
    plot(runs, a.algos, out / "bench_online.png", f"{a.task}, {a.steps} steps, {a.labels} labels")
    print(json.dumps(table, indent=1, default=float))
    print(markdown_table(table, a.task))
    print(f"wrote {out / 'bench_online.json'} and {out / 'bench_online.png'}")
    return result


if __name__ == "__main__":
    main()
