"""scripts/investigations/oppo_context_diagnose.py: where OPPO's z* lies among the dataset's window contexts, and what its
policy does with other contexts, on a tiny bench_offline OPPO run."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import load_script


def test_geometry_of_a_z_star_on_the_best_window():
    diag = load_script("oppo_context_diagnose")
    rng = np.random.default_rng(0)
    z = rng.normal(size=(200, 4))
    best = z[7]
    returns = -np.linalg.norm(z - best, axis=-1)  # the nearer the best window, the better
    g = diag.geometry(z, returns, best.copy(), rng)
    assert g["nearest_distance"] == pytest.approx(0.0)
    assert g["nearest_return_percentile"] == pytest.approx(199 / 200 * 100)
    assert g["spearman_closeness_return"] == pytest.approx(1.0)
    far = diag.geometry(z, returns, best + 50.0, rng)  # out of the contexts' cloud
    assert far["nearest_distance"] > 10 * far["median_pairwise_distance"]
    c = diag.contexts(z, returns, best)
    assert np.allclose(c["best_window"], best) and c["top10_mean"].shape == (4,)


def test_a_tiny_oppo_run_taken_apart(tmp_path):
    bench = load_script("bench_offline")
    diag = load_script("oppo_context_diagnose")
    out = tmp_path / "bench"
    res = bench.main(["--datasets", "collect:mujoco/Reacher-v5:random:600", "--steps", "20", "--eval-every", "20",
                      "--seeds", "0", "--n-pairs", "16", "--segment-length", "10", "--hidden", "16", "16",
                      "--eval-episodes", "1", "--workers", "1", "--no-progress", "--agents", "bc", "oppo",
                      "--out", str(out)])
    assert not res["failures"]
    rows = diag.main(["--out", str(out), "--windows", "40", "--episodes", "1"])
    assert len(rows) == 1  # BC has no context
    r = rows[0]
    assert r["windows"] == 40 and r["context_length"] == 20
    assert r["nearest_distance"] >= 0 and 0 <= r["nearest_return_percentile"] <= 100
    assert -1 <= r["spearman_closeness_return"] <= 1
    assert all(f"{c}_success" in r and f"{c}_return" in r for c in diag.CONTEXTS)
    assert (out / "oppo_context.png").stat().st_size > 0
    # without the saved agent (a fresh checkout) the saved row is kept
    for p in out.glob("*/*/agent.pt"):
        p.unlink()
    assert diag.main(["--out", str(out)]) == json.loads((out / "oppo_context.json").read_text())["runs"]
    with pytest.raises(SystemExit, match="even number"):
        diag.parse_args(["--out", str(out), "--windows", "21"])
