"""Rating-based feedback: the scripted RatingTeacher (classes follow returns, skip / myopic / mistake options,
state for resume) and RatingDataset (validation, append, HDF5 round trip, every bad-file error)."""

import h5py
import numpy as np
import pytest

from pbrl.preferences import PreferenceDataset
from pbrl.ratings import RatingDataset, load_labels
from pbrl.segments import Segments
from pbrl.teachers import TEACHERS, RatingTeacher, make_teacher, teacher_names


def segs_with_returns(returns, h: int = 5, obs_dim: int = 3, act_dim: int = 2, seed: int = 0) -> Segments:
    """Segments whose true returns are exactly ``returns`` (spread evenly over H steps)."""
    ret = np.asarray(returns, np.float64)
    rng = np.random.default_rng(seed)
    return Segments(obs=rng.normal(size=(len(ret), h, obs_dim)), act=rng.normal(size=(len(ret), h, act_dim)),
                    reward=np.repeat(ret[:, None] / h, h, axis=1))


# ---------------------------------------------------------------------------- teacher
def test_registered_and_built_by_name():
    assert "rating" in TEACHERS and "rating" in teacher_names()
    t = make_teacher("rating", seed=3, n_classes=4)
    assert isinstance(t, RatingTeacher) and t.n_classes == 4 and t.feedback == "rating"
    assert make_teacher("oracle").feedback == "preference"


def test_fixed_bins_follow_returns():
    t = RatingTeacher(n_classes=3, bins=[0.0, 10.0])
    r = t.rate(segs_with_returns([-5.0, 0.0, 3.0, 9.99, 10.0, 50.0]))
    np.testing.assert_array_equal(r, [0, 1, 1, 1, 2, 2])
    assert r.dtype == np.float32


def test_quantile_classes_are_balanced_and_ordered():
    rets = np.random.default_rng(0).normal(size=600) * 7
    r = RatingTeacher(n_classes=4).rate(segs_with_returns(rets))
    np.testing.assert_array_equal(np.bincount(r.astype(int)), [150, 150, 150, 150])
    order = np.argsort(rets)
    assert np.all(np.diff(r[order]) >= 0)  # a higher return never gets a lower class


def test_quantile_boundaries_follow_the_returns_seen():
    t = RatingTeacher(n_classes=2)
    t.rate(segs_with_returns(np.arange(10.0)))  # boundary at the median, 4.5
    assert t.boundaries()[0] == pytest.approx(4.5)
    r = t.rate(segs_with_returns([100.0, 101.0]))  # better than everything seen: both good
    np.testing.assert_array_equal(r, [1, 1])
    assert t.boundaries()[0] > 4.5


def test_skip_below_threshold_and_myopic():
    t = RatingTeacher(n_classes=2, bins=[0.0], eps_skip=0.5, margin=10.0)
    r = t.rate(segs_with_returns([1.0, 4.9, 5.0, 20.0]))
    assert np.isnan(r[:2]).all() and np.isfinite(r[2:]).all()
    # myopic: only the last step of [+10, 0, 0, 0, -1] counts much with gamma 0.1
    seg = Segments(obs=np.zeros((1, 5, 3)), act=np.zeros((1, 5, 2)), reward=[[10.0, 0, 0, 0, -1.0]])
    assert RatingTeacher(n_classes=2, bins=[0.0]).rate(seg)[0] == 1
    assert RatingTeacher(n_classes=2, bins=[0.0], gamma=0.1).rate(seg)[0] == 0


@pytest.mark.parametrize("kind", ["neighbour", "random"])
def test_mistakes_change_the_class_at_the_given_rate(kind):
    n = 6000
    rets = np.tile([0.5, 1.5, 2.5, 3.5, 4.5], n // 5)
    seg = segs_with_returns(rets)
    truth = RatingTeacher(n_classes=5, bins=[1, 2, 3, 4]).rate(seg)
    noisy = RatingTeacher(n_classes=5, bins=[1, 2, 3, 4], eps_mistake=0.2, mistake=kind, seed=1).rate(seg)
    wrong = noisy != truth
    assert abs(wrong.mean() - 0.2) < 0.03
    jump = np.abs(noisy - truth)[wrong]
    if kind == "neighbour":
        assert np.all(jump == 1)
    else:
        assert jump.max() >= 2 and set(np.unique(noisy[wrong & (truth == 0)])) == {1, 2, 3, 4}
    assert noisy.min() >= 0 and noisy.max() <= 4


def test_state_round_trip_gives_the_same_ratings():
    t = RatingTeacher(n_classes=3, eps_mistake=0.3, seed=5)
    t.rate(segs_with_returns(np.arange(20.0)))
    state = t.get_state()
    seg = segs_with_returns(np.linspace(-3, 30, 40))
    first = t.rate(seg)
    t2 = RatingTeacher(n_classes=3, eps_mistake=0.3, seed=99)
    t2.set_state(state)
    np.testing.assert_array_equal(t2.rate(seg), first)


def test_pairs_from_ratings():
    t = RatingTeacher(n_classes=3, bins=[0.0, 10.0])
    lab = t.label(segs_with_returns([-1.0, 5.0, 20.0]), segs_with_returns([20.0, 6.0, 1.0]))
    np.testing.assert_array_equal(lab, [1.0, 0.5, 0.0])


def test_teacher_validation():
    for kw, msg in [({"n_classes": 1}, "n_classes"), ({"bins": [1.0]}, "n_classes - 1"),
                    ({"bins": [2.0, 1.0]}, "increasing"), ({"mistake": "flip"}, "mistake kind"),
                    ({"eps_mistake": 2.0}, "eps_mistake"), ({"gamma": 0.0}, "gamma")]:
        with pytest.raises(ValueError, match=msg):
            RatingTeacher(**{"n_classes": 3, **kw})


# ---------------------------------------------------------------------------- dataset
def test_dataset_drops_skips_appends_and_counts():
    seg = segs_with_returns(np.arange(5.0))
    ds = RatingDataset(seg, [0, np.nan, 2, 1, 2], 3)
    assert len(ds) == 4 and ds.rating.dtype == np.int64
    np.testing.assert_array_equal(ds.segments.obs[1], seg.obs[2])
    np.testing.assert_array_equal(ds.class_counts(), [1, 1, 2])
    empty = RatingDataset.empty(5, 3, 2, n_classes=3)
    assert empty.append(seg, [np.nan] * 5) == 0 and empty.append(seg, [0, 1, 2, 0, 1]) == 5 and len(empty) == 5
    first, rest = ds.split(0.5, seed=0)
    assert len(first) == 2 and len(rest) == 2


def test_dataset_validation():
    seg = segs_with_returns(np.arange(3.0))
    for rating, msg in [([0, 1, 3], r"integer classes in \[0, 2\]"), ([0, 1.5, 2], "integer classes"),
                        ([0, -1, 1], "integer classes"), ([0, 1], "same length")]:
        with pytest.raises(ValueError, match=msg):
            RatingDataset(seg, rating, 3)
    with pytest.raises(ValueError, match="n_classes must be >= 2"):
        RatingDataset(seg, [0, 0, 0], 1)
    with pytest.raises(TypeError, match="Segments"):
        RatingDataset(np.zeros((3, 5, 3)), [0, 0, 0], 2)
    with pytest.raises(ValueError, match="cannot append"):
        RatingDataset(seg, [0, 1, 2], 3).append(segs_with_returns([1.0], obs_dim=4), [1])


def test_hdf5_round_trip(tmp_path):
    seg = segs_with_returns(np.arange(6.0))
    ds = RatingDataset(seg, [0, 1, 2, 3, 0, 1], 4, metadata={"task_id": "x"}, annotator=list("abcdef"))
    path = ds.save(tmp_path / "r.h5")
    back = RatingDataset.load(path)
    assert back.n_classes == 4 and back.metadata == {"task_id": "x"}
    np.testing.assert_array_equal(back.rating, ds.rating)
    np.testing.assert_array_equal(back.segments.obs, seg.obs)
    np.testing.assert_array_equal(back.segments.reward, seg.reward)
    assert list(back.annotator) == list("abcdef")
    assert isinstance(load_labels(path), RatingDataset)
    assert not list(tmp_path.glob(".r.h5.*"))  # the atomic write left no temp file


def test_bad_files_give_one_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no rating file"):
        RatingDataset.load(tmp_path / "missing.h5")
    (tmp_path / "junk.h5").write_text("not hdf5")
    with pytest.raises(ValueError, match="not a readable HDF5"):
        RatingDataset.load(tmp_path / "junk.h5")
    seg = segs_with_returns(np.arange(2.0))
    PreferenceDataset(seg, seg, [1.0, 0.0]).save(tmp_path / "prefs.h5")
    with pytest.raises(ValueError, match="not a pbrl rating dataset"):
        RatingDataset.load(tmp_path / "prefs.h5")
    assert isinstance(load_labels(tmp_path / "prefs.h5"), PreferenceDataset)
    p = RatingDataset(seg, [0, 1], 2).save(tmp_path / "r.h5")
    with h5py.File(p, "r+") as f:
        f["rating"][...] = [0, 7]
    with pytest.raises(ValueError, match=r"r\.h5: ratings must be integer classes"):
        RatingDataset.load(p)
    with h5py.File(p, "r+") as f:
        f.attrs["version"] = 9
    with pytest.raises(ValueError, match="version 9"):
        RatingDataset.load(p)
