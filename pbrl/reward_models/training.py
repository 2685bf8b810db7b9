"""Training a reward model from preferences: one trainer, and the objective as small loss terms.

The objective is a sum of terms, each a small object that scores one minibatch per ensemble member
(imitation's reward trainer with loss objects, with fewer layers):

* :class:`BradleyTerryLoss`: the cross-entropy of the Bradley-Terry preference model on labelled pairs
  (Christiano et al. 2017; PEBBLE, Lee et al. ICML 2021, Eq. 2), optionally on temporally cropped pairs
  (:class:`TemporalCrop`, SURF Sec. 4.2 / QPA Sec. 4.3);
* :class:`~pbrl.reward_models.gaussian.GaussianKL`: the robust Gaussian reward's KL regulariser (PEARL);
* SURF's pseudo-label term lives with SURF, in :mod:`pbrl.agents.surf` (``SemiSupervisedLoss``).

A new loss is one new :class:`LossTerm` subclass passed in ``losses=[...]``; the trainer does not change.

:class:`RewardTrainer` runs the epochs: each member visits the labelled pairs in its own random order
(optionally a bootstrap resample) in minibatches of ``batch_size``; the M minibatches go through the
batched network together; every term returns a per-member loss ``[M]``; their sum over terms and
members is minimised with the model's Adam optimiser. Training stops after ``epochs`` epochs or once
the members' mean training accuracy reaches ``early_stop_accuracy`` (B-Pref's rule).

Every random choice (order, crops, unlabelled draws) uses the model's own ``rng``, which the model
saves: a loaded model continues training exactly as the saved one would.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from pbrl.preferences import PreferenceDataset
from pbrl.validation import check_int

__all__ = [
    "soft_cross_entropy",
    "pair_accuracy",
    "PairBatch",
    "LossTerm",
    "TemporalCrop",
    "BradleyTerryLoss",
    "RewardTrainer",
]


def soft_cross_entropy(logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """Bradley-Terry cross-entropy ``[...]``: ``logits [..., 2]`` = (return_a, return_b), ``label [...]`` = P(b).

    ``-( (1 - y) log P[a > b] + y log P[b > a] )`` with ``P = softmax(logits)`` (PEBBLE Eq. 2); ``y = 0.5``
    is the soft target of an "equally preferred" answer.
    """
    logp = F.log_softmax(logits, dim=-1)
    return -((1.0 - label) * logp[..., 0] + label * logp[..., 1])


def pair_accuracy(logits: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-member count of correctly ordered non-tied pairs and the number of non-tied pairs.

    ``logits [M, B, 2]``, ``label [B]`` -> (correct [M], n [scalar]).
    """
    decided = label != 0.5
    pred_b = logits[..., 1] > logits[..., 0]
    correct = ((pred_b == (label > 0.5)) & decided).sum(dim=-1)
    return correct.float(), decided.sum().float()


@dataclass
class PairBatch:
    """One minibatch of labelled pairs for every member.

    Attributes:
        x: raw model inputs ``[M, B, 2, H, in]`` (``concat(obs, act)`` of segments a and b).
        y: labels ``[M, B]`` (1.0 = b preferred, 0.5 = equal).
        idx: each row's index into the training pairs ``[M, B]`` (``None`` outside the trainer), so that a
            term can keep per-pair state (e.g. a denoising discriminator's trusted / flipped pairs).
        cache: shared by the terms of one step (``BradleyTerryLoss`` leaves ``rewards`` ``[M, B, 2, H]``,
            ``reg`` (the model's per-step regulariser or ``None``), ``mask`` and ``logits`` ``[M, B, 2]``).
    """

    x: torch.Tensor
    y: torch.Tensor
    idx: torch.Tensor | None = None
    cache: dict[str, Any] = field(default_factory=dict)


class LossTerm(ABC):
    """One term of the reward-learning objective.

    Subclasses implement ``__call__(model, batch) -> [M]`` (the term's loss per member, already
    weighted); optionally ``start(model, train)`` (once per ``fit``, after the input normalisation is
    set, e.g. to move an unlabelled pool to the device or to score every training pair) and ``summary()``
    (numbers reported in ``fit``'s result). A term may replace the Bradley-Terry term as the first one
    if it is a :class:`BradleyTerryLoss` subclass (it must leave ``batch.cache["logits"]``).
    """

    name = "loss"

    def check(self, model: Any, train: PreferenceDataset) -> None:  # noqa: B027 - an optional hook
        """Raise one clear error if this term cannot train on ``train`` (called before any work)."""

    def start(self, model: Any, train: PreferenceDataset) -> None:  # noqa: B027 - an optional hook
        """Called once at the start of every ``fit``, after :meth:`check` and the input normalisation."""

    @abstractmethod
    def __call__(self, model: Any, batch: PairBatch) -> torch.Tensor:
        """The term's loss per member ``[M]`` on one minibatch."""

    def summary(self) -> dict[str, float]:
        """Numbers this term reports at the end of ``fit`` (merged into its result)."""
        return {}


class TemporalCrop:
    """Temporal cropping of segment pairs (SURF, Park et al. ICLR 2022, Sec. 4.2; QPA Sec. 4.3).

    For every pair a crop length ``H'`` is drawn uniformly from ``[H - 2 * crop_range, H]`` and each of the
    two segments keeps ``H'`` consecutive steps at its own random start; the label is kept. (SURF samples
    segments of ``H_0 + 2 * crop_range`` steps and crops them to ``H_0 +/- crop_range``; pbrl keeps the
    stored length ``H`` and lets the longest crop be the whole segment.) The crop is a 0/1 mask over
    steps, so a cropped segment's return is ``sum_t mask_t r_t``.

    Args:
        crop_range: half-width of the crop-length range (>= 1; ``2 * crop_range < H``).
    """

    def __init__(self, crop_range: int):
        self.crop_range = check_int("crop_range", crop_range, 1)

    def check(self, H: int) -> None:
        """Raise one clear error when segments of ``H`` steps are too short for this crop."""
        if H - 2 * self.crop_range < 1:
            raise ValueError(
                f"crop_range {self.crop_range} is too large for segments of {H} steps (need 2 * crop_range < H)"
            )

    def mask(self, rng: np.random.Generator, M: int, B: int, H: int, device: Any = "cpu") -> torch.Tensor:
        """A crop mask ``[M, B, 2, H]``: one length per pair, independent starts for a and b."""
        length = rng.integers(H - 2 * self.crop_range, H + 1, size=(M, B, 1))
        start = rng.integers(0, H - length + 1, size=(M, B, 2))
        t = np.arange(H)
        mask = (t >= start[..., None]) & (t < (start + length)[..., None])
        return torch.as_tensor(mask, dtype=torch.float32, device=device)


class BradleyTerryLoss(LossTerm):
    """Bradley-Terry cross-entropy on the labelled pairs (PEBBLE Eq. 2), optionally cropped.

    ``L_m = mean_b CE(softmax(sum_t mask_t r_m(a_t), sum_t mask_t r_m(b_t)), y_b)``. The per-step rewards
    are the model's training-mode rewards (a reparameterised sample for the Gaussian model).

    Args:
        crop: a :class:`TemporalCrop`, or ``None`` for whole segments.
    """

    name = "bradley_terry"

    def __init__(self, crop: TemporalCrop | None = None):
        self.crop = crop

    def check(self, model: Any, train: PreferenceDataset) -> None:
        if self.crop is not None:
            self.crop.check(train.segment_length)

    def __call__(self, model: Any, batch: PairBatch) -> torch.Tensor:
        M, B, _, H, _ = batch.x.shape
        rewards, reg = model._pair_rewards(batch.x, sample=True)  # [M, B, 2, H]
        mask = None if self.crop is None else self.crop.mask(model.rng, M, B, H, rewards.device)
        logits = (rewards * mask).sum(-1) if mask is not None else rewards.sum(-1)
        batch.cache.update(rewards=rewards, reg=reg, mask=mask, logits=logits)
        return soft_cross_entropy(logits, batch.y).mean(dim=1)


class RewardTrainer:
    """Fit a reward model (:class:`~pbrl.reward_models.RewardEnsemble` or a subclass) on labelled pairs.

    Args:
        losses: the objective's terms (default ``[BradleyTerryLoss()]`` plus the model's own terms, e.g.
            the Gaussian model's KL); the first term must be a :class:`BradleyTerryLoss` (its logits
            give the training accuracy).
        epochs: maximum number of epochs (default 200).
        batch_size: labelled pairs per member per step (default 128).
        early_stop_accuracy: stop once the members' mean training accuracy over an epoch reaches this
            (default 0.97, B-Pref); ``None`` disables it.
        val_fraction: share of pairs held out (seeded) for ``val_loss`` / ``val_accuracy``.
        progress: a tqdm bar over epochs.

    What depends on the kind of labels (pairs here) is in five small methods (``_check_dataset``, ``_inputs``,
    ``_batch``, ``_correct``, ``_validate``) and ``first_term``; :class:`pbrl.reward_models.ratings.RatingTrainer`
    overrides them to fit on rated single segments.
    """

    #: the class the objective's first term must have (its ``batch.cache["logits"]`` give the accuracy)
    first_term: type = BradleyTerryLoss

    def __init__(
        self,
        losses: list[LossTerm] | None = None,
        epochs: int = 200,
        batch_size: int = 128,
        early_stop_accuracy: float | None = 0.97,
        val_fraction: float = 0.0,
        progress: bool = False,
    ):
        self.losses = list(losses) if losses is not None else None
        if self.losses is not None:
            if not self.losses or not isinstance(self.losses[0], self.first_term):
                raise ValueError(f"losses must start with a {self.first_term.__name__} (it gives the training accuracy)")
            for t in self.losses:
                if not isinstance(t, LossTerm):
                    raise TypeError(f"every loss must be a pbrl LossTerm, got {type(t).__name__}")
        self.epochs = check_int("epochs", epochs, 1)
        self.batch_size = check_int("batch_size", batch_size, 1)
        if early_stop_accuracy is not None and not 0.0 < early_stop_accuracy <= 1.0:
            raise ValueError(f"early_stop_accuracy must be in (0, 1] or None, got {early_stop_accuracy}")
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
        self.early_stop_accuracy = early_stop_accuracy
        self.val_fraction = float(val_fraction)
        self.progress = bool(progress)

    def terms(self, model: Any) -> list[LossTerm]:
        """The objective used for ``model``: the given losses, or Bradley-Terry plus the model's own terms."""
        if self.losses is not None:
            return self.losses
        return [BradleyTerryLoss(), *model.default_loss_terms()]

    # ------------------------------------------------------------------ what depends on the kind of labels
    def _check_dataset(self, model: Any, dataset: Any) -> None:
        """One clear error unless ``dataset`` holds labelled pairs of the model's sizes."""
        if not isinstance(dataset, PreferenceDataset):
            raise TypeError(f"dataset must be a PreferenceDataset, got {type(dataset).__name__}")
        if len(dataset) == 0:
            raise ValueError("cannot fit a reward model on an empty PreferenceDataset; collect labels first")
        model._check_segments(dataset.a, "dataset.a")
        model._check_segments(dataset.b, "dataset.b")

    def _inputs(self, model: Any, train: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw model inputs of every training row (pairs: ``[N, 2, H, in]``) and their targets ``[N]``."""
        return model._pair_inputs(train.a, train.b), torch.as_tensor(train.label, device=model.device)

    def _batch(self, x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor) -> PairBatch:
        """The minibatch of rows ``idx [M, B]`` for every member."""
        return PairBatch(x=x[idx], y=y[idx], idx=idx)

    def _correct(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-member correct answers and rows that count, both ``[M]`` (pairs: ties do not count)."""
        logits = batch.cache["logits"]
        decided = batch.y != 0.5
        pred_b = logits[..., 1] > logits[..., 0]
        return ((pred_b == (batch.y > 0.5)) & decided).sum(1).float(), decided.sum(1).float()

    def _validate(self, model: Any, val: Any) -> dict[str, Any]:
        """``loss``, ``accuracy`` and ``member_accuracy`` on held-out rows."""
        return model._evaluate_pairs(val.a, val.b, val.label)

    # ------------------------------------------------------------------ the loop
    def fit(self, model: Any, dataset: Any, renormalize: bool = True) -> dict[str, Any]:
        """Train every member of ``model`` on ``dataset``; returns the result dict of
        :meth:`pbrl.reward_models.RewardEnsemble.fit`."""
        self._check_dataset(model, dataset)
        terms = self.terms(model)
        if not terms or not isinstance(terms[0], self.first_term):
            raise ValueError(f"the first loss term must be a {self.first_term.__name__} (it gives the training accuracy)")
        train, val = dataset, None
        if self.val_fraction > 0:
            val, train = dataset.split(self.val_fraction, seed=model.rng)
            if len(train) == 0:
                raise ValueError(f"val_fraction={self.val_fraction} leaves no training rows out of {len(dataset)}")
            if len(val) == 0:
                val = None
        for t in terms:
            t.check(model, train)
        x, y = self._inputs(model, train)
        if model.normalize and (renormalize or not model.fitted_normalizer):
            model._fit_normalizer(x)
        for t in terms:
            t.start(model, train)
        N, M = len(train), model.n_members
        bs = min(self.batch_size, N)
        n_batches = math.ceil(N / bs)
        history: dict[str, list[float]] = {"loss": [], "accuracy": []}
        member_loss = torch.zeros(M)
        member_acc = torch.zeros(M)
        model.net.train()
        bar = tqdm(range(self.epochs), disable=not self.progress, desc="reward model", unit="epoch")
        n_run = 0
        for _ in bar:
            n_run += 1
            if model.bootstrap:
                order = model.rng.integers(0, N, size=(M, N))
            else:
                order = np.argsort(model.rng.random((M, N)), axis=1)
            order_t = torch.as_tensor(order, device=model.device)
            loss_sum = torch.zeros(M, device=model.device)
            correct_sum = torch.zeros(M, device=model.device)
            counted_sum = torch.zeros(M, device=model.device)
            for bi in range(n_batches):
                idx = order_t[:, bi * bs : (bi + 1) * bs]  # [M, B]
                batch = self._batch(x, y, idx)
                parts = [t(model, batch) for t in terms]  # each [M]
                loss = torch.stack(parts).sum()
                model.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                model.optimizer.step()
                with torch.no_grad():
                    loss_sum += parts[0].detach() * idx.shape[1]
                    correct, counted = self._correct(batch)
                    correct_sum += correct
                    counted_sum += counted
            member_loss = (loss_sum / N).cpu()
            member_acc = torch.where(counted_sum > 0, correct_sum / counted_sum.clamp_min(1), torch.nan).cpu()
            mean_acc = float(member_acc.mean())
            history["loss"].append(float(member_loss.mean()))
            history["accuracy"].append(mean_acc)
            if self.progress:
                bar.set_postfix(loss=f"{history['loss'][-1]:.4f}", acc=f"{mean_acc:.3f}")
            if self.early_stop_accuracy is not None and np.isfinite(mean_acc) and mean_acc >= self.early_stop_accuracy:
                break
        bar.close()
        model.net.eval()
        out: dict[str, Any] = {
            "loss": float(member_loss.mean()),
            "accuracy": float(member_acc.mean()),
            "member_loss": member_loss.tolist(),
            "member_accuracy": member_acc.tolist(),
            "epochs": n_run,
            "history": history,
            "n_train": N,
        }
        if val is not None:
            v = self._validate(model, val)
            out.update({"val_loss": v["loss"], "val_accuracy": v["accuracy"], "val_member_accuracy": v["member_accuracy"]})
        for t in terms:
            out.update(t.summary())
        return out
