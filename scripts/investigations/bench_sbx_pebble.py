"""Does PEBBLE pay on SBX's JAX SAC? Whole PEBBLE runs, ``learner="sb3"`` against ``learner="sbx"``, at the
feedback study's sizes on a Meta-World task, one CPU thread each, measured in one run.

The speed issue's rule: offer SBX as an optional learner only if a whole PEBBLE run is >= 1.4x faster on it.
It was not (``docs/sbx.md``), so SBX is not a pbrl learner: this script carries the few lines PEBBLE needs on
SBX's SAC (:func:`sbx_pebble_class`: the learner class, the replay buffer SBX samples from, the critic reset
of SBX's flax parameters and optax state, the reset's updates as calls of the learner's own
``gradient_steps``, as the in-package integration of commits 3cd7d0a and 8ad6c17 did).
Each run here is a real PEBBLE run at the study's sizes (SAC 2 x 128, batch 256, one gradient step per 2 env
steps; reward ensemble 3 x (3 x 128); 1,000 labels, 100 per session every 2,500 steps; the oracle teacher):
by default 15,000 env steps, i.e. 1,000 random steps, 9,000 steps of k-NN state-entropy pre-training, the
first session with the critic reset and 100 updates at step 10,000, then sessions at 12,500 and 15,000.
Every run is its own fresh process (JAX compiles inside the measured run and no run reuses another's
compiled code); with ``--repeats 2`` the runs go in ABBA order (sb3, sbx, sbx, sb3).

Measured, in CPU seconds (``time.process_time`` of the run's process, from building the agent to the end):

* per run and the ratio SB3 / SBX, in total and per phase (random, pre-training, feedback);
* where the CPU went: MuJoCo stepping; the learner (``model.train`` minus the sample-time reward, the
  critic reset's updates, and the rest of SB3's loop: action sampling, replay, callbacks, building the
  model); the PbRL parts (the k-NN entropy reward at sample time, the wrapper's per-step reward prediction,
  and ``agent.callback.timing``: queries, reward fits, relabelling);
* an estimate for the study's whole run (``--project-steps``, 50,000): the measured run plus the feedback
  phase's per-step cost for the remaining steps and the remaining sessions at the measured per-label fit
  and per-row relabel rates (an estimate, not a measurement; the decision rests on the measured runs).

Writes ``<out>/bench_sbx_pebble.json`` and ``<out>/bench_sbx_pebble.png`` and prints a table. Needs
``pip install sbx-rl`` (0.28.0 measured; it is not a pbrl dependency)::

    python scripts/investigations/bench_sbx_pebble.py --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

#: the feedback study's sizes (scripts/bench_feedback.py's CPU_SAC_KWARGS and reward-model width)
LEARNER_KWARGS = {"policy_kwargs": {"net_arch": [128, 128]}, "batch_size": 256, "train_freq": 2, "gradient_steps": 1}
REWARD_MODEL_KWARGS = {"hidden": [128, 128, 128]}
FEEDBACK = {"total_feedback": 1000, "feedback_per_session": 100, "feedback_every": 2500}
#: a smoke test's sizes (``--quick``): HalfCheetah cut to 50-step episodes, tiny networks
QUICK = {"task": "mujoco/HalfCheetah-v5", "steps": 400, "unsup_steps": 150, "learning_starts": 50,
         "max_episode_steps": 50, "segment_length": 10,
         "learner_kwargs": {"policy_kwargs": {"net_arch": [16, 16]}, "batch_size": 32, "train_freq": 2,
                            "gradient_steps": 1, "buffer_size": 2000},
         "reward_model_kwargs": {"hidden": [16, 16]},
         "feedback": {"total_feedback": 30, "feedback_per_session": 10, "feedback_every": 100}}
LEARNERS = ("sb3", "sbx")
PARTS = ("env", "train", "reset_updates", "rollout_other", "knn_entropy", "reward_predict", "query", "fit",
         "relabel")
GROUPS = {"learner": ("train", "reset_updates", "rollout_other"),
          "pbrl": ("knn_entropy", "reward_predict", "query", "fit", "relabel"), "env": ("env",)}


class _Clock:
    """Accumulates the CPU seconds spent inside wrapped callables, per part name."""

    def __init__(self):
        self.s: dict[str, float] = {}

    def wrap(self, name: str, fn):
        def timed(*args, **kwargs):
            t = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.s[name] = self.s.get(name, 0.0) + time.process_time() - t

        return timed


def sbx_pebble_class() -> type:
    """PEBBLE on SBX's SAC, for this measurement (SBX keeps SB3's API, off-policy loop and replay buffers, so
    the wrapper, the feedback callback, relabelling and PbrlReplayBuffer's hooks work unchanged; SBX's
    ``train`` samples ``batch_size * gradient_steps`` rows per call through the same buffer)."""
    import jax
    import numpy as np
    import sbx

    from pbrl.agents.pebble import PEBBLE, CriticReset

    def reset_critic(model) -> None:  # new flax parameters from the model's PRNG key, target = them, fresh Adam
        model.key, qf_key, dropout_key = jax.random.split(model.key, 3)
        qf = model.policy.qf_state
        obs = np.zeros((1, *model.observation_space.shape), np.float32)
        act = np.zeros((1, *model.action_space.shape), np.float32)
        params = model.policy.qf.init({"params": qf_key, "dropout": dropout_key}, obs, act)
        model.policy.qf_state = qf.replace(step=0, params=params, target_params=params, opt_state=qf.tx.init(params))

    class SbxCriticReset(CriticReset):
        def after_relabel(self, callback, first: bool) -> None:
            if not first:
                return
            model = callback.model
            reset_critic(model)
            g = max(int(model.gradient_steps), 1)  # SBX compiles per step count: reuse training's update
            for k in [g] * (self.updates // g) + ([self.updates % g] if self.updates % g else []):
                model.train(gradient_steps=k, batch_size=model.batch_size)

    class SbxPEBBLE(PEBBLE):
        learner_cls = sbx.SAC

        @property
        def is_off_policy(self) -> bool:  # PbrlReplayBuffer as SBX's buffer, relabelling on
            return True

        def _make_hooks(self):
            return [SbxCriticReset(h.updates) if isinstance(h, CriticReset) else h for h in super()._make_hooks()]

    return SbxPEBBLE


def child(spec: dict) -> dict:
    """One PEBBLE run in this process, instrumented (see the module docstring)."""
    c0 = time.process_time()
    import torch
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.utils import set_random_seed

    from pbrl.agents.pebble import PEBBLE
    from pbrl.envs import make_env
    from pbrl.teachers import make_teacher

    torch.set_num_threads(1)
    c_import = time.process_time() - c0
    c0 = time.process_time()
    seed = spec["seed"]
    set_random_seed(seed)
    env = spec["task"] if spec.get("max_episode_steps") is None else make_env(
        spec["task"], seed=seed, max_episode_steps=spec["max_episode_steps"])
    cls = PEBBLE if spec["learner"] == "sb3" else sbx_pebble_class()
    agent = cls(env, make_teacher("oracle", seed=seed), seed=seed,
                   learner_kwargs={**spec["learner_kwargs"], "learning_starts": spec["learning_starts"]},
                   reward_model_kwargs=spec["reward_model_kwargs"], unsup_steps=spec["unsup_steps"],
                   segment_length=spec.get("segment_length", 50), **spec["feedback"])
    clock = _Clock()
    model, cb, buf = agent.model, agent.callback, agent.model.replay_buffer
    base = agent.env.venv
    base.step_wait = clock.wrap("env", base.step_wait)
    agent.env.predict_reward = clock.wrap("reward_predict", agent.env.predict_reward)
    buf.sample_reward = clock.wrap("knn_entropy", buf.sample_reward)  # PEBBLE's pre-training reward
    sessions: list[dict] = []
    in_session = {"on": False}
    timed_train = {k: clock.wrap(k, model.train) for k in ("train_all", "reset_updates")}

    def train_any(*args, **kwargs):  # gradient steps inside a session are the critic reset's 100 updates
        return timed_train["reset_updates" if in_session["on"] else "train_all"](*args, **kwargs)

    model.train = train_any
    run_session = cb.run_session

    def session():
        t, before = time.process_time(), dict(cb.timing)
        in_session["on"] = True
        try:
            return run_session()
        finally:
            in_session["on"] = False
            sessions.append({"step": int(model.num_timesteps), "cpu_s": time.process_time() - t,
                             "labels": int(cb.labels_used), "rows": int(buf.size_filled() * buf.n_envs),
                             **{k: cb.timing[k] - before[k] for k in cb.timing}})

    cb.run_session = session
    marks: dict[str, float] = {}
    first = spec["learning_starts"] + spec["unsup_steps"]

    class Marks(BaseCallback):  # CPU clock when each phase ends (after that step's feedback session)
        def _on_step(self) -> bool:
            t = self.num_timesteps
            if t >= spec["learning_starts"] and "random" not in marks:
                marks["random"] = time.process_time() - c0
            if t >= first and "pretraining" not in marks:
                marks["pretraining"] = time.process_time() - c0
            return True

    c_build = time.process_time() - c0
    agent.learn(spec["steps"], callback=Marks(0))
    total = time.process_time() - c0
    parts = {k: clock.s.get(k, 0.0) for k in ("env", "reward_predict", "knn_entropy", "reset_updates")}
    parts.update({k: float(cb.timing[k]) for k in ("query", "fit", "relabel")})
    # model.train calls the sample-time reward: the k-NN time is inside train_all
    parts["train"] = clock.s.get("train_all", 0.0) - parts["knn_entropy"]
    parts["rollout_other"] = total - sum(parts[k] for k in PARTS if k != "rollout_other")
    return {"learner": spec["learner"], "cpu_s": total, "build_s": c_build, "import_s": c_import,
            "phases_s": {"random": marks["random"], "pretraining": marks["pretraining"] - marks["random"],
                         "feedback": total - marks["pretraining"]},
            "parts_s": parts, "sessions": sessions, "labels": int(cb.labels_used), "asked": int(cb.asked),
            "n_updates": int(model._n_updates), "steps": int(model.num_timesteps)}


def _run_child(spec: dict) -> dict:
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "result.json"
        subprocess.run([sys.executable, __file__, "--child", json.dumps(spec), "--child-out", str(out)],
                       check=True)
        return json.loads(out.read_text())


def _mean(runs: list[dict], get) -> float:
    return sum(get(r) for r in runs) / len(runs)


def project(r: dict, steps: int, spec: dict) -> float:
    """Estimated CPU seconds of a whole ``steps``-step run from the measured run ``r`` (module docstring)."""
    fb = spec["feedback"]
    first = spec["learning_starts"] + spec["unsup_steps"]
    later = [s for s in r["sessions"] if s["step"] > first]
    fb_steps = max(r["steps"] - first, 1)
    steady = (r["phases_s"]["feedback"] - sum(s["cpu_s"] for s in later)) / fb_steps  # per env step
    fit_per_label = sum(s["fit"] for s in r["sessions"]) / max(sum(s["labels"] for s in r["sessions"]), 1)
    relabel_per_row = sum(s["relabel"] for s in r["sessions"]) / max(sum(s["rows"] for s in r["sessions"]), 1)
    query = _mean(r["sessions"], lambda s: s["query"]) if r["sessions"] else 0.0
    n_sessions = len(r["sessions"])
    extra = steady * max(steps - r["steps"], 0)
    step, labels = (r["sessions"][-1]["step"] if r["sessions"] else first), r["labels"]
    while n_sessions * fb["feedback_per_session"] < fb["total_feedback"]:
        step += fb["feedback_every"]
        if step > steps:
            break
        labels += fb["feedback_per_session"]
        n_sessions += 1
        extra += query + fit_per_label * labels + relabel_per_row * step
    return r["cpu_s"] + extra


def pebble_main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", default="metaworld/button-press-v3")
    p.add_argument("--steps", type=int, default=15_000, help="env steps of each PEBBLE run")
    p.add_argument("--unsup-steps", type=int, default=9000, help="entropy pre-training steps (PEBBLE's default)")
    p.add_argument("--repeats", type=int, default=1, help="runs per learner (2: ABBA order)")
    p.add_argument("--project-steps", type=int, default=50_000, help="the study's run length, for the estimate")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="a smoke test: tiny sizes, HalfCheetah, 400 steps")
    p.add_argument("--out", default="benchmarks/bench_sbx")
    a = p.parse_args(argv)
    for k in ("steps", "repeats", "project_steps"):
        if getattr(a, k) < 1:
            p.error(f"--{k.replace('_', '-')} must be >= 1")
    spec = {"task": a.task, "steps": a.steps, "unsup_steps": a.unsup_steps, "learning_starts": 1000,
            "learner_kwargs": LEARNER_KWARGS, "reward_model_kwargs": REWARD_MODEL_KWARGS, "feedback": FEEDBACK,
            "seed": a.seed}
    if a.quick:
        spec.update(QUICK)
    order = [LEARNERS[(i + (i // 2)) % 2] for i in range(2 * a.repeats)]  # sb3 sbx sbx sb3 sb3 sbx ...
    runs: dict[str, list[dict]] = {k: [] for k in LEARNERS}
    for lib in order:
        r = _run_child({**spec, "learner": lib})
        runs[lib].append(r)
        print(f"[bench_sbx_pebble] {lib}: {r['cpu_s']:.1f} CPU-s, {r['steps']} steps, {r['labels']} labels",
              flush=True)
    mean = {lib: {"cpu_s": _mean(rs, lambda r: r["cpu_s"]),
                  "phases_s": {k: _mean(rs, lambda r, k=k: r["phases_s"][k]) for k in rs[0]["phases_s"]},
                  "parts_s": {k: _mean(rs, lambda r, k=k: r["parts_s"][k]) for k in PARTS},
                  "projected_cpu_s": _mean(rs, lambda r: project(r, a.project_steps, spec))}
            for lib, rs in runs.items()}
    for m in mean.values():
        m["groups_s"] = {g: sum(m["parts_s"][k] for k in ks) for g, ks in GROUPS.items()}
        m["shares"] = {g: v / m["cpu_s"] for g, v in m["groups_s"].items()}
    ratio = {"run": mean["sb3"]["cpu_s"] / mean["sbx"]["cpu_s"],
             "projected": mean["sb3"]["projected_cpu_s"] / mean["sbx"]["projected_cpu_s"],
             **{f"phase_{k}": mean["sb3"]["phases_s"][k] / mean["sbx"]["phases_s"][k] for k in mean["sb3"]["phases_s"]},
             "learner": mean["sb3"]["groups_s"]["learner"] / mean["sbx"]["groups_s"]["learner"]}
    out = {"spec": spec, "order": order, "runs": runs, "mean": mean, "speedup_sb3_over_sbx": ratio,
           "threshold": 1.4, "pays": ratio["run"] >= 1.4, "project_steps": a.project_steps}
    d = Path(a.out)
    d.mkdir(parents=True, exist_ok=True)
    (d / "bench_sbx_pebble.json").write_text(json.dumps(out, indent=2))
    _print(out)
    _plot(out, d / "bench_sbx_pebble.png")
    return out


def _print(out: dict) -> None:
    m, r = out["mean"], out["speedup_sb3_over_sbx"]
    print(f"\nPEBBLE, {out['spec']['task']}, {out['spec']['steps']} steps, runs per learner: "
          f"{len(out['runs']['sb3'])} (CPU seconds)")
    print("| | SB3 SAC | SBX SAC | SB3 / SBX |\n|---|---:|---:|---:|")
    print(f"| whole run | {m['sb3']['cpu_s']:.1f} | {m['sbx']['cpu_s']:.1f} | {r['run']:.2f}x |")
    for k in m["sb3"]["phases_s"]:
        print(f"| phase: {k} | {m['sb3']['phases_s'][k]:.1f} | {m['sbx']['phases_s'][k]:.1f} | {r['phase_' + k]:.2f}x |")
    for g in GROUPS:
        print(f"| {g} (share) | {m['sb3']['groups_s'][g]:.1f} ({m['sb3']['shares'][g]:.0%}) | "
              f"{m['sbx']['groups_s'][g]:.1f} ({m['sbx']['shares'][g]:.0%}) | "
              f"{m['sb3']['groups_s'][g] / max(m['sbx']['groups_s'][g], 1e-9):.2f}x |")
    for k in PARTS:
        print(f"| - {k} | {m['sb3']['parts_s'][k]:.1f} | {m['sbx']['parts_s'][k]:.1f} | |")
    print(f"| estimate, {out['project_steps']} steps | {m['sb3']['projected_cpu_s']:.0f} | "
          f"{m['sbx']['projected_cpu_s']:.0f} | {r['projected']:.2f}x |")
    print(f"measured speed-up {r['run']:.2f}x: {'>=' if out['pays'] else '<'} the 1.4x threshold")


def _plot(out: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = out["mean"]
    fig, ax = plt.subplots(figsize=(8.5, 3.2))
    left = {lib: 0.0 for lib in LEARNERS}
    colors = plt.get_cmap("tab10")
    for i, k in enumerate(PARTS):
        vals = [m[lib]["parts_s"][k] for lib in LEARNERS]
        ax.barh(list(LEARNERS), vals, left=[left[lib] for lib in LEARNERS], color=colors(i), label=k)
        for lib, v in zip(LEARNERS, vals):
            left[lib] += v
    ax.set_yticks(range(2), ["SB3 SAC (torch)", "SBX SAC (JAX)"])
    ax.set_xlabel("CPU seconds per run")
    ax.set_title(f"PEBBLE, {out['spec']['task']}, {out['spec']['steps']} steps: "
                 f"SB3 / SBX = {out['speedup_sb3_over_sbx']['run']:.2f}x", fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> dict:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["--child"]:  # one run, in this fresh process
        res = child(json.loads(argv[1]))
        Path(argv[3]).write_text(json.dumps(res))
        return res
    return pebble_main(argv)


if __name__ == "__main__":
    main()
