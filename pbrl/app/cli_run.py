"""The run-management commands of ``pbrl``: ``train online|offline``, ``train --resume``, ``eval``,
``report`` and ``sweep``. Attached to the main app by :func:`register`.

Every command validates its whole configuration before any work starts and stops with one line
``error: ...`` (exit code 2) naming the bad key and the allowed values.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from pbrl.agents.registry import agent_names
from pbrl.app.cli_errors import ErrorHandlingGroup, fail

__all__ = ["train_app", "eval_cmd", "report_cmd", "sweep_cmd", "register"]

console = Console()
#: the ``pbrl train`` command group (``online``, ``offline``, ``--resume``)
train_app = typer.Typer(
    help="Train an agent into a run directory (config, logs, labels, checkpoints, metrics).",
    no_args_is_help=False,
    invoke_without_command=True,
    pretty_exceptions_enable=False,
    cls=ErrorHandlingGroup,
)


def _fail(msg: str, code: int = 2) -> typer.Exit:
    return fail(msg, code)


def _agents(kind: str, default: str) -> str:
    return f"{' | '.join(agent_names(kind))} (default {default})"


def _default_run_dir(cfg) -> Path:
    task = re.sub(r"[^A-Za-z0-9_.-]+", "_", cfg.task)
    return Path("runs") / f"{cfg.kind}__{cfg.agent}__{task}__{cfg.teacher_tag()}__b{cfg.total_feedback}__s{cfg.seed}"


def _tracking(track: bool, project: str, entity: str | None):
    """``--track``'s :class:`pbrl.app.tracking.Tracking` (``None`` without ``--track``); one line and exit 2 if the
    ``wandb`` extra is missing or a name is bad, before any work."""
    if not track:
        return None
    from pbrl.app.tracking import Tracking, check_tracking  # lazy: torch, SB3 (pbrl --help start-up)

    try:
        check_tracking()
        return Tracking(project=project, entity=entity)
    except ValueError as e:
        raise _fail(str(e)) from None


def _hyperparams(path: Path | None, off: bool) -> Path | bool:
    if off and path is not None:
        raise _fail("--hyperparams and --no-hyperparams exclude each other; give one")
    return False if off else (path if path is not None else True)


def _train(kind: str, config: Path | None, flags: dict[str, Any], sets: list[str] | None, run_dir: Path | None,
           overwrite: bool, quiet: bool, hyperparams: Path | bool = True, tracking=None) -> None:
    from pbrl.app import config_resolve, runs  # lazy: torch, SB3 (pbrl --help start-up)

    try:
        cfg = config_resolve.resolve_config(kind, config, flags, sets, hyperparams)
        run_dir = run_dir or _default_run_dir(cfg)
        checked = runs.check_start(cfg, run_dir, overwrite=overwrite)
    except ValueError as e:
        raise _fail(str(e)) from None
    console.print(f"[bold]pbrl train {kind}[/bold]: {cfg.agent} on {cfg.task}, teacher {cfg.teacher}, "
                  f"budget {cfg.total_feedback}, seed {cfg.seed} -> {run_dir}", highlight=False)
    prov = cfg.provenance or {}
    if prov.get("hyperparams_file"):
        console.print(f"hyperparameters: {prov['hyperparams_file']} [{', '.join(prov['hyperparams_entries']) or 'no entry'}]"
                      " (sources of every value: config.json's provenance)", highlight=False, soft_wrap=True, markup=False)
    try:
        res = runs.train(cfg, run_dir, overwrite=overwrite, verbose=not quiet, checked=checked,
                         echo=lambda m: console.print(m, highlight=False, soft_wrap=True), tracking=tracking)
    except runs.RunBusy as e:  # another process took the run directory since the check: nothing was written
        raise _fail(str(e)) from None
    _finish(res, run_dir)


def _finish(res: dict[str, Any], run_dir: Path) -> None:
    if res.get("state") == "interrupted":
        console.print(f"stopped after a checkpoint at step {res.get('step')}; continue with "
                      f"`pbrl train --resume {run_dir}`")
        raise typer.Exit(130)
    fin = res.get("final", {})
    score = fin.get("normalized_score")
    console.print(
        f"finished {run_dir}: {res.get('steps')} steps, {res.get('labels')} labels, return "
        f"{fin.get('mean_return', float('nan')):.2f}, success {fin.get('success_rate', float('nan')):.2f}"
        + (f", D4RL-normalised score {score:.1f}" if score is not None else "")
    )


@train_app.callback()
def train_main(
    ctx: typer.Context,
    resume: Path = typer.Option(None, "--resume", help="continue the run in this directory from its latest checkpoint"),
    quiet: bool = typer.Option(False, "--quiet", help="no SB3 log table on stdout"),
    track: bool = typer.Option(False, "--track", help="with --resume: also log to Weights & Biases from here on "
                               "(a tracked run always continues its W&B run)"),
    wandb_project: str = typer.Option("pbrl", "--wandb-project", help="W&B project of --track"),
    wandb_entity: str = typer.Option(None, "--wandb-entity", help="W&B entity (team or user) of --track"),
) -> None:
    """Train an agent: `pbrl train online ...`, `pbrl train offline ...` or `pbrl train --resume RUN_DIR`."""
    tracking = _tracking(track, wandb_project, wandb_entity)
    if ctx.invoked_subcommand is not None:
        if resume is not None:
            raise _fail("--resume takes no sub-command: use `pbrl train --resume RUN_DIR` alone")
        return
    if resume is None:
        console.print(ctx.get_help())
        raise typer.Exit(0)
    from pbrl.app import runs  # lazy: torch, SB3 (pbrl --help start-up)

    try:
        rd = runs.RunDir(resume)
        rd.config()
        runs.check_not_busy(resume)  # another process training it: one line, before anything is written
    except ValueError as e:
        raise _fail(str(e)) from None
    ckpt = rd.latest_checkpoint()
    state = rd.status().get("state")
    console.print(f"[bold]resuming[/bold] {resume} ({state}) from "
                  + (f"checkpoint {ckpt.name}" if ckpt else "the start (no checkpoint yet)"), highlight=False)
    try:
        res = runs.resume(resume, verbose=not quiet, tracking=tracking)
    except runs.RunBusy as e:  # another process took the run since the check: nothing was written
        raise _fail(str(e)) from None
    _finish(res, resume)


_CONFIG = typer.Option(None, "--config", "-c", help="YAML or JSON config file (flags override it)")
_SET = typer.Option(None, "--set", "-s", help="extra key=value (repeatable), e.g. learner_kwargs.batch_size=64")
_RUN_DIR = typer.Option(None, "--run-dir", "-o", help="run directory (default runs/<kind>__<agent>__<task>__...)")
_OVERWRITE = typer.Option(False, "--overwrite", help="start an existing run directory again from nothing "
                          "(its old files are moved aside to RUN_DIR.replaced-<time>)")
_QUIET = typer.Option(False, "--quiet", help="no SB3 log table on stdout")
_HPARAMS = typer.Option(None, "--hyperparams", help="per-task hyperparameter file to use instead of the agent's "
                        "packaged pbrl/hyperparams/<agent>.yml (flags, --config and --set override it)")
_NO_HPARAMS = typer.Option(False, "--no-hyperparams", help="ignore the hyperparameter files: the agent's defaults only")
_TRACK = typer.Option(False, "--track", help="also log to Weights & Biases (needs: pip install 'pbrl\\[wandb]'; "
                      "WANDB_MODE=offline logs without a network)")
_WANDB_PROJECT = typer.Option("pbrl", "--wandb-project", help="W&B project of --track")
_WANDB_ENTITY = typer.Option(None, "--wandb-entity", help="W&B entity (team or user) of --track (default: yours)")


@train_app.command("online")
def train_online_cmd(
    config: Path = _CONFIG,
    task: str = typer.Option(None, help="task id (see `pbrl tasks`; Meta-World and pointmass options after a colon, e.g. "
                            "metaworld/button-press-v3:reward=v1,goal=hidden), default mujoco/HalfCheetah-v5"),
    agent: str = typer.Option(None, help=_agents("online", "pebble")),
    teacher: str = typer.Option(None, help="oracle | stoc | mistake | skip | myopic | equal | scripted | rating | heron | intransitive | last_step"),
    n_classes: int = typer.Option(None, help="classes of the rating teacher (--teacher rating; default 3)"),
    total_timesteps: int = typer.Option(None, help="env steps (default 100000)"),
    total_feedback: int = typer.Option(None, help="label budget: queries asked (default 1000)"),
    feedback_per_session: int = typer.Option(None, help="queries per session (default 100)"),
    feedback_every: int = typer.Option(None, help="env steps between sessions (default 10000)"),
    segment_length: int = typer.Option(None, help="segment length H (default 50)"),
    selector: str = typer.Option(None, help="uniform | disagreement | entropy | kcenter | thompson | gated_disagreement | ... (options: --set selector_kwargs.epsilon=0.05)"),
    seed: int = typer.Option(None, help="seed of the whole run (default 0)"),
    checkpoint_every: int = typer.Option(None, help="env steps between checkpoints (default 10000)"),
    eval_every: int = typer.Option(None, help="env steps between evaluations (default 10000)"),
    n_eval_episodes: int = typer.Option(None, help="episodes per evaluation (default 5)"),
    max_episode_steps: int = typer.Option(None, help="shorter time limit for quick runs"),
    sets: list[str] = _SET,
    run_dir: Path = _RUN_DIR,
    overwrite: bool = _OVERWRITE,
    quiet: bool = _QUIET,
    hyperparams: Path = _HPARAMS,
    no_hyperparams: bool = _NO_HPARAMS,
    track: bool = _TRACK,
    wandb_project: str = _WANDB_PROJECT,
    wandb_entity: str = _WANDB_ENTITY,
) -> None:
    """Online PbRL: an SB3 learner on a live task, a teacher labelling segment pairs (or rating single
    segments, --teacher rating) as it trains."""
    flags = dict(task=task, agent=agent, teacher=teacher, total_timesteps=total_timesteps,
                 total_feedback=total_feedback, feedback_per_session=feedback_per_session,
                 feedback_every=feedback_every, segment_length=segment_length, selector=selector, seed=seed,
                 checkpoint_every=checkpoint_every, eval_every=eval_every, n_eval_episodes=n_eval_episodes,
                 max_episode_steps=max_episode_steps, n_classes=n_classes)
    tracking = _tracking(track, wandb_project, wandb_entity)
    _train("online", config, flags, sets, run_dir, overwrite, quiet, _hyperparams(hyperparams, no_hyperparams), tracking)


@train_app.command("offline")
def train_offline_cmd(
    config: Path = _CONFIG,
    task: str = typer.Option(None, help="task id the dataset comes from (evaluation runs on it; "
                            "Meta-World options after a colon, see `pbrl tasks`)"),
    dataset: str = typer.Option(None, help="D4RL .hdf5 path or local Minari id (default: collect one)"),
    agent: str = typer.Option(None, help=_agents("offline", "mriql")),
    teacher: str = typer.Option(None, help="oracle | stoc | mistake | skip | myopic | equal | scripted | rating | "
                                 "regret (CPL's oracle: the dataset's expert critic; --set teacher_kwargs.critic=returns|PATH) | "
                                 "multi_user (several users with different goals, for --agent vpl)"),
    n_classes: int = typer.Option(None, help="classes of the rating teacher (--teacher rating; default 3)"),
    labels: str = typer.Option(None, help="preference or rating file (.h5) to learn from instead of the teacher"),
    total_feedback: int = typer.Option(None, help="segment pairs labelled, or segments rated (default 500)"),
    segment_length: int = typer.Option(None, help="segment length H (default 50)"),
    steps: int = typer.Option(None, help="gradient updates (default 10000)"),
    seed: int = typer.Option(None, help="seed of the whole run (default 0)"),
    checkpoint_every: int = typer.Option(None, help="updates between checkpoints (default 2000)"),
    eval_every: int = typer.Option(None, help="updates between evaluations (default 2000)"),
    n_eval_episodes: int = typer.Option(None, help="episodes per evaluation (default 5)"),
    collect_policy: str = typer.Option(None, help="policy that collects the dataset when none is given"),
    collect_steps: int = typer.Option(None, help="steps to collect when no dataset is given"),
    sets: list[str] = _SET,
    run_dir: Path = _RUN_DIR,
    overwrite: bool = _OVERWRITE,
    quiet: bool = _QUIET,
    hyperparams: Path = _HPARAMS,
    no_hyperparams: bool = _NO_HPARAMS,
    track: bool = _TRACK,
    wandb_project: str = _WANDB_PROJECT,
    wandb_entity: str = _WANDB_ENTITY,
) -> None:
    """Offline PbRL: label segment pairs (or rate segments) of a fixed dataset once, then train an offline agent."""
    flags = dict(task=task, dataset=dataset, agent=agent, teacher=teacher, total_feedback=total_feedback,
                 segment_length=segment_length, steps=steps, seed=seed, checkpoint_every=checkpoint_every,
                 eval_every=eval_every, n_eval_episodes=n_eval_episodes, collect_policy=collect_policy,
                 collect_steps=collect_steps, n_classes=n_classes, labels=labels)
    tracking = _tracking(track, wandb_project, wandb_entity)
    _train("offline", config, flags, sets, run_dir, overwrite, quiet, _hyperparams(hyperparams, no_hyperparams), tracking)


def eval_cmd(
    run_dir: Path = typer.Argument(..., help="a run directory, or an SB3 model .zip trained elsewhere (with --task)"),
    task: str = typer.Option(None, help="for an SB3 .zip: the task it was trained on (see `pbrl tasks`)"),
    episodes: int = typer.Option(10, min=1, help="evaluation episodes"),
    seed: int = typer.Option(0, help="seed of the evaluation episodes"),
    video: Path = typer.Option(None, help="also save an MP4 of rendered episodes here (MuJoCo offscreen)"),
    video_episodes: int = typer.Option(1, min=1, help="episodes in the video"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing --video file"),
) -> None:
    """Evaluate a run's policy, or the policy of an SB3 .zip shared by others (--task), on the task's true
    reward: return, success rate and normalised score over N episodes (optional MP4)."""
    from pbrl.app.runs import evaluate_run  # lazy: torch, SB3 (pbrl --help start-up)

    try:
        res = evaluate_run(run_dir, episodes, seed, video, video_episodes, overwrite=overwrite, task=task)
    except ValueError as e:
        raise _fail(str(e)) from None
    score = res["normalized_score"]
    console.print(
        f"{res['task']} ({Path(res['policy']).name}), {episodes} episodes: return {res['mean_return']:.2f} "
        f"+- {res['std_return']:.2f}, success rate {res['success_rate']:.2f}"
        + (f", D4RL-normalised score {score:.1f}" if score is not None else "")
    )
    if video is not None:
        console.print(f"video: {res['video']}")


def report_cmd(
    run_dirs: list[Path] = typer.Argument(..., help="run directories, or folders holding them (a sweep)"),
    out: Path = typer.Option(Path("report"), "--out", "-o", help="folder for report.json and the PNG plots"),
    score: str = typer.Option("auto", help="auto | return | success | normalized"),
    group_by: str = typer.Option("agent", help="comma-separated config fields: agent,teacher,budget,task,kind,selector"),
    resamples: int = typer.Option(2000, min=10, help="bootstrap resamples"),
    confidence: float = typer.Option(0.95, help="confidence level of the intervals"),
    seed: int = typer.Option(0, help="seed of the bootstrap"),
    include_unfinished: bool = typer.Option(False, help="also use runs that have not finished"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace a report already in --out"),
    baseline: str = typer.Option(None, "--baseline", help="a group (e.g. an agent) to compare every other with: "
                                 "probability of improvement P(X > baseline) with its stratified-bootstrap CI"),
) -> None:
    """Aggregate runs across seeds and tasks: IQM / mean / median (and the optimality gap of success or
    normalized scores) with stratified bootstrap CIs, the probability of improvement over a --baseline,
    learning curves vs env steps and vs labels, performance profiles (rliable's protocol)."""
    from pbrl.app.report import build_report, format_table, table_metrics  # lazy: torch, matplotlib

    try:
        res = build_report([str(p) for p in run_dirs], score=score, group_by=tuple(g.strip() for g in group_by.split(",") if g.strip()),
                           out=out, n_resamples=resamples, confidence=confidence, seed=seed,
                           include_unfinished=include_unfinished, overwrite=overwrite, baseline=baseline)
    except ValueError as e:
        raise _fail(str(e)) from None
    console.print(format_table(res))
    for name, g in res["groups"].items():  # one greppable line per group (tables wrap in narrow terminals)
        console.print(f"{name}: " + ", ".join(f"{m} {g[m]['value']:.3f} [{g[m]['low']:.3f}, {g[m]['high']:.3f}]"
                                              for m in table_metrics(res) if m in g) + f" ({g['n_runs']} runs)",
                      soft_wrap=True, highlight=False)
    for s in res["skipped"]:
        console.print(f"skipped (not finished): {s}", highlight=False)
    for w in res.get("warnings", []):
        console.print(f"[yellow]warning:[/yellow] {w}", highlight=False, soft_wrap=True)
    for p in res["plots"]:
        console.print(f"plot: {p}")


def _split(text: str | None, cast=str) -> list:
    if not text:
        return []
    try:
        return [cast(x.strip()) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"cannot read '{text}' as a comma-separated list of {cast.__name__}") from None


def parse_seeds(text: str | None) -> list[int]:
    """``"0,1,2"`` or a range ``"0-4"`` (both ends included) -> seeds; ``ValueError`` for ``"4-0"``."""
    if text and re.fullmatch(r"\s*\d+\s*-\s*\d+\s*", text):
        lo, hi = (int(x) for x in text.split("-"))
        if hi < lo:
            raise ValueError(f"--seeds range '{text.strip()}' is empty (it ends before it starts); "
                             f"write it low-high, e.g. {hi}-{lo}")
        return list(range(lo, hi + 1))
    return _split(text, int)


def sweep_cmd(
    out: Path = typer.Option(..., "--out", "-o", help="sweep folder; one run directory per grid point"),
    kind: str = typer.Option(None, help="online | offline (default: the config's kind, else online)"),
    config: Path = typer.Option(None, "--config", "-c", help="base config (YAML/JSON) every grid point starts from"),
    tasks: str = typer.Option(None, help="comma-separated task ids"),
    agents: str = typer.Option(None, help="comma-separated agents"),
    teachers: str = typer.Option(None, help="comma-separated teachers"),
    budgets: str = typer.Option(None, help="comma-separated label budgets (total_feedback)"),
    seeds: str = typer.Option(None, help="comma-separated seeds, or a range like 0-4"),
    sets: list[str] = _SET,
    workers: int = typer.Option(None, min=1, help="parallel runs of the local pool (default: CPU count)"),
    backend: str = typer.Option("auto", help="auto | local | ray"),
    address: str = typer.Option(None, help="Ray cluster address (uses Ray Tune; needs the sweep extra: pip install 'pbrl\\[sweep]')"),
    batch_seeds: bool = typer.Option(False, help="train offline points that differ only in their seed in one "
                                     "process, vmapped (local pool; pays on a GPU, not on a small CPU)"),
    dry_run: bool = typer.Option(False, help="list the grid and stop"),
    hyperparams: Path = _HPARAMS,
    no_hyperparams: bool = _NO_HPARAMS,
    track: bool = _TRACK,
    wandb_project: str = _WANDB_PROJECT,
    wandb_entity: str = _WANDB_ENTITY,
) -> None:
    """Run a grid tasks x agents x teachers x budgets x seeds (local processes, or Ray Tune with --address);
    running it again resumes unfinished runs. Read the results with `pbrl report OUT`."""
    import logging

    from pbrl.app.sweep import BUSY, base_config, expand_grid, run_sweep  # lazy: torch, SB3 (--help start-up)

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    tracking = _tracking(track, wandb_project, wandb_entity)
    try:
        base = base_config(config, sets)
        seed_list = parse_seeds(seeds)
        points = expand_grid(base, _split(tasks), _split(agents), _split(teachers), _split(budgets, int), seed_list,
                             kind=kind, hyperparams=_hyperparams(hyperparams, no_hyperparams))
        if dry_run:
            for p in points:
                console.print(f"{out / p.name}")
            console.print(f"{len(points)} runs")
            return
        res = run_sweep(points, out, backend=backend, workers=workers, address=address, batch_seeds=batch_seeds,
                        tracking=tracking)
    except ValueError as e:
        raise _fail(str(e)) from None
    failed = {k: v for k, v in res.items() if "error" in v}
    stopped = {k: v for k, v in res.items() if v.get("state") in ("interrupted", "not_started")}
    busy = {k: v for k, v in res.items() if v.get("state") == BUSY}
    done = len(res) - len(failed) - len(stopped) - len(busy)
    console.print(f"{done} of {len(res)} runs finished in {out}; `pbrl report {out}` compares them")
    for k, v in failed.items():
        console.print(f"[red]failed[/red] {k}: {v['error']}")
    for k in busy:
        console.print(f"skipped {k}: another process is training it; run the same command again once it is done",
                      highlight=False, soft_wrap=True)
    if stopped:
        n_int = sum(v["state"] == "interrupted" for v in stopped.values())
        console.print(f"stopped: {n_int} runs interrupted after a checkpoint, {len(stopped) - n_int} not started; "
                      "run the same command again to resume")
    if failed:
        raise typer.Exit(1)
    if stopped:
        raise typer.Exit(130)
    if busy:
        raise typer.Exit(75)  # EX_TEMPFAIL: not all runs are done here; the same command later picks them up


def register(app: typer.Typer) -> None:
    """Attach ``train``, ``eval``, ``report`` and ``sweep`` to the ``pbrl`` app."""
    app.add_typer(train_app, name="train")
    app.command("eval")(eval_cmd)
    app.command("report")(report_cmd)
    app.command("sweep")(sweep_cmd)
