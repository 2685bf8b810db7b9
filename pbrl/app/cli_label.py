"""``pbrl label``: make a queue of pairs, serve the labelling page, export the answers."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from pbrl.app.cli_errors import ErrorHandlingGroup, error_message, fail
from pbrl.io import check_writable_file

label_app = typer.Typer(
    name="label",
    help="A labelling page for people: `queue` pairs (or clips to rate) from a dataset, `serve` the page, "
         "`export` the labels.",
    no_args_is_help=True,
    cls=ErrorHandlingGroup,
)
console = Console()


def _fail(e: Exception) -> None:
    raise fail(error_message(e))


@label_app.command("queue")
def queue_cmd(
    dataset: str = typer.Argument(..., help="offline dataset: a D4RL-style .hdf5 path or a local Minari id; "
                                  "or a pbrl preference file whose pairs a person should label again"),
    out: Path = typer.Option(..., "-o", "--out", help="queue file to write (.h5)"),
    task: str = typer.Option(None, help="task id to render with (default: the dataset's task_id)"),
    pairs: int = typer.Option(100, min=1, help="pairs in the queue"),
    segment_length: int = typer.Option(50, min=1, help="segment length H"),
    selector: str = typer.Option("uniform", help="query selector (pbrl.queries.make_selector names)"),
    candidates: int = typer.Option(None, min=1, help="candidate pairs to select from (default: pairs for uniform, 10x otherwise)"),
    reward_model: Path = typer.Option(None, help="saved RewardEnsemble for uncertainty-based selectors"),
    seed: int = typer.Option(0, help="seed of the sampling and the selector"),
    instruction: str = typer.Option(None, help='what "better" means, shown above the clips '
                                    "(default: one per task family, e.g. Reacher: fingertip closer to the target)"),
    n_classes: int = typer.Option(None, "--n-classes", min=2, max=9,
                                  help="rating mode: single clips rated 1 .. N on the page (RbRL) instead of pairs"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing --out queue file"),
) -> None:
    """Make a queue file of candidate segment pairs (or, with --n-classes, single clips to rate), with
    simulator states, from an offline dataset."""
    from pbrl.label.queue import queue_from_file  # lazy: torch, gymnasium (start-up)

    try:
        check_writable_file(out, "queue file --out", overwrite=overwrite)
        q = queue_from_file(dataset, pairs, segment_length, task_id=task, selector=selector, n_candidates=candidates,
                            reward_model=reward_model, seed=seed, instruction=instruction, n_classes=n_classes)
        q.save(out)
    except (ValueError, OSError, TypeError) as e:
        _fail(e)
    what = "pairs" if q.mode == "pairs" else f"clips to rate 1 .. {q.n_classes}"
    console.print(f"wrote {out}: {len(q)} {what} of {q.task_id}, H={q.segment_length}", highlight=False)
    console.print(f"instruction: {q.instruction}", highlight=False)
    console.print(f"next: pbrl label serve {out}")


@label_app.command("serve")
def serve_cmd(
    queue: Path = typer.Argument(None, help="queue file from `pbrl label queue` (omit to serve only HumanTeacher queries)"),
    db: Path = typer.Option(None, help="SQLite answers file (default: <queue>.labels.sqlite)"),
    host: str = typer.Option("127.0.0.1", help="address to bind; anything but loopback requires a token"),
    port: int = typer.Option(8000, min=0, max=65535),
    annotators: int = typer.Option(1, "--annotators", min=1, help="annotators per pair"),
    token: str = typer.Option(None, envvar="PBRL_LABEL_TOKEN", help="token to require (default: generated off loopback)"),
    task: str = typer.Option(None, help="task id for HumanTeacher queries when there is no queue"),
    cache_dir: Path = typer.Option(None, help="clip cache folder (default: <db>.clips)"),
    width: int = typer.Option(320, help="clip width (even)"),
    height: int = typer.Option(240, help="clip height (even)"),
    render: bool = typer.Option(True, help="render clips in the background (--no-render: serve cached clips only)"),
    shadows: bool = typer.Option(None, "--shadows/--no-shadows", help="shadows and reflections (default: off under OSMesa)"),
) -> None:
    """Serve the labelling page: two clips side by side, arrow keys to answer (a rating queue: one clip, keys
    1 .. N); answers go to SQLite."""
    from pbrl.label.server import serve  # lazy: the label extra (FastAPI), torch

    try:
        serve(queue, db=db, host=host, port=port, cache_dir=cache_dir, annotators_per_pair=annotators, token=token,
              task_id=task, width=width, height=height, render=render, shadows=shadows, echo=console.print)
    except (ValueError, OSError) as e:
        _fail(e)


@label_app.command("export")
def export_cmd(
    queue: Path = typer.Argument(..., help="the queue file the server was started with"),
    out: Path = typer.Option(..., "-o", "--out", help="PreferenceDataset (or, for a rating queue, RatingDataset) file (.h5)"),
    db: Path = typer.Option(None, help="SQLite answers file (default: <queue>.labels.sqlite)"),
    mode: str = typer.Option("majority", help="majority (one label per pair) or per-annotator (one row per answer)"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing --out file"),
) -> None:
    """Write the answers as a PreferenceDataset (label 1.0 = right clip preferred), ready for every agent; a
    rating queue's as a RatingDataset (key k = class k - 1), for `pbrl train offline --labels`."""
    from pbrl.label.export import export_labels  # lazy: torch, gymnasium (start-up)

    try:
        check_writable_file(out, "--out file", overwrite=overwrite)
        ds = export_labels(db or queue.with_suffix(".labels.sqlite"), queue, out, mode=mode)
    except (ValueError, OSError) as e:
        _fail(e)
    console.print(f"wrote {out}: {ds!r}")
