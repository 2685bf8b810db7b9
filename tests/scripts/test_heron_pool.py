"""scripts/investigations/heron_pool.py: the smoke run fits a reward on heron labels for both orders and records
the learned reward's correlation with each factor; bad sizes are one clear error before any work."""

from __future__ import annotations

import json

import pytest
from helpers import load_script


def test_smoke_run_measures_both_orders(tmp_path):
    hp = load_script("heron_pool")
    res = hp.main(["--smoke", "--out", str(tmp_path)])
    assert [r["order"] for r in res["results"]] == list(hp.ORDERS)
    for r in res["results"]:
        assert 0 < r["labels"] <= 8 and all(-1.0 <= r[f"corr_{k}"] <= 1.0 for k in hp.FACTORS)
    assert json.loads((tmp_path / "heron_pool.json").read_text())["results"] == res["results"]


def test_bad_sizes_are_one_clear_error(tmp_path, capsys):
    hp = load_script("heron_pool")
    with pytest.raises(SystemExit) as e:
        hp.main(["--scales", "0", "--out", str(tmp_path / "x")])
    assert e.value.code == 2 and "--scales must be > 0" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
