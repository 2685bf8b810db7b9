"""The ``pbrl`` command.

Sub-commands live in their own modules and are attached here; every command has ``--help``.
"""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from pbrl.app.cli_errors import ErrorHandlingGroup, set_debug

app = typer.Typer(
    name="pbrl",
    help="Preference-based reinforcement learning for robotics and continuous control.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=ErrorHandlingGroup,
)
console = Console()


@app.callback()
def main_callback(
    debug: bool = typer.Option(False, "--debug", help="show the full traceback of an error (also PBRL_DEBUG=1)"),
) -> None:
    """Preference-based reinforcement learning for robotics and continuous control.

    Errors print one line naming the problem and the fix (exit code 2); `pbrl --debug ...` shows tracebacks.
    """
    set_debug(debug)


@app.command("tasks")
def tasks_cmd(
    prefix: str = typer.Argument(None, help="only ids starting with this, e.g. 'mujoco' or 'metaworld'"),
) -> None:
    """List the registered task ids (gymnasium MuJoCo, Meta-World MT50, DeepMind Control with the dmc extra)."""
    from pbrl.envs.registry import TASK_OPTIONS, episode_length, list_tasks  # lazy: gymnasium (start-up)

    ids = list_tasks(prefix)
    table = Table(title=f"{len(ids)} tasks")
    table.add_column("task id")
    table.add_column("episode length", justify="right")
    for t in ids:
        table.add_row(t, str(episode_length(t)))
    console.print(table)
    for suite, opts in TASK_OPTIONS.items():
        if any(i.startswith(f"{suite}/") for i in ids):
            spec = ",".join(f"{k}={'|'.join(v)}" for k, v in opts.items())
            console.print(f"{suite} options (after a colon, defaults first): {suite}/<task>:{spec}", highlight=False,
                          soft_wrap=True)


@app.command("demo")
def demo_cmd(
    teachers: bool = typer.Option(False, "--teachers", help="only the teacher-agreement table"),
    out: str = typer.Option("pbrl_demo", "--out", "-o", help="folder of the demo's runs and its plot"),
    task: str = typer.Option("mujoco/HalfCheetah-v5", help="task of the --teachers table (see `pbrl tasks`)"),
    episodes: int = typer.Option(4, min=1, help="random-policy episodes for the --teachers table"),
    pairs: int = typer.Option(2000, min=1, help="segment pairs the teachers label (--teachers)"),
    segment_length: int = typer.Option(50, min=1, help="segment length H of the --teachers table"),
    seed: int = typer.Option(0, help="seed for the envs, the segments, the teachers and the runs"),
) -> None:
    """What pbrl is for, in a few minutes on 2 CPU cores: on one Meta-World task and a noisy dataset, IQL
    trained on the true reward and BC beside the same IQL learning only from a scripted teacher's answers
    (MR+IQL at three label budgets), three seeds each; the B-Pref teachers' table, and one plot (learning
    curves + return against labels used, bands over seeds). `--teachers` prints only a teachers' table."""
    from pbrl.app.demo import run_tour, teacher_agreement_table, teacher_table  # lazy: torch (start-up)

    if teachers:
        rows = teacher_agreement_table(task, episodes, pairs, segment_length, seed, console=console)
        console.print(teacher_table(rows, f"B-Pref teachers on {pairs} segment pairs of {task} (H={segment_length})"))
        return
    run_tour(out, console=console, seed=seed)


from pbrl.app.cli_label import label_app  # noqa: E402

app.add_typer(label_app, name="label")

from pbrl.app.cli_dataset import dataset_app  # noqa: E402

app.add_typer(dataset_app, name="dataset")

from pbrl.app.cli_run import register as register_run_commands  # noqa: E402

register_run_commands(app)  # train, eval, report, sweep


def main() -> None:
    """Entry point of the ``pbrl`` console script."""
    app()


if __name__ == "__main__":
    main()
