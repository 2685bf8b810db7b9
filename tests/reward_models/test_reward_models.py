"""Reward models: Bradley-Terry ensemble, Gaussian reward, SURF options, metrics, persistence, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import synthetic_pairs as synthetic

from pbrl.envs import make_env, rollout
from pbrl.preferences import PreferenceDataset
from pbrl.reward_models import (
    BatchedMLP,
    BradleyTerryLoss,
    GaussianRewardModel,
    RewardEnsemble,
    TemporalCrop,
    evaluate_reward_model,
    load_reward_model,
)
from pbrl.reward_models.training import soft_cross_entropy
from pbrl.segments import sample_segment_pairs
from pbrl.teachers import ScriptedTeacher

OBS, ACT = 17, 6


@pytest.fixture(scope="module")
def cheetah():
    """Oracle-labelled HalfCheetah pairs: 500 for training and 300 held out."""
    env = make_env("mujoco/HalfCheetah-v5", seed=0)
    trajs = rollout(env, "random", n_steps=3000, seed=0)
    env.close()
    a, b = sample_segment_pairs(trajs, 800, 50, np.random.default_rng(1))
    lab = ScriptedTeacher.preset("oracle").label(a, b)
    ds = PreferenceDataset(a, b, lab, metadata={"task_id": "mujoco/HalfCheetah-v5"})
    return ds.subset(np.arange(500)), ds.subset(np.arange(500, 800))


# --------------------------------------------------------------------------------------- learning
def test_500_oracle_labels_order_held_out_pairs_like_true_return(cheetah):
    train, test = cheetah
    model = RewardEnsemble(OBS, ACT, n_members=3, hidden=(64, 64), lr=1e-3, seed=0)
    info = model.fit(train, epochs=60, early_stop_accuracy=0.99)
    assert set(info) >= {"loss", "accuracy", "member_accuracy", "member_loss", "epochs", "history"}
    assert len(info["member_accuracy"]) == 3 and info["accuracy"] > 0.95
    m = evaluate_reward_model(model, test)
    assert m["ordering_agreement"] >= 0.90, m
    assert m["label_accuracy"] >= 0.90, m
    assert m["pearson"] > 0.5, m
    # the learned reward is a tanh output in [-1, 1]
    r = model.predict(test.a.obs, test.a.act)
    assert r.shape == (300, 50) and np.abs(r).max() <= 1.0


def test_gaussian_reward_model_learns_and_reports_learned_sigma(cheetah):
    train, test = cheetah
    model = GaussianRewardModel(OBS, ACT, n_members=1, hidden=(64, 64), lr=1e-3, kl_weight=1e-3, seed=0)
    model.fit(train.subset(np.arange(300)), epochs=40, early_stop_accuracy=0.99)
    m = evaluate_reward_model(model, test)
    assert m["ordering_agreement"] >= 0.85, m
    # one member: std is exactly the learned sigma, and predict the learned mean
    sig = model.member_std(test.a.obs, test.a.act)[0]
    np.testing.assert_allclose(model.std(test.a.obs, test.a.act), sig, rtol=1e-5)
    assert np.all(sig > 0)
    with torch.no_grad():
        x = torch.as_tensor(np.concatenate([test.a.obs[:2], test.a.act[:2]], -1).reshape(-1, OBS + ACT))
        mu, _ = model._heads(x)
    np.testing.assert_allclose(model.predict(test.a.obs[:2], test.a.act[:2]).ravel(), mu[0].numpy(), rtol=1e-6)


def test_gaussian_kl_weight_pulls_rewards_towards_unit_gaussian():
    ds = synthetic(n=128, seed=3)
    kw = dict(n_members=2, hidden=(32,), lr=3e-3, seed=0, output="linear")
    weak = GaussianRewardModel(4, 2, kl_weight=0.0, **kw)
    strong = GaussianRewardModel(4, 2, kl_weight=10.0, **kw)
    for m in (weak, strong):
        m.fit(ds, epochs=60, early_stop_accuracy=None)
    o, a = ds.a.obs, ds.a.act
    # the KL term to N(0, 1) shrinks the mean and keeps sigma near 1 (log sigma^2 near 0)
    assert np.abs(strong.predict(o, a)).mean() < np.abs(weak.predict(o, a)).mean()
    assert np.abs(np.log(strong.member_std(o, a))).mean() < np.abs(np.log(weak.member_std(o, a))).mean()


def test_soft_half_labels_give_equal_preference():
    tie = synthetic(n=64, seed=1, label=0.5)
    model = RewardEnsemble(4, 2, n_members=2, hidden=(32,), lr=3e-3, seed=0, output="linear")
    info = model.fit(tie, epochs=150, early_stop_accuracy=None)
    p = model.preference_probs(tie.a, tie.b)
    assert np.abs(p - 0.5).mean() < 0.1
    # the soft cross-entropy with target [0.5, 0.5] has its minimum log 2 at P = 0.5
    assert info["loss"] == pytest.approx(np.log(2), abs=0.02)
    # tied pairs are not counted in accuracy (all ties: undefined)
    assert np.isnan(info["accuracy"])
    # the same pairs with hard labels are separated instead
    hard = synthetic(n=64, seed=1)
    model2 = RewardEnsemble(4, 2, n_members=2, hidden=(32,), lr=3e-3, seed=0, output="linear")
    model2.fit(hard, epochs=150, early_stop_accuracy=None)
    p2 = model2.preference_probs(hard.a, hard.b)
    assert np.abs(p2 - 0.5).mean() > 0.3


def test_mixed_ties_count_only_decided_pairs_in_accuracy():
    ds = synthetic(n=40, seed=2)
    ds.label[:20] = 0.5
    model = RewardEnsemble(4, 2, n_members=2, hidden=(16,), seed=0)
    res = model._evaluate_pairs(ds.a, ds.b, ds.label)
    ra, rb = model.segment_returns(ds.a), model.segment_returns(ds.b)
    expect = (((rb > ra) == (ds.label > 0.5))[:, 20:]).mean(axis=1)
    np.testing.assert_allclose(res["member_accuracy"], expect, rtol=1e-6)


# --------------------------------------------------------------------------------------- batching
def test_ensemble_is_one_batched_forward_not_a_loop_over_members(monkeypatch):
    M, n_layers = 5, 3  # hidden=(16, 16) -> 3 linear layers
    model = RewardEnsemble(4, 2, n_members=M, hidden=(16, 16), seed=0)
    calls = {"n": 0}
    real = torch.baddbmm

    def counting(*args, **kw):
        calls["n"] += 1
        return real(*args, **kw)

    monkeypatch.setattr(torch, "baddbmm", counting)
    obs = np.random.default_rng(0).normal(size=(1000, 4))
    act = np.zeros((1000, 2))
    model.net.n_forward_calls = 0
    r = model.member_rewards(obs, act)
    assert r.shape == (M, 1000)
    # one forward of the batched net, one matmul per layer for ALL members (a loop would cost M x)
    assert model.net.n_forward_calls == 1
    assert calls["n"] == n_layers

    # training: one forward per minibatch for all M members
    ds = synthetic(n=64, H=5, seed=0)
    calls["n"] = 0
    model.net.n_forward_calls = 0
    model.fit(ds, epochs=3, batch_size=16, early_stop_accuracy=None)
    assert model.net.n_forward_calls == 3 * 4
    assert calls["n"] == 3 * 4 * n_layers
    # the loop alternative: M single-member networks cost M forward calls per minibatch
    singles = [RewardEnsemble(4, 2, n_members=1, hidden=(16, 16), seed=s) for s in range(M)]
    for s in singles:
        s.net.n_forward_calls = 0
        s.fit(ds, epochs=3, batch_size=16, early_stop_accuracy=None)
    assert sum(s.net.n_forward_calls for s in singles) == M * model.net.n_forward_calls


def test_batched_members_equal_separate_networks():
    net = BatchedMLP(3, 5, 1, hidden=(8, 8), seed=0)
    x = torch.randn(7, 5)
    out = net(x)  # [3, 7, 1]
    for m in range(3):
        h = x
        for i, (w, b) in enumerate(zip(net.weights, net.biases)):
            h = h @ w[m] + b[m, 0]
            if i < 2:
                h = torch.nn.functional.leaky_relu(h)
        torch.testing.assert_close(out[m], h)
    # members are initialised independently
    assert not torch.allclose(out[0], out[1])


def test_predict_any_leading_shape_chunked_numpy():
    model = RewardEnsemble(4, 2, n_members=3, hidden=(16,), seed=0)
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(2, 3, 7, 4))  # float64 numpy, no torch
    act = rng.uniform(-1, 1, size=(2, 3, 7, 2))
    full = model.predict(obs, act)
    assert full.shape == (2, 3, 7) and full.dtype == np.float32
    model.predict_chunk = 5  # forces 9 chunks of 42 rows
    np.testing.assert_allclose(model.predict(obs, act), full, rtol=1e-6)
    assert model.std(obs, act).shape == (2, 3, 7)
    assert model.member_rewards(obs, act).shape == (3, 2, 3, 7)
    assert model.predict(obs[0, 0, 0], act[0, 0, 0]).shape == ()
    np.testing.assert_allclose(model.member_rewards(obs, act).mean(0), full, rtol=1e-6)


def test_preference_probs_shape_and_symmetry():
    ds = synthetic(n=20, seed=4)
    model = RewardEnsemble(4, 2, n_members=4, hidden=(16,), seed=0)
    p = model.preference_probs(ds.a, ds.b)
    assert p.shape == (4, 20) and np.all((p >= 0) & (p <= 1))
    np.testing.assert_allclose(model.preference_probs(ds.b, ds.a), 1 - p, atol=1e-6)
    diff = model.segment_returns(ds.b) - model.segment_returns(ds.a)
    np.testing.assert_allclose(p, 1 / (1 + np.exp(-diff.astype(np.float64))), rtol=1e-6)


def test_input_normalisation_comes_from_training_data():
    ds = synthetic(n=32, seed=5)
    ds.a.obs[..., 1] += 100.0
    ds.b.obs[..., 1] += 100.0
    model = RewardEnsemble(4, 2, n_members=2, hidden=(8,), seed=0)
    model.fit(ds, epochs=1)
    allx = np.concatenate([np.concatenate([s.obs, s.act], -1).reshape(-1, 6) for s in (ds.a, ds.b)])
    np.testing.assert_allclose(model.in_mean.numpy(), allx.mean(0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(model.in_std.numpy(), allx.std(0), rtol=1e-3)


# --------------------------------------------------------------------------------------- training options
def test_same_seed_same_model_and_bootstrap_changes_training():
    ds = synthetic(n=48, seed=6)
    outs = []
    for boot in (False, False, True):
        m = RewardEnsemble(4, 2, n_members=2, hidden=(16,), seed=3, bootstrap=boot)
        m.fit(ds, epochs=4, batch_size=16, early_stop_accuracy=None)
        outs.append(m.predict(ds.a.obs, ds.a.act))
    np.testing.assert_array_equal(outs[0], outs[1])
    assert not np.allclose(outs[0], outs[2])


def test_early_stop_and_validation_split():
    ds = synthetic(n=100, seed=7)
    model = RewardEnsemble(4, 2, n_members=3, hidden=(32,), lr=3e-3, seed=0)
    info = model.fit(ds, epochs=200, early_stop_accuracy=0.9, val_fraction=0.2)
    assert info["epochs"] < 200 and info["accuracy"] >= 0.9
    assert info["n_train"] == 80
    assert 0.0 <= info["val_accuracy"] <= 1.0 and len(info["val_member_accuracy"]) == 3
    assert len(info["history"]["loss"]) == info["epochs"]


def test_temporal_crop_mask_lengths_and_independent_starts():
    mask = TemporalCrop(3).mask(np.random.default_rng(0), 3, 500, 20).numpy()  # [M, B, 2, H]
    lengths = mask.sum(-1)
    assert lengths.min() >= 20 - 6 and lengths.max() <= 20
    np.testing.assert_array_equal(lengths[..., 0], lengths[..., 1])  # same crop length in a pair
    assert len(np.unique(lengths)) == 7  # every length in [H - 2c, H] occurs
    # crops are contiguous, and a and b start independently
    d = np.diff(mask, axis=-1)
    assert np.all((d == 1).sum(-1) <= 1) and np.all((d == -1).sum(-1) <= 1)
    starts = mask.argmax(-1)
    assert (starts[..., 0] != starts[..., 1]).mean() > 0.5


def _surf_terms(unl, threshold_u=0.99, mu=4, crop=2):
    from pbrl.agents.surf import SemiSupervisedLoss

    pool = type("Pool", (), {"pairs": (unl.a, unl.b)})()
    return [BradleyTerryLoss(TemporalCrop(crop)), SemiSupervisedLoss(pool, threshold_u, 1.0, mu, TemporalCrop(crop))]


def test_surf_pseudo_labels_and_cropping_train():
    ds = synthetic(n=64, H=12, seed=8)
    unl = synthetic(n=200, H=12, seed=9)
    model = RewardEnsemble(4, 2, n_members=2, hidden=(32,), lr=3e-3, seed=0)
    info = model.fit(ds, epochs=30, losses=_surf_terms(unl, threshold_u=0.5, mu=2), early_stop_accuracy=None)
    # threshold 0.5: every unlabelled pair is confident enough
    assert info["pseudo_fraction"] == pytest.approx(1.0)
    test = synthetic(n=200, H=12, seed=10)
    assert evaluate_reward_model(model, test)["ordering_agreement"] > 0.8
    # an impossible threshold keeps (almost) nothing
    model2 = RewardEnsemble(4, 2, n_members=2, hidden=(32,), lr=3e-3, seed=0)
    info2 = model2.fit(ds, epochs=2, losses=_surf_terms(unl, threshold_u=1.0), early_stop_accuracy=None)
    assert info2["pseudo_fraction"] < 0.05


def test_surf_unlabelled_gradient_is_comparable_to_the_labelled_one():
    """Pseudo-labels come from the un-augmented view and the loss from a cropped one (SURF Sec. 4): the
    unlabelled term moves the model. (Labelling and training on the same cropped view, as pbrl did before,
    gives confident pairs a loss of at most -log(tau) and a gradient ~100x smaller.)"""
    from pbrl.reward_models import PairBatch

    ds = synthetic(n=64, H=12, seed=20)
    unl = synthetic(n=256, H=12, seed=21)
    model = RewardEnsemble(4, 2, n_members=1, hidden=(32,), lr=3e-3, seed=0, normalize=False, output="linear")
    model.fit(ds, epochs=200, early_stop_accuracy=None)  # a model confident on many unlabelled pairs
    bt, surf = _surf_terms(unl, threshold_u=0.99, mu=4)  # SURF's tau and mu
    for t in (bt, surf):
        t.start(model, ds)
    x = model._pair_inputs(ds.a, ds.b)[None]
    y = torch.as_tensor(ds.label)[None]

    def same_view(model, batch):  # the old rule: pseudo-label the very crop that is trained
        xu = surf._xu[torch.as_tensor(model.rng.integers(0, len(surf._xu), size=(1, 256)))]
        r, _ = model._pair_rewards(xu)
        logits = (r * TemporalCrop(2).mask(model.rng, 1, 256, 12)).sum(-1)
        p_b = torch.softmax(logits.detach(), -1)[..., 1]
        keep = (torch.maximum(p_b, 1 - p_b) >= 0.99).float()
        return (keep * soft_cross_entropy(logits, (p_b > 0.5).float())).mean(1)

    norms = []
    for term in (bt, surf, same_view):
        model.net.zero_grad()
        term(model, PairBatch(x=x, y=y)).sum().backward()
        norms.append(float(torch.sqrt(sum((p.grad ** 2).sum() for p in model.net.parameters()))))
    assert surf.summary()["pseudo_fraction"] > 0.3
    assert norms[1] > 0.2 * norms[0], norms  # comparable to the labelled term's (measured: 0.33x)
    assert norms[1] > 10 * norms[2], norms  # the same-view rule's is ~30x smaller


def test_surf_unlabelled_pool_changes_held_out_agreement_with_scarce_labels():
    ds = synthetic(n=12, H=12, seed=30)
    unl = synthetic(n=400, H=12, seed=31)
    test = synthetic(n=400, H=12, seed=32)
    plain = RewardEnsemble(4, 2, n_members=1, hidden=(32,), lr=3e-3, seed=0)
    plain.fit(ds, epochs=60, losses=[BradleyTerryLoss(TemporalCrop(2))], early_stop_accuracy=None)
    semi = RewardEnsemble(4, 2, n_members=1, hidden=(32,), lr=3e-3, seed=0)
    semi.fit(ds, epochs=60, losses=_surf_terms(unl, threshold_u=0.9), early_stop_accuracy=None)
    p_plain = plain.predict(test.a.obs, test.a.act).ravel()
    p_semi = semi.predict(test.a.obs, test.a.act).ravel()
    assert np.corrcoef(p_plain, p_semi)[0, 1] < 0.999  # the unlabelled term changed the model (old: 0.9999)
    agree = [evaluate_reward_model(m, test)["ordering_agreement"] for m in (plain, semi)]
    assert abs(agree[1] - agree[0]) >= 0.01, agree


def test_refits_renormalise_a_feature_that_starts_constant_and_later_moves():
    """Meta-World object poses barely move under random actions (std ~1e-6), then move. The statistics
    were frozen at the first fit, so a 0.1 shift became 1e5 stds (clipped at 100) and the reward jumped;
    now a feature below MIN_STD is only centred, and every refit re-estimates the statistics (with
    ``normalize=True``; the online default reads B-Pref's raw inputs since standardising saturated Meta-World)."""
    from pbrl.agents.online_base import REWARD_MODEL_DEFAULTS

    assert REWARD_MODEL_DEFAULTS["normalize"] is False
    early = synthetic(n=64, seed=40)
    early.a.obs[..., 3] = 0.5 + 1e-6 * np.random.default_rng(0).standard_normal(early.a.obs.shape[:2])
    early.b.obs[..., 3] = 0.5 + 1e-6 * np.random.default_rng(1).standard_normal(early.b.obs.shape[:2])
    kw = {**REWARD_MODEL_DEFAULTS, "normalize": True, "hidden": (16,)}
    model = RewardEnsemble(4, 2, **kw)
    model.fit(early, epochs=5)
    assert float(model.in_std[3]) == 1.0  # below MIN_STD: only centred, never divided by 1e-6
    late = synthetic(n=64, seed=41)  # the feature now moves (std ~1)
    o, a = late.a.obs[:, :1].copy(), late.a.act[:, :1]
    shifted = o.copy()
    shifted[..., 3] += 0.1
    jump = np.abs(model.predict(shifted, a) - model.predict(o, a)).max()
    assert jump < 0.5, jump  # was ~0.9 with the 1e-6 std
    model.fit(late, epochs=5)
    assert 0.5 < float(model.in_std[3]) < 2.0  # re-estimated at the refit


# --------------------------------------------------------------------------------------- persistence
@pytest.mark.parametrize("cls", [RewardEnsemble, GaussianRewardModel])
def test_save_load_round_trips_predictions_exactly(tmp_path, cls):
    ds = synthetic(n=32, seed=11)
    model = cls(4, 2, n_members=3, hidden=(16, 16), seed=0, output="tanh")
    model.fit(ds, epochs=3)
    path = model.save(tmp_path / "rm.pt")
    loaded = load_reward_model(path)
    assert type(loaded) is cls and loaded.n_members == 3 and loaded.obs_dim == 4 and loaded.act_dim == 2
    o, a = ds.b.obs, ds.b.act
    np.testing.assert_array_equal(loaded.predict(o, a), model.predict(o, a))
    np.testing.assert_array_equal(loaded.std(o, a), model.std(o, a))
    np.testing.assert_array_equal(cls.load(path).member_rewards(o, a), model.member_rewards(o, a))
    # a second save over the first keeps a readable file (atomic replace) and no temp files remain
    model.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["rm.pt"]


def test_saved_model_resumes_training_exactly(tmp_path):
    ds = synthetic(n=40, seed=12)
    more = synthetic(n=40, seed=13)
    for cls in (RewardEnsemble, GaussianRewardModel):
        a = cls(4, 2, n_members=2, hidden=(16,), seed=0, bootstrap=True)
        a.fit(ds, epochs=3, early_stop_accuracy=None)
        b = cls.load(a.save(tmp_path / "ckpt.pt"))
        for m in (a, b):  # continue training: same Adam moments, same shuffles, same noise
            m.fit(more, epochs=2, early_stop_accuracy=None)
        np.testing.assert_array_equal(a.predict(ds.a.obs, ds.a.act), b.predict(ds.a.obs, ds.a.act))


def test_constant_features_and_far_inputs_stay_bounded():
    ds = synthetic(n=32, seed=14)
    ds.a.obs[..., 2] = 3.0
    ds.b.obs[..., 2] = 3.0  # constant in the training data
    model = RewardEnsemble(4, 2, n_members=2, hidden=(16,), seed=0, output="linear")
    model.fit(ds, epochs=2)
    assert model.in_std[2] == 1.0
    far = np.zeros((2, 4), np.float32)
    far[:, 2] = [1e3, 1e6]  # far outside the data: normalised inputs are clipped at +-100
    r = model.predict(far, np.zeros((2, 2)))
    assert r[0] == r[1] and np.isfinite(r).all()


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no reward model file"):
        RewardEnsemble.load(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="not a readable pbrl reward model"):
        RewardEnsemble.load(bad)
    g = GaussianRewardModel(3, 1, hidden=(4,)).save(tmp_path / "g.pt")
    assert isinstance(RewardEnsemble.load(g), GaussianRewardModel)


# --------------------------------------------------------------------------------------- bad input
def test_bad_input_gives_one_clear_error():
    model = RewardEnsemble(4, 2, n_members=2, hidden=(8,))
    with pytest.raises(ValueError, match="empty PreferenceDataset"):
        model.fit(PreferenceDataset.empty(10, 4, 2))
    with pytest.raises(ValueError, match="obs_dim=5.*expects obs_dim=4"):
        model.fit(synthetic(n=8, obs_dim=5))
    with pytest.raises(TypeError, match="PreferenceDataset"):
        model.fit((1, 2))
    with pytest.raises(ValueError, match=r"obs must have shape \[\.\.\., 4\]"):
        model.predict(np.zeros((3, 5)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="NaN"):
        model.predict(np.full((3, 4), np.nan), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="leading shape"):
        model.predict(np.zeros((3, 4)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="crop_range"):
        model.fit(synthetic(n=8, H=10), crop_range=5)
    with pytest.raises(ValueError, match="epochs"):
        model.fit(synthetic(n=8), epochs=0)
    with pytest.raises(ValueError, match="output"):
        RewardEnsemble(4, 2, output="softplus")
    with pytest.raises(TypeError, match="unknown arguments"):
        RewardEnsemble(4, 2, hiden=(8,))
    with pytest.raises(ValueError, match="obs_dim"):
        RewardEnsemble(0, 2)
    # nothing was trained by the failed calls
    assert not model.fitted_normalizer


@pytest.mark.slow
def test_benchmark_script_quick_run_writes_table_json_and_plot(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "scripts" / "bench_reward_models.py"
    proc = subprocess.run([sys.executable, str(script), "--quick", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads((tmp_path / "bench_reward_models.json").read_text())
    from pbrl.queries import SELECTORS

    assert set(res["selectors"]) == {*SELECTORS, "uniform (GaussianRewardModel)"}
    for curve in res["selectors"].values():
        assert [c["labels"] for c in curve[0]] == [50, 100]
        assert all(0.0 <= c["ordering_agreement"] <= 1.0 for c in curve[0])
    assert all(r["ratio"] > 0 for r in res["throughput"].values())
    assert (tmp_path / "bench_reward_models.png").stat().st_size > 10_000
    assert "| uniform |" in proc.stdout


def test_gaussian_kl_term_counts_only_the_cropped_steps():
    """The KL regulariser of the Gaussian reward averages over the steps the Bradley-Terry term scored
    (before, it averaged over every step of the segment, cropped or not)."""
    from pbrl.reward_models import GaussianKL, PairBatch

    ds = synthetic(n=16, H=10, seed=50)
    model = GaussianRewardModel(4, 2, n_members=2, hidden=(8,), seed=0, kl_weight=1.0)
    x = model._pair_inputs(ds.a, ds.b)[None].expand(2, -1, -1, -1, -1)
    y = torch.as_tensor(ds.label)[None].expand(2, -1)
    batch = PairBatch(x=x, y=y)
    BradleyTerryLoss(TemporalCrop(3))(model, batch)
    reg, mask = batch.cache["reg"], batch.cache["mask"]
    kl = GaussianKL()(model, batch)
    want = (reg * mask).sum((1, 2, 3)) / mask.sum((1, 2, 3))
    torch.testing.assert_close(kl, want)
    assert not torch.allclose(kl, reg.mean((1, 2, 3)))  # the old, unmasked mean differs
    assert [type(t).__name__ for t in model.default_loss_terms()] == ["GaussianKL"]


@pytest.mark.parametrize("gaussian", [False, True])
def test_surf_one_pass_equals_two_passes(gaussian):
    """A deterministic reward model labels and trains on one forward pass of the unlabelled pairs; the same
    fit with the former two passes (forced by ``sampled_rewards``) gives the same weights bit for bit. The
    Gaussian model, whose trained view is a sample, keeps its two passes and its numbers."""
    from pbrl.reward_models import GaussianRewardModel

    ds = synthetic(n=48, H=12, seed=30)
    unl = synthetic(n=120, H=12, seed=31)
    klass = GaussianRewardModel if gaussian else RewardEnsemble
    weights = []
    for two_passes in (False, True):
        model = klass(4, 2, n_members=2, hidden=(16,), lr=3e-3, seed=0)
        if two_passes:
            model.sampled_rewards = True
        info = model.fit(ds, epochs=3, losses=_surf_terms(unl, threshold_u=0.6, mu=2), early_stop_accuracy=None)
        assert info["pseudo_fraction"] > 0
        weights.append([p.detach().clone() for p in model.net.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*weights))


def test_factor_correlations_by_hand_nan_on_constant_and_shape_error():
    from pbrl.reward_models import factor_correlations

    pred = np.array([[0.0, 1.0], [2.0, 3.0]])
    out = factor_correlations(pred, {"up": [1, 2, 3, 4], "down": [4, 3, 2, 1], "flat": [5, 5, 5, 5],
                                     "mixed": [0, 1, 0, 1]})
    assert out["up"] == pytest.approx(1.0) and out["down"] == pytest.approx(-1.0)
    # hand value: x = 0..3 (mean 1.5), y = 0,1,0,1 (mean .5): cov 0.25, sd 1.118 * 0.5 -> 0.4472
    assert out["mixed"] == pytest.approx(0.25 / (np.sqrt(1.25) * 0.5)) and np.isnan(out["flat"])
    assert np.isnan(factor_correlations(np.ones(3), {"x": [1, 2, 3]})["x"])
    with pytest.raises(ValueError, match="factor 'x' has 3 values but the prediction has 4"):
        factor_correlations(pred, {"x": [1, 2, 3]})
