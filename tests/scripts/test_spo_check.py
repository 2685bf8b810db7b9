"""scripts/spo_check.py: the smoke run trains SPO and PrefPPO with the three teachers, counts labels, writes the
table and figure; a rerun skips finished runs; the head-to-head follows each teacher's rule; the
credit-assignment diagnostics; bad sizes are one clear error before any work."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))


def test_smoke_run_trains_both_agents_with_the_three_teachers_and_resumes_per_run(tmp_path, capsys):
    sc = importlib.import_module("spo_check")
    res = sc.main(["--smoke", "--seeds", "0", "--out", str(tmp_path)])
    assert set(res["runs"]) == {"oracle", "intransitive", "last_step"}
    for teacher in sc.TEACHERS:
        spo, ppo = res["runs"][teacher]["spo"]["0"], res["runs"][teacher]["pref_ppo"]["0"]
        # 2 envs x 2 rollouts of one 200-step episode each: 4 episodes against queues of 0, 1, 2, 3
        assert spo["asked"] == 6 and spo["labels"] == 6
        assert 0 < ppo["asked"] <= 40 and len(spo["curve"]) == 2
        assert 0.0 <= res["h2h"][teacher]["0"] <= 1.0
    saved = json.loads((tmp_path / "spo_check.json").read_text())
    assert saved["runs"] == res["runs"] and (tmp_path / "spo_check.png").exists()
    # a rerun skips every finished run; a missing one (a run killed before its file was written) is run again
    (tmp_path / "runs" / "last_step__spo__s0.json").unlink()
    capsys.readouterr()
    again = sc.main(["--smoke", "--seeds", "0", "--out", str(tmp_path)])
    log = capsys.readouterr().out
    assert log.count("done before, skipped") == 5 and "last_step spo seed 0: return" in log
    assert again["runs"]["oracle"] == res["runs"]["oracle"]


def _episode(rewards):
    r = np.asarray(rewards, np.float32)
    return {"obs": np.zeros((len(r), 3), np.float32), "act": np.zeros((len(r), 1), np.float32), "reward": r}


def test_head_to_head_follows_each_teachers_rule():
    """SPO's episode has the lower return but the higher last step: the oracle prefers PrefPPO's, the last-step
    teacher SPO's (the check used to judge every teacher without a ``preference`` by the return)."""
    sc = importlib.import_module("spo_check")
    spo, ppo = [_episode([-5.0, -5.0, -0.1])], [_episode([-1.0, -1.0, -2.0])]
    assert sc.head_to_head("oracle", spo, ppo) == 0.0
    assert sc.head_to_head("last_step", spo, ppo) == 1.0
    # the population: the return-seeker and the finish-judge disagree, equal energy ties: (0 + 0.5 + 1) / 3
    assert sc.head_to_head("intransitive", spo, ppo) == pytest.approx(0.5)


def test_flat_return_scores_a_unit_by_its_true_return(tmp_path):
    sc = importlib.import_module("spo_check")
    unit = (np.zeros((4, 3)), np.zeros((4, 1)), np.array([-1.0, -2.0, -3.0, -4.0]))
    assert sc._flat_return_score(None, unit, 0, 4) == pytest.approx(-10.0)
    assert sc._flat_return_score(None, unit, 1, 3) == pytest.approx(-5.0)  # a unit's part: its steps [1, 3)
    res = sc.main(["--smoke", "--diagnostics", "--seeds", "0", "--out", str(tmp_path)])
    assert set(res["runs"]["oracle"]) == {"ppo_true", "flat_return"}
    assert all(r["0"]["asked"] == 0 for r in res["runs"]["oracle"].values())  # neither asks a teacher


def test_bad_sizes_are_one_clear_error(tmp_path, capsys):
    sc = importlib.import_module("spo_check")
    for argv, msg in ((["--rollouts", "0"], "--rollouts must be >= 1"), (["--label-ratio", "-1"], "--label-ratio must be > 0")):
        with pytest.raises(SystemExit) as e:
            sc.main([*argv, "--out", str(tmp_path / "x")])
        assert e.value.code == 2 and msg in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
