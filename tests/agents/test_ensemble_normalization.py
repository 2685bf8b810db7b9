"""DTR's ensemble normalisation (z-score each member over the dataset, then average) as an option of MR+IQL's
(and PEARL's) relabelling: the function against hand-computed values, the agent using it, clear errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import bandit_dataset, synthetic_pairs

from pbrl.agents.iql import MRIQL
from pbrl.reward_models import ENSEMBLE_NORMALIZATIONS, combine_member_rewards


def test_combine_members_matches_hand_computation():
    members = np.array([[0.0, 1.0, 2.0, 3.0], [3.0, 0.0, 0.0, 1.0]])
    assert combine_member_rewards(members).tolist() == pytest.approx([1.5, 0.5, 1.0, 2.0])  # plain mean
    # member 0: mean 1.5, population std sqrt(1.25); member 1: mean 1, std sqrt(1.5)
    s0, s1 = math.sqrt(1.25), math.sqrt(1.5)
    want = [((x - 1.5) / s0 + (y - 1.0) / s1) / 2 for x, y in zip(members[0], members[1])]
    assert combine_member_rewards(members, "zscore").tolist() == pytest.approx(want, rel=1e-6)
    # scale-free: a member ten times wider has no more say after z-scoring, unlike in the plain mean
    wide = members * np.array([[10.0], [1.0]])
    assert combine_member_rewards(wide, "zscore").tolist() == pytest.approx(want, rel=1e-6)
    assert combine_member_rewards(wide).tolist() != pytest.approx(combine_member_rewards(members).tolist())
    # a member constant over the data is only centred (no division by zero)
    const = np.array([[2.0, 2.0, 2.0], [0.0, 1.0, 2.0]])
    assert combine_member_rewards(const, "zscore").tolist() == pytest.approx([-0.5 * math.sqrt(1.5), 0.0, 0.5 * math.sqrt(1.5)])
    assert ENSEMBLE_NORMALIZATIONS == ("none", "zscore")


def test_bad_values_give_one_clear_error():
    with pytest.raises(ValueError, match="unknown ensemble normalization 'minmax'"):
        combine_member_rewards(np.zeros((2, 3)), "minmax")
    with pytest.raises(ValueError, match=r"per-member rewards \[M, T\]"):
        combine_member_rewards(np.zeros(3), "zscore")
    with pytest.raises(ValueError, match="unknown ensemble_normalization 'z'"):
        MRIQL(3, 1, ensemble_normalization="z")
    with pytest.raises(ValueError, match="is one model"):
        MRIQL(3, 1, reward_model="transformer", ensemble_normalization="zscore")


def test_mriql_relabels_with_the_zscored_members():
    ds = bandit_dataset(20, 10)
    prefs = synthetic_pairs(32, 10, obs_dim=3, act_dim=1, seed=0)
    kw = dict(hidden=(16, 16), batch_size=16, reward_model_kwargs={"hidden": (16,), "n_members": 3}, reward_epochs=3)
    plain = MRIQL.from_dataset(ds, seed=0, **kw)
    zs = MRIQL.from_dataset(ds, seed=0, ensemble_normalization="zscore", **kw)
    for agent in (plain, zs):
        agent.fit(ds, prefs, steps=2, progress=False)
    members = zs.reward_model.member_rewards(ds.observations, ds.actions)
    np.testing.assert_allclose(zs.learned_rewards(ds), combine_member_rewards(members, "zscore"), rtol=1e-6)
    np.testing.assert_allclose(plain.learned_rewards(ds), members.mean(0), rtol=1e-6)  # the same fitted members
    assert not np.allclose(zs.learned_rewards(ds), plain.learned_rewards(ds))
    assert zs.config["ensemble_normalization"] == "zscore"

