"""Offline agents' speed against this machine's limit, and K seeds in one process against one.

In one run, side by side on the same synthetic data (Hopper's sizes: obs 11, act 3, segments of 100 steps):

(a) the dense float32 matmul peak (GFLOP/s) with one and with two threads (square matmuls, best of a few
    repeats);
(b) for every offline agent at its default shapes: FLOPs per update (counted by
    ``torch.utils.flop_counter.FlopCounterMode`` over one real update, forward and backward), updates/s,
    and the share of the peak those FLOPs allow (``flops * updates/s / peak``);
(c) the wall time per update of 5 seeds in one process (``from_dataset(ds, seeds=...)``, vmapped) against
    one seed (target: <= 2x);
(d) ``torch.compile`` of the networks' forward, on IPL (updates/s with and without; losses compared), and
    fused twin critics (pbrl's ``TwinQ``, one 2-member ensemble) against two separate MLPs.

The "floor" column is the best ratio K seeds could reach if the batched run hit 100 % of the peak:
``K x FLOPs/update x (1-seed updates/s) / peak``; an agent whose single seed already runs near the peak cannot
run K seeds in much less than K times its time on this CPU, however they are batched.

(e) The fixed cost of one update: the same agent with every size shrunk (batch 2, 8 x 8 networks, one
    preference pair or segment per update), so that what is left is Python, dispatch and allocation. Batching
    K seeds can at best pay this once instead of K times while the per-seed compute stays: the "best if only
    overhead is saved" column is ``K - (K - 1) x fixed / full``.

``--compare`` runs side-by-side CPU-time comparisons instead (``scripts/speed_compare.py``: each variant in
its own fresh process, the variants of one comparison at the same time, ``--repeats`` times; process CPU
time, so a loaded machine inflates wall time but not the ratios): this tree against ``--baseline`` (an older
source tree) for CPL's and BC's updates, the k-NN state entropy, PEBBLE's and SURF's reward fits and, with
``--online-steps``, whole online runs of SAC-true, PEBBLE, SURF and RIME; and CPL's update against
``--peer`` (a checkout of the CPL authors' jhejna/cpl) at the same shapes. It writes
``bench_speed_compare.json`` and ``.png``.

Prints a table and writes ``bench_speed.json`` and ``bench_speed.png`` to ``--out``. The default run takes
about 10 CPU-minutes; ``--quick`` is a smoke test (seconds, small data, tiny time budgets).

    python scripts/bench_speed.py                      # benchmarks/bench_speed/
    python scripts/bench_speed.py --quick --out /tmp/x
    git archive <old commit> | tar -x -C /tmp/base        # the "before" tree
    python scripts/bench_speed.py --compare --baseline /tmp/base --peer <jhejna/cpl checkout>
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pbrl.agents.registry import agent_names, get_agent
from pbrl.reward_models import RewardEnsemble
from pbrl.speed import (
    PREP,
    flops_per_update,
    matmul_peak,
    prefs_for,
    single_agent,
    synthetic_task,
    timed_updates,
)

#: the comparisons' program (``--compare``), run as a child process
SPEED_COMPARE = Path(__file__).resolve().parent / "speed_compare.py"

#: every size shrunk to its minimum, for (e): what an update costs beyond its arithmetic
TINY_COMMON = dict(batch_size=2, hidden=(8, 8))
TINY = {
    "cpl": dict(pair_batch_size=1), "cplbc": dict(pair_batch_size=1),
    "ipl": dict(pref_batch_size=1), "iplawac": dict(pref_batch_size=1),
    "oppo": dict(pair_batch_size=1, seg_batch_size=1),
}


def fixed_cost_rate(name: str, ds: Any, prefs: Any, seconds: float) -> float:
    """Updates/s of the agent with every size shrunk (:data:`TINY`): its per-update fixed cost."""
    agent = single_agent(name, ds, prefs, **TINY_COMMON, **TINY.get(name, {}))
    return timed_updates(agent._update, seconds)


def multiseed_rate(name: str, ds: Any, prefs: Any, k: int, seconds: float) -> float:
    """Updates/s (each update: all ``k`` seeds) of ``MultiSeed.fit`` at the agent's defaults."""
    klass = get_agent(name)
    ms = klass.from_dataset(ds, seeds=tuple(range(k)), **PREP.get(name, {}))
    ms.fit(ds, prefs_for(klass, prefs), steps=2, progress=False)  # preparation (reward fits) + warm-up
    steps = 2
    while True:
        info = ms.fit(ds, prefs_for(klass, prefs), steps=steps, progress=False)
        if info["wall_time_s"] >= seconds or steps >= 10_000:
            return steps / info["wall_time_s"]
        steps = max(steps * 2, int(steps * seconds / max(info["wall_time_s"], 1e-3)) + 1)


def reward_ensemble_trial(seconds: float, obs_dim: int = 39, act_dim: int = 4, pairs: int = 128, H: int = 50,
                          quick: bool = False) -> dict[str, Any]:
    """PEBBLE's reward-model training step at its defaults (3 members of 3 x 256, tanh; one minibatch of
    128 pairs of 50 steps; Meta-World sizes): FLOPs per step (FlopCounterMode over a real one-batch fit),
    steps/s and the share of the matmul peak."""
    from torch.utils.flop_counter import FlopCounterMode

    from pbrl.agents.online_base import REWARD_MODEL_DEFAULTS
    from pbrl.preferences import PreferenceDataset
    from pbrl.segments import Segments

    rng = np.random.default_rng(0)
    hidden = (32, 32) if quick else REWARD_MODEL_DEFAULTS["hidden"]
    model = RewardEnsemble(obs_dim, act_dim, **{**REWARD_MODEL_DEFAULTS, "hidden": hidden, "seed": 0})

    def seg():
        return Segments(rng.normal(size=(pairs, H, obs_dim)).astype(np.float32),
                        rng.uniform(-1, 1, size=(pairs, H, act_dim)).astype(np.float32),
                        np.zeros((pairs, H), np.float32))

    ds = PreferenceDataset(seg(), seg(), rng.integers(0, 2, pairs).astype(np.float32))
    fit = dict(epochs=1, batch_size=pairs, early_stop_accuracy=None)
    with FlopCounterMode(display=False) as counter:
        model.fit(ds, **fit)
    flops = float(counter.get_total_flops())
    rate = timed_updates(lambda: model.fit(ds, **fit), seconds)
    return {"members": model.n_members, "hidden": list(hidden), "pairs_per_step": pairs, "segment_length": H,
            "obs_dim": obs_dim, "act_dim": act_dim, "gflop_per_step": flops / 1e9, "steps_per_s": rate}


def compile_trial(ds: Any, prefs: Any, seconds: float) -> dict[str, Any]:
    """IPL with ``torch.compile`` on each network's forward vs eager: updates/s and the first updates' losses."""
    out: dict[str, Any] = {"agent": "ipl"}
    losses = {}
    for mode in ("eager", "compiled"):
        agent = single_agent("ipl", ds, prefs, seed=0)
        if mode == "compiled":
            for net in agent.nets.values():
                net.forward = torch.compile(net.forward, dynamic=False)
        t0 = time.perf_counter()
        agent._update()  # the compiled run compiles here; both runs are then at the same update
        if mode == "compiled":
            out["compile_s"] = time.perf_counter() - t0
        rec = [agent._update() for _ in range(3)]
        losses[mode] = rec
        out[f"{mode}_updates_per_s"] = timed_updates(agent._update, seconds, warmup=1)
    diffs = [abs(a[k] - b[k]) / max(abs(a[k]), 1e-8) for a, b in zip(losses["eager"], losses["compiled"]) for k in a
             if np.isfinite(a[k])]
    out["max_rel_loss_diff"] = float(max(diffs)) if diffs else None
    out["speedup"] = out["compiled_updates_per_s"] / out["eager_updates_per_s"]
    return out


def twin_critic_trial(batch: int, seconds: float, hidden: tuple[int, ...] = (256, 256)) -> dict[str, Any]:
    """Twin critics at IQL's sizes (obs 11 + act 3 -> 1), forward + backward: two separate MLPs vs pbrl's
    :class:`TwinQ` (one 2-member ensemble, a ``baddbmm`` per layer). Returns both rates (passes/s)."""
    from pbrl.agents.networks import TwinQ, mlp

    x = torch.randn(batch, 14)
    twin = TwinQ(11, 3, hidden)
    pair = [mlp(14, 1, hidden) for _ in range(2)]

    def fused() -> None:
        twin(x[:, :11], x[:, 11:]).pow(2).mean().backward()

    def separate() -> None:
        sum(q(x).pow(2).mean() for q in pair).backward()

    return {"batch": batch, "fused_per_s": timed_updates(fused, seconds), "separate_per_s": timed_updates(separate, seconds)}


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["agents"]
    names = [r["agent"] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    axes[0].bar(names, [100 * r["share_of_peak"] for r in rows], color="tab:blue")
    axes[0].axhline(75, color="k", ls="--", lw=1, label="goal 75 %")
    axes[0].set_ylabel("% of 1-thread matmul peak")
    axes[0].set_title(f"updates/s x FLOPs/update vs peak ({results['peak_gflops']['1']:.0f} GFLOP/s)")
    axes[0].legend()
    k = results["n_seeds"]
    axes[1].bar(names, [r["k_vs_1_time_ratio"] for r in rows], color="tab:orange")
    axes[1].axhline(2.0, color="k", ls="--", lw=1, label="target 2x")
    axes[1].axhline(k, color="tab:red", ls=":", lw=1, label=f"{k} runs in a row")
    axes[1].set_ylabel(f"wall time per update, {k} seeds / 1 seed")
    axes[1].set_title(f"{k} seeds in one process (vmapped)")
    axes[1].legend()
    for ax in axes:
        ax.tick_params(axis="x", rotation=45)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="benchmarks/bench_speed", help="output folder (JSON + PNG)")
    ap.add_argument("--quick", action="store_true", help="smoke test: small data, tiny time budgets")
    ap.add_argument("--agents", nargs="*", default=None, help="offline agents (default: all; --quick: iql, bc)")
    ap.add_argument("--seeds", type=int, default=None, help="seeds in one process for (c) (default 5; --quick: 2)")
    ap.add_argument("--seconds", type=float, default=None, help="timing budget per measurement (default 6, quick 0.2)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads for the agents (default 1)")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile trial (always skipped by --quick)")
    ap.add_argument("--compare", action="store_true",
                    help="run scripts/speed_compare.py's side-by-side comparisons instead of (a)-(e) (every other "
                         "flag goes to it: speed_compare.py --help lists them)")
    args, rest = ap.parse_known_args(argv)
    if args.compare:
        import subprocess
        import sys

        argv = list(sys.argv[1:] if argv is None else argv)
        argv.remove("--compare")
        code = subprocess.run([sys.executable, str(SPEED_COMPARE), *argv], check=False).returncode
        if code:
            raise SystemExit(code)
        return json.loads((Path(args.out) / "bench_speed_compare.json").read_text())
    if rest:
        ap.error(f"unrecognized arguments: {' '.join(rest)}")
    quick = args.quick
    secs = args.seconds if args.seconds is not None else (0.2 if quick else 6.0)
    agents = args.agents or (["iql", "bc"] if quick else agent_names("offline"))
    args.seeds = args.seeds or (2 if quick else 5)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    peak = {str(t): matmul_peak(t, 256 if quick else 1024, 0.2 if quick else 3.0) for t in (1, 2)}
    torch.set_num_threads(args.threads)
    print(f"matmul peak: {peak['1']:.1f} GFLOP/s (1 thread), {peak['2']:.1f} GFLOP/s (2 threads)")
    ds, prefs = synthetic_task(3000 if quick else 20_000, 40 if quick else 500, 100)

    rows = []
    for name in agents:
        agent = single_agent(name, ds, prefs)
        flops = flops_per_update(agent)
        ups = timed_updates(agent._update, secs)
        k_ups = multiseed_rate(name, ds, prefs, args.seeds, secs)
        tiny_ups = fixed_cost_rate(name, ds, prefs, secs)
        fixed = min(ups / tiny_ups, 1.0)  # share of one update that does not scale with its sizes
        row = {
            "agent": name,
            "gflop_per_update": flops / 1e9,
            "updates_per_s": ups,
            "limit_updates_per_s": peak[str(args.threads)] * 1e9 / flops if flops else None,
            "share_of_peak": flops * ups / (peak[str(args.threads)] * 1e9),
            f"updates_per_s_{args.seeds}_seeds": k_ups,
            "k_vs_1_time_ratio": ups / k_ups,
            "k_share_of_peak": args.seeds * flops * k_ups / (peak[str(args.threads)] * 1e9),
            "k_floor_ratio": args.seeds * flops * ups / (peak[str(args.threads)] * 1e9),
            "fixed_ms_per_update": 1e3 / tiny_ups,
            "fixed_share": fixed,
            "k_best_if_overhead_saved": args.seeds - (args.seeds - 1) * fixed,
        }
        rows.append(row)
        print(f"{name:8s} {row['gflop_per_update']:7.3f} GFLOP/upd  {ups:7.1f} upd/s  (limit {row['limit_updates_per_s']:7.1f}) "
              f"{100 * row['share_of_peak']:5.1f} % of peak  | {args.seeds} seeds: {k_ups:6.1f} upd/s, "
              f"{row['k_vs_1_time_ratio']:.2f}x the time of 1 (fixed cost {row['fixed_ms_per_update']:.2f} ms = "
              f"{100 * fixed:.0f} %: best {row['k_best_if_overhead_saved']:.2f}x)", flush=True)

    results: dict[str, Any] = {
        "machine": {"platform": platform.platform(), "torch": torch.__version__, "threads": args.threads},
        "quick": quick,
        "peak_gflops": peak,
        "n_seeds": args.seeds,
        "data": {"transitions": len(ds), "pairs": len(prefs), "segment_length": 100, "obs_dim": 11, "act_dim": 3},
        "agents": rows,
    }
    results["twin_critics"] = [twin_critic_trial(b, secs) for b in ((256,) if quick else (256, 1280))]
    for t in results["twin_critics"]:
        print(f"twin critics, batch {t['batch']}: fused (TwinQ) {t['fused_per_s']:.0f}/s vs two MLPs "
              f"{t['separate_per_s']:.0f}/s ({t['fused_per_s'] / t['separate_per_s']:.2f}x)")
    rm = reward_ensemble_trial(secs, quick=quick)
    rm["share_of_peak"] = rm["gflop_per_step"] * rm["steps_per_s"] / peak[str(args.threads)]
    results["reward_ensemble"] = rm
    print(f"reward ensemble (PEBBLE: {rm['members']} x {rm['hidden']}, {rm['pairs_per_step']} pairs x "
          f"{rm['segment_length']} steps): {rm['gflop_per_step']:.2f} GFLOP/step, {rm['steps_per_s']:.2f} steps/s, "
          f"{100 * rm['share_of_peak']:.0f} % of peak")
    if not (args.no_compile or quick):
        try:
            results["torch_compile"] = compile_trial(ds, prefs, secs)
            c = results["torch_compile"]
            print(f"torch.compile (IPL, every net's forward): {c['eager_updates_per_s']:.1f} -> "
                  f"{c['compiled_updates_per_s']:.1f} upd/s ({c['speedup']:.2f}x), compile {c['compile_s']:.0f} s, "
                  f"max rel. loss diff {c['max_rel_loss_diff']}")
        except Exception as e:  # noqa: BLE001 - report why compile is unavailable here
            results["torch_compile"] = {"error": f"{type(e).__name__}: {e}"[:500]}
            print(f"torch.compile failed: {results['torch_compile']['error']}")
    k = args.seeds
    print(f"\n| agent | GFLOP/update | updates/s | limit/s | share of peak | {k} seeds: time / 1 seed | "
          f"{k} seeds: share of peak | floor at 100 % of peak | fixed cost / update | best if only overhead is saved |"
          "\n|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['agent']} | {r['gflop_per_update']:.3f} | {r['updates_per_s']:.1f} | {r['limit_updates_per_s']:.1f} | "
              f"{100 * r['share_of_peak']:.0f} % | {r['k_vs_1_time_ratio']:.2f}x | {100 * r['k_share_of_peak']:.0f} % | "
              f"{r['k_floor_ratio']:.2f}x | {r['fixed_ms_per_update']:.2f} ms ({100 * r['fixed_share']:.0f} %) | "
              f"{r['k_best_if_overhead_saved']:.2f}x |")
    (out / "bench_speed.json").write_text(json.dumps(results, indent=2))
    plot(results, out / "bench_speed.png")
    print(f"wrote {out / 'bench_speed.json'} and {out / 'bench_speed.png'}")
    return results


if __name__ == "__main__":
    main()
