"""Does a JAX learner pay? SB3's SAC against SBX's SAC (``sbx-rl``, the SB3 team's JAX port) at the feedback
study's sizes, on a Meta-World task, one CPU thread each, measured in one run.

The speed issue's rule: offer SBX as an optional learner only if a whole PEBBLE run is >= 1.4x faster with
it. PEBBLE's run is SAC's run plus the PbRL parts (reward fits, k-NN entropy, relabelling), which do not get
faster with a JAX learner, so SAC's own end-to-end ratio bounds PEBBLE's from above. Measured here:

* ``train``: CPU seconds per 1,000 gradient steps of ``model.train`` on a filled buffer (the learner alone);
* ``learn``: CPU seconds per 1,000 env steps of ``model.learn`` (env stepping, action sampling, replay and
  training: what a run costs), after a short warm-up (JAX compiles on the first calls);
* the ratios SB3 / SBX of both, and the implied bound on PEBBLE's ratio given PEBBLE's measured share of
  non-learner CPU time (``--pbrl-share``, from the feedback study's ``feedback_time_s``).

Writes ``<out>/bench_sbx.json`` and ``<out>/bench_sbx.png`` and prints a table. The decision itself (whole
PEBBLE runs on either learner) is measured by ``scripts/investigations/bench_sbx_pebble.py`` (``docs/sbx.md``). Needs
``pip install sbx-rl`` (it is not a pbrl dependency)::

    python scripts/investigations/bench_sbx.py --steps 5000
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

SIZES = {"net_arch": [128, 128], "batch_size": 256, "train_freq": 2, "gradient_steps": 1, "learning_starts": 1000}


def _model(lib: str, env, seed: int):
    kw = dict(batch_size=SIZES["batch_size"], train_freq=SIZES["train_freq"], gradient_steps=SIZES["gradient_steps"],
              learning_starts=SIZES["learning_starts"], policy_kwargs={"net_arch": SIZES["net_arch"]},
              learning_rate=3e-4, tau=0.005, gamma=0.99, ent_coef="auto_0.1", seed=seed, verbose=0)
    if lib == "sb3":
        from stable_baselines3 import SAC
    else:
        from sbx import SAC
    return SAC("MlpPolicy", env, **kw)


def measure(lib: str, task: str, steps: int, train_steps: int, seed: int = 0) -> dict:
    import torch

    from pbrl.envs import make_env

    torch.set_num_threads(1)
    model = _model(lib, make_env(task, seed=seed), seed)
    model.learn(SIZES["learning_starts"] + 500)  # fills the buffer past learning_starts; JAX compiles here
    c0 = time.process_time()
    model.learn(steps, reset_num_timesteps=False)
    learn = (time.process_time() - c0) / steps * 1000
    c0 = time.process_time()
    model.train(gradient_steps=train_steps, batch_size=SIZES["batch_size"])
    train = (time.process_time() - c0) / train_steps * 1000
    return {"learn_cpu_s_per_1k_env_steps": learn, "train_cpu_s_per_1k_updates": train}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", default="metaworld/button-press-v3")
    p.add_argument("--steps", type=int, default=5000, help="env steps of the timed learn() call")
    p.add_argument("--train-steps", type=int, default=2000, help="gradient steps of the timed train() call")
    p.add_argument("--pbrl-share", type=float, default=None,
                   help="share of a PEBBLE run's CPU spent outside the learner (reward fits, k-NN, queries)")
    p.add_argument("--out", default="benchmarks/bench_sbx")
    a = p.parse_args(argv)
    if a.steps < 1 or a.train_steps < 1:
        p.error("--steps and --train-steps must be >= 1")
    if a.pbrl_share is not None and not 0 <= a.pbrl_share < 1:
        p.error("--pbrl-share must be in [0, 1)")
    res = {lib: measure(lib, a.task, a.steps, a.train_steps) for lib in ("sb3", "sbx")}
    ratio = {k: res["sb3"][k] / res["sbx"][k] for k in res["sb3"]}
    out = {"task": a.task, "sizes": SIZES, "steps": a.steps, "train_steps": a.train_steps, "results": res,
           "speedup_sb3_over_sbx": ratio}
    if a.pbrl_share is not None:  # the PbRL share does not speed up: Amdahl's bound on PEBBLE's ratio
        r = ratio["learn_cpu_s_per_1k_env_steps"]
        out["pebble_speedup_bound"] = 1.0 / (a.pbrl_share + (1 - a.pbrl_share) / r)
    d = Path(a.out)
    d.mkdir(parents=True, exist_ok=True)
    (d / "bench_sbx.json").write_text(json.dumps(out, indent=2))
    print("| CPU s per 1k | SB3 SAC | SBX SAC | SB3 / SBX |\n|---|---:|---:|---:|")
    for k in res["sb3"]:
        print(f"| {k} | {res['sb3'][k]:.2f} | {res['sbx'][k]:.2f} | {ratio[k]:.2f}x |")
    if "pebble_speedup_bound" in out:
        print(f"PEBBLE's speed-up bound at a {a.pbrl_share:.0%} PbRL share: {out['pebble_speedup_bound']:.2f}x")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2))
    keys = list(res["sb3"])
    xs = range(len(keys))
    ax.bar([x - 0.2 for x in xs], [res["sb3"][k] for k in keys], 0.4, label="SB3 SAC (torch)")
    ax.bar([x + 0.2 for x in xs], [res["sbx"][k] for k in keys], 0.4, label="SBX SAC (JAX)")
    ax.set_xticks(list(xs), ["learn: per 1k env steps", "train: per 1k updates"])
    ax.set_ylabel("CPU seconds")
    ax.set_title(f"{a.task}, 2 x 128, batch 256, one thread")
    ax.legend()
    fig.tight_layout()
    fig.savefig(d / "bench_sbx.png", dpi=120)
    return out


if __name__ == "__main__":
    main()
