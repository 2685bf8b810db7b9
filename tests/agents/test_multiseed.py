"""K seeds of an offline agent in one process (``from_dataset(ds, seeds=...)`` -> MultiSeed, vmapped updates):
same seeds give the same numbers, seed k equals a single-seed run with seed k for every agent (float tolerance:
the batched matmuls sum in another order; dropout masks are the single run's own), the return and loss
distributions of K vmapped seeds match K single runs, and split() gives ordinary agents that predict, save,
load and keep training like the single-seed agent would."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import bandit_dataset

from pbrl.agents.multiseed import MultiSeed
from pbrl.agents.offline_base import OfflineAgent
from pbrl.agents.registry import agent_names, get_agent
from pbrl.envs.datasets import OfflineDataset, label_dataset
from pbrl.preferences import PreferenceDataset

pytestmark = pytest.mark.usefixtures("one_thread")

OFFLINE = agent_names("offline")
TINY = dict(hidden=(16, 16), batch_size=16)
#: per-agent sizes that keep every agent's update small (its own batch shapes, labels, phases)
EXTRA = {
    "mriql": dict(reward_epochs=2, reward_model_kwargs=dict(hidden=(8, 8))),
    "pearl": dict(reward_epochs=2, n_target_pairs=12, reward_model_kwargs=dict(hidden=(8, 8))),
    "ipl": dict(pref_batch_size=4, segment_crop=3),
    "iplawac": dict(pref_batch_size=4, segment_crop=3, hidden=(16, 16, 16)),
    "cpl": dict(pair_batch_size=8, bc_steps=3, lr_warmup=2),
    "cplbc": dict(pair_batch_size=8, bc_steps=3, lr_warmup=2),
    "oppo": dict(seg_batch_size=8, pair_batch_size=8, context_length=4, warmup_steps=3),
    "dppo": dict(predictor_epochs=2, smooth_sigma=2.0, predictor_kwargs=dict(size="small", embed_dim=8, pref_attn_dim=8)),
    "vpl": dict(latent_dim=2, context_size=4, encoder_hidden=16, reward_batch_size=16, reward_epochs=2),
    "dtr": dict(embed_dim=8, n_layers=1, n_heads=2, critic_hidden=(8, 8), context_length=3, reward_epochs=2,
                reward_model_kwargs=dict(hidden=(8, 8))),
}
DROPOUT = {"bc", "cpl", "cplbc"}  # dropout by default (0.25)


def toy(n_episodes: int = 40, length: int = 10, seed: int = 0) -> tuple[OfflineDataset, object]:
    """The contextual bandit of ``helpers.bandit_dataset`` with oracle preferences."""
    ds = bandit_dataset(n_episodes, length, seed)
    return ds, label_dataset(ds, "oracle", 60, segment_length=5, seed=0)


@pytest.fixture(scope="module")
def data():
    return toy()


def _kw(name: str, **over) -> dict:
    kw = dict(TINY, **EXTRA.get(name, {}))
    kw.update(over)
    return kw


def _prefs(klass, prefs):
    """The toy's pairs; VPL needs each pair's user, so its copy says two users answered them in turn."""
    if not klass.requires_preferences:
        return None
    if klass.__name__ == "VPL":
        return PreferenceDataset(prefs.a, prefs.b, prefs.label, metadata=prefs.metadata,
                                 user=[f"u{i % 2}" for i in range(len(prefs))])
    return prefs


def _max_param_diff(a: OfflineAgent, b: OfflineAgent) -> float:
    return max(float((p - q).abs().max()) for n in a.nets for p, q in zip(a.nets[n].parameters(), b.nets[n].parameters()))


# ---------------------------------------------------------------------------------------------- construction


def test_from_dataset_with_seeds_builds_one_agent_per_seed(data):
    ds, _ = data
    ms = get_agent("ipl").from_dataset(ds, seeds=(0, 5, 2), **_kw("ipl"))
    assert isinstance(ms, MultiSeed) and ms.seeds == [0, 5, 2] and len(ms) == 3
    single = get_agent("ipl").from_dataset(ds, seed=5, **_kw("ipl"))
    assert _max_param_diff(ms.members[1], single) == 0.0  # the same initialisation as a single-seed agent


@pytest.mark.parametrize("bad", [(), (1, 1), 3, (0, 1.5)])
def test_bad_seeds_are_one_clear_error(data, bad):
    ds, _ = data
    with pytest.raises(ValueError, match="seed"):
        get_agent("iql").from_dataset(ds, seeds=bad, **TINY)


def test_seed_and_seeds_together_are_refused(data):
    with pytest.raises(ValueError, match="not both"):
        get_agent("iql").from_dataset(data[0], seed=0, seeds=(0, 1), **TINY)


# ---------------------------------------------------------------------------------------------- numbers


@pytest.mark.parametrize("name", ["ipl", "bc"])
def test_same_seeds_give_the_same_numbers(data, name):
    ds, prefs = data
    klass = get_agent(name)
    runs = []
    for _ in range(2):
        ms = klass.from_dataset(ds, seeds=(0, 1), **_kw(name))
        info = ms.fit(ds, _prefs(klass, prefs), steps=6, progress=False)
        runs.append((ms.split(), info["losses"]))
    (a, la), (b, lb) = runs
    assert la == lb and all(_max_param_diff(x, y) == 0.0 for x, y in zip(a, b))


@pytest.mark.parametrize("name", OFFLINE)
def test_seed_k_equals_the_single_seed_run(data, name):
    """Every agent at its own defaults (dropout included): seed k of the vmapped run is the single-seed run with
    seed k, up to float rounding (the batched matmuls sum in another order)."""
    ds, prefs = data
    klass = get_agent(name)
    kw = _kw(name)
    ms = klass.from_dataset(ds, seeds=(3, 4), **kw)
    info = ms.fit(ds, _prefs(klass, prefs), steps=6, progress=False)
    for k, m in zip((3, 4), ms.split()):
        single = klass.from_dataset(ds, seed=k, **kw)
        ref = single.fit(ds, _prefs(klass, prefs), steps=6, progress=False)
        assert m.num_updates == single.num_updates == 6
        assert _max_param_diff(m, single) < 1e-5, name
        got = info["losses"][ms.seeds.index(k)]
        assert got.keys() == ref["losses"].keys()
        for key, v in ref["losses"].items():
            assert got[key] == pytest.approx(v, rel=1e-4, abs=1e-5, nan_ok=True), (name, key)


def _greedy_return(agent: OfflineAgent) -> float:
    """The toy's expected return of the greedy policy: the share of probe states where its action is > 0."""
    obs = np.random.default_rng(7).normal(size=(256, 3)).astype(np.float32)
    return float((agent.predict(obs)[0][:, 0] > 0).mean())


@pytest.mark.parametrize("name", ["bc", "cplbc", "ipl"])
def test_k_seeds_match_single_seeds_in_distribution(data, name):
    """The return (and final loss) distribution of 4 vmapped seeds matches 4 single-seed runs over 60 updates
    (where float rounding has had time to grow), dropout agents included."""
    ds, prefs = data
    klass = get_agent(name)
    seeds, steps = (0, 1, 2, 3), 60
    kw = _kw(name, lr=3e-3) if name != "ipl" else _kw(name)
    ms = klass.from_dataset(ds, seeds=seeds, **kw)
    info = ms.fit(ds, _prefs(klass, prefs), steps=steps, progress=False)
    multi_ret = np.array([_greedy_return(m) for m in ms.split()])
    single_ret, single_loss = [], []
    for s in seeds:
        a = klass.from_dataset(ds, seed=s, **kw)
        single_loss.append(a.fit(ds, _prefs(klass, prefs), steps=steps, progress=False)["losses"])
        single_ret.append(_greedy_return(a))
    single_ret = np.array(single_ret)
    key = "bc_loss" if name in DROPOUT else "pref_loss"
    multi_loss = np.array([d[key] for d in info["losses"]])
    single_loss = np.array([d[key] for d in single_loss])
    for x, y in ((multi_ret, single_ret), (multi_loss, single_loss)):
        se = np.sqrt(x.var(ddof=1) / len(x) + y.var(ddof=1) / len(y))
        assert abs(x.mean() - y.mean()) <= 4 * se + 0.05 * max(abs(y.mean()), 1e-3), (name, x, y)
    np.testing.assert_allclose(multi_ret, single_ret, atol=0.02)


# ---------------------------------------------------------------------------------------------- split agents


@pytest.mark.parametrize("name", ["iql", "oppo", "cpl"])
def test_split_agents_predict_save_load_and_keep_training(data, tmp_path, name):
    """split() gives ordinary agents; their optimiser state is the seed's own, so training on after a save /
    load continues exactly as the single-seed agent does (CPL: across its optimiser reset after BC)."""
    ds, prefs = data
    klass = get_agent(name)
    kw = _kw(name)
    ms = klass.from_dataset(ds, seeds=(0, 1), **kw)
    ms.fit(ds, _prefs(klass, prefs), steps=5, progress=False)
    paths = ms.save(tmp_path / "seeds")
    obs = ds.observations[:7]
    for agent, path in zip(ms.split(), paths):
        assert type(agent) is klass and agent.num_updates == 5
        back = OfflineAgent.load(path)
        np.testing.assert_array_equal(back.predict(obs)[0], agent.predict(obs)[0])
        single = klass.from_dataset(ds, seed=agent.seed, **kw)
        single.fit(ds, _prefs(klass, prefs), steps=5, progress=False)
        back.fit(ds, _prefs(klass, prefs), steps=3, progress=False)
        single.fit(ds, _prefs(klass, prefs), steps=3, progress=False)
        assert back.num_updates == 8 and _max_param_diff(back, single) < 1e-5
    # the split copies are independent of the MultiSeed's members
    a = ms.split()[0]
    with torch.no_grad():
        next(iter(a.nets.values())).parameters().__next__().add_(1.0)
    assert _max_param_diff(a, ms.members[0]) == pytest.approx(1.0)


def test_multiseed_trains_on_after_a_first_fit(data):
    """A second MultiSeed.fit continues every seed (Adam moments and update count carry over)."""
    ds, prefs = data
    klass = get_agent("ipl")
    ms = klass.from_dataset(ds, seeds=(0, 1), **_kw("ipl"))
    ms.fit(ds, prefs, steps=3, progress=False)
    ms.fit(ds, prefs, steps=3, progress=False)
    single = klass.from_dataset(ds, seed=1, **_kw("ipl"))
    single.fit(ds, prefs, steps=3, progress=False)
    single.fit(ds, prefs, steps=3, progress=False)
    assert ms.num_updates == 6 and _max_param_diff(ms.members[1], single) < 1e-5
