"""B-Pref scripted teachers and the regret teacher, on constructed segments with known returns."""

import numpy as np
import pytest

from pbrl.segments import Segments
from pbrl.teachers import TEACHER_PRESETS, RegretTeacher, ScriptedTeacher, make_teacher


def segs_with_rewards(rew: np.ndarray, obs_dim: int = 3, act_dim: int = 2) -> Segments:
    rew = np.asarray(rew, dtype=np.float32)
    n, h = rew.shape
    return Segments(obs=np.zeros((n, h, obs_dim)), act=np.zeros((n, h, act_dim)), reward=rew)


def const_pairs(ret_a, ret_b, h: int = 10):
    """Segments whose returns are exactly ret_a / ret_b (reward spread evenly over H steps)."""
    ra = np.repeat(np.asarray(ret_a, np.float64)[:, None] / h, h, axis=1)
    rb = np.repeat(np.asarray(ret_b, np.float64)[:, None] / h, h, axis=1)
    return segs_with_rewards(ra), segs_with_rewards(rb)


def test_oracle_prefers_higher_return():
    a, b = const_pairs([1.0, 5.0, -2.0], [2.0, 3.0, -1.0])
    lab = ScriptedTeacher.preset("oracle").label(a, b)
    np.testing.assert_array_equal(lab, [1.0, 0.0, 1.0])
    assert lab.dtype == np.float32


def test_stochastic_labels_follow_bradley_terry():
    n = 20000
    for diff, beta in [(0.0, 1.0), (1.0, 1.0), (-2.0, 1.0), (0.5, 4.0)]:
        a, b = const_pairs(np.zeros(n), np.full(n, diff))
        lab = ScriptedTeacher(beta=beta, seed=1).label(a, b)
        p = 1.0 / (1.0 + np.exp(-beta * diff))
        # 5 sigma of a binomial proportion
        assert abs(lab.mean() - p) < 5 * np.sqrt(p * (1 - p) / n) + 1e-3, (diff, beta, lab.mean(), p)
        assert set(np.unique(lab)) <= {0.0, 1.0}


def test_mistake_rate_is_ten_percent():
    n = 20000
    rng = np.random.default_rng(0)
    a, b = const_pairs(rng.normal(size=n), rng.normal(size=n))
    oracle = ScriptedTeacher.preset("oracle").label(a, b)
    lab = ScriptedTeacher.preset("mistake", seed=3).label(a, b)
    rate = np.mean(lab != oracle)
    assert abs(rate - 0.1) < 5 * np.sqrt(0.09 / n), rate


def test_myopic_differs_exactly_where_discount_flips_order():
    h = 10
    gamma = 0.9
    # a: all reward early; b: slightly less reward, all late -> discounting flips the order
    ra = np.zeros((2, h))
    rb = np.zeros((2, h))
    ra[0, 0] = 1.0
    rb[0, -1] = 0.9  # undiscounted a > b; discounted: a -> 0.9^9 = 0.387, b -> 0.9  => b preferred
    ra[1, -1] = 1.0
    rb[1, 0] = 0.9  # undiscounted a > b; discounted a wins anyway
    a, b = segs_with_rewards(ra), segs_with_rewards(rb)
    oracle = ScriptedTeacher.preset("oracle").label(a, b)
    myopic = ScriptedTeacher.preset("myopic").label(a, b)
    np.testing.assert_array_equal(oracle, [0.0, 0.0])
    np.testing.assert_array_equal(myopic, [1.0, 0.0])
    # and on random segments: myopic equals the rational label on gamma-weighted sums, everywhere
    rng = np.random.default_rng(0)
    ra, rb = rng.normal(size=(500, h)), rng.normal(size=(500, h))
    w = gamma ** (h - 1 - np.arange(h))
    lab = ScriptedTeacher(gamma=gamma).label(segs_with_rewards(ra), segs_with_rewards(rb))
    expect = ((rb.astype(np.float32) @ w) > (ra.astype(np.float32) @ w)).astype(np.float32)
    np.testing.assert_array_equal(lab, expect)
    assert np.any(lab != ScriptedTeacher().label(segs_with_rewards(ra), segs_with_rewards(rb)))


def test_skip_fires_exactly_at_threshold():
    t = ScriptedTeacher.preset("skip", margin=10.0)  # threshold = 0.1 * 10 = 1.0
    a, b = const_pairs([0.0, 0.5, 0.9, 1.0, 3.0], [0.99, 0.999, 0.2, 0.0, -1.0])
    lab = t.label(a, b)
    # skipped iff max(R_a, R_b) < 1.0
    np.testing.assert_array_equal(np.isnan(lab), [True, True, True, False, False])
    assert lab[3] == 0.0 and lab[4] == 0.0


def test_equal_fires_exactly_at_threshold():
    t = ScriptedTeacher.preset("equal", margin=10.0)  # |R_a - R_b| < 1.0 -> 0.5
    a, b = const_pairs([0.0, 0.0, 0.0, 5.0], [0.75, -0.9, 1.25, 3.0])
    lab = t.label(a, b)
    np.testing.assert_array_equal(lab, [0.5, 0.5, 1.0, 0.0])


def test_order_skip_before_equal_and_margin_rule():
    t = ScriptedTeacher(eps_skip=0.5, eps_equal=0.5, margin=2.0)
    a, b = const_pairs([0.1, 1.5], [0.2, 1.6])  # both equal; first also skipped (max < 1)
    lab = t.label(a, b)
    assert np.isnan(lab[0]) and lab[1] == 0.5
    t.update_margin([1000.0, 2000.0], episode_length=1000, segment_length=50)
    assert t.margin == pytest.approx(75.0)  # mean return 1500 * 50 / 1000


def test_determinism_under_seed_and_state_restore():
    rng = np.random.default_rng(0)
    a, b = const_pairs(rng.normal(size=300), rng.normal(size=300))
    t1 = ScriptedTeacher(beta=1.0, eps_mistake=0.2, seed=7)
    t2 = ScriptedTeacher(beta=1.0, eps_mistake=0.2, seed=7)
    np.testing.assert_array_equal(t1.label(a, b), t2.label(a, b))
    state = t1.get_state()
    first = t1.label(a, b)
    t1.set_state(state)
    np.testing.assert_array_equal(t1.label(a, b), first)
    t3 = ScriptedTeacher(beta=1.0, eps_mistake=0.2, seed=8)
    assert np.any(t3.label(a, b) != t2.label(a, b))


def test_presets_and_bad_arguments():
    assert set(TEACHER_PRESETS) == {"oracle", "stoc", "mistake", "skip", "myopic", "equal"}
    assert ScriptedTeacher.preset("stoc").beta == 1.0
    assert make_teacher("myopic").gamma == 0.9
    with pytest.raises(ValueError, match="unknown teacher preset 'orcle'"):
        ScriptedTeacher.preset("orcle")
    with pytest.raises(ValueError, match="unknown teacher"):
        make_teacher("nobody")
    with pytest.raises(ValueError, match="eps_mistake"):
        ScriptedTeacher(eps_mistake=1.5)
    with pytest.raises(ValueError, match="gamma"):
        ScriptedTeacher(gamma=0.0)
    a, b = const_pairs([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="same number"):
        ScriptedTeacher().label(a, b)


def test_regret_teacher_uses_value_function():
    h, gamma = 5, 0.9
    # 1-d observation is the value itself: V(s) = s[0]
    obs_a = np.zeros((2, h, 1))
    obs_b = np.zeros((2, h, 1))
    nxt_a = np.array([[10.0], [0.0]])
    nxt_b = np.array([[0.0], [0.0]])
    rew_a = np.zeros((2, h))
    rew_b = np.ones((2, h))  # b has more reward...
    a = Segments(obs=obs_a, act=np.zeros((2, h, 1)), reward=rew_a, next_obs=nxt_a)
    b = Segments(obs=obs_b, act=np.zeros((2, h, 1)), reward=rew_b, next_obs=nxt_b)
    t = RegretTeacher(lambda s: s[:, 0], gamma=gamma)
    score_b = sum(gamma**k for k in range(h))
    np.testing.assert_allclose(t.score(b), [score_b, score_b], rtol=1e-6)
    np.testing.assert_allclose(t.score(a), [gamma**h * 10.0, 0.0], rtol=1e-6)
    # ...but pair 0's a reaches a state worth 10: lower regret, so a is preferred there
    np.testing.assert_array_equal(t.label(a, b), [0.0, 1.0])
    with pytest.raises(ValueError, match="next_obs"):
        t.label(Segments(obs=obs_a, act=np.zeros((2, h, 1)), reward=rew_a), b)


# ------------------------------------------------------------------ HERON's hierarchical teacher
def _factored(fwd, ctrl):
    """Segments of 2 steps whose factors are given per segment as (step 0, step 1) values."""
    fwd, ctrl = np.asarray(fwd, np.float32), np.asarray(ctrl, np.float32)
    n = len(fwd)
    return Segments(obs=np.zeros((n, 2, 1)), act=np.zeros((n, 2, 1)), reward=fwd + ctrl,
                    factors={"reward_forward": fwd, "reward_ctrl": ctrl})


def test_heron_compares_level_by_level_with_hand_computed_margins():
    # segment sums:   forward a = [2, 2, 2, 2],  b = [6, 2.5, 2.2, 2.1]
    #                 ctrl    a = [-1, -1, -1, -1], b = [-3, -2, 0, -1]
    a = _factored([[1, 1]] * 4, [[-0.5, -0.5]] * 4)
    b = _factored([[3, 3], [1.25, 1.25], [1.1, 1.1], [1.05, 1.05]], [[-1.5, -1.5], [-1, -1], [0, 0], [-0.5, -0.5]])
    from pbrl.teachers import HierarchicalTeacher

    t = HierarchicalTeacher(order=["reward_forward", "reward_ctrl"], sigma=[0.2, 0.5])
    # level 1: forward sums over the batch [2, 2, 2, 2, 6, 2.5, 2.2, 2.1]: sample std 1.3846 (sqrt(13.42 / 7)), margin 0.2769
    fwd = np.array([2, 2, 2, 2, 6, 2.5, 2.2, 2.1])
    m1 = 0.2 * fwd.std(ddof=1)
    assert abs(m1 - 0.27692) < 1e-4
    # pair 0: 6 > 2 + m1 -> b; pair 1: 2.5 > 2.2769 -> b; pairs 2 (2.2) and 3 (2.1): tied, go to level 2
    # level 2: ctrl sums [-1, -1, -1, -1, -3, -2, 0, -1]: sample std 0.8864 (sqrt(5.5 / 7)), margin 0.4432
    ctrl = np.array([-1, -1, -1, -1, -3, -2, 0, -1])
    assert abs(0.5 * ctrl.std(ddof=1) - 0.44320) < 1e-4
    # pair 2: 0 > -1 + 0.4432 -> b; pair 3: -1 vs -1 tied -> no label
    lab = t.label(a, b)
    np.testing.assert_array_equal(lab[:3], [1.0, 1.0, 1.0])
    assert np.isnan(lab[3])
    # swapping the sides swaps the labels; energy first gives the ctrl ranking where it is decisive
    np.testing.assert_array_equal(t.label(b, a)[:3], [0.0, 0.0, 0.0])
    energy_first = HierarchicalTeacher(order=["reward_ctrl", "reward_forward"], sigma=[0.5, 0.2]).label(a, b)
    # ctrl margin 0.4432: pair 0 (-3 vs -1) -> a, pair 1 (-2 vs -1) -> a, pair 2 (0 vs -1) -> b;
    # pair 3 tied on ctrl, forward 2.1 vs 2 within 0.2769 -> no label
    np.testing.assert_array_equal(energy_first[:3], [0.0, 0.0, 1.0])
    assert np.isnan(energy_first[3])
    # a lower-is-better factor flips the comparison; one sigma serves every level
    low = HierarchicalTeacher(order=["-reward_forward"], sigma=0.2).label(a, b)
    np.testing.assert_array_equal(low[:2], [0.0, 0.0])
    assert np.isnan(low[2:]).all()


def test_heron_bad_input_is_one_clear_error():
    from pbrl.teachers import HierarchicalTeacher

    with pytest.raises(ValueError, match="unknown reward factor"):
        HierarchicalTeacher(order=["speed"])
    with pytest.raises(ValueError, match="non-empty list"):
        HierarchicalTeacher(order="reward_forward")
    with pytest.raises(ValueError, match="one per factor"):
        HierarchicalTeacher(order=["reward_forward", "reward_ctrl"], sigma=[0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="margin >= 0"):
        HierarchicalTeacher(sigma=-1)
    with pytest.raises(ValueError, match="twice"):
        HierarchicalTeacher(order=["reward_ctrl", "-reward_ctrl"])
    t = make_teacher("heron", order=["reward_survive"])
    with pytest.raises(ValueError, match=r"do not record factor\(s\) \['reward_survive'\]"):
        t.label(_factored([[1, 1]], [[0, 0]]), _factored([[1, 1]], [[0, 0]]))
    seg = Segments(obs=np.zeros((1, 2, 1)), act=np.zeros((1, 2, 1)), reward=np.zeros((1, 2)))
    with pytest.raises(ValueError, match="carry none"):
        t.label(seg, seg)
