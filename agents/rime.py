"""RIME: robust preference-based RL with noisy preferences, on top of PEBBLE.

Cheng, Xiong, Dai, Miao, Lv & Wang, "RIME: Robust Preference-based Reinforcement Learning with Noisy
Preferences", ICML 2024 (arXiv:2402.17257; equation numbers of the arXiv version). The constants are those
of the authors' scripts (``run_parallel.sh``, ``train_RIME.py``, ``reward_model_RIME.py``).

What makes RIME, all in this file (query selection, relabelling and the ensemble are PEBBLE's):

1. **Denoising discriminator** (Sec. 4.1; :class:`DenoisingDiscriminator`). At every reward-model training
   epoch, every labelled pair ``x = (sigma_0, sigma_1, y~)`` is scored by the KL divergence between its
   annotated label and the ensemble's mean Bradley-Terry prediction (Eq. 1), which for a hard label is the
   cross-entropy of Eq. 2, ``D(x) = -[(1 - y~) log P(sigma_0 > sigma_1) + y~ log P(sigma_1 > sigma_0)]``.
   Theorem 4.1 bounds ``D`` from below for corrupted samples when the clean samples' loss is below ``rho``;
   the pairs are split by two thresholds:

   * lower bound (Eqs. 3-5): ``tau_lower = -ln(rho) + alpha * rho + min(beta_t * s_KL, 3)``: the
     KL-derived base term plus an uncertainty term. ``rho`` is the largest ``D`` of the pairs trusted in
     the previous epochs (an exponential moving average, rate 0.1, starting at 0), ``s_KL`` the running
     variance of their ``D`` (starting at 1; both as the authors' code computes them), ``alpha = 0.5``,
     and ``beta_t = max(beta_min, beta_max - k * t)`` decays linearly with the number ``t`` of training
     epochs so far, from ``beta_max = 3`` to ``beta_min = 1`` over
     ``decay_epochs`` epochs (``k = (beta_max - beta_min) / decay_epochs``; 60 epochs, k = 1/30, on
     locomotion, 600, k = 1/300, on Meta-World). ``D < tau_lower``: trusted, trained on as labelled;
   * upper bound (Eq. 6): ``tau_upper = -ln(tau)``, ``tau = 0.001`` (6.91): ``D > tau_upper``: the label is
     flipped for this epoch and the pair trained on with ``1 - y~``;
   * everything in between is left out of this epoch.

   The objective (Eq. 7) is Bradley-Terry on the trusted and flipped pairs. RIME's code also warms the
   reward model's learning rate up linearly from 0 over the first
   ``round(n_sessions * least_epochs / 3)`` training epochs (``least_epochs`` 15 on locomotion, 5 on
   Meta-World; the code's constant schedule with warm-up, stepped once per epoch).
2. **Warm start** (Sec. 4.2; :class:`RewardWarmStart`). During PEBBLE's unsupervised pre-training, after
   each SAC gradient step the reward model takes 5 Adam steps on the mean-squared error
   ``L = sum_m mean_B (r_m(s, a) - r~_int)^2`` (Eq. 8) against the normalised intrinsic reward of batches of
   ``batch_size`` (SAC's, 512) buffer transitions, ``r~_int = (h - mu) / max(|h_min - mu|, |h_max - mu|)``
   in [-1, 1], with ``h = log(1 + ||s' - s'^k||)`` PEBBLE's k-NN entropy (k = 5), ``mu`` its running mean
   and ``h_min``, ``h_max`` the extremes seen so far. SAC itself pre-trains on RIME's centred intrinsic
   reward ``clip((h - mu) / (3 sigma), -1, 1)`` (PEBBLE's is ``h / sigma``), the same scale as the tanh
   reward model. So at the first reward update the learned reward starts where the intrinsic one left off
   and, unlike PEBBLE, RIME does **not** reset the critic: it only runs the ``reset_updates = 100`` SAC
   steps on the relabelled buffer (:class:`PostSwitchUpdates`).

Reward fitting uses the authors' schedule: up to 50 epochs on locomotion (10 on Meta-World), stopping once
the training accuracy on the pairs trained on reaches 0.98. Two differences from the authors' loop, both
forced by the shared :class:`~pbrl.reward_models.RewardTrainer`: an epoch visits every labelled pair and
masks the dropped ones out of each minibatch's mean (the authors' epoch visits only the trusted and flipped
pairs, so it takes fewer, fuller minibatches), and there is no minimum number of epochs before the early
stop (the authors' ``least_reward_update``, 15 / 5).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from pbrl.agents.online_base import PhaseHook
from pbrl.agents.pebble import PEBBLE
from pbrl.online import FeedbackHook, PbrlReplayBuffer, PreferenceCallback, StateEntropyReward, unscale_action
from pbrl.preferences import PreferenceDataset
from pbrl.reward_models.training import BradleyTerryLoss, LossTerm, PairBatch, soft_cross_entropy
from pbrl.validation import check_int

__all__ = ["RIME", "DenoisingDiscriminator", "RewardWarmStart", "PostSwitchUpdates", "label_kl"]

TRUSTED, FLIPPED, DROPPED = 0, 1, 2


@torch.no_grad()
def label_kl(model: Any, x: torch.Tensor, y: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """``D(x)`` of every pair: the cross-entropy between the label and the ensemble's mean prediction.

    ``x [N, 2, H, in]`` raw pair inputs (``model._pair_inputs``), ``y [N]`` labels (1 = b preferred) ->
    ``[N]``. For hard labels this is the KL divergence of the paper; the probabilities are clamped at 1e-12
    so that a confidently contradicted pair scores 27.6, not infinity.
    """
    M, out = model.n_members, []
    for s in range(0, len(x), chunk):
        xc = x[s : s + chunk]
        r, _ = model._pair_rewards(xc.unsqueeze(0).expand(M, *xc.shape), sample=False)  # [M, c, 2, H]
        logp = torch.softmax(r.sum(-1), dim=-1).mean(0).clamp_min(1e-12).log()  # [c, 2]
        yc = y[s : s + chunk]
        out.append(-((1.0 - yc) * logp[:, 0] + yc * logp[:, 1]))
    return torch.cat(out) if out else torch.zeros(0, device=x.device)


class DenoisingDiscriminator(BradleyTerryLoss, FeedbackHook):
    """RIME's denoising discriminator (Eqs. 3-7): the Bradley-Terry term on trusted and flipped pairs.

    It replaces PEBBLE's Bradley-Terry term. At the first minibatch of every epoch it scores all training
    pairs (:func:`label_kl`) and splits them into trusted / flipped / dropped (see the module docstring);
    each minibatch row is then looked up by ``batch.idx``. It is also the :class:`FeedbackHook` that
    checkpoints its statistics and epoch counter, so a resumed run selects exactly as an uninterrupted one.

    The term rewrites ``batch.y`` to the labels it trains on (flipped ones flipped, dropped ones 0.5), so
    the trainer's accuracy and early stop are over the pairs trained on, as in the authors' code.

    Args:
        alpha: weight of ``rho`` in the base bound (default 0.5, Theorem 4.1's ``rho / 2``).
        beta_max, beta_min: start and floor of the uncertainty weight ``beta_t`` (defaults 3.0, 1.0).
        decay_epochs: epochs over which ``beta_t`` falls from ``beta_max`` to ``beta_min`` (default 60).
        tau: flip threshold ``tau_upper = -ln(tau)`` (default 0.001).
        uncertainty_cap: bound of ``beta_t * s_KL`` (default 3.0).
        ema: rate of the moving averages of ``rho`` and of the mean (default 0.1).
        lr_warmup_epochs: linear learning-rate warm-up from 0 over this many epochs (default 0: none).
    """

    name = "rime_discriminator"

    def __init__(self, alpha: float = 0.5, beta_max: float = 3.0, beta_min: float = 1.0, decay_epochs: int = 60,
                 tau: float = 0.001, uncertainty_cap: float = 3.0, ema: float = 0.1, lr_warmup_epochs: int = 0):
        super().__init__(crop=None)
        if not 0.0 < tau < 1.0:
            raise ValueError(f"tau must be in (0, 1), got {tau}")
        if not (alpha >= 0 and 0 <= beta_min <= beta_max and uncertainty_cap >= 0 and 0 < ema <= 1):
            raise ValueError(
                f"need alpha >= 0, 0 <= beta_min <= beta_max, uncertainty_cap >= 0 and 0 < ema <= 1; got "
                f"alpha={alpha}, beta_min={beta_min}, beta_max={beta_max}, uncertainty_cap={uncertainty_cap}, ema={ema}"
            )
        self.alpha, self.beta_max, self.beta_min = float(alpha), float(beta_max), float(beta_min)
        self.decay_epochs = check_int("decay_epochs", decay_epochs, 1)
        self.tau, self.uncertainty_cap, self.ema = float(tau), float(uncertainty_cap), float(ema)
        self.lr_warmup_epochs = check_int("lr_warmup_epochs", lr_warmup_epochs, 0)
        # checkpointed state: the epoch counter t and the trusted pairs' KL statistics
        self.epochs = 0
        self.kl_max, self.kl_mean, self.kl_var, self.kl_count = 0.0, 0.0, 1.0, 0
        self.history: list[dict[str, float]] = []  #: the last epoch's split of every fit (added by ``summary``)
        # per-fit working data
        self._x: torch.Tensor | None = None
        self._y: torch.Tensor | None = None
        self._status: torch.Tensor | None = None
        self._y_train: torch.Tensor | None = None
        self._rows_left = 0
        self._last: dict[str, float] = {}

    # ------------------------------------------------------------------ the bounds
    def beta(self, t: int | None = None) -> float:
        """``beta_t = max(beta_min, beta_max - (beta_max - beta_min) * t / decay_epochs)`` (Eq. 4)."""
        t = self.epochs if t is None else t
        return max(self.beta_min, self.beta_max - (self.beta_max - self.beta_min) * t / self.decay_epochs)

    def lower_bound(self) -> float:
        """``tau_lower = -ln(rho) + alpha * rho + min(beta_t * s_KL, cap)`` (Eqs. 3-5)."""
        rho = self.kl_max
        return -math.log(rho + 1e-8) + self.alpha * rho + min(self.beta() * self.kl_var, self.uncertainty_cap)

    @property
    def upper_bound(self) -> float:
        """``tau_upper = -ln(tau)`` (Eq. 6)."""
        return -math.log(self.tau)

    # ------------------------------------------------------------------ one epoch's split
    def split(self, kl: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Status of each pair (``TRUSTED`` / ``FLIPPED`` / ``DROPPED``) under the current bounds. A tie
        (y = 0.5) is never flipped: above the upper bound it is dropped."""
        flipped = (kl > self.upper_bound) & (y != 0.5)
        trusted = (kl < self.lower_bound()) & ~flipped
        status = torch.full_like(kl, DROPPED, dtype=torch.long)
        status[trusted] = TRUSTED
        status[flipped] = FLIPPED
        return status

    def _update_stats(self, kl: np.ndarray) -> None:
        """The authors' running statistics of the trusted pairs' KL: moving averages (rate ``ema``) of the
        maximum and the mean, and the pooled variance."""
        if len(kl) == 0:
            return
        b_mean, b_var, n = float(kl.mean()), float(kl.var()), len(kl)
        delta, total = b_mean - self.kl_mean, self.kl_count + n
        m2 = self.kl_var * self.kl_count + b_var * n + delta**2 * self.kl_count * n / total
        self.kl_mean += delta * self.ema
        self.kl_max += (float(kl.max()) - self.kl_max) * self.ema
        self.kl_var, self.kl_count = m2 / total, total

    def _select(self, model: Any) -> None:
        if self.lr_warmup_epochs > 0:  # the authors' constant-with-warm-up schedule, stepped per epoch
            for g in model.optimizer.param_groups:
                g["lr"] = model.lr * min(1.0, self.epochs / self.lr_warmup_epochs)
        kl = label_kl(model, self._x, self._y)
        lower, beta = self.lower_bound(), self.beta()
        self._status = self.split(kl, self._y)
        flip = self._status == FLIPPED
        self._y_train = torch.where(flip, 1.0 - self._y, self._y)
        self._update_stats(kl[self._status == TRUSTED].cpu().numpy().astype(np.float64))
        counts = torch.bincount(self._status, minlength=3).tolist()
        self._last = {"rime_trusted": counts[TRUSTED], "rime_flipped": counts[FLIPPED], "rime_dropped": counts[DROPPED],
                      "rime_lower_bound": lower, "rime_upper_bound": self.upper_bound, "rime_beta": beta,
                      "rime_epochs": self.epochs + 1}
        self.epochs += 1

    # ------------------------------------------------------------------ LossTerm
    def start(self, model: Any, train: PreferenceDataset) -> None:
        self._x = model._pair_inputs(train.a, train.b)
        self._y = torch.as_tensor(train.label, dtype=torch.float32, device=model.device)
        self._rows_left = 0  # the first minibatch starts an epoch

    def __call__(self, model: Any, batch: PairBatch) -> torch.Tensor:
        if batch.idx is None:
            raise ValueError("the RIME discriminator needs the rows' indices (batch.idx); train it with RewardTrainer")
        if self._rows_left <= 0:  # a new epoch: every member visits each of the N pairs once per epoch
            self._select(model)
            self._rows_left = len(self._y)
        self._rows_left -= batch.idx.shape[1]
        keep = self._status[batch.idx] != DROPPED  # [M, B]
        y = self._y_train[batch.idx]
        rewards, reg = model._pair_rewards(batch.x, sample=True)  # [M, B, 2, H]
        logits = rewards.sum(-1)
        batch.cache.update(rewards=rewards, reg=reg, mask=None, logits=logits)
        batch.y = torch.where(keep, y, torch.full_like(y, 0.5))  # what the trainer's accuracy counts
        w = keep.float()
        return (soft_cross_entropy(logits, y) * w).sum(1) / w.sum(1).clamp_min(1.0)

    def summary(self) -> dict[str, float]:
        """The last epoch's split: ``rime_trusted`` / ``rime_flipped`` / ``rime_dropped`` pair counts, the
        bounds and ``beta_t`` it used, and ``rime_epochs`` (epochs so far)."""
        if self._last:
            self.history.append(dict(self._last))
        return dict(self._last)

    # ------------------------------------------------------------------ FeedbackHook
    def after_update(self, callback: PreferenceCallback, first: bool) -> None:
        for k, v in self._last.items():
            callback.logger.record(f"rime/{k[5:]}", v)

    def state(self) -> dict[str, Any]:
        return {"epochs": self.epochs, "kl_max": self.kl_max, "kl_mean": self.kl_mean, "kl_var": self.kl_var,
                "kl_count": self.kl_count, "history": [dict(h) for h in self.history], "last": dict(self._last)}

    def load_state(self, state: dict[str, Any]) -> None:
        self.epochs = int(state["epochs"])
        self.kl_max, self.kl_mean, self.kl_var = float(state["kl_max"]), float(state["kl_mean"]), float(state["kl_var"])
        self.kl_count = int(state["kl_count"])
        self.history = [dict(h) for h in state.get("history", [])]
        self._last = dict(state.get("last", {}))


class RewardWarmStart(FeedbackHook):
    """RIME's pre-training reward for SAC and the reward model's warm start (Eq. 8).

    Installed as the replay buffer's ``sample_reward`` during pre-training: for every SAC batch it returns
    ``clip((h(s') - mu) / (3 sigma), -1, 1)`` (``h`` PEBBLE's k-NN entropy, ``mu`` / ``sigma`` its running
    mean / std, updated with the batch), then takes ``steps`` Adam steps of the reward model on
    ``sum_m mean (r_m(s, a) - (h(s') - mu) / max(|h_min - mu|, |h_max - mu|))^2`` over fresh batches of
    ``batch_size`` buffer transitions drawn with the reward model's RNG. The extremes are checkpointed here
    (the entropy statistics with the agent's ``entropy``, the RNG and Adam with the reward model).
    """

    def __init__(self, reward_model: Any, steps: int = 5, reset_optimizer: bool = False):
        self.reward_model = reward_model
        self.steps = check_int("warm_start_steps", steps, 0)
        self.reset_optimizer = bool(reset_optimizer)
        self.buffer: PbrlReplayBuffer | None = None
        self.entropy: StateEntropyReward | None = None
        self.action_space = None
        self.batch_size = 0
        self.h_min, self.h_max = math.inf, -math.inf
        self.updates = 0
        self.last_loss = math.nan

    def attach(self, buffer: PbrlReplayBuffer, entropy: StateEntropyReward, action_space, batch_size: int):
        self.buffer, self.entropy, self.action_space = buffer, entropy, action_space
        self.batch_size = check_int("batch_size", batch_size, 1)
        return self

    def _mu_sigma(self) -> tuple[float, float]:
        return float(self.entropy.stats.mean), max(float(np.sqrt(self.entropy.stats.var)), 1e-6)

    def __call__(self, obs, act, next_obs, reward) -> np.ndarray:
        ref = self.buffer.filled_next_observations(self.entropy.max_ref)
        h = self.entropy.raw(next_obs, ref)
        self.entropy.stats.update(h.astype(np.float64))
        mu, sigma = self._mu_sigma()
        if self.steps:
            self.warm_start(ref)
        return np.clip((h - mu) / (3.0 * sigma), -1.0, 1.0).astype(np.float32)

    def warm_start(self, ref: np.ndarray) -> float:
        """``steps`` regression steps of the reward model (Eq. 8); returns the last loss."""
        buf, rm = self.buffer, self.reward_model
        B, n = self.batch_size, buf.size_filled()
        rows = rm.rng.integers(0, n, size=self.steps * B)
        envs = rm.rng.integers(0, buf.n_envs, size=self.steps * B)
        h = self.entropy.raw(buf.next_observations[rows, envs], ref)
        self.h_min, self.h_max = min(self.h_min, float(h.min())), max(self.h_max, float(h.max()))
        mu, _ = self._mu_sigma()
        target = (h - mu) / max(abs(self.h_min - mu), abs(self.h_max - mu), 1e-6)
        act = buf.actions[rows, envs]
        if self.action_space is not None:
            act = unscale_action(act, self.action_space)
        x = torch.as_tensor(np.concatenate([buf.observations[rows, envs], act], axis=-1), device=rm.device)
        t = torch.as_tensor(target, dtype=torch.float32, device=rm.device)
        rm.net.train()
        for i in range(self.steps):
            r, _ = rm._rewards(x[i * B : (i + 1) * B], sample=False)  # [M, B]
            loss = ((r - t[i * B : (i + 1) * B]) ** 2).mean(dim=1).sum()
            rm.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            rm.optimizer.step()
        rm.net.eval()
        self.updates += self.steps
        self.last_loss = float(loss.detach())
        return self.last_loss

    def after_labels(self, callback: PreferenceCallback, episodes) -> None:
        """Before the first preference fit: forget the warm start's Adam moments (``reset_optimizer``).

        Off by default: the authors' code keeps one optimizer for the warm start and the preference fits.
        Thousands of small-gradient regression steps leave Adam's second moments far below the
        Bradley-Terry gradients (sums over ``H`` steps), so the first preference steps move every weight
        several times ``lr`` (``docs/hyperparameters.md`` has the measurement and what the reset changes).
        """
        if self.reset_optimizer and self.updates > 0 and callback.updates == 0:
            self.reward_model.optimizer.state.clear()

    def state(self) -> dict[str, Any]:
        return {"h_min": self.h_min, "h_max": self.h_max, "updates": self.updates, "last_loss": self.last_loss}

    def load_state(self, state: dict[str, Any]) -> None:
        self.h_min, self.h_max = float(state["h_min"]), float(state["h_max"])
        self.updates, self.last_loss = int(state["updates"]), float(state["last_loss"])


class PostSwitchUpdates(FeedbackHook):
    """After the first reward update and relabelling: ``updates`` SAC gradient steps, critic kept (RIME's
    ``update_after_reset`` without PEBBLE's ``reset_critic``)."""

    def __init__(self, updates: int = 100):
        self.updates = check_int("reset_updates", updates, 0)

    def after_relabel(self, callback: PreferenceCallback, first: bool) -> None:
        model = callback.model
        if first and self.updates > 0 and hasattr(model, "train"):
            model.train(gradient_steps=self.updates, batch_size=model.batch_size)


class RIME(PEBBLE):
    """PEBBLE + RIME's denoising discriminator and reward warm start (see the module docstring).

    Extra args (defaults: the authors' scripts; ``docs/hyperparameters.md`` has the table):
        alpha: weight of ``rho`` in the lower bound (default 0.5).
        beta_max, beta_min: the uncertainty weight's start and floor (defaults 3.0, 1.0).
        decay_epochs: reward-training epochs over which ``beta_t`` decays (default ``None``: 600 on
            ``metaworld/*`` tasks, 60 otherwise; the paper's k = 1/300 and 1/30).
        tau: flip threshold, ``tau_upper = -ln(tau)`` (default 0.001).
        lr_warmup_epochs: reward learning-rate warm-up (default ``None``: ``round(n_sessions * least / 3)``
            with ``least`` = 5 on Meta-World, 15 otherwise; 0 disables).
        warm_start_steps: reward-model regression steps per SAC gradient step of pre-training (default 5;
            0 disables the warm start, the paper's ablation).
        warm_start_reset_optimizer: clear the reward model's Adam moments before the first preference fit
            (default False, as the authors' code; pbrl's opt-in mitigation of the reward saturation after
            a long warm start, see ``docs/hyperparameters.md``).

    Reward fitting defaults to up to 50 epochs (10 on Meta-World), early stop at 98 % accuracy. Every other
    argument and default as :class:`PEBBLE`; the warm start expects the reward model's raw inputs
    (``normalize=False``, the online default), since a normaliser fitted at the first update would move
    the inputs the warm start was trained on.
    """

    feedback_kinds = ("preference",)  # the denoising discriminator judges pair labels

    def __init__(self, *args, alpha: float = 0.5, beta_max: float = 3.0, beta_min: float = 1.0,
                 decay_epochs: int | None = None, tau: float = 0.001, lr_warmup_epochs: int | None = None,
                 warm_start_steps: int = 5, warm_start_reset_optimizer: bool = False, **kwargs):
        task = args[0] if args else kwargs.get("task_id_or_env")
        self.metaworld = isinstance(task, str) and task.startswith("metaworld/")
        if decay_epochs is None:
            decay_epochs = 600 if self.metaworld else 60
        if lr_warmup_epochs is not None:
            check_int("lr_warmup_epochs", lr_warmup_epochs, 0)
        self._disc_kwargs = {"alpha": alpha, "beta_max": beta_max, "beta_min": beta_min,
                             "decay_epochs": decay_epochs, "tau": tau}
        DenoisingDiscriminator(**self._disc_kwargs)  # validates before any work
        self.lr_warmup_epochs = lr_warmup_epochs
        self.warm_start_steps = check_int("warm_start_steps", warm_start_steps, 0)
        self.warm_start_reset_optimizer = bool(warm_start_reset_optimizer)
        self.discriminator: DenoisingDiscriminator | None = None
        self.warm_start: RewardWarmStart | None = None
        super().__init__(*args, **kwargs)

    # ------------------------------------------------------------------ parts
    def _disc(self) -> DenoisingDiscriminator:
        if self.discriminator is None:
            warm = self.lr_warmup_epochs
            if warm is None:
                sessions = self.total_feedback / self.feedback_per_session
                warm = int(sessions * (5 if self.metaworld else 15) / 3 + 0.5)
            self.discriminator = DenoisingDiscriminator(**self._disc_kwargs, lr_warmup_epochs=warm)
        return self.discriminator

    def _warm(self) -> RewardWarmStart:
        if self.warm_start is None:
            self.warm_start = RewardWarmStart(self.reward_model, self.warm_start_steps,
                                              reset_optimizer=self.warm_start_reset_optimizer)
        return self.warm_start

    def _fit_kwargs(self, overrides: dict | None) -> dict:
        return super()._fit_kwargs({"epochs": 10 if self.metaworld else 50, "early_stop_accuracy": 0.98,
                                    **(overrides or {})})

    def _loss_terms(self) -> list[LossTerm]:
        return [self._disc(), *self.reward_model.default_loss_terms()]

    def _make_hooks(self) -> list[FeedbackHook]:
        hooks: list[FeedbackHook] = [PhaseHook(self)]
        if self.unsup_steps > 0:
            hooks.append(PostSwitchUpdates(self.reset_updates))
        return [*hooks, self._disc(), self._warm()]

    def _setup(self) -> None:
        if self.unsup_steps <= 0:
            self._set_learned_reward()
            return
        buf: PbrlReplayBuffer = self.model.replay_buffer
        self.entropy = StateEntropyReward(k=5, max_ref=10000, ref_includes_query=True)
        buf.sample_reward = self._warm().attach(buf, self.entropy, self.model.action_space, self.model.batch_size)
