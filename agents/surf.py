"""SURF: semi-supervised reward learning with data augmentation, on top of PEBBLE.

Park, Seo, Shin, Lee, Abbeel & Lee, "SURF: Semi-supervised Reward Learning with Data Augmentation for
Feedback-efficient Preference-based Reinforcement Learning", ICLR 2022.

What makes SURF, all in this file (everything else is :class:`~pbrl.agents.pebble.PEBBLE`):

* **An unlabelled pool** (:class:`UnlabelledPool`): every session also draws ``unlabelled_ratio`` times
  as many unlabelled segment pairs as it asks queries (the paper's inverse label ratio, 10), kept up to
  ``max_unlabelled``.
* **Pseudo-labels on one view, training on another** (Sec. 4.1, Eqs. 5-6, FixMatch-style): each step
  draws ``mu * batch_size`` unlabelled pairs per member (``mu = 4``). The member labels each pair with
  its own prediction on the *un-augmented* pair, ``y_hat = 1[P(b > a) > 0.5]``, and keeps the pairs whose
  confidence ``max(P, 1 - P) >= tau`` (0.99); the loss is the cross-entropy of ``y_hat`` on a *temporally
  cropped* view of the same pair (independent crops of a and b):

      L = L_CE(labelled, cropped) + lambda_u * mean_u 1[conf_u >= tau] * CE(P_crop(u), y_hat_u).

  Because the two views differ, a confident pseudo-label still moves the model (labelling and training on
  the same view would add at most ``-log tau`` and no useful gradient).
* **Temporal cropping of the labelled pairs** (Sec. 4.2; :class:`~pbrl.reward_models.TemporalCrop`): crops
  of ``H - 2 crop_range`` to ``H`` steps at independent starts, keeping the label.

The loss term is :class:`SemiSupervisedLoss`; it joins PEBBLE's Bradley-Terry term in the reward trainer.
"""

from __future__ import annotations

from typing import Any

import torch

from pbrl.agents.pebble import PEBBLE
from pbrl.online import FeedbackHook, PreferenceCallback
from pbrl.preferences import PreferenceDataset
from pbrl.queries import candidate_pairs
from pbrl.reward_models.training import (
    BradleyTerryLoss,
    LossTerm,
    PairBatch,
    TemporalCrop,
    soft_cross_entropy,
)
from pbrl.segments import Segments, Trajectory
from pbrl.validation import check_int

__all__ = ["SURF", "SemiSupervisedLoss", "UnlabelledPool"]


class UnlabelledPool(FeedbackHook):
    """SURF's unlabelled segment pairs: ``per_session`` new pairs after every session, the newest
    ``max_size`` kept. Pairs are drawn with the callback's RNG from the session's query pool."""

    def __init__(self, per_session: int, max_size: int = 10000):
        self.per_session = check_int("per_session", per_session, 1)
        self.max_size = check_int("max_size", max_size, 1)
        self.pairs: tuple[Segments, Segments] | None = None

    def __len__(self) -> int:
        return 0 if self.pairs is None else len(self.pairs[0])

    def add(self, a: Segments, b: Segments) -> None:
        """Append pairs, dropping the oldest beyond ``max_size``."""
        if self.pairs is not None:
            a = Segments.concatenate([self.pairs[0], a])
            b = Segments.concatenate([self.pairs[1], b])
        self.pairs = (a[-self.max_size :], b[-self.max_size :])

    def after_labels(self, callback: PreferenceCallback, episodes: list[Trajectory]) -> None:
        self.add(*candidate_pairs(episodes, self.per_session, callback.segment_length, callback.rng))

    def state(self) -> Any:
        return self.pairs

    def load_state(self, state: Any) -> None:
        self.pairs = state


class SemiSupervisedLoss(LossTerm):
    """SURF's pseudo-label term (Eqs. 5-6; see the module docstring).

    Args:
        pool: an :class:`UnlabelledPool` (or anything with ``.pairs = (a, b)``).
        threshold_u: confidence threshold tau (default 0.99, SURF's Meta-World setting).
        lambda_u: weight of the term (default 1.0).
        mu: unlabelled pairs per labelled pair in a step (default 4).
        crop: the augmentation of the trained view (default ``TemporalCrop(5)``).
    """

    name = "surf_unlabelled"

    def __init__(self, pool: Any, threshold_u: float = 0.99, lambda_u: float = 1.0, mu: int = 4,
                 crop: TemporalCrop | None = None):
        if not 0.5 <= threshold_u <= 1.0:
            raise ValueError(f"threshold_u must be in [0.5, 1], got {threshold_u}")
        if not lambda_u >= 0:
            raise ValueError(f"lambda_u must be >= 0, got {lambda_u}")
        self.pool = pool
        self.threshold_u = float(threshold_u)
        self.lambda_u = float(lambda_u)
        self.mu = check_int("mu", mu, 1)
        self.crop = crop if crop is not None else TemporalCrop(5)
        self._xu: torch.Tensor | None = None
        self._used = self._seen = 0.0

    def check(self, model: Any, train: PreferenceDataset) -> None:
        pairs = getattr(self.pool, "pairs", None)
        if pairs is None or len(pairs[0]) == 0:
            return
        ua = model._check_segments(pairs[0], "unlabelled a")
        model._check_segments(pairs[1], "unlabelled b")
        if ua.length != train.segment_length:
            raise ValueError(f"unlabelled segments have {ua.length} steps, the labelled ones {train.segment_length}")
        self.crop.check(ua.length)

    def start(self, model: Any, train: PreferenceDataset) -> None:
        self._used = self._seen = 0.0
        pairs = getattr(self.pool, "pairs", None)
        self._xu = None if pairs is None or len(pairs[0]) == 0 else model._pair_inputs(*pairs)  # [Nu, 2, H, in]

    def __call__(self, model: Any, batch: PairBatch) -> torch.Tensor:
        M, B = batch.y.shape
        if self._xu is None or self.lambda_u == 0:
            return torch.zeros(M, device=batch.y.device)
        uidx = torch.as_tensor(model.rng.integers(0, len(self._xu), size=(M, B * self.mu)), device=batch.y.device)
        xu = self._xu[uidx]  # [M, Bu, 2, H, in]
        H = xu.shape[3]
        r_aug, _ = model._pair_rewards(xu, sample=True)  # the cropped view is trained (crop mask below)
        with torch.no_grad():  # the un-augmented view gives the pseudo-labels
            if getattr(model, "sampled_rewards", True):
                r_plain, _ = model._pair_rewards(xu, sample=False)
            else:  # a deterministic model's un-augmented rewards are the same pass's, before the crop
                r_plain = r_aug.detach()
            p_b = torch.softmax(r_plain.sum(-1), dim=-1)[..., 1]
            keep = (torch.maximum(p_b, 1 - p_b) >= self.threshold_u).float()
            pseudo = (p_b > 0.5).float()
        mask = self.crop.mask(model.rng, M, xu.shape[1], H, r_aug.device)
        uce = soft_cross_entropy((r_aug * mask).sum(-1), pseudo)
        self._used += float(keep.sum())
        self._seen += float(keep.numel())
        return self.lambda_u * (keep * uce).mean(dim=1)

    def summary(self) -> dict[str, float]:
        """``pseudo_fraction``: the share of drawn unlabelled pairs confident enough to be used."""
        return {"pseudo_fraction": self._used / max(self._seen, 1.0)} if self._seen else {}


class SURF(PEBBLE):
    """PEBBLE + SURF's unlabelled pool, pseudo-label loss and temporal cropping (see the module docstring).

    Extra args (defaults: the SURF authors' Meta-World scripts, ``docs/hyperparameters.md``):
        unlabelled_ratio: unlabelled pairs drawn per session = ``unlabelled_ratio * feedback_per_session``
            (default 10, the paper's inverse label ratio), pooled up to ``max_unlabelled`` (default 10000).
        threshold_u: pseudo-label confidence threshold tau (default 0.99).
        lambda_u: weight of the unlabelled loss (default 1.0).
        mu: unlabelled pairs per labelled pair in each training step (default 4).
        crop_range: temporal-crop range (default 5: crops of 40-50 steps for H = 50).

    Every other argument as :class:`PEBBLE`.
    """

    feedback_kinds = ("preference",)  # pseudo-labels and crops are pair mechanisms

    def __init__(
        self,
        *args,
        unlabelled_ratio: int = 10,
        max_unlabelled: int = 10000,
        threshold_u: float = 0.99,
        lambda_u: float = 1.0,
        mu: int = 4,
        crop_range: int = 5,
        **kwargs,
    ):
        check_int("unlabelled_ratio", unlabelled_ratio, 1)
        check_int("max_unlabelled", max_unlabelled, 1)
        check_int("mu", mu, 1)
        check_int("crop_range", crop_range, 1)
        if not 0.5 <= threshold_u <= 1.0:
            raise ValueError(f"threshold_u must be in [0.5, 1], got {threshold_u}")
        if not lambda_u >= 0:
            raise ValueError(f"lambda_u must be >= 0, got {lambda_u}")
        self.unlabelled_ratio = int(unlabelled_ratio)
        self.max_unlabelled = int(max_unlabelled)
        self.threshold_u = float(threshold_u)
        self.lambda_u = float(lambda_u)
        self.mu = int(mu)
        self.crop_range = int(crop_range)
        self.unlabelled_pool: UnlabelledPool | None = None
        super().__init__(*args, **kwargs)

    def _check_extra(self, segment_length: int) -> None:
        if self.crop_range > 0:
            TemporalCrop(self.crop_range).check(segment_length)

    def _pool(self) -> UnlabelledPool:
        if self.unlabelled_pool is None:
            self.unlabelled_pool = UnlabelledPool(self.unlabelled_ratio * self.feedback_per_session, self.max_unlabelled)
        return self.unlabelled_pool

    def _make_hooks(self) -> list[FeedbackHook]:
        return [self._pool(), *super()._make_hooks()]

    def _loss_terms(self) -> list[LossTerm]:
        crop = TemporalCrop(self.crop_range)
        loss = SemiSupervisedLoss(self._pool(), self.threshold_u, self.lambda_u, self.mu, crop)
        return [BradleyTerryLoss(crop), loss, *self.reward_model.default_loss_terms()]
