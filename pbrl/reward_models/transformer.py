"""Preference Transformer: a non-Markovian reward model learned from preferences.

Kim, Park, Shin, Lee, Abbeel & Lee, "Preference Transformer: Modeling Human Preferences using
Transformers for RL", ICLR 2023 (Sec. 4). Two stacked attention stages read a segment
``sigma = ((s_1, a_1), ..., (s_H, a_H))``:

1. A causal (GPT-style) transformer over the tokens ``s_1, a_1, s_2, a_2, ...`` (each step's state and
   action embedded by its own linear layer, plus a learned embedding of the step's position in the
   window). Its output at step t, ``x_t`` (read at the ``a_t`` token), has seen ``(s_1..s_t, a_1..a_t)``
   only.
2. The preference-attention layer (bidirectional, one head): a linear map of ``x_t`` gives a query
   ``q_t``, a key ``k_t`` and a scalar per-step reward ``r_t`` (the value). With
   ``A_it = softmax_t(<q_i, k_t> / sqrt(d))``, the convex combinations ``z_i = sum_t A_it r_t`` (Eq. 4)
   are averaged into the segment's score (Eq. 5)

       S(sigma) = (1/H) sum_i z_i = sum_t w_t r_t,   w_t = (1/H) sum_i A_it,   sum_t w_t = 1,

   so the score is a weighted sum of non-Markovian per-step rewards.

Preferences follow the Bradley-Terry model on the scores (Eq. 3): ``P[b > a] = sigmoid(S(b) - S(a))``,
trained with the cross-entropy against the label (soft target 0.5 for equal pairs).

Reading a per-step reward out (``predict``): the per-step reward is ``r_t`` of a window, which depends
on the window's steps up to t and on nothing after it (causality), and not on the attention weights
(these only aggregate a whole segment). ``predict(obs [N, H, obs_dim], act [N, H, act_dim])`` returns
``r_t`` for every position of every window, ``[N, H]``. To relabel a flat offline dataset for IQL,
:meth:`PreferenceTransformer.relabel` follows the authors' code (``reward_from_preference_transformer``
with ``label_mode="last"``): the reward of step t is ``r`` at the last position of the window of
``context_length`` steps that ends at t; the first steps of an episode, with less history, are read at
their own position of the episode's first window (identical, by causality, to the authors' left-padded,
attention-masked window).

Label convention (pbrl-wide): ``1.0`` = ``b`` preferred, ``0.0`` = ``a`` preferred, ``0.5`` = equal.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from pbrl.preferences import PreferenceDataset
from pbrl.reward_models.persistence import SavedRewardModel, check_segments, check_state
from pbrl.reward_models.training import soft_cross_entropy
from pbrl.reward_models.transformer_net import PTNetwork, relabel_windows
from pbrl.segments import Segments

__all__ = ["PreferenceTransformer", "SIZES"]


#: Named sizes. ``"small"`` is pbrl's CPU default; ``"paper"`` the authors' (README command of
#: github.com/csmile-1006/PreferenceTransformer: 1 layer, 4 heads, embedding 256; their config's
#: preference-attention width 256, dropout 0.1, AdamW lr 1e-4 with a warm-up/cosine schedule peaking at
#: 10 x lr, batch 256, 10,000 epochs, segments of 100 steps).
SIZES: dict[str, dict[str, Any]] = {
    "small": dict(
        embed_dim=64, n_layers=1, n_heads=1, pref_attn_dim=64, dropout=0.1, lr=3e-4, weight_decay=1e-4,
        lr_schedule="constant", epochs=100, batch_size=64,
    ),
    "paper": dict(
        embed_dim=256, n_layers=1, n_heads=4, pref_attn_dim=256, dropout=0.1, lr=1e-4, weight_decay=1e-4,
        lr_schedule="warmup_cosine", epochs=10_000, batch_size=256,
    ),
}
_SCHEDULES = ("constant", "warmup_cosine")


# ---------------------------------------------------------------------------------------- helpers
def _numeric(name: str, x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise TypeError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    return arr.astype(np.float32, copy=False)


# ---------------------------------------------------------------------------------------- the model
class PreferenceTransformer(SavedRewardModel):
    """Preference Transformer reward model (Kim et al., ICLR 2023): a causal transformer over a segment's
    (state, action) tokens, then a preference-attention layer scoring the segment as ``sum_t w_t r_t``
    (see the module docstring for the equations and for how per-step rewards are read out).

    Args:
        obs_dim, act_dim: observation / action width.
        size: ``"small"`` (default, CPU-sized: 1 layer, 1 head, embedding 64) or ``"paper"`` (1 layer,
            4 heads, embedding 256, AdamW 1e-4 with warm-up + cosine, batch 256, 10,000 epochs); any
            argument below given explicitly overrides the size's value. See :data:`SIZES`.
        embed_dim: token embedding width (divisible by ``n_heads``).
        n_layers: causal transformer blocks.
        n_heads: heads of the causal self-attention (the preference attention has one, as in the paper).
        pref_attn_dim: query / key width of the preference attention.
        dropout: dropout of embeddings, attention and residual branches (0.1).
        lr: AdamW learning rate; with ``lr_schedule="warmup_cosine"`` the authors' schedule (from ``lr``
            up to ``10 * lr`` over the first 10 % of a ``fit`` call's steps, cosine back down to ``lr``).
        weight_decay: AdamW weight decay (1e-4, optax's default that the authors ran).
        lr_schedule: ``"constant"`` or ``"warmup_cosine"``.
        epochs, batch_size: the defaults of :meth:`fit`.
        max_length: the longest window the model reads (size of the position embedding, default 1000).
        context_length: window length used by :meth:`relabel`; None (default) takes the segment length of
            the first :meth:`fit`.
        normalize: standardise inputs with the training segments' mean / std (default True).
        seed: seeds the initialisation, the minibatch order, the validation split and dropout.
        device: torch device (CPU by default).

    The model is deterministic for a seed; :meth:`save` stores config, weights, normalisation, the AdamW
    state and the RNG states, so a loaded model predicts identically and continues training exactly as
    the saved one would.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        size: str = "small",
        embed_dim: int | None = None,
        n_layers: int | None = None,
        n_heads: int | None = None,
        pref_attn_dim: int | None = None,
        dropout: float | None = None,
        lr: float | None = None,
        weight_decay: float | None = None,
        lr_schedule: str | None = None,
        epochs: int | None = None,
        batch_size: int | None = None,
        max_length: int = 1000,
        context_length: int | None = None,
        normalize: bool = True,
        seed: int = 0,
        device: str = "cpu",
    ):
        if size not in SIZES:
            raise ValueError(f"unknown size '{size}'; choose one of {sorted(SIZES)}")
        given = dict(embed_dim=embed_dim, n_layers=n_layers, n_heads=n_heads, pref_attn_dim=pref_attn_dim,
                     dropout=dropout, lr=lr, weight_decay=weight_decay, lr_schedule=lr_schedule, epochs=epochs,
                     batch_size=batch_size)
        hp = {k: (SIZES[size][k] if v is None else v) for k, v in given.items()}
        ints = dict(obs_dim=obs_dim, act_dim=act_dim, embed_dim=hp["embed_dim"], n_layers=hp["n_layers"],
                    n_heads=hp["n_heads"], pref_attn_dim=hp["pref_attn_dim"], epochs=hp["epochs"],
                    batch_size=hp["batch_size"], max_length=max_length)
        if context_length is not None:
            ints["context_length"] = context_length
        for name, v in ints.items():
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if hp["embed_dim"] % hp["n_heads"]:
            raise ValueError(f"embed_dim ({hp['embed_dim']}) must be divisible by n_heads ({hp['n_heads']})")
        if context_length is not None and context_length > max_length:
            raise ValueError(f"context_length ({context_length}) must be <= max_length ({max_length})")
        if not 0.0 <= hp["dropout"] < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {hp['dropout']}")
        if not hp["lr"] > 0:
            raise ValueError(f"lr must be > 0, got {hp['lr']}")
        if not hp["weight_decay"] >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {hp['weight_decay']}")
        if hp["lr_schedule"] not in _SCHEDULES:
            raise ValueError(f"unknown lr_schedule '{hp['lr_schedule']}'; choose one of {_SCHEDULES}")
        self.obs_dim, self.act_dim, self.size = int(obs_dim), int(act_dim), size
        self.embed_dim, self.n_layers, self.n_heads = int(hp["embed_dim"]), int(hp["n_layers"]), int(hp["n_heads"])
        self.pref_attn_dim, self.dropout = int(hp["pref_attn_dim"]), float(hp["dropout"])
        self.lr, self.weight_decay, self.lr_schedule = float(hp["lr"]), float(hp["weight_decay"]), hp["lr_schedule"]
        self.epochs, self.batch_size = int(hp["epochs"]), int(hp["batch_size"])
        self.max_length = int(max_length)
        self.context_length = None if context_length is None else int(context_length)
        self.normalize, self.seed, self.device = bool(normalize), int(seed), torch.device(device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.net = PTNetwork(self.obs_dim, self.act_dim, self.embed_dim, self.n_layers, self.n_heads,
                                 self.pref_attn_dim, self.max_length, self.dropout).to(self.device)
        self.net.eval()
        in_dim = self.obs_dim + self.act_dim
        self.in_mean = torch.zeros(in_dim, device=self.device)
        self.in_std = torch.ones(in_dim, device=self.device)
        self.fitted_normalizer = False
        self.optimizer = torch.optim.AdamW(self.net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        self.rng = np.random.default_rng(self.seed)
        self.torch_gen = torch.Generator(device=self.device).manual_seed(self.seed + 1)
        self.predict_chunk = 1024  # windows per forward call in predict / relabel

    @staticmethod
    def paper_config() -> dict[str, Any]:
        """The paper's sizes as constructor arguments: ``PreferenceTransformer(o, a, **paper_config())``
        equals ``PreferenceTransformer(o, a, size="paper")``."""
        return dict(SIZES["paper"])

    def config(self) -> dict[str, Any]:
        """Constructor arguments (JSON-able), enough to rebuild the model."""
        return {
            "obs_dim": self.obs_dim, "act_dim": self.act_dim, "size": self.size, "embed_dim": self.embed_dim,
            "n_layers": self.n_layers, "n_heads": self.n_heads, "pref_attn_dim": self.pref_attn_dim,
            "dropout": self.dropout, "lr": self.lr, "weight_decay": self.weight_decay,
            "lr_schedule": self.lr_schedule, "epochs": self.epochs, "batch_size": self.batch_size,
            "max_length": self.max_length, "context_length": self.context_length, "normalize": self.normalize,
            "seed": self.seed,
        }

    def __repr__(self) -> str:
        return (f"PreferenceTransformer(obs_dim={self.obs_dim}, act_dim={self.act_dim}, embed_dim={self.embed_dim}, "
                f"n_layers={self.n_layers}, n_heads={self.n_heads}, context_length={self.context_length})")

    # ------------------------------------------------------------------ inputs
    def _check_segments(self, seg: Any, name: str) -> Segments:
        check_segments(seg, name, self.obs_dim, self.act_dim)
        if seg.length > self.max_length:
            raise ValueError(f"{name} has segments of {seg.length} steps, longer than max_length={self.max_length}; "
                             "build the model with a larger max_length")
        return seg

    def _check_windows(self, obs: Any, act: Any) -> tuple[np.ndarray, np.ndarray]:
        obs, act = _numeric("obs", obs), _numeric("act", act)
        if obs.ndim != 3 or obs.shape[-1] != self.obs_dim or act.ndim != 3 or act.shape[-1] != self.act_dim:
            raise ValueError(
                f"obs and act must be windows [N, H, {self.obs_dim}] and [N, H, {self.act_dim}], got {obs.shape} and "
                f"{act.shape}; a flat dataset [T, dim] is relabelled with PreferenceTransformer.relabel(dataset)"
            )
        if obs.shape[:2] != act.shape[:2]:
            raise ValueError(f"obs and act must share [N, H], got {obs.shape} and {act.shape}")
        if not 1 <= obs.shape[1] <= self.max_length:
            raise ValueError(f"windows must have 1 to max_length={self.max_length} steps, got {obs.shape[1]}")
        if not (np.all(np.isfinite(obs)) and np.all(np.isfinite(act))):
            raise ValueError("obs or act contains NaN or inf values; clean the inputs before asking for rewards")
        return obs, act

    def _tensors(self, obs: np.ndarray, act: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw NumPy ``[..., H, dim]`` -> normalised torch obs and act."""
        o = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
        a = torch.as_tensor(act, dtype=torch.float32, device=self.device)
        d = self.obs_dim
        return (o - self.in_mean[:d]) / self.in_std[:d], (a - self.in_mean[d:]) / self.in_std[d:]

    # ------------------------------------------------------------------ training
    def fit(
        self,
        dataset: PreferenceDataset,
        epochs: int | None = None,
        batch_size: int | None = None,
        val_fraction: float = 0.0,
        early_stop_accuracy: float | None = None,
        progress: bool = False,
        renormalize: bool = False,
        extra_loss: Callable[[PTNetwork, int], torch.Tensor] | None = None,
    ) -> dict[str, Any]:
        """Train on labelled pairs with the Bradley-Terry cross-entropy on the scores ``S = sum_t w_t r_t``.

        Each epoch visits the training pairs in a seeded random order in minibatches of ``batch_size``
        pairs (AdamW; dropout on). The first call fixes the input normalisation (unless ``renormalize``)
        and, if not given at construction, ``context_length`` (the segment length).

        Args:
            dataset: labelled pairs (label 1.0 = b preferred, 0.5 = equal: soft target).
            epochs: passes over the pairs (default: the size's, 100 for ``"small"``).
            batch_size: pairs per step (default: the size's, 64 for ``"small"``).
            val_fraction: fraction of pairs held out (seeded) for ``val_loss`` / ``val_accuracy``.
            early_stop_accuracy: stop once an epoch's training accuracy reaches this (None: never).
            progress: show a tqdm bar over epochs.
            renormalize: recompute the input normalisation from this dataset.
            extra_loss: a term added to every minibatch's loss: ``extra_loss(net, B)`` gets the network (in
                training mode) and the minibatch's number of pairs ``B`` and returns a scalar tensor (e.g.
                DPPO's smoothness term, :func:`pbrl.agents.dppo.smoothness_loss`); None (default): none.

        Returns:
            dict with ``loss`` / ``accuracy`` (last epoch, training pairs; accuracy over non-tied pairs; ``loss``
            is the cross-entropy alone), ``epochs`` (run), ``history`` (per-epoch loss and accuracy, and
            ``extra_loss`` when given), ``n_train``, and ``val_loss`` / ``val_accuracy`` when ``val_fraction > 0``.
        """
        if not isinstance(dataset, PreferenceDataset):
            raise TypeError(f"dataset must be a PreferenceDataset, got {type(dataset).__name__}")
        if len(dataset) == 0:
            raise ValueError("cannot fit a reward model on an empty PreferenceDataset; collect labels first")
        self._check_segments(dataset.a, "dataset.a")
        self._check_segments(dataset.b, "dataset.b")
        epochs = self.epochs if epochs is None else epochs
        batch_size = self.batch_size if batch_size is None else batch_size
        for name, v in (("epochs", epochs), ("batch_size", batch_size)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
        if early_stop_accuracy is not None and not 0.0 < early_stop_accuracy <= 1.0:
            raise ValueError(f"early_stop_accuracy must be in (0, 1] or None, got {early_stop_accuracy}")

        train, val = dataset, None
        if val_fraction > 0:
            val, train = dataset.split(val_fraction, seed=self.rng)
            if len(train) == 0:
                raise ValueError(f"val_fraction={val_fraction} leaves no training pairs out of {len(dataset)}")
            val = val if len(val) else None
        if self.context_length is None:
            self.context_length = int(dataset.segment_length)
        if self.normalize and (renormalize or not self.fitted_normalizer):
            flat = np.concatenate([
                np.concatenate([s.obs, s.act], axis=-1).reshape(-1, self.obs_dim + self.act_dim)
                for s in (train.a, train.b)
            ]).astype(np.float64)
            std = flat.std(0)
            self.in_mean = torch.as_tensor(flat.mean(0), dtype=torch.float32, device=self.device)
            # a feature constant in the training data is only centred, never blown up by a tiny std
            self.in_std = torch.as_tensor(np.where(std < 1e-6, 1.0, std), dtype=torch.float32, device=self.device)
            self.fitted_normalizer = True

        (oa, aa), (ob, ab) = self._tensors(train.a.obs, train.a.act), self._tensors(train.b.obs, train.b.act)
        obs, act = torch.stack([oa, ob], 1), torch.stack([aa, ab], 1)  # [N, 2, H, o], [N, 2, H, a]
        y = torch.as_tensor(train.label, device=self.device)
        N, H = len(train), train.segment_length
        bs = min(int(batch_size), N)
        n_batches = math.ceil(N / bs)
        total, warmup = int(epochs) * n_batches, max(1, int(0.1 * int(epochs) * n_batches))
        history: dict[str, list[float]] = {"loss": [], "accuracy": [], **({"extra_loss": []} if extra_loss else {})}
        self.net.train()
        bar = tqdm(range(int(epochs)), disable=not progress, desc="preference transformer", unit="epoch")
        n_run, step = 0, 0
        for _ in bar:
            n_run += 1
            order = torch.as_tensor(self.rng.permutation(N), device=self.device)
            loss_sum = correct = decided = extra_sum = 0.0
            for bi in range(n_batches):
                if self.lr_schedule == "warmup_cosine":
                    for g in self.optimizer.param_groups:
                        g["lr"] = self._scheduled_lr(step, warmup, total)
                idx = order[bi * bs : (bi + 1) * bs]
                B = len(idx)
                out = self.net(obs[idx].reshape(2 * B, H, -1), act[idx].reshape(2 * B, H, -1), self.torch_gen)
                logits = out["score"].reshape(B, 2)
                ce = soft_cross_entropy(logits, y[idx])
                loss = ce.mean()
                if extra_loss is not None:
                    extra = extra_loss(self.net, B)
                    loss = loss + extra
                    extra_sum += float(extra.detach()) * B
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                step += 1
                with torch.no_grad():
                    yb = y[idx]
                    dec = yb != 0.5
                    loss_sum += float(ce.sum())
                    correct += float((((logits[:, 1] > logits[:, 0]) == (yb > 0.5)) & dec).sum())
                    decided += float(dec.sum())
            history["loss"].append(loss_sum / N)
            history["accuracy"].append(correct / decided if decided else float("nan"))
            if extra_loss is not None:
                history["extra_loss"].append(extra_sum / N)
            if progress:
                bar.set_postfix(loss=f"{history['loss'][-1]:.4f}", acc=f"{history['accuracy'][-1]:.3f}")
            acc = history["accuracy"][-1]
            if early_stop_accuracy is not None and np.isfinite(acc) and acc >= early_stop_accuracy:
                break
        bar.close()
        if self.lr_schedule == "warmup_cosine":
            for g in self.optimizer.param_groups:
                g["lr"] = self.lr
        self.net.eval()
        info: dict[str, Any] = {"loss": history["loss"][-1], "accuracy": history["accuracy"][-1], "epochs": n_run,
                                "history": history, "n_train": N}
        if val is not None:
            v = self.evaluate_pairs(val)
            info.update(val_loss=v["loss"], val_accuracy=v["accuracy"])
        return info

    def _scheduled_lr(self, step: int, warmup: int, total: int) -> float:
        """The authors' optax ``warmup_cosine_decay_schedule(lr, 10 lr, warmup, total, end=lr)``."""
        peak = 10.0 * self.lr
        if step < warmup:
            return self.lr + (peak - self.lr) * step / warmup
        frac = min(1.0, (step - warmup) / max(1, total - warmup))
        return self.lr + 0.5 * (peak - self.lr) * (1.0 + math.cos(math.pi * frac))

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def _forward_windows(self, obs: np.ndarray, act: np.ndarray, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
        out: dict[str, list[np.ndarray]] = {k: [] for k in keys}
        self.net.eval()
        for s in range(0, len(obs), self.predict_chunk):
            o, a = self._tensors(obs[s : s + self.predict_chunk], act[s : s + self.predict_chunk])
            res = self.net(o, a)
            for k in keys:
                out[k].append(res[k].cpu().numpy())
        if not len(obs):
            return {k: np.zeros((0,) if k == "score" else (0, obs.shape[1]), np.float32) for k in keys}
        return {k: np.concatenate(v) for k, v in out.items()}

    def predict(self, obs, act) -> np.ndarray:
        """Per-step rewards ``r_t`` ``[N, H]`` (float32) of windows ``obs [N, H, obs_dim]``, ``act [N, H, act_dim]``.

        ``r_t`` depends on the window's steps ``1..t`` only (never on later steps) and on t's position in
        the window; it is the reward the paper relabels offline data with (see :meth:`relabel` for a
        flat dataset). Windows may be any length from 1 to ``max_length``.
        """
        obs, act = self._check_windows(obs, act)
        return self._forward_windows(obs, act, ("reward",))["reward"].astype(np.float32)

    def attention_weights(self, obs, act) -> np.ndarray:
        """The preference-attention weights ``w_t`` ``[N, H]`` of windows (each row sums to 1)."""
        obs, act = self._check_windows(obs, act)
        return self._forward_windows(obs, act, ("weight",))["weight"].astype(np.float32)

    def segment_returns(self, seg: Segments) -> np.ndarray:
        """The segments' scores ``S = sum_t w_t r_t`` ``[N]`` (float64): the Bradley-Terry logits.

        (Unlike :class:`~pbrl.reward_models.RewardEnsemble`, one model, so no leading member axis.)"""
        seg = self._check_segments(seg, "segments")
        return self._forward_windows(seg.obs, seg.act, ("score",))["score"].astype(np.float64)

    def preference_probs(self, a: Segments, b: Segments) -> np.ndarray:
        """Bradley-Terry probability that ``b`` is preferred to ``a``, ``[N]`` (float64)."""
        a, b = self._check_segments(a, "a"), self._check_segments(b, "b")
        if len(a) != len(b):
            raise ValueError(f"a and b must hold the same number of segments, got {len(a)} and {len(b)}")
        return 1.0 / (1.0 + np.exp(-(self.segment_returns(b) - self.segment_returns(a))))

    def evaluate_pairs(self, prefs: PreferenceDataset) -> dict[str, float]:
        """Mean Bradley-Terry loss and accuracy (over non-tied labels) of the model on labelled pairs."""
        if not isinstance(prefs, PreferenceDataset) or len(prefs) == 0:
            raise ValueError("evaluate_pairs needs a non-empty PreferenceDataset")
        sa, sb = self.segment_returns(prefs.a), self.segment_returns(prefs.b)
        loss = float(soft_cross_entropy(torch.as_tensor(np.stack([sa, sb], -1)), torch.as_tensor(prefs.label, dtype=torch.float64)).mean())
        dec = prefs.label != 0.5
        acc = float(((sb > sa) == (prefs.label > 0.5))[dec].mean()) if dec.any() else float("nan")
        return {"loss": loss, "accuracy": acc, "n_pairs": int(len(prefs))}

    def relabel(self, dataset: Any, context_length: int | None = None, progress: bool = False) -> np.ndarray:
        """Per-step rewards ``[T]`` (float32) for a flat offline dataset, by sliding windows (paper, IQL).

        ``dataset`` is an :class:`~pbrl.envs.datasets.OfflineDataset` (or anything with ``observations
        [T, obs_dim]``, ``actions [T, act_dim]`` and ``episode_bounds``). With ``H = context_length``
        (default: the model's, i.e. the training segment length), step t of an episode gets ``r`` at
        the last position of the window of the H steps ending at t; a step with fewer than H - 1
        predecessors in its episode gets ``r`` at its own position of the episode's first window. Windows
        never cross an episode boundary (see :func:`relabel_windows`). The cost is one forward pass of an
        H-step window per step of the dataset (about T windows), in chunks of ``predict_chunk`` windows.
        """
        H = context_length if context_length is not None else self.context_length
        if H is None:
            raise ValueError("context_length is unknown: fit the model first or pass context_length")
        if isinstance(H, bool) or not isinstance(H, (int, np.integer)) or not 1 <= H <= self.max_length:
            raise ValueError(f"context_length must be an integer in [1, {self.max_length}], got {H!r}")
        if not all(hasattr(dataset, k) for k in ("observations", "actions", "episode_bounds")):
            raise TypeError(f"relabel needs an OfflineDataset (observations, actions, episode_bounds), got {type(dataset).__name__}")
        obs = _numeric("observations", dataset.observations)
        act = _numeric("actions", dataset.actions)
        if obs.ndim != 2 or obs.shape[1] != self.obs_dim or act.ndim != 2 or act.shape != (len(obs), self.act_dim):
            raise ValueError(f"dataset must hold observations [T, {self.obs_dim}] and actions [T, {self.act_dim}], "
                             f"got {obs.shape} and {act.shape}")
        starts, ends = dataset.episode_bounds
        plan = relabel_windows(starts, ends, int(H))
        H, c = int(H), self.predict_chunk
        out = np.zeros(len(obs), np.float32)
        steps = np.arange(H)
        first, first_len, first_end, late = plan["first"], plan["first_len"], plan["first_end"], plan["last"]
        bar = tqdm(total=len(first) + len(late), disable=not progress, desc="relabel", unit="window")
        # each episode's first window gives the rewards of its first min(H, L) steps, at their own positions
        for s in range(0, len(first), c):
            idx = np.minimum(first[s : s + c, None] + steps, first_end[s : s + c, None])  # a short episode
            r = self._forward_windows(obs[idx], act[idx], ("reward",))["reward"]  # repeats its last step
            keep = steps < first_len[s : s + c, None]  # (causal: the repeats never reach a kept position)
            out[idx[keep]] = r[keep]
            bar.update(len(idx))
        # every later step: the last position of the window of the H steps ending at it
        for s in range(0, len(late), c):
            t = late[s : s + c]
            idx = t[:, None] - (H - 1) + steps
            out[t] = self._forward_windows(obs[idx], act[idx], ("reward",))["reward"][:, -1]
            bar.update(len(t))
        bar.close()
        return out

    # ------------------------------------------------------------------ persistence (SavedRewardModel)
    def load_state(self, state: dict[str, Any]) -> None:
        """Restore, in place, what :meth:`state` saved (the configuration must match)."""
        super().load_state(state)
        self.context_length = state["config"].get("context_length", self.context_length)

    @classmethod
    def from_state(cls, state: dict[str, Any], device: str = "cpu") -> PreferenceTransformer:
        """Rebuild a model from :meth:`state`."""
        check_state(state)
        if state.get("class") != cls.__name__:
            raise ValueError(f"the state holds a {state.get('class')}, not a {cls.__name__}")
        model = cls(**state["config"], device=device)
        model.load_state(state)
        return model

