"""Behaviour cloning (BC): the supervised baseline that uses neither rewards nor preferences.

BC fits the policy to every state-action pair of the offline dataset by maximum likelihood::

    L_BC(pi) = E_{(s, a) ~ D} [ -log pi(a | s) ]                                   -> pbrl.agents.cpl.bc_nll

(Pomerleau, "Efficient Training of Artificial Neural Networks for Autonomous Navigation", Neural
Computation 1991; the "SFT" baseline of the CPL paper, Hejna et al., ICLR 2024, Sec. 4). With the default
deterministic tanh policy, ``log pi(a|s) = -||mu(s) - a||^2`` and the loss is the mean squared error summed
over action dimensions; ``policy="gaussian"`` fits a Gaussian with a tanh-squashed mean and a learned,
state-independent log std instead.

Defaults are the CPL authors' SFT baseline (``configs/mw_state_*/sft.yaml`` of their code): 2 x 512 units,
dropout 0.25, orthogonal init, Adam at lr 1e-4. Their SFT clones only the preferred segments; pbrl's BC
clones every transition of the dataset and needs no labels (it is the label-free reference).

BC is the reference every preference agent should be read against: on datasets whose average behaviour
already solves the task it is strong, and a preference agent is only worth its labels where it beats it.
With these defaults it is also what :class:`pbrl.agents.cpl.CPL` does during its BC phase (on all the
data instead of the labelled segments), so ``BC()`` run for the same number of updates shows how much of
CPL's score its contrastive phase adds (or removes). ``scripts/bench_offline.py`` runs it as ``bc``.
"""

from __future__ import annotations

from typing import Any

import torch

from pbrl.agents.cpl import POLICIES, bc_nll, make_policy
from pbrl.agents.offline_base import OfflineAgent

__all__ = ["BC"]


class BC(OfflineAgent):
    """Behaviour cloning on the whole offline dataset (no rewards, no labels).

    Each update draws ``batch_size`` transitions uniformly from the dataset and takes one Adam step on
    :func:`~pbrl.agents.cpl.bc_nll` of the policy's log-likelihood of their actions.

    Args:
        obs_dim, act_dim: sizes.
        policy: ``"deterministic"`` (default; tanh MLP, ``log pi = -||mu(s) - a||^2``) or ``"gaussian"``.
        dropout: dropout after the policy's hidden layers (default 0.25, the CPL authors' SFT).
        ortho_init: orthogonal initialisation of the policy (default True, as theirs).
        **common: ``hidden`` (default (512, 512)), ``lr`` (default 1e-4), ``batch_size`` (256), ``normalize_obs``,
            ``action_low``/``action_high``, ``seed``, ``device``: see
            :class:`pbrl.agents.offline_base.OfflineAgent`.

    ``fit(dataset, preferences=None, steps)`` ignores preferences when given.
    """

    requires_preferences = False

    def __init__(self, obs_dim: int, act_dim: int, policy: str = "deterministic", dropout: float = 0.25,
                 ortho_init: bool = True, **common: Any):
        common.setdefault("hidden", (512, 512))
        common.setdefault("lr", 1e-4)
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
        if not (isinstance(dropout, (int, float)) and 0.0 <= dropout < 1.0):
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.policy_kind, self.dropout, self.ortho_init = policy, float(dropout), bool(ortho_init)
        self._register_config(policy=policy, dropout=self.dropout, ortho_init=self.ortho_init)
        super().__init__(obs_dim, act_dim, **common)

    def _build(self) -> None:
        policy = make_policy(self.policy_kind, self.obs_dim, self.act_dim, self.hidden, self.dropout,
                             ortho_init=self.ortho_init)
        self.nets = {"policy": policy}
        self.optims = {"policy": torch.optim.Adam(policy.parameters(), lr=self.lr)}

    def _sample(self) -> dict[str, torch.Tensor]:
        batch = self.sample_transitions()
        # the seed of this update's dropout masks (_dropout_scope), drawn from the agent's generator: runs repeat exactly
        batch["torch_seed"] = self.draw_torch_seed()
        return batch

    def _update_on(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        def loss() -> torch.Tensor:
            with self._dropout_scope(batch):
                return bc_nll(self.nets["policy"].log_prob(batch["observations"], batch["actions"]))

        return {"bc_loss": self._step("policy", loss)}
