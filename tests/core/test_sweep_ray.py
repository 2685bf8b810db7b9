"""`pbrl sweep --address` on a real local Ray cluster: a head and one worker node, both on 127.0.0.1.

One 2 x 2 grid (agents bc, mriql x seeds 0, 1; tiny offline runs on collected Reacher data) runs on the
local process pool and then through `pbrl sweep --address`, and the test checks that
(a) the Ray runs' metrics (final return, labels, steps) equal the local backend's, seed for seed;
(c) a trial whose Ray worker process is killed (SIGKILL, mid-run, on the worker node) is retried and
    resumes its run from the newest checkpoint (``FailureConfig(max_failures=...)`` in pbrl.app.sweep);
(b) re-running the sweep skips finished runs (their files untouched) and runs only the missing one.

Slow (a Ray cluster, about a minute on two cores); skipped when Ray Tune is not installed
(``pip install -e '.[sweep]'``).
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("ray.tune")

from typer.testing import CliRunner  # noqa: E402

from pbrl.app.cli import app  # noqa: E402
from pbrl.app.report import build_report  # noqa: E402
from pbrl.app.sweep import expand_grid, run_sweep  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

BASE = {
    "kind": "offline",
    "task": "mujoco/Reacher-v5",
    "total_feedback": 20,
    "segment_length": 10,
    "steps": 1000,
    "eval_every": 500,
    "checkpoint_every": 100,
    "n_eval_episodes": 1,
    "collect_steps": 500,
    "agent_kwargs": {"hidden": [16, 16], "batch_size": 32},
}
AGENTS, SEEDS = ["bc", "mriql"], [0, 1]
TIMING = ("wall_time_s", "cpu_time_s")  # the only metrics that may differ between two runs of one config
RAY = str(Path(sys.executable).with_name("ray"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _procs() -> dict[int, tuple[int, str]]:
    """``{pid: (parent pid, command line)}`` of this user's processes."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            if os.stat(f"/proc/{d}").st_uid != os.getuid():
                continue
            stat = Path(f"/proc/{d}/stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            cmd = Path(f"/proc/{d}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError, IndexError):
            continue
        out[int(d)] = (ppid, cmd)
    return out


def _raylets() -> set[int]:
    return {pid for pid, (_, cmd) in _procs().items() if "/raylet " in cmd or cmd.startswith("raylet")}


def _ray(*args: str, env: dict) -> None:
    res = subprocess.run([RAY, *args], env=env, capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, f"ray {' '.join(args)} failed:\n{res.stdout}\n{res.stderr}"


@pytest.fixture
def ray_cluster():
    """A head node and one worker node (one CPU each) on this machine, started with
    ``--node-ip-address=127.0.0.1`` and the head's address on 127.0.0.1; yields (address, worker raylet pid).

    (Ray on Linux replaces a loopback ``--node-ip-address`` by the machine's own routable address so that
    other hosts could join: ``ray._private.services.resolve_ip_for_localhost``; both nodes still run here.)"""
    tmp = tempfile.mkdtemp(prefix="pbrlray", dir="/tmp")  # short: Ray's socket paths have a length limit
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "MUJOCO_GL": os.environ.get("MUJOCO_GL", "osmesa"),
           "OMP_NUM_THREADS": "1"}
    port = _free_port()
    common = ["--num-cpus=1", "--node-ip-address=127.0.0.1", "--object-store-memory=100000000",
              "--disable-usage-stats"]
    try:
        _ray("start", "--head", f"--port={port}", f"--ray-client-server-port={_free_port()}",
             "--include-dashboard=false", f"--temp-dir={tmp}", *common, env=env)
        head = _raylets()
        _ray("start", f"--address=127.0.0.1:{port}", *common, env=env)
        worker = _raylets() - head
        assert len(worker) == 1, f"cannot tell the worker node's raylet: {worker}"
        yield f"127.0.0.1:{port}", worker.pop()
    finally:
        subprocess.run([RAY, "stop", "--force"], env=env, capture_output=True, timeout=180)
        shutil.rmtree(tmp, ignore_errors=True)


class _KillOnce(threading.Thread):
    """Kill (SIGKILL) the first trial process on the worker node that is mid-run: its run directory has
    a checkpoint and no metrics.json yet. The process is found by its parent (the worker raylet) and the
    run log ``OUT/.<name>.out`` it holds open."""

    def __init__(self, out: Path, raylet: int):
        super().__init__(daemon=True)
        self.out, self.raylet, self.killed, self.stop = out, raylet, None, threading.Event()

    def run(self):
        while not self.stop.is_set() and self.killed is None:
            for pid, (ppid, _) in _procs().items():
                if ppid != self.raylet:
                    continue
                try:
                    files = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
                except OSError:
                    continue
                for f in files:
                    p = Path(f)
                    if p.parent == self.out and p.name.startswith(".") and p.name.endswith(".out"):
                        rd = self.out / p.name[1:-4]
                        if (rd / "checkpoints" / "latest.json").exists() and not (rd / "metrics.json").exists():
                            os.kill(pid, signal.SIGKILL)
                            self.killed = (rd.name, pid)
                            return
            time.sleep(0.05)


def _snapshot(run_dir: Path) -> dict[str, tuple[int, bytes]]:
    return {str(p.relative_to(run_dir)): (p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(run_dir.rglob("*")) if p.is_file()}


def _same_metrics(a: dict, b: dict) -> bool:
    return {k: v for k, v in a.items() if k not in TIMING} == {k: v for k, v in b.items() if k not in TIMING}


def test_sweep_on_a_real_ray_cluster(ray_cluster, tmp_path):
    address, worker_raylet = ray_cluster
    points = expand_grid(BASE, agents=AGENTS, seeds=SEEDS)
    names = sorted(p.name for p in points)
    local = run_sweep(points, tmp_path / "local", backend="local", workers=2, progress=False)
    assert all("error" not in v for v in local.values()), local

    cfg = tmp_path / "base.json"
    cfg.write_text(json.dumps(BASE))
    out = (tmp_path / "ray").resolve()
    args = ["sweep", "-o", str(out), "-c", str(cfg), "--agents", ",".join(AGENTS), "--seeds", "0-1",
            "--address", address]
    killer = _KillOnce(out, worker_raylet)
    killer.start()
    t0 = time.time()
    res = CliRunner().invoke(app, args)
    killer.stop.set()
    print(f"Ray sweep with one killed trial: {time.time() - t0:.1f} s")
    assert res.exit_code == 0, res.output
    assert "4 of 4 runs finished" in res.output

    # (a) every run equals the local backend's: same final evaluation, steps, labels, seed
    assert sorted(p.name for p in out.iterdir() if p.is_dir() and not p.name.startswith("_")) == names
    for n in names:
        m = json.loads((out / n / "metrics.json").read_text())
        assert _same_metrics(m, local[n]), (n, m, local[n])
        assert json.loads((out / n / "status.json").read_text())["state"] == "finished"
    assert json.loads((out / names[2] / "metrics.json").read_text())["labels"] == 20  # mriql used its labels
    rep = build_report([out], score="return", n_resamples=100)  # Tune's records in OUT/_ray are not runs
    assert set(rep["groups"]) == set(AGENTS) and all(g["n_runs"] == 2 for g in rep["groups"].values())

    # (c) the killed trial was retried: it resumed from its checkpoint and still matches the local run
    assert killer.killed is not None, "no trial was mid-run on the worker node; nothing was killed"
    killed = killer.killed[0]
    assert (out / killed / "progress.resume1.csv").exists(), sorted(os.listdir(out / killed))
    assert killer.killed[1] not in _procs()

    # (b) re-running skips the finished runs (files untouched) and runs only the missing one
    shutil.rmtree(out / names[0])
    before = {n: _snapshot(out / n) for n in names[1:]}
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "4 of 4 runs finished" in res.output
    for n in names[1:]:
        assert _snapshot(out / n) == before[n], f"{n} was touched by the re-run"
    assert _same_metrics(json.loads((out / names[0] / "metrics.json").read_text()), local[names[0]])
    assert not (out / names[0] / "progress.resume1.csv").exists()
