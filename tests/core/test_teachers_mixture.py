"""The intransitive population and the last-step teacher against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from pbrl.segments import Segments
from pbrl.teachers import make_teacher, teacher_names
from pbrl.teachers_mixture import LastStepTeacher, PopulationTeacher, objective_values


def _segments(obs0: list[float], act: list[float], reward: list[list[float]]) -> Segments:
    """One segment per entry: 2 steps, obs ``[obs0, 0]`` at both steps, a constant action, the given rewards."""
    n = len(obs0)
    obs = np.zeros((n, 2, 2), np.float32)
    obs[:, :, 0] = np.asarray(obs0, np.float32)[:, None]
    a = np.repeat(np.asarray(act, np.float32)[:, None, None], 2, 1)
    return Segments(obs, a, np.asarray(reward, np.float32))


# three segments whose objectives rotate: return A > B > C, obs0 B > C > A, -ctrl C > A > B
A = ([0.0], [2.0], [[3.0, 0.0]])   # return 3, obs0 sum 0, ctrl 8
B = ([2.0], [3.0], [[1.0, 1.0]])   # return 2, obs0 sum 4, ctrl 18
C = ([1.0], [1.0], [[0.5, 0.5]])   # return 1, obs0 sum 2, ctrl 2
RPS = ("return", "obs0", "-ctrl")


def _seg(*parts):
    return _segments(*(sum((p[i] for p in parts), []) for i in range(3)))


def test_objectives_match_hand_computed_values():
    s = _seg(A, B, C)
    np.testing.assert_allclose(objective_values(s, ("return", "obs0", "-ctrl", "last")),
                               [[3, 0, -8, 0], [2, 4, -18, 1], [1, 2, -2, 0.5]])


def test_three_rotating_raters_make_rock_paper_scissors():
    t = PopulationTeacher(RPS, seed=0)
    first, second = _seg(A, B, C), _seg(B, C, A)  # pairs (A, B), (B, C), (C, A)
    # rater labels: 1.0 = the second segment has the higher objective
    np.testing.assert_array_equal(t.rater_labels(first, second), [[0, 1, 0], [0, 0, 1], [1, 0, 0]])
    # P(second preferred) = 1/3 on every pair: A beats B, B beats C, C beats A, each with probability 2/3
    np.testing.assert_allclose(t.preference(first, second), [1 / 3] * 3, rtol=1e-6)
    # each label is the drawn rater's: replay the draws
    many_a, many_b = _seg(*[A] * 3000), _seg(*[B] * 3000)
    lab = t.label(many_a, many_b)
    who = np.random.default_rng(0).choice(3, size=3000, p=[1 / 3] * 3)
    np.testing.assert_array_equal(lab, np.array([0, 1, 0], np.float32)[who])
    assert abs(lab.mean() - 1 / 3) < 0.03


def test_weights_ties_and_the_registry():
    t = make_teacher("intransitive", seed=1, objectives=["return", "-ctrl"], weights=[3, 1])
    assert isinstance(t, PopulationTeacher) and np.allclose(t.weights, [0.75, 0.25])
    same = _seg(A)
    np.testing.assert_array_equal(t.rater_labels(same, same), [[0.5, 0.5]])
    assert {"intransitive", "last_step"} <= set(teacher_names())
    state = t.get_state()
    x = t.label(_seg(*[A] * 50), _seg(*[B] * 50))
    t.set_state(state)
    np.testing.assert_array_equal(t.label(_seg(*[A] * 50), _seg(*[B] * 50)), x)


def test_last_step_teacher_is_non_markovian():
    t = make_teacher("last_step")
    assert isinstance(t, LastStepTeacher)
    a = _segments([0, 0, 0], [0, 0, 0], [[10.0, 0.0], [0.0, 1.0], [0.0, 2.0]])
    b = _segments([0, 0, 0], [0, 0, 0], [[0.0, 1.0], [5.0, 1.0], [9.0, 1.0]])
    # by return b would lose the first pair and win the others; by the last step: win, tie, loss
    np.testing.assert_array_equal(t.label(a, b), [1.0, 0.5, 0.0])


@pytest.mark.parametrize("kwargs, msg", [
    ({"objectives": ["return"]}, "at least two"),
    ({"objectives": "return"}, "at least two"),
    ({"objectives": ["return", "speed"]}, "unknown objective 'speed'"),
    ({"objectives": ["return", "ctrl"], "weights": [1, -1]}, "weights must be 2 numbers"),
    ({"objectives": ["return", "ctrl"], "weights": [0, 0]}, "positive sum"),
])
def test_bad_population_is_one_clear_error(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        PopulationTeacher(**kwargs)


def test_an_observation_objective_outside_the_observation_is_one_clear_error():
    t = PopulationTeacher(("return", "obs5"))
    with pytest.raises(ValueError, match="reads observation dimension 5"):
        t.label(_seg(A), _seg(B))
