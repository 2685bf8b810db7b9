"""scripts/bench_speed.py --quick runs end to end and writes its JSON and plot (timing itself is not tested)."""

from __future__ import annotations

import json

import pytest
from helpers import load_script

pytestmark = pytest.mark.usefixtures("one_thread")


def test_bench_speed_quick_writes_json_and_plot(tmp_path):
    mod = load_script("bench_speed")
    res = mod.main(["--quick", "--out", str(tmp_path), "--seconds", "0.05"])
    data = json.loads((tmp_path / "bench_speed.json").read_text())
    assert (tmp_path / "bench_speed.png").stat().st_size > 0
    assert data["peak_gflops"]["1"] > 0 and data["n_seeds"] == 2 == res["n_seeds"]
    rows = {r["agent"]: r for r in data["agents"]}
    assert set(rows) == {"iql", "bc"}
    for r in rows.values():
        assert r["gflop_per_update"] > 0 and r["updates_per_s"] > 0 and r["k_vs_1_time_ratio"] > 0
        assert 0 < r["share_of_peak"]


def test_a_speed_compare_child_measures_with_the_shared_helpers(tmp_path):
    """speed_compare.py's children load pbrl.app.speed by its file (scripts never import each other)."""
    import subprocess
    import sys

    out = tmp_path / "r.json"
    spec = {"kind": "offline", "agent": "bc", "threads": 1, "seconds": 0.05, "transitions": 2000, "pairs": 20}
    proc = subprocess.run([sys.executable, str(load_script("bench_speed").SPEED_COMPARE), "--child", json.dumps(spec),
                           "--child-out", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(out.read_text())
    assert res["updates_per_cpu_s"] > 0 and res["gflop_per_update"] > 0 and len(res["losses"]) == 3


def test_the_peer_bc_child_runs_the_authors_bc_step_on_pbrls_bc_shapes(tmp_path):
    """``alg: bc`` loads research/algs/bc.py's BehaviorCloning from the peer tree and feeds it pbrl's BC batch
    (256 transitions, Hopper's 11-d observations and 3-d actions); a stand-in peer records what it got."""
    import subprocess
    import sys

    peer = tmp_path / "peer"
    (peer / "research" / "networks").mkdir(parents=True)
    (peer / "research" / "algs").mkdir(parents=True)
    (peer / "research" / "networks" / "common.py").write_text(
        "import torch\n"
        "class MLP(torch.nn.Sequential):\n"
        "    def __init__(self, i, o, hidden_layers, dropout, output_act):\n"
        "        super().__init__(torch.nn.Linear(i, hidden_layers[0]), torch.nn.Linear(hidden_layers[0], o), output_act())\n")
    (peer / "research" / "algs" / "bc.py").write_text(
        "import gym, json, os\n"
        "from .off_policy_algorithm import OffPolicyAlgorithm\n"
        "class BehaviorCloning(OffPolicyAlgorithm):\n"
        "    def train_step(self, batch, step, total_steps):\n"
        "        assert isinstance(self.processor.action_space, gym.spaces.Box)\n"
        "        loss = ((self.network.actor(batch['obs']) - batch['action']) ** 2).mean()\n"
        "        self.optim['actor'].zero_grad(); loss.backward(); self.optim['actor'].step()\n"
        "        with open(os.environ['PEER_LOG'], 'w') as f:\n"
        "            json.dump({k: list(v.shape) for k, v in batch.items()}, f)\n")
    out, log = tmp_path / "r.json", tmp_path / "log.json"
    spec = {"kind": "peer", "alg": "bc", "peer": str(peer), "threads": 1, "seconds": 0.05}
    proc = subprocess.run([sys.executable, str(load_script("bench_speed").SPEED_COMPARE), "--child", json.dumps(spec),
                           "--child-out", str(out)], capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "PEER_LOG": str(log)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(out.read_text())["updates_per_cpu_s"] > 0
    assert json.loads(log.read_text()) == {"obs": [256, 11], "action": [256, 3]}
