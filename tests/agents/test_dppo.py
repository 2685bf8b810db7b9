"""DPPO: the three losses against hand-computed values, the window geometry of the smoothness term, bad input
stopping before any work, learning the preferred action on a toy problem, and keeping the fitted predictor."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers import contrast_problem

from pbrl.agents.dppo import DPPO, dppo_distances, dppo_loss, shifted_windows, smoothness_loss, window_starts
from pbrl.preferences import PreferenceDataset
from pbrl.ratings import RatingDataset

TINY_PT = {"size": "small", "embed_dim": 16, "pref_attn_dim": 16}
SMALL = dict(hidden=(32, 32), batch_size=32, predictor_kwargs=TINY_PT, predictor_epochs=3, smooth_sigma=2.0)


# ---------------------------------------------------------------------------------------------- losses


def test_distances_match_hand_computation():
    pred = torch.tensor([[[1.0, 0.0], [0.0, 0.0]], [[0.5, 0.5], [-1.0, 1.0]]])  # [B=2, H=2, A=2]
    act = torch.tensor([[[0.0, 0.0], [0.0, 0.0]], [[0.5, -0.5], [1.0, -1.0]]])
    # segment 0: ||(1, 0)|| = 1, ||(0, 0)|| = 0 -> mean 0.5, / range 2 -> 0.25
    # segment 1: ||(0, 1)|| = 1, ||(-2, 2)|| = 2 sqrt 2 -> mean (1 + 2.828) / 2, / 2
    want = [0.25, (1.0 + 2.0 * math.sqrt(2.0)) / 4.0]
    assert dppo_distances(pred, act).tolist() == pytest.approx(want, rel=1e-6)
    assert dppo_distances(pred, act, action_range=1.0).tolist() == pytest.approx([0.5, want[1] * 2], rel=1e-6)
    # a policy exactly on the data has a zero (not NaN) gradient
    p = act.clone().requires_grad_(True)
    dppo_distances(p, act).sum().backward()
    assert torch.all(torch.isfinite(p.grad)) and float(p.grad.abs().sum()) == 0.0


def test_contrastive_loss_matches_equation():
    d = torch.tensor([0.2, 0.5, 0.1])
    s = torch.tensor([3.0, 1.0, 2.0])  # order: 0 > 2 > 1
    lam, T = 0.8, 0.1

    def nll(di, dj):  # -log exp(-di/T) / (exp(-di/T) + exp(-lam dj/T))
        return -math.log(math.exp(-di / T) / (math.exp(-di / T) + math.exp(-lam * dj / T)))

    pairs = [(0.2, 0.5), (0.2, 0.1), (0.1, 0.5)]  # (better, worse): (0, 1), (0, 2), (2, 1)
    want = sum(nll(a, b) for a, b in pairs) / 3
    assert float(dppo_loss(d, s, lam, T)) == pytest.approx(want, rel=1e-6)
    # lambda is not silently ignored, and equal scores form no pair
    assert float(dppo_loss(d, s, 1.0, T)) != pytest.approx(want, rel=1e-3)
    tie = torch.tensor([1.0, 1.0, 1.0])
    assert float(dppo_loss(d, tie, lam, T)) == 0.0
    # the gradient pulls the better segment's distance down and pushes the worse one's up
    dd = d.clone().requires_grad_(True)
    dppo_loss(dd, s, lam, T).backward()
    assert dd.grad[0] > 0 and dd.grad[1] < 0


def test_contrastive_loss_equals_the_sorted_upper_triangle_of_the_authors_code():
    """The authors' ``update_actor`` sorts the batch by score (descending), forms the [B, B] matrix
    exp(-D_i) / (exp(-D_i) + exp(-lambda D_j)) with D = d / T by broadcasting a [B, 1] column against a [B] row,
    and averages -log over the strict upper triangle. pbrl's pairwise form gives the same number."""
    rng = np.random.default_rng(3)
    d, s = rng.uniform(0.0, 1.5, 64), rng.normal(size=64)
    for lam, T in ((1.0, 0.1), (0.5, 0.1), (0.8, 1.0)):
        D = d[np.argsort(-s)] / T
        pair = np.exp(-D)[:, None] / (np.exp(-D)[:, None] + np.exp(-lam * D)[None, :])
        iu = np.triu_indices(64, k=1)
        want = -np.log(pair[iu]).mean()
        got = float(dppo_loss(torch.tensor(d, dtype=torch.float64), torch.tensor(s), lam, T))
        assert got == pytest.approx(want, rel=1e-10)


def test_at_lambda_one_nothing_ties_the_policy_to_the_data():
    """A property of the method, not a defect: at lambda = 1 the loss depends only on distance differences, so
    moving the policy equally far from every segment costs nothing; at lambda < 1 it costs
    (1 - lambda) / T x the mean pair weight per unit of distance (docs/agents/dppo.md, the diagnosis)."""
    d, s = torch.tensor([0.2, 0.5, 0.1, 0.4]), torch.tensor([3.0, 1.0, 2.0, 0.0])
    for c in (0.3, 1.0):
        assert float(dppo_loss(d + c, s, 1.0, 0.1)) == pytest.approx(float(dppo_loss(d, s, 1.0, 0.1)), rel=1e-6)
        assert float(dppo_loss(d + c, s, 0.5, 0.1)) > float(dppo_loss(d, s, 0.5, 0.1))
    shift = torch.zeros((), requires_grad=True)
    dppo_loss(d + shift, s, 1.0, 0.1).backward()
    assert abs(float(shift.grad)) < 1e-6


def test_smoothness_loss_and_window_geometry():
    assert float(smoothness_loss(torch.tensor([1.0, 2.0]), torch.tensor([0.0, 4.0]))) == pytest.approx(2.5)
    # episodes [0..9] (10 steps), [10..12] (3 steps: too short for H = 4), [13..19] (7 steps)
    start, low, high = window_starts(np.array([0, 10, 13]), np.array([9, 12, 19]), 4)
    assert start.tolist() == [0, 1, 2, 3, 4, 5, 6, 13, 14, 15, 16]
    assert low.tolist() == [0] * 7 + [13] * 4 and high.tolist() == [6] * 7 + [16] * 4
    twins = shifted_windows(np.repeat(start, 50), np.repeat(low, 50), np.repeat(high, 50), 5.0, np.random.default_rng(0))
    assert np.all(twins >= np.repeat(low, 50)) and np.all(twins <= np.repeat(high, 50))  # never leaves the episode
    assert np.any(twins != np.repeat(start, 50))
    assert np.array_equal(shifted_windows(start, low, high, 0.0, np.random.default_rng(0)), start)  # M = 0: itself


# ---------------------------------------------------------------------------------------------- agent


def test_bad_input_stops_before_any_work():
    ds, prefs, *_ = contrast_problem(16, 8)
    agent = DPPO.from_dataset(ds, **SMALL)
    ratings = RatingDataset(prefs.a, np.zeros(len(prefs), np.int64), n_classes=2)
    with pytest.raises(ValueError, match="DPPO learns from preference pairs, got ratings") as e:
        agent.fit(ds, ratings, steps=2, progress=False)
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="every label is 0.5"):
        agent.fit(ds, PreferenceDataset(prefs.a, prefs.b, np.full(len(prefs), 0.5, np.float32)), steps=2, progress=False)
    with pytest.raises(ValueError, match="longest episode has 8"):
        DPPO.from_dataset(ds, segment_length=20, **SMALL).fit(ds, prefs, steps=2, progress=False)
    wrong, wrong_prefs, *_ = contrast_problem(16, 8)
    with pytest.raises(ValueError, match="obs_dim"):
        DPPO(5, 1, **SMALL).fit(wrong, wrong_prefs, steps=2, progress=False)
    assert agent.num_updates == 0 and not agent.predictor_fitted  # nothing was trained
    with pytest.raises(ValueError, match="temperature must be a positive number"):
        DPPO(3, 1, temperature=0.0)


def test_dppo_learns_the_preferred_action_and_keeps_its_predictor(tmp_path):
    ds, prefs, obs, act, sign = contrast_problem(64, 8, good=0.6)
    agent = DPPO.from_dataset(ds, seed=0, lr=1e-3, **{**SMALL, "predictor_epochs": 30})
    before = agent.predict(obs.reshape(-1, 3))[0].mean()
    info = agent.fit(ds, prefs, steps=150, progress=False)
    assert agent.predictor_fit_info["accuracy"] > 0.9
    assert len(agent.predictor_fit_info["history"]["extra_loss"]) == agent.predictor_fit_info["epochs"]
    # the scored windows rank the good segments above the bad ones
    start, score = agent.score_windows(ds, 8)
    good = sign[start // 8] > 0
    assert score[good].mean() > score[~good].mean()
    after = agent.predict(obs.reshape(-1, 3))[0]
    assert after.mean() > 0.3 and after.mean() > before + 0.2, (before, after.mean(), info["losses"])
    back = DPPO.load(agent.save(tmp_path / "dppo.pt"))
    assert back.predictor_fitted
    w = {k: v.clone() for k, v in back.predictor.net.state_dict().items()}
    back.fit(ds, prefs, steps=2, progress=False)  # continues on the same predictor: no refit
    assert all(torch.equal(w[k], v) for k, v in back.predictor.net.state_dict().items())


def test_same_seed_same_numbers():
    ds, prefs, obs, *_ = contrast_problem(16, 8)
    acts = []
    for _ in range(2):
        agent = DPPO.from_dataset(ds, seed=3, **SMALL)
        agent.fit(ds, prefs, steps=4, progress=False)
        acts.append(agent.predict(obs[:, 0])[0])
    np.testing.assert_array_equal(*acts)


def test_smoothness_term_is_part_of_the_predictor_loss():
    ds, prefs, *_ = contrast_problem(16, 8)
    on = DPPO.from_dataset(ds, seed=0, **SMALL)
    off = DPPO.from_dataset(ds, seed=0, **{**SMALL, "smooth_weight": 0.0})
    on.fit(ds, prefs, steps=1, progress=False)
    off.fit(ds, prefs, steps=1, progress=False)
    assert "extra_loss" in on.predictor_fit_info["history"] and "extra_loss" not in off.predictor_fit_info["history"]
    diff = [not torch.equal(a, b) for a, b in zip(on.predictor.net.state_dict().values(), off.predictor.net.state_dict().values())]
    assert any(diff)
