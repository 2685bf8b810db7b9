"""scripts/investigations/query_gating.py: the smoke run fills every selector's rows, a gate that passes nothing asks only the
first (uniform) round, and bad sizes are one clear error before any work."""

from __future__ import annotations

import json

import pytest
from helpers import load_script


def test_smoke_run_records_labels_and_accuracy(tmp_path):
    qg = load_script("query_gating")
    res = qg.main(["--smoke", "--seeds", "0", "--selectors", "uniform", "gated_disagreement", "--epsilon", "0.99",
                   "--out", str(tmp_path)])
    rows = res["results"]["uniform"]["0"]
    assert [r["round"] for r in rows] == [0, 1] and [r["labels"] for r in rows] == [4, 8]
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in rows)
    gated = res["results"]["gated_disagreement"]["0"]
    # no std of probabilities reaches 0.99: only the first, uniform round asks
    assert [r["asked"] for r in gated] == [4, 4] and [r["gated"] for r in gated] == [0, 4]
    saved = json.loads((tmp_path / "query_gating.json").read_text())
    assert saved["results"]["uniform"]["0"] == rows and (tmp_path / "query_gating.png").exists()


def test_bad_sizes_are_one_clear_error(tmp_path, capsys):
    qg = load_script("query_gating")
    for argv, msg in ((["--rounds", "0"], "--rounds must be >= 1"), (["--selectors", "best"], "unknown selector"),
                      (["--epsilon", "2"], "--epsilon must be in")):
        with pytest.raises(SystemExit) as e:
            qg.main([*argv, "--out", str(tmp_path / "x")])
        assert e.value.code == 2 and msg in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
