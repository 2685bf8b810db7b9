"""Contrastive Preference Learning (CPL): a policy learned from preferences with no reward and no RL.

Hejna, Rafailov, Sikchi, Finn, Niekum, Knox & Sadigh, "Contrastive Preference Learning: Learning from
Human Feedback without RL", ICLR 2024.

CPL assumes people prefer segments by their *regret*, i.e. by the sum of optimal advantages, and uses the
maximum-entropy identity ``A*(s, a) = alpha log pi*(a|s)`` (the paper's Eq. 3) to write the preference
model with the policy alone. The segment score of ``sigma = (s_1, a_1, ..., s_H, a_H)`` is::

    S(sigma) = sum_t gamma^t alpha log pi(a_t | s_t)                          -> cpl_segment_scores

and CPL (the paper's Eq. 5) maximises the Bradley-Terry likelihood of the labels under these scores::

    L_CPL(pi) = E_{(sigma+, sigma-)} [ -log  exp S(sigma+) / (exp S(sigma+) + exp S(sigma-)) ]

On finite offline data the paper uses the *conservative* variant ``L_CPL(lambda)`` (Sec. 3.2 "Practical
considerations"), which multiplies the dispreferred segment's score by a bias ``lambda`` in (0, 1]::

    L_CPL_lambda(pi) = E [ -log  exp S(sigma+) / (exp S(sigma+) + exp(lambda S(sigma-))) ]
                     = E [ softplus( lambda S(sigma-) - S(sigma+) ) ]         -> cpl_loss

With ``lambda < 1`` the loss keeps pushing ``S(sigma+)`` up (towards the data) even after the pair is
ordered, which acts like a behaviour-cloning term on the preferred segment. Labels follow pbrl's
convention (1.0 = segment b preferred); a 0.5 label averages the two orderings.

Defaults are the authors' state-based recipe (their code, ``configs/mw_state_dense/cpl.yaml`` and
``mw_state_sparse/cpl.yaml``; ``docs/hyperparameters.md`` gives each value's source): ``alpha = 0.1``,
``lambda = 0.5``, undiscounted segment sums (``discount = 1``: their code sums ``alpha log pi`` over the
segment; set ``discount < 1`` for the paper's ``gamma^t`` weighting), a deterministic tanh policy of
2 x 512 units with dropout 0.25 and orthogonal init, whose surrogate log-likelihood is
``log pi(a|s) = -||mu(s) - a||^2`` (a unit-variance Gaussian up to a constant and a factor 2), behaviour
cloning on the labelled segments for the first 40 % of the updates, then a fresh Adam at lr 1e-4 whose
rate warms up linearly from 0 over 10,000 updates, 96 pairs per update. ``policy="gaussian"`` uses a
Gaussian with a tanh-squashed mean and a learned log std instead.

Why CPL left the data on sparse labels, and pbrl's one change (``label_smoothing``). On a dataset made
of the labelled segments alone (about a hundred pairs, the human-label case), every state lies in one
segment, so the states of a dispreferred segment appear in no preferred one. There the CPL gradient only
ever pushes ``mu(s)`` away from the data action: for a hard label the Bradley-Terry likelihood keeps rising
as the score gap grows, so the optimum is an infinite gap, and a tanh policy ends at the action bounds,
where its gradient vanishes and nothing pulls it back (the authors' datasets compare each segment many
times, or have thousands of comparisons whose states overlap, so their gaps stay finite). Two things make
the push long: the scores are sums over ``H`` steps scaled by ``alpha``, and the conservative bias acts on
the scores' absolute value. The deterministic surrogate ``-||mu - a||^2`` is 0 only on the data action,
so on noisy behaviour the preferred segment keeps a floor ``S+ ~ -alpha H eps_BC`` (``eps_BC``: the BC
error per step), and ``lambda S- < S+`` then asks the dispreferred segment's error to reach about
``eps_BC / lambda`` plus a margin before the pair stops pulling, i.e. twice the data's own noise. (The
former Gaussian default was worse: its learned log std makes the scores' level, and so the bias's pull,
arbitrary.) Smoothing the targets to ``eps, 1 - eps`` (:func:`smooth_labels`) gives every pair a finite
optimum, past which the gradient turns back toward the data: the push ends at a bounded distance instead
of the bounds. It does not remove the ``1 / lambda`` floor; where the data are noisy and labels sparse,
:class:`CPLBC` (a BC term on every labelled step; ``bc_coeff ~ 2 alpha H`` makes a step's BC pull as strong
as its contrastive push, since the BC term is a mean over steps and the CPL score a sum over ``H``) or
:class:`~pbrl.agents.ipl.IPL` stays closer to the data. ``label_smoothing=0`` is the authors' loss. Ruled out on the way: pair sampling (uniform over the
labelled pairs, as in the authors' sparse mode), terminal and time-out flags (CPL reads no successor
states) and the observation statistics of few segments (BC with the same statistics stays on the data).
Measurements: ``docs/hyperparameters.md``.

Variants in this file:

* :class:`CPL`: the conservative CPL loss, after behaviour-cloning pre-training (after which the optimiser
  is reset, as in the authors' code), with an optional BC term ``bc_coeff``.
* :class:`CPLBC`: "CPL-BC", the CPL loss plus a behaviour-cloning regulariser (the authors' other way,
  besides ``lambda < 1``, of keeping the policy on the data), ``L = L_CPL_lambda + beta_BC * E[-log pi(a|s)]``,
  with the authors' ``lambda = 1``, ``beta_BC = bc_coeff = 1`` and BC on the labelled segments.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from pbrl.agents.networks import DeterministicPolicy, GaussianPolicy
from pbrl.agents.offline_base import OfflineAgent
from pbrl.preferences import PreferenceDataset

__all__ = ["CPL", "CPLBC", "cpl_segment_scores", "cpl_loss", "smooth_labels", "bc_nll", "make_policy", "BC_DATA", "POLICIES"]

#: where behaviour cloning (pre-training and the CPL-BC term) takes its state-action pairs
BC_DATA = ("preferred", "segments", "dataset")
#: policy parameterisations: a Gaussian (``log pi`` exact) or a deterministic policy (``log pi = -||mu(s) - a||^2``)
POLICIES = ("gaussian", "deterministic")


# ---------------------------------------------------------------------------------------------- losses


def cpl_segment_scores(
    log_probs: torch.Tensor, alpha: float, discount: float = 1.0, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Segment scores ``S = sum_t discount^t * alpha * log pi(a_t|s_t)`` (Hejna et al. 2024, Eq. 5's exponent).

    Args:
        log_probs: ``[N, H]`` per-step ``log pi(a_t | s_t)``.
        alpha: temperature ``alpha`` of the max-entropy advantage ``A* = alpha log pi*`` (> 0).
        discount: ``gamma`` of the segment sum (1.0 = undiscounted, the reference setting).
        mask: optional ``[N, H]`` 0/1 weights (steps with 0 are left out of the sum).

    Returns:
        ``[N]`` scores.
    """
    H = log_probs.shape[-1]
    weights = discount ** torch.arange(H, dtype=log_probs.dtype, device=log_probs.device)
    terms = alpha * log_probs * weights
    if mask is not None:
        terms = terms * mask
    return terms.sum(-1)


def cpl_loss(score_a: torch.Tensor, score_b: torch.Tensor, label: torch.Tensor, bias: float = 0.5) -> torch.Tensor:
    """Conservative CPL loss ``L_CPL(lambda)`` (Hejna et al. 2024, Eq. 5 with the bias of Sec. 3.2), averaged.

    For a pair with ``b`` preferred (label 1): ``-log exp(S_b) / (exp(S_b) + exp(lambda S_a))
    = softplus(lambda S_a - S_b)``; with ``a`` preferred (label 0) the roles swap; a label ``y`` in between
    weights the two terms by ``y`` and ``1 - y`` (0.5 = equal preference). ``bias = 1`` is the plain CPL loss.

    Args:
        score_a, score_b: ``[N]`` segment scores (:func:`cpl_segment_scores`).
        label: ``[N]`` in {0, 0.5, 1}, 1.0 = ``b`` preferred.
        bias: ``lambda`` in (0, 1], the weight on the dispreferred segment's score (default 0.5).

    Returns:
        scalar loss.
    """
    nll_b = F.softplus(bias * score_a - score_b)  # -log P(b preferred)
    nll_a = F.softplus(bias * score_b - score_a)  # -log P(a preferred)
    return (label * nll_b + (1.0 - label) * nll_a).mean()


def smooth_labels(label: torch.Tensor, eps: float) -> torch.Tensor:
    """Bradley-Terry targets ``y (1 - 2 eps) + eps``: hard labels 0 / 1 become ``eps`` / ``1 - eps``, ties stay 0.5.

    With a hard label the likelihood of a pair keeps rising as the score gap grows, so its optimum is an
    infinite gap; a target ``1 - eps`` puts the optimum of the plain (``lambda = 1``) loss at the finite gap
    ``log((1 - eps) / eps)`` (2.94 for ``eps = 0.05``), past which the gradient turns back.
    """
    return label * (1.0 - 2.0 * eps) + eps if eps else label


def bc_nll(log_probs: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Behaviour-cloning loss ``-E[log pi(a|s)]``: the (weighted) mean of ``-log_probs``.

    Args:
        log_probs: ``[N, ...]`` log-likelihoods of data actions.
        weights: optional ``[N]`` per-row weights (e.g. the preference of each segment); rows are averaged
            over the remaining dims first.
    """
    if weights is None:
        return -log_probs.mean()
    per_row = log_probs.reshape(log_probs.shape[0], -1).mean(-1)
    return -(weights * per_row).sum() / weights.sum().clamp_min(1e-8)


def make_policy(
    kind: str, obs_dim: int, act_dim: int, hidden: tuple[int, ...], dropout: float, state_dependent_std: bool = False,
    ortho_init: bool = False,
) -> torch.nn.Module:
    """The policy network of :data:`POLICIES` ``kind``: a :class:`DeterministicPolicy` or a :class:`GaussianPolicy`."""
    if kind == "deterministic":
        return DeterministicPolicy(obs_dim, act_dim, hidden, dropout=dropout, ortho_init=ortho_init)
    return GaussianPolicy(obs_dim, act_dim, hidden, state_dependent_std=state_dependent_std, dropout=dropout,
                          ortho_init=ortho_init)


# ---------------------------------------------------------------------------------------------- agent


class CPL(OfflineAgent):
    """CPL (Hejna et al., ICLR 2024): a policy trained only by the conservative contrastive loss.

    ``CPL(obs_dim, act_dim)`` is the authors' state-based recipe (``configs/mw_state_*/cpl.yaml`` of their
    code): a deterministic tanh policy of 2 x 512 units with dropout 0.25 and orthogonal init, behaviour
    cloning on the labelled segments for the first 40 % of the updates, then the conservative CPL loss
    (``alpha = 0.1``, ``lambda = 0.5``) with a fresh Adam at lr 1e-4 whose rate warms up linearly over
    10,000 updates, 96 pairs per update. One addition of pbrl's: the loss's targets are smoothed to
    0.05 / 0.95 (``label_smoothing``), which keeps sparse labels from pushing the policy off the data (see
    the module docstring). ``docs/hyperparameters.md`` lists every value and its source.

    Each update takes ``pair_batch_size`` labelled pairs, computes ``log pi(a_t|s_t)`` on every step of both
    segments ``[B, H]``, scores them with :func:`cpl_segment_scores` and minimises :func:`cpl_loss`
    (+ ``bc_coeff`` x :func:`bc_nll` on ``bc_data``). The first ``bc_steps`` updates are behaviour cloning only.

    Args:
        obs_dim, act_dim: sizes.
        alpha: temperature of ``A* = alpha log pi`` (default 0.1, the paper's).
        bias: conservative bias ``lambda`` on the dispreferred score (default 0.5, the paper's; 1.0 = plain CPL).
        discount: ``gamma`` of the segment sums (default 1.0, undiscounted as in the authors' code).
        bc_steps: behaviour-cloning updates before the CPL loss starts; ``None`` (default) means
            ``bc_fraction`` of the first ``fit`` call's ``steps``.
        bc_fraction: share of the updates spent on BC when ``bc_steps`` is None (default 0.4: the authors'
            200k of 500k).
        bc_coeff: weight of the BC term added to the CPL loss (default 0.0; :class:`CPLBC` uses 1.0).
        bc_data: state-action pairs for BC: ``"segments"`` (both segments of every labelled pair, default;
            the authors' ``bc_data: all``), ``"preferred"`` (each segment weighted by its preference; the
            authors' ``pos``) or ``"dataset"`` (``batch_size`` transitions of the whole offline dataset,
            pbrl's option for datasets larger than their labelled segments).
        pair_batch_size: labelled pairs per update (default 96, the authors').
        dropout: dropout after the policy's hidden layers (default 0.25).
        policy: ``"deterministic"`` (default, the authors' ``ContinuousMLPActor`` with ``log pi = -||mu - a||^2``)
            or ``"gaussian"`` (tanh-squashed mean, learned log std).
        ortho_init: orthogonal initialisation of the policy (default True, the authors').
        lr_warmup: the CPL phase's learning rate rises linearly from 0 to ``lr`` over this many updates after
            the BC phase (default 10,000, the authors' ``linear_warmup``; 0 = none).
        state_dependent_std: Gaussian policy only: whether the log std depends on the state (default False).
        label_smoothing: ``eps``: the CPL loss's targets are ``eps`` / ``1 - eps`` instead of 0 / 1
            (:func:`smooth_labels`; default 0.05, pbrl's addition, see the module docstring; 0 = the
            authors' hard targets).
        **common: ``hidden`` (default (512, 512)), ``lr`` (default 1e-4), ``batch_size`` (256, used for
            ``bc_data="dataset"``), ``normalize_obs``, ``action_low``/``action_high``, ``seed``, ``device``:
            see :class:`pbrl.agents.offline_base.OfflineAgent`.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        alpha: float = 0.1,
        bias: float = 0.5,
        discount: float = 1.0,
        bc_steps: int | None = None,
        bc_fraction: float = 0.4,
        bc_coeff: float = 0.0,
        bc_data: str = "segments",
        pair_batch_size: int = 96,
        dropout: float = 0.25,
        policy: str = "deterministic",
        ortho_init: bool = True,
        lr_warmup: int = 10_000,
        state_dependent_std: bool = False,
        label_smoothing: float = 0.05,
        **common: Any,
    ):
        common.setdefault("hidden", (512, 512))
        common.setdefault("lr", 1e-4)
        if not (isinstance(alpha, (int, float)) and alpha > 0):
            raise ValueError(f"alpha must be a positive number, got {alpha!r}")
        if not (isinstance(bias, (int, float)) and 0.0 < bias <= 1.0):
            raise ValueError(f"bias (lambda) must be in (0, 1], got {bias!r}; 0.5 is the paper's conservative value")
        if not (isinstance(discount, (int, float)) and 0.0 < discount <= 1.0):
            raise ValueError(f"discount must be in (0, 1], got {discount!r}")
        if bc_steps is not None and (isinstance(bc_steps, bool) or not isinstance(bc_steps, (int, np.integer)) or bc_steps < 0):
            raise ValueError(f"bc_steps must be None or a non-negative integer, got {bc_steps!r}")
        if not (isinstance(bc_fraction, (int, float)) and 0.0 <= bc_fraction < 1.0):
            raise ValueError(f"bc_fraction must be in [0, 1), got {bc_fraction!r}")
        if not (isinstance(bc_coeff, (int, float)) and bc_coeff >= 0):
            raise ValueError(f"bc_coeff must be a non-negative number, got {bc_coeff!r}")
        if bc_data not in BC_DATA:
            raise ValueError(f"bc_data must be one of {BC_DATA}, got {bc_data!r}")
        if isinstance(pair_batch_size, bool) or not isinstance(pair_batch_size, (int, np.integer)) or pair_batch_size < 1:
            raise ValueError(f"pair_batch_size must be a positive integer, got {pair_batch_size!r}")
        if not (isinstance(dropout, (int, float)) and 0.0 <= dropout < 1.0):
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
        if isinstance(lr_warmup, bool) or not isinstance(lr_warmup, (int, np.integer)) or lr_warmup < 0:
            raise ValueError(f"lr_warmup must be a non-negative integer, got {lr_warmup!r}")
        if not (isinstance(label_smoothing, (int, float)) and 0.0 <= label_smoothing < 0.5):
            raise ValueError(f"label_smoothing must be in [0, 0.5), got {label_smoothing!r}")
        self.policy_kind = policy
        self.alpha, self.bias, self.discount = float(alpha), float(bias), float(discount)
        self.bc_steps = None if bc_steps is None else int(bc_steps)
        self.bc_fraction, self.bc_coeff, self.bc_data = float(bc_fraction), float(bc_coeff), bc_data
        self.pair_batch_size = int(pair_batch_size)
        self.dropout, self.state_dependent_std = float(dropout), bool(state_dependent_std)
        self.ortho_init, self.lr_warmup = bool(ortho_init), int(lr_warmup)
        self.label_smoothing = float(label_smoothing)
        #: the BC phase's length in updates, fixed by the first ``fit`` (``bc_steps`` or ``bc_fraction``)
        self.bc_updates: int | None = self.bc_steps
        self._register_config(
            alpha=self.alpha,
            bias=self.bias,
            discount=self.discount,
            bc_steps=self.bc_steps,
            bc_fraction=self.bc_fraction,
            bc_coeff=self.bc_coeff,
            bc_data=self.bc_data,
            pair_batch_size=self.pair_batch_size,
            dropout=self.dropout,
            policy=self.policy_kind,
            ortho_init=self.ortho_init,
            lr_warmup=self.lr_warmup,
            state_dependent_std=self.state_dependent_std,
            label_smoothing=self.label_smoothing,
        )
        super().__init__(obs_dim, act_dim, **common)

    def _build(self) -> None:
        policy = make_policy(self.policy_kind, self.obs_dim, self.act_dim, self.hidden, self.dropout,
                             state_dependent_std=self.state_dependent_std, ortho_init=self.ortho_init)
        self.nets = {"policy": policy}
        self.optims = {"policy": torch.optim.Adam(policy.parameters(), lr=self.lr)}

    def _start_fit(self, dataset: Any, preferences: PreferenceDataset | None, steps: int) -> None:
        """The first ``fit`` fixes the BC phase (``bc_steps``, or ``bc_fraction * steps``)."""
        if self.bc_updates is None:
            self.bc_updates = int(round(self.bc_fraction * int(steps)))
        super()._start_fit(dataset, preferences, steps)

    def _extra_state(self) -> dict[str, Any]:
        return {"bc_updates": self.bc_updates}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self.bc_updates = state.get("bc_updates", self.bc_steps)

    def cpl_lr(self, update: int) -> float:
        """The learning rate of update ``update`` (0-based): ``lr`` in the BC phase; in the CPL phase
        ``lr * min(1, k / lr_warmup)`` at its ``k``-th update (``k = 0`` first), the authors' linear warmup."""
        bc = self.bc_updates or 0
        if update < bc or self.lr_warmup <= 0:
            return self.lr
        return self.lr * min(1.0, (update - bc) / self.lr_warmup)

    def _check_inputs(self, dataset: Any, preferences: PreferenceDataset | None) -> None:
        super()._check_inputs(dataset, preferences)
        informative = np.count_nonzero(preferences.label != 0.5)
        if informative == 0:
            raise ValueError(
                "every label is 0.5 (equal preference): CPL needs at least one strict preference to learn from"
            )

    def _prepare(self, dataset: Any, preferences: PreferenceDataset | None) -> None:
        self.pref = self.preference_tensors(preferences)
        if self.bc_data == "dataset":
            self.data = self.transitions_from(dataset)

    # ------------------------------------------------------------------ losses on a batch
    def _pair_batch(self) -> dict[str, torch.Tensor]:
        n = len(self.pref["label"])
        idx = torch.as_tensor(self.rng.integers(0, n, size=self.pair_batch_size), device=self.device)
        return {k: self.pref[k][idx] for k in ("obs_a", "obs_b", "act_a", "act_b", "label")}

    def _sample(self) -> dict[str, torch.Tensor]:
        """The pairs of this update, the seed of its dropout masks and, with ``bc_data="dataset"`` where the
        update reads them, ``batch_size`` dataset transitions (``bc_obs``, ``bc_act``)."""
        batch = self._pair_batch()
        # the seed of this update's dropout masks (_dropout_scope), drawn from the agent's generator: runs repeat exactly
        batch["torch_seed"] = self.draw_torch_seed()
        pretraining = self.num_updates < (self.bc_updates or 0)
        if self.bc_data == "dataset" and (pretraining or self.bc_coeff > 0):
            tr = self.sample_transitions(self.data)
            batch["bc_obs"], batch["bc_act"] = tr["observations"], tr["actions"]
        return batch

    def _dataset_bc_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """:func:`bc_nll` on the ``batch_size`` transitions drawn from the whole offline dataset."""
        return bc_nll(self.nets["policy"].log_prob(batch["bc_obs"], batch["bc_act"]))

    def _losses(self, batch: dict[str, torch.Tensor], with_cpl: bool) -> dict[str, torch.Tensor]:
        """CPL and BC losses of one batch of pairs (tensors with gradients)."""
        policy = self.nets["policy"]
        out: dict[str, torch.Tensor] = {}
        if not with_cpl and self.bc_data == "dataset":  # BC pre-training on the dataset: no segment pass needed
            out["bc_loss"] = self._dataset_bc_loss(batch)
            return out
        B = batch["label"].shape[0]
        obs = torch.cat([batch["obs_a"], batch["obs_b"]], 0)  # [2B, H, obs_dim]
        act = torch.cat([batch["act_a"], batch["act_b"]], 0)
        lp = policy.log_prob(obs, act)  # [2B, H]
        label = batch["label"]
        if with_cpl:
            scores = cpl_segment_scores(lp, self.alpha, self.discount)
            s_a, s_b = scores[:B], scores[B:]
            out["cpl_loss"] = cpl_loss(s_a, s_b, smooth_labels(label, self.label_smoothing), self.bias)
            # accuracy on the strict pairs (NaN when there are none), without data-dependent shapes
            strict = (label != 0.5).float()
            out["accuracy"] = (((s_b > s_a) == (label > 0.5)).float() * strict).sum().detach() / strict.sum()
        if self.bc_data == "dataset":
            if self.bc_coeff > 0:  # otherwise the dataset BC term is not part of the loss: skip its pass
                out["bc_loss"] = self._dataset_bc_loss(batch)
        elif self.bc_data == "preferred":
            out["bc_loss"] = bc_nll(lp, torch.cat([1.0 - label, label], 0))
        else:
            out["bc_loss"] = bc_nll(lp)
        return out

    def _update_on(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        bc = self.bc_updates or 0
        pretraining = self.num_updates < bc

        def loss() -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
            with self._dropout_scope(batch):
                losses = self._losses(batch, with_cpl=not pretraining)
            if pretraining:
                total = losses["bc_loss"]
            else:
                total = losses["cpl_loss"]
                if self.bc_coeff > 0:
                    total = total + self.bc_coeff * losses["bc_loss"]
            return total, losses

        for group in self.optims["policy"].param_groups:
            group["lr"] = self.cpl_lr(self.num_updates)
        _, losses = self._step("policy", loss)
        if self.num_updates + 1 == bc:
            # the reference resets the optimiser when the CPL phase starts: BC's Adam moments do not carry over
            self.optims["policy"] = torch.optim.Adam(self.nets["policy"].parameters(), lr=self.lr)
        return losses


class CPLBC(CPL):
    """CPL-BC: the CPL loss plus a behaviour-cloning regulariser, as the authors run it.

    ``L = L_CPL_lambda + bc_coeff * E_{(s,a) ~ bc_data}[-log pi(a|s)]`` (Hejna et al. 2024, the BC-regularised
    variant; ``configs/mw_state_*/cpl_bc.yaml`` of the authors' code). Same arguments as :class:`CPL`, with the
    authors' CPL-BC defaults: ``bias=1.0`` (no conservative bias: the BC term keeps the policy on the data
    instead), ``bc_coeff=1.0`` and ``bc_data="segments"`` (BC on both segments of every labelled pair).
    """

    def __init__(self, obs_dim: int, act_dim: int, bias: float = 1.0, bc_coeff: float = 1.0, bc_data: str = "segments",
                 **kw: Any):
        super().__init__(obs_dim, act_dim, bias=bias, bc_coeff=bc_coeff, bc_data=bc_data, **kw)
