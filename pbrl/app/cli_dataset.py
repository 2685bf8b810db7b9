"""``pbrl dataset``: collect offline datasets, label segment pairs from them, and describe them.

* ``pbrl dataset collect TASK --policy random|scripted|medium|expert|medium-replay|medium-expert --steps N --out F.hdf5``
* ``pbrl dataset label F.hdf5 --pairs 500 --teacher oracle --out prefs.h5`` (or import index-style label
  files with ``--indices-1 --indices-2 --labels --query-length``)
* ``pbrl dataset info F.hdf5`` (size, episodes, return statistics, a histogram of episode returns)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from pbrl.app.cli_errors import ErrorHandlingGroup
from pbrl.io import check_writable_file

dataset_app = typer.Typer(help="Offline datasets: collect, label, info.", no_args_is_help=True,
                          cls=ErrorHandlingGroup)
console = Console()


def _parse_noise(noise: str) -> float | list[float]:
    try:
        levels = [float(x) for x in noise.split(",") if x.strip()]
    except ValueError:
        raise typer.BadParameter(f"--noise must be a number or comma-separated numbers, got {noise!r}") from None
    if not levels or any(x < 0 for x in levels):
        raise typer.BadParameter(f"--noise levels must be >= 0, got {noise!r}")
    return levels[0] if len(levels) == 1 else levels


@dataset_app.command("collect")
def collect_cmd(
    task: str = typer.Argument(..., help="task id, e.g. mujoco/Hopper-v5 or metaworld/button-press-v3"),
    out: Path = typer.Option(..., "--out", "-o", help="output .hdf5 file (D4RL layout)"),
    policy: str = typer.Option(
        "random", help="random | scripted (Meta-World) | medium | expert | medium-replay | medium-expert | path.zip"
    ),
    steps: int = typer.Option(10_000, min=1, help="steps to collect"),
    seed: int = typer.Option(0, help="seed"),
    n_envs: int = typer.Option(1, min=1, help="environments stepped together"),
    noise: str = typer.Option("0", help="Gaussian action-noise std; several comma-separated levels cycle per episode"),
    early_stop: int = typer.Option(-1, help="end an episode this many steps after its first success (-1: never)"),
    sac_steps: int = typer.Option(100_000, min=1, help="SAC training steps for medium/expert/replay policies"),
    sac_eval_every: int = typer.Option(10_000, min=1, help="SAC checkpoint period"),
    reference_episodes: int = typer.Option(0, min=0, help="episodes to measure random/expert reference returns (0: skip)"),
    minari_id: str = typer.Option("", help="also write a local Minari dataset with this id"),
    dataset_id: str = typer.Option("", help="dataset id stored in the metadata (default TASK/POLICY)"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing --out file"),
) -> None:
    """Roll out a policy on TASK and save the transitions in D4RL's HDF5 layout."""
    import torch

    from pbrl.envs import collect, datasets, registry  # lazy: gymnasium, SB3 (start-up)

    torch.set_num_threads(1)
    # everything is checked before any work (SAC training for medium/expert policies takes a while)
    if out.suffix not in (".hdf5", ".h5"):
        raise ValueError(f"--out must end in .hdf5 or .h5, got {out}")
    check_writable_file(out, "--out file", overwrite=overwrite)
    registry.check_task(task)
    if policy not in collect.POLICY_KINDS and not (policy.endswith(".zip") and Path(policy).is_file()):
        raise ValueError(f"unknown --policy '{policy}'; choose one of {', '.join(collect.POLICY_KINDS)} or an existing "
                         "SB3 model .zip")
    if policy == "scripted" and not task.startswith("metaworld/"):
        raise ValueError(f"--policy scripted exists only for Meta-World tasks, not {task}; use random, medium or expert")
    levels = _parse_noise(noise)
    run = None
    if policy in ("medium", "expert", "medium-replay", "medium-expert"):
        run = collect.train_sac(task, sac_steps, seed=seed, eval_every=min(sac_eval_every, sac_steps), progress=True)
        console.print(f"SAC: medium at step {run.medium['step']} (return {run.medium['mean_return']:.1f}), "
                      f"expert return {run.expert['mean_return']:.1f}")
    reference = None
    if reference_episodes:
        expert = "scripted" if policy == "scripted" else (run.load("expert") if run is not None else None)
        reference = collect.measure_reference_returns(task, expert, n_episodes=reference_episodes, seed=seed + 123)
    ds = collect.collect(task, policy, n_steps=steps, seed=seed, n_envs=n_envs, noise=levels,
                 early_stop=None if early_stop < 0 else early_stop, sac_run=run, reference=reference,
                 dataset_id=dataset_id or None, progress=True)
    datasets.save_d4rl(ds, out)
    if minari_id:
        datasets.to_minari(ds, minari_id)
    _print_summary(ds, str(out))


def _print_summary(ds, name: str) -> None:
    s = ds.summary()
    table = Table(title=f"dataset {name}")
    table.add_column("field")
    table.add_column("value", justify="right")
    for k, v in s.items():
        table.add_row(k, f"{v:.3f}" if isinstance(v, float) else str(v))
    console.print(table)


@dataset_app.command("label")
def label_cmd(
    dataset: str = typer.Argument(..., help="dataset .hdf5 path or local Minari id"),
    out: Path = typer.Option(..., "--out", "-o", help="output preference file (.h5)"),
    pairs: int = typer.Option(500, min=1, help="segment pairs to sample and label"),
    segment_length: int = typer.Option(50, min=1, help="segment length H"),
    teacher: str = typer.Option("oracle", help="teacher preset: oracle, stoc, mistake, skip, myopic, equal; or regret "
                                "(CPL's oracle labels: regret under the dataset's expert critic, see --critic)"),
    critic: str = typer.Option("auto", help="regret teacher's value: auto (the dataset's expert SAC, else returns), "
                               "returns (fitted to returns-to-go) or an SB3 SAC .zip"),
    seed: int = typer.Option(0, help="seed of the sampling and the teacher"),
    stratified: bool = typer.Option(False, help="stratify segments by return"),
    indices_1: Path = typer.Option(None, help="import: pickle of first-segment start indices (Preference Transformer / Uni-RLHF)"),
    indices_2: Path = typer.Option(None, help="import: pickle of second-segment start indices"),
    labels: Path = typer.Option(None, help="import: pickle of labels (0 first, 1 second, -1 tie)"),
    query_length: int = typer.Option(100, min=1, help="import: query (segment) length of the label files"),
    num_query: int = typer.Option(0, min=0, help="import: keep the last N queries (0: all)"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing --out file (its labels are lost)"),
) -> None:
    """Build a preference dataset from an offline dataset: sampled pairs labelled by a scripted teacher,
    or imported index-style human labels."""
    from pbrl.envs import datasets, regret  # lazy: gymnasium, SB3 (start-up)

    given = [x is not None for x in (indices_1, indices_2, labels)]
    if any(given) and not all(given):
        raise typer.BadParameter("importing labels needs all of --indices-1, --indices-2 and --labels")
    if teacher == "regret" and critic not in ("auto", "returns") and not Path(critic).is_file():
        raise typer.BadParameter(f"--critic '{critic}' is neither auto nor returns nor an existing SB3 SAC .zip file")
    check_writable_file(out, "--out file", overwrite=overwrite)
    ds = datasets.load_dataset(dataset)
    if all(given):
        prefs = datasets.import_index_labels(ds, indices_1, indices_2, labels, query_length, num_query=num_query or None)
    else:
        who = teacher
        if teacher == "regret":
            who = regret.dataset_regret_teacher(ds, critic=critic, seed=seed)
        prefs = datasets.label_dataset(ds, who, pairs, segment_length, seed=seed, stratified=stratified)
    prefs.save(out)
    console.print(f"{prefs} -> {out}")


def plot_return_histogram(returns: np.ndarray, path: Path, title: str) -> Path:
    """Save a histogram of episode returns as a PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.hist(returns, bins=min(30, max(5, len(returns) // 2)), color="tab:blue", alpha=0.8)
    ax.set_xlabel("episode return")
    ax.set_ylabel("episodes")
    ax.set_title(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


@dataset_app.command("info")
def info_cmd(
    dataset: str = typer.Argument(..., help="dataset .hdf5 path or local Minari id"),
    plot: Path = typer.Option(None, help="histogram PNG (default: next to the file, <name>.returns.png)"),
    bins: int = typer.Option(10, min=1, help="bins of the printed histogram"),
) -> None:
    """Print size, episodes and return statistics, and plot a histogram of episode returns."""
    from pbrl.envs.datasets import load_dataset  # lazy: gymnasium (start-up)

    ds = load_dataset(dataset)
    _print_summary(ds, dataset)
    rets = ds.episode_returns()
    counts, edges = np.histogram(rets, bins=bins)
    width = 40
    top = max(int(counts.max()), 1)
    for c, lo, hi in zip(counts, edges[:-1], edges[1:]):
        console.print(f"{lo:>10.1f} .. {hi:>10.1f} | {'#' * int(round(width * c / top)):<{width}} {c}")
    if plot is None:
        p = Path(dataset)
        plot = p.with_suffix(".returns.png") if p.exists() else Path(dataset.replace("/", "_") + ".returns.png")
    plot_return_histogram(rets, plot, f"{ds.dataset_id or dataset}: {ds.n_episodes} episodes")
    console.print(f"histogram -> {plot}")
