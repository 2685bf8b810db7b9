"""How often would a query gate fire inside a PEBBLE run? The disagreement of the queries PEBBLE's
``disagreement`` selector proposes, measured from an ungated run's checkpoints.

For each checkpoint of the run (``<run>/checkpoints/step_*.pt``: the reward ensemble and the replay buffer at
that step), this draws the round's candidate pool as the feedback loop does (``large_batch x n`` pairs of
``segment_length``-step windows from the recorded episodes, :func:`pbrl.queries.candidate_pairs`), lets the
``disagreement`` selector propose ``n = feedback_per_session`` of them, and reports the quantiles of the
proposed pairs' member spread ``std_m P_m[b > a]`` and, for each epsilon, the share a gate
(:class:`pbrl.queries.GatedSelector`) would pass, i.e. ask. The run is only read.

This chose the gate's epsilon for ``scripts/bench_gating.py`` (``docs/query_gating.md``)::

    .venv/bin/python scripts/investigations/gate_spread.py \\
        benchmarks/feedback_study/pebble__metaworld_button-press-v3_goal_hidden__oracle__b1000__s0
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from pbrl.queries import candidate_pairs, make_selector
from pbrl.reward_models.ensemble import RewardEnsemble
from pbrl.segments import Trajectory

EPSILONS = (0.02, 0.05, 0.1, 0.15, 0.2)


def _rows(v) -> np.ndarray:
    """A replay-buffer array of a checkpoint (``("__rows__", array)`` holds the filled rows)."""
    return np.asarray(v[1] if isinstance(v, tuple) else v)


def episodes(buf: dict, step: int) -> list[Trajectory]:
    """The replay buffer's first ``step`` transitions (one env) cut into episodes at ``dones``."""
    obs = _rows(buf["observations"]).reshape(-1, buf["obs_shape"][0])[:step]
    act = _rows(buf["actions"]).reshape(-1, buf["action_dim"])[:step]
    done = _rows(buf["dones"]).reshape(-1)[:step].astype(bool)
    ends = np.flatnonzero(done) + 1
    starts = np.concatenate([[0], ends[:-1]])
    return [Trajectory(obs=obs[s:e].astype(np.float32), act=act[s:e].astype(np.float32),
                       reward=np.zeros(e - s, np.float32)) for s, e in zip(starts, ends, strict=True)]


def measure(run: Path, repeats: int = 3, epsilons=EPSILONS, seed: int = 0) -> list[dict]:
    """One row per checkpoint and repeat: the proposed pairs' spread quantiles and the share passing each epsilon."""
    cfg = json.loads((run / "config.json").read_text())
    n, length = int(cfg["feedback_per_session"]), int(cfg["segment_length"])
    large_batch = int(cfg.get("agent_kwargs", {}).get("large_batch", 10))
    sel = make_selector("disagreement")
    rng = np.random.default_rng(seed)
    out = []
    for ck in sorted((run / "checkpoints").glob("step_*.pt")):
        state = torch.load(ck, map_location="cpu", weights_only=False)
        model = RewardEnsemble.from_state(state["reward_model"])
        eps = [t for t in episodes(state["replay_buffer"], int(state["step"])) if len(t) >= length]
        for r in range(repeats):
            a, b = candidate_pairs(eps, n * large_batch, length, rng)
            idx = sel.select(a, b, n, reward_model=model, labelled=None, rng=rng)
            spread = np.asarray(model.preference_probs(a[idx], b[idx]), dtype=np.float64).std(axis=0)
            out.append({"step": int(state["step"]), "repeat": r,
                        "quantiles": dict(zip(("min", "q10", "q30", "q50", "q70", "q90"),
                                              np.round(np.quantile(spread, [0, .1, .3, .5, .7, .9]), 3).tolist(),
                                              strict=True)),
                        "passed": {str(e): float((spread > e).mean()) for e in epsilons}})
    return out


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", help="a finished or running PEBBLE run directory with checkpoints/")
    p.add_argument("--repeats", type=int, default=3, help="candidate pools drawn per checkpoint")
    p.add_argument("--out", default=None, help="write the rows as JSON here")
    a = p.parse_args(argv)
    run = Path(a.run)
    if not (run / "config.json").exists() or not list((run / "checkpoints").glob("step_*.pt")):
        p.error(f"{run} is not a run directory with checkpoints (config.json and checkpoints/step_*.pt)")
    if a.repeats < 1:
        p.error("--repeats must be >= 1")
    rows = measure(run, a.repeats)
    for row in rows:
        print(row["step"], row["repeat"], row["quantiles"], "passed:", row["passed"])
    if a.out:
        Path(a.out).write_text(json.dumps({"run": str(run), "rows": rows}, indent=2))
    return rows


if __name__ == "__main__":
    sys.exit(main() and 0)
