"""Offline datasets: D4RL HDF5 and Minari round trips, qlearning_view, labelling, index-label import, errors."""

from __future__ import annotations

import pickle

import h5py
import numpy as np
import pytest

from pbrl.envs.collect import collect
from pbrl.envs.datasets import (
    D4RL_REF_SCORES,
    OfflineDataset,
    d4rl_key,
    from_minari,
    import_index_labels,
    label_dataset,
    load_d4rl,
    load_dataset,
    normalized_score,
    save_d4rl,
    to_minari,
)
from pbrl.preferences import PreferenceDataset

ARRAYS = ("observations", "actions", "rewards", "terminals", "timeouts", "next_observations", "success")


@pytest.fixture(scope="module")
def hopper() -> OfflineDataset:
    """~2000 random steps of Hopper: many short episodes ending in terminals, two cut by time-outs."""
    return collect("mujoco/Hopper-v5", "random", n_steps=2000, seed=0, n_envs=2,
                   reference={"ref_min_return": 10.0, "ref_max_return": 110.0})


@pytest.fixture(scope="module")
def button() -> OfflineDataset:
    """Scripted Meta-World data with two noise levels and an early stop: ends by time-outs only."""
    return collect("metaworld/button-press-v3", "scripted", n_steps=600, seed=1, noise=[0.1, 0.5], early_stop=5)


def assert_same(a: OfflineDataset, b: OfflineDataset) -> None:
    for k in ARRAYS:
        x, y = getattr(a, k), getattr(b, k)
        assert (x is None) == (y is None), k
        if x is not None:
            assert x.dtype == y.dtype and np.array_equal(x, y), k
    assert sorted(a.infos) == sorted(b.infos)
    for k in a.infos:
        assert a.infos[k].dtype == b.infos[k].dtype and np.array_equal(a.infos[k], b.infos[k]), k
    assert a.metadata == b.metadata


def handmade(next_obs: bool = False) -> OfflineDataset:
    """Three episodes: [0..3] terminal, [4..7] time-out, [8..9] open at the end. obs[t] = t."""
    T = 10
    obs = np.arange(T, dtype=np.float32)[:, None].repeat(2, 1)
    term = np.zeros(T, bool)
    term[3] = True
    tout = np.zeros(T, bool)
    tout[7] = True
    return OfflineDataset(obs, np.zeros((T, 1)), np.arange(T) * 1.0, term, tout,
                          next_observations=obs + 0.5 if next_obs else None)


# ---------------------------------------------------------------------- D4RL HDF5
def test_d4rl_round_trip_is_exact(hopper, tmp_path):
    path = save_d4rl(hopper, tmp_path / "hopper.hdf5")
    back = load_d4rl(path)
    assert_same(hopper, back)
    assert back.infos["qpos"].shape == (2000, 6) and back.infos["qvel"].shape == (2000, 6)
    # via the generic loader as well
    assert_same(hopper, load_dataset(str(path)))


def test_handcrafted_d4rl_v2_file_loads(tmp_path):
    """A file written the way D4RL's v2 MuJoCo files are: float32 arrays, bool flags, infos/*, metadata/*."""
    rng = np.random.default_rng(0)
    T, od, ad = 30, 11, 3
    path = tmp_path / "hopper-medium-v2.hdf5"
    with h5py.File(path, "w") as f:
        f["observations"] = rng.normal(size=(T, od)).astype(np.float32)
        f["next_observations"] = rng.normal(size=(T, od)).astype(np.float32)
        f["actions"] = rng.uniform(-1, 1, size=(T, ad)).astype(np.float32)
        f["rewards"] = rng.normal(size=T).astype(np.float32)
        term = np.zeros(T, bool)
        term[9] = True
        tout = np.zeros(T, bool)
        tout[19] = True
        f["terminals"] = term
        f["timeouts"] = tout
        f["infos/qpos"] = rng.normal(size=(T, 6))
        f["infos/qvel"] = rng.normal(size=(T, 6))
        f["infos/action_log_probs"] = rng.normal(size=T).astype(np.float32)
        f["metadata/algorithm"] = np.bytes_("SAC")
        f["metadata/iteration"] = np.int64(1000000)
    ds = load_d4rl(path)
    assert len(ds) == T and ds.obs_dim == od and ds.act_dim == ad
    assert ds.n_episodes == 3
    starts, ends = ds.episode_bounds
    assert starts.tolist() == [0, 10, 20] and ends.tolist() == [9, 19, 29]
    assert ds.metadata["d4rl"] == {"algorithm": "SAC", "iteration": 1000000}
    with h5py.File(path, "r") as f:
        assert np.array_equal(ds.rewards, f["rewards"][()])
        assert np.array_equal(ds.infos["qpos"], f["infos/qpos"][()])
    eps = list(ds.episodes())
    assert [e.start for e in eps] == [0, 10, 20]
    assert eps[0].terminated and not eps[1].terminated
    assert eps[1].qpos.shape == (10, 6)
    assert np.array_equal(eps[1].next_obs, ds.next_observations[19])


@pytest.mark.parametrize(
    "breakage, message",
    [
        ("missing", "missing the required key"),
        ("length", "same length"),
        ("nan", "'rewards' contains NaN"),
        ("notfile", "not a readable HDF5"),
    ],
)
def test_malformed_files_give_one_clear_error(tmp_path, breakage, message):
    path = tmp_path / "bad.hdf5"
    T = 12
    if breakage == "notfile":
        path.write_text("this is not HDF5")
    else:
        with h5py.File(path, "w") as f:
            f["observations"] = np.zeros((T, 3), np.float32)
            f["actions"] = np.zeros((T - 1 if breakage == "length" else T, 2), np.float32)
            r = np.zeros(T, np.float32)
            if breakage == "nan":
                r[5] = np.nan
            f["rewards"] = r
            f["terminals"] = np.zeros(T, bool)
            if breakage != "missing":
                f["timeouts"] = np.zeros(T, bool)
    with pytest.raises(ValueError, match=message):
        load_d4rl(path)


def test_constructor_validates():
    with pytest.raises(ValueError, match="next_observations must have shape"):
        OfflineDataset(np.zeros((4, 2)), np.zeros((4, 1)), np.zeros(4), np.zeros(4), np.zeros(4),
                       next_observations=np.zeros((4, 3)))
    with pytest.raises(ValueError, match="infos/qpos must have 4 rows"):
        OfflineDataset(np.zeros((4, 2)), np.zeros((4, 1)), np.zeros(4), np.zeros(4), np.zeros(4),
                       infos={"qpos": np.zeros((3, 2))})
    with pytest.raises(ValueError, match="'observations' contains NaN or inf at 1 step"):
        OfflineDataset(np.array([[0.0], [np.inf]]), np.zeros((2, 1)), np.zeros(2), np.zeros(2), np.zeros(2))


def test_save_is_atomic_on_failure(hopper, tmp_path):
    path = save_d4rl(hopper, tmp_path / "d.hdf5")
    before = path.read_bytes()
    bad = handmade()
    bad.metadata["x"] = object()  # not JSON: save must fail and leave the old file alone
    with pytest.raises(TypeError):
        save_d4rl(bad, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["d.hdf5"]


# ---------------------------------------------------------------------- episodes and the q-learning view
def test_episodes_cover_the_flat_arrays(hopper):
    eps = list(hopper.episodes())
    assert sum(len(e) for e in eps) == len(hopper)
    assert len(eps) == hopper.n_episodes
    for e in eps:
        s = e.start
        assert np.array_equal(e.obs, hopper.observations[s : s + len(e)])
        assert np.array_equal(e.qpos, hopper.infos["qpos"][s : s + len(e)].astype(np.float32))
        assert np.array_equal(e.next_obs, hopper.next_observations[s + len(e) - 1])
        assert e.terminated == bool(hopper.terminals[s + len(e) - 1])
    assert np.allclose([e.ret for e in eps], hopper.episode_returns(), atol=1e-3)


def test_qlearning_view_never_links_episodes_without_next_observations():
    ds = handmade(next_obs=False)
    q = ds.qlearning_view()
    # D4RL's rows: every t < T-1 except time-outs -> drops 7 (time-out) and 9 (last)
    assert q["index"].tolist() == [0, 1, 2, 3, 4, 5, 6, 8]
    nxt = q["next_observations"][:, 0]
    # inside episodes s' = s + 1; at the terminal step 3 it must NOT be 4 (next episode's first step)
    assert nxt.tolist() == [1, 2, 3, 3, 5, 6, 7, 9]
    assert q["terminals"].tolist() == [0, 0, 0, 1, 0, 0, 0, 0]
    with pytest.raises(ValueError, match="needs next_observations"):
        ds.qlearning_view(keep_timeouts=True)


def test_qlearning_view_with_next_observations(hopper):
    q = hopper.qlearning_view()
    idx = q["index"]
    assert not hopper.timeouts[idx].any() and idx.max() < len(hopper) - 1
    assert np.array_equal(q["next_observations"], hopper.next_observations[idx])
    starts, ends = hopper.episode_bounds
    # at every episode's last step, s' is the true final observation, never the next episode's first one
    at_end = np.isin(idx, ends)
    assert at_end.sum() > 10
    first_of_next = hopper.observations[np.minimum(idx[at_end] + 1, len(hopper) - 1)]
    assert not np.any(np.all(q["next_observations"][at_end] == first_of_next, axis=1))
    full = hopper.qlearning_view(keep_timeouts=True)
    assert len(full["index"]) == len(hopper)


# ---------------------------------------------------------------------- scores
def test_normalized_scores():
    for task in ("mujoco/Hopper-v5", "mujoco/Hopper-v4", "hopper-medium-v2", "mujoco/hopper/medium-v0",
                 "Hopper-v5", "hopper-medium-replay-v2", "mujoco/Hopper-v5/medium-replay"):
        lo, hi = D4RL_REF_SCORES["hopper"]
        assert np.allclose(normalized_score(task, [lo, hi]), [0.0, 100.0])
    assert np.isclose(normalized_score("mujoco/HalfCheetah-v5", 12135.0), 100.0)
    assert np.isclose(normalized_score("mujoco/half_cheetah/expert-v0", 12135.0), 100.0)
    assert np.isclose(normalized_score("mujoco/Walker2d-v5", 1.629008), 0.0)
    assert np.isclose(normalized_score("mujoco/Ant-v5", 3879.7), 100.0)
    with pytest.raises(ValueError, match="no reference scores known"):
        normalized_score("metaworld/button-press-v3", 1.0)
    meta = {"ref_min_return": 100.0, "ref_max_return": 300.0}
    assert np.isclose(normalized_score("metaworld/button-press-v3", 200.0, metadata=meta), 50.0)


def test_d4rl_reference_returns_are_d4rls_infos():
    """The values of d4rl/infos.py (REF_MIN_SCORE / REF_MAX_SCORE of <env>-random-v0, reused by v1 and v2)."""
    assert D4RL_REF_SCORES == {"hopper": (-20.272305, 3234.3), "walker2d": (1.629008, 4592.3),
                               "halfcheetah": (-280.178953, 12135.0), "ant": (-325.6, 3879.7)}


def test_only_gym_mujoco_locomotion_gets_d4rl_references():
    assert d4rl_key("dmc/hopper-hop") is None and d4rl_key("dmc/walker-walk") is None  # other robots
    assert d4rl_key("metaworld/assembly-v3") is None
    assert d4rl_key("mujoco/Reacher-v5") is None and d4rl_key("mujoco/InvertedPendulum-v5") is None
    assert d4rl_key("mujoco/Walker2d-v5") == "walker2d" and d4rl_key("ant-medium-expert-v2") == "ant"


def test_dataset_normalized_score_is_d4rls_on_locomotion(hopper, button):
    """A locomotion dataset's own measured references (here 10 / 110, like the old pbrl Hopper "expert" at
    580) never set its normalised score: D4RL's do, as in every paper. Other tasks use the metadata."""
    lo, hi = D4RL_REF_SCORES["hopper"]
    assert hopper.metadata["ref_max_return"] == 110.0
    assert np.allclose(hopper.normalized_score([lo, hi, 580.0]), [0.0, 100.0, 100 * (580 - lo) / (hi - lo)])
    assert np.isclose(normalized_score(hopper, 3234.3), 100.0)
    assert np.isclose(hopper.summary()["normalized_return_mean"],
                      float(np.mean(100 * (hopper.episode_returns() - lo) / (hi - lo))))
    with pytest.raises(ValueError, match="no ref_min_return"):
        button.normalized_score(1.0)
    button_ref = OfflineDataset(button.observations, button.actions, button.rewards, button.terminals,
                                button.timeouts, metadata={**button.metadata, "ref_min_return": 0.0,
                                                           "ref_max_return": 10.0})
    assert np.isclose(button_ref.normalized_score(5.0), 50.0)


# ---------------------------------------------------------------------- Minari
def test_minari_round_trip_is_exact(hopper, button, tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    for ds, mid in ((hopper, "pbrl/hopper/random-v0"), (button, "pbrl/button-press/scripted-v0")):
        to_minari(ds, mid)
        back = from_minari(mid)
        assert_same(ds, back)
        assert_same(ds, load_dataset(mid))
    # without next_observations (a legacy D4RL file): Minari needs a final observation, pbrl remembers
    legacy = handmade(next_obs=False)
    to_minari(legacy, "pbrl/toy/legacy-v0")
    assert_same(legacy, from_minari("pbrl/toy/legacy-v0"))
    with pytest.raises(ValueError, match="already exists"):
        to_minari(hopper, "pbrl/hopper/random-v0")
    with pytest.raises(ValueError, match="no local Minari dataset"):
        from_minari("mujoco/hopper/medium-v0")


def test_from_minari_reads_a_foreign_dataset(tmp_path, monkeypatch):
    """A dataset written by Minari itself as its collector does: infos of length T+1 (reset info first),
    no pbrl side file, reference scores in Minari's metadata."""
    import gymnasium as gym
    import minari
    from minari.data_collector.episode_buffer import EpisodeBuffer

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    rng = np.random.default_rng(0)
    bufs, lens = [], (5, 7)
    for i, T in enumerate(lens):
        bufs.append(EpisodeBuffer(
            id=i,
            observations=rng.normal(size=(T + 1, 4)).astype(np.float32),
            actions=rng.uniform(-1, 1, size=(T, 2)).astype(np.float32),
            rewards=list(rng.normal(size=T)),
            terminations=[False] * (T - 1) + [i == 0],
            truncations=[False] * (T - 1) + [i == 1],
            infos={"qpos": np.arange(T + 1, dtype=np.float64)[:, None] * np.ones((1, 3)),
                   "success": np.arange(T + 1) == T},
        ))
    minari.create_dataset_from_buffers(
        "other/thing/expert-v0", bufs,
        observation_space=gym.spaces.Box(-np.inf, np.inf, (4,), np.float32),
        action_space=gym.spaces.Box(-1, 1, (2,), np.float32),
        algorithm_name="ppo",
    ).storage.update_metadata({"ref_min_score": 0.0, "ref_max_score": 10.0})
    ds = from_minari("other/thing/expert-v0")
    assert len(ds) == 12 and ds.n_episodes == 2
    assert ds.terminals.tolist() == [False] * 4 + [True] + [False] * 7
    assert ds.timeouts[-1] and not ds.timeouts[:-1].any() and ds.n_episodes == 2
    assert np.array_equal(ds.observations[:5], bufs[0].observations[:5])
    assert np.array_equal(ds.next_observations[4], bufs[0].observations[5])
    # qpos[t] is the state of observations[t] (infos[0..T-1]); success[t] is the flag after step t
    assert ds.infos["qpos"][:5, 0].tolist() == [0, 1, 2, 3, 4]
    assert ds.success.tolist() == [False] * 4 + [True] + [False] * 6 + [True]
    assert ds.metadata["ref_min_return"] == 0.0 and ds.metadata["ref_max_return"] == 10.0
    assert np.isclose(ds.normalized_score(5.0), 50.0)


# ---------------------------------------------------------------------- preference datasets
@pytest.mark.parametrize("stratified", [False, True])
def test_labels_from_a_dataset_agree_with_the_oracle(hopper, tmp_path, stratified):
    H = 10
    prefs = label_dataset(hopper, "oracle", 300, segment_length=H, seed=3, stratified=stratified)
    assert len(prefs) == 300
    ra, rb = prefs.a.returns(), prefs.b.returns()
    assert np.array_equal(prefs.label, (rb > ra).astype(np.float32))
    starts, ends = hopper.episode_bounds
    for seg in (prefs.a, prefs.b):
        for i in (0, 17, 299):
            s = int(seg.index[i])
            assert np.array_equal(seg.obs[i], hopper.observations[s : s + H])
            assert np.array_equal(seg.reward[i], hopper.rewards[s : s + H])
            assert np.array_equal(seg.qpos[i], hopper.infos["qpos"][s : s + H].astype(np.float32))
        # never across an episode boundary
        ep = np.searchsorted(ends, seg.index)
        assert np.all(seg.index + H - 1 <= ends[ep])
    assert prefs.metadata["dataset_id"] == hopper.dataset_id
    assert prefs.metadata["task_id"] == "mujoco/Hopper-v5"
    back = PreferenceDataset.load(prefs.save(tmp_path / "p.h5"))
    assert np.array_equal(back.a.index, prefs.a.index) and back.metadata == prefs.metadata
    # same seed, same pairs
    again = label_dataset(hopper, "oracle", 300, segment_length=H, seed=3, stratified=stratified)
    assert np.array_equal(again.a.index, prefs.a.index) and np.array_equal(again.b.index, prefs.b.index)


def test_stratified_sampling_reaches_rare_high_returns(hopper):
    H = 10
    uni = label_dataset(hopper, "oracle", 2000, segment_length=H, seed=0)
    strat = label_dataset(hopper, "oracle", 2000, segment_length=H, seed=0, stratified=True)
    rets = np.concatenate([uni.a.returns(), strat.a.returns()])
    lo, hi = rets.min() + 0.2 * (rets.max() - rets.min()), rets.min() + 0.8 * (rets.max() - rets.min())

    def extreme(r):  # share of segments in the bottom or top fifth of the return range
        return ((r < lo) | (r > hi)).mean()

    assert extreme(strat.a.returns()) > 2 * extreme(uni.a.returns())


def test_label_dataset_rejects_bad_input(hopper):
    with pytest.raises(ValueError, match="n_pairs must be a positive integer"):
        label_dataset(hopper, "oracle", -3)
    with pytest.raises(ValueError, match="no episode is long enough"):
        label_dataset(hopper, "oracle", 10, segment_length=5000)
    with pytest.raises(ValueError, match="unknown teacher"):
        label_dataset(hopper, "nobody", 10)


def test_index_style_labels_import(tmp_path):
    """Indices address D4RL's q-learning rows (time-out steps dropped), labels 0 first / 1 second / -1 tie."""
    rng = np.random.default_rng(0)
    T, H = 300, 8
    obs = rng.normal(size=(T, 3)).astype(np.float32)
    tout = np.zeros(T, bool)
    tout[[49, 149, 249]] = True  # D4RL drops these rows, so q-view rows shift against flat indices
    term = np.zeros(T, bool)
    term[99] = True
    ds = OfflineDataset(obs, rng.normal(size=(T, 2)), rng.normal(size=T), term, tout,
                        infos={"qpos": rng.normal(size=(T, 4))}, metadata={"dataset_id": "toy-v2"})
    path = save_d4rl(ds, tmp_path / "toy.hdf5")
    q = ds.qlearning_view()
    assert len(q["index"]) == T - 4
    n = 40
    i1 = rng.integers(0, len(q["index"]) - H, size=n)
    i2 = rng.integers(0, len(q["index"]) - H, size=n)
    lab = rng.choice([0, 1, -1], size=n)
    files = {}
    for name, arr in (("indices_num40", i1), ("indices_2_num40", i2), ("label_human", lab)):
        files[name] = tmp_path / name
        with open(files[name], "wb") as fh:
            pickle.dump(arr, fh)
    prefs = import_index_labels(path, files["indices_num40"], files["indices_2_num40"], files["label_human"], H)
    assert len(prefs) == n
    assert np.array_equal(prefs.label, np.select([lab == 0, lab == 1], [0.0, 1.0], 0.5).astype(np.float32))
    for i in range(n):
        assert np.array_equal(prefs.a.obs[i], q["observations"][i1[i] : i1[i] + H])
        assert np.array_equal(prefs.b.act[i], q["actions"][i2[i] : i2[i] + H])
        assert prefs.a.index[i] == q["index"][i1[i]]
        assert np.array_equal(prefs.b.qpos[i], ds.infos["qpos"][q["index"][i2[i] : i2[i] + H]].astype(np.float32))
    assert (prefs.a.index != i1).any()  # the shift is real
    # one-hot labels (Preference Transformer's in-memory form) give the same result
    onehot = np.zeros((n, 2))
    onehot[lab == 0, 0] = 1
    onehot[lab == 1, 1] = 1
    onehot[lab == -1] = 0.5
    again = import_index_labels(ds, i1, i2, onehot, H)
    assert np.array_equal(again.label, prefs.label)
    # like the published loaders, num_query keeps the last queries
    tail = import_index_labels(ds, i1, i2, lab, H, num_query=10)
    assert np.array_equal(tail.a.index, prefs.a.index[-10:]) and np.array_equal(tail.label, prefs.label[-10:])
    # who labelled: one id for all, or one per label (cut with the labels); unknown by default
    assert prefs.user is None and set(import_index_labels(ds, i1, i2, lab, H, user="crowd").user) == {"crowd"}
    ids = np.array([f"w{k % 3}" for k in range(n)])
    assert import_index_labels(ds, i1, i2, lab, H, num_query=10, user=ids).user.tolist() == ids[-10:].tolist()
    with pytest.raises(ValueError, match="user must be one id or 40 ids"):
        import_index_labels(ds, i1, i2, lab, H, user=ids[:5])
    # errors
    with pytest.raises(ValueError, match="same length"):
        import_index_labels(ds, i1, i2[:-1], lab, H)
    with pytest.raises(ValueError, match="must be 0 \\(first preferred\\), 1"):
        import_index_labels(ds, i1, i2, lab + 5, H)
    with pytest.raises(ValueError, match="matching D4RL file"):
        import_index_labels(ds, i1 + T, i2, lab, H)
