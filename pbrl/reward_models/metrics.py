"""Metrics of a learned reward on held-out labelled pairs."""

from __future__ import annotations

import numpy as np
import torch

from pbrl.preferences import PreferenceDataset
from pbrl.reward_models.ensemble import RewardEnsemble
from pbrl.reward_models.training import soft_cross_entropy

__all__ = ["evaluate_reward_model", "factor_correlations", "saturation", "SATURATION_THRESHOLD"]

#: a tanh reward output beyond this magnitude counts as saturated (``reward_model/saturated``)
SATURATION_THRESHOLD = 0.95


def evaluate_reward_model(model: RewardEnsemble, test: PreferenceDataset) -> dict[str, float]:
    """Metrics of a learned reward on held-out labelled pairs.

    Returns a dict with

    * ``label_accuracy``: fraction of non-tied test labels whose preferred segment has the higher
      mean-over-members predicted return;
    * ``pearson``: Pearson correlation between predicted (mean) and true per-step reward over every
      transition of the test segments (``nan`` if the true reward is constant, e.g. imported data
      without rewards);
    * ``ordering_agreement``: fraction of test pairs with different true returns that the learned
      return orders the same way as the true return (labels are not used);
    * ``loss``: mean member Bradley-Terry cross-entropy on the labels; ``n_pairs``.
    """
    if not isinstance(test, PreferenceDataset):
        raise TypeError(f"test must be a PreferenceDataset, got {type(test).__name__}")
    if len(test) == 0:
        raise ValueError("cannot evaluate on an empty PreferenceDataset")
    model._check_segments(test.a, "test.a")
    rew_a = model.member_rewards(test.a.obs, test.a.act)  # [M, N, H]
    rew_b = model.member_rewards(test.b.obs, test.b.act)
    ra, rb = rew_a.sum(-1), rew_b.sum(-1)  # [M, N]
    la = torch.as_tensor(np.stack([ra, rb], -1))
    lab = torch.as_tensor(test.label)
    loss = float(soft_cross_entropy(la, lab).mean())
    mean_diff = (rb - ra).mean(0)
    decided = test.label != 0.5
    label_acc = float(((mean_diff > 0) == (test.label > 0.5))[decided].mean()) if decided.any() else float("nan")
    true_diff = test.b.returns() - test.a.returns()
    differ = true_diff != 0
    order = float((np.sign(mean_diff) == np.sign(true_diff))[differ].mean()) if differ.any() else float("nan")
    pred = np.concatenate([rew_a.mean(0).ravel(), rew_b.mean(0).ravel()]).astype(np.float64)
    true = np.concatenate([test.a.reward.ravel(), test.b.reward.ravel()]).astype(np.float64)
    pearson = factor_correlations(pred, {"reward": true})["reward"]
    return {
        "label_accuracy": label_acc,
        "pearson": pearson,
        "ordering_agreement": order,
        "loss": loss,
        "n_pairs": int(len(test)),
    }


def factor_correlations(pred: np.ndarray, factors: dict[str, np.ndarray]) -> dict[str, float]:
    """Per-step Pearson correlation of a learned reward with each named signal.

    ``pred`` and every value of ``factors`` hold one number per transition (any shape, flattened in the same
    order). Returns ``{name: correlation}``, ``nan`` where either side is constant (the correlation is not
    defined there). Used for the true reward (:func:`evaluate_reward_model`) and for reward factors such as
    HERON's ``reward_forward`` / ``reward_ctrl`` (``scripts/investigations/heron_*.py``).
    """
    p = np.asarray(pred, np.float64).ravel()
    out = {}
    for name, values in factors.items():
        f = np.asarray(values, np.float64).ravel()
        if f.shape != p.shape:
            raise ValueError(f"factor {name!r} has {f.size} values but the prediction has {p.size}")
        out[name] = float(np.corrcoef(p, f)[0, 1]) if p.std() > 0 and f.std() > 0 else float("nan")
    return out


def saturation(model: RewardEnsemble, obs: np.ndarray, act: np.ndarray, threshold: float = SATURATION_THRESHOLD) -> float:
    """Share of the members' reward outputs with ``|r_hat| > threshold`` on ``obs [N, obs_dim]``,
    ``act [N, act_dim]`` (every member's output at every row counts once).

    With B-Pref's tanh output, a saturated reward is flat: states beyond the threshold all look alike, so the
    policy gets no gradient toward the better ones. Online runs log it at every evaluation
    (``reward_model/saturated``) on the agent's last recorded episodes.
    """
    if not 0 < threshold:
        raise ValueError(f"threshold must be > 0, got {threshold}")
    r = model.member_rewards(obs, act)
    return float((np.abs(r) > threshold).mean()) if r.size else float("nan")
