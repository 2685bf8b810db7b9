"""Bad input to a script exits with status 2 and one ``error:`` line, as every ``pbrl`` command does; scripts once
raised ``SystemExit("error: ...")``, which exits with status 1."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from pbrl.app.bench import BadInput

ROOT = Path(__file__).resolve().parents[2]


def test_bad_input_prints_one_line_and_exits_2(capsys):
    with pytest.raises(SystemExit) as e:
        raise BadInput("--steps must be >= 1, got 0")
    assert e.value.code == 2 and str(e.value) == "--steps must be >= 1, got 0"
    assert capsys.readouterr().err == "error: --steps must be >= 1, got 0\n"


def test_no_script_exits_with_a_message_as_its_status():
    pattern = re.compile(r"SystemExit\(\s*f?[\"']")
    found = [f"{p.relative_to(ROOT)}:{i}" for d in ("scripts", "pbrl", "agents", "envs") for p in (ROOT / d).rglob("*.py")
             for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if pattern.search(line)]
    assert not found, f"SystemExit with a message exits with status 1; raise pbrl.app.bench.BadInput instead: {found}"


@pytest.mark.parametrize("argv, says", [
    (["scripts/make_datasets.py", "--mujoco", "--metaworld"], "no tasks given"),
    (["scripts/make_datasets.py", "--steps", "0"], "--steps must be >= 1"),
])
def test_make_datasets_bad_input_exits_2_before_any_work(tmp_path, argv, says):
    res = subprocess.run([sys.executable, *argv, "--out-dir", str(tmp_path / "d")], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 2 and says in res.stderr and res.stderr.count("\n") == 1
    assert not (tmp_path / "d").exists()
