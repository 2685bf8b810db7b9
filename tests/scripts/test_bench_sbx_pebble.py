"""scripts/investigations/bench_sbx_pebble.py --quick runs both learners end to end and writes its JSON and plot (timing
itself is not tested). Skipped where sbx-rl is not installed (the ``jax`` extra)."""

from __future__ import annotations

import json

import pytest
from helpers import load_script

pytest.importorskip("sbx")


def test_bench_sbx_pebble_quick_writes_json_and_plot(tmp_path):
    mod = load_script("bench_sbx_pebble")
    res = mod.main(["--quick", "--out", str(tmp_path)])
    data = json.loads((tmp_path / "bench_sbx_pebble.json").read_text())
    assert (tmp_path / "bench_sbx_pebble.png").stat().st_size > 0
    assert data["order"] == ["sb3", "sbx"] and res["speedup_sb3_over_sbx"]["run"] > 0
    for lib in ("sb3", "sbx"):
        run = data["runs"][lib][0]
        assert run["steps"] == 400 and run["labels"] == 30 and len(run["sessions"]) == 3
        assert run["parts_s"]["fit"] > 0 and run["parts_s"]["reset_updates"] > 0
        assert abs(sum(run["parts_s"].values()) - run["cpu_s"]) < 1e-6
