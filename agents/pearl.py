"""PEARL: zero-shot cross-task preference alignment and robust reward learning, then IQL.

Liu, Du, Bai, Lyu & Li, "PEARL: Zero-shot Cross-task Preference Alignment and Robust Reward Learning for
Robotic Manipulation", arXiv:2306.03615 (2023). Preferences labelled on a *source* task are carried
over to an unlabelled *target* task:

1. **Cross-task preference alignment (CPA)**, Sec. 4.1. The source segments ``X = {x_i}`` and target
   segments ``Y = {y_j}`` live in different spaces, so they are aligned by the Gromov-Wasserstein (GW)
   optimal transport problem, which only compares *within-task* distances:

       T* = argmin_{T in Pi(p, q)} sum_{i,k,j,l} (C^X_{ik} - C^Y_{jl})^2 T_{ij} T_{kl},

   with ``C^X_{ik} = d(x_i, x_k)``, ``C^Y_{jl} = d(y_j, y_l)`` (Euclidean distances between standardised,
   flattened segments, each matrix scaled to max 1) and uniform marginals ``p, q``. It is solved with
   POT's ``ot.gromov.gromov_wasserstein`` (conditional gradient).            -> :func:`gw_coupling`
   The preference of a target pair ``(y_j, y_l)`` is then the transport-weighted sum of the source labels

       P(y_j > y_l) = sum_{(i,k)} T*_{ij} T*_{kl} P(x_i > x_k) / sum_{(i,k)} T*_{ij} T*_{kl},

   summed over source pairs ``(i, k)``.                                      -> :func:`transfer_labels`

   *pbrl's addition, not the paper's:* the paper's sum runs over every pair of source segments, i.e. it
   takes the source preference between any two of them as known. A ``PreferenceDataset`` holds only some
   pairs, so by default the missing entries of the source preference
   matrix are completed by a Bradley-Terry reward model fitted on the source labels (labelled pairs keep
   their labels; :func:`complete_source_preferences`, :func:`source_preference_matrix`).
   ``complete_source=False`` lets only the labelled source pairs vote, as the formula above reads.
2. **Robust reward learning (RRL)**, Sec. 4.2: a reward model whose per-step reward is Gaussian
   ``N(mu(s,a), sigma^2(s,a))`` (reparameterised samples inside the Bradley-Terry loss, plus a KL term),
   :class:`pbrl.reward_models.GaussianRewardModel`, is fitted on the transferred labels, so that noisy
   transferred labels are absorbed by the learned variance; its mean relabels the target dataset.
3. Offline RL with IQL on the relabelled target dataset (:class:`pbrl.agents.iql.IQL`).

The transferred labels stay soft end to end, as in the paper: the reward model is fitted on the CPA
probabilities themselves (the Bradley-Terry cross-entropy takes a target ``P(b > a)`` in ``[0, 1]``), which
is what the robust Gaussian reward is there to absorb. They are held in a :class:`TransferredPreferences`
(a ``PreferenceDataset`` whose labels may be any probability; it is never written as human labels).
``label_margin=m`` restores pbrl's former rounding to {0, 0.5, 1} (``P > 0.5 + m`` -> 1, ``P < 0.5 - m`` -> 0,
else 0.5) as an opt-in ablation. PEARL needs **no** target labels; a few (``target_preferences``) are
simply added to the transferred ones (the paper's few-shot setting).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pbrl.agents.iql import MRIQL
from pbrl.envs.datasets import segments_at
from pbrl.extras import require
from pbrl.preferences import PreferenceDataset
from pbrl.reward_models import GaussianRewardModel, RewardEnsemble
from pbrl.segments import Segments

__all__ = [
    "PEARL",
    "TransferredPreferences",
    "source_preference_matrix",
    "complete_source_preferences",
    "segment_features",
    "intra_task_costs",
    "gw_coupling",
    "transfer_labels",
    "cross_task_preference_alignment",
]


# ---------------------------------------------------------------------------------------------- CPA pieces


class TransferredPreferences(PreferenceDataset):
    """Pairs labelled by CPA with *soft* labels: ``label [N]`` = ``P(b preferred)`` in ``[0, 1]``.

    A :class:`~pbrl.preferences.PreferenceDataset` checks that labels are human answers in {0, 0.5, 1};
    transferred labels are probabilities, so this subclass validates ``[0, 1]`` instead. Reward models fit
    it like any other pairs (their Bradley-Terry cross-entropy takes soft targets). It is PEARL's
    intermediate data: save human labels, not these.
    """

    def __init__(self, a: Segments, b: Segments, probs: np.ndarray, metadata: dict | None = None):
        p = np.asarray(probs, dtype=np.float32).reshape(-1)
        if not np.all(np.isfinite(p)) or np.any(p < 0.0) or np.any(p > 1.0):
            raise ValueError("transferred preference probabilities must be finite and in [0, 1]")
        super().__init__(a, b, np.full(len(p), 0.5, np.float32), metadata=metadata)
        self.label = p


def segment_features(seg: Segments) -> np.ndarray:
    """Flattened segments ``[N, H * (obs_dim + act_dim)]``, each feature standardised over the N segments."""
    x = np.concatenate([seg.obs, seg.act], axis=-1).reshape(len(seg), -1).astype(np.float64)
    return (x - x.mean(0)) / (x.std(0) + 1e-8)


def intra_task_costs(features: np.ndarray) -> np.ndarray:
    """Within-task cost matrix ``C [N, N]``: Euclidean distances between rows of ``features [N, D]``,
    divided by their maximum (so that both tasks' costs lie in ``[0, 1]``)."""
    sq = (features**2).sum(1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * features @ features.T, 0.0)
    np.fill_diagonal(d2, 0.0)
    d = np.sqrt(d2)
    m = d.max()
    return d / m if m > 0 else d


def gw_coupling(c_source: np.ndarray, c_target: np.ndarray, max_iter: int = 1000, tol: float = 1e-9) -> np.ndarray:
    """Gromov-Wasserstein optimal transport ``T* [n_s, n_t]`` between two metric spaces given by their cost
    matrices (PEARL Sec. 4.1), uniform marginals, square loss; POT's ``ot.gromov.gromov_wasserstein``.

    Rows of ``T*`` sum to ``1 / n_s``, columns to ``1 / n_t``.
    """
    ot = require("ot", "PEARL's optimal transport")
    ns, nt = len(c_source), len(c_target)
    p, q = np.full(ns, 1.0 / ns), np.full(nt, 1.0 / nt)
    T = ot.gromov.gromov_wasserstein(
        c_source, c_target, p, q, loss_fun="square_loss", max_iter=int(max_iter), tol_rel=tol, tol_abs=tol
    )
    return np.asarray(T, dtype=np.float64)


def source_preference_matrix(
    n: int, source_a: np.ndarray, source_b: np.ndarray, source_label: np.ndarray, completion: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The source task's preferences between its segments as a matrix, with the weights of known entries.

    ``P[i, k]`` = probability that segment ``k`` is preferred to segment ``i``; labelled pairs set
    ``P[a, b] = y`` and ``P[b, a] = 1 - y`` (weight 1). Other entries come from ``completion [n, n]`` (e.g. the
    Bradley-Terry probabilities of a reward model fitted on the source labels) with weight 1, or have
    weight 0 when no completion is given. Returns ``(P [n, n], W [n, n])``.
    """
    if completion is None:
        P, W = np.full((n, n), 0.5), np.zeros((n, n))
    else:
        P, W = np.array(completion, dtype=np.float64), np.ones((n, n))
        np.fill_diagonal(W, 0.0)
    y = np.asarray(source_label, dtype=np.float64)
    P[source_a, source_b], P[source_b, source_a] = y, 1.0 - y
    W[source_a, source_b] = W[source_b, source_a] = 1.0
    return P, W


def transfer_labels(
    T: np.ndarray, P: np.ndarray, W: np.ndarray, target_a: np.ndarray, target_b: np.ndarray
) -> np.ndarray:
    """Transport-weighted target preferences (PEARL Sec. 4.1).

    ``P(t_b > t_a) = sum_{i,k} T[i, t_a] T[k, t_b] W[i, k] P[i, k] / sum_{i,k} T[i, t_a] T[k, t_b] W[i, k]``:
    the source preferences ``P[i, k]`` (``k`` preferred to ``i``) of the source segments that the coupling
    ``T`` maps onto the two target segments. Target pairs that receive no weight get 0.5.

    Args:
        T: ``[n_s, n_t]`` coupling between source and target segments.
        P, W: ``[n_s, n_s]`` source preference matrix and entry weights (:func:`source_preference_matrix`).
        target_a, target_b: ``[M]`` column indices into ``T`` of each target pair's segments.

    Returns:
        ``[M]`` probabilities that the target pair's second segment is preferred.
    """
    A, B = T[:, target_a], T[:, target_b]  # [n_s, M]
    num = np.einsum("im,ik,km->m", A, W * P, B, optimize=True)
    den = np.einsum("im,ik,km->m", A, W, B, optimize=True)
    out = np.full(len(target_a), 0.5)
    ok = den > 1e-300
    out[ok] = num[ok] / den[ok]
    return out


def cross_task_preference_alignment(
    source: PreferenceDataset,
    target_a: Segments,
    target_b: Segments,
    completion: np.ndarray | None = None,
    max_iter: int = 1000,
) -> tuple[np.ndarray, np.ndarray]:
    """CPA end to end: GW between the source segments ``a ++ b`` and the target segments ``a ++ b``, then
    :func:`transfer_labels`. ``completion [2N, 2N]``: optional preferences between all source segments (see
    :func:`source_preference_matrix`). Returns ``(probabilities [M], coupling [2N, 2M])``."""
    if len(target_a) != len(target_b) or len(target_a) == 0:
        raise ValueError(f"target_a and target_b must hold the same positive number of segments, got {len(target_a)}, {len(target_b)}")
    N, M = len(source), len(target_a)
    cs = intra_task_costs(segment_features(Segments.concatenate([source.a, source.b])))
    ct = intra_task_costs(segment_features(Segments.concatenate([target_a, target_b])))
    T = gw_coupling(cs, ct, max_iter=max_iter)
    P, W = source_preference_matrix(2 * N, np.arange(N), N + np.arange(N), source.label, completion)
    probs = transfer_labels(T, P, W, np.arange(M), M + np.arange(M))
    return probs, T


def complete_source_preferences(source: PreferenceDataset, seed: int = 0, epochs: int = 100, **kw: Any) -> np.ndarray:
    """Preferences between *all* ``2N`` source segments (``a ++ b``): a Bradley-Terry
    :class:`~pbrl.reward_models.RewardEnsemble` fitted on the source labels gives each segment a predicted
    return ``R``, and ``P[i, k] = sigmoid(R_k - R_i)``. Returns ``[2N, 2N]``.

    (PEARL's source task has preferences between every pair of its trajectories; a ``PreferenceDataset`` only
    holds some pairs, so the rest are filled in from the source task's own reward model.)
    """
    model = RewardEnsemble(source.a.obs_dim, source.a.act_dim, seed=seed, **kw)
    model.fit(source, epochs=epochs)
    R = model.segment_returns(Segments.concatenate([source.a, source.b])).mean(0).astype(np.float64)
    return 1.0 / (1.0 + np.exp(-(R[None, :] - R[:, None])))


# ---------------------------------------------------------------------------------------------- agent


def _sample_target_pairs(dataset: Any, n: int, length: int, rng: np.random.Generator) -> tuple[Segments, Segments]:
    """``n`` pairs of windows of ``length`` steps, uniform over all windows inside episodes of ``dataset``."""
    starts, ends = dataset.episode_bounds
    n_win = np.maximum(ends - starts + 2 - length, 0)
    if n_win.sum() == 0:
        raise ValueError(
            f"no episode of the target dataset has {length} steps; choose a shorter segment_length for PEARL"
        )
    ep = np.repeat(np.arange(len(starts)), n_win)
    offs = np.arange(n_win.sum()) - np.repeat(np.cumsum(n_win) - n_win, n_win)
    all_starts = starts[ep] + offs
    ia = rng.integers(0, len(all_starts), size=n)
    ib = rng.integers(0, len(all_starts), size=n)
    return segments_at(dataset, all_starts[ia], length), segments_at(dataset, all_starts[ib], length)


class PEARL(MRIQL):
    """PEARL (Liu et al., arXiv:2306.03615): cross-task preference alignment with Gromov-Wasserstein, robust
    (Gaussian) reward learning, then IQL (Kostrikov et al. 2022, Eq. 5-7) on the target dataset.

    ``fit(dataset, preferences, steps, target_preferences=None, ...)``: ``dataset`` is the *target* task's
    ``OfflineDataset``; ``preferences`` the *source* task's labelled pairs (their obs/act sizes may differ
    from the target's); ``target_preferences`` optional target labels (few-shot), none needed.

    Args:
        n_target_pairs: target segment pairs sampled from ``dataset`` and labelled by CPA (default 200).
        segment_length: length of the target segments (default: the source segments' length).
        label_margin: ``None`` (default): the transferred probabilities are the labels (soft, the paper's).
            A number ``m`` in ``[0, 0.5)`` rounds them to {0, 0.5, 1} (ties within ``0.5 +- m``): pbrl's
            former behaviour, kept as an ablation.
        gw_max_iter: iterations of the GW solver (default 1000).
        complete_source: fill in the preferences between source segments that were not compared with a
            Bradley-Terry reward model fitted on the source labels (:func:`complete_source_preferences`;
            default True). With False only the labelled source pairs vote, which leaves most target pairs
            without any weight unless the source labels are dense.
        reward_model_kwargs: passed to ``GaussianRewardModel(obs_dim, act_dim, seed=seed, **kw)``
            (defaults: 3 members, 256 x 3, tanh mean, ``kl_weight=1e-3``).
        **kw: :class:`~pbrl.agents.iql.MRIQL` / IQL arguments (``reward_epochs=300``, ``expectile=0.7``,
            ``beta=3.0``, ...).

    Attributes:
        transferred: the :class:`TransferredPreferences` of CPA-labelled target pairs (after ``fit``); its
            labels are the probabilities themselves unless ``label_margin`` is set.
        transferred_probs: ``[n_target_pairs]`` the raw CPA probabilities.
    """

    feedback_kinds = ("preference",)  # label transfer and the Gaussian reward work on pairs
    #: its labels are a source task's, of any sizes: ``pbrl train offline --labels`` (config ``labels``) takes
    #: another task's label file without checking it against the target task's sizes
    labels_from_source_task = True

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        n_target_pairs: int = 200,
        segment_length: int | None = None,
        label_margin: float | None = None,
        gw_max_iter: int = 1000,
        complete_source: bool = True,
        **kw: Any,
    ):
        if not isinstance(n_target_pairs, int) or n_target_pairs < 1:
            raise ValueError(f"n_target_pairs must be a positive integer, got {n_target_pairs!r}")
        if segment_length is not None and (not isinstance(segment_length, int) or segment_length < 1):
            raise ValueError(f"segment_length must be a positive integer or None, got {segment_length!r}")
        if label_margin is not None and not 0.0 <= label_margin < 0.5:
            raise ValueError(f"label_margin must be None (soft labels) or in [0, 0.5), got {label_margin}")
        if not isinstance(gw_max_iter, int) or gw_max_iter < 1:
            raise ValueError(f"gw_max_iter must be a positive integer, got {gw_max_iter!r}")
        self.n_target_pairs, self.segment_length = n_target_pairs, segment_length
        self.label_margin = None if label_margin is None else float(label_margin)
        self.gw_max_iter = gw_max_iter
        self.complete_source = bool(complete_source)
        self._register_config(
            n_target_pairs=n_target_pairs, segment_length=segment_length, label_margin=self.label_margin,
            gw_max_iter=gw_max_iter, complete_source=self.complete_source,
        )
        self.transferred: PreferenceDataset | None = None
        self.transferred_probs: np.ndarray | None = None
        self._target_preferences: PreferenceDataset | None = None
        super().__init__(obs_dim, act_dim, **kw)

    def _make_reward_model(self, klass: type) -> Any:
        return super()._make_reward_model(GaussianRewardModel)

    # ------------------------------------------------------------------ inputs
    def fit(self, dataset: Any, preferences: PreferenceDataset | None = None, steps: int = 10_000, callback=None,
            eval_env: Any = None, eval_every: int | None = None, n_eval_episodes: int = 5, eval_seed: int = 0,
            progress: bool = True, target_preferences: PreferenceDataset | None = None,
            log_interval: int = 100) -> dict[str, Any]:
        """As :meth:`OfflineAgent.fit`, with ``preferences`` = the source task's labels and optional
        ``target_preferences`` (few target labels). The returned dict adds ``"transfer_accuracy"``: agreement
        of the transferred labels with the target's true rewards (a diagnostic; the true reward is not used
        for training)."""
        self._fit_options(target_preferences)
        out = super().fit(dataset, preferences, steps, callback=callback, eval_env=eval_env, eval_every=eval_every,
                          n_eval_episodes=n_eval_episodes, eval_seed=eval_seed, progress=progress,
                          log_interval=log_interval)
        out["transfer_accuracy"] = self.transfer_accuracy()
        return out

    def _fit_options(self, target_preferences: PreferenceDataset | None = None) -> None:
        """``fit(..., target_preferences=...)`` (also through :class:`~pbrl.agents.multiseed.MultiSeed`)."""
        if target_preferences is not None and not isinstance(target_preferences, PreferenceDataset):
            raise TypeError(f"target_preferences must be a PreferenceDataset or None, got {type(target_preferences).__name__}")
        self._target_preferences = target_preferences

    def _check_inputs(self, dataset: Any, preferences: PreferenceDataset | None) -> None:
        if not isinstance(preferences, PreferenceDataset) or len(preferences) == 0:
            raise ValueError(
                "PEARL needs the source task's labelled pairs as `preferences` (a non-empty PreferenceDataset); "
                "the target dataset needs no labels"
            )
        tp = self._target_preferences
        if tp is not None and len(tp) and (tp.a.obs_dim != self.obs_dim or tp.a.act_dim != self.act_dim):
            raise ValueError(
                f"target_preferences have obs_dim={tp.a.obs_dim}, act_dim={tp.a.act_dim}; the target dataset has "
                f"{self.obs_dim}, {self.act_dim}"
            )
        H = self.segment_length or preferences.segment_length
        if tp is not None and len(tp) and tp.segment_length != H:
            raise ValueError(
                f"target_preferences have segments of {tp.segment_length} steps but PEARL's target pairs have {H}; "
                f"set segment_length={tp.segment_length}"
            )
        # the source may be another task: check the dataset only
        self._check_dataset(dataset)

    # ------------------------------------------------------------------ CPA + RRL
    def transfer(self, dataset: Any, source: PreferenceDataset) -> PreferenceDataset:
        """Run CPA: sample target pairs from ``dataset`` and label them from ``source`` (sets
        ``self.transferred`` / ``self.transferred_probs``). Returns the transferred PreferenceDataset."""
        H = self.segment_length or source.segment_length
        ta, tb = _sample_target_pairs(dataset, self.n_target_pairs, H, self.rng)
        completion = None
        if self.complete_source:
            kw = {"hidden": tuple(self.reward_model_kwargs.get("hidden", (256, 256, 256)))}
            completion = complete_source_preferences(source, seed=self.seed, epochs=self.reward_epochs, **kw)
        probs, _ = cross_task_preference_alignment(source, ta, tb, completion=completion, max_iter=self.gw_max_iter)
        if self.label_margin is None:  # soft labels end to end (the paper)
            label = probs
        else:  # pbrl's former rounding, opt-in
            m = self.label_margin
            label = np.where(probs > 0.5 + m, 1.0, np.where(probs < 0.5 - m, 0.0, 0.5))
        meta = {"task_id": (getattr(dataset, "metadata", None) or {}).get("task_id"), "teacher": "pearl-cpa",
                "source_task_id": source.metadata.get("task_id")}
        self.transferred_probs = probs
        self.transferred = TransferredPreferences(ta, tb, label, metadata=meta)
        return self.transferred

    def transfer_accuracy(self) -> float | None:
        """Fraction of transferred labels other than exactly 0.5 whose side (``P > 0.5``) agrees with the
        target's true segment returns."""
        if self.transferred is None:
            return None
        t = self.transferred
        ret_a, ret_b = t.a.returns(), t.b.returns()
        keep = (t.label != 0.5) & (ret_a != ret_b)
        if not keep.any():
            return None
        return float(np.mean((t.label[keep] > 0.5) == (ret_b[keep] > ret_a[keep])))

    def _training_rewards(self, dataset: Any, preferences: PreferenceDataset | None) -> np.ndarray:
        assert preferences is not None
        if self.reward_fitted:  # a later fit / a loaded agent: keep the learned reward
            return self.learned_rewards(dataset)
        train = self.transfer(dataset, preferences)
        tp = self._target_preferences
        if tp is not None and len(tp):
            train = TransferredPreferences(train.a, train.b, train.label, metadata=train.metadata)
            train.append(tp.a, tp.b, tp.label)
        self.reward_fit_info = self.reward_model.fit(train, epochs=self.reward_epochs, batch_size=self.reward_batch_size)
        self.reward_fitted = True
        return self.learned_rewards(dataset)
