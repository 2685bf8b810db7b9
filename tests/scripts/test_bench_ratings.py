"""scripts/bench_ratings.py: a --quick study end to end (JSON, plot, table at equal human actions) and its
argument checks."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import load_script


@pytest.fixture(scope="module")
def bench():
    return load_script("bench_ratings")


def test_quick_study_writes_json_plot_and_a_table_at_equal_human_actions(bench, tmp_path, capsys):
    res = bench.main(["--quick", "--out", str(tmp_path / "b")])
    saved = json.loads((tmp_path / "b" / "bench_ratings.json").read_text())
    assert (tmp_path / "b" / "bench_ratings.png").stat().st_size > 10_000
    assert [r["feedback"] for r in saved["table"]] == ["pairs", "ratings n=3"]
    by = {r["feedback"]: r for r in saved["runs"]}
    # one pair is two clips, one rating one: the same 40 human actions
    assert by["pairs"]["labels"] == 20 and by["ratings n=3"]["labels"] == 40
    assert all(r["actions"] == 40 for r in saved["runs"])
    for r in saved["runs"]:
        assert 0.0 <= r["pair_accuracy"] <= 1.0 and -1.0 <= r["rank_correlation"] <= 1.0
        assert np.isfinite(r["mean_return"]) and r["cpu_s"] > 0
    assert res["table"] == saved["table"]
    out = capsys.readouterr().out
    assert "| feedback | human actions |" in out and "| ratings n=3 | 40 | 40 |" in out


@pytest.mark.parametrize("argv", [["--actions", "1"], ["--n-classes", "1"], ["--task", "mujoco/Nope-v5"],
                                  ["--seeds", "0"]])
def test_bad_arguments_stop_before_any_work(bench, argv):
    with pytest.raises(SystemExit):
        bench.parse_args(argv)
