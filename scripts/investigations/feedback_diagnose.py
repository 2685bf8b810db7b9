"""Why a PbRL agent of the feedback study falls short of SAC-true: the reward model, or the RL budget?

For every finished online PbRL run of ``scripts/bench_feedback.py`` whose ``reward_model.pt`` and
``model.zip`` are still on disk (they are not committed; a run finished on this machine has them), on the
run's own task:

* episodes of three behaviours: the run's final policy (deterministic), the task's Meta-World scripted
  expert (success 1) and the uniform random policy (``--episodes`` each, evaluation seeds no run uses);
* for each, the true return, the return under the run's learned reward, and the success rate;
* the Spearman rank correlation of learned and true per-step rewards over all those steps;
* the learned reward's gap between the expert and random behaviour per step: how much signal it gives the
  learner (a reward that ranks correctly but lifts the expert little above random is a weak one).

With the goal hidden (``:goal=hidden``, the study's tasks) the scripted expert is given the goal the live env
holds, as the observable task would show it; the learned reward reads the hidden observations the run saw.
The runs of SAC-true and of ``pebble_true`` learn no reward and are skipped.

Read: if the learned reward scores the scripted expert above the agent's own final policy (``learned:
expert > own``) while the agent does not succeed, the reward already points at success and the agent has
not got there within the step budget (an RL-budget finding). If it scores the agent's own unsuccessful
behaviour at or above the expert's, the agent found what the reward model gets wrong (a reward-model
finding).

Prints a Markdown table and a summary per row of the study (agent and variant), and writes ``<out>/diagnose.json``. About 5 CPU-seconds per run. The file is merged,
not replaced: a run diagnosed again gets its new row, and the saved rows of runs whose models are no longer
on disk (a fresh checkout has none) are kept as they were, so the committed diagnosis survives a rerun.

    .venv/bin/python scripts/investigations/feedback_diagnose.py                     # benchmarks/bench_feedback
    .venv/bin/python scripts/investigations/feedback_diagnose.py --out benchmarks/feedback_study   # the re-run
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

#: agents whose runs learn no reward (SAC-true; PEBBLE's schedule on the true reward)
NO_LEARNED_REWARD = ("sac", "pebble_true")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="benchmarks/bench_feedback", help="the study's folder")
    p.add_argument("--episodes", type=int, default=3, help="episodes per behaviour")
    p.add_argument("--seed", type=int, default=50_000, help="first evaluation seed (no run uses it)")
    a = p.parse_args(argv)
    if a.episodes < 1:
        p.error("--episodes must be >= 1")
    if not Path(a.out).is_dir():
        p.error(f"{a.out} is not a folder")
    return a


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(x, y).statistic)  # ties get their average rank


def expert_policy(task: str, live: dict[str, Any]):
    """The task's Meta-World scripted expert as a policy of the run's observations. With the goal hidden
    (``:goal=hidden``, whose observations end in three zeros) the expert is given the goal the live env holds
    (``live["env"]``, its ``_get_pos_goal()``), as the observable task would show it; the learned reward still
    reads the hidden observation the run saw."""
    from pbrl.envs.collect import scripted_policy
    from pbrl.envs.registry import parse_task, task_options

    hidden = task_options(task)["goal"] == "hidden"
    expert = scripted_policy(parse_task(task)[0] if hidden else task)

    def act(obs: np.ndarray) -> np.ndarray:
        if hidden:
            obs = np.array(obs, copy=True)
            obs[-3:] = live["env"].unwrapped._get_pos_goal()
        return np.clip(expert.get_action(obs), -1, 1)

    return act


def diagnose_run(run_dir: Path, episodes: int, seed: int) -> dict[str, Any] | None:
    """The table row of one run (``None`` when its model files are gone or it is not a PbRL run)."""
    from pbrl.app.config import config_from_dict
    from pbrl.app.runs import load_policy
    from pbrl.app.train_common import eval_env
    from pbrl.envs import rollout
    from pbrl.reward_models import load_reward_model

    cfg = json.loads((run_dir / "config.json").read_text())
    if cfg.get("kind", "online") != "online" or cfg.get("agent") in NO_LEARNED_REWARD \
            or not cfg.get("task", "").startswith("metaworld/"):
        return None  # the scripted expert exists on Meta-World only
    if not (run_dir / "reward_model.pt").exists() or not (run_dir / "model.zip").exists():
        return None
    task = cfg["task"]
    rm = load_reward_model(run_dir / "reward_model.pt")
    policy, _, _ = load_policy(run_dir)
    live: dict[str, Any] = {}  # the env being rolled out, for the goal a hidden-goal observation lacks
    behaviours = {"own": policy, "expert": expert_policy(task, live), "random": "random"}
    out: dict[str, Any] = {"run": run_dir.name, "task": task, "agent": cfg["agent"], "budget": cfg["total_feedback"],
                           "teacher": cfg.get("teacher"), "seed": cfg.get("seed")}
    true_all, learned_all = [], []
    for name, pol in behaviours.items():
        env = eval_env(config_from_dict(dict(cfg)))  # the run's own episode length
        live["env"] = env
        trajs = rollout(env, pol, n_episodes=episodes, seed=seed)
        env.close()
        true = [float(t.reward.sum()) for t in trajs]
        learned = [float(rm.predict(t.obs, t.act).sum()) for t in trajs]
        succ = [bool(t.success is not None and t.success.any()) for t in trajs]
        out[name] = {"true_return": float(np.mean(true)), "learned_return": float(np.mean(learned)),
                     "success": float(np.mean(succ)), "steps": float(np.mean([len(t.reward) for t in trajs]))}
        for t in trajs:
            true_all.append(t.reward)
            learned_all.append(rm.predict(t.obs, t.act))
    out["spearman_step"] = _spearman(np.concatenate(true_all), np.concatenate(learned_all))
    out["learned_expert_above_own"] = out["expert"]["learned_return"] > out["own"]["learned_return"]
    # how far the learned reward lifts the expert above random behaviour, per step: the signal the learner's
    # critic sees (the rewards are tanh-bounded, so their scale is comparable across runs)
    out["learned_gap_per_step"] = (out["expert"]["learned_return"] / out["expert"]["steps"]
                                   - out["random"]["learned_return"] / out["random"]["steps"])
    return out


def summary(rows: list[dict[str, Any]]) -> str:
    """Per row of the study (a run name up to its first ``__``: agent or variant): medians over its runs of the step-level Spearman correlation and of the learned expert-random
    gap per step, and how often the learned reward scores the expert above the run's own policy."""
    by_agent: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_agent.setdefault(r["run"].split("__", 1)[0], []).append(r)
    lines = ["| row | runs | Spearman (steps), median | learned gap expert - random per step, median [min, max] | "
             "learned: expert > own |", "|---|---:|---:|---|---:|"]
    for agent, rs in sorted(by_agent.items()):
        gaps = [r["learned_gap_per_step"] for r in rs if "learned_gap_per_step" in r]
        gap = f"{np.median(gaps):+.3f} [{min(gaps):+.3f}, {max(gaps):+.3f}]" if gaps else "-"
        lines.append(f"| {agent} | {len(rs)} | {np.median([r['spearman_step'] for r in rs]):.2f} | {gap} | "
                     f"{sum(bool(r['learned_expert_above_own']) for r in rs)} of {len(rs)} |")
    return "\n".join(lines)


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| run | own: success, true / learned return | expert: true / learned | random: true / learned | "
             "Spearman (steps) | learned gap per step | learned: expert > own |", "|---|---|---|---|---:|---:|---|"]
    for r in rows:
        o, e, x = r["own"], r["expert"], r["random"]
        lines.append(f"| {r['run']} | {o['success']:.1f}, {o['true_return']:.0f} / {o['learned_return']:.0f} | "
                     f"{e['true_return']:.0f} / {e['learned_return']:.0f} | {x['true_return']:.0f} / "
                     f"{x['learned_return']:.0f} | {r['spearman_step']:.2f} | "
                     + (f"{r['learned_gap_per_step']:+.3f}" if "learned_gap_per_step" in r else "-") + " | "
                     f"{'yes' if r['learned_expert_above_own'] else 'no'} |")
    return "\n".join(lines)


def main(argv=None) -> list[dict[str, Any]]:
    a = parse_args(argv)
    out = Path(a.out)
    saved_file = out / "diagnose.json"
    saved = {r["run"]: r for r in json.loads(saved_file.read_text())} if saved_file.exists() else {}
    fresh = {}
    for d in sorted(p for p in out.iterdir() if (p / "metrics.json").exists()):
        row = diagnose_run(d, a.episodes, a.seed)
        if row is not None:
            fresh[d.name] = row
            print(f"[diagnose] {d.name}: own success {row['own']['success']:.1f}, Spearman {row['spearman_step']:.2f}",
                  flush=True)
    rows = [r for _, r in sorted({**saved, **fresh}.items())]
    kept = len(set(saved) - set(fresh))
    if kept:
        print(f"[diagnose] kept the saved rows of {kept} runs whose models are not on disk", flush=True)
    from pbrl.io import atomic_write

    with atomic_write(saved_file, suffix=".json") as tmp:
        tmp.write_text(json.dumps(rows, indent=2))
    print(markdown(rows))
    print()
    print(summary(rows))
    return rows


if __name__ == "__main__":
    main()
