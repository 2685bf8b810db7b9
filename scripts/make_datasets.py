"""Build, with one command, the offline datasets the offline benchmark uses, their preference labels and a
dataset card per file.

For each MuJoCo task (default ``mujoco/Hopper-v5``, ``mujoco/Walker2d-v5``), by D4RL's definitions (Fu et al.,
2020, Sec. 5 and App. C):

1. train SAC on the true reward until an evaluation reaches D4RL's expert return (hopper 3234.3, walker2d
   4592.3; ``--target-return``) or ``--sac-steps`` run out: :func:`pbrl.envs.expert.train_sac_resumable`,
   in chunks of ``--chunk-steps`` that resume to the same bytes after a stop (``--resume``), with a progress
   line per evaluation (every ``--eval-every`` steps) and ``sac/log.csv``;
2. ``expert``: ``--steps`` steps of the best-evaluated checkpoint's stochastic policy (D4RL's "fully trained"
   SAC; its data are sampled actions), ``medium``: ``--steps`` steps of the checkpoint before it whose return is
   closest to a third of the expert's, ``medium-replay``: every transition the run collected up to the medium
   checkpoint (its replay buffer), ``medium-expert``: medium and expert joined (half each).
   D4RL's sizes: medium and expert 1M each, medium-expert 2M, hopper-medium-replay about 400k (its SAC reached
   the medium level there); the defaults keep them; a smaller ``--steps`` is a cut the cards state.

Each dataset's metadata names its expert SAC (``expert_policy``), whose critic gives CPL's regret labels
(:mod:`pbrl.envs.regret`). Every normalised score uses D4RL's reference returns (:mod:`pbrl.envs.scores`).

For each Meta-World task (default ``button-press``, ``drawer-open``, ``door-open``): the task's scripted
policy with Gaussian action noise (``--noise`` levels cycled per episode, optional ``--early-stop``),
``--mw-steps`` steps, with reference returns of the random and the noise-free scripted policy.

Every dataset gets oracle-labelled preference datasets of each size in ``--pairs`` (segments of
``--segment-length``). Files (under ``--out-dir``, default ``data/datasets``; what
``scripts/bench_offline.py`` reads):

    <task-slug>/<kind>.hdf5                        D4RL layout (pbrl.envs.datasets.load_d4rl)
    <task-slug>/<kind>.card.json, <kind>.card.md   the dataset card: size, returns, policies, how made, sha256,
                                                   the command that rebuilds it bit for bit
    <task-slug>/<kind>.prefs_oracle_<N>.h5         PreferenceDataset
    <task-slug>/<kind>.returns.png                 histogram of episode returns
    <task-slug>/sac/                               the resumable SAC run (state.json, log.csv, ckpt/, ...)
    make_datasets.json, make_datasets.png          timings and return statistics of everything

A finished file is kept by ``--resume`` (and the SAC run continues from its last chunk); without
``--resume`` an output folder that already holds a SAC run stops the script before any work.

    python scripts/make_datasets.py --metaworld --resume             # Hopper and Walker2d at D4RL's sizes
    python scripts/make_datasets.py --sac-steps 2000 --chunk-steps 1000 --eval-every 1000 --steps 3000 \\
        --mw-steps 3000 --pairs 50 --out-dir /tmp/ds_smoke         # smoke run (a few minutes)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from pbrl.app.bench import BadInput

DEFAULT_MUJOCO = ["mujoco/Hopper-v5", "mujoco/Walker2d-v5"]
#: D4RL's sizes (steps): medium and expert 1M each (medium-expert joins them); medium-replay is what the SAC run
#: collected up to the medium policy (about 400k on hopper, 300k on walker2d)
D4RL_STEPS = 1_000_000
DEFAULT_METAWORLD = ["metaworld/button-press-v3", "metaworld/drawer-open-v3", "metaworld/door-open-v3"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mujoco", nargs="*", default=DEFAULT_MUJOCO, help="MuJoCo task ids (SAC-trained datasets)")
    p.add_argument("--metaworld", nargs="*", default=DEFAULT_METAWORLD, help="Meta-World task ids (scripted)")
    p.add_argument("--out-dir", default="data/datasets", help="output directory")
    p.add_argument("--sac-steps", type=int, default=3_000_000,
                   help="most SAC training steps per MuJoCo task (it stops earlier at --target-return)")
    p.add_argument("--target-return", type=float, default=None,
                   help="stop SAC at the first evaluation at or above this return (default: D4RL's expert return)")
    p.add_argument("--chunk-steps", type=int, default=50_000, help="SAC steps between resumable boundaries")
    p.add_argument("--eval-every", type=int, default=10_000, help="SAC steps between evaluations (checkpoints)")
    p.add_argument("--eval-episodes", type=int, default=5, help="evaluation episodes per SAC checkpoint")
    p.add_argument("--learning-starts", type=int, default=10_000, help="SAC's random steps before its first update")
    p.add_argument("--steps", type=int, default=D4RL_STEPS, help="steps of each medium / expert dataset (D4RL: 1M)")
    p.add_argument("--mw-steps", type=int, default=50_000, help="steps of each Meta-World dataset")
    p.add_argument("--noise", type=float, nargs="+", default=[0.1, 0.5, 1.0, 2.0, 3.0],
                   help="Gaussian action-noise levels of the scripted policies, cycled per episode")
    p.add_argument("--early-stop", type=int, default=-1, help="end scripted episodes N steps after success (-1: never)")
    p.add_argument("--pairs", type=int, nargs="+", default=[500, 2000], help="sizes of the oracle preference datasets")
    p.add_argument("--segment-length", type=int, default=50, help="segment length of the preference datasets")
    p.add_argument("--ref-episodes", type=int, default=5, help="episodes per reference-return measurement")
    p.add_argument("--n-envs", type=int, default=8, help="envs stepped together during collection")
    p.add_argument("--workers", type=int, default=2, help="tasks built in parallel (one process each)")
    p.add_argument("--seed", type=int, default=0, help="seed")
    p.add_argument("--resume", action="store_true", help="continue a stopped build: keep finished files, resume SAC")
    args = p.parse_args(argv)
    for name in ("sac_steps", "chunk_steps", "eval_every", "eval_episodes", "steps", "mw_steps", "segment_length",
                 "ref_episodes", "n_envs", "workers"):
        if getattr(args, name) < 1:
            raise BadInput(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.eval_every > args.sac_steps:
        raise BadInput(f"--eval-every ({args.eval_every}) must not exceed --sac-steps ({args.sac_steps})")
    if args.chunk_steps % args.eval_every:
        raise BadInput(f"--chunk-steps ({args.chunk_steps}) must be a multiple of --eval-every ({args.eval_every})")
    if any(n < 1 for n in args.pairs) or any(x < 0 for x in args.noise):
        raise BadInput("--pairs must be >= 1 and --noise levels >= 0")
    from pbrl.envs.registry import check_task, is_metaworld

    for t in args.mujoco + args.metaworld:
        try:
            check_task(t)
        except ValueError as e:
            raise BadInput(f"{e}") from None
    bad = [t for t in args.metaworld if not is_metaworld(t)] + [t for t in args.mujoco if is_metaworld(t)]
    if bad:
        raise BadInput(f"tasks in the wrong list (--mujoco / --metaworld): {bad}")
    if not args.mujoco and not args.metaworld:
        raise BadInput("no tasks given")
    return args


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _record(timings: dict, key: str, t0: tuple[float, float]) -> None:
    """Wall seconds under ``key`` and this process's CPU seconds under ``key`` with ``_s`` -> ``_cpu_s``.

    Every stage runs on one thread, so its CPU seconds are what it takes on an idle core; the wall time
    also counts waiting for a CPU shared with other jobs.
    """
    timings[key] = time.perf_counter() - t0[0]
    timings[key[:-2] + "_cpu_s"] = time.process_time() - t0[1]


def slug(task: str) -> str:
    return task.replace("/", "_")


def rebuild_command(args: argparse.Namespace, tasks: list[str], kind: str) -> str:
    """The command that rebuilds ``tasks`` of one kind (``mujoco`` / ``metaworld``) with these settings."""
    flags = ["--mujoco", *tasks, "--metaworld"] if kind == "mujoco" else ["--mujoco", "--metaworld", *tasks]
    keys = ("sac_steps", "target_return", "chunk_steps", "eval_every", "eval_episodes", "learning_starts", "steps") \
        if kind == "mujoco" \
        else ("mw_steps", "noise", "early_stop")
    for k in (*keys, "pairs", "segment_length", "ref_episodes", "n_envs", "seed", "out_dir"):
        v = getattr(args, k)
        if v is None:
            continue
        flags += [f"--{k.replace('_', '-')}", *(map(str, v) if isinstance(v, list) else [str(v)])]
    return "python scripts/make_datasets.py " + " ".join(flags) + " --resume"


def _finish(ds, kind: str, task_dir: Path, args: argparse.Namespace, timings: dict, card: dict) -> dict[str, Any]:
    """Save one dataset, its card, its preference datasets and its histogram; return its record."""
    from pbrl.app.cli_dataset import plot_return_histogram
    from pbrl.app.dataset_cards import make_card, write_card
    from pbrl.envs.datasets import label_dataset, save_d4rl

    path = save_d4rl(ds, task_dir / f"{kind}.hdf5")
    cards = write_card(make_card(ds, path, kind, **card), path)
    plot_return_histogram(ds.episode_returns(), task_dir / f"{kind}.returns.png", f"{ds.dataset_id}")
    prefs_files = {}
    t0 = _clock()
    H = args.segment_length
    longest = int(ds.episode_lengths().max())
    if longest < H:  # e.g. a weak policy that falls early: use the longest possible segments, and say so
        print(f"warning: {ds.dataset_id}: longest episode has {longest} steps < segment length {H}; "
              f"labelling segments of {longest} steps", flush=True)
        H = longest
    for n in args.pairs:
        prefs = label_dataset(ds, "oracle", n, segment_length=H, seed=args.seed + n)
        prefs_files[str(n)] = str(prefs.save(task_dir / f"{kind}.prefs_oracle_{n}.h5"))
    _record(timings, f"label_{kind}_s", t0)
    return {"path": str(path), "card": str(cards[0]), "preferences": prefs_files, **ds.summary()}


def _sampled(model, seed: int):
    """SAC's stochastic policy as a batched collection function (D4RL's data are sampled actions); torch's
    generator is seeded here, so the collection is reproducible."""
    import torch

    torch.manual_seed(seed)
    return lambda o, nz: model.predict(o, deterministic=False)[0]


def _policy_record(c: dict, run_dir: Path, task: str) -> dict[str, Any]:
    from pbrl.envs.datasets import normalized_score

    rec = {"sac_step": int(c["step"]), "eval_return_mean": float(c["mean_return"]),
           "eval_return_std": float(c["std_return"]), "checkpoint": str(Path(c["path"]).relative_to(run_dir.parent))}
    try:
        rec["eval_d4rl_normalised"] = float(normalized_score(task, c["mean_return"]))
    except ValueError:
        pass
    return rec


def build_mujoco(task: str, args: argparse.Namespace) -> dict[str, Any]:
    """The resumable SAC run, then medium / expert / medium-replay / medium-expert datasets with cards."""
    import torch

    from pbrl.envs.collect import collect_with
    from pbrl.envs.datasets import D4RL_REF_SCORES, OfflineDataset, d4rl_key, load_d4rl
    from pbrl.envs.expert import train_sac_resumable

    torch.set_num_threads(1)
    task_dir = Path(args.out_dir) / slug(task)
    task_dir.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t0 = _clock()
    run = train_sac_resumable(task, task_dir / "sac", total_steps=args.sac_steps, chunk_steps=args.chunk_steps,
                              eval_every=args.eval_every, n_eval_episodes=args.eval_episodes,
                              target_return=args.target_return, seed=args.seed, learning_starts=args.learning_starts,
                              log=lambda m: print(m, flush=True))
    _record(timings, "sac_train_s", t0)
    run_dir = task_dir / "sac"
    policies = {"expert": _policy_record(run.expert, run_dir, task), "medium": _policy_record(run.medium, run_dir, task),
                "sac_steps_run": int(run.extra["done_steps"]), "sac_reached_target": bool(run.extra["finished"]),
                "sac_target_return": float(run.extra["target_return"]), "sac_cpu_s": float(run.extra["sac_cpu_s"])}
    key = d4rl_key(task)
    ref = {"ref_min_return": D4RL_REF_SCORES[key][0], "ref_max_return": D4RL_REF_SCORES[key][1]} if key else {}
    base = {"task_id": task, "expert_policy": policies["expert"]["checkpoint"], "sac_medium_step": run.medium["step"],
            "sac_medium_return": run.medium["mean_return"], "sac_expert_step": run.expert["step"],
            "sac_expert_return": run.expert["mean_return"], "collection": "scripts/make_datasets.py", **ref}
    command = rebuild_command(args, [task], "mujoco")
    cut = None if args.steps >= D4RL_STEPS else f"{args.steps} steps instead of D4RL's {D4RL_STEPS}"
    records, made = {}, {}
    for kind in ("medium", "expert", "medium-replay"):
        path = task_dir / f"{kind}.hdf5"
        t0 = _clock()
        if args.resume and path.exists() and path.with_suffix(".card.json").exists():
            made[kind] = load_d4rl(path)
            records[kind] = {"path": str(path), "card": str(path.with_suffix(".card.json")), **made[kind].summary()}
            continue
        meta = {**base, "policy": kind, "dataset_id": f"{task}/{kind}"}
        if kind == "medium-replay":
            ds = run.medium_replay()
            ds.metadata = {**ds.metadata, **meta}
            how = (f"every transition SAC collected up to its medium checkpoint (step {run.medium['step']}), "
                   "episodes cut at the run's resumable chunk boundaries marked as time-outs")
        else:
            which = run.load(kind)
            s = args.seed + (1 if kind == "expert" else 0)
            ds = collect_with(task, _sampled(which, s), args.steps, seed=s, n_envs=args.n_envs,
                              metadata={**meta, "seed": s})
            c = run.expert if kind == "expert" else run.medium
            how = (f"{args.steps} steps of the stochastic policy of the SAC checkpoint at step {c['step']} "
                   f"(evaluation return {c['mean_return']:.1f}), {args.n_envs} envs seeded {s}, {s + 1}, ...")
        _record(timings, f"collect_{kind}_s", t0)
        made[kind] = ds
        records[kind] = _finish(ds, kind, task_dir, args, timings, {"policies": policies, "how": how,
                                "command": command, "cut": None if kind == "medium-replay" else cut})
    path = task_dir / "medium-expert.hdf5"
    if args.resume and path.exists() and path.with_suffix(".card.json").exists():
        records["medium-expert"] = {"path": str(path), "card": str(path.with_suffix(".card.json")),
                                    **load_d4rl(path).summary()}
    else:
        me = OfflineDataset.concatenate(
            [made["medium"], made["expert"]],
            metadata={**made["medium"].metadata, "policy": "medium-expert", "dataset_id": f"{task}/medium-expert"},
        )
        records["medium-expert"] = _finish(me, "medium-expert", task_dir, args, timings, {
            "policies": policies, "how": "the medium dataset followed by the expert dataset", "command": command,
            "cut": None if cut is None else f"{2 * args.steps} steps instead of D4RL's {2 * D4RL_STEPS}"})
    return {"task": task, "kind": "sac", "reference": ref, "sac": run.summary(), "datasets": records, "timings": timings}


def build_metaworld(task: str, args: argparse.Namespace) -> dict[str, Any]:
    """Scripted policy with noise; reference returns of random and noise-free scripted policies."""
    from pbrl.envs.collect import collect, measure_reference_returns
    from pbrl.envs.datasets import load_d4rl

    task_dir = Path(args.out_dir) / slug(task)
    task_dir.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    path = task_dir / "scripted-noisy.hdf5"
    if args.resume and path.exists() and path.with_suffix(".card.json").exists():  # kept as it is, not rewritten
        ds = load_d4rl(path)
        ref = {k: ds.metadata[k] for k in ("ref_min_return", "ref_max_return") if k in ds.metadata}
        rec = {"path": str(path), "card": str(path.with_suffix(".card.json")), **ds.summary(),
               "success_by_noise": _success_by_noise(ds)}
        return {"task": task, "kind": "scripted", "reference": ref, "datasets": {"scripted-noisy": rec},
                "timings": timings}
    t0 = _clock()
    ref = measure_reference_returns(task, "scripted", n_episodes=args.ref_episodes, seed=args.seed + 7)
    _record(timings, "reference_s", t0)
    t0 = _clock()
    noise = args.noise if len(args.noise) > 1 else args.noise[0]
    ds = collect(task, "scripted", n_steps=args.mw_steps, seed=args.seed, n_envs=args.n_envs, noise=noise,
                 early_stop=None if args.early_stop < 0 else args.early_stop, reference=ref,
                 dataset_id=f"{task}/scripted-noisy")
    _record(timings, "collect_scripted_s", t0)
    how = (f"{args.mw_steps} steps of Meta-World's scripted policy with Gaussian action noise of std {args.noise} "
           f"(cycled per episode){'' if args.early_stop < 0 else f', episodes ended {args.early_stop} steps after success'}")
    rec = _finish(ds, "scripted-noisy", task_dir, args, timings, {
        "policies": {"scripted": {"noise": args.noise, "reference_returns": ref}}, "how": how,
        "command": rebuild_command(args, [task], "metaworld")})
    rec["success_by_noise"] = _success_by_noise(ds)
    return {"task": task, "kind": "scripted", "reference": ref, "datasets": {"scripted-noisy": rec}, "timings": timings}


def _success_by_noise(ds) -> dict[str, float]:
    """Success rate of the scripted episodes per noise level (``infos["noise"]`` at each episode's start)."""
    starts, _ = ds.episode_bounds
    levels = ds.infos["noise"][starts]
    succ = ds.episode_success()
    return {f"{lv:g}": float(succ[np.isclose(levels, lv)].mean()) for lv in np.unique(levels)}


def _job(spec: tuple[str, str, argparse.Namespace]) -> dict[str, Any]:
    kind, task, args = spec
    t0 = _clock()
    out = build_mujoco(task, args) if kind == "mujoco" else build_metaworld(task, args)
    _record(out["timings"], "total_s", t0)
    print(f"done {task} in {out['timings']['total_s']:.0f}s", flush=True)
    return out


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pbrl.envs.datasets import load_d4rl

    names, rets = [], []
    for r in results:
        for kind, rec in r["datasets"].items():
            ds = load_d4rl(rec["path"])
            lo, hi = r["reference"].get("ref_min_return"), r["reference"].get("ref_max_return")
            x = ds.episode_returns()
            rets.append(100 * (x - lo) / (hi - lo) if lo is not None and hi is not None and hi > lo else x)
            names.append(f"{r['task'].split('/')[-1]}\n{kind}")
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(names)), 4.5))
    ax.boxplot(rets, showfliers=False)
    ax.set_xticks(range(1, len(names) + 1), names, fontsize=7)
    ax.set_ylabel("episode return, normalised (MuJoCo: D4RL's 0 = random, 100 = expert)")
    ax.set_title("make_datasets: episode returns of every dataset")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _kept_results(path: Path, results: list[dict]) -> list[dict]:
    """The results an earlier invocation wrote to ``make_datasets.json`` for tasks this one did not build, so
    that the file (and its plot) covers every task of the folder; ``args`` and ``wall_s`` are this invocation's."""
    if not path.exists():
        return []
    built = {r["task"] for r in results}
    return [r for r in json.loads(path.read_text()).get("results", []) if r["task"] not in built]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out_dir)
    started = [t for t in args.mujoco if (out / slug(t) / "sac" / "state.json").exists()]
    if started and not args.resume:
        raise BadInput(f"{out} already holds SAC runs of {started}; pass --resume to continue them "
                         "(finished files are kept) or choose another --out-dir")
    out.mkdir(parents=True, exist_ok=True)
    jobs = [("mujoco", t, args) for t in args.mujoco] + [("metaworld", t, args) for t in args.metaworld]
    t0 = _clock()
    if args.workers == 1:
        results = [_job(j) for j in jobs]
    else:
        with ProcessPoolExecutor(max_workers=min(args.workers, len(jobs))) as pool:
            results = list(pool.map(_job, jobs))
    wall = time.perf_counter() - t0[0]
    from pbrl.preferences import atomic_write

    report = {
        "args": {k: v for k, v in vars(args).items()},
        "wall_s": wall,
        "machine": {"python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count()},
        "results": _kept_results(out / "make_datasets.json", results) + results,
    }
    with atomic_write(out / "make_datasets.json", suffix=".json") as tmp:
        tmp.write_text(json.dumps(report, indent=1, default=str))
    plot(report["results"], out / "make_datasets.png")
    print(f"\n{'dataset':<48} {'steps':>7} {'eps':>5} {'return mean':>12} {'std':>9} {'min':>9} {'max':>9} {'succ':>5}")
    for r in results:
        for kind, rec in r["datasets"].items():
            succ = rec.get("success_rate")
            print(f"{r['task'] + '/' + kind:<48} {rec['steps']:>7} {rec['episodes']:>5} {rec['return_mean']:>12.1f} "
                  f"{rec['return_std']:>9.1f} {rec['return_min']:>9.1f} {rec['return_max']:>9.1f} "
                  f"{'' if succ is None or r['kind'] == 'sac' else f'{succ:.2f}':>5}")
        print(f"   reference {r['reference']}; timings " + ", ".join(f"{k} {v:.0f}" for k, v in r["timings"].items()))
    print(f"\ntotal wall time {wall:.0f}s -> {out / 'make_datasets.json'}, {out / 'make_datasets.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
