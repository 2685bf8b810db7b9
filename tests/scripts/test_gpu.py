"""Device checks: the GPU script's code path on the CPU (always), and CUDA runs where CUDA exists."""

from __future__ import annotations

import pytest
import torch
from helpers import load_script


def test_gpu_check_script_runs_end_to_end_on_the_cpu(tmp_path):
    gpu_check = load_script("gpu_check")
    out = gpu_check.main(["--device", "cpu", "--quick", "--out", str(tmp_path / "g.json")])
    assert out["online"]["ok"] and out["offline"]["ok"] and out["reward_model"]["ok"], out
    assert out["online"]["labels"] > 0 and out["offline"]["action_shape"] == [4, 2]
    assert out["seeds"]["ok"] and out["seeds"]["seeds"] == 2 and out["seeds"]["time_ratio"] > 0, out["seeds"]
    assert (tmp_path / "g.json").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_reward_ensemble_and_an_offline_agent_train_on_cuda(tmp_path):
    gpu_check = load_script("gpu_check")
    out = gpu_check.main(["--device", "cuda", "--quick", "--out", str(tmp_path / "g.json")])
    assert out["online"]["ok"] and out["offline"]["ok"] and out["reward_model"]["ok"], out
