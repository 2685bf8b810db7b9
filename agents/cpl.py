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

Defaults follow the paper's experiments: ``alpha = 0.1``, ``lambda = 0.5`` and undiscounted segment sums
(``gamma = 1``: the reference implementation sums ``alpha log pi`` over the segment without discounting;
set ``discount < 1`` for the paper's ``gamma^t`` weighting). The default policy is a Gaussian with a
tanh-squashed mean and state-independent log std, with dropout 0.25 in the hidden layers, as in the paper's
state-based experiments. ``policy="deterministic"`` uses a tanh MLP instead, with
``log pi(a|s) = -||mu(s) - a||^2`` (a unit-variance Gaussian up to a constant and a factor 2), which is
what the authors' code does for its deterministic actors.

The authors' state-based Meta-World recipe is: deterministic actor, behaviour cloning on all the data for
the first 40 % of the updates (``bc_steps``, ``bc_data="dataset"``), a fresh Adam when the CPL phase
starts, lr 1e-4. ``scripts/bench_offline.py`` runs CPL with it (``policy="deterministic", bc_steps=0.4 *
steps, bc_data="dataset", lr=1e-4``).

Variants in this file:

* :class:`CPL`: the conservative CPL loss, with optional behaviour-cloning pre-training for ``bc_steps``
  updates (after which the optimiser is reset, as in the reference) and an optional BC term ``bc_coeff``.
* :class:`CPLBC`: "CPL-BC", the CPL loss plus a behaviour-cloning regulariser (the authors' other way,
  besides ``lambda < 1``, of keeping the policy on the data), ``L = L_CPL_lambda + beta_BC * E[-log pi(a|s)]``
  with ``beta_BC = bc_coeff = 1.0`` and, by default, BC on minibatches of the whole offline dataset
  (``bc_data="dataset"``; ``"preferred"`` / ``"segments"`` restrict it to the labelled segments, as the
  reference's ``bc_data`` does). ``scripts/bench_offline.py`` runs it with the CPL recipe above and
  ``bc_coeff=10``.

A limitation worth knowing (measured here, 500 oracle pairs of 50 steps, 1,500 updates): CPL's
preference model is *regret*-based (segments compared by their optimal advantages, i.e. by their actions),
while B-Pref's scripted teachers label by partial *return*. When the preferred and dispreferred segments
of a pair come from the same noisy behaviour and differ mainly in their states (D4RL-style medium-replay
locomotion), the CPL loss can only order them by moving the policy away from the dispreferred actions.
With few sparse pairs most states lie in one segment only, and for a state seen only in a dispreferred
segment the deterministic loss term ``-lambda alpha ||mu(s) - a||^2`` has no minimum: it pushes the action
to the tanh bounds until the pair's loss saturates. That extrapolation leaves the data. With one seed, CPL
after the BC phase collapsed on Hopper medium-replay to -3.5 (normalised) with either policy, lr 1e-4 or
3e-4, lambda 0.5 or 1.0 and alpha 0.1 or 1.0. On door-open it went from 80 % success after the BC phase
to 0 % with alpha 0.1 or 0.02, lr 1e-4 or lambda 1.0 with a BC term of weight 1, and to 40 % with lambda
0.1. The dataset-wide BC term of :class:`CPLBC` holds the policy on the data when its weight is large:
weights 1, 3 and 10 gave 0, 60 and 100 % on door-open (one seed). ``scripts/bench_offline.py`` at its
defaults (3 seeds) measured the CPL recipe at 93 % success on button-press, 0 % on door-open, 13 % on
drawer-open and -3.4 on Hopper medium-replay (IQL on the true reward: 100, 100, 100 %, 32.0), and CPL-BC
(weight 10) at 100, 100, 100 % and 41.2, about what BC alone scores (100, 93, 100 %, 43.4): at this
budget and with these labels the contrastive term adds nothing measurable over BC.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from pbrl.agents.offline_base import DeterministicPolicy, GaussianPolicy, OfflineAgent
from pbrl.preferences import PreferenceDataset

__all__ = ["CPL", "CPLBC", "cpl_segment_scores", "cpl_loss", "bc_nll", "make_policy", "BC_DATA", "POLICIES"]

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
    kind: str, obs_dim: int, act_dim: int, hidden: tuple[int, ...], dropout: float, state_dependent_std: bool = False
) -> torch.nn.Module:
    """The policy network of :data:`POLICIES` ``kind``: a :class:`DeterministicPolicy` or a :class:`GaussianPolicy`."""
    if kind == "deterministic":
        return DeterministicPolicy(obs_dim, act_dim, hidden, dropout=dropout)
    return GaussianPolicy(obs_dim, act_dim, hidden, state_dependent_std=state_dependent_std, dropout=dropout)


# ---------------------------------------------------------------------------------------------- agent


class CPL(OfflineAgent):
    """CPL (Hejna et al., ICLR 2024): a Gaussian policy trained only by the conservative contrastive loss.

    Each update takes ``pair_batch_size`` labelled pairs, computes ``log pi(a_t|s_t)`` on every step of both
    segments ``[B, H]``, scores them with :func:`cpl_segment_scores` and minimises :func:`cpl_loss`
    (+ ``bc_coeff`` x :func:`bc_nll` on ``bc_data``). The first ``bc_steps`` updates are behaviour cloning only.

    Args:
        obs_dim, act_dim: sizes.
        alpha: temperature of ``A* = alpha log pi`` (default 0.1, the paper's).
        bias: conservative bias ``lambda`` on the dispreferred score (default 0.5, the paper's; 1.0 = plain CPL).
        discount: ``gamma`` of the segment sums (default 1.0, undiscounted as in the reference experiments).
        bc_steps: behaviour-cloning pre-training updates before the CPL loss starts (default 0).
        bc_coeff: weight of the BC term added to the CPL loss (default 0.0; :class:`CPLBC` uses 1.0).
        bc_data: state-action pairs for BC: ``"preferred"`` (each segment weighted by its preference),
            ``"segments"`` (every labelled segment, default) or ``"dataset"`` (``batch_size`` transitions of
            the whole offline dataset).
        pair_batch_size: labelled pairs per update (default 32, sized for CPU: 32 pairs of 50-step segments
            are 3,200 state-actions per update, about 50 ms on one CPU thread with 256 x 256 layers).
        dropout: dropout after the policy's hidden layers (default 0.25).
        state_dependent_std: whether the policy's log std depends on the state (default False).
        **common: ``hidden`` (256, 256), ``lr`` (3e-4), ``batch_size`` (256, used for ``bc_data="dataset"``),
            ``normalize_obs``, ``action_low``/``action_high``, ``seed``, ``device``: see
            :class:`pbrl.agents.offline_base.OfflineAgent`.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        alpha: float = 0.1,
        bias: float = 0.5,
        discount: float = 1.0,
        bc_steps: int = 0,
        bc_coeff: float = 0.0,
        bc_data: str = "segments",
        pair_batch_size: int = 32,
        dropout: float = 0.25,
        state_dependent_std: bool = False,
        policy: str = "gaussian",
        **common: Any,
    ):
        if not (isinstance(alpha, (int, float)) and alpha > 0):
            raise ValueError(f"alpha must be a positive number, got {alpha!r}")
        if not (isinstance(bias, (int, float)) and 0.0 < bias <= 1.0):
            raise ValueError(f"bias (lambda) must be in (0, 1], got {bias!r}; 0.5 is the paper's conservative value")
        if not (isinstance(discount, (int, float)) and 0.0 < discount <= 1.0):
            raise ValueError(f"discount must be in (0, 1], got {discount!r}")
        if isinstance(bc_steps, bool) or not isinstance(bc_steps, (int, np.integer)) or bc_steps < 0:
            raise ValueError(f"bc_steps must be a non-negative integer, got {bc_steps!r}")
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
        self.policy_kind = policy
        self.alpha, self.bias, self.discount = float(alpha), float(bias), float(discount)
        self.bc_steps, self.bc_coeff, self.bc_data = int(bc_steps), float(bc_coeff), bc_data
        self.pair_batch_size = int(pair_batch_size)
        self.dropout, self.state_dependent_std = float(dropout), bool(state_dependent_std)
        self._register_config(
            alpha=self.alpha,
            bias=self.bias,
            discount=self.discount,
            bc_steps=self.bc_steps,
            bc_coeff=self.bc_coeff,
            bc_data=self.bc_data,
            pair_batch_size=self.pair_batch_size,
            dropout=self.dropout,
            state_dependent_std=self.state_dependent_std,
            policy=self.policy_kind,
        )
        super().__init__(obs_dim, act_dim, **common)

    def _build(self) -> None:
        policy = make_policy(self.policy_kind, self.obs_dim, self.act_dim, self.hidden, self.dropout,
                             state_dependent_std=self.state_dependent_std)
        self.nets = {"policy": policy}
        self.optims = {"policy": torch.optim.Adam(policy.parameters(), lr=self.lr)}

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

    def _dataset_bc_loss(self) -> torch.Tensor:
        """:func:`bc_nll` on ``batch_size`` transitions drawn from the whole offline dataset."""
        tr = self.sample_transitions(self.data)
        return bc_nll(self.nets["policy"].log_prob(tr["observations"], tr["actions"]))

    def _losses(self, batch: dict[str, torch.Tensor], with_cpl: bool) -> dict[str, torch.Tensor]:
        """CPL and BC losses of one batch of pairs (tensors with gradients)."""
        policy = self.nets["policy"]
        out: dict[str, torch.Tensor] = {}
        if not with_cpl and self.bc_data == "dataset":  # BC pre-training on the dataset: no segment pass needed
            out["bc_loss"] = self._dataset_bc_loss()
            return out
        B = batch["label"].shape[0]
        obs = torch.cat([batch["obs_a"], batch["obs_b"]], 0)  # [2B, H, obs_dim]
        act = torch.cat([batch["act_a"], batch["act_b"]], 0)
        lp = policy.log_prob(obs, act)  # [2B, H]
        label = batch["label"]
        if with_cpl:
            scores = cpl_segment_scores(lp, self.alpha, self.discount)
            s_a, s_b = scores[:B], scores[B:]
            out["cpl_loss"] = cpl_loss(s_a, s_b, label, self.bias)
            strict = label != 0.5
            if strict.any():
                correct = ((s_b > s_a) == (label > 0.5))[strict].float().mean()
                out["accuracy"] = correct.detach()
        if self.bc_data == "dataset":
            if self.bc_coeff > 0:  # otherwise the dataset BC term is not part of the loss: skip its pass
                out["bc_loss"] = self._dataset_bc_loss()
        elif self.bc_data == "preferred":
            out["bc_loss"] = bc_nll(lp, torch.cat([1.0 - label, label], 0))
        else:
            out["bc_loss"] = bc_nll(lp)
        return out

    def _update(self) -> dict[str, float]:
        pretraining = self.num_updates < self.bc_steps
        batch = self._pair_batch()
        # dropout draws from torch's global RNG: seed it from the agent's generator so runs repeat exactly
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(self.rng.integers(2**62)))
            losses = self._losses(batch, with_cpl=not pretraining)
        if pretraining:
            total = losses["bc_loss"]
        else:
            total = losses["cpl_loss"]
            if self.bc_coeff > 0:
                total = total + self.bc_coeff * losses["bc_loss"]
        opt = self.optims["policy"]
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        if self.num_updates + 1 == self.bc_steps:
            # the reference resets the optimiser when the CPL phase starts: BC's Adam moments do not carry over
            self.optims["policy"] = torch.optim.Adam(self.nets["policy"].parameters(), lr=self.lr)
        return {k: float(v.detach()) for k, v in losses.items()}


class CPLBC(CPL):
    """CPL-BC: the conservative CPL loss plus a behaviour-cloning regulariser.

    ``L = L_CPL_lambda + bc_coeff * E_{(s,a) ~ bc_data}[-log pi(a|s)]`` (Hejna et al. 2024; the BC-regularised
    variant). Same arguments as :class:`CPL`, with defaults ``bc_coeff=1.0`` and ``bc_data="dataset"`` (BC on
    ``batch_size`` transitions of the whole offline dataset per update; see the module docstring for why).
    """

    def __init__(self, obs_dim: int, act_dim: int, bc_coeff: float = 1.0, bc_data: str = "dataset", **kw: Any):
        super().__init__(obs_dim, act_dim, bc_coeff=bc_coeff, bc_data=bc_data, **kw)
