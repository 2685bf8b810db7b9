"""Every ensemble query selector inside PEBBLE's online loop: a short run asks its queries, the labels land in
the agent's preference data and the reward model is fitted on them. (The selectors' own choices are tested
on fixed probabilities in ``tests/core/test_queries.py``; the gated and Thompson ones had never run inside an
agent.)"""

from __future__ import annotations

import numpy as np
import pytest

from pbrl.agents.pebble import PEBBLE
from pbrl.envs import make_env
from pbrl.queries import ENSEMBLE_SELECTORS
from pbrl.teachers import make_teacher

pytestmark = pytest.mark.usefixtures("one_thread")

EP = 40
SAC_KW = {"batch_size": 16, "learning_starts": 7, "buffer_size": 500, "policy_kwargs": {"net_arch": [8]}}


#: uniform and disagreement run inside the agents in many other tests
SELECTORS = [s for s in ENSEMBLE_SELECTORS if s not in ("uniform", "disagreement")]


@pytest.mark.parametrize("selector", SELECTORS)
def test_each_ensemble_selector_runs_inside_pebble(selector):
    env = make_env("mujoco/HalfCheetah-v5", seed=0, max_episode_steps=EP)
    agent = PEBBLE(env, make_teacher("oracle", seed=0), 8, 2, EP, segment_length=10, seed=0, selector=selector,
                   learner_kwargs=SAC_KW, reward_model_kwargs={"hidden": (8,)}, unsup_steps=5, large_batch=4,
                   fit_kwargs={"epochs": 2})
    agent.learn(5 * EP)
    cb = agent.callback
    assert cb.selector.name == selector
    n = len(agent.preferences)
    # four query rounds fit in 200 steps; a gated selector may skip a pair the ensemble already agrees on
    if selector.startswith("gated_"):
        assert 1 <= n <= 8
    else:
        assert n == 8
    labels = np.asarray(agent.preferences.label)
    assert set(np.unique(labels)) <= {0.0, 0.5, 1.0}
    assert agent.preferences.a.obs.shape[1] == 10
