"""scripts/bench_gating.py: its baseline is the feedback study's PEBBLE config, key for key (so those runs are
reused, not rerun), a baseline run with another config is refused, the per-round skipped share, bad flags; and
scripts/investigations/gate_spread.py on a tiny run's checkpoints."""

from __future__ import annotations

import csv
import json

import pytest
from helpers import load_script


@pytest.fixture(scope="module")
def gating():
    return load_script("bench_gating")


def _plain(points) -> dict[str, dict]:
    return {p.name: json.loads(json.dumps(p.config)) for p in points}


def test_the_baseline_is_the_feedback_studys_pebble_config_and_only_the_selector_differs(gating):
    feedback = load_script("bench_feedback")
    a = gating.parse_args(["--seeds", "5"])
    base = _plain(gating.baseline_config(a))
    fb = _plain(feedback.build_grid(feedback.parse_args([])))
    assert len(base) == 5 and all(fb[name] == cfg for name, cfg in base.items())
    gated = _plain(gating.build_grid(a))
    assert len(gated) == 5
    for name, cfg in gated.items():
        assert name.startswith("pebble-gated_disagreement__metaworld_button-press-v3_goal_hidden__oracle__b1000__s")
        twin = base[name.replace("pebble-gated_disagreement__", "pebble__")]
        assert {k for k in cfg if cfg[k] != twin[k]} == {"selector", "selector_kwargs"}
        assert cfg["selector"] == "gated_disagreement" and cfg["selector_kwargs"] == {"epsilon": gating.DEFAULT_EPSILON}
    thompson = _plain(gating.build_grid(gating.parse_args(["--selectors", "thompson", "--seeds", "1"])))
    assert [c["selector_kwargs"] for c in thompson.values()] == [{}]


def _baseline_csv(path, name, cfg):
    path.mkdir(parents=True)
    with open(path / "runs.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["run", "status", "config", "metrics"])
        w.writeheader()
        w.writerow({"run": name, "status": "finished", "config": json.dumps(cfg),
                    "metrics": json.dumps({"labels": 1000, "final": {"success_rate": 0.4, "mean_return": 1.0}})})


def test_a_baseline_run_with_another_config_is_refused(gating, tmp_path):
    a = gating.parse_args(["--seeds", "1", "--baseline", str(tmp_path / "same")])
    point = gating.baseline_config(a)[0]
    _baseline_csv(tmp_path / "same", point.name, point.config)
    assert [r.name for r in gating._baseline_records(a)] == [point.name]
    a.baseline = str(tmp_path / "other")
    _baseline_csv(tmp_path / "other", point.name, {**point.config, "feedback_per_session": 100})
    with pytest.raises(ValueError, match="feedback_per_session"):
        gating._baseline_records(a)


def test_skipped_share_per_round_from_the_asked_column(gating):
    from pbrl.app.report import RunRecord

    cfg = {"selector": "gated_disagreement", "total_timesteps": 50_000, "learner_kwargs": {}, "agent_kwargs": {},
           "feedback_per_session": 125, "total_feedback": 1000}
    asked = {0: 0, 5000: 0, 10_000: 125, 15_000: 175, 20_000: 175, 25_000: 300, 50_000: 300}
    rec = RunRecord(path=None, config=cfg, status="finished", metrics=None,
                    curve=[{"step": s, "labels": v, "asked": v} for s, v in asked.items()])
    rounds = gating._rounds(rec, 125, 1000)
    assert [(r["step"], r["asked"]) for r in rounds] == [(10_000, 125), (15_000, 50), (20_000, 0), (25_000, 125)]
    assert [r["skipped_share"] for r in rounds] == [0.0, 0.6, 1.0, 0.0]
    assert [r["uniform"] for r in rounds] == [True, False, False, False]


@pytest.mark.parametrize("argv, msg", [(["--selectors", "disagreement"], "comes from --baseline"),
                                       (["--selectors", "gated_random"], "choose from"),
                                       (["--epsilon", "1.5"], "--epsilon must be in"),
                                       (["--task", "metaworld/nope-v3"], "nope")])
def test_bad_flags_one_line_exit_2(gating, argv, msg, capsys):
    with pytest.raises(SystemExit) as e:
        gating.parse_args(argv)
    assert e.value.code == 2 and msg in capsys.readouterr().err


TINY = {"segment_length": 10, "checkpoint_every": 100,
        "agent_kwargs": {"unsup_steps": 50, "fit_kwargs": {"epochs": 2}},
        "learner_kwargs": {"learning_starts": 50, "batch_size": 32, "policy_kwargs": {"net_arch": [16]}},
        "reward_model_kwargs": {"hidden": [16]}}


@pytest.mark.slow
def test_a_tiny_study_reuses_the_feedback_studys_baseline_and_gate_spread_reads_it(gating, tmp_path, capsys):
    common = ["--steps", "300", "--feedback-every", "100", "--eval-every", "150", "--n-eval-episodes", "1",
              "--workers", "1", "--seeds", "1", "--set", json.dumps(TINY)]
    fb_out = tmp_path / "feedback"
    load_script("bench_feedback").main(["--tasks", "mujoco/Reacher-v5", "--agents", "pebble", "--budgets", "20",
                                        "--std-agents", "--out", str(fb_out), *common])
    res = gating.main(["--task", "mujoco/Reacher-v5", "--budget", "20", "--epsilon", "0.5", "--baseline", str(fb_out),
                       "--out", str(tmp_path / "gating"), *common])
    base, gated = res["selectors"]["disagreement"], res["selectors"]["gated_disagreement"]
    assert [r["seed"] for r in base] == [0] and base[0]["labels_used"] == 20
    assert gated[0]["labels_used"] <= gated[0]["labels_asked"] <= 20
    assert res["baseline"]["runs"] == ["pebble__mujoco_Reacher-v5__oracle__b20__s0"]
    assert (tmp_path / "gating" / "gating.png").stat().st_size > 10_000
    assert "| gated_disagreement | 0 |" in capsys.readouterr().out
    rows = load_script("gate_spread").measure(fb_out / "pebble__mujoco_Reacher-v5__oracle__b20__s0", repeats=1)
    assert rows and all(0.0 <= v <= 1.0 for r in rows for v in r["passed"].values())
    assert all(r["passed"]["0.02"] >= r["passed"]["0.2"] for r in rows)
