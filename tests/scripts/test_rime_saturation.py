"""scripts/investigations/rime_saturation.py: the smoke run replays the three starting points from one pre-training, the
no-warm-start variant starts from the untrained model, and the outputs exist; bad sizes are one clear error."""

from __future__ import annotations

import json

import pytest
from helpers import load_script


def test_smoke_run_replays_every_variant(tmp_path):
    rs = load_script("rime_saturation")
    res = rs.main(["--smoke", "--seeds", "0", "--labels", "20", "--sessions", "2", "--held-out", "20",
                   "--out", str(tmp_path)])
    r = res[0]
    assert r["warm_start_updates"] > 0  # pre-training ran RIME's warm start
    assert list(r["variants"]) == list(rs.VARIANTS)
    for rows in r["variants"].values():
        assert [row["session"] for row in rows] == [0, 1, 2]
        assert all(0.0 <= row["saturated"] <= 1.0 and 0.0 <= row["held_out_accuracy"] <= 1.0 for row in rows)
    v = r["variants"]
    # both warm-started variants start from the same weights; the untrained model is elsewhere
    assert v["warm start, one Adam"][0]["median_pre"] == v["warm start, moments cleared"][0]["median_pre"]
    assert v["no warm start"][0]["median_pre"] != v["warm start, one Adam"][0]["median_pre"]
    saved = json.loads((tmp_path / "rime_saturation.json").read_text())
    assert saved["results"][0]["seed"] == 0 and (tmp_path / "rime_saturation.png").exists()
    again = rs.main(["--report-only", "--out", str(tmp_path)])  # the table from the saved results
    assert again == saved["results"]


def test_bad_sizes_are_one_clear_error(tmp_path, capsys):
    rs = load_script("rime_saturation")
    with pytest.raises(SystemExit) as e:
        rs.main(["--labels", "3", "--sessions", "10", "--out", str(tmp_path / "x")])
    assert e.value.code == 2 and not (tmp_path / "x").exists()
    assert "--labels" in capsys.readouterr().err
