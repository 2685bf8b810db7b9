"""Why RIME's learned reward saturates: replay the first preference fits after its warm start.

In 2 of the feedback study's 11 RIME runs the tanh reward ended at -1 on every state. This script runs RIME's
seed steps and state-entropy pre-training (with its reward warm start, Eq. 8) exactly as
``scripts/bench_feedback.py`` does, stops just before the first feedback session, and then fits the reward
model for ``--sessions`` sessions of oracle labels from three starting points that share everything else:

* ``warm start, one Adam``: the model the run leaves, with the optimizer the warm start used (the authors' code
  and pbrl's default);
* ``warm start, moments cleared``: the same weights, Adam's moments cleared (``warm_start_reset_optimizer``);
* ``no warm start``: the reward model as initialised (the paper's ablation ``warm_start_steps=0``).

Each variant gets a fresh denoising discriminator (RIME's loss and learning-rate warm-up) and the same pairs. A
simplification against a real run: the labelled pairs are uniform random windows of the pre-training episodes
(the run's first session is uniform too; later ones use disagreement on new episodes). Per session it records
the members' median tanh pre-activation on the replay buffer, the share of buffer states with
``|pre-activation| > 5`` (reward within 1e-4 of +-1) and the accuracy on held-out oracle pairs. Writes
``rime_saturation.json`` and ``rime_saturation.png`` under ``--out`` and prints the table.

Cost: the pre-training of one seed is about 10 CPU-minutes at the study's sizes (the warm start is most of
it), the fits a few seconds per variant.

    .venv/bin/python scripts/investigations/rime_saturation.py --seeds 0 1 2
    .venv/bin/python scripts/investigations/rime_saturation.py --smoke           # a tiny run that checks the script (1 min)
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pbrl.bench import CPU_REWARD_MODEL_KWARGS, CPU_SAC_KWARGS

VARIANTS = ("warm start, one Adam", "warm start, moments cleared", "no warm start")
SATURATED = 5.0  # |pre-activation| above which tanh is within 1e-4 of +-1


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default="metaworld/button-press-v3")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--labels", type=int, default=250, help="labelled pairs over all sessions")
    p.add_argument("--sessions", type=int, default=10)
    p.add_argument("--held-out", type=int, default=500, help="held-out oracle pairs for the accuracy")
    p.add_argument("--segment-length", type=int, default=50)
    p.add_argument("--out", default="benchmarks/rime_saturation")
    p.add_argument("--smoke", action="store_true", help="tiny sizes: checks the script, measures nothing")
    p.add_argument("--report-only", action="store_true", help="the table and figure of --out's saved results")
    a = p.parse_args(argv)
    if a.labels < a.sessions or a.sessions < 1 or a.held_out < 1:
        p.error("need --sessions >= 1, --labels >= --sessions and --held-out >= 1")
    return a


def _agent(a: argparse.Namespace, seed: int):
    from pbrl.config import config_from_dict
    from pbrl.train_online import build_online

    cfg: dict[str, Any] = {
        "kind": "online", "agent": "rime", "task": a.task, "teacher": "oracle", "seed": seed, "torch_threads": 1,
        "total_timesteps": 50_000, "total_feedback": a.labels, "feedback_per_session": a.labels // a.sessions,
        "segment_length": a.segment_length, "learner_kwargs": dict(CPU_SAC_KWARGS),
        "reward_model_kwargs": dict(CPU_REWARD_MODEL_KWARGS),
    }
    if a.smoke:
        cfg.update(task="mujoco/HalfCheetah-v5", max_episode_steps=60, segment_length=10,
                   learner_kwargs={**CPU_SAC_KWARGS, "learning_starts": 60, "batch_size": 32,
                                   "policy_kwargs": {"net_arch": [16, 16]}},
                   reward_model_kwargs={"hidden": [16, 16]}, agent_kwargs={"unsup_steps": 120})
    return build_online(config_from_dict(cfg))


def _buffer_inputs(agent) -> torch.Tensor:
    from pbrl.online import unscale_action

    buf = agent.model.replay_buffer
    n = buf.size_filled()
    act = unscale_action(buf.actions[:n].reshape(n * buf.n_envs, -1), agent.model.action_space)
    obs = buf.observations[:n].reshape(n * buf.n_envs, -1)
    return torch.as_tensor(np.concatenate([obs, act], axis=-1), device=agent.reward_model.device)


def _probe(rm, x: torch.Tensor, held) -> dict[str, Any]:
    from pbrl.reward_models.metrics import evaluate_reward_model

    with torch.no_grad():
        pre = rm.net(rm._normalise(x))[..., 0].cpu().numpy()  # [M, N]
    acc = evaluate_reward_model(rm, held)["label_accuracy"]
    return {"median_pre": np.median(pre, axis=1).round(3).tolist(), "saturated": float((np.abs(pre) > SATURATED).mean()),
            "held_out_accuracy": acc}


def run_seed(a: argparse.Namespace, seed: int) -> dict[str, Any]:
    from pbrl.preferences import PreferenceDataset
    from pbrl.reward_models import RewardTrainer
    from pbrl.segments import sample_segment_pairs
    from pbrl.teachers import make_teacher

    agent = _agent(a, seed)
    rm = agent.reward_model
    init = copy.deepcopy(rm.state())
    switch = agent.seed_steps + int(agent.unsup_steps)  # the first feedback session's step
    c0 = time.process_time()
    # seed steps and pre-training, warm start included; SB3 collects in chunks of train_freq steps
    agent.learn(switch - int(agent.model.train_freq.frequency))
    pretrain_cpu = time.process_time() - c0
    if agent.callback.updates:
        raise RuntimeError(f"the first feedback session ran before step {switch}: {agent.callback.state_dict()}")
    warm = copy.deepcopy(rm.state())
    episodes = [t for t in agent.env.episodes if len(t) >= a.segment_length]
    rng = np.random.default_rng(1000 + seed)
    teacher = make_teacher("oracle", seed=seed)
    ta, tb = sample_segment_pairs(episodes, a.labels, a.segment_length, rng)
    train = PreferenceDataset(ta, tb, teacher.label(ta, tb))
    ha, hb = sample_segment_pairs(episodes, a.held_out, a.segment_length, rng)
    held = PreferenceDataset(ha, hb, teacher.label(ha, hb))
    x = _buffer_inputs(agent)
    per = a.labels // a.sessions
    out: dict[str, Any] = {"seed": seed, "pretrain_cpu_s": pretrain_cpu, "warm_start_updates": agent.warm_start.updates,
                           "variants": {}}
    for name in VARIANTS:
        rm.load_state(copy.deepcopy(init if name == "no warm start" else warm))
        if name == "warm start, moments cleared":  # the hook the run calls before its first fit
            agent.warm_start.reset_optimizer = True
            agent.warm_start.after_labels(agent.callback, episodes)
        agent.discriminator = None  # a fresh discriminator: epoch counter, KL statistics, lr warm-up
        trainer = RewardTrainer(agent._loss_terms(), **agent._fit_kwargs(None))
        rows = [{"session": 0, **_probe(rm, x, held)}]
        for k in range(1, a.sessions + 1):
            fit = trainer.fit(rm, train.subset(np.arange(min(k * per, len(train)))))
            rows.append({"session": k, "train_accuracy": float(fit["accuracy"]), **_probe(rm, x, held)})
        out["variants"][name] = rows
    return out


def markdown(results: list[dict[str, Any]]) -> str:
    lines = ["| seed | start of the fits | median pre-activation per member after fit 1 | after the last fit | "
             f"states with \\|pre-activation\\| > {SATURATED:g} after the last fit | train accuracy, last fit | "
             "held-out accuracy, last fit |",
             "|---:|---|---|---|---:|---:|---:|"]
    for r in results:
        for name, rows in r["variants"].items():
            first, last = rows[1], rows[-1]
            lines.append(f"| {r['seed']} | {name} | {', '.join(f'{v:.1f}' for v in first['median_pre'])} | "
                         f"{', '.join(f'{v:.1f}' for v in last['median_pre'])} | {last['saturated']:.0%} | "
                         f"{last['train_accuracy']:.2f} | {last['held_out_accuracy']:.2f} |")
    return "\n".join(lines)


def plot(results: list[dict[str, Any]], path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    colours = dict(zip(VARIANTS, ("tab:red", "tab:blue", "tab:grey")))
    for r in results:
        for name, rows in r["variants"].items():
            s = [row["session"] for row in rows]
            label = name if r is results[0] else None
            axes[0].plot(s, [row["saturated"] for row in rows], color=colours[name], label=label, alpha=0.8)
            axes[1].plot(s, [row["held_out_accuracy"] for row in rows], color=colours[name], label=label, alpha=0.8)
    axes[0].set(xlabel="feedback session", ylabel=f"buffer states with |pre-activation| > {SATURATED:g}", ylim=(0, 1))
    axes[1].set(xlabel="feedback session", ylabel="held-out pair accuracy", ylim=(0.3, 1))
    axes[0].legend(fontsize=8)
    fig.suptitle("RIME: the reward model after its warm start (one line per seed)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv=None) -> list[dict[str, Any]]:
    a = parse_args(argv)
    out = Path(a.out)
    if a.report_only:
        saved = out / "rime_saturation.json"
        if not saved.exists():
            sys.exit(f"rime_saturation: no {saved}; run without --report-only first")
        results = json.loads(saved.read_text())["results"]
        plot(results, out / "rime_saturation.png")
        print(markdown(results))
        return results
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for seed in a.seeds:
        print(f"[rime_saturation] seed {seed}: pre-training then {len(VARIANTS)} replays of {a.sessions} fits", flush=True)
        results.append(run_seed(a, seed))
        (out / "rime_saturation.json").write_text(json.dumps({"args": vars(a), "results": results}, indent=1))
    plot(results, out / "rime_saturation.png")
    table = markdown(results)
    print(table)
    return results


if __name__ == "__main__":
    main()
