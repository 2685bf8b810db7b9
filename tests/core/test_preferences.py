"""PreferenceDataset: validation, HDF5 round trip and every bad-file error, .npz interchange."""

import h5py
import numpy as np
import pytest

from pbrl.preferences import FORMAT_VERSION, PreferenceDataset
from pbrl.segments import Segments


def rand_segs(n=6, h=4, od=3, ad=2, seed=0, states=False):
    rng = np.random.default_rng(seed)
    kw = {}
    if states:
        kw = {"qpos": rng.normal(size=(n, h, 5)), "qvel": rng.normal(size=(n, h, 4)), "success": rng.random((n, h)) > 0.5}
    return Segments(
        obs=rng.normal(size=(n, h, od)),
        act=rng.normal(size=(n, h, ad)),
        reward=rng.normal(size=(n, h)),
        index=np.arange(n) * 10,
        **kw,
    )


def make_ds(n=6, **kw):
    return PreferenceDataset(
        rand_segs(n, seed=1, **kw), rand_segs(n, seed=2, **kw), np.array([0, 1, 0.5, 1, 0, 1][:n]), metadata={"task_id": "x"}
    )


def test_skipped_labels_are_not_stored_and_append():
    a, b = rand_segs(4, seed=1), rand_segs(4, seed=2)
    ds = PreferenceDataset(a, b, [1.0, np.nan, 0.5, 0.0])
    assert len(ds) == 3
    np.testing.assert_array_equal(ds.label, [1.0, 0.5, 0.0])
    np.testing.assert_array_equal(ds.a.obs[1], a.obs[2])
    added = ds.append(a, b, [np.nan, np.nan, 1.0, 1.0])
    assert added == 2 and len(ds) == 5
    empty = PreferenceDataset.empty(4, 3, 2)
    assert len(empty) == 0
    empty.append(a, b, [1, 0, 1, 0])
    assert len(empty) == 4


def test_label_and_shape_validation():
    a, b = rand_segs(3), rand_segs(3)
    with pytest.raises(ValueError, match="labels must be 0.0"):
        PreferenceDataset(a, b, [0.0, 0.3, 1.0])
    with pytest.raises(ValueError, match="same length"):
        PreferenceDataset(a, b, [0.0, 1.0])
    with pytest.raises(ValueError, match="same shape"):
        PreferenceDataset(a, rand_segs(3, od=4), [0, 1, 1])
    with pytest.raises(ValueError, match="non-finite"):
        Segments(obs=np.full((1, 2, 3), np.nan), act=np.zeros((1, 2, 1)), reward=np.zeros((1, 2)))
    with pytest.raises(ValueError, match="reward must have shape"):
        Segments(obs=np.zeros((2, 3, 3)), act=np.zeros((2, 3, 1)), reward=np.zeros((2, 4)))


def test_split_is_deterministic_and_partitions():
    ds = PreferenceDataset(rand_segs(50, seed=1), rand_segs(50, seed=2), np.random.default_rng(0).integers(0, 2, 50))
    tr, te = ds.split(0.8, seed=3)
    tr2, _ = ds.split(0.8, seed=3)
    assert len(tr) == 40 and len(te) == 10
    np.testing.assert_array_equal(tr.a.obs, tr2.a.obs)
    all_obs = np.concatenate([tr.a.obs, te.a.obs])
    assert sorted(map(bytes, all_obs)) == sorted(map(bytes, ds.a.obs))


def test_hdf5_round_trip_exact(tmp_path):
    ds = make_ds(states=True)
    ds.annotator = np.array(["ann1", "ann2", "ann1", "", "x", "y"])
    p = ds.save(tmp_path / "prefs.h5")
    back = PreferenceDataset.load(p)
    for side in ("a", "b"):
        for f in ("obs", "act", "reward", "qpos", "qvel", "success", "index"):
            np.testing.assert_array_equal(getattr(getattr(back, side), f), getattr(getattr(ds, side), f))
    np.testing.assert_array_equal(back.label, ds.label)
    assert back.metadata == {"task_id": "x"}
    assert list(back.annotator) == list(ds.annotator)
    assert not list(tmp_path.glob(".prefs.h5.*")), "temporary file left behind"


def _write_then_break(path, fn):
    make_ds().save(path)
    with h5py.File(path, "r+") as f:
        fn(f)


def test_bad_files_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no preference file"):
        PreferenceDataset.load(tmp_path / "missing.h5")
    (tmp_path / "junk.h5").write_bytes(b"not hdf5 at all")
    with pytest.raises(ValueError, match="not a readable HDF5"):
        PreferenceDataset.load(tmp_path / "junk.h5")

    cases = {
        "missing key": (lambda f: f.__delitem__("label"), "missing the required key 'label'"),
        "missing sub key": (lambda f: f["b"].__delitem__("act"), "missing the required key 'b/act'"),
        "bad label": (lambda f: f["label"].__setitem__(0, 0.7), "labels must be 0.0"),
        "newer": (lambda f: f.attrs.__setitem__("version", FORMAT_VERSION + 1), "newer than this pbrl reads"),
        "wrong shape": (
            lambda f: (f["a"].__delitem__("reward"), f["a"].create_dataset("reward", data=np.zeros((6, 5)))),
            "reward must have shape",
        ),
        "length mismatch": (
            lambda f: (f.__delitem__("label"), f.create_dataset("label", data=np.zeros(5, np.float32))),
            "same length",
        ),
        "other format": (lambda f: f.attrs.__setitem__("format", "something.else"), "not a pbrl preference"),
    }
    for name, (breaker, msg) in cases.items():
        p = tmp_path / f"{name.replace(' ', '_')}.h5"
        _write_then_break(p, breaker)
        with pytest.raises(ValueError, match=msg):
            PreferenceDataset.load(p)


def test_save_failure_keeps_the_old_file(tmp_path, monkeypatch):
    p = tmp_path / "prefs.h5"
    make_ds().save(p)
    before = p.read_bytes()
    bad = make_ds()
    bad.metadata = {"x": 1}

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(h5py.Group, "create_group", boom)
    with pytest.raises(RuntimeError):
        bad.save(p)
    assert p.read_bytes() == before
    assert not list(tmp_path.glob(".prefs.h5.*"))


def test_npz_import_export(tmp_path):
    rng = np.random.default_rng(0)
    n, h = 5, 7
    z = {
        "obs_1": rng.normal(size=(n, h, 3)),
        "obs_2": rng.normal(size=(n, h, 3)),
        "action_1": rng.normal(size=(n, h, 2)),
        "action_2": rng.normal(size=(n, h, 2)),
        "label": np.array([1.0, 0.0, 0.5, 1.0, 0.0]),
    }
    np.savez(tmp_path / "pub.npz", **z)
    ds = PreferenceDataset.from_npz(tmp_path / "pub.npz")
    assert len(ds) == 5 and ds.segment_length == h
    np.testing.assert_array_equal(ds.label, z["label"])
    np.testing.assert_allclose(ds.b.obs, z["obs_2"].astype(np.float32))
    np.testing.assert_allclose(ds.a.act, z["action_1"].astype(np.float32))
    # one-hot labels [N, 2]: [0, 1] = second preferred
    np.savez(tmp_path / "onehot.npz", **{**z, "label": np.array([[0, 1], [1, 0], [0.5, 0.5], [0, 1], [1, 0]])})
    np.testing.assert_array_equal(PreferenceDataset.from_npz(tmp_path / "onehot.npz").label, z["label"])
    # export and re-import
    out = ds.to_npz(tmp_path / "out.npz")
    back = PreferenceDataset.from_npz(out)
    np.testing.assert_array_equal(back.a.obs, ds.a.obs)
    np.testing.assert_array_equal(back.label, ds.label)
    # errors
    np.savez(tmp_path / "nolabel.npz", **{k: v for k, v in z.items() if k != "label"})
    with pytest.raises(ValueError, match="missing the required key 'label'"):
        PreferenceDataset.from_npz(tmp_path / "nolabel.npz")
    np.savez(tmp_path / "badlabel.npz", **{**z, "label": np.array([2, 0, 1, 1, 0])})
    with pytest.raises(ValueError, match="labels must be"):
        PreferenceDataset.from_npz(tmp_path / "badlabel.npz")
