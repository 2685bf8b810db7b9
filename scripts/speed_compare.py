"""Side-by-side CPU measurements (``bench_speed.py --compare`` runs this program): this tree against an older
one (before / after), CPL against a peer implementation, and whole online runs against SAC on the true reward.

Every measurement runs in a fresh process (``python scripts/speed_compare.py --child SPEC``) and reads that
process's CPU time (``time.process_time``), so the load of a shared machine inflates wall time but not the
ratio; the variants of one comparison run at the same time, two processes side by side, and repeat, so
that both see the same load. A child given ``tree`` imports pbrl (``pbrl``, ``pbrl.agents``, ``pbrl.envs``)
from that source tree instead of the installed one: ``git archive <commit> | tar -x -C DIR`` makes one.

Children (``kind``):

The children's helpers (synthetic data, one prepared agent, FLOPs per update) are :mod:`pbrl.app.speed` of this
checkout, loaded by its file path so that a child measuring an older tree still has them.

* ``offline``: updates per CPU-second of one offline agent at its defaults on ``bench_speed``'s synthetic
  Hopper-sized data (CPL: 96 pairs x 100 steps, 2 x 512, dropout 0.25), and the dense matmul peak per
  CPU-second measured in the same process;
* ``peer``: the CPL (``alg: cpl``) or BC (``alg: bc``) update of the authors' code (jhejna/cpl, a checkout
  given as ``peer``): their ``MLP`` (``research/networks/common.py``) and their ``CPL.train_step``
  (``research/algs/cpl.py``) or ``BehaviorCloning.train_step`` (``research/algs/bc.py``, the MSE loss of a
  deterministic actor) on the same shapes as pbrl's agent (CPL: 96 pairs x 100 steps; BC: 256 transitions;
  both 2 x 512, dropout 0.25, tanh output, Adam at 1e-4), loaded from their files (the framework around them
  is replaced by the few attributes ``train_step`` reads);
* ``knn``: CPU-ms of one k-NN state-entropy call (256 or 1,280 queries against 10,000 states, 39-d);
* ``online``: one whole online run (``build_online`` + ``learn``) at the feedback study's CPU sizes, with the
  CPU seconds of its parts (the k-NN entropy, the reward fits).
"""

from __future__ import annotations

import argparse
import importlib.abc
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

#: this checkout's pbrl/app/speed.py (found without importing pbrl, which a child may take from another tree)
SPEED_HELPERS = next(f for f in (Path(importlib.util.find_spec("pbrl").origin).parent / sub / "speed.py"
                                 for sub in (".", "app")) if f.exists())
#: the feedback study's CPU sizes (``pbrl.app.bench``: CPU_SAC_KWARGS, CPU_REWARD_MODEL_KWARGS)
ONLINE_LEARNER = {"policy_kwargs": {"net_arch": [128, 128]}, "batch_size": 256, "train_freq": 2, "gradient_steps": 1}
ONLINE_REWARD_MODEL = {"hidden": [128, 128, 128]}
#: its larger budget: 1,000 labels, 100 per session every 2,500 steps
ONLINE_FEEDBACK = {"total_feedback": 1000, "feedback_per_session": 100, "feedback_every": 2500}


# ---------------------------------------------------------------------------------------------- children
class _TreeFinder(importlib.abc.MetaPathFinder):
    """Imports ``pbrl``, ``pbrl.agents`` and ``pbrl.envs`` from a source tree (their subpackages follow)."""

    def __init__(self, tree: Path):
        self.roots = {"pbrl": tree / "pbrl", "pbrl.agents": tree / "agents", "pbrl.envs": tree / "envs"}

    def find_spec(self, name, path, target=None):
        root = self.roots.get(name)
        if root is None:
            return None
        return importlib.util.spec_from_file_location(name, root / "__init__.py", submodule_search_locations=[str(root)])


def _speed():
    """:mod:`pbrl.app.speed` of this checkout, loaded by its path (whichever pbrl the child measures)."""
    spec = importlib.util.spec_from_file_location("pbrl_speed_helpers", SPEED_HELPERS)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _peak_per_cpu_s(seconds: float = 2.0, n: int = 1024) -> float:
    """Best GFLOP per CPU-second of ``n x n`` float32 matmuls (one thread) over about ``seconds`` of CPU."""
    import torch

    a, b, out = torch.randn(n, n), torch.randn(n, n), torch.empty(n, n)
    torch.mm(a, b, out=out)
    best, t_end = 0.0, time.process_time() + seconds
    while time.process_time() < t_end:
        t0 = time.process_time()
        for _ in range(3):
            torch.mm(a, b, out=out)
        best = max(best, 2 * n**3 * 3 / max(time.process_time() - t0, 1e-9) / 1e9)
    return best


def _rate(run_one, seconds: float, warmup: int = 2) -> float:
    """Calls of ``run_one`` per CPU-second over about ``seconds`` of CPU, after ``warmup`` calls."""
    for _ in range(warmup):
        run_one()
    n, t0 = 0, time.process_time()
    while n < 3 or time.process_time() - t0 < seconds:
        run_one()
        n += 1
    return n / (time.process_time() - t0)


def child_offline(spec: dict) -> dict:
    import torch

    sp = _speed()
    torch.set_num_threads(spec["threads"])
    ds, prefs = sp.synthetic_task(spec.get("transitions", 20_000), spec.get("pairs", 500), 100)
    agent = sp.single_agent(spec["agent"], ds, prefs)
    flops = sp.flops_per_update(agent)
    ups = _rate(agent._update, spec["seconds"])
    losses = [agent._update() for _ in range(3)]
    return {"updates_per_cpu_s": ups, "gflop_per_update": flops / 1e9, "peak_gflops_per_cpu_s": _peak_per_cpu_s(),
            "losses": losses}


def child_offline_fit(spec: dict) -> dict:
    """The losses of short trainings of an offline agent over seeds (smaller sizes): what the dropout
    masks' new random stream changes, as a distribution over seeds."""
    import torch

    from pbrl.agents.registry import get_agent

    torch.set_num_threads(1)
    ds, prefs = _speed().synthetic_task(5000, 200, 100)
    out = []
    for seed in range(spec["seeds"]):
        klass = get_agent(spec["agent"])
        agent = klass.from_dataset(ds, seed=seed, **spec.get("over", {}))
        info = agent.fit(ds, prefs if klass.requires_preferences else None, steps=spec["steps"], progress=False)
        out.append(info["losses"])
    return {"losses": out}


def _peer_alg(peer: Path, name: str, cls: str) -> type:
    """The peer's algorithm class ``cls`` from ``research/algs/<name>.py``, loaded from its file with its
    framework imports (and old ``gym``, for ``spaces.Box`` only) replaced by stand-ins."""
    import gymnasium

    stub = {"research": types.ModuleType("research"), "research.utils": types.ModuleType("research.utils"),
            "research.utils.utils": types.ModuleType("research.utils.utils"),
            "research.algs": types.ModuleType("research.algs"),
            "research.algs.off_policy_algorithm": types.ModuleType("research.algs.off_policy_algorithm")}
    stub["research.algs"].__path__ = [str(peer / "research" / "algs")]
    stub["research.utils"].utils = stub["research.utils.utils"]
    stub["research.algs.off_policy_algorithm"].OffPolicyAlgorithm = object
    sys.modules.update(stub)
    sys.modules.setdefault("gym", gymnasium)
    spec = importlib.util.spec_from_file_location(f"research.algs.{name}", peer / "research" / "algs" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return getattr(mod, cls)


def child_peer(spec: dict) -> dict:
    import gymnasium
    import numpy as np
    import torch

    torch.set_num_threads(spec["threads"])
    if spec.get("keep_freed_memory"):
        from pbrl.memory import keep_freed_memory

        keep_freed_memory()
    peer = Path(spec["peer"])
    spec_mlp = importlib.util.spec_from_file_location("peer_common", peer / "research" / "networks" / "common.py")
    common = importlib.util.module_from_spec(spec_mlp)
    spec_mlp.loader.exec_module(common)
    torch.manual_seed(0)
    obs_dim, act_dim, B, H = 11, 3, 96, 100  # bench_speed's Hopper sizes, CPL's 96 pairs x 100 steps
    actor = common.MLP(obs_dim, act_dim, hidden_layers=[512, 512], dropout=0.25, output_act=torch.nn.Tanh)
    rng = np.random.default_rng(0)
    if spec.get("alg", "cpl") == "bc":
        klass = _peer_alg(peer, "bc", "BehaviorCloning")
        alg = klass.__new__(klass)
        alg.bc_data, alg.bc_all_steps, alg.grad_norm_clip = "all", 0, None
        alg.processor = types.SimpleNamespace(action_space=gymnasium.spaces.Box(-1.0, 1.0, (act_dim,)))

        def batch() -> dict:  # pbrl's BC batch: 256 transitions
            return {"obs": torch.as_tensor(rng.normal(size=(256, obs_dim)), dtype=torch.float32),
                    "action": torch.as_tensor(np.tanh(rng.normal(size=(256, act_dim))), dtype=torch.float32)}
    else:
        klass = _peer_alg(peer, "cpl", "CPL")
        alg = klass.__new__(klass)
        alg.alpha, alg.contrastive_bias, alg.bc_data, alg.bc_steps, alg.bc_coeff = 0.1, 0.5, "all", 0, 0.0

        def batch() -> dict:
            obs = torch.as_tensor(rng.normal(size=(2, B, H, obs_dim)), dtype=torch.float32)
            act = torch.as_tensor(np.tanh(rng.normal(size=(2, B, H, act_dim))), dtype=torch.float32)
            return {"obs_1": obs[0], "obs_2": obs[1], "action_1": act[0], "action_2": act[1],
                    "label": torch.as_tensor(rng.integers(0, 2, B), dtype=torch.float32)}
    alg.network = types.SimpleNamespace(encoder=torch.nn.Identity(), actor=actor,
                                        parameters=lambda: actor.parameters())
    alg.optim = {"actor": torch.optim.Adam(actor.parameters(), lr=1e-4)}

    batches = [batch() for _ in range(4)]
    step = {"i": 0}

    def one() -> None:
        alg.train_step(batches[step["i"] % 4], step["i"], 10**6)
        step["i"] += 1

    return {"updates_per_cpu_s": _rate(one, spec["seconds"]), "peak_gflops_per_cpu_s": _peak_per_cpu_s()}


def child_knn(spec: dict) -> dict:
    import numpy as np
    import torch

    from pbrl.memory import keep_freed_memory  # a stand-in in trees from before it (child_main)

    torch.set_num_threads(1)
    if spec.get("keep_freed_memory"):
        keep_freed_memory()
    from pbrl.online.entropy import knn_state_entropy

    rng = np.random.default_rng(0)
    ref = rng.normal(size=(10_000, 39)).astype(np.float32)
    out = {}
    for q in (256, 1280):
        x = rng.normal(size=(q, 39)).astype(np.float32)
        out[f"ms_{q}"] = 1e3 / _rate(lambda x=x: knn_state_entropy(x, ref, k=5, exclude_self=True), spec["seconds"])
    return out


def child_reward_fit(spec: dict) -> dict:
    """CPU seconds of one reward fit at the feedback study's sizes (3 members of 3 x 128, Meta-World inputs,
    segments of 50 steps, batch 128): PEBBLE's Bradley-Terry fit or SURF's (crops and the unlabelled term,
    ``mu = 4``) over ``labels`` pairs and a pool of 10 unlabelled pairs per label, ``epochs`` epochs."""
    import numpy as np
    import torch

    from pbrl.preferences import PreferenceDataset
    from pbrl.reward_models import BradleyTerryLoss, RewardEnsemble, TemporalCrop
    from pbrl.segments import Segments

    torch.set_num_threads(1)
    if spec.get("keep_freed_memory"):
        from pbrl.memory import keep_freed_memory

        keep_freed_memory()
    rng = np.random.default_rng(0)
    n, H, obs_dim, act_dim = spec["labels"], 50, 39, 4

    def segs(k: int) -> Segments:
        return Segments(rng.normal(size=(k, H, obs_dim)).astype(np.float32),
                        rng.uniform(-1, 1, size=(k, H, act_dim)).astype(np.float32), np.zeros((k, H), np.float32))

    ds = PreferenceDataset(segs(n), segs(n), rng.integers(0, 2, n).astype(np.float32))
    model = RewardEnsemble(obs_dim, act_dim, hidden=(128, 128, 128), seed=0)
    if spec["agent"] == "surf":
        from pbrl.agents.surf import SemiSupervisedLoss

        pool = types.SimpleNamespace(pairs=(segs(10 * n), segs(10 * n)))
        losses = [BradleyTerryLoss(TemporalCrop(5)), SemiSupervisedLoss(pool, 0.99, 1.0, 4, TemporalCrop(5))]
    else:
        losses = [BradleyTerryLoss()]
    t0 = time.process_time()
    info = model.fit(ds, epochs=spec["epochs"], batch_size=128, early_stop_accuracy=None, losses=losses)
    return {"cpu_s": time.process_time() - t0, "loss": float(info["loss"])}


def child_online(spec: dict) -> dict:
    c0 = time.process_time()
    import torch

    from pbrl.app.config import config_from_dict
    from pbrl.app.train_online import build_online
    from pbrl.online.entropy import StateEntropyReward

    torch.set_num_threads(1)
    knn = {"s": 0.0}
    raw = StateEntropyReward.raw

    def timed_raw(self, x, ref):
        t = time.process_time()
        try:
            return raw(self, x, ref)
        finally:
            knn["s"] += time.process_time() - t

    StateEntropyReward.raw = timed_raw
    sac = spec["agent"] == "sac"
    cfg = config_from_dict({
        "kind": "online", "task": spec["task"], "agent": spec["agent"], "seed": spec.get("seed", 0),
        "total_timesteps": spec["steps"], "torch_threads": 1, "learner_kwargs": ONLINE_LEARNER,
        "reward_model_kwargs": ONLINE_REWARD_MODEL,
        **({"total_feedback": 0} if sac else ONLINE_FEEDBACK)})
    agent = build_online(cfg)
    c_build = time.process_time() - c0
    t0 = time.process_time()
    agent.learn(spec["steps"])
    cpu = time.process_time() - t0
    timing = dict(getattr(agent.callback, "timing", {}) or {})
    return {"cpu_s": cpu, "build_cpu_s": c_build, "knn_entropy_s": knn["s"],
            "fit_s": float(timing.get("fit", 0.0)), "query_s": float(timing.get("query", 0.0)),
            "relabel_s": float(timing.get("relabel", 0.0)), "labels": int(len(agent.preferences))}


def child_main(argv: list[str]) -> None:
    spec = json.loads(argv[argv.index("--child") + 1])
    out = Path(argv[argv.index("--child-out") + 1])
    if spec.get("tree"):
        sys.meta_path.insert(0, _TreeFinder(Path(spec["tree"]).resolve()))
    if spec.get("tree"):  # a tree from before pbrl.memory: measure it without
        spec_memory = importlib.util.find_spec("pbrl.memory")
        if spec_memory is None:
            sys.modules["pbrl.memory"] = types.SimpleNamespace(keep_freed_memory=lambda: False)
    fn = {"offline": child_offline, "peer": child_peer, "knn": child_knn, "online": child_online,
          "reward_fit": child_reward_fit, "offline_fit": child_offline_fit}[spec["kind"]]
    out.write_text(json.dumps(fn(spec)))


# ---------------------------------------------------------------------------------------------- parent
def run_together(specs: list[dict]) -> list[dict]:
    """Run the children ``specs`` at the same time (one process each); their results, in order."""
    with tempfile.TemporaryDirectory() as d:
        procs, outs = [], []
        for i, spec in enumerate(specs):
            out = Path(d) / f"r{i}.json"
            outs.append(out)
            procs.append(subprocess.Popen([sys.executable, str(HERE / "speed_compare.py"), "--child", json.dumps(spec),
                                           "--child-out", str(out)]))
        codes = [p.wait() for p in procs]
        if any(codes):
            raise RuntimeError(f"a measurement failed (exit codes {codes}): {[s['kind'] for s in specs]}")
        return [json.loads(o.read_text()) for o in outs]


def compare(name: str, variants: dict[str, dict], repeats: int, key: str, log) -> dict[str, Any]:
    """Run the children ``variants`` (label -> spec) side by side, ``repeats`` times (rotating which starts
    first); the per-repeat values of ``key`` and their medians."""
    import numpy as np

    labels = list(variants)
    runs: dict[str, list[dict]] = {k: [] for k in labels}
    for r in range(repeats):
        order = labels[r % len(labels):] + labels[: r % len(labels)]
        for label, res in zip(order, run_together([variants[k] for k in order])):
            runs[label].append(res)
    med = {k: float(np.median([x[key] for x in v])) for k, v in runs.items()}
    log(f"{name}: {key} " + ", ".join(f"{k} {med[k]:.4g} {[round(x[key], 4) for x in runs[k]]}" for k in labels))
    return {"runs": runs, "median": med, "key": key}


def compare_main(args: Any, out: Path) -> dict[str, Any]:
    """``bench_speed.py --compare``: every comparison of the module docstring; writes
    ``bench_speed_compare.json`` and ``.png`` to ``out`` and returns the results."""
    base = {"tree": str(Path(args.baseline).resolve())} if args.baseline else None
    log = lambda m: print(f"[compare] {m}", flush=True)  # noqa: E731
    secs, R = args.seconds if args.seconds is not None else 8.0, args.repeats
    res: dict[str, Any] = {"repeats": R, "threads": args.threads, "seconds": secs, "baseline": args.baseline,
                           "peer": args.peer, "online_steps": args.online_steps}
    for agent in args.compare_agents:
        spec = {"kind": "offline", "agent": agent, "threads": args.threads, "seconds": secs}
        variants = {"after": spec} | ({"before": {**spec, **base}} if base else {})
        if args.peer and agent in ("cpl", "bc"):
            variants["peer"] = {"kind": "peer", "alg": agent, "peer": str(Path(args.peer).resolve()),
                                "threads": args.threads, "seconds": secs}
        res[agent] = compare(agent, variants, R, "updates_per_cpu_s", log)
    if base:
        res["knn"] = compare("knn", {"before": {"kind": "knn", "seconds": 2.0, **base},
                                     "after": {"kind": "knn", "seconds": 2.0, "keep_freed_memory": True}},
                             R, "ms_256", log)
        for agent in ("surf", "pebble"):
            spec = {"kind": "reward_fit", "agent": agent, "labels": args.fit_labels, "epochs": args.fit_epochs}
            res[f"{agent}_fit"] = compare(f"{agent} fit", {"before": {**spec, **base},
                                                             "after": {**spec, "keep_freed_memory": True}},
                                          R, "cpu_s", log)
    if args.online_steps:
        for agent in args.online_agents:
            spec = {"kind": "online", "agent": agent, "task": args.online_task, "steps": args.online_steps}
            variants = {"after": spec} | ({"before": {**spec, **base}} if base else {})
            res[f"online_{agent}"] = compare(f"online {agent}", variants, R, "cpu_s", log)
    (out / "bench_speed_compare.json").write_text(json.dumps(res, indent=2))
    plot_compare(res, out / "bench_speed_compare.png")
    print_compare(res)
    return res


def _ratio(res: dict, num: str, den: str) -> float:
    return res["median"][num] / res["median"][den]


def print_compare(res: dict[str, Any]) -> None:
    """The Markdown table of the before / after (and peer) ratios."""
    print("\n| measurement | before | after | after / before | peer | after / peer |\n|---|---:|---:|---:|---:|---:|")
    for name, r in res.items():
        if not isinstance(r, dict) or "median" not in r:
            continue
        m, key = r["median"], r["key"]
        faster = (lambda a, b: a / b) if key == "updates_per_cpu_s" else (lambda a, b: b / a)
        before = f"{m['before']:.4g}" if "before" in m else "-"
        gain = f"{faster(m['after'], m['before']):.2f}x" if "before" in m else "-"
        peer = f"{m['peer']:.4g}" if "peer" in m else "-"
        vs_peer = f"{faster(m['after'], m['peer']):.2f}x" if "peer" in m else "-"
        print(f"| {name} ({key}) | {before} | {m['after']:.4g} | {gain} | {peer} | {vs_peer} |")


def plot_compare(res: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [(n, r) for n, r in res.items() if isinstance(r, dict) and "median" in r and "before" in r["median"]]
    if not rows:
        return
    gains = [(r["median"]["after"] / r["median"]["before"]) if r["key"] == "updates_per_cpu_s"
             else (r["median"]["before"] / r["median"]["after"]) for _, r in rows]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.bar([n for n, _ in rows], gains, color="tab:green")
    ax.axhline(1.0, color="k", lw=1)
    ax.set_ylabel("speed-up, after / before (CPU time)")
    ax.set_title("issue 34: the same work, measured side by side")
    ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="benchmarks/bench_speed", help="output folder (JSON + PNG)")
    ap.add_argument("--seconds", type=float, default=None, help="timing budget per measurement (default 8)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads for the agents (default 1)")
    ap.add_argument("--baseline", default=None, help="source tree of the old commit, for before / after "
                    "(git archive <commit> | tar -x -C DIR)")
    ap.add_argument("--peer", default=None, help="checkout of jhejna/cpl: CPL's update against the authors' code")
    ap.add_argument("--repeats", type=int, default=2, help="side-by-side repeats of each comparison (default 2)")
    ap.add_argument("--compare-agents", nargs="*", default=["cpl", "bc"], help="offline agents (default cpl bc)")
    ap.add_argument("--fit-labels", type=int, default=500, help="labelled pairs of the reward-fit comparison")
    ap.add_argument("--fit-epochs", type=int, default=2, help="epochs of the reward-fit comparison")
    ap.add_argument("--online-steps", type=int, default=0, help="whole online runs of this many env steps (0: none)")
    ap.add_argument("--online-agents", nargs="*", default=["sac", "pebble", "surf", "rime"])
    ap.add_argument("--online-task", default="metaworld/button-press-v3")
    args = ap.parse_args(argv)
    for name in ("baseline", "peer"):
        if getattr(args, name) and not Path(getattr(args, name)).is_dir():
            ap.error(f"--{name} {getattr(args, name)!r} is not a directory")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    return compare_main(args, out)


if __name__ == "__main__":
    if "--child" in sys.argv:
        child_main(sys.argv)
    else:
        main()
