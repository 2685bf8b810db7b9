"""Reward learning from ratings: the rating loss of RbRL and a trainer that fits a reward model on a
:class:`~pbrl.ratings.RatingDataset`.

White, Wu, Novoseller, Lawhern, Waytowich & Cao, "Rating-based Reinforcement Learning", AAAI 2024
(arXiv:2307.16348), Sec. "Rating-based reward learning". For a minibatch X of rated segments, with the
reward model's predicted segment return ``R_hat(sigma) = sum_t r_hat(s_t, a_t)``:

* normalised return (min-max over the batch):
  ``R~(sigma) = (R_hat(sigma) - min_{sigma' in X} R_hat(sigma')) / (max_{sigma' in X} R_hat(sigma') - min_{sigma' in X} R_hat(sigma'))``;
* class boundaries ``0 = R-_0 <= R-_1 <= ... <= R-_n = 1`` from the batch, so that each class's share of
  the batch matches its share of the labels: sort the batch's ``R~``; with ``c_i`` the number of
  segments rated ``i``, ``R-_{i+1}`` is the ``(c_0 + ... + c_i)``-th smallest ``R~`` (the top of class
  ``i``; 0 while no segment is in classes ``0 .. i``) -- :func:`class_boundaries`, no gradient, as in the
  authors' code;
* rating logits ``Q_sigma(i) = -k (R~(sigma) - R-_i) (R~(sigma) - R-_{i+1})`` (positive inside class
  ``i``'s interval, largest at its middle) -- :func:`rating_logits`;
* rating probability ``P_sigma(i) = exp(Q_sigma(i)) / sum_j exp(Q_sigma(j))`` and the multi-class
  cross-entropy ``L = -mean_{sigma in X} log P_sigma(y_sigma)`` -- :class:`RatingLoss`.

``k`` is 30 in the authors' code (pbrl's default). Each ensemble member sees its own minibatch, so each
has its own normalisation and boundaries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from pbrl.ratings import RatingDataset
from pbrl.reward_models.training import LossTerm, RewardTrainer
from pbrl.validation import check_int

__all__ = ["RatingBatch", "normalised_returns", "class_boundaries", "rating_logits", "RatingLoss", "RatingTrainer"]


@dataclass
class RatingBatch:
    """One minibatch of rated segments for every member.

    Attributes:
        x: raw model inputs ``[M, B, H, in]`` (``concat(obs, act)``).
        y: classes ``[M, B]`` (int64, 0 = worst).
        idx: each row's index into the training ratings ``[M, B]`` (``None`` outside the trainer).
        cache: shared by the terms of one step (:class:`RatingLoss` leaves ``rewards [M, B, H]``,
            ``returns [M, B]``, ``bounds [M, n + 1]`` and ``logits [M, B, n]``).
    """

    x: torch.Tensor
    y: torch.Tensor
    idx: torch.Tensor | None = None
    cache: dict[str, Any] = field(default_factory=dict)


def normalised_returns(returns: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Min-max normalisation over the last axis (the batch): ``(R - min R) / (max R - min R)`` in [0, 1]
    (all zeros when every return is the same)."""
    lo = returns.min(dim=-1, keepdim=True).values
    hi = returns.max(dim=-1, keepdim=True).values
    return (returns - lo) / (hi - lo).clamp_min(eps)


def class_boundaries(norm: torch.Tensor, y: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Boundaries ``[..., n_classes + 1]`` (``0 = R-_0 <= ... <= R-_n = 1``) of normalised returns
    ``norm [..., B]`` whose class shares match the labels ``y [..., B]``: ``R-_{i+1}`` is the
    ``(c_0 + ... + c_i)``-th smallest normalised return (0 while that count is 0). No gradient."""
    norm = norm.detach()
    counts = F.one_hot(y, n_classes).sum(dim=-2)  # [..., n]
    cum = counts.cumsum(dim=-1)[..., :-1]  # [..., n - 1]
    ranked = norm.sort(dim=-1).values
    top = ranked.gather(-1, (cum - 1).clamp_min(0))
    inner = torch.where(cum > 0, top, torch.zeros_like(top))
    lead = inner.shape[:-1]
    return torch.cat([torch.zeros(*lead, 1, dtype=norm.dtype, device=norm.device), inner,
                      torch.ones(*lead, 1, dtype=norm.dtype, device=norm.device)], dim=-1)


def rating_logits(norm: torch.Tensor, bounds: torch.Tensor, k: float) -> torch.Tensor:
    """``Q(i) = -k (R~ - R-_i)(R~ - R-_{i+1})`` for ``norm [..., B]`` and ``bounds [..., n + 1]`` -> ``[..., B, n]``."""
    lo, hi = bounds[..., None, :-1], bounds[..., None, 1:]
    r = norm[..., None]
    return -k * (r - lo) * (r - hi)


class RatingLoss(LossTerm):
    """The RbRL multi-class cross-entropy on rated segments (see the module docstring for the equations).

    ``L_m = mean_b CE(softmax_i Q_{m,b}(i), y_b)`` per member ``m``, on the member's training-mode rewards.

    Args:
        n_classes: the ratings' number of classes; ``None`` (default) takes the training dataset's.
        k: steepness of the rating logits (default 30, the authors' code).
    """

    name = "rating"

    def __init__(self, n_classes: int | None = None, k: float = 30.0):
        self.n_classes = None if n_classes is None else check_int("n_classes", n_classes, 2)
        if not (np.isfinite(k) and k > 0):
            raise ValueError(f"k (the rating logits' steepness) must be a positive number, got {k}")
        self.k = float(k)
        self._n = self.n_classes

    def check(self, model: Any, train: Any) -> None:
        if not isinstance(train, RatingDataset):
            raise TypeError(f"RatingLoss trains on a RatingDataset, got {type(train).__name__}")
        if self.n_classes is not None and self.n_classes != train.n_classes:
            raise ValueError(f"RatingLoss was built for {self.n_classes} classes but the ratings have "
                             f"{train.n_classes}; build it with n_classes={train.n_classes} (or None)")
        self._n = train.n_classes

    def __call__(self, model: Any, batch: RatingBatch) -> torch.Tensor:
        if self._n is None:
            raise ValueError("RatingLoss does not know the number of classes; pass n_classes= or train it with RatingTrainer")
        M, B = batch.y.shape
        rewards, _ = model._pair_rewards(batch.x[:, :, None], sample=True)  # [M, B, 1, H]
        rewards = rewards[:, :, 0]
        returns = rewards.sum(-1)  # [M, B]
        norm = normalised_returns(returns)
        bounds = class_boundaries(norm, batch.y, self._n)
        logits = rating_logits(norm, bounds, self.k)  # [M, B, n]
        batch.cache.update(rewards=rewards, returns=returns, bounds=bounds, logits=logits)
        ce = F.cross_entropy(logits.reshape(M * B, self._n), batch.y.reshape(-1), reduction="none")
        return ce.reshape(M, B).mean(dim=1)


class RatingTrainer(RewardTrainer):
    """:class:`~pbrl.reward_models.training.RewardTrainer` on a :class:`~pbrl.ratings.RatingDataset`: the
    same epochs, per-member shuffled minibatches, early stop and validation split, over rated segments.

    Args:
        losses: the objective's terms; the first must be a :class:`RatingLoss` (default ``[RatingLoss()]``,
            k = 30, the dataset's number of classes).
        epochs, batch_size, early_stop_accuracy, val_fraction, progress: as :class:`RewardTrainer`
            (``batch_size`` counts segments per member per step; the early stop reads the accuracy of the
            predicted class, default 0.97 as B-Pref's).
    """

    first_term = RatingLoss

    def terms(self, model: Any) -> list[LossTerm]:
        """The given losses, or ``[RatingLoss()]``."""
        return self.losses if self.losses is not None else [RatingLoss()]

    def _check_dataset(self, model: Any, dataset: Any) -> None:
        if not isinstance(dataset, RatingDataset):
            raise TypeError(f"a RatingTrainer fits on a RatingDataset, got {type(dataset).__name__}")
        if len(dataset) == 0:
            raise ValueError("cannot fit a reward model on an empty RatingDataset; collect ratings first")
        model._check_segments(dataset.segments, "dataset.segments")

    def _inputs(self, model: Any, train: Any) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.as_tensor(model._segment_inputs(train.segments), device=model.device)  # [N, H, in]
        return x, torch.as_tensor(train.rating, dtype=torch.long, device=model.device)

    def _batch(self, x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor) -> RatingBatch:
        return RatingBatch(x=x[idx], y=y[idx], idx=idx)

    def _correct(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        pred = batch.cache["logits"].argmax(dim=-1)
        return (pred == batch.y).sum(1).float(), torch.full_like(pred[:, 0], pred.shape[1], dtype=torch.float32)

    def _validate(self, model: Any, val: Any) -> dict[str, Any]:
        """The loss and class accuracy on the held-out ratings, normalised and bounded as one batch."""
        k = self.terms(model)[0].k
        returns = torch.as_tensor(model.segment_returns(val.segments), dtype=torch.float64)  # [M, N]
        y = torch.as_tensor(val.rating, dtype=torch.long).expand(returns.shape[0], -1)
        norm = normalised_returns(returns)
        logits = rating_logits(norm, class_boundaries(norm, y, val.n_classes), k)
        M, N, n = logits.shape
        loss = F.cross_entropy(logits.reshape(M * N, n), y.reshape(-1), reduction="none").reshape(M, N).mean(1)
        acc = (logits.argmax(-1) == y).double().mean(1)
        return {"loss": float(loss.mean()), "accuracy": float(acc.mean()), "member_accuracy": acc.tolist()}
