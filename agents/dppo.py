"""Direct Preference-based Policy Optimization (DPPO): a policy learned contrastively from scored segments,
with no reward model and no RL.

An, Lee, Zuo, Kosaka, Kim & Song, "Direct Preference-based Policy Optimization without Reward Modeling",
NeurIPS 2023 (authors' code: github.com/snu-mllab/DPPO). Three stages:

1. **A preference predictor** ``psi(sigma)``: a one-layer Preference Transformer scoring a segment
   ``sigma`` of ``H`` steps (:class:`pbrl.reward_models.transformer.PreferenceTransformer`, whose score is
   ``S(sigma) = sum_t w_t r_t``), trained on the labelled pairs with the Bradley-Terry cross-entropy plus
   the paper's prediction-smoothness regulariser (the paper's Sec. 4.3)::

       L_psi = CE(sigmoid(psi(sigma_b) - psi(sigma_a)), y) + nu * E_sigma [ (psi(sigma) - psi(sigma^m))^2 ]

   where ``sigma^m`` is the segment of the same trajectory whose start is shifted by
   ``m = round(N(0, M^2))`` steps (clipped to the trajectory)                    -> :func:`smoothness_loss`.
   As in the authors' code, half of the smoothed segments start where a labelled segment starts, the rest
   anywhere in the dataset.
2. **Scoring.** The predictor scores every window of ``H`` steps of the unlabelled dataset.
3. **The policy.** A deterministic tanh policy ``pi(s)``. Its distance to a segment is
   ``d(pi, sigma) = (1/H) sum_t ||pi(s_t) - a_t||_2 / (a_max - a_min)``       -> :func:`dppo_distances`,
   and for every pair of a batch's segments with ``psi(sigma_i) > psi(sigma_j)`` (``i`` better) the
   contrastive policy loss (the paper's Eq. 5-6, the authors' ``update_actor``) is::

       L_pi = - E_{i > j} log [ exp(-d_i / T) / (exp(-d_i / T) + exp(-lambda d_j / T)) ]
            =   E_{i > j} softplus( (d_i - lambda d_j) / T )                      -> :func:`dppo_loss`

   averaged over all ordered pairs of the batch (``B (B - 1) / 2`` for distinct scores). There is no
   behaviour-cloning term: ``lambda < 1`` makes the loss keep pulling the policy towards the better
   segments (the paper's conservatism knob), ``lambda = 1`` (the default) is the plain contrastive loss.
   A property to know (measured in ``docs/agents/dppo.md``, "Why the sanity run does not learn"): when a
   window's return grows along its episode (Hopper starts at rest), the windows at an episode's start rank
   worst, and the loss pushes the policy off the data exactly at the initial states.

Defaults are the authors' code's (``train.py``, ``learner.py``, ``JaxPref/PrefTransformer.py``,
``JaxPref/new_preference_reward_main.py``): ``lambda = 1.0``, ``T = 0.1``, 256 segments per update, a 2 x 256
tanh MLP at Adam lr 3e-4 without dropout; the predictor at the Preference Transformer's paper size (1 layer,
4 heads, embedding 256, AdamW 1e-4 with warm-up + cosine, batch 256, 10,000 epochs). Segments are as long as
the labelled ones (the authors' 100 for both). ``docs/hyperparameters.md`` lists each value with its source
and pbrl's differences (full-length windows only; the predictor network).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from pbrl.agents.networks import DeterministicPolicy
from pbrl.agents.offline_base import OfflineAgent
from pbrl.preferences import PreferenceDataset
from pbrl.ratings import RatingDataset
from pbrl.reward_models.transformer import PreferenceTransformer

__all__ = ["DPPO", "dppo_distances", "dppo_loss", "smoothness_loss", "shifted_windows", "window_starts"]


# ---------------------------------------------------------------------------------------------- losses


def dppo_distances(pred_act: torch.Tensor, act: torch.Tensor, action_range: float = 2.0) -> torch.Tensor:
    """Policy-segment distances ``d = (1/H) sum_t ||pi(s_t) - a_t||_2 / action_range`` (An et al. 2023, Sec. 4.1).

    Args:
        pred_act: ``[B, H, act_dim]`` the policy's actions ``pi(s_t)`` on the segments' states.
        act: ``[B, H, act_dim]`` the segments' actions.
        action_range: ``a_max - a_min`` of the space both live in (2.0 for ``[-1, 1]``, the authors').

    Returns:
        ``[B]`` distances.
    """
    diff = (pred_act - act) / action_range
    # the 2-norm with a zero (not NaN) gradient where the difference is exactly zero, as the authors' safe_norm
    sq = diff.pow(2).sum(-1)
    norm = torch.where(sq > 0, sq.clamp_min(1e-30).sqrt(), torch.zeros_like(sq))
    return norm.mean(-1)


def dppo_loss(distances: torch.Tensor, scores: torch.Tensor, lam: float = 1.0, temperature: float = 0.1) -> torch.Tensor:
    """DPPO's contrastive policy loss (An et al. 2023, Eq. 5-6) over every ordered pair of a batch.

    For each pair ``(i, j)`` with ``scores[i] > scores[j]`` (segment ``i`` predicted better):
    ``-log exp(-d_i/T) / (exp(-d_i/T) + exp(-lambda d_j/T)) = softplus((d_i - lambda d_j) / T)``; the loss is
    the mean over those pairs (0 when no two scores differ). Pairs with equal scores are left out (the
    authors' code sorts the batch by score and takes the upper triangle, which for distinct scores is the
    same set of pairs).

    Args:
        distances: ``[B]`` policy-segment distances (:func:`dppo_distances`).
        scores: ``[B]`` the predictor's segment scores (no gradient).
        lam: ``lambda``, the weight on the worse segment's distance (default 1.0).
        temperature: ``T`` (default 0.1).
    """
    better = (scores[:, None] > scores[None, :]).to(distances.dtype)  # [i, j] = 1 where i is better than j
    logits = (distances[:, None] - lam * distances[None, :]) / temperature
    return (F.softplus(logits) * better).sum() / better.sum().clamp_min(1.0)


def smoothness_loss(score: torch.Tensor, score_shifted: torch.Tensor) -> torch.Tensor:
    """DPPO's prediction-smoothness term (An et al. 2023, Sec. 4.3): ``mean (psi(sigma) - psi(sigma^m))^2``.

    Args:
        score, score_shifted: ``[B]`` predictor scores of segments and of their shifted twins.
    """
    return (score - score_shifted).pow(2).mean()


# ---------------------------------------------------------------------------------------------- windows


def window_starts(starts: np.ndarray, ends: np.ndarray, H: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every window of ``H`` steps that fits inside one episode.

    Args:
        starts, ends: ``[E]`` first and last flat row of each episode (``OfflineDataset.episode_bounds``).
        H: window length.

    Returns:
        ``(start [N], low [N], high [N])`` int64: each window's first row, and the first and last window start
        of its episode (the range a shifted twin is clipped to). Episodes shorter than ``H`` give none.
    """
    parts, lows, highs = [], [], []
    for s, e in zip(np.asarray(starts, np.int64), np.asarray(ends, np.int64)):
        last = int(e) - H + 1
        if last < s:
            continue
        n = last - int(s) + 1
        parts.append(np.arange(s, last + 1, dtype=np.int64))
        lows.append(np.full(n, s, np.int64))
        highs.append(np.full(n, last, np.int64))
    if not parts:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty
    return np.concatenate(parts), np.concatenate(lows), np.concatenate(highs)


def shifted_windows(start: np.ndarray, low: np.ndarray, high: np.ndarray, sigma: float,
                    rng: np.random.Generator) -> np.ndarray:
    """Starts of the shifted twins: ``clip(start + round(N(0, sigma^2)), low, high)`` ``[B]`` int64."""
    shift = np.round(rng.normal(size=len(start)) * sigma).astype(np.int64)
    return np.clip(start + shift, low, high)


# ---------------------------------------------------------------------------------------------- agent


class DPPO(OfflineAgent):
    """DPPO (An et al., NeurIPS 2023): a deterministic policy trained by a contrastive loss on segments
    scored by a preference predictor (see the module docstring for the three losses).

    The first ``fit`` trains the predictor (Bradley-Terry cross-entropy + ``smooth_weight`` x
    :func:`smoothness_loss`) and scores every ``segment_length``-step window of the dataset; every update
    then draws ``batch_size`` windows without replacement and takes one step of :func:`dppo_loss` on
    :func:`dppo_distances`. Later ``fit`` calls (and a loaded agent) keep the fitted predictor.

    Args:
        obs_dim, act_dim: sizes.
        lam: ``lambda`` of :func:`dppo_loss` (default 1.0, the authors' ``lambd``).
        temperature: ``T`` of :func:`dppo_loss` (default 0.1, the authors' ``dist_temperature``).
        segment_length: steps of the scored windows; None (default) takes the labelled segments' length
            (the authors use 100 for both).
        dropout: policy dropout (default 0.0, the authors' default; their README sets it per task).
        smooth_weight: ``nu``, the weight of the smoothness term (default 1.0; 0 turns it off).
        smooth_sigma: ``M``, the std in steps of the shifted twin's offset (default 20).
        predictor_kwargs: passed to ``PreferenceTransformer(obs_dim, act_dim, seed=seed, **kw)``; default
            ``{"size": "paper"}`` (1 layer, 4 heads, embedding 256, AdamW 1e-4 with warm-up + cosine, batch
            256, the authors' configuration); ``{"size": "small"}`` is the CPU size.
        predictor_epochs: epochs of the predictor's fit; None (default): its size's (10,000 ``"paper"``,
            100 ``"small"``).
        **common: :class:`~pbrl.agents.offline_base.OfflineAgent` arguments (``hidden=(256, 256)``,
            ``lr=3e-4``, ``batch_size=256`` segments per update, ``normalize_obs``, ``action_low/high``,
            ``seed``, ``device``).

    Attributes:
        predictor: the :class:`~pbrl.reward_models.transformer.PreferenceTransformer` (saved with the agent).
        predictor_fit_info: what its ``fit`` returned (``history["extra_loss"]``: the smoothness term).
        predictor_fitted: True once fitted; set it to False to refit on new preferences.
    """

    feedback_kinds = ("preference",)  # the predictor and the contrastive loss work on pairs

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        lam: float = 1.0,
        temperature: float = 0.1,
        segment_length: int | None = None,
        dropout: float = 0.0,
        smooth_weight: float = 1.0,
        smooth_sigma: float = 20.0,
        predictor_kwargs: dict | None = None,
        predictor_epochs: int | None = None,
        **common: Any,
    ):
        for name, v in (("lam", lam), ("temperature", temperature)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise ValueError(f"{name} must be a positive number, got {v!r}")
        for name, v in (("smooth_weight", smooth_weight), ("smooth_sigma", smooth_sigma)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0:
                raise ValueError(f"{name} must be a non-negative number, got {v!r}")
        for name, v in (("segment_length", segment_length), ("predictor_epochs", predictor_epochs)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1):
                raise ValueError(f"{name} must be a positive integer or None, got {v!r}")
        if not (isinstance(dropout, (int, float)) and 0.0 <= dropout < 1.0):
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        if predictor_kwargs is not None and not isinstance(predictor_kwargs, dict):
            raise TypeError(f"predictor_kwargs must be a dict, got {type(predictor_kwargs).__name__}")
        self.lam, self.temperature = float(lam), float(temperature)
        self.segment_length = None if segment_length is None else int(segment_length)
        self.dropout = float(dropout)
        self.smooth_weight, self.smooth_sigma = float(smooth_weight), float(smooth_sigma)
        self.predictor_kwargs = {"size": "paper", **(predictor_kwargs or {})}
        self.predictor_epochs = None if predictor_epochs is None else int(predictor_epochs)
        self._register_config(lam=self.lam, temperature=self.temperature, segment_length=self.segment_length,
                              dropout=self.dropout, smooth_weight=self.smooth_weight, smooth_sigma=self.smooth_sigma,
                              predictor_kwargs=self.predictor_kwargs, predictor_epochs=self.predictor_epochs)
        super().__init__(obs_dim, act_dim, **common)
        self.predictor = PreferenceTransformer(obs_dim, act_dim, **{"seed": self.seed, **self.predictor_kwargs})
        self.predictor_fit_info: dict[str, Any] = {}
        self.predictor_fitted = False

    def _build(self) -> None:
        policy = DeterministicPolicy(self.obs_dim, self.act_dim, self.hidden, dropout=self.dropout)
        self.nets = {"policy": policy}
        self.optims = {"policy": torch.optim.Adam(policy.parameters(), lr=self.lr)}

    # ------------------------------------------------------------------ inputs
    def _check_preferences(self, preferences: Any) -> None:
        if isinstance(preferences, RatingDataset):
            raise ValueError("DPPO learns from preference pairs, got ratings (a RatingDataset); label pairs, or "
                             "train MR+IQL (--agent mriql) on the ratings")
        super()._check_preferences(preferences)

    def _check_inputs(self, dataset: Any, preferences: PreferenceDataset | None) -> None:
        super()._check_inputs(dataset, preferences)
        if not np.any(preferences.label != 0.5):
            raise ValueError("every label is 0.5 (equal preference): DPPO's predictor needs at least one strict "
                             "preference to learn from")
        starts, ends = dataset.episode_bounds
        longest = int(np.max(ends - starts + 1))
        H = self.segment_length or int(preferences.segment_length)
        if longest < max(H, int(preferences.segment_length)):
            raise ValueError(f"DPPO scores windows of {max(H, int(preferences.segment_length))} steps inside "
                             f"episodes, but the dataset's longest episode has {longest}; use shorter segments "
                             "(segment_length=..., or label shorter segments)")

    # ------------------------------------------------------------------ predictor
    def _smoothness_term(self, dataset: Any, preferences: PreferenceDataset) -> Any:
        """The ``extra_loss`` of the predictor's fit: ``smooth_weight`` x :func:`smoothness_loss` on ``B``
        windows of the labels' length and their twins shifted by ``round(N(0, smooth_sigma^2))`` steps;
        half of the windows start where a labelled segment starts (the authors' ``smooth_in``)."""
        H = int(preferences.segment_length)
        start, low, high = window_starts(*dataset.episode_bounds, H)
        where = np.full(len(dataset), -1, np.int64)
        where[start] = np.arange(len(start))
        first = np.concatenate([self.segment_rows(s, dataset)[:, 0] for s in (preferences.a, preferences.b)])
        labelled = np.unique(where[first[first >= 0]])
        labelled = labelled[labelled >= 0]
        obs = np.asarray(dataset.observations, np.float32)
        act = np.asarray(dataset.actions, np.float32)
        steps = np.arange(H)
        model, rng = self.predictor, self.rng

        def term(net: Any, B: int) -> torch.Tensor:
            n_in = min(B // 2, len(labelled))
            k = np.concatenate([rng.choice(labelled, size=n_in, replace=False),
                                rng.integers(0, len(start), size=B - n_in)])
            s1 = start[k]
            s2 = shifted_windows(s1, low[k], high[k], self.smooth_sigma, rng)
            rows = np.concatenate([s1, s2])[:, None] + steps
            o, a = model._tensors(obs[rows], act[rows])
            score = net(o, a, model.torch_gen)["score"]
            return self.smooth_weight * smoothness_loss(score[:B], score[B:])

        return term

    def _fit_predictor(self, dataset: Any, preferences: PreferenceDataset) -> None:
        extra = self._smoothness_term(dataset, preferences) if self.smooth_weight > 0 else None
        self.predictor_fit_info = self.predictor.fit(preferences, epochs=self.predictor_epochs, extra_loss=extra)
        self.predictor_fitted = True

    def score_windows(self, dataset: Any, H: int) -> tuple[np.ndarray, np.ndarray]:
        """The predictor's score of every ``H``-step window inside an episode of ``dataset``:
        ``(start [N] int64, score [N] float32)``."""
        start, _, _ = window_starts(*dataset.episode_bounds, H)
        obs = np.asarray(dataset.observations, np.float32)
        act = np.asarray(dataset.actions, np.float32)
        steps, chunk = np.arange(H), self.predictor.predict_chunk
        scores = [self.predictor._forward_windows(obs[rows], act[rows], ("score",))["score"]
                  for rows in (start[s : s + chunk, None] + steps for s in range(0, len(start), chunk))]
        return start, np.concatenate(scores).astype(np.float32) if scores else np.zeros(0, np.float32)

    def _prepare(self, dataset: Any, preferences: PreferenceDataset | None) -> None:
        assert preferences is not None  # _check_inputs guarantees it
        if not self.predictor_fitted:
            self._fit_predictor(dataset, preferences)
        H = self.segment_length or int(preferences.segment_length)
        start, score = self.score_windows(dataset, H)
        self.window = {"start": torch.as_tensor(start, device=self.device), "score": self.tensor(score)}
        self.flat = {"obs": self.tensor(self._norm_obs_np(np.asarray(dataset.observations, np.float32))),
                     "act": self.tensor(self._act_to_unit(np.asarray(dataset.actions, np.float32)))}
        self.window_length = H

    # ------------------------------------------------------------------ updates
    def _sample(self) -> dict[str, torch.Tensor]:
        """``batch_size`` scored windows drawn without replacement (all of them if fewer), and the seed of the
        policy's dropout masks."""
        n = len(self.window["start"])
        k = torch.as_tensor(self.rng.choice(n, size=min(self.batch_size, n), replace=False), device=self.device)
        rows = self.window["start"][k][:, None] + torch.arange(self.window_length, device=self.device)
        return {"obs": self.flat["obs"][rows], "act": self.flat["act"][rows], "score": self.window["score"][k],
                "torch_seed": self.draw_torch_seed()}

    def _update_on(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        def loss() -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
            with self._dropout_scope(batch):
                d = dppo_distances(self.nets["policy"](batch["obs"]), batch["act"])
            return dppo_loss(d, batch["score"], self.lam, self.temperature), {"distance": d.mean()}

        policy_loss, logs = self._step("policy", loss)
        return {"policy_loss": policy_loss, **logs}

    # ------------------------------------------------------------------ saving
    def _extra_state(self) -> dict[str, Any]:
        return {"predictor": self.predictor.state(), "predictor_fitted": self.predictor_fitted}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        if "predictor" in state:
            self.predictor = PreferenceTransformer.from_state(state["predictor"])
            self.predictor_fitted = bool(state.get("predictor_fitted", True))
