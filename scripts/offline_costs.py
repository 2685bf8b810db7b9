"""The ``--dry-run`` CPU estimate of the offline benchmarks (``scripts/bench_offline.py``,
``scripts/offline_curve.py``), from committed measurements under ``docs/``: the old bench_offline script's
105 runs (``bench_offline.json``) and, for what it did not measure (the rows it did not run, the
evaluations), smoke runs (``offline_costs.json``, which says how they were taken).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

#: the measurement files under docs/
COST_FILES = ("bench_offline.json", "offline_costs.json")


def measured_costs(docs: Path | None = None) -> dict[str, Any]:
    """``{"agents": {row: {"cpu_s_per_1k_updates", "fixed_cpu_s"}}, "eval_cpu_s_per_episode": {domain: s}}``
    from :data:`COST_FILES`. From the old script's runs: its update-loop CPU per 1k updates, and as the
    fixed part (reward-model fit, label transfer) its fit time minus that loop; ``offline_costs.json`` adds
    the rows it did not run and one evaluation episode's CPU per domain. Missing files give empty tables."""
    docs = docs or Path(__file__).resolve().parents[1] / "docs"
    agents: dict[str, dict[str, float]] = {}
    f = docs / COST_FILES[0]
    if f.exists():
        per: dict[str, list[tuple[float, float]]] = {}
        for r in json.loads(f.read_text()).get("runs", []):
            loop = float(r["cpu_s_per_1k_updates"]) * int(r["steps"]) / 1000
            per.setdefault(r["agent"], []).append((float(r["cpu_s_per_1k_updates"]), max(float(r["fit_wall_s"]) - loop, 0.0)))
        agents = {a: {"cpu_s_per_1k_updates": float(np.mean([v[0] for v in vs])),
                      "fixed_cpu_s": float(np.mean([v[1] for v in vs]))} for a, vs in per.items()}
    f = docs / COST_FILES[1]
    extra = json.loads(f.read_text()) if f.exists() else {}
    agents.update({a: {k: float(v[k]) for k in ("cpu_s_per_1k_updates", "fixed_cpu_s")}
                   for a, v in extra.get("agents", {}).items()})
    return {"agents": agents, "eval_cpu_s_per_episode": dict(extra.get("eval_cpu_s_per_episode", {}))}


def n_evaluations(steps: int, eval_every: int) -> int:
    """Evaluations of a run: every ``eval_every`` updates, and one at the end when that is not a multiple."""
    return steps // eval_every + (1 if steps % eval_every else 0)


def estimate_cpu_s(rows: list[str], domains: list[str], steps: int, eval_every: int, eval_episodes: int,
                   costs: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """Rough CPU seconds of a grid of runs, run ``i`` of benchmark row ``rows[i]`` on a dataset of domain
    ``domains[i]`` (``metaworld`` or ``locomotion``): per run ``fixed_cpu_s + cpu_s_per_1k_updates x steps /
    1000 + evaluations x eval_episodes x (one episode's CPU on the domain)``, from :func:`measured_costs`.
    A row with no measurement counts as the mean of the measured rows (listed under ``"unmeasured"``), a
    domain with none as 0 s. Returns ``{"cpu_s", "updates_s", "fixed_s", "evaluations_s", "unmeasured"}``,
    or ``None`` when nothing is measured."""
    costs = costs or measured_costs()
    known = costs["agents"]
    if not known:
        return None
    mean = {k: float(np.mean([c[k] for c in known.values()])) for k in ("cpu_s_per_1k_updates", "fixed_cpu_s")}
    per_episode = costs["eval_cpu_s_per_episode"]
    n_eval = n_evaluations(steps, eval_every)
    parts = {"updates_s": 0.0, "fixed_s": 0.0, "evaluations_s": 0.0}
    for row, dom in zip(rows, domains):
        c = known.get(row, mean)
        parts["updates_s"] += c["cpu_s_per_1k_updates"] * steps / 1000
        parts["fixed_s"] += c["fixed_cpu_s"]
        parts["evaluations_s"] += n_eval * eval_episodes * float(per_episode.get(dom, 0.0))
    return {"cpu_s": sum(parts.values()), **parts, "unmeasured": sorted(set(rows) - set(known))}
