"""Shared pytest fixtures.

* Every test runs torch on one thread (tiny networks are fastest so, and the CI machine is shared); the
  previous setting is restored after the session (autouse, so no module sets threads at import).
* Small datasets that several modules use are built once per session (``reacher_random``).
"""

import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def _single_thread_torch():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def one_thread():
    """Kept for modules that opt in explicitly (``pytestmark = pytest.mark.usefixtures("one_thread")``);
    the session-wide fixture above already runs every test on one thread."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def reacher_random():
    """400 random-policy steps of ``mujoco/Reacher-v5`` (seed 0), collected once per session; treat it as
    read-only."""
    from pbrl.envs.collect import collect

    return collect("mujoco/Reacher-v5", "random", n_steps=400, seed=0)
