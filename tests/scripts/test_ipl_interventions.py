"""scripts/investigations/ipl_interventions.py: every intervention trains and is evaluated on real files; the
fall pairs are found; the centred chi^2 changes IPL's critic loss by chi^2(r - r0) - chi^2(r) alone; bad input is
one line."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import load_script


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from pbrl.envs.collect import collect
    from pbrl.envs.d4rl import save_d4rl
    from pbrl.envs.labelling import label_dataset

    d = tmp_path_factory.mktemp("hop")
    ds = collect("mujoco/Hopper-v5", "random", n_steps=600, seed=0)  # random Hopper falls within tens of steps
    save_d4rl(ds, d / "mr.hdf5")
    label_dataset(ds, "oracle", 16, segment_length=8, seed=1).save(d / "mr.prefs_oracle_500.h5")
    return d


def test_every_intervention_runs_and_resumes(files, tmp_path, capsys):
    mod = load_script("ipl_interventions")
    argv = ["--dataset", str(files / "mr.hdf5"), "--steps", "4", "--eval-every", "2", "--eval-episodes", "1",
            "--hidden", "16", "16", "--seeds", "0", "--out", str(tmp_path)]
    runs = mod.main(argv)
    assert [r["intervention"] for r in runs] == list(mod.INTERVENTIONS)
    for r in runs:
        assert [row["step"] for row in r["rows"]] == [2, 4] and all(np.isfinite(row["return"]) for row in r["rows"])
    by = {r["intervention"]: r for r in runs}
    assert by["none"]["dropped_pairs"] == 0 and by["none"]["pairs"] == 16
    assert by["no-fall-pairs"]["pairs"] == 16 - by["no-fall-pairs"]["dropped_pairs"]
    assert by["chi2-centre"]["r0"] == 0.5 and by["none"]["r0"] is None
    assert by["fall-anchor"]["fall_weight"] == 100.0 and by["none"]["fall_weight"] is None
    mtimes = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*.json")}
    assert mod.main(argv) == runs  # finished runs are not run again
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*.json")} == mtimes
    assert mod.main(["--report-only", "--out", str(tmp_path)]) == runs
    assert "| chi2-centre (r0 = 0.5) | 0 | 16 |" in capsys.readouterr().out


def test_fall_pairs_are_the_pairs_with_a_terminal_step(files):
    from pbrl.envs.datasets import load_dataset
    from pbrl.preferences import PreferenceDataset

    mod = load_script("ipl_interventions")
    ds, prefs = load_dataset(files / "mr.hdf5"), PreferenceDataset.load(files / "mr.prefs_oracle_500.h5")
    term = np.asarray(ds.terminals, bool)
    starts = np.asarray(prefs.a.index), np.asarray(prefs.b.index)
    want = np.array([term[a:a + 8].any() or term[b:b + 8].any() for a, b in zip(*starts)])
    assert mod.fall_pairs(prefs, ds).tolist() == want.tolist()


def test_the_centred_chi2_changes_the_loss_by_the_shifted_chi2_alone(files):
    from pbrl.envs.datasets import load_dataset
    from pbrl.preferences import PreferenceDataset

    mod = load_script("ipl_interventions")
    ds, prefs = load_dataset(files / "mr.hdf5"), PreferenceDataset.load(files / "mr.prefs_oracle_500.h5")
    losses = {}
    for name, r0 in (("none", 0.0), ("chi2-centre", 0.5)):
        agent = mod.make_agent(name, ds, 0, r0, [16, 16])
        agent._start_fit(ds, prefs, 1)
        flat, p, n_fb, shape = agent._flat_batch(agent._sample())
        next_v = agent._next_value(flat["next"], p)
        loss, logs = agent._ipl_critic_loss(flat, p, n_fb, shape, next_v)
        losses[name] = (loss, logs, flat, next_v, n_fb, agent)
    base, centred = losses["none"][0], losses["chi2-centre"][0]
    _, logs, flat, next_v, n_fb, agent = losses["chi2-centre"]
    r = logs["q"] - agent.gamma * (1 - flat["done"]) * next_v
    from pbrl.agents.ipl import chi2_regularizer

    # the same seed draws the same batch and the same initial critic: the two losses differ by the shift alone
    shift = chi2_regularizer(r - 0.5, agent.chi2_coeff, n_pref=n_fb, replay_weight=agent.replay_weight) \
        - chi2_regularizer(r, agent.chi2_coeff, n_pref=n_fb, replay_weight=agent.replay_weight)
    assert float(centred - base) == pytest.approx(float(shift), rel=1e-5)
    assert float(shift) != 0.0


def test_bad_input_is_one_clear_error(tmp_path, capsys):
    mod = load_script("ipl_interventions")
    for argv, word in ((["--dataset", str(tmp_path / "none.hdf5")], "--dataset"),
                       (["--report-only"], "no finished run")):
        with pytest.raises(SystemExit) as e:
            mod.main([*argv, "--out", str(tmp_path / "x")])
        err = capsys.readouterr().err.strip()
        assert e.value.code == 2 and word in err and len(err.splitlines()) == 1 and not (tmp_path / "x").exists()


def test_the_fall_anchor_weights_the_unlabelled_falls_chi2_alone(files):
    import torch

    from pbrl.envs.datasets import load_dataset
    from pbrl.preferences import PreferenceDataset

    mod = load_script("ipl_interventions")
    # by hand: two heads, 2 preference steps then 4 unlabelled ones, the 2nd and 4th unlabelled ones falls
    r = torch.tensor([[1.0, 2.0, 1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 2.0, 1.0, 0.0]])
    done = torch.tensor([1.0, 1.0, 0.0, 1.0, 0.0, 1.0])  # flags on preference steps are not counted
    # per transition mean over heads of r^2: unlabelled [5, 4, 5, 8]; falls' sum 12 over 4 -> 3; x (10-1) x c x w
    assert float(mod.fall_anchor_term(r, done, 2, 0.5, 0.5, 10.0)) == pytest.approx(9 * 0.5 * 0.5 * 3.0)
    assert float(mod.fall_anchor_term(r, done, 2, 0.5, 0.5, 1.0)) == 0.0
    ds, prefs = load_dataset(files / "mr.hdf5"), PreferenceDataset.load(files / "mr.prefs_oracle_500.h5")
    losses = {}
    for name in ("none", "fall-anchor"):
        agent = mod.make_agent(name, ds, 0, 0.5, [16, 16], fall_weight=50.0)
        agent._start_fit(ds, prefs, 1)
        flat, p, n_fb, shape = agent._flat_batch(agent._sample())
        next_v = agent._next_value(flat["next"], p)
        losses[name] = agent._ipl_critic_loss(flat, p, n_fb, shape, next_v) + (flat, n_fb, agent, next_v)
    (base, _, *_), (anchored, logs, flat, n_fb, agent, next_v) = losses["none"], losses["fall-anchor"]
    assert flat["done"][n_fb:].sum() > 0  # random Hopper falls often: the batch holds unlabelled falls
    rr = logs["q"] - agent.gamma * (1 - flat["done"]) * next_v
    want = mod.fall_anchor_term(rr, flat["done"], n_fb, agent.chi2_coeff, agent.replay_weight, 50.0)
    assert float(anchored - base) == pytest.approx(float(want), rel=1e-5) and float(want) > 0
