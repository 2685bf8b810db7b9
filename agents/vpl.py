"""Variational Preference Learning (VPL): one reward per user from a latent, and a policy for each user.

Poddar, Wan, Ivison, Gupta & Jaques, "Personalizing Reinforcement Learning from Human Feedback with
Variational Preference Learning", NeurIPS 2024 (authors' code: github.com/WEIRDLabUW/vpl). When people want
different things, one Bradley-Terry reward averages them and serves none (the paper's Sec. 3). VPL gives
each user a latent ``z``:

* **Encoder** ``q_psi(z | C)``: a diagonal Gaussian from a *context* ``C = {(s_A^i, s_B^i, y^i)}_{i=1..S}``
  of ``S`` labelled pairs of one user (the segments' states flattened and concatenated with the labels,
  then an MLP; the authors' ``Encoder``).
* **Reward decoder** ``r_phi(s, z)``: an MLP on the state and the latent. Under the latent, the
  Bradley-Terry model (the paper's Sec. 3) reads ``P(b > a | z) = sigmoid(sum_t r(s^b_t, z) - sum_t
  r(s^a_t, z))`` (pbrl's labels: 1.0 = ``b`` preferred).
* **Loss** (the evidence lower bound of the paper's Sec. 4.1, negated; the authors' ``VAEModel.forward``):
  per context, ``L = - sum_{i in C} log P(y^i | s_A^i, s_B^i, z) + beta KL(q_psi(z | C) || N(0, I))`` with
  ``z ~ q_psi(z | C)`` reparameterised                                     -> :func:`vpl_loss`, :func:`gaussian_kl`.
* **Policy**: IQL (:class:`pbrl.agents.iql.IQL`, Kostrikov et al. 2022, Eq. 5-7) on observations
  augmented with ``z``, the transitions relabelled by ``r_phi(s, z)``: a policy ``pi(a | s, z)`` for every
  user. At test time ``z`` is the posterior mean of a few labels of the new user (:meth:`VPL.set_user`).
* **Active queries** (the paper's Sec. 4.3, the authors' ``experiments/active_utils.py``): choose the set of
  pairs whose answers tell most about ``z``, ``I(z; y) = H[E_y q(z | C, y)] - E_y H[q(z | C, y)]``
  -> :func:`latent_information_gain`, :meth:`VPL.information_gain`, the ``information_gain`` selector of
  :mod:`pbrl.queries`.

Equation numbers: the paper's text could not be read where this was written, so its sections are named and
every equation was checked against the authors' code (``pref_learn/models/vae.py``) instead.

Defaults are the authors' code's (``pref_learn/train.py`` flags, ``pref_learn/models/vae.py``,
``configs/maze_config.py``, ``run.sh``): latent dim 32, ``beta`` (``kl_weight``) 1.0, encoder and decoder 3
hidden layers of 256 with LeakyReLU(0.2), Adam lr 1e-3, 256 contexts per batch, 500 epochs, contexts of 16
pairs (the dataset ``..._s16`` their scripts train on); IQL with the maze configuration (expectile 0.9,
temperature 10.0, 2 x 256, lr 3e-4, batch 256), latents for the policy drawn from the prior
(``--vae_sampling True``) and rewards unnormalised (``--vae_norm none``). ``docs/hyperparameters.md`` (VPL)
lists each with its source and pbrl's differences.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from pbrl.agents.iql import IQL
from pbrl.agents.networks import GaussianPolicy, TwinQ, ValueNet
from pbrl.preferences import PreferenceDataset
from pbrl.ratings import RatingDataset
from pbrl.segments import Segments

__all__ = ["VPL", "VPLRewardModel", "vpl_loss", "gaussian_kl", "latent_information_gain", "label_vectors",
           "code_information_gain", "IG_ESTIMATORS", "IG_LABELS",
           "LATENT_SAMPLING", "VPL_REWARD_NORMALIZATIONS", "PRESETS"]

#: where the policy's training latents come from: the prior N(0, I) or posteriors of the training users
LATENT_SAMPLING = ("prior", "posterior")
#: VPL's ``reward_normalization`` values (applied to its learned rewards before IQL)
VPL_REWARD_NORMALIZATIONS = ("none", "standard", "minmax")

#: named variants of the defaults. ``"cpu"``: the size of ``scripts/vpl_check.py`` (hundreds of labels, not the
#: authors' 80,000): contexts of 8, 16 contexts per batch (1,500 epochs: 6,000 steps on 400 labels, the
#: authors' 500 epochs of 5,000 sets are 10,000), 64-wide networks, ``beta = 0.1`` (at 1.0 the posterior
#: nearly collapsed on 400 labels), latents from the users' posteriors, rewards scaled to [0, 1]
#: (``docs/hyperparameters.md``, VPL, says why each)
PRESETS: dict[str, dict[str, Any]] = {
    "cpu": {"context_size": 8, "reward_batch_size": 16, "reward_epochs": 1500, "encoder_hidden": 64,
            "hidden": (64, 64), "kl_weight": 0.1, "latent_sampling": "posterior", "reward_normalization": "minmax"},
}


# ---------------------------------------------------------------------------------------------- losses


def gaussian_kl(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``KL(N(mean, exp(logvar)) || N(0, I)) = 1/2 sum_d (exp(logvar_d) + mean_d^2 - 1 - logvar_d)``.

    Args:
        mean, logvar: ``[B, d]`` the encoder's posterior.

    Returns:
        ``[B]`` one KL per context (the authors' ``latent_loss`` sums it over the batch as well).
    """
    return 0.5 * (logvar.exp() + mean.pow(2) - 1.0 - logvar).sum(-1)


def vpl_loss(return_a: torch.Tensor, return_b: torch.Tensor, label: torch.Tensor, mean: torch.Tensor,
             logvar: torch.Tensor, beta: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """VPL's negative ELBO (Poddar et al. 2024, Sec. 4.1), averaged over the batch of contexts.

    ``mean_B [ sum_{i<S} BCE(sigmoid(R_b^i - R_a^i), y^i) + beta KL(q(z | C) || N(0, I)) ]`` where ``R`` is the
    decoder's return ``sum_t r(s_t, z)`` of a segment under the context's sampled ``z``.

    Args:
        return_a, return_b: ``[B, S]`` segment returns under each context's ``z``.
        label: ``[B, S]`` in {0, 0.5, 1} (1.0 = ``b`` preferred).
        mean, logvar: ``[B, d]`` the posterior of each context.
        beta: the KL weight (default 1.0, the authors' ``kl_weight``).

    Returns:
        ``(loss, nll, kl)``: the scalar loss, and its two parts' batch means (for logging).
    """
    nll = F.binary_cross_entropy_with_logits(return_b - return_a, label, reduction="none").sum(-1)
    kl = gaussian_kl(mean, logvar)
    return (nll + beta * kl).mean(), nll.mean(), kl.mean()


def latent_information_gain(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """How much the answers to a context tell about ``z``: ``I(z; y) = H[E_y q(z | y)] - E_y H[q(z | y)]``.

    The posteriors ``q(z | C, y_l)`` of ``L`` label vectors ``y_l`` of each of ``K`` candidate contexts are
    diagonal Gaussians. ``E_y H[q]`` is exact (``1/2 sum_d log(2 pi e var_d)``, averaged over the label
    vectors, equally likely as in the authors' code); the entropy of their mixture is that of the Gaussian
    with the mixture's mean and variance (an upper bound, exact when the posteriors coincide), so

        ``I ~= 1/2 sum_d [ log Var_mix,d - mean_l log var_l,d ]``,  ``Var_mix = mean_l (var_l + mu_l^2) - (mean_l mu_l)^2``

    which is >= 0 and grows with how far apart the answers move the posterior (its means) and how much they
    shrink it (its variances).

    Args:
        mean, logvar: ``[L, K, d]``.

    Returns:
        ``[K]`` nats.
    """
    var = logvar.exp()
    mix_var = (var + mean.pow(2)).mean(0) - mean.mean(0).pow(2)
    return 0.5 * (mix_var.clamp_min(1e-12).log() - logvar.mean(0)).sum(-1)


def code_information_gain(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """The authors' score of a context (``experiments/active_utils.py``, ``get_information_gain``), for
    comparison with :func:`latent_information_gain`: ``log(2 pi mean_l sum_d var_l,d) - mean_l sum_d log(2 pi
    var_l,d)``. Its first term stands for the entropy of the mixture of posteriors but reads only their
    variances (one number for all ``d`` dimensions), so answers that move the posterior's mean add nothing.

    Args:
        mean, logvar: ``[L, K, d]`` (``mean`` is not used, as in the authors' code).

    Returns:
        ``[K]``.
    """
    var = logvar.exp()
    return torch.log(2 * math.pi * var.sum(-1).mean(0)) - torch.log(2 * math.pi * var).sum(-1).mean(0)


#: the estimators ``VPL.information_gain`` offers: pbrl's moment-matched mutual information, or the authors'
IG_ESTIMATORS = {"moment": latent_information_gain, "code": code_information_gain}
#: how ``VPL.information_gain`` weighs the answers: all label vectors alike (the authors'), or as the model predicts
IG_LABELS = ("uniform", "predictive")


def label_vectors(m: int, n: int, rng: Any = None) -> np.ndarray:
    """``min(n, 2^m)`` distinct label vectors ``[L, m]`` in {0, 1}: all ``2^m`` (in binary order) when
    ``2^m <= n``, else ``n`` drawn uniformly without replacement from ``rng`` (the authors'
    ``get_information_gain`` draws its 50 without replacement)."""
    if m < 31 and 2**m <= n:
        return ((np.arange(2**m)[:, None] >> np.arange(m)) & 1).astype(np.float32)
    rng = np.random.default_rng(rng)
    rows = np.zeros((0, m), np.float32)
    while len(rows) < n:  # draw, keep the first occurrence of each vector, top up
        rows = np.concatenate([rows, (rng.random((n, m)) < 0.5).astype(np.float32)])
        _, first = np.unique(rows, axis=0, return_index=True)
        rows = rows[np.sort(first)]
    return rows[:n]


# ---------------------------------------------------------------------------------------------- networks


def _leaky_trunk(n_in: int, hidden: int, n_layers: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(n_layers):
        layers += [nn.Linear(n_in if i == 0 else hidden, hidden), nn.LeakyReLU(0.2)]
    return nn.Sequential(*layers)


class VPLRewardModel(nn.Module):
    """VPL's encoder ``q(z | C)`` and reward decoder ``r(s, z)`` (the authors' ``VAEModel``).

    Args:
        obs_dim: state size (the decoder reads states, not actions, as the authors').
        segment_length: ``H`` of the labelled segments (the encoder's input size depends on it).
        context_size: ``S`` pairs per context.
        latent_dim: ``d`` (default 32).
        hidden: width of the encoder's and decoder's hidden layers (default 256).
        n_layers: hidden layers of each, LeakyReLU(0.2) (default 3).
    """

    def __init__(self, obs_dim: int, segment_length: int, context_size: int, latent_dim: int = 32,
                 hidden: int = 256, n_layers: int = 3):
        super().__init__()
        self.obs_dim, self.segment_length, self.context_size = int(obs_dim), int(segment_length), int(context_size)
        self.latent_dim = int(latent_dim)
        self.encoder = _leaky_trunk(context_size * (2 * segment_length * obs_dim + 1), hidden, n_layers)
        self.mean_head = nn.Linear(hidden, latent_dim)
        self.logvar_head = nn.Linear(hidden, latent_dim)
        self.decoder = nn.Sequential(_leaky_trunk(obs_dim + latent_dim, hidden, n_layers), nn.Linear(hidden, 1))

    def encode(self, obs_a: torch.Tensor, obs_b: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``obs_a, obs_b [B, S, H, obs_dim]``, ``label [B, S]`` -> posterior ``(mean, logvar)``, each ``[B, d]``."""
        x = torch.cat([obs_a.flatten(2), obs_b.flatten(2), label.unsqueeze(-1)], dim=-1).flatten(1)
        h = self.encoder(x)
        return self.mean_head(h), self.logvar_head(h)

    def reward(self, obs: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``r(s, z)``: ``obs [..., obs_dim]``, ``z`` broadcastable to ``[..., d]`` -> ``[...]``."""
        z = z.expand(*obs.shape[:-1], z.shape[-1])
        return self.decoder(torch.cat([obs, z], dim=-1)).squeeze(-1)

    def returns(self, obs: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Segment returns ``sum_t r(s_t, z)``: ``obs [B, S, H, obs_dim]``, ``z [B, d]`` -> ``[B, S]``."""
        return self.reward(obs, z[:, None, None, :]).sum(-1)


# ---------------------------------------------------------------------------------------------- agent


class VPL(IQL):
    """VPL (Poddar et al., NeurIPS 2024): a latent per user, a reward ``r(s, z)`` and a ``z``-conditioned IQL
    policy (see the module docstring for the losses).

    The first ``fit`` trains the encoder and decoder on the preferences, grouped by ``PreferenceDataset.user``
    (every context is ``context_size`` pairs of one user, drawn afresh for every minibatch), then every IQL
    update draws a latent per transition (from the prior, or from the training users' posteriors) and
    relabels the transition with ``r(s, z)``. ``predict`` acts for the current user's latent :attr:`latent`
    (the prior mean 0 until :meth:`set_user` infers one from that user's labels).

    Args:
        obs_dim, act_dim: sizes.
        latent_dim: ``d`` (default 32).
        kl_weight: ``beta`` of :func:`vpl_loss` (default 1.0).
        context_size: ``S``, labelled pairs per context (default 16); every user needs at least this many.
        encoder_hidden, encoder_layers: width and depth of the encoder and decoder (default 256, 3).
        reward_lr: Adam learning rate of the encoder and decoder (default 1e-3).
        reward_epochs: epochs of the reward model's fit (default 500); an epoch is ``ceil(N / S)`` contexts.
        reward_batch_size: contexts per reward minibatch (default 256).
        latent_sampling: the policy's training latents: ``"prior"`` (default, ``N(0, I)``) or ``"posterior"``
            (samples of the training users' posteriors, a bank of ``n_latent_bank`` contexts).
        n_latent_bank: posterior samples in the bank (default 256; ``latent_sampling="posterior"`` only).
        reward_normalization: ``"none"`` (default, the authors'), ``"standard"`` or ``"minmax"``, with
            statistics of ``r(s, z)`` over dataset states and training latents, fixed at the first fit.
        expectile, beta: IQL's (default 0.9 and 10.0, the authors' maze configuration).
        **iql: other :class:`~pbrl.agents.iql.IQL` / ``OfflineAgent`` arguments (``hidden=(256, 256)``,
            ``lr=3e-4``, ``batch_size=256``, ``tau``, ``seed``, ...).

    Attributes:
        reward_model: the :class:`VPLRewardModel` (``None`` until the first fit; saved with the agent).
        reward_fit_info: ``{"loss", "nll", "kl", "accuracy"}`` of the last reward epoch.
        latent: ``[d]`` the latent ``predict`` acts for.
    """

    requires_preferences = True
    feedback_kinds = ("preference",)
    #: learns from labels that carry user ids (the run config asks for ``teacher: multi_user``)
    needs_user_ids = True

    def __init__(self, obs_dim: int, act_dim: int, latent_dim: int = 32, kl_weight: float = 1.0,
                 context_size: int = 16, encoder_hidden: int = 256, encoder_layers: int = 3, reward_lr: float = 1e-3,
                 reward_epochs: int = 500, reward_batch_size: int = 256, latent_sampling: str = "prior",
                 n_latent_bank: int = 256, reward_normalization: str = "none", expectile: float = 0.9,
                 beta: float = 10.0, **iql: Any):
        for name, v in (("latent_dim", latent_dim), ("context_size", context_size), ("encoder_hidden", encoder_hidden),
                        ("encoder_layers", encoder_layers), ("reward_epochs", reward_epochs),
                        ("reward_batch_size", reward_batch_size), ("n_latent_bank", n_latent_bank)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        for name, v in (("kl_weight", kl_weight), ("reward_lr", reward_lr)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0 or (name == "reward_lr" and v == 0):
                raise ValueError(f"{name} must be a {'positive' if name == 'reward_lr' else 'non-negative'} number, got {v!r}")
        if latent_sampling not in LATENT_SAMPLING:
            raise ValueError(f"unknown latent_sampling '{latent_sampling}'; choose one of {LATENT_SAMPLING}")
        if reward_normalization not in VPL_REWARD_NORMALIZATIONS:
            raise ValueError(f"unknown reward_normalization '{reward_normalization}'; choose one of "
                             f"{VPL_REWARD_NORMALIZATIONS}")
        self.latent_dim, self.kl_weight, self.context_size = int(latent_dim), float(kl_weight), int(context_size)
        self.encoder_hidden, self.encoder_layers = int(encoder_hidden), int(encoder_layers)
        self.reward_lr, self.reward_epochs = float(reward_lr), int(reward_epochs)
        self.reward_batch_size, self.latent_sampling = int(reward_batch_size), latent_sampling
        self.n_latent_bank = int(n_latent_bank)
        self._register_config(latent_dim=self.latent_dim, kl_weight=self.kl_weight, context_size=self.context_size,
                              encoder_hidden=self.encoder_hidden, encoder_layers=self.encoder_layers,
                              reward_lr=self.reward_lr, reward_epochs=self.reward_epochs,
                              reward_batch_size=self.reward_batch_size, latent_sampling=latent_sampling,
                              n_latent_bank=self.n_latent_bank)
        super().__init__(obs_dim, act_dim, expectile=expectile, beta=beta, reward_normalization=reward_normalization,
                         **iql)
        self.reward_model: VPLRewardModel | None = None
        self.reward_fit_info: dict[str, float] = {}
        self.latent = np.zeros(self.latent_dim, np.float32)
        self.latent_bank = np.zeros((0, self.latent_dim), np.float32)
        self.reward_shift, self.reward_scale = 0.0, 1.0

    def _build(self) -> None:
        n_in = self.obs_dim + self.latent_dim  # every network reads [s, z]
        q = TwinQ(n_in, self.act_dim, self.hidden)
        self.nets = {"q": q, "q_target": copy.deepcopy(q).requires_grad_(False), "v": ValueNet(n_in, self.hidden),
                     "policy": GaussianPolicy(n_in, self.act_dim, self.hidden, dropout=self.dropout)}
        self.optims = {name: torch.optim.Adam(self.nets[name].parameters(), lr=self.lr) for name in ("q", "v", "policy")}

    # ------------------------------------------------------------------ inputs
    def _check_preferences(self, preferences: Any) -> None:
        if isinstance(preferences, RatingDataset):
            raise ValueError("VPL learns from preference pairs of several users, got ratings (a RatingDataset); "
                             "label pairs (e.g. --teacher multi_user)")
        super()._check_preferences(preferences)
        if preferences.user is None:
            raise ValueError("VPL needs the user id of every label (PreferenceDataset.user is None): label with a "
                             "multi-user teacher (--teacher multi_user, make_teacher('multi_user')), export the "
                             "labelling page per annotator, or set prefs.user")
        self._check_users(preferences)
        H = int(preferences.segment_length)
        if self.reward_model is not None and H != self.reward_model.segment_length:
            raise ValueError(f"the reward model was fitted on segments of {self.reward_model.segment_length} steps, "
                             f"these preferences have {H}; label segments of the same length")

    def _check_users(self, preferences: PreferenceDataset) -> None:
        """Every user has at least ``context_size`` pairs (one context)."""
        users, counts = np.unique(preferences.user, return_counts=True)
        short = [f"{str(u)!r} ({c})" for u, c in zip(users, counts) if c < self.context_size]
        if short:
            raise ValueError(f"VPL's encoder reads contexts of context_size={self.context_size} pairs of one user, but "
                             f"user(s) {', '.join(short[:5])} labelled fewer; label more pairs per user or lower "
                             "context_size")

    # ------------------------------------------------------------------ the reward model
    def _pair_tensors(self, preferences: PreferenceDataset) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return (self.tensor(self._norm_obs_np(preferences.a.obs)), self.tensor(self._norm_obs_np(preferences.b.obs)),
                self.tensor(preferences.label))

    def _contexts(self, groups: list[np.ndarray], n: int) -> np.ndarray:
        """``n`` contexts ``[n, S]`` of pair indices: a pair drawn uniformly (so a user in proportion to their
        labels), then ``S`` distinct pairs of its user."""
        sizes = np.array([len(g) for g in groups])
        who = self.rng.choice(len(groups), size=n, p=sizes / sizes.sum())
        return np.stack([self.rng.choice(groups[k], size=self.context_size, replace=False) for k in who])

    def _fit_reward_model(self, preferences: PreferenceDataset) -> None:
        """Train the encoder and decoder on :func:`vpl_loss` (``reward_epochs`` epochs)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            model = VPLRewardModel(self.obs_dim, preferences.segment_length, self.context_size, self.latent_dim,
                                   self.encoder_hidden, self.encoder_layers).to(self.device)
        opt = torch.optim.Adam(model.parameters(), lr=self.reward_lr)
        oa, ob, y = self._pair_tensors(preferences)
        groups = [np.flatnonzero(preferences.user == u) for u in preferences.users()]
        per_epoch = -(-len(preferences) // self.context_size)
        logs: dict[str, float] = {}
        for _ in range(self.reward_epochs):
            sums = np.zeros(4)
            for start in range(0, per_epoch, self.reward_batch_size):
                idx = torch.as_tensor(self._contexts(groups, min(self.reward_batch_size, per_epoch - start)))
                mean, logvar = model.encode(oa[idx], ob[idx], y[idx])
                eps = torch.randn(mean.shape, generator=self.torch_gen).to(self.device)
                z = mean + (0.5 * logvar).exp() * eps
                ra, rb = model.returns(oa[idx], z), model.returns(ob[idx], z)
                loss, nll, kl = vpl_loss(ra, rb, y[idx], mean, logvar, self.kl_weight)
                opt.zero_grad()
                loss.backward()
                opt.step()
                strict = y[idx] != 0.5
                acc = ((rb > ra).float() == y[idx])[strict].float().mean() if strict.any() else torch.tensor(float("nan"))
                sums += [float(loss.detach()), float(nll.detach()), float(kl.detach()), float(acc)]
            n_batches = -(-per_epoch // self.reward_batch_size)
            logs = dict(zip(("loss", "nll", "kl", "accuracy"), (sums / n_batches).tolist()))
        self.reward_model = model.eval().requires_grad_(False)
        self.reward_fit_info = logs

    def posterior(self, preferences: PreferenceDataset, user: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The posterior ``(mean [d], logvar [d])`` of ``user``'s latent from their labelled pairs (all pairs of
        ``preferences`` when ``user`` is None): the first ``floor(n / S) * S`` pairs in contexts of ``S``, each
        encoded, the means averaged and the variances too. Fewer than ``S`` pairs (``n >= 1``) are repeated in
        turn to fill one context (a new user asked fewer queries than the encoder reads; the authors' code
        always asks ``S``)."""
        if self.reward_model is None:
            raise ValueError("VPL has no reward model yet; fit it before inferring a user's latent")
        prefs = preferences if user is None else preferences.of_user(user)
        if not isinstance(prefs, PreferenceDataset) or len(prefs) < 1:
            raise ValueError(f"inferring a user's latent needs at least one labelled pair of that user, got "
                             f"{len(prefs) if isinstance(prefs, PreferenceDataset) else prefs!r}")
        if prefs.a.obs_dim != self.obs_dim or prefs.segment_length != self.reward_model.segment_length:
            raise ValueError(f"the user's pairs must be segments of {self.reward_model.segment_length} steps with "
                             f"obs_dim={self.obs_dim}, got {prefs.segment_length} steps, obs_dim={prefs.a.obs_dim}")
        k = max(len(prefs) // self.context_size, 1)
        rows = np.resize(np.arange(min(len(prefs), k * self.context_size)), k * self.context_size)
        oa, ob, y = self._pair_tensors(prefs.subset(rows))
        shape = (k, self.context_size, *oa.shape[1:])
        with torch.no_grad():
            mean, logvar = self.reward_model.encode(oa.reshape(shape), ob.reshape(shape), y.reshape(k, -1))
        return mean.mean(0).cpu().numpy(), logvar.exp().mean(0).log().cpu().numpy()

    def set_user(self, preferences: PreferenceDataset, user: str | None = None) -> np.ndarray:
        """Act for the user who labelled ``preferences`` (or their pairs labelled ``user``): :attr:`latent`
        becomes the posterior mean of :meth:`posterior`. Returns it ``[d]``."""
        self.latent = self.posterior(preferences, user)[0].astype(np.float32)
        return self.latent.copy()

    def information_gain(self, a: Segments, b: Segments, sets: np.ndarray, rng: Any = None,
                         n_label_samples: int = 50, estimator: str = "moment", labels: str = "uniform") -> np.ndarray:
        """:func:`latent_information_gain` of candidate contexts (``estimator="code"``: the authors' score,
        :func:`code_information_gain`): ``sets [K, m]`` indices into the candidate pairs ``(a, b)``,
        ``1 <= m <= S`` (fewer than ``S`` pairs are repeated in turn to fill a context, as :meth:`posterior`
        reads them).

        ``labels="uniform"`` (default, the authors'): each set is encoded under ``min(n_label_samples, 2^m)``
        distinct label vectors, all equally likely: all of them when that is every vector, else drawn at
        random from ``rng`` without replacement, as the authors' 50. ``labels="predictive"``: under
        ``n_label_samples`` label vectors drawn from the model's own Bradley-Terry predictions, each under a
        latent of the users' population (the latent bank of ``latent_sampling="posterior"``, else the prior),
        so that answers no user would give do not count (the expectation over ``y`` of the mutual information
        taken under ``p(y) = E_z p(y | z)``). Returns ``[K]``."""
        if estimator not in IG_ESTIMATORS:
            raise ValueError(f"unknown information-gain estimator {estimator!r}; choose one of {sorted(IG_ESTIMATORS)}")
        if labels not in IG_LABELS:
            raise ValueError(f"unknown label sampling {labels!r} for the information gain; choose one of {IG_LABELS}")
        if self.reward_model is None:
            raise ValueError("VPL has no reward model yet; fit it before selecting queries by information gain")
        sets = np.asarray(sets, np.int64)
        if sets.ndim != 2 or not 1 <= sets.shape[1] <= self.context_size:
            raise ValueError(f"candidate contexts must be [K, m] with 1 <= m <= context_size={self.context_size}, "
                             f"got shape {sets.shape}")
        K, m = sets.shape
        cols = np.resize(np.arange(m), self.context_size)  # a short set repeated in turn, labels with it
        full = sets[:, cols]
        oa, ob = self.tensor(self._norm_obs_np(a.obs[full])), self.tensor(self._norm_obs_np(b.obs[full]))
        if labels == "uniform":
            y = self.tensor(label_vectors(m, n_label_samples, rng)[:, cols]).repeat_interleave(K, 0)  # [L * K, S]
        else:
            y = self._predicted_labels(oa, ob, cols, n_label_samples, np.random.default_rng(rng))
        L = len(y) // K
        with torch.no_grad():
            mean, logvar = self.reward_model.encode(oa.repeat(L, 1, 1, 1), ob.repeat(L, 1, 1, 1), y)
            return IG_ESTIMATORS[estimator](mean.reshape(L, K, -1), logvar.reshape(L, K, -1)).cpu().numpy()

    def _predicted_labels(self, oa: torch.Tensor, ob: torch.Tensor, cols: np.ndarray, n: int,
                          rng: np.random.Generator) -> torch.Tensor:
        """``[n * K, S]`` labels of the contexts ``oa, ob [K, S, H, obs_dim]`` (pair ``cols[j]`` in column ``j``,
        the first ``m`` columns distinct) drawn from ``P(b > a | z)``, one latent of the population per label
        vector (row ``l * K + k``: vector ``l`` of context ``k``); a repeated pair repeats its answer."""
        if len(self.latent_bank):
            z = self.latent_bank[rng.integers(0, len(self.latent_bank), size=n)]
        else:
            z = rng.standard_normal((n, self.latent_dim)).astype(np.float32)
        z = self.tensor(z)[:, None, None, None, :]  # [n, 1, 1, 1, d]
        m = int(cols.max()) + 1
        shape = (n, *oa[:, :m].shape)
        with torch.no_grad():
            logit = (self.reward_model.reward(ob[None, :, :m].expand(shape), z).sum(-1)
                     - self.reward_model.reward(oa[None, :, :m].expand(shape), z).sum(-1))
        p = torch.sigmoid(logit).cpu().numpy()  # [n, K, m]
        y = (rng.random(p.shape) < p).astype(np.float32)[..., cols]
        return self.tensor(y.reshape(-1, len(cols)))

    def segment_returns(self, segments: Segments, latent: np.ndarray | None = None) -> np.ndarray:
        """``sum_t r(s_t, z)`` of each segment under ``latent [d]`` (default :attr:`latent`, the current
        user's): ``[N]``, the decoder's raw output (no ``reward_normalization``)."""
        if self.reward_model is None:
            raise ValueError("VPL has no reward model yet; fit it before scoring segments")
        z = self.tensor(np.asarray(self.latent if latent is None else latent, np.float32).reshape(1, -1))
        with torch.no_grad():
            return self.reward_model.reward(self.tensor(self._norm_obs_np(segments.obs)), z).sum(-1).cpu().numpy()

    # ------------------------------------------------------------------ data
    def _draw_latents(self, n: int) -> torch.Tensor:
        """``[n, d]`` training latents: the prior, or the posterior bank (no gradient)."""
        if self.latent_sampling == "prior":
            return torch.randn((n, self.latent_dim), generator=self.torch_gen).to(self.device)
        return self.tensor(self.latent_bank[self.rng.integers(0, len(self.latent_bank), size=n)])

    def _fill_latent_bank(self, preferences: PreferenceDataset) -> None:
        groups = [np.flatnonzero(preferences.user == u) for u in preferences.users()]
        idx = torch.as_tensor(self._contexts(groups, self.n_latent_bank))
        oa, ob, y = self._pair_tensors(preferences)
        with torch.no_grad():
            mean, logvar = self.reward_model.encode(oa[idx], ob[idx], y[idx])
            eps = torch.randn(mean.shape, generator=self.torch_gen).to(self.device)
        self.latent_bank = (mean + (0.5 * logvar).exp() * eps).cpu().numpy().astype(np.float32)

    def _set_reward_statistics(self) -> None:
        """The shift and scale of ``reward_normalization``, from up to 4096 dataset states, each under a
        training latent."""
        n = len(self.data["observations"])
        rows = torch.as_tensor(self.rng.choice(n, size=min(n, 4096), replace=False))
        with torch.no_grad():
            r = self.reward_model.reward(self.data["observations"][rows], self._draw_latents(len(rows))).cpu().numpy()
        if self.reward_normalization == "standard":
            self.reward_shift, self.reward_scale = float(r.mean()), 1.0 / (float(r.std()) + 1e-8)
        elif self.reward_normalization == "minmax":
            self.reward_shift, self.reward_scale = float(r.min()), 1.0 / max(float(r.max() - r.min()), 1e-8)

    def _prepare(self, dataset: Any, preferences: PreferenceDataset | None) -> None:
        assert preferences is not None  # _check_inputs guarantees it
        self.data = self.transitions_from(dataset)  # rewards are r(s, z), drawn per minibatch
        if self.reward_model is None:
            self._fit_reward_model(preferences)
            if self.latent_sampling == "posterior":
                self._fill_latent_bank(preferences)
            self._set_reward_statistics()

    def _sample(self) -> dict[str, torch.Tensor]:
        """A minibatch of transitions, a latent per transition and its reward ``r(s, z)`` (normalised)."""
        batch = self.sample_transitions()
        z = self._draw_latents(len(batch["observations"]))
        with torch.no_grad():
            r = self.reward_model.reward(batch["observations"], z)
        batch["rewards"] = (r - self.reward_shift) * self.reward_scale
        batch["latent"] = z
        return batch

    def _update_on(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        z = batch["latent"]
        aug = {**batch, "observations": torch.cat([batch["observations"], z], -1),
               "next_observations": torch.cat([batch["next_observations"], z], -1)}
        return super()._update_on(aug)

    def _policy_act(self, obs: torch.Tensor, deterministic: bool) -> torch.Tensor:
        z = self.tensor(self.latent).expand(len(obs), self.latent_dim)
        return self.nets["policy"].act(torch.cat([obs, z], -1), deterministic=deterministic, generator=self.torch_gen)

    # ------------------------------------------------------------------ saving
    def _extra_state(self) -> dict[str, Any]:
        m = self.reward_model
        return {"reward_model": None if m is None else {"state": m.state_dict(), "segment_length": m.segment_length},
                "reward_fit_info": self.reward_fit_info, "latent": self.latent.copy(),
                "latent_bank": self.latent_bank.copy(), "reward_shift": self.reward_shift,
                "reward_scale": self.reward_scale}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        saved = state.get("reward_model")
        if saved is not None:
            m = VPLRewardModel(self.obs_dim, saved["segment_length"], self.context_size, self.latent_dim,
                               self.encoder_hidden, self.encoder_layers).to(self.device)
            m.load_state_dict(saved["state"])
            self.reward_model = m.eval().requires_grad_(False)
        self.reward_fit_info = dict(state.get("reward_fit_info", {}))
        self.latent = np.asarray(state.get("latent", self.latent), np.float32)
        self.latent_bank = np.asarray(state.get("latent_bank", self.latent_bank), np.float32)
        self.reward_shift = float(state.get("reward_shift", 0.0))
        self.reward_scale = float(state.get("reward_scale", 1.0))
