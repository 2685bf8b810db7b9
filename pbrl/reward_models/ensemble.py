"""Reward models learned from preferences: a batched Bradley-Terry ensemble and a Gaussian (robust) reward.

Both models predict a per-step reward ``r_hat(s, a)`` from an observation and an action. A segment's
predicted return is the sum of its per-step rewards, and the probability that segment ``b`` is
preferred to segment ``a`` is the Bradley-Terry model

    P[b > a] = exp(sum_t r_hat(s^b_t, a^b_t)) / (exp(sum_t r_hat(s^a_t, a^a_t)) + exp(sum_t r_hat(s^b_t, a^b_t)))

(Christiano et al., "Deep reinforcement learning from human preferences", NeurIPS 2017, Sec. 2.2.3; the
preference predictor of PEBBLE, Lee, Smith & Abbeel, ICML 2021, Sec. 3, Eq. 1). Training minimises the
cross-entropy between this probability and the label (PEBBLE Eq. 2), with the soft target ``[0.5, 0.5]``
for pairs marked equal (as B-Pref's equal teacher).

The M members of an ensemble run as ONE batched network: each linear layer holds stacked weights
``[M, in, out]`` and is applied to all members with a single ``torch.baddbmm``; there is no Python
loop over members anywhere on the training or prediction path. Long inputs are cut into row chunks
(``train_chunk`` rows per member, default 2048) so activations stay cache-sized on a CPU; each chunk is
one forward call for all M members, so the number of calls does not grow with M.

Label convention (pbrl-wide): ``1.0`` = ``b`` preferred, ``0.0`` = ``a`` preferred, ``0.5`` = equal.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from pbrl.preferences import PreferenceDataset
from pbrl.ratings import RatingDataset
from pbrl.reward_models.networks import ACTIVATIONS, BatchedMLP
from pbrl.reward_models.persistence import SavedRewardModel, check_segments, check_state
from pbrl.reward_models.ratings import RatingTrainer
from pbrl.reward_models.training import (
    BradleyTerryLoss,
    RewardTrainer,
    TemporalCrop,
    pair_accuracy,
    soft_cross_entropy,
)
from pbrl.reward_models.transformer import (
    PreferenceTransformer,  # a different model family, loaded by from_state
)
from pbrl.segments import Segments

__all__ = ["RewardEnsemble", "combine_member_rewards", "ENSEMBLE_NORMALIZATIONS"]

#: how :func:`combine_member_rewards` merges an ensemble's per-member rewards
ENSEMBLE_NORMALIZATIONS = ("none", "zscore")


def combine_member_rewards(members: np.ndarray, normalization: str = "none") -> np.ndarray:
    """One reward per step from an ensemble's per-member rewards ``[M, T]`` -> ``[T]`` (float32).

    ``"none"``: the plain mean over members. ``"zscore"``: DTR's ensemble normalisation (Tu et al., AAAI
    2025, "In-Dataset Trajectory Return Regularization for Offline Preference-based RL", Sec. 4.3; the
    authors' ``D4RL/create_dataset_pref.py``): each member's rewards are standardised over the ``T`` steps,
    ``(r_m - mean_T r_m) / std_T r_m`` (population std), then averaged over members. The members' scales
    are arbitrary (a Bradley-Terry reward is defined up to an offset and, with a bounded output, a
    saturating scale), so a plain mean lets the widest-ranging member dominate; standardising first gives
    every member the same say. A member constant over the data (std below 1e-8) is only centred.

    Args:
        members: ``[M, T]`` per-member rewards (``RewardEnsemble.member_rewards``).
        normalization: one of :data:`ENSEMBLE_NORMALIZATIONS`.
    """
    if normalization not in ENSEMBLE_NORMALIZATIONS:
        raise ValueError(f"unknown ensemble normalization '{normalization}'; choose one of {ENSEMBLE_NORMALIZATIONS}")
    if np.ndim(members) != 2 or len(members) < 1:
        raise ValueError(f"members must be per-member rewards [M, T], got shape {np.shape(members)}")
    if normalization == "none":  # float32 as RewardEnsemble.predict computes it: the same numbers
        return np.asarray(members, dtype=np.float32).mean(axis=0)
    r = np.asarray(members, dtype=np.float64)
    std = r.std(axis=1, keepdims=True)
    r = (r - r.mean(axis=1, keepdims=True)) / np.where(std < 1e-8, 1.0, std)
    return r.mean(axis=0).astype(np.float32)

_OUTPUTS = ("tanh", "sigmoid", "linear")


# ---------------------------------------------------------------------------------------- helpers
def _check_array(name: str, x: Any, last_dim: int, what: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise TypeError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    if arr.ndim < 1 or arr.shape[-1] != last_dim:
        raise ValueError(
            f"{name} must have shape [..., {last_dim}] ({what} of this reward model), got {arr.shape}; "
            "check that the model was built for this environment"
        )
    arr = arr.astype(np.float32, copy=False)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf values; clean the inputs before asking for rewards")
    return arr


# ---------------------------------------------------------------------------------------- ensemble
class RewardEnsemble(SavedRewardModel):
    """An ensemble of M reward MLPs ``r(s, a)`` trained with the Bradley-Terry loss on segment returns.

    The ensemble follows PEBBLE (Lee, Smith & Abbeel, ICML 2021; Eq. 3-4) and B-Pref (Lee et al. 2021):
    per-step reward ``r_hat(s, a)`` from an MLP (default 3 hidden layers of 256 units, LeakyReLU,
    ``tanh`` output in [-1, 1]); segment returns are summed; the loss is

        L = - E_{(a, b, y)} [ (1 - y) log P[a > b] + y log P[b > a] ],   P from the Bradley-Terry model,

    with ``y = 0.5`` giving the soft target ``[0.5, 0.5]``. Members are trained on their own shuffled
    (optionally bootstrap-resampled) minibatches but in one batched pass (see :class:`BatchedMLP`).

    Inputs are normalised with the mean and std of the training transitions, re-estimated at every
    :meth:`fit` (``renormalize=True``, the default) and saved with the model; features whose std is below
    ``MIN_STD`` (1e-3) are only centred. (B-Pref normalises nothing; ``normalize=False`` follows it.)

    Args:
        obs_dim, act_dim: observation / action width.
        n_members: ensemble size M (default 3).
        hidden: hidden layer widths (default ``(256, 256, 256)``).
        lr: Adam learning rate (default 3e-4).
        output: ``"tanh"`` (PEBBLE, in [-1, 1]), ``"sigmoid"`` (in [0, 1]) or ``"linear"``.
        bootstrap: resample each member's training pairs with replacement each epoch.
        seed: seeds the initialisation and every random choice of training.
        device: torch device (CPU by default).
        activation: hidden activation (default ``"leaky_relu"``).
        weight_decay: Adam weight decay (default 0).
        normalize: normalise inputs with training statistics (default True).
        input_clip: clip normalised inputs to ``[-input_clip, input_clip]`` (default 100; 0 disables), so
            a feature that barely varied in the first labels cannot blow up the network later. The bound
            is loose on purpose: an online agent's states drift far from its first labelled segments
            (a running cheetah is many random-policy stds fast), and a tight clip would flatten the
            reward there.

    The model reads ``concat(obs, act)``. :meth:`save` stores weights, config, normalisation, the Adam
    state and the RNG states, so a loaded model continues training exactly as the saved one would.
    """

    out_per_member = 1
    #: whether ``_rewards(x, sample=True)`` draws rewards (and so differs from ``sample=False``); when False,
    #: one forward pass serves both (SURF labels and trains on the same pass)
    sampled_rewards = False
    #: features whose training std is below this are only centred, never divided by their std
    MIN_STD = 1e-3

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
        activation: str = "leaky_relu",
        weight_decay: float = 0.0,
        normalize: bool = True,
        input_clip: float = 100.0,
        **kw: Any,
    ):
        for name, v in (("obs_dim", obs_dim), ("act_dim", act_dim), ("n_members", n_members)):
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        hidden = tuple(int(h) for h in hidden)
        if any(h < 1 for h in hidden):
            raise ValueError(f"hidden widths must be positive, got {hidden}")
        if output not in _OUTPUTS:
            raise ValueError(f"unknown output '{output}'; choose one of {_OUTPUTS}")
        if not (lr > 0):
            raise ValueError(f"lr must be > 0, got {lr}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation '{activation}'; choose one of {sorted(ACTIVATIONS)}")
        if kw:
            raise TypeError(f"{type(self).__name__} got unknown arguments {sorted(kw)}")
        self.obs_dim, self.act_dim = int(obs_dim), int(act_dim)
        self.n_members = int(n_members)
        self.hidden = hidden
        self.lr = float(lr)
        self.output = output
        self.bootstrap = bool(bootstrap)
        self.seed = int(seed)
        self.device = torch.device(device)
        self.activation = activation
        self.weight_decay = float(weight_decay)
        self.normalize = bool(normalize)
        if not input_clip >= 0:
            raise ValueError(f"input_clip must be >= 0 (0 disables clipping), got {input_clip}")
        self.input_clip = float(input_clip)
        in_dim = self.obs_dim + self.act_dim
        self.net = BatchedMLP(
            self.n_members, in_dim, self.out_per_member, hidden, activation, seed=self.seed
        ).to(self.device)
        self.in_mean = torch.zeros(in_dim, device=self.device)
        self.in_std = torch.ones(in_dim, device=self.device)
        self.fitted_normalizer = False
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        self.rng = np.random.default_rng(self.seed)
        self.torch_gen = torch.Generator(device=self.device).manual_seed(self.seed + 1)
        # rows per member per forward call: bounds memory and keeps activations cache-sized on CPU
        self.predict_chunk = 8192
        self.train_chunk = 2048

    # ------------------------------------------------------------------ config / repr
    def config(self) -> dict[str, Any]:
        """Constructor arguments (JSON-able), enough to rebuild the model."""
        return {
            "obs_dim": self.obs_dim,
            "act_dim": self.act_dim,
            "n_members": self.n_members,
            "hidden": list(self.hidden),
            "lr": self.lr,
            "output": self.output,
            "bootstrap": self.bootstrap,
            "seed": self.seed,
            "activation": self.activation,
            "weight_decay": self.weight_decay,
            "normalize": self.normalize,
            "input_clip": self.input_clip,
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}(obs_dim={self.obs_dim}, act_dim={self.act_dim}, n_members={self.n_members}, hidden={self.hidden}, output={self.output!r})"

    # ------------------------------------------------------------------ core torch path
    def _squash(self, raw: torch.Tensor) -> torch.Tensor:
        if self.output == "tanh":
            return torch.tanh(raw)
        if self.output == "sigmoid":
            return torch.sigmoid(raw)
        return raw

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        z = (x - self.in_mean) / self.in_std
        return z.clamp(-self.input_clip, self.input_clip) if self.input_clip > 0 else z

    def _rewards(self, x: torch.Tensor, sample: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``x [M, B, in]`` or ``[B, in]`` (raw inputs) -> per-member rewards ``[M, B]`` (one forward)
        and a per-row regulariser ``[M, B]`` (``None`` here; the Gaussian model returns its KL per row)."""
        out = self.net(self._normalise(x))
        return self._squash(out[..., 0]), None

    def _segment_inputs(self, seg: Segments) -> np.ndarray:
        return np.concatenate([seg.obs, seg.act], axis=-1)

    def _check_segments(self, seg: Any, name: str) -> Segments:
        return check_segments(seg, name, self.obs_dim, self.act_dim)

    # ------------------------------------------------------------------ training
    def fit(
        self,
        dataset: PreferenceDataset,
        epochs: int = 200,
        batch_size: int = 128,
        early_stop_accuracy: float | None = 0.97,
        val_fraction: float = 0.0,
        crop_range: int = 0,
        progress: bool = False,
        renormalize: bool = True,
        losses: list | None = None,
    ) -> dict[str, Any]:
        """Train every member on ``dataset`` (one batched pass per minibatch; see
        :class:`~pbrl.reward_models.training.RewardTrainer`).

        The objective is the Bradley-Terry cross-entropy on the labelled pairs (PEBBLE Eq. 2) plus the
        model's own terms (the Gaussian model's KL), or exactly ``losses`` when given (e.g. SURF's
        ``[BradleyTerryLoss(crop), SemiSupervisedLoss(...)]``). On a :class:`~pbrl.ratings.RatingDataset` it is
        the RbRL rating loss (:class:`~pbrl.reward_models.ratings.RatingLoss`, or ``losses`` starting with one)
        through a :class:`~pbrl.reward_models.ratings.RatingTrainer`; accuracies are then class accuracies.

        Args:
            dataset: labelled pairs (label 1.0 = b preferred, 0.5 = equal), or rated segments.
            epochs: maximum number of epochs (default 200).
            batch_size: pairs per member per step (default 128).
            early_stop_accuracy: stop when mean member train accuracy >= this (default 0.97; ``None``: never).
            val_fraction: fraction of pairs held out (seeded) for ``val_loss`` / ``val_accuracy``.
            crop_range: temporal crop of the labelled pairs (:class:`~pbrl.reward_models.training.TemporalCrop`;
                0 = whole segments). Ignored when ``losses`` is given.
            progress: show a tqdm bar over epochs.
            renormalize: re-estimate the input normalisation from this dataset (default True: at every
                refit, so features that were constant in the first labels and move later are rescaled).
            losses: the objective's :class:`~pbrl.reward_models.training.LossTerm` list (first a
                ``BradleyTerryLoss``).

        Returns:
            dict with ``loss`` (Bradley-Terry term, mean over members, last epoch), ``accuracy`` (mean member
            train accuracy, last epoch), ``member_loss`` / ``member_accuracy`` (lists of M), ``epochs`` (run),
            ``history`` (per-epoch mean loss and accuracy), ``n_train``, ``val_loss`` / ``val_accuracy`` /
            ``val_member_accuracy`` when ``val_fraction > 0``, and what each term reports.
        """
        if isinstance(dataset, RatingDataset):
            if crop_range:
                raise ValueError("crop_range applies to preference pairs; ratings are fitted on whole segments")
            trainer = RatingTrainer(losses, epochs, batch_size, early_stop_accuracy, val_fraction, progress)
            return trainer.fit(self, dataset, renormalize=renormalize)
        if losses is None:
            crop = None if isinstance(crop_range, (int, np.integer)) and crop_range == 0 else TemporalCrop(crop_range)
            losses = [BradleyTerryLoss(crop), *self.default_loss_terms()]
        trainer = RewardTrainer(losses, epochs, batch_size, early_stop_accuracy, val_fraction, progress)
        return trainer.fit(self, dataset, renormalize=renormalize)

    def default_loss_terms(self) -> list:
        """Terms this model adds to the Bradley-Terry loss (none; the Gaussian model adds its KL)."""
        return []

    # ------------------------------------------------------------------ training helpers (used by the loss terms)
    def _pair_inputs(self, a: Segments, b: Segments) -> torch.Tensor:
        """Raw inputs of pairs ``[N, 2, H, in]`` on the model's device."""
        return torch.as_tensor(np.stack([self._segment_inputs(a), self._segment_inputs(b)], axis=1), device=self.device)

    def _fit_normalizer(self, x: torch.Tensor) -> None:
        """Set the input mean / std from raw inputs ``[..., in]``. A feature whose std is below
        ``MIN_STD`` is only centred: a feature that barely varied (a Meta-World object at rest, std ~1e-6)
        must not be blown up by its tiny std when it later moves."""
        flat = x.reshape(-1, x.shape[-1]).double()
        self.in_mean = flat.mean(0).float()
        std = flat.std(0, unbiased=False).float()
        self.in_std = torch.where(std < self.MIN_STD, torch.ones_like(std), std)
        self.fitted_normalizer = True

    def _pair_rewards(self, xb: torch.Tensor, sample: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``xb [M, B, 2, H, in]`` -> per-step rewards ``[M, B, 2, H]`` and the model's per-step regulariser
        (same shape, or ``None``), in cache-sized row chunks (one batched forward per chunk)."""
        M, B, two, H, d = xb.shape
        flat = xb.reshape(M, B * two * H, d)
        step = max(1, int(self.train_chunk))
        parts = [self._rewards(flat[:, s : s + step], sample=sample) for s in range(0, flat.shape[1], step)]
        r = torch.cat([p[0] for p in parts], dim=1).reshape(M, B, two, H)
        reg = None if parts[0][1] is None else torch.cat([p[1] for p in parts], dim=1).reshape(M, B, two, H)
        return r, reg

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def member_rewards(self, obs, act) -> np.ndarray:
        """Per-member rewards ``[M, *obs.shape[:-1]]`` (float32) for ``obs [..., obs_dim]``, ``act [..., act_dim]``.

        Accepts NumPy (or torch) arrays of any matching leading shape; evaluated in chunks of
        ``self.predict_chunk`` rows (one batched forward per chunk) to bound memory.
        """
        obs = _check_array("obs", obs, self.obs_dim, "obs_dim")
        act = _check_array("act", act, self.act_dim, "act_dim")
        if obs.shape[:-1] != act.shape[:-1]:
            raise ValueError(f"obs and act must share leading shape, got {obs.shape} and {act.shape}")
        lead = obs.shape[:-1]
        x = np.concatenate([obs.reshape(-1, self.obs_dim), act.reshape(-1, self.act_dim)], axis=1)
        out = np.empty((self.n_members, len(x)), np.float32)
        for s in range(0, len(x), self.predict_chunk):
            xb = torch.as_tensor(x[s : s + self.predict_chunk], device=self.device)
            out[:, s : s + len(xb)] = self._mean_rewards(xb).cpu().numpy()
        return out.reshape(self.n_members, *lead)

    def _mean_rewards(self, x: torch.Tensor) -> torch.Tensor:
        """Deterministic per-member reward ``[M, B]`` of raw inputs ``[B, in]`` (cache-sized row chunks)."""
        step = max(1, int(self.train_chunk))
        if len(x) <= step:
            return self._rewards(x, sample=False)[0]
        return torch.cat([self._rewards(x[s : s + step], sample=False)[0] for s in range(0, len(x), step)], dim=1)

    def predict(self, obs, act) -> np.ndarray:
        """Mean reward over members, shape ``obs.shape[:-1]`` (float32)."""
        return self.member_rewards(obs, act).mean(axis=0)

    @torch.no_grad()
    def predict_step(self, obs: np.ndarray, act: np.ndarray) -> np.ndarray:
        """:meth:`predict` for the few rows of one vector-env step (``obs [n, obs_dim]``, ``act [n, act_dim]``,
        finite float32 from an env): the same numbers without the input checks and chunking, which cost
        more than the network at this size (pbrl's reward wrapper calls it at every step)."""
        x = torch.from_numpy(np.concatenate([obs, act], axis=1).astype(np.float32, copy=False)).to(self.device)
        return self._rewards(x, sample=False)[0].mean(0).cpu().numpy()

    def std(self, obs, act) -> np.ndarray:
        """Standard deviation of the reward over members, shape ``obs.shape[:-1]`` (float32)."""
        return self.member_rewards(obs, act).std(axis=0)

    def segment_returns(self, seg: Segments) -> np.ndarray:
        """Per-member predicted returns ``[M, N]`` of a ``Segments`` batch (sum of per-step rewards)."""
        seg = self._check_segments(seg, "segments")
        return self.member_rewards(seg.obs, seg.act).sum(axis=-1)

    def preference_probs(self, a: Segments, b: Segments) -> np.ndarray:
        """Per-member Bradley-Terry probability that ``b`` is preferred, ``[M, N]`` (float64)."""
        a = self._check_segments(a, "a")
        b = self._check_segments(b, "b")
        if len(a) != len(b):
            raise ValueError(f"a and b must hold the same number of segments, got {len(a)} and {len(b)}")
        ra, rb = self.segment_returns(a).astype(np.float64), self.segment_returns(b).astype(np.float64)
        return 1.0 / (1.0 + np.exp(-(rb - ra)))

    def _evaluate_pairs(self, a: Segments, b: Segments, label: np.ndarray) -> dict[str, Any]:
        ra, rb = self.segment_returns(a), self.segment_returns(b)
        logits = torch.as_tensor(np.stack([ra, rb], axis=-1))
        lab = torch.as_tensor(np.asarray(label, np.float32))
        loss = soft_cross_entropy(logits, lab).mean(dim=1)
        correct, n = pair_accuracy(logits, lab)
        acc = (correct / n) if n > 0 else torch.full((self.n_members,), float("nan"))
        return {"loss": float(loss.mean()), "accuracy": float(acc.mean()), "member_accuracy": acc.tolist()}

    # ------------------------------------------------------------------ persistence (SavedRewardModel)
    @classmethod
    def from_state(cls, state: dict[str, Any], device: str = "cpu") -> RewardEnsemble:
        """Rebuild a model from :meth:`state` (the subclass recorded in the state is used)."""
        check_state(state)
        if state.get("class") == "PreferenceTransformer" and cls is RewardEnsemble:
            return PreferenceTransformer.from_state(state, device=device)
        klass = MODEL_CLASSES.get(state.get("class"))
        if klass is None:
            raise ValueError(f"unknown reward model class {state.get('class')!r}; known: {sorted(MODEL_CLASSES)}")
        if cls is not RewardEnsemble and not issubclass(klass, cls):
            raise ValueError(f"the file holds a {klass.__name__}, not a {cls.__name__}")
        cfg = dict(state["config"])
        cfg["hidden"] = tuple(cfg["hidden"])
        model = klass(**cfg, device=device)
        model.load_state(state)
        return model


#: class name -> reward-model class, for :meth:`RewardEnsemble.from_state` (subclasses register here)
MODEL_CLASSES: dict[str, type[RewardEnsemble]] = {"RewardEnsemble": RewardEnsemble}
