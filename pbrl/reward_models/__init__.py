"""Reward models learned from preferences.

* :class:`RewardEnsemble` (:mod:`.ensemble`): M Bradley-Terry reward MLPs as one batched network (PEBBLE);
* :class:`GaussianRewardModel` (:mod:`.gaussian`): the robust Gaussian reward of PEARL, with its KL term;
* :class:`PreferenceTransformer` (:mod:`.transformer`): the non-Markovian model of Kim et al. 2023;
* :mod:`.training`: :class:`RewardTrainer` and the loss terms (:class:`BradleyTerryLoss`,
  :class:`TemporalCrop`; SURF's pseudo-label term lives in :mod:`pbrl.agents.surf`);
* :mod:`.ratings`: :class:`RatingLoss` and :class:`RatingTrainer`, reward learning from rated single
  segments (RbRL, White et al. AAAI 2024);
* :mod:`.networks`: :class:`EnsembleMLP`, the one batched ensemble MLP (``BatchedMLP``: with the reward
  models' defaults), also the offline agents' twin critics;
* :func:`evaluate_reward_model`, :func:`factor_correlations`, :func:`saturation` (:mod:`.metrics`), :func:`load_reward_model`.

Label convention (pbrl-wide): ``1.0`` = ``b`` preferred, ``0.0`` = ``a`` preferred, ``0.5`` = equal.
"""

from __future__ import annotations

import os

from pbrl.reward_models.ensemble import (
    ENSEMBLE_NORMALIZATIONS,
    MODEL_CLASSES,
    RewardEnsemble,
    combine_member_rewards,
)
from pbrl.reward_models.gaussian import GaussianKL, GaussianRewardModel
from pbrl.reward_models.metrics import evaluate_reward_model, factor_correlations, saturation
from pbrl.reward_models.networks import BatchedMLP, EnsembleMLP
from pbrl.reward_models.ratings import RatingBatch, RatingLoss, RatingTrainer
from pbrl.reward_models.training import BradleyTerryLoss, LossTerm, PairBatch, RewardTrainer, TemporalCrop
from pbrl.reward_models.transformer import PreferenceTransformer

__all__ = [
    "saturation",
    "factor_correlations",
    "combine_member_rewards",
    "ENSEMBLE_NORMALIZATIONS",
    "BatchedMLP",
    "EnsembleMLP",
    "RewardEnsemble",
    "GaussianRewardModel",
    "GaussianKL",
    "PreferenceTransformer",
    "RewardTrainer",
    "LossTerm",
    "PairBatch",
    "BradleyTerryLoss",
    "TemporalCrop",
    "RatingLoss",
    "RatingTrainer",
    "RatingBatch",
    "MODEL_CLASSES",
    "evaluate_reward_model",
    "load_reward_model",
]


def load_reward_model(path: str | os.PathLike, device: str = "cpu") -> RewardEnsemble:
    """Load any pbrl reward model saved with ``.save(path)``."""
    return RewardEnsemble.load(path, device=device)
