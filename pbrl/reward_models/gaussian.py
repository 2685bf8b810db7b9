"""The Gaussian (robust) reward model of PEARL and its KL loss term."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from pbrl.reward_models.ensemble import MODEL_CLASSES, RewardEnsemble, _check_array
from pbrl.reward_models.training import LossTerm, PairBatch

__all__ = ["GaussianRewardModel", "GaussianKL"]


class GaussianRewardModel(RewardEnsemble):
    """Robust reward learning with a Gaussian reward: the RRL component of PEARL (Liu, Du, Bai, Lyu & Li,
    "PEARL: Zero-shot Cross-task Preference Alignment and Robust Reward Learning for Robotic
    Manipulation", arXiv:2306.03615, section "Robust Reward Learning").

    Each member outputs a mean ``mu(s, a)`` and a log-variance ``log sigma^2(s, a)``. Inside the
    Bradley-Terry loss, per-step rewards are sampled with the reparameterisation trick,
    ``r = mu + sigma * eps``, ``eps ~ N(0, 1)``, and the loss adds a KL regulariser to a unit Gaussian:

        L = L_BT(r_sampled) + kl_weight * E_{(s,a)} [ KL( N(mu, sigma^2) || N(0, 1) ) ],   (GaussianKL)
        KL = 0.5 * (mu^2 + sigma^2 - log sigma^2 - 1),

    which keeps the learned rewards on a bounded scale and lets ambiguous transitions keep a large
    variance instead of over-fitting noisy labels. ``predict`` returns the mean (over members of
    ``mu``); ``std`` returns the learned uncertainty, ``sqrt(mean_m sigma_m^2 + var_m mu_m)`` (the std
    of the mixture of the members' Gaussians; with one member, the learned sigma).

    The KL term is the loss object :class:`GaussianKL`, averaged over the steps the Bradley-Terry term
    scored (the crop mask, when cropping). The mean head uses the configured ``output`` squashing (``tanh`` by default); the log-variance is
    clamped to ``[log_var_min, log_var_max]``.

    Args: as :class:`RewardEnsemble`, plus ``kl_weight`` (default 1e-3), ``log_var_min`` (-10),
    ``log_var_max`` (2).
    """

    out_per_member = 2
    sampled_rewards = True  # sample=True draws mu + sigma * eps

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        n_members: int = 3,
        hidden: tuple[int, ...] = (256, 256, 256),
        lr: float = 3e-4,
        output: str = "tanh",
        bootstrap: bool = False,
        seed: int = 0,
        device: str = "cpu",
        kl_weight: float = 1e-3,
        log_var_min: float = -10.0,
        log_var_max: float = 2.0,
        **kw: Any,
    ):
        if not kl_weight >= 0:
            raise ValueError(f"kl_weight must be >= 0, got {kl_weight}")
        if not log_var_min < log_var_max:
            raise ValueError(f"log_var_min must be < log_var_max, got {log_var_min}, {log_var_max}")
        super().__init__(obs_dim, act_dim, n_members, hidden, lr, output, bootstrap, seed, device, **kw)
        self.kl_weight = float(kl_weight)
        self.log_var_min = float(log_var_min)
        self.log_var_max = float(log_var_max)

    def config(self) -> dict[str, Any]:
        """Constructor arguments, including ``kl_weight`` and the log-variance bounds."""
        cfg = super().config()
        cfg.update(kl_weight=self.kl_weight, log_var_min=self.log_var_min, log_var_max=self.log_var_max)
        return cfg

    def _heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.net(self._normalise(x))
        mu = self._squash(out[..., 0])
        log_var = out[..., 1].clamp(self.log_var_min, self.log_var_max)
        return mu, log_var

    def _rewards(self, x: torch.Tensor, sample: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Reparameterised sample ``mu + sigma * eps`` (or ``mu`` when not sampling) ``[M, B]`` and
        ``kl_weight * KL(N(mu, sigma^2) || N(0, 1))`` per row ``[M, B]``."""
        mu, log_var = self._heads(x)
        kl = self.kl_weight * 0.5 * (mu.pow(2) + log_var.exp() - log_var - 1.0)
        if not sample:
            return mu, kl
        eps = torch.randn(mu.shape, generator=self.torch_gen, device=mu.device)
        return mu + torch.exp(0.5 * log_var) * eps, kl

    @torch.no_grad()
    def member_std(self, obs, act) -> np.ndarray:
        """Learned per-member sigma ``[M, *obs.shape[:-1]]``."""
        obs = _check_array("obs", obs, self.obs_dim, "obs_dim")
        act = _check_array("act", act, self.act_dim, "act_dim")
        if obs.shape[:-1] != act.shape[:-1]:
            raise ValueError(f"obs and act must share leading shape, got {obs.shape} and {act.shape}")
        lead = obs.shape[:-1]
        x = np.concatenate([obs.reshape(-1, self.obs_dim), act.reshape(-1, self.act_dim)], axis=1)
        out = np.empty((self.n_members, len(x)), np.float32)
        for s in range(0, len(x), self.predict_chunk):
            xb = torch.as_tensor(x[s : s + self.predict_chunk], device=self.device)
            _, log_var = self._heads(xb)
            out[:, s : s + len(xb)] = torch.exp(0.5 * log_var).cpu().numpy()
        return out.reshape(self.n_members, *lead)

    def std(self, obs, act) -> np.ndarray:
        """Learned uncertainty: std of the mixture of member Gaussians, shape ``obs.shape[:-1]``."""
        mu = self.member_rewards(obs, act)
        sig = self.member_std(obs, act)
        return np.sqrt((sig.astype(np.float64) ** 2).mean(0) + mu.astype(np.float64).var(0)).astype(np.float32)



    def default_loss_terms(self) -> list:
        """The KL regulariser :class:`GaussianKL` (weight ``kl_weight``) joins the Bradley-Terry loss."""
        return [GaussianKL()] if self.kl_weight > 0 else []


class GaussianKL(LossTerm):
    """The Gaussian reward's regulariser ``kl_weight * E_(s,a)[KL(N(mu, sigma^2) || N(0, 1))]`` (PEARL, RRL).

    It reads the per-step KL that :class:`~pbrl.reward_models.training.BradleyTerryLoss` computed in the
    same forward pass (``batch.cache["reg"]``, weight included) and averages it over the steps that the
    Bradley-Terry term scored: with a temporal crop, only the cropped steps count. Must come after the
    Bradley-Terry term in ``losses``.
    """

    name = "gaussian_kl"

    def __call__(self, model, batch: PairBatch) -> torch.Tensor:
        reg = batch.cache.get("reg")
        if reg is None:
            raise ValueError("GaussianKL needs a Gaussian reward model and a BradleyTerryLoss before it in losses")
        mask = batch.cache.get("mask")
        if mask is None:
            return reg.mean(dim=(1, 2, 3))
        return (reg * mask).sum(dim=(1, 2, 3)) / mask.sum(dim=(1, 2, 3)).clamp_min(1.0)


MODEL_CLASSES["GaussianRewardModel"] = GaussianRewardModel
