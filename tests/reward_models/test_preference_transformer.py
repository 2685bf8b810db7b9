"""Preference Transformer: preference attention, causality, learning against a constant predictor,
sliding-window relabelling, persistence, errors, and MR+IQL with the transformer reward model."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers import bandit_dataset
from helpers import synthetic_pairs as synthetic

from pbrl.agents.iql import MRIQL, normalize_rewards
from pbrl.agents.offline_base import OfflineAgent
from pbrl.envs.datasets import OfflineDataset, label_dataset
from pbrl.preferences import PreferenceDataset
from pbrl.reward_models.transformer import SIZES, PreferenceTransformer
from pbrl.reward_models.transformer_net import relabel_windows
from pbrl.segments import Segments

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = dict(embed_dim=16, pref_attn_dim=16)


def toy_dataset(n_episodes: int = 30, length: int = 10, seed: int = 0) -> OfflineDataset:
    """The contextual bandit of ``helpers.bandit_dataset`` (30 episodes of 10 steps)."""
    return bandit_dataset(n_episodes, length, seed)


@pytest.fixture(scope="module")
def pairs():
    """200 training pairs and 300 held-out pairs of the synthetic task (segments of 10 steps)."""
    return synthetic(200, seed=0), synthetic(300, seed=1)


# --------------------------------------------------------------------------------------- the model
def test_attention_weights_sum_to_one_and_the_score_is_their_weighted_sum_of_rewards():
    model = PreferenceTransformer(4, 2, seed=0)
    rng = np.random.default_rng(0)
    obs, act = rng.normal(size=(5, 7, 4)), rng.normal(size=(5, 7, 2))
    w = model.attention_weights(obs, act)
    assert w.shape == (5, 7) and np.all(w > 0)
    np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-6)
    # Eq. 4-5: z_i = sum_t A_it r_t, S = mean_i z_i = sum_t w_t r_t
    with torch.no_grad():
        o, a = model._tensors(obs, act)
        out = model.net(o, a)
    z = (out["attention"] @ out["reward"].unsqueeze(-1)).squeeze(-1)
    np.testing.assert_allclose(z.mean(-1).numpy(), out["score"].numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["attention"].sum(-1).numpy(), 1.0, atol=1e-6)  # each row A_i. is a softmax
    seg = Segments(obs=obs, act=act, reward=np.zeros((5, 7)))
    np.testing.assert_allclose(model.segment_returns(seg), (w * model.predict(obs, act)).sum(1), rtol=1e-5, atol=1e-6)


def test_causality_a_later_step_never_changes_an_earlier_steps_output():
    model = PreferenceTransformer(4, 2, n_layers=2, n_heads=2, seed=1)
    rng = np.random.default_rng(1)
    obs, act = rng.normal(size=(3, 8, 4)), rng.normal(size=(3, 8, 2))
    r = model.predict(obs, act)
    for t in (0, 3, 7):
        o2, a2 = obs.copy(), act.copy()
        o2[:, t] += 3.0
        a2[:, t] -= 2.0
        r2 = model.predict(o2, a2)
        np.testing.assert_array_equal(r2[:, :t], r[:, :t])  # earlier steps: bit-identical
        assert np.abs(r2[:, t] - r[:, t]).max() > 1e-4  # the changed step itself does move
        with torch.no_grad():
            h = model.net.hidden(*model._tensors(obs, act))
            h2 = model.net.hidden(*model._tensors(o2, a2))
        assert torch.equal(h2[:, :t], h[:, :t])
    # so a window's prefix gives the same rewards as the window
    np.testing.assert_allclose(model.predict(obs[:, :5], act[:, :5]), r[:, :5], rtol=1e-5, atol=1e-6)


def test_beats_a_constant_predictor_on_held_out_pairs(pairs):
    train, test = pairs
    model = PreferenceTransformer(4, 2, seed=0)
    info = model.fit(train, epochs=30)
    assert info["epochs"] == 30 and len(info["history"]["loss"]) == 30 and info["n_train"] == 200
    ev = model.evaluate_pairs(test)
    # the best constant predictor: always the training majority, P(b) = its training frequency
    p = float(train.label.mean())
    const_acc = float(np.mean(test.label == float(p > 0.5)))
    const_loss = float(np.mean(-(test.label * math.log(p) + (1 - test.label) * math.log(1 - p))))
    assert ev["accuracy"] >= 0.78 and ev["accuracy"] > const_acc + 0.2, (ev, const_acc)
    assert ev["loss"] < 0.6 * const_loss, (ev, const_loss)
    probs = model.preference_probs(test.a, test.b)
    assert probs.shape == (300,) and np.all((probs > 0) & (probs < 1))


def test_learns_a_non_markovian_teacher_that_a_markovian_ensemble_cannot():
    """The teacher judges only each segment's last step: PT attends there; a sum of r(s, a) cannot."""
    from pbrl.reward_models import RewardEnsemble, evaluate_reward_model

    train, test = synthetic(600, H=5, seed=0, last_only=True), synthetic(300, H=5, seed=1, last_only=True)
    model = PreferenceTransformer(4, 2, lr=1e-3, seed=0)
    model.fit(train, epochs=20)
    ev = model.evaluate_pairs(test)
    assert ev["accuracy"] >= 0.85, ev
    w = model.attention_weights(test.a.obs, test.a.act).mean(axis=0)
    assert w[-1] > 0.5 and w.argmax() == 4, w
    mr = RewardEnsemble(4, 2, n_members=1, hidden=(64, 64), lr=1e-3, seed=0)
    mr.fit(train, epochs=30)
    assert evaluate_reward_model(mr, test)["label_accuracy"] < 0.7


def test_fit_is_seeded_and_reports_validation(pairs):
    train, _ = pairs
    a = PreferenceTransformer(4, 2, **TINY, seed=3)
    b = PreferenceTransformer(4, 2, **TINY, seed=3)
    ia, ib = a.fit(train, epochs=3, val_fraction=0.2), b.fit(train, epochs=3, val_fraction=0.2)
    assert ia["history"] == ib["history"] and ia["n_train"] == 160
    assert 0.0 <= ia["val_accuracy"] <= 1.0 and ia["val_loss"] > 0
    np.testing.assert_array_equal(a.predict(train.a.obs, train.a.act), b.predict(train.a.obs, train.a.act))
    c = PreferenceTransformer(4, 2, **TINY, seed=4)
    c.fit(train, epochs=3, val_fraction=0.2)
    assert not np.array_equal(a.predict(train.a.obs, train.a.act), c.predict(train.a.obs, train.a.act))
    assert a.context_length == 10  # taken from the segments


def test_an_extra_loss_term_is_added_to_every_minibatch(pairs):
    train, _ = pairs
    calls = []

    def zero(net, B):  # a constant adds no gradient: the same weights as without it
        calls.append(B)
        return torch.tensor(0.25)

    def pull(net, B):  # a real term changes the training
        return 10.0 * net.pref.weight.pow(2).sum()

    base, same, other = (PreferenceTransformer(4, 2, **TINY, batch_size=64, seed=0) for _ in range(3))
    base.fit(train, epochs=2)
    info = same.fit(train, epochs=2, extra_loss=zero)
    assert calls == [64, 64, 64, 8] * 2  # once per minibatch, with its number of pairs
    assert info["history"]["extra_loss"] == pytest.approx([0.25, 0.25])
    assert all(torch.equal(x, y) for x, y in zip(base.net.state_dict().values(), same.net.state_dict().values()))
    other.fit(train, epochs=2, extra_loss=pull)
    assert float(other.net.pref.weight.norm()) < float(base.net.pref.weight.norm())


def test_soft_labels_of_equal_pairs_push_the_scores_together():
    ds = synthetic(64, seed=5)
    eq = PreferenceDataset(ds.a, ds.b, np.full(64, 0.5, np.float32))
    model = PreferenceTransformer(4, 2, **TINY, seed=0, lr=1e-3)
    before = np.abs(model.preference_probs(eq.a, eq.b) - 0.5).mean()
    info = model.fit(eq, epochs=20)
    assert math.isnan(info["accuracy"])  # no decided pairs
    assert np.abs(model.preference_probs(eq.a, eq.b) - 0.5).mean() < before
    assert info["loss"] == pytest.approx(math.log(2), abs=0.01)


def test_relabel_reads_each_step_at_the_end_of_the_window_that_ends_at_it():
    rng = np.random.default_rng(2)
    T = 23
    timeouts = np.zeros(T, bool)
    timeouts[[1, 9, 12]] = True  # episodes [0, 1], [2, 9], [10, 12], [13, 22]: two shorter than H
    ds = OfflineDataset(rng.normal(size=(T, 3)), rng.normal(size=(T, 1)), np.zeros(T), np.zeros(T, bool), timeouts)
    H = 4
    plan = relabel_windows(*ds.episode_bounds, H)
    np.testing.assert_array_equal(plan["first"], [0, 2, 10, 13])
    np.testing.assert_array_equal(plan["first_len"], [2, 4, 3, 4])
    np.testing.assert_array_equal(plan["last"], [6, 7, 8, 9, 17, 18, 19, 20, 21, 22])
    model = PreferenceTransformer(3, 1, **TINY, context_length=H, seed=0)
    model.predict_chunk = 3  # several chunks
    out = model.relabel(ds)
    assert out.shape == (T,) and out.dtype == np.float32
    # reference: the authors' rule, window of the (up to) H steps of the episode ending at t, last position
    starts, ends = ds.episode_bounds
    for s, e in zip(starts, ends):
        for t in range(s, e + 1):
            lo = max(s, t - H + 1)
            want = model.predict(ds.observations[None, lo : t + 1], ds.actions[None, lo : t + 1])[0, -1]
            assert out[t] == pytest.approx(want, abs=1e-5), t
    # a longer context changes the later steps' rewards only
    out6 = model.relabel(ds, context_length=6)
    np.testing.assert_allclose(out6[[0, 1, 2, 3, 4, 5]], out[[0, 1, 2, 3, 4, 5]], atol=1e-5)


def test_save_load_round_trip_gives_identical_predictions_and_continued_training(tmp_path, pairs):
    train, test = pairs
    model = PreferenceTransformer(4, 2, **TINY, seed=7)
    model.fit(train, epochs=2)
    path = model.save(tmp_path / "pt.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["pt.pt"]  # atomic: no temp file left behind
    back = PreferenceTransformer.load(path)
    assert back.config() == model.config() and back.context_length == 10
    o, a = test.a.obs, test.a.act
    np.testing.assert_array_equal(back.predict(o, a), model.predict(o, a))
    np.testing.assert_array_equal(back.attention_weights(o, a), model.attention_weights(o, a))
    np.testing.assert_array_equal(back.segment_returns(test.b), model.segment_returns(test.b))
    # optimiser, minibatch order and dropout streams continue as in the saved model
    assert back.fit(train, epochs=2)["history"] == model.fit(train, epochs=2)["history"]
    np.testing.assert_array_equal(back.predict(o, a), model.predict(o, a))
    with pytest.raises(FileNotFoundError, match="no reward model file"):
        PreferenceTransformer.load(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_text("not a model")
    with pytest.raises(ValueError, match="not a readable pbrl reward model file"):
        PreferenceTransformer.load(tmp_path / "junk.pt")


def test_the_paper_sizes_are_one_argument_away():
    paper = PreferenceTransformer(17, 6, size="paper")
    cfg = paper.config()
    assert (cfg["embed_dim"], cfg["n_layers"], cfg["n_heads"], cfg["pref_attn_dim"]) == (256, 1, 4, 256)
    assert (cfg["dropout"], cfg["lr"], cfg["lr_schedule"], cfg["batch_size"], cfg["epochs"]) == (0.1, 1e-4, "warmup_cosine", 256, 10_000)
    assert PreferenceTransformer(17, 6, **PreferenceTransformer.paper_config()).config() == {**cfg, "size": "small"}
    small = PreferenceTransformer(17, 6).config()
    assert {k: small[k] for k in SIZES["small"]} == SIZES["small"]
    assert PreferenceTransformer(17, 6, size="paper", n_layers=2).n_layers == 2  # explicit arguments win
    # the authors' schedule: lr -> 10 lr over the warm-up, cosine back to lr
    assert paper._scheduled_lr(0, 10, 100) == pytest.approx(1e-4)
    assert paper._scheduled_lr(10, 10, 100) == pytest.approx(1e-3)
    assert paper._scheduled_lr(100, 10, 100) == pytest.approx(1e-4)


def test_warmup_cosine_training_runs_and_restores_the_base_lr(pairs):
    model = PreferenceTransformer(4, 2, **TINY, lr_schedule="warmup_cosine", seed=0)
    info = model.fit(pairs[0].subset(np.arange(64)), epochs=3, batch_size=32)
    assert np.isfinite(info["loss"]) and model.optimizer.param_groups[0]["lr"] == pytest.approx(model.lr)


def test_bad_input_gives_one_clear_error(pairs):
    with pytest.raises(ValueError, match="unknown size"):
        PreferenceTransformer(4, 2, size="huge")
    with pytest.raises(ValueError, match="divisible by n_heads"):
        PreferenceTransformer(4, 2, embed_dim=10, n_heads=3)
    with pytest.raises(ValueError, match="obs_dim must be a positive integer"):
        PreferenceTransformer(0, 2)
    with pytest.raises(ValueError, match="context_length"):
        PreferenceTransformer(4, 2, context_length=50, max_length=20)
    with pytest.raises(ValueError, match="unknown lr_schedule"):
        PreferenceTransformer(4, 2, lr_schedule="linear")
    model = PreferenceTransformer(4, 2, **TINY)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="relabel"):  # a flat dataset is not a batch of windows
        model.predict(rng.normal(size=(10, 4)), rng.normal(size=(10, 2)))
    with pytest.raises(ValueError, match=r"\[N, H, 4\]"):
        model.predict(rng.normal(size=(2, 5, 3)), rng.normal(size=(2, 5, 2)))
    with pytest.raises(ValueError, match="share"):
        model.predict(rng.normal(size=(2, 5, 4)), rng.normal(size=(2, 6, 2)))
    bad = rng.normal(size=(2, 5, 4))
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.predict(bad, rng.normal(size=(2, 5, 2)))
    with pytest.raises(TypeError, match="numeric"):
        model.predict(np.array([[["a"] * 4] * 5] * 2), rng.normal(size=(2, 5, 2)))
    with pytest.raises(ValueError, match="max_length"):
        PreferenceTransformer(4, 2, **TINY, max_length=8).predict(rng.normal(size=(1, 9, 4)), rng.normal(size=(1, 9, 2)))
    with pytest.raises(TypeError, match="PreferenceDataset"):
        model.fit(pairs[0].a)
    with pytest.raises(ValueError, match="empty"):
        model.fit(PreferenceDataset.empty(10, 4, 2))
    with pytest.raises(ValueError, match="obs_dim=4, act_dim=2"):
        PreferenceTransformer(5, 2).fit(pairs[0])
    with pytest.raises(ValueError, match="epochs"):
        model.fit(pairs[0], epochs=0)
    with pytest.raises(ValueError, match="context_length is unknown"):
        model.relabel(toy_dataset())


# ------------------------------------------------------------------------------------------ MR + IQL
def test_mriql_with_the_transformer_relabels_by_windows_trains_and_saves(tmp_path):
    ds = toy_dataset()
    prefs = label_dataset(ds, "oracle", 60, segment_length=5, seed=0)
    kw = dict(hidden=(32, 32), batch_size=64, reward_model="transformer", reward_model_kwargs=TINY, reward_epochs=5)
    agent = MRIQL.from_dataset(ds, **kw)
    assert isinstance(agent.reward_model, PreferenceTransformer) and agent.config["reward_model"] == "transformer"
    info = agent.fit(ds, prefs, steps=20, progress=False)
    assert info["num_updates"] == 20 and np.isfinite(info["losses"]["q_loss"])
    assert agent.reward_fitted and agent.reward_model.context_length == 5
    # the dataset was relabelled by PT's sliding windows, then minmax-normalised to [0, 1] (MRIQL's default)
    raw = agent.reward_model.relabel(ds)
    np.testing.assert_array_equal(agent.learned_rewards(ds), raw)
    want = normalize_rewards(raw, None, "minmax")
    view = agent.qlearning_view(ds)
    np.testing.assert_allclose(agent.data["rewards"].numpy(), want[view["index"]] if "index" in view else want[: len(view["rewards"])], atol=1e-6)
    assert float(agent.data["rewards"].min()) == 0.0 and float(agent.data["rewards"].max()) == pytest.approx(1.0)

    path = agent.save(tmp_path / "mriql_pt.pt")
    back = OfflineAgent.load(path)
    assert type(back) is MRIQL and back.config == agent.config and back.reward_fitted
    assert isinstance(back.reward_model, PreferenceTransformer)
    obs = ds.observations[:16]
    assert np.array_equal(back.predict(obs)[0], agent.predict(obs)[0])
    np.testing.assert_array_equal(back.learned_rewards(ds), raw)
    # training continues on the same learned reward (no refit)
    back.fit(ds, prefs, steps=5, progress=False)
    assert back.num_updates == 25
    np.testing.assert_array_equal(back.learned_rewards(ds), raw)


def test_mriql_reward_model_option_is_validated_and_reaches_the_offline_config():
    from pbrl.app.config import load_config, parse_overrides

    with pytest.raises(ValueError, match="unknown reward_model 'mlp'"):
        MRIQL(3, 1, reward_model="mlp")
    from pbrl.reward_models import RewardEnsemble

    default = MRIQL(3, 1)  # the ensemble stays the default
    assert isinstance(default.reward_model, RewardEnsemble) and default.config["reward_model"] == "ensemble"
    assert (default.reward_epochs, default.reward_batch_size) == (300, 128)  # the ensemble's defaults, as before
    with pytest.raises(ValueError, match="reward_epochs must be a positive integer"):
        MRIQL(3, 1, reward_model="transformer", reward_epochs=0)
    cfg = load_config(overrides=parse_overrides(["agent=mriql", "agent_kwargs.reward_model=transformer",
                                                 "agent_kwargs.reward_model_kwargs.size=paper"]), kind="offline")
    agent = MRIQL(3, 1, **cfg.agent_kwargs)
    assert isinstance(agent.reward_model, PreferenceTransformer) and agent.reward_model.embed_dim == 256
    assert agent.reward_epochs is None and agent.reward_model.epochs == 10_000  # the paper's epochs and batch


def test_load_reward_model_reads_a_transformer_file(tmp_path):
    from pbrl.reward_models import load_reward_model

    model = PreferenceTransformer(3, 2, seed=0)
    path = model.save(tmp_path / "pt.pt")
    back = load_reward_model(path)
    assert type(back) is PreferenceTransformer
    obs = np.random.default_rng(0).normal(size=(2, 5, 3)).astype(np.float32)
    act = np.zeros((2, 5, 2), np.float32)
    np.testing.assert_array_equal(back.predict(obs, act), model.predict(obs, act))


def test_the_causal_block_is_shared_causal_and_checks_heads():
    """One GPT-2 block serves the Preference Transformer and the Decision Transformer (DTR); a token never
    sees a later one, and a width that the heads do not divide is refused."""
    import torch

    from pbrl.agents.decision_transformer import DecisionTransformerNet
    from pbrl.reward_models.transformer_net import CausalBlock, PTNetwork

    pt = PTNetwork(3, 2, embed_dim=16, n_layers=1, n_heads=2, pref_attn_dim=4, max_length=8, dropout=0.1)
    dt = DecisionTransformerNet(3, 2, embed_dim=16, n_layers=1, n_heads=2)
    assert type(pt.blocks[0]) is CausalBlock and type(dt.blocks[0]) is CausalBlock
    torch.manual_seed(0)
    blk = CausalBlock(16, 4)
    x = torch.randn(2, 6, 16)
    y = x.clone()
    y[:, 4:] = torch.randn(2, 2, 16)  # change the future only
    assert torch.allclose(blk(x)[:, :4], blk(y)[:, :4]) and not torch.allclose(blk(x)[:, 4:], blk(y)[:, 4:])
    seen = []
    blk(x, lambda t: seen.append(t.shape) or t)  # the drop callable: attention weights, then both residuals
    assert seen == [torch.Size([2, 4, 6, 6]), torch.Size([2, 6, 16]), torch.Size([2, 6, 16])]
    with pytest.raises(ValueError, match="divisible"):
        CausalBlock(10, 4)
