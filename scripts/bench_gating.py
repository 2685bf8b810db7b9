"""Query gating in PEBBLE on one Meta-World task: the feedback study's PEBBLE runs, with only the query selector
changed (issue #33, section 4, the second check; the first, on a fixed pool, is
``scripts/investigations/query_gating.py``).

The grid is PEBBLE on ``metaworld/button-press-v3:goal=hidden`` with exactly the feedback study's settings
(``scripts/bench_feedback.py``'s defaults: 50k env steps, 1,000 labels spread over B-Pref's rounds every 5,000
steps from the end of pre-training, the oracle teacher, CPU network sizes), varying only ``selector`` and
``selector_kwargs``. The ungated baseline (PEBBLE's default ``disagreement`` selector) is not run again: the
feedback study runs that very config, so its runs are read from ``--baseline``'s ``runs.csv`` (or its run
directories), after checking that each one's config equals this study's baseline config key for key; a
baseline run with another config stops the summary (exit 2).

Rows: ``disagreement`` (the feedback study's runs), ``gated_disagreement`` (the gate, ``--epsilon``) and, with
``--selectors``, ``thompson`` or ``gated_thompson``. Reported per run: labels asked and answered, the share of
proposed queries the gate skipped in each round, the final success rate, and success against labels used.

Example::

    .venv/bin/python scripts/bench_gating.py --dry-run
    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python scripts/bench_gating.py --workers 1   # rerun to resume
    .venv/bin/python scripts/bench_gating.py --report-only --baseline /path/to/feedback_study
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from pbrl.agents.online_base import SAC_DEFAULTS
from pbrl.agents.pebble import PEBBLE
from pbrl.app.bench import (
    CPU_REWARD_MODEL_KWARGS,
    CPU_SAC_KWARGS,
    BadInput,
    Study,
    load_records,
    markdown_table,
    merge_overrides,
    provenance,
    run_study,
)
from pbrl.envs.registry import check_task
from pbrl.online.feedback import spread_budget
from pbrl.queries import SELECTORS

TASK = "metaworld/button-press-v3:goal=hidden"
#: the feedback study's PEBBLE selector (PEBBLE's default), whose runs are the baseline
BASELINE_SELECTOR = "disagreement"
#: chosen from the fixed-pool check (the gate behind disagreement skipped 30 % there at 0.1, 0 % at 0.02)
#: and the feedback study's seed-0 checkpoints (``scripts/investigations/gate_spread.py``)
DEFAULT_EPSILON = 0.1
__all__ = ["STUDY", "baseline_config", "build_grid", "parse_args", "main"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The study's own flags (the harness adds --seeds, --workers, --out, --set, --dry-run, --report-only)."""
    p.add_argument("--task", default=TASK)
    p.add_argument("--selectors", nargs="+", default=["gated_disagreement"],
                   help=f"selectors run here (the baseline {BASELINE_SELECTOR!r} is read from --baseline)")
    p.add_argument("--epsilon", type=float, default=DEFAULT_EPSILON, help="the gate's epsilon (gated_* selectors)")
    p.add_argument("--baseline", default="benchmarks/feedback_study",
                   help="the feedback study's folder (runs.csv or run directories) holding the ungated runs")
    p.add_argument("--budget", type=int, default=1000)
    p.add_argument("--steps", type=int, default=50_000)
    p.add_argument("--feedback-every", type=int, default=5000)
    p.add_argument("--eval-every", type=int, default=5000)
    p.add_argument("--n-eval-episodes", type=int, default=10)


def check(a: argparse.Namespace, p: argparse.ArgumentParser) -> None:
    """One clear error for bad flags."""
    try:
        check_task(a.task)
    except ValueError as e:
        p.error(str(e))
    bad = [s for s in a.selectors if s not in SELECTORS or s == BASELINE_SELECTOR]
    if bad:
        p.error(f"--selectors {bad}: choose from {sorted(set(SELECTORS) - {BASELINE_SELECTOR})} "
                f"(the {BASELINE_SELECTOR!r} baseline comes from --baseline)")
    if not 0.0 <= a.epsilon < 1.0:
        p.error(f"--epsilon must be in [0, 1), got {a.epsilon}")
    for name in ("budget", "steps", "feedback_every", "eval_every", "n_eval_episodes"):
        if getattr(a, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")


def _base(a: argparse.Namespace) -> dict:
    """``scripts/bench_feedback.py``'s ``base_config`` at its defaults (not --paper-scale), ``--set`` merged."""
    cfg = {"kind": "online", "total_timesteps": a.steps, "feedback_every": a.feedback_every, "eval_every": a.eval_every,
           "n_eval_episodes": a.n_eval_episodes, "checkpoint_every": max(a.eval_every, 10_000),
           "learner_kwargs": dict(CPU_SAC_KWARGS), "reward_model_kwargs": dict(CPU_REWARD_MODEL_KWARGS)}
    return merge_overrides(cfg, a.overrides)


def _per_session(a: argparse.Namespace, base: dict) -> int:
    """The feedback study's labels per round: the budget spread over B-Pref's rounds after pre-training."""
    kw = {**SAC_DEFAULTS, **base.get("learner_kwargs", {})}
    unsup = base.get("agent_kwargs", {}).get("unsup_steps", PEBBLE.default_unsup_steps)
    return spread_budget(a.budget, a.steps, int(kw["learning_starts"]) + int(unsup), a.feedback_every)


def _points(a: argparse.Namespace, selector: str, selector_kwargs: dict):
    from pbrl.app.sweep import SweepPoint, expand_grid

    base = _base(a)
    cfg = {**base, "feedback_per_session": _per_session(a, base), "selector": selector,
           "selector_kwargs": selector_kwargs}
    pts = expand_grid(cfg, tasks=[a.task], agents=["pebble"], teachers=["oracle"], budgets=[a.budget],
                      seeds=a.seed_list)
    if selector == BASELINE_SELECTOR:  # the feedback study's own run names
        return pts
    return [SweepPoint(p.name.replace("pebble__", f"pebble-{selector}__", 1), p.config) for p in pts]


def _selector_kwargs(a: argparse.Namespace, selector: str) -> dict:
    return {"epsilon": a.epsilon} if selector.startswith("gated_") else {}


def baseline_config(a: argparse.Namespace) -> list:
    """The ungated points (``SweepPoint``: the feedback study's names and configs), not run by this study."""
    return _points(a, BASELINE_SELECTOR, {})


def build_grid(a: argparse.Namespace):
    """The gated / randomised PEBBLE points, seed-major."""
    points = [p for s in a.selectors for p in _points(a, s, _selector_kwargs(a, s))]
    points.sort(key=lambda p: p.config["seed"])
    return points


# ---------------------------------------------------------------------------------------------- summary


def _baseline_records(a: argparse.Namespace) -> list:
    """The feedback study's ungated runs of this grid that have finished, each checked against this grid's
    baseline config (a difference is an error: the runs would not be comparable)."""
    expected = {p.name: json.loads(json.dumps(p.config)) for p in baseline_config(a)}
    recs = load_records(Path(a.baseline), list(expected)) if Path(a.baseline).exists() else []
    for r in recs:
        got = json.loads(json.dumps(r.config))
        if got != expected[r.name]:
            diff = sorted(k for k in set(got) | set(expected[r.name]) if got.get(k) != expected[r.name].get(k))
            raise ValueError(f"{a.baseline}: {r.name} has another config than this study's baseline "
                             f"({', '.join(diff)}); it cannot be reused")
    return [r for r in recs if r.status == "finished" and r.metrics is not None]


def _rounds(rec, per_session: int, budget: int) -> list[dict]:
    """Each query round's proposed, asked and skipped queries, from the evaluation rows' ``asked`` column
    (a round runs at an evaluation step, before that evaluation). The first round is uniform for every selector
    (PEBBLE's rule: the reward model is untrained), so no gate acts there (``"uniform": True``)."""
    rows, prev, out = sorted(rec.curve, key=lambda c: c["step"]), 0, []
    for c in rows:
        asked = int(c.get("asked", c["labels"]))
        proposed = min(per_session, budget - prev)
        if asked > prev or (rec.config["selector"].startswith("gated_") and c["step"] >= _first_round(rec.config)
                            and proposed > 0 and c["step"] < rec.config["total_timesteps"]):
            out.append({"step": int(c["step"]), "proposed": proposed, "asked": asked - prev,
                        "skipped_share": 1.0 - (asked - prev) / proposed, "uniform": not out})
        prev = asked
    return out


def _first_round(cfg: dict) -> int:
    kw = {**SAC_DEFAULTS, **cfg.get("learner_kwargs", {})}
    return int(kw["learning_starts"]) + int(cfg.get("agent_kwargs", {}).get("unsup_steps", PEBBLE.default_unsup_steps))


def _run_summary(rec) -> dict:
    cfg, m = rec.config, rec.metrics
    curve = sorted(rec.curve, key=lambda c: c["step"])
    rounds = _rounds(rec, cfg["feedback_per_session"], cfg["total_feedback"])
    return {"seed": cfg["seed"], "selector": cfg["selector"], "selector_kwargs": cfg["selector_kwargs"],
            "labels_asked": int(m.get("asked", m.get("labels", 0))), "labels_used": int(m["labels"]),
            "final_success": float(m["final"]["success_rate"]), "final_return": float(m["final"]["mean_return"]),
            "mean_success_last3": float(np.mean([c["success_rate"] for c in curve[-3:]])),
            "cpu_time_s": float(m.get("cpu_time_s", float("nan"))), "rounds": rounds,
            "curve": [{"step": int(c["step"]), "labels": int(c["labels"]), "success_rate": float(c["success_rate"])}
                      for c in curve]}


def summarise(ctx) -> dict:
    """Per selector: each seed's labels asked / used, skipped share per round, final success, the curve."""
    a = ctx.args
    try:
        base = _baseline_records(a)
    except ValueError as e:
        raise BadInput(f"{e}") from None
    rows: dict[str, list[dict]] = {BASELINE_SELECTOR: [_run_summary(r) for r in base]}
    for r in ctx.records:
        rows.setdefault(r.config["selector"], []).append(_run_summary(r))
    for v in rows.values():
        v.sort(key=lambda s: s["seed"])
    return {"task": a.task, "budget": a.budget, "steps": a.steps, "epsilon": a.epsilon,
            "baseline": {"from": str(a.baseline), "runs": [r.name for r in base],
                         "config_equal": True},
            "selectors": rows, **provenance()}


def markdown(result: dict, ctx) -> str:
    lines = []
    for sel, runs in result["selectors"].items():
        for s in runs:
            skipped = ", ".join("(uniform)" if r["uniform"] else f"{r['skipped_share']:.0%}" for r in s["rounds"]) or "-"
            name = f"{sel} (feedback study)" if sel == BASELINE_SELECTOR else sel
            lines.append([name, s["seed"], s["labels_asked"], s["labels_used"], f"{s['final_success']:.1f}",
                          f"{s['mean_success_last3']:.2f}", skipped])
    return markdown_table(["selector", "seed", "labels asked", "labels used", "final success",
                           "success, last 3 evals", "skipped per round"], lines)


def plot(result: dict, ctx) -> list[str]:
    """``gating.png``: final success and labels used per seed, and success against labels used."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sels = list(result["selectors"])
    colors = {s: c for s, c in zip(sels, ("tab:blue", "tab:orange", "tab:green", "tab:red"), strict=False)}
    fig, ax = plt.subplots(1, 4, figsize=(18, 4))
    width = 0.8 / max(len(sels), 1)
    seeds = sorted({r["seed"] for runs in result["selectors"].values() for r in runs})
    for i, s in enumerate(sels):
        runs = result["selectors"][s]
        x = np.array([r["seed"] for r in runs], dtype=float) + (i - (len(sels) - 1) / 2) * width
        for k, key in enumerate(("final_success", "labels_used")):
            bars = ax[k].bar(x, [r[key] for r in runs], width, color=colors[s], label=s)
            ax[k].bar_label(bars, fmt="%.1f" if key == "final_success" else "%d", fontsize=7)
        for r in runs:
            c = r["curve"]
            style = {"ls": ("-", "--", ":", "-.")[seeds.index(r["seed"]) % 4], "marker": "osd^"[seeds.index(r["seed"]) % 4],
                     "ms": 3, "color": colors[s], "alpha": 0.8, "label": f"{s} s{r['seed']}"}
            ax[2].plot([p["labels"] for p in c], [p["success_rate"] for p in c], **style)
            ax[3].plot([p["step"] for p in c], [p["labels"] for p in c], **style)
    for k in (0, 1):
        ax[k].set_xticks(seeds)
    ax[0].set(xlabel="seed", ylabel="final success rate (10 episodes)", title="final success", ylim=(0, 1.1))
    ax[1].set(xlabel="seed", ylabel="labels used", title=f"labels used (budget {result['budget']})")
    ax[2].set(xlabel="labels used", ylabel="success rate", title="success against labels used", ylim=(-0.02, 1.02))
    ax[3].set(xlabel="env steps", ylabel="labels used", title="labels used against env steps")
    for x in ax:
        x.legend(fontsize=7)
    fig.suptitle(f"PEBBLE on {result['task']}, {result['steps'] // 1000}k steps: gate epsilon {result['epsilon']} "
                 f"({result['date']}, {result['commit']})", fontsize=10)
    fig.tight_layout()
    path = Path(ctx.out) / "gating.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [str(path)]


STUDY = Study(name="bench_gating", description=__doc__, out="benchmarks/gating", result_file="gating.json", seeds=2,
              workers=1, arguments=add_arguments, check=check, grid=build_grid, set_in_grid=True,
              summarise=summarise, markdown=markdown, plot=plot)


def parse_args(argv=None) -> argparse.Namespace:
    """The study's flags, checked (the harness's and this study's)."""
    from pbrl.app.bench import parse_args as harness_args

    return harness_args(STUDY, argv)


def main(argv=None) -> dict:
    return run_study(STUDY, argv)


if __name__ == "__main__":
    main()
