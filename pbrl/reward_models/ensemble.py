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

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from pbrl.preferences import PreferenceDataset, atomic_write
from pbrl.segments import Segments

__all__ = [
    "BatchedMLP",
    "RewardEnsemble",
    "GaussianRewardModel",
    "evaluate_reward_model",
    "load_reward_model",
]

# Activations applied in place where autograd allows it (their backward reads the output, not the
# input): this saves one activation-sized allocation per layer, which matters for memory-bound CPU work.
_ACTIVATIONS = {
    "leaky_relu": lambda x: F.leaky_relu(x, 0.01, inplace=True),
    "relu": lambda x: F.relu(x, inplace=True),
    "tanh": lambda x: x.tanh_(),
    "elu": lambda x: F.elu(x, inplace=True),
    "silu": F.silu,
}
_OUTPUTS = ("tanh", "sigmoid", "linear")
_FORMAT = "pbrl.reward_model"
_FORMAT_VERSION = 1


# ---------------------------------------------------------------------------------------- batched MLP
class BatchedMLP(nn.Module):
    """M independent MLPs evaluated together: ``forward(x [M, B, in]) -> [M, B, out]``.

    Each layer stores its weights as ``[M, in, out]`` and biases as ``[M, 1, out]`` and is applied to
    every member at once with ``torch.baddbmm``. Members are initialised independently (PyTorch's
    default ``nn.Linear`` scheme, U(-1/sqrt(in), 1/sqrt(in))) from a seeded generator.

    ``n_forward_calls`` counts calls to :meth:`forward`, so tests can check that an M-member ensemble
    costs one call per batch, not M.

    Args:
        n_members: M.
        in_dim, out_dim: input and output width.
        hidden: hidden layer widths, e.g. ``(256, 256, 256)``.
        activation: one of ``leaky_relu, relu, tanh, elu, silu``.
        seed: seed of the initialisation.
    """

    def __init__(
        self,
        n_members: int,
        in_dim: int,
        out_dim: int,
        hidden: tuple[int, ...] = (256, 256, 256),
        activation: str = "leaky_relu",
        seed: int = 0,
    ):
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(f"unknown activation '{activation}'; choose one of {sorted(_ACTIVATIONS)}")
        gen = torch.Generator().manual_seed(int(seed))
        dims = [int(in_dim), *[int(h) for h in hidden], int(out_dim)]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for d_in, d_out in zip(dims[:-1], dims[1:]):
            bound = 1.0 / math.sqrt(d_in)
            w = (torch.rand(n_members, d_in, d_out, generator=gen) * 2 - 1) * bound
            b = (torch.rand(n_members, 1, d_out, generator=gen) * 2 - 1) * bound
            self.weights.append(nn.Parameter(w))
            self.biases.append(nn.Parameter(b))
        self.act = _ACTIVATIONS[activation]
        self.n_members = int(n_members)
        self.n_forward_calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [M, B, in]`` (or ``[B, in]``, shared by all members) -> ``[M, B, out]``."""
        self.n_forward_calls += 1
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(self.n_members, -1, -1)
        n = len(self.weights)
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            x = torch.baddbmm(b, x, w)
            if i < n - 1:
                x = self.act(x)
        return x


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


def _soft_ce(logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """Bradley-Terry cross-entropy. ``logits [..., 2]`` = (return_a, return_b); ``label [...]`` = P(b)."""
    logp = F.log_softmax(logits, dim=-1)
    return -((1.0 - label) * logp[..., 0] + label * logp[..., 1])


def _accuracy(logits: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-member count of correctly ordered non-tied pairs and the number of non-tied pairs.

    ``logits [M, B, 2]``, ``label [B]`` -> (correct [M], n [scalar]).
    """
    decided = label != 0.5
    pred_b = logits[..., 1] > logits[..., 0]
    correct = ((pred_b == (label > 0.5)) & decided).sum(dim=-1)
    return correct.float(), decided.sum().float()


# ---------------------------------------------------------------------------------------- ensemble
class RewardEnsemble:
    """An ensemble of M reward MLPs ``r(s, a)`` trained with the Bradley-Terry loss on segment returns.

    The ensemble follows PEBBLE (Lee, Smith & Abbeel, ICML 2021; Eq. 3-4) and B-Pref (Lee et al. 2021):
    per-step reward ``r_hat(s, a)`` from an MLP (default 3 hidden layers of 256 units, LeakyReLU,
    ``tanh`` output in [-1, 1]); segment returns are summed; the loss is

        L = - E_{(a, b, y)} [ (1 - y) log P[a > b] + y log P[b > a] ],   P from the Bradley-Terry model,

    with ``y = 0.5`` giving the soft target ``[0.5, 0.5]``. Members are trained on their own shuffled
    (optionally bootstrap-resampled) minibatches but in one batched pass (see :class:`BatchedMLP`).

    Inputs are normalised with the mean and std of the training transitions (computed at the first
    :meth:`fit` and kept thereafter unless ``renormalize=True``), saved with the model.

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
            reward there. ``fit(..., renormalize=True)`` recomputes the statistics from the current data.

    The model reads ``concat(obs, act)``. :meth:`save` stores weights, config, normalisation, the Adam
    state and the RNG states, so a loaded model continues training exactly as the saved one would.
    """

    out_per_member = 1

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
        if activation not in _ACTIVATIONS:
            raise ValueError(f"unknown activation '{activation}'; choose one of {sorted(_ACTIVATIONS)}")
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
        and a per-row regulariser ``[M, B]`` (``None`` here; the Gaussian model returns its KL term)."""
        out = self.net(self._normalise(x))
        return self._squash(out[..., 0]), None

    def _segment_inputs(self, seg: Segments) -> np.ndarray:
        return np.concatenate([seg.obs, seg.act], axis=-1)

    def _check_segments(self, seg: Any, name: str) -> Segments:
        if not isinstance(seg, Segments):
            raise TypeError(f"{name} must be a pbrl Segments batch, got {type(seg).__name__}")
        if seg.obs_dim != self.obs_dim or seg.act_dim != self.act_dim:
            raise ValueError(
                f"{name} has obs_dim={seg.obs_dim}, act_dim={seg.act_dim} but this reward model expects "
                f"obs_dim={self.obs_dim}, act_dim={self.act_dim}; build the model for this environment"
            )
        return seg

    # ------------------------------------------------------------------ training
    def fit(
        self,
        dataset: PreferenceDataset,
        epochs: int = 200,
        batch_size: int = 128,
        early_stop_accuracy: float | None = 0.97,
        val_fraction: float = 0.0,
        unlabelled: tuple[Segments, Segments] | None = None,
        crop_range: int = 0,
        threshold_u: float = 0.99,
        lambda_u: float = 1.0,
        progress: bool = False,
        renormalize: bool = False,
        unlabelled_ratio: int = 1,
    ) -> dict[str, Any]:
        """Train every member on ``dataset`` with the Bradley-Terry cross-entropy (one batched pass).

        Each epoch, member m visits the training pairs in its own random order (with ``bootstrap``, a
        resample with replacement of the same size), in minibatches of ``batch_size``; the M minibatches
        go through the network together. Training stops after ``epochs`` epochs, or earlier once the
        mean training accuracy of the members over an epoch reaches ``early_stop_accuracy`` (B-Pref's
        rule; ``None`` disables it).

        SURF options (Park et al., "SURF: Semi-supervised reward learning with data augmentation",
        ICLR 2022):

        * ``crop_range > 0``: temporal data augmentation (SURF, "temporal cropping"). For every labelled pair in a
          minibatch, a crop length ``H'`` is drawn uniformly from ``[H - 2 * crop_range, H]`` (i.e.
          ``H_0 +/- crop_range`` around ``H_0 = H - crop_range``) and each of the two segments is cropped
          to ``H'`` consecutive steps at its own random start; the label is kept. (SURF samples segments
          of ``H_0 + 2 * crop_range`` steps and crops to ``H_0 +/- crop_range``; pbrl keeps the stored
          length ``H`` and lets the longest crop be the whole segment.)
        * ``unlabelled=(a_u, b_u)``: pseudo-labelling (SURF, "semi-supervised reward learning"). Each step
          also draws ``unlabelled_ratio`` x ``batch_size`` unlabelled pairs per member (SURF's ``mu``);
          each member labels them with its own prediction ``y_hat = 1[P(b > a) > 0.5]``, and pairs whose
          confidence ``max(P, 1 - P) >= threshold_u`` add ``lambda_u`` times their cross-entropy to the
          loss: ``L = L_CE(labelled) + lambda_u * mean(1[conf >= threshold_u] * L_CE(y_hat))``.

        Args:
            dataset: labelled pairs (label 1.0 = b preferred, 0.5 = equal).
            epochs: maximum number of epochs (default 200).
            batch_size: pairs per member per step (default 128).
            early_stop_accuracy: stop when mean member train accuracy >= this (default 0.97).
            val_fraction: fraction of pairs held out (seeded) for ``val_loss`` / ``val_accuracy``.
            unlabelled, crop_range, threshold_u, lambda_u, unlabelled_ratio: SURF options, see above
                (defaults 0.99, 1.0 and 1; SURF used ``unlabelled_ratio=4``).
            progress: show a tqdm bar over epochs.
            renormalize: recompute the input normalisation from this dataset even if already set.

        Returns:
            dict with ``loss`` (mean over members, last epoch), ``accuracy`` (mean member train accuracy,
            last epoch), ``member_loss`` / ``member_accuracy`` (lists of M), ``epochs`` (run), ``history``
            (per-epoch mean loss and accuracy), ``n_train``, and ``val_loss`` / ``val_accuracy`` /
            ``val_member_accuracy`` when ``val_fraction > 0``; ``pseudo_fraction`` with ``unlabelled``.
        """
        # ---- validation before any work
        if not isinstance(dataset, PreferenceDataset):
            raise TypeError(f"dataset must be a PreferenceDataset, got {type(dataset).__name__}")
        if len(dataset) == 0:
            raise ValueError("cannot fit a reward model on an empty PreferenceDataset; collect labels first")
        self._check_segments(dataset.a, "dataset.a")
        self._check_segments(dataset.b, "dataset.b")
        if not isinstance(epochs, (int, np.integer)) or epochs < 1:
            raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
        H = dataset.segment_length
        if not isinstance(crop_range, (int, np.integer)) or crop_range < 0 or H - 2 * crop_range < 1:
            raise ValueError(
                f"crop_range must be an integer in [0, {(H - 1) // 2}] for segments of length {H}, got {crop_range!r}"
            )
        if not 0.5 <= threshold_u <= 1.0:
            raise ValueError(f"threshold_u must be in [0.5, 1], got {threshold_u}")
        if lambda_u < 0:
            raise ValueError(f"lambda_u must be >= 0, got {lambda_u}")
        if not isinstance(unlabelled_ratio, (int, np.integer)) or unlabelled_ratio < 1:
            raise ValueError(f"unlabelled_ratio must be a positive integer, got {unlabelled_ratio!r}")
        if early_stop_accuracy is not None and not 0.0 < early_stop_accuracy <= 1.0:
            raise ValueError(f"early_stop_accuracy must be in (0, 1] or None, got {early_stop_accuracy}")
        xu = None
        if unlabelled is not None:
            if not (isinstance(unlabelled, (tuple, list)) and len(unlabelled) == 2):
                raise TypeError("unlabelled must be a tuple (a, b) of Segments")
            ua = self._check_segments(unlabelled[0], "unlabelled[0]")
            ub = self._check_segments(unlabelled[1], "unlabelled[1]")
            if len(ua) != len(ub) or ua.length != H or ub.length != H:
                raise ValueError(
                    f"unlabelled segments must be equal in number and of length {H}, got "
                    f"{len(ua)}x{ua.length} and {len(ub)}x{ub.length}"
                )
            if len(ua):
                xu = torch.as_tensor(
                    np.stack([self._segment_inputs(ua), self._segment_inputs(ub)], axis=1), device=self.device
                )  # [Nu, 2, H, in]

        train, val = dataset, None
        if val_fraction > 0:
            val, train = dataset.split(val_fraction, seed=self.rng)
            if len(train) == 0:
                raise ValueError(f"val_fraction={val_fraction} leaves no training pairs out of {len(dataset)}")
            if len(val) == 0:
                val = None

        x = torch.as_tensor(
            np.stack([self._segment_inputs(train.a), self._segment_inputs(train.b)], axis=1), device=self.device
        )  # [N, 2, H, in]
        y = torch.as_tensor(train.label, device=self.device)
        N = len(train)
        if self.normalize and (renormalize or not self.fitted_normalizer):
            flat = x.reshape(-1, x.shape[-1]).double()
            self.in_mean = flat.mean(0).float()
            std = flat.std(0, unbiased=False).float()
            # a feature constant in the training data is only centred, never blown up by a tiny std
            self.in_std = torch.where(std < 1e-6, torch.ones_like(std), std)
            self.fitted_normalizer = True

        M = self.n_members
        bs = min(int(batch_size), N)
        n_batches = math.ceil(N / bs)
        history: dict[str, list[float]] = {"loss": [], "accuracy": []}
        member_loss = torch.zeros(M)
        member_acc = torch.zeros(M)
        pseudo_used = pseudo_seen = 0.0
        self.net.train()
        bar = tqdm(range(int(epochs)), disable=not progress, desc="reward model", unit="epoch")
        n_run = 0
        for _ in bar:
            n_run += 1
            if self.bootstrap:
                order = self.rng.integers(0, N, size=(M, N))
            else:
                order = np.argsort(self.rng.random((M, N)), axis=1)
            order_t = torch.as_tensor(order, device=self.device)
            loss_sum = torch.zeros(M, device=self.device)
            correct_sum = torch.zeros(M, device=self.device)
            decided_sum = torch.zeros(M, device=self.device)
            for bi in range(n_batches):
                idx = order_t[:, bi * bs : (bi + 1) * bs]  # [M, B]
                xb = x[idx]  # [M, B, 2, H, in]
                yb = y[idx]  # [M, B]
                mask = None
                if crop_range > 0:
                    mask = self._crop_mask(idx.shape, H, crop_range)
                logits, kl = self._pair_logits(xb, mask, sample=True)  # [M, B, 2]
                ce = _soft_ce(logits, yb)  # [M, B]
                loss_m = ce.mean(dim=1)  # [M]
                loss = loss_m.sum() + kl
                if xu is not None and lambda_u > 0:
                    ushape = (M, idx.shape[1] * int(unlabelled_ratio))
                    uidx = torch.as_tensor(self.rng.integers(0, len(xu), size=ushape), device=self.device)
                    umask = self._crop_mask(uidx.shape, H, crop_range) if crop_range > 0 else None
                    ulogits, _ = self._pair_logits(xu[uidx], umask, sample=False)
                    with torch.no_grad():
                        p_b = torch.softmax(ulogits, dim=-1)[..., 1]
                        conf = torch.maximum(p_b, 1 - p_b)
                        keep = (conf >= threshold_u).float()
                        pseudo = (p_b > 0.5).float()
                    uce = _soft_ce(ulogits, pseudo)
                    loss = loss + lambda_u * (keep * uce).mean(dim=1).sum()
                    pseudo_used += float(keep.sum())
                    pseudo_seen += float(keep.numel())
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                with torch.no_grad():
                    bsz = idx.shape[1]
                    loss_sum += loss_m.detach() * bsz
                    decided = yb != 0.5
                    pred_b = logits[..., 1] > logits[..., 0]
                    correct_sum += ((pred_b == (yb > 0.5)) & decided).sum(1).float()
                    decided_sum += decided.sum(1).float()
            member_loss = (loss_sum / N).cpu()
            member_acc = torch.where(decided_sum > 0, correct_sum / decided_sum.clamp_min(1), torch.nan).cpu()
            mean_acc = float(member_acc.mean())
            history["loss"].append(float(member_loss.mean()))
            history["accuracy"].append(mean_acc)
            if progress:
                bar.set_postfix(loss=f"{history['loss'][-1]:.4f}", acc=f"{mean_acc:.3f}")
            if early_stop_accuracy is not None and np.isfinite(mean_acc) and mean_acc >= early_stop_accuracy:
                break
        bar.close()
        self.net.eval()
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
            v = self._evaluate_pairs(val.a, val.b, val.label)
            out.update({"val_loss": v["loss"], "val_accuracy": v["accuracy"], "val_member_accuracy": v["member_accuracy"]})
        if xu is not None:
            out["pseudo_fraction"] = pseudo_used / max(pseudo_seen, 1.0)
        return out

    def _crop_mask(self, shape: tuple[int, int], H: int, crop_range: int) -> torch.Tensor:
        """SURF temporal crop as a 0/1 mask ``[M, B, 2, H]``: common length per pair, independent starts."""
        M, B = shape
        lo = H - 2 * crop_range
        length = self.rng.integers(lo, H + 1, size=(M, B, 1))
        start = self.rng.integers(0, H - length + 1, size=(M, B, 2))
        t = np.arange(H)
        mask = (t >= start[..., None]) & (t < (start + length)[..., None])
        return torch.as_tensor(mask, dtype=torch.float32, device=self.device)

    def _pair_logits(
        self, xb: torch.Tensor, mask: torch.Tensor | None = None, sample: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``xb [M, B, 2, H, in]`` -> segment returns ``[M, B, 2]`` (the BT logits) and the extra loss term."""
        M, B, two, H, d = xb.shape
        flat = xb.reshape(M, B * two * H, d)
        step = max(1, int(self.train_chunk))
        parts = [self._rewards(flat[:, s : s + step], sample=sample) for s in range(0, flat.shape[1], step)]
        r = torch.cat([p[0] for p in parts], dim=1).reshape(M, B, two, H)
        if mask is not None:
            r = r * mask
        if parts[0][1] is None:
            extra = torch.zeros((), device=self.device)
        else:
            extra = torch.cat([p[1] for p in parts], dim=1).mean(dim=1).sum()
        return r.sum(-1), extra

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
        loss = _soft_ce(logits, lab).mean(dim=1)
        correct, n = _accuracy(logits, lab)
        acc = (correct / n) if n > 0 else torch.full((self.n_members,), float("nan"))
        return {"loss": float(loss.mean()), "accuracy": float(acc.mean()), "member_accuracy": acc.tolist()}

    # ------------------------------------------------------------------ persistence
    def state(self) -> dict[str, Any]:
        """Everything :meth:`load` needs: class, config, weights, normalisation, Adam and RNG states."""
        return {
            "format": _FORMAT,
            "version": _FORMAT_VERSION,
            "class": type(self).__name__,
            "config": self.config(),
            "weights": {k: v.detach().cpu() for k, v in self.net.state_dict().items()},
            "in_mean": self.in_mean.cpu(),
            "in_std": self.in_std.cpu(),
            "fitted_normalizer": self.fitted_normalizer,
            "optimizer": self.optimizer.state_dict(),
            "rng": self.rng.bit_generator.state,
            "torch_rng": self.torch_gen.get_state(),
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write weights, config and input normalisation atomically to ``path`` (a torch file)."""
        path = Path(path)
        with atomic_write(path) as tmp:
            torch.save(self.state(), tmp)
        return path

    @classmethod
    def from_state(cls, state: dict[str, Any], device: str = "cpu") -> RewardEnsemble:
        """Rebuild a model from :meth:`state` (the subclass recorded in the state is used)."""
        if not isinstance(state, dict) or state.get("format") != _FORMAT:
            raise ValueError("not a pbrl reward model state (missing format marker)")
        if int(state.get("version", -1)) > _FORMAT_VERSION:
            raise ValueError(f"reward model format version {state['version']} is newer than this pbrl reads")
        klass = _CLASSES.get(state.get("class"))
        if klass is None:
            raise ValueError(f"unknown reward model class {state.get('class')!r}; known: {sorted(_CLASSES)}")
        if cls is not RewardEnsemble and not issubclass(klass, cls):
            raise ValueError(f"the file holds a {klass.__name__}, not a {cls.__name__}")
        cfg = dict(state["config"])
        cfg["hidden"] = tuple(cfg["hidden"])
        model = klass(**cfg, device=device)
        model.load_state(state)
        return model

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore, in place, the weights, normalisation, Adam and RNG states of :meth:`state`
        (the configuration must match; used by :meth:`from_state` and by run checkpoints)."""
        self.net.load_state_dict(state["weights"])
        self.in_mean = state["in_mean"].to(self.device)
        self.in_std = state["in_std"].to(self.device)
        self.fitted_normalizer = bool(state["fitted_normalizer"])
        if "optimizer" in state:
            self.optimizer.load_state_dict(state["optimizer"])
        if "rng" in state:
            self.rng.bit_generator.state = state["rng"]
        if "torch_rng" in state:
            self.torch_gen.set_state(state["torch_rng"])
        self.net.eval()

    @classmethod
    def load(cls, path: str | os.PathLike, device: str = "cpu") -> RewardEnsemble:
        """Load a model written by :meth:`save` (works for any pbrl reward model class)."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no reward model file at {path}")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - torch raises many types for bad files
            raise ValueError(f"{path} is not a readable pbrl reward model file ({e})") from None
        try:
            return cls.from_state(state, device=device)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None


# ---------------------------------------------------------------------------------------- Gaussian model
class GaussianRewardModel(RewardEnsemble):
    """Robust reward learning with a Gaussian reward: the RRL component of PEARL (Liu, Du, Bai, Lyu & Li,
    "PEARL: Zero-shot Cross-task Preference Alignment and Robust Reward Learning for Robotic
    Manipulation", arXiv:2306.03615, section "Robust Reward Learning").

    Each member outputs a mean ``mu(s, a)`` and a log-variance ``log sigma^2(s, a)``. Inside the
    Bradley-Terry loss, per-step rewards are sampled with the reparameterisation trick,
    ``r = mu + sigma * eps``, ``eps ~ N(0, 1)``, and the loss adds a KL regulariser to a unit Gaussian:

        L = L_BT(r_sampled) + kl_weight * E_{(s,a)} [ KL( N(mu, sigma^2) || N(0, 1) ) ],
        KL = 0.5 * (mu^2 + sigma^2 - log sigma^2 - 1),

    which keeps the learned rewards on a bounded scale and lets ambiguous transitions keep a large
    variance instead of over-fitting noisy labels. ``predict`` returns the mean (over members of
    ``mu``); ``std`` returns the learned uncertainty, ``sqrt(mean_m sigma_m^2 + var_m mu_m)`` (the std
    of the mixture of the members' Gaussians; with one member, the learned sigma).

    The mean head uses the configured ``output`` squashing (``tanh`` by default); the log-variance is
    clamped to ``[log_var_min, log_var_max]``.

    Args: as :class:`RewardEnsemble`, plus ``kl_weight`` (default 1e-3), ``log_var_min`` (-10),
    ``log_var_max`` (2).
    """

    out_per_member = 2

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


_CLASSES: dict[str, type[RewardEnsemble]] = {
    "RewardEnsemble": RewardEnsemble,
    "GaussianRewardModel": GaussianRewardModel,
}


def load_reward_model(path: str | os.PathLike, device: str = "cpu") -> RewardEnsemble:
    """Load any pbrl reward model saved with ``.save(path)``."""
    return RewardEnsemble.load(path, device=device)


# ---------------------------------------------------------------------------------------- metrics
def evaluate_reward_model(model: RewardEnsemble, test: PreferenceDataset) -> dict[str, float]:
    """Metrics of a learned reward on held-out labelled pairs.

    Returns a dict with

    * ``label_accuracy``: fraction of non-tied test labels whose preferred segment has the higher
      mean-over-members predicted return;
    * ``pearson``: Pearson correlation between predicted (mean) and true per-step reward over every
      transition of the test segments (``nan`` if the true reward is constant, e.g. imported data
      without rewards);
    * ``ordering_agreement``: fraction of test pairs with different true returns that the learned
      return orders the same way as the true return (labels are not used);
    * ``loss``: mean member Bradley-Terry cross-entropy on the labels; ``n_pairs``.
    """
    if not isinstance(test, PreferenceDataset):
        raise TypeError(f"test must be a PreferenceDataset, got {type(test).__name__}")
    if len(test) == 0:
        raise ValueError("cannot evaluate on an empty PreferenceDataset")
    model._check_segments(test.a, "test.a")
    rew_a = model.member_rewards(test.a.obs, test.a.act)  # [M, N, H]
    rew_b = model.member_rewards(test.b.obs, test.b.act)
    ra, rb = rew_a.sum(-1), rew_b.sum(-1)  # [M, N]
    la = torch.as_tensor(np.stack([ra, rb], -1))
    lab = torch.as_tensor(test.label)
    loss = float(_soft_ce(la, lab).mean())
    mean_diff = (rb - ra).mean(0)
    decided = test.label != 0.5
    label_acc = float(((mean_diff > 0) == (test.label > 0.5))[decided].mean()) if decided.any() else float("nan")
    true_diff = test.b.returns() - test.a.returns()
    differ = true_diff != 0
    order = float((np.sign(mean_diff) == np.sign(true_diff))[differ].mean()) if differ.any() else float("nan")
    pred = np.concatenate([rew_a.mean(0).ravel(), rew_b.mean(0).ravel()]).astype(np.float64)
    true = np.concatenate([test.a.reward.ravel(), test.b.reward.ravel()]).astype(np.float64)
    if pred.std() > 0 and true.std() > 0:
        pearson = float(np.corrcoef(pred, true)[0, 1])
    else:
        pearson = float("nan")
    return {
        "label_accuracy": label_acc,
        "pearson": pearson,
        "ordering_agreement": order,
        "loss": loss,
        "n_pairs": int(len(test)),
    }
