"""scripts/ipl_peer.py: the authors' IPL and pbrl's train on the same batches of a tiny Hopper dataset; the peer's
batches are pbrl IPL's own draws in the authors' format; without the authors' code it stops with one line."""

from __future__ import annotations

import importlib
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
ipl_peer = importlib.import_module("ipl_peer")

needs_peer = pytest.mark.skipif(ipl_peer.peer_problem(ipl_peer.DEFAULT_PEER) is not None,
                                reason=f"the IPL authors' code is not at {ipl_peer.DEFAULT_PEER} ({ipl_peer.PEER_URL})")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from pbrl.envs.collect import collect
    from pbrl.envs.d4rl import save_d4rl
    from pbrl.envs.labelling import label_dataset

    d = tmp_path_factory.mktemp("hop")
    ds = collect("mujoco/Hopper-v5", "random", n_steps=600, seed=0)
    save_d4rl(ds, d / "mr.hdf5")
    label_dataset(ds, "oracle", 16, segment_length=10, seed=1).save(d / "mr.prefs_oracle_500.h5")
    return d


def _load(files):
    from pbrl.envs.datasets import load_dataset
    from pbrl.preferences import PreferenceDataset

    return load_dataset(files / "mr.hdf5"), PreferenceDataset.load(files / "mr.prefs_oracle_500.h5")


def test_peer_batches_are_pbrl_ipls_own_draws_in_the_authors_format(files):
    from pbrl.agents import IPL

    ds, prefs = _load(files)
    agent = IPL.from_dataset(ds, seed=3, normalize_obs=False, pref_batch_size=4, segment_crop=6, batch_size=16)
    agent._start_fit(ds, prefs, 1)
    peer = ipl_peer.PeerBatches(ds, prefs, seed=3, pref_batch_size=4, segment_crop=6, batch_size=16)
    for _ in range(3):
        ours = {k: v.numpy() for k, v in agent._sample().items()}
        replay, fb = peer.sample()
        assert fb["obs_1"].shape == fb["obs_2"].shape == (4, 7, ds.obs_dim)
        assert fb["action_1"].shape == fb["action_2"].shape == (4, 7, ds.act_dim)
        assert fb["label"].shape == fb["discount"].shape == (4,)
        for k, side in (("1", "a"), ("2", "b")):
            np.testing.assert_array_equal(fb[f"obs_{k}"][:, :-1], ours[f"obs_{side}"])  # the same pairs and crops
            np.testing.assert_array_equal(fb[f"obs_{k}"][:, 1:], ours[f"next_{side}"])  # the last step: a successor
            np.testing.assert_allclose(fb[f"action_{k}"][:, :-1], ours[f"act_{side}"], atol=1e-5)
        np.testing.assert_array_equal(fb["label"], ours["label"])
        np.testing.assert_array_equal(replay["obs"], ours["replay_observations"])
        np.testing.assert_array_equal(replay["next_obs"], ours["replay_next_observations"])
        np.testing.assert_allclose(replay["discount"], 0.99 * (1.0 - ours["replay_dones"]), rtol=1e-6)
        assert np.all(fb["discount"] == np.float32(0.99))


def test_discount_is_constant_in_segments_and_zero_at_unlabelled_terminals(files):
    from pbrl.agents.offline_data import OfflineData
    from pbrl.envs.labelling import segments_at
    from pbrl.preferences import PreferenceDataset

    ds, _ = _load(files)
    starts, ends = ds.episode_bounds
    long = np.flatnonzero((ends - starts + 1 >= 10) & ds.terminals[ends])[:6]
    assert len(long) >= 4
    falls = segments_at(ds, ends[long] - 9, 10)  # every segment ends with the fall (a terminal step)
    calm = segments_at(ds, starts[long], 10)
    prefs = PreferenceDataset(falls, calm, np.ones(len(long), np.float32))
    peer = ipl_peer.PeerBatches(ds, prefs, seed=0, pref_batch_size=8, segment_crop=None, batch_size=512)
    replay, fb = peer.sample()
    assert np.all(fb["discount"] == np.float32(0.99))  # the fall step keeps gamma V(s'), as in the authors' buffer
    pairs = [int(np.flatnonzero(np.all(falls.obs[:, 0] == o, axis=-1))[0]) for o in fb["obs_1"][:, 0]]
    np.testing.assert_array_equal(fb["obs_1"][:, -1], falls.next_obs[pairs])  # the state after the fall
    terminal = peer.replay["discount"] == 0.0
    view_terminals = OfflineData.qlearning_view(ds)["terminals"] > 0.5
    assert view_terminals.sum() > 0
    np.testing.assert_array_equal(terminal, view_terminals)
    assert np.all(peer.replay["discount"][~terminal] == np.float32(0.99))
    assert set(np.unique(replay["discount"])) <= {np.float32(0.0), np.float32(0.99)}


def test_reward_stats_by_hand():
    q, gv = np.array([1.0, 2.0, 3.0, 4.0]), np.array([0.5, 0.5, 1.0, 1.0])
    terminal, true = np.array([0.0, 1.0, 0.0, 1.0]), np.array([0.0, 1.0, 1.0, 2.0])
    s = ipl_peer.reward_stats(q, gv, true, terminal)  # r = q - (1 - terminal) gv = [0.5, 2, 2, 4]
    assert s["reward_mean"] == pytest.approx(2.125) and s["reward_terminal_mean"] == pytest.approx(3.0)
    assert s["reward_terminal_segment_mean"] == pytest.approx(2.25)  # (2 - 0.5 + 4 - 1) / 2
    assert s["reward_pearson"] == pytest.approx(np.corrcoef([0.5, 2, 2, 4], true)[0, 1])
    assert math.isnan(ipl_peer.reward_stats(q, gv, true, np.zeros(4))["reward_terminal_mean"])
    # with V(s): the advantages, over all transitions and over the PRE_FALL rows before each fall
    assert ipl_peer.pre_fall_rows(np.array([0, 0, 0, 1, 0, 1.0]), k=2).tolist() == [0, 0, 1, 1, 1, 1]
    v = np.array([0.0, 1.0, 1.0, 2.0])  # A = q - v = [1, 1, 2, 2]
    s = ipl_peer.reward_stats(q, gv, true, terminal, v)
    assert s["value_mean"] == pytest.approx(1.0) and s["adv_mean"] == pytest.approx(1.5)
    assert s["adv_pre_fall_mean"] == pytest.approx(1.5)  # PRE_FALL = 10 rows: all four, before falls at 1 and 3
    assert "value_mean" not in ipl_peer.reward_stats(q, gv, true, terminal)
    # Q, V and A by steps before a fall: the fall step first, a fall's rows stop at the previous fall
    assert s["q_by_fall_offset"][:2] == pytest.approx([3.0, 2.0])  # falls at rows 1 and 3, episodes 0-1, 2-3
    assert math.isnan(s["q_by_fall_offset"][2])  # two rows before either fall is another episode or none
    assert s["adv_by_fall_offset"][:2] == pytest.approx([1.5, 1.5]) and math.isnan(s["v_by_fall_offset"][2])
    assert len(s["q_by_fall_offset"]) == ipl_peer.PRE_FALL


def test_by_fall_offset_stops_at_the_previous_fall():
    x, term = np.arange(6.0), np.array([0, 1, 0, 0, 0, 1.0])
    out = ipl_peer.by_fall_offset(x, term, k=5)
    # offset 0: rows 1 and 5; 1: rows 0 and 4; 2: row 3 (row -1 does not exist); 3: row 2; 4: none (row 1 is a fall)
    assert out[:4] == pytest.approx([3.0, 2.0, 3.0, 2.0]) and math.isnan(out[4])


@needs_peer
def test_the_authors_train_step_runs_on_peer_batches_and_their_stand_ins_do_not_stay(files, tmp_path):
    import torch

    ds, prefs = _load(files)
    before = {k: sys.modules.get(k) for k in ("gym", "imageio")}
    root = ipl_peer.extract_peer(ipl_peer.DEFAULT_PEER, tmp_path)
    mods, cfg = ipl_peer.load_peer(root), ipl_peer.peer_config(root)
    assert {k: sys.modules.get(k) for k in ("gym", "imageio")} == before
    assert (cfg["pref_batch_size"], cfg["segment_crop"], cfg["batch_size"], cfg["discount"]) == (8, 64, 256, 0.99)
    alg = ipl_peer.build_peer(mods, cfg, ds.obs_dim, ds.act_dim, seed=0, hidden=[16, 16])
    assert alg.network.critic.ensemble_size == 2 and alg.chi2_coeff == 0.5 and alg.expectile == 0.7
    batches = ipl_peer.PeerBatches(ds, prefs, seed=0, pref_batch_size=4, segment_crop=6, batch_size=16)
    critic = [p.detach().clone() for p in alg.network.critic.parameters()]
    m = alg.train_step(alg.format_batch(batches.sample()), 0, 1)
    assert all(math.isfinite(m[k]) for k in ("q_loss", "chi2_loss", "actor_loss", "reward"))
    assert any(not torch.equal(a, b) for a, b in zip(critic, alg.network.critic.parameters()))


@needs_peer
def test_both_implementations_train_and_are_measured(files, tmp_path):
    out = tmp_path / "out"
    argv = ["--dataset", str(files / "mr.hdf5"), "--variants", "pbrl", "peer", "--steps", "4", "--eval-every", "2",
            "--eval-episodes", "1", "--hidden", "16", "16", "--batch-size", "16", "--pref-batch-size", "4",
            "--segment-crop", "6", "--jobs", "2", "--out", str(out)]
    res = ipl_peer.main(argv)
    assert list(res["runs"]) == ["pbrl", "peer"]
    for runs in res["runs"].values():
        rows = runs["0"]
        assert [r["step"] for r in rows] == [2, 4]
        for r in rows:
            assert math.isfinite(r["return"]) and math.isfinite(r["score"]) and math.isfinite(r["reward_mean"])
            assert -1.0 <= r["reward_pearson"] <= 1.0 and math.isfinite(r["pref_loss"])
            assert math.isfinite(r["reward_terminal_mean"]) and math.isfinite(r["reward_terminal_segment_mean"])
            assert math.isfinite(r["value_mean"]) and math.isfinite(r["adv_mean"]) and math.isfinite(r["adv_pre_fall_mean"])
    peer = res["configs"]["peer"]  # read from the authors' configs/gym_locomotion/ipl_iql.yaml
    assert peer["alg_kwargs"]["chi2_coeff"] == 0.5 and peer["alg_kwargs"]["beta"] == pytest.approx(1 / 3, abs=1e-5)
    assert peer["overrides"]["hidden"] == [16, 16] and res["configs"]["pbrl"]["hidden"] == [16, 16]
    assert res["peer"]["commit"] and res["runs"]["pbrl"]["0"] != res["runs"]["peer"]["0"]
    saved = json.loads((out / "ipl_peer.json").read_text())
    assert saved["runs"] == res["runs"] and (out / "ipl_peer.png").exists()
    assert ipl_peer.main(["--report-only", "--out", str(out)])["runs"] == res["runs"]
    saved_runs = {p.name: p.stat().st_mtime_ns for p in (out / "runs").iterdir()}
    assert sorted(saved_runs) == ["pbrl-s0.json", "peer-s0.json"]
    again = ipl_peer.main(argv)  # the same arguments: both runs are finished, none runs again
    assert again["runs"] == res["runs"] and {p.name: p.stat().st_mtime_ns for p in (out / "runs").iterdir()} == saved_runs
    # a comparison stopped part-way: --report-only reads the finished runs, seed-major, and says it is partial
    (out / "ipl_peer.json").unlink()
    (out / "runs" / "peer-s0.json").unlink()
    part = ipl_peer.main(["--report-only", "--out", str(out)])
    assert part["runs"] == {"pbrl": res["runs"]["pbrl"]} and part["seeds"] == [0] and part["steps"] == 4
    assert part["partial"] == "1 finished runs (pbrl-s0)" and part["configs"]["pbrl"] == res["configs"]["pbrl"]
    assert ipl_peer.markdown(part).startswith("partial: 1 finished runs (pbrl-s0)")


def test_without_the_authors_code_it_stops_with_one_line(files, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        ipl_peer.main(["--dataset", str(files / "mr.hdf5"), "--peer", str(tmp_path / "none"), "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and not (tmp_path / "x").exists()
    assert len(err.splitlines()) == 1 and ipl_peer.PEER_URL in err and "--peer" in err


def test_bad_input_is_one_clear_error(files, tmp_path, capsys):
    for argv, word in ((["--report-only"], "no run under"),
                       (["--dataset", str(tmp_path / "none.hdf5")], "--dataset"),
                       (["--dataset", str(files / "mr.hdf5"), "--variants", "pbrl", "--steps", "0"], "--steps"),
                       (["--dataset", str(files / "mr.hdf5"), "--variants", "pbrl", "--task", "mujoco/Nope-v5"], "--task")):
        with pytest.raises(SystemExit) as e:
            ipl_peer.main([*argv, "--out", str(tmp_path / "x")])
        err = capsys.readouterr().err.strip()
        assert e.value.code == 2 and word in err and len(err.splitlines()) == 1 and not (tmp_path / "x").exists()


def test_runs_come_seed_major_so_a_stopped_comparison_has_the_authors_code_beside_pbrl():
    args = ipl_peer.parse_args(["--variants", "pbrl", "pbrl-mask", "peer", "--seeds", "0", "1"])
    order = [(sp["variant"], sp["seed"]) for sp in ipl_peer._specs(args, None)]
    assert order == [("pbrl", 0), ("pbrl-mask", 0), ("peer", 0), ("pbrl", 1), ("pbrl-mask", 1), ("peer", 1)]


def test_fall_returns_by_hand_and_on_a_file(files, capsys):
    # two episodes: rows 0-2 end in a fall, rows 3-4 are cut by a time-out
    g = ipl_peer.discounted_returns_to_go(np.array([1.0, 2.0, 4.0, 1.0, 1.0]), np.array([0, 3]), np.array([2, 4]), 0.5)
    assert g.tolist() == pytest.approx([1 + 0.5 * 2 + 0.25 * 4, 2 + 0.5 * 4, 4.0, 1.5, 1.0])
    res = ipl_peer.main(["--fall-returns", "--dataset", str(files / "mr.hdf5")])
    ds, _ = _load(files)
    term = np.asarray(ds.terminals) > 0.5
    assert res["falls"] == int(term.sum()) > 0  # random Hopper falls within tens of steps
    assert res["reward_by_fall_offset"][0] == pytest.approx(float(np.asarray(ds.rewards)[term].mean()))
    assert res["return_to_go_by_fall_offset"][0] == pytest.approx(res["reward_by_fall_offset"][0])  # G = r at a fall
    assert "| true return-to-go |" in capsys.readouterr().out
