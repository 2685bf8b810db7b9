"""Query selection: which candidate segment pairs to show the teacher.

The selectors are those of B-Pref (Lee et al., "B-Pref: Benchmarking Preference-Based Reinforcement
Learning", NeurIPS Datasets & Benchmarks 2021, Sec. 4 "sampling schemes"), also used by PEBBLE:

* ``uniform``: pairs drawn uniformly at random;
* ``disagreement``: the pairs whose preference probability ``P[b > a]`` varies most across the
  reward-ensemble members (std over members);
* ``entropy``: the pairs with the largest binary entropy of ``P[b > a]``, averaged over members;
* ``kcenter``: greedy farthest-point (k-center) coverage of the pairs' state features, measured against
  the pairs already labelled (Sener & Savarese, ICLR 2018, greedy 2-approximation);
* ``kcenter_disagreement`` / ``kcenter_entropy``: the top ``pool_fraction`` (default half) of the pool by
  the score, then k-center over those.

Two selectors are *inspired by* the theory of query-efficient PbRL (ensemble approximations of those
papers' confidence sets and posteriors, not their algorithms; ``docs/query_gating.md`` says what differs):

* ``thompson`` (:class:`ThompsonSelector`): each round samples ``n_sampled`` ensemble members at random
  (a Thompson-style draw, Wu & Sun, "Making RL with Preference-based Feedback Efficient via
  Randomization", ICLR 2024) and proposes, uniformly at random, pairs on which the sampled members'
  ``P[b > a]`` differ by more than ``threshold``;
* ``gated_<inner>`` (:class:`GatedSelector`, ``inner`` one of ``uniform, disagreement, thompson``): the
  inner selector proposes ``n`` pairs and only those on which the ensemble's members disagree (std of
  ``P[b > a]`` over members) by more than ``epsilon`` are asked; the others are skipped and do **not**
  count as asked (the query-skipping rule of Wu & Sun's active learning step and of Wang, Liu & Jin,
  "Is RLHF More Difficult than Standard RL?", NeurIPS 2023). A gated selector may return fewer than
  ``n`` indices.

One selector serves a latent-variable reward model (VPL, Poddar et al., NeurIPS 2024, Sec. 4.3):

* ``information_gain`` (:class:`InformationGainSelector`): the candidate pool is cut at random into
  contexts of the model's ``context_size`` pairs (of ``n`` pairs when fewer queries are asked); each
  context is scored by how much its answers would tell about the user's latent ``z``
  (``reward_model.information_gain``, e.g. :meth:`pbrl.agents.vpl.VPL.information_gain`) and the best
  contexts are asked first, whole.

``candidate_pairs`` builds the candidate pool, optionally only from the most recent episodes (QPA's
near on-policy queries, Hu et al., "Query-Policy Misalignment in Preference-Based RL", ICLR 2024).

Every selector returns ``n`` distinct int64 indices into the candidate pairs (a gated one at most ``n``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from pbrl.preferences import PreferenceDataset
from pbrl.segments import Segments, Trajectory, sample_segment_pairs

__all__ = [
    "Selector",
    "UniformSelector",
    "DisagreementSelector",
    "EntropySelector",
    "KCenterSelector",
    "ThompsonSelector",
    "GatedSelector",
    "InformationGainSelector",
    "SELECTORS",
    "ENSEMBLE_SELECTORS",
    "make_selector",
    "candidate_pairs",
    "pair_features",
    "kcenter_greedy",
]


def _check_pool(a: Any, b: Any, n: Any) -> int:
    if not isinstance(a, Segments) or not isinstance(b, Segments):
        raise TypeError(f"candidates must be Segments batches, got {type(a).__name__} and {type(b).__name__}")
    if len(a) != len(b):
        raise ValueError(f"candidate batches a and b must have the same size, got {len(a)} and {len(b)}")
    if a.obs.shape[1:] != b.obs.shape[1:] or a.act.shape[1:] != b.act.shape[1:]:
        raise ValueError(f"candidate segments a and b differ in shape: {a.obs.shape[1:]} vs {b.obs.shape[1:]}")
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
        raise ValueError(f"n (number of queries) must be a non-negative integer, got {n!r}")
    if n > len(a):
        raise ValueError(f"cannot select {n} distinct queries from a pool of {len(a)} candidate pairs; sample more candidates")
    return int(n)


def pair_features(a: Segments, b: Segments) -> np.ndarray:
    """The k-center feature of each pair: both segments' observations flattened, ``[N, 2 * H * obs_dim]``.

    B-Pref measures coverage in state space (observations of both segments, actions left out).
    """
    return np.concatenate([a.obs.reshape(len(a), -1), b.obs.reshape(len(b), -1)], axis=1).astype(np.float32)


def _sq_dist_min(x: np.ndarray, centers: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """``min_j ||x_i - c_j||^2`` for every row of ``x`` ``[N, D]`` against ``centers [K, D]`` -> ``[N]``.

    Uses ``|x|^2 + |c|^2 - 2 x.c`` with float32 matrix products in chunks of ``chunk`` centres.
    """
    out = np.full(len(x), np.inf, dtype=np.float64)
    if len(centers) == 0:
        return out
    x = np.ascontiguousarray(x, dtype=np.float32)
    xx = np.einsum("nd,nd->n", x, x, dtype=np.float64)
    for s in range(0, len(centers), chunk):
        c = np.ascontiguousarray(centers[s : s + chunk], dtype=np.float32)
        cc = np.einsum("kd,kd->k", c, c, dtype=np.float64)
        d = xx[:, None] + cc[None, :] - 2.0 * (x @ c.T).astype(np.float64)
        out = np.minimum(out, d.min(1))
    return np.maximum(out, 0.0)


def kcenter_greedy(
    features: np.ndarray, n: int, existing: np.ndarray | None = None, rng: np.random.Generator | int | None = None
) -> np.ndarray:
    """Greedy k-center: pick ``n`` rows of ``features [N, D]`` one at a time, each the farthest (in
    Euclidean distance) from everything already chosen and from ``existing [K, D]`` (labelled pairs).

    This is the greedy 2-approximation of the k-center problem (Sener & Savarese, ICLR 2018, Alg. 1).
    With nothing labelled, the first pick is drawn at random from ``rng``. Returns ``[n]`` int64
    indices, all distinct (chosen rows are excluded; ties go to the lowest index). Cost
    ``O((K + n) * N * D)``; each greedy step is one matrix-vector product.
    """
    features = np.ascontiguousarray(features, dtype=np.float32)
    N = len(features)
    if not 0 <= n <= N:
        raise ValueError(f"cannot pick {n} distinct centres out of {N} points")
    rng = np.random.default_rng(rng)
    mind = _sq_dist_min(features, np.zeros((0, features.shape[1]), np.float32) if existing is None else existing)
    sq = np.einsum("nd,nd->n", features, features, dtype=np.float64)
    chosen = np.zeros(N, dtype=bool)
    picks = np.empty(n, dtype=np.int64)
    for k in range(n):  # sequential by definition of the greedy algorithm; each step is vectorised
        if not np.isfinite(mind).any():
            i = int(rng.integers(N))
        else:
            i = int(np.argmax(np.where(chosen, -1.0, mind)))
        picks[k] = i
        chosen[i] = True
        d = sq + sq[i] - 2.0 * (features @ features[i]).astype(np.float64)
        mind = np.minimum(mind, np.maximum(d, 0.0))
    return picks


def _labelled_features(labelled: Any, like: Segments) -> np.ndarray | None:
    if labelled is None:
        return None
    if isinstance(labelled, PreferenceDataset):
        la, lb = labelled.a, labelled.b
    elif isinstance(labelled, (tuple, list)) and len(labelled) == 2:
        la, lb = labelled
    else:
        raise TypeError("labelled must be a PreferenceDataset or a tuple (a, b) of Segments")
    if not isinstance(la, Segments) or not isinstance(lb, Segments):
        raise TypeError("labelled must be a PreferenceDataset or a tuple (a, b) of Segments")
    if len(la) == 0:
        return None
    if la.obs.shape[1:] != like.obs.shape[1:]:
        raise ValueError(
            f"labelled segments have shape {la.obs.shape[1:]} but candidates {like.obs.shape[1:]}; "
            "k-center compares pairs of the same segment length and observation size"
        )
    return pair_features(la, lb)


class Selector:
    """Base class: ``select(a, b, n, reward_model=None, labelled=None, rng=None) -> [n]`` indices.

    Subclasses implement :meth:`_select`; the base validates inputs and the output (distinct indices).
    """

    name = "selector"
    needs_model = False
    #: the method a ``reward_model`` must have when ``needs_model``
    model_method = "preference_probs"
    #: a gate may return fewer than ``n`` indices: the pairs it skipped are not asked
    may_skip = False

    def select(
        self,
        a: Segments,
        b: Segments,
        n: int,
        reward_model: Any = None,
        labelled: PreferenceDataset | tuple[Segments, Segments] | None = None,
        rng: np.random.Generator | int | None = None,
    ) -> np.ndarray:
        """Choose ``n`` distinct candidate pairs ``(a[i], b[i])``.

        Args:
            a, b: candidate pool, ``Segments`` of equal size N.
            n: how many queries (0 <= n <= N).
            reward_model: a reward model with ``preference_probs(a, b) -> [M, N]`` (needed by the
                uncertainty-based selectors).
            labelled: pairs already labelled (``PreferenceDataset`` or ``(a, b)``), for k-center.
            rng: seed or Generator (uniform picks, k-center's first pick).

        Returns:
            ``[n]`` int64 distinct indices into the pool (``[k <= n]`` for a selector with ``may_skip``).
        """
        n = _check_pool(a, b, n)
        if self.needs_model and (reward_model is None or not hasattr(reward_model, self.model_method)):
            raise ValueError(
                f"the '{self.name}' selector needs reward_model= (an object with {self.model_method}(...)); "
                "pass the reward model or use the 'uniform' selector"
            )
        rng = np.random.default_rng(rng)
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        idx = np.asarray(self._select(a, b, n, reward_model, labelled, rng), dtype=np.int64)
        ok = idx.ndim == 1 and (len(idx) <= n if self.may_skip else len(idx) == n)
        if not ok or len(np.unique(idx)) != len(idx):  # a broken custom selector, not user input
            raise RuntimeError(f"selector '{self.name}' returned {idx.shape} indices, not {n} distinct ones")
        return idx

    def _select(self, a, b, n, reward_model, labelled, rng) -> np.ndarray:  # pragma: no cover - abstract
        raise TypeError(f"{type(self).__name__} does not implement selection")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class UniformSelector(Selector):
    """Uniformly random distinct pairs (B-Pref's ``uniform`` sampling)."""

    name = "uniform"

    def _select(self, a, b, n, reward_model, labelled, rng):
        return rng.choice(len(a), size=n, replace=False)


def _member_probs(a: Segments, b: Segments, reward_model: Any) -> np.ndarray:
    """Each member's ``P[b > a]``, ``[M, N]``."""
    p = np.asarray(reward_model.preference_probs(a, b), dtype=np.float64)  # [M, N]
    if p.ndim != 2 or p.shape[1] != len(a):
        raise ValueError(f"reward_model.preference_probs must return [M, {len(a)}], got {p.shape}")
    return p


def _scores(kind: str, a: Segments, b: Segments, reward_model: Any) -> np.ndarray:
    p = _member_probs(a, b, reward_model)
    if kind == "disagreement":
        return p.std(axis=0)
    q = np.clip(p, 1e-12, 1 - 1e-12)
    ent = -(q * np.log(q) + (1 - q) * np.log(1 - q))
    return ent.mean(axis=0)


def _top(score: np.ndarray, n: int) -> np.ndarray:
    # stable sort on -score: highest first, ties by lowest index (deterministic)
    return np.argsort(-score, kind="stable")[:n]


class DisagreementSelector(Selector):
    """Highest ensemble disagreement: std over members of ``P[b > a]`` (B-Pref ``disagreement``)."""

    name = "disagreement"
    needs_model = True

    def _select(self, a, b, n, reward_model, labelled, rng):
        return _top(_scores("disagreement", a, b, reward_model), n)


class EntropySelector(Selector):
    """Highest mean member binary entropy of ``P[b > a]`` (B-Pref ``entropy``)."""

    name = "entropy"
    needs_model = True

    def _select(self, a, b, n, reward_model, labelled, rng):
        return _top(_scores("entropy", a, b, reward_model), n)


class KCenterSelector(Selector):
    """Greedy k-center coverage over pair features, optionally after a score-based pre-filter.

    Args:
        score: ``None`` (plain k-center), ``"disagreement"`` or ``"entropy"``: keep the top
            ``pool_fraction`` of the pool by that score (at least ``n`` pairs), then run k-center there.
        pool_fraction: fraction kept by the pre-filter (default 0.5, as B-Pref).
    """

    needs_model = False

    def __init__(self, score: str | None = None, pool_fraction: float = 0.5):
        if score not in (None, "disagreement", "entropy"):
            raise ValueError(f"k-center score must be None, 'disagreement' or 'entropy', got {score!r}")
        if not 0.0 < pool_fraction <= 1.0:
            raise ValueError(f"pool_fraction must be in (0, 1], got {pool_fraction}")
        self.score = score
        self.pool_fraction = float(pool_fraction)
        self.name = "kcenter" if score is None else f"kcenter_{score}"
        self.needs_model = score is not None

    def _select(self, a, b, n, reward_model, labelled, rng):
        pool = np.arange(len(a))
        if self.score is not None:
            keep = max(n, int(round(self.pool_fraction * len(a))))
            pool = np.sort(_top(_scores(self.score, a, b, reward_model), keep))
        feats = pair_features(a[pool], b[pool])
        existing = _labelled_features(labelled, a)
        picks = kcenter_greedy(feats, n, existing, rng)
        return pool[picks]


def _check_fraction(name: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.number)) or not np.isfinite(v) or not 0.0 <= v < 1.0:
        raise ValueError(f"{name} must be a number in [0, 1), got {v!r}")
    return float(v)


class ThompsonSelector(Selector):
    """Randomised selection *inspired by* Wu & Sun (ICLR 2024, the Thompson-sampling algorithm, Sec. 5).

    Each call (one feedback round) draws ``n_sampled`` distinct ensemble members uniformly at random, as a
    Thompson draw of reward functions from the ensemble's "posterior", and scores each pair by how much the
    sampled members disagree on it: ``d_i = max_m P_m[b_i > a_i] - min_m P_m[b_i > a_i]`` over the sampled
    ``m``. The ``n`` queries are drawn uniformly at random among the pairs with ``d_i > threshold``; when
    fewer pass, all of them are taken and the rest are the pairs of largest ``d_i`` (ties by index).

    Args:
        n_sampled: members drawn per round (>= 2; the paper draws two models, one per policy).
        threshold: disagreement ``d`` a pair must exceed to be proposed, in [0, 1) (default 0.1).
    """

    name = "thompson"
    needs_model = True

    def __init__(self, n_sampled: int = 2, threshold: float = 0.1):
        if isinstance(n_sampled, bool) or not isinstance(n_sampled, (int, np.integer)) or n_sampled < 2:
            raise ValueError(f"n_sampled (members drawn per round) must be an integer >= 2, got {n_sampled!r}")
        self.n_sampled = int(n_sampled)
        self.threshold = _check_fraction("threshold", threshold)

    def sampled_disagreement(self, p: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``(members [k], d [N])``: the members drawn from ``p [M, N]`` and their spread on each pair."""
        M = p.shape[0]
        if M < self.n_sampled:
            raise ValueError(f"the 'thompson' selector samples {self.n_sampled} ensemble members but the reward "
                             f"model has {M}; use an ensemble of at least {self.n_sampled} members or lower n_sampled")
        members = np.sort(rng.choice(M, size=self.n_sampled, replace=False))
        ps = p[members]
        return members, ps.max(0) - ps.min(0)

    def _select(self, a, b, n, reward_model, labelled, rng):
        _, d = self.sampled_disagreement(_member_probs(a, b, reward_model), rng)
        above = np.flatnonzero(d > self.threshold)
        if len(above) >= n:
            return rng.choice(above, size=n, replace=False)
        rest = np.flatnonzero(d <= self.threshold)
        return np.concatenate([rng.permutation(above), rest[_top(d[rest], n - len(above))]])


#: the selectors a gate can wrap
GATE_INNER = ("uniform", "disagreement", "thompson")


class GatedSelector(Selector):
    """A query gate *inspired by* Wu & Sun (ICLR 2024) and Wang, Liu & Jin (NeurIPS 2023): ask only when
    the reward ensemble is unsure of the answer.

    The ``inner`` selector proposes ``n`` pairs; a proposed pair is asked only if the members' preference
    probabilities disagree, ``std_m P_m[b > a] > epsilon`` (B-Pref's disagreement score); otherwise it is
    skipped. Skipped pairs are not returned, so the feedback loop neither asks nor counts them against
    the budget. The papers' rule (ask when the confidence set's width on the pair exceeds a threshold) is
    approximated by the ensemble's spread.

    Args:
        inner: ``"uniform"``, ``"disagreement"`` or ``"thompson"`` (or a :class:`Selector` of those).
        epsilon: the disagreement a pair must exceed to be asked, in [0, 1) (default 0.02).
        **inner_kw: options of the inner selector (``n_sampled``, ``threshold`` for ``thompson``).
    """

    needs_model = True
    may_skip = True

    def __init__(self, inner: str | Selector = "disagreement", epsilon: float = 0.02, **inner_kw: Any):
        inner_name = inner.name if isinstance(inner, Selector) else inner
        if inner_name not in GATE_INNER:
            raise ValueError(f"a gate wraps one of {list(GATE_INNER)}, got {inner_name!r}")
        self.inner = make_selector(inner, **inner_kw)
        self.epsilon = _check_fraction("epsilon", epsilon)
        self.name = f"gated_{inner_name}"

    def _select(self, a, b, n, reward_model, labelled, rng):
        idx = np.asarray(self.inner._select(a, b, n, reward_model, labelled, rng), dtype=np.int64)
        spread = _member_probs(a[idx], b[idx], reward_model).std(axis=0)
        return idx[spread > self.epsilon]


class InformationGainSelector(Selector):
    """VPL's active queries (Poddar et al. 2024, Sec. 4.3; the authors' ``active_utils.get_queries`` with
    ``"information_gain"``): contexts of ``reward_model.context_size`` pairs, highest information about the
    user's latent first.

    The pool is cut at random into ``N // m`` disjoint sets of ``m = min(n, S)`` pairs (at most
    ``n_candidate_sets``, the authors' 1000); ``reward_model.information_gain(a, b, sets [K, m], rng) -> [K]``
    scores them (:meth:`pbrl.agents.vpl.VPL.information_gain`); whole sets are taken best first until ``n``
    pairs are chosen (the last one cut short when ``n`` is not a multiple of ``S``; pairs left over when ``n``
    exceeds the sets come at random). Fewer queries than ``S`` (``n < S``) are scored as a set of ``n``, not
    cut from the best set of ``S``.

    Args:
        n_candidate_sets: the most contexts scored (default 1000).
        n_label_samples: label vectors per context (default 50, the authors'; all ``2^S`` when fewer).
        estimator: ``"moment"`` (default, pbrl's mutual information) or ``"code"`` (the authors' score),
            passed to ``reward_model.information_gain``.
        labels: ``"uniform"`` (default, the authors': every label vector alike) or ``"predictive"`` (label
            vectors drawn as the model predicts them), passed to ``reward_model.information_gain``.
    """

    name = "information_gain"
    needs_model = True
    model_method = "information_gain"

    def __init__(self, n_candidate_sets: int = 1000, n_label_samples: int = 50, estimator: str = "moment",
                 labels: str = "uniform"):
        for key, v in (("n_candidate_sets", n_candidate_sets), ("n_label_samples", n_label_samples)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{key} must be a positive integer, got {v!r}")
        if estimator not in ("moment", "code"):
            raise ValueError(f"unknown information-gain estimator {estimator!r}; choose 'moment' or 'code'")
        self.n_candidate_sets, self.n_label_samples = int(n_candidate_sets), int(n_label_samples)
        if labels not in ("uniform", "predictive"):
            raise ValueError(f"unknown label sampling {labels!r}; choose 'uniform' or 'predictive'")
        self.estimator, self.labels = estimator, labels

    def _select(self, a, b, n, reward_model, labelled, rng):
        S = min(int(reward_model.context_size), n) if n > 0 else int(reward_model.context_size)
        perm = rng.permutation(len(a))
        k = min(len(a) // S, self.n_candidate_sets)
        if k == 0:
            return perm[:n]
        sets = perm[: k * S].reshape(k, S)
        score = np.asarray(reward_model.information_gain(a, b, sets, rng, n_label_samples=self.n_label_samples,
                                                         estimator=self.estimator, labels=self.labels))
        if score.shape != (k,):
            raise ValueError(f"reward_model.information_gain must return [{k}] scores, got {score.shape}")
        chosen = sets[_top(score, k)].reshape(-1)
        return np.concatenate([chosen, perm[k * S :]])[:n]


#: the query selectors' names, as :func:`make_selector`, the CLI and configs take them
SELECTORS = ("uniform", "disagreement", "entropy", "kcenter", "kcenter_disagreement", "kcenter_entropy",
             "thompson", "gated_uniform", "gated_disagreement", "gated_thompson", "information_gain")
#: the selectors that work with a reward ensemble (``preference_probs``): every one but ``information_gain``,
#: which needs a latent-variable model (VPL)
ENSEMBLE_SELECTORS = SELECTORS[:-1]


def make_selector(name: str, **kw: Any) -> Selector:
    """A query selector by name: ``uniform, disagreement, entropy, kcenter, kcenter_disagreement,
    kcenter_entropy, thompson, gated_uniform, gated_disagreement, gated_thompson, information_gain``. Keyword
    arguments go to the selector (``pool_fraction`` for the k-center ones; ``n_sampled``, ``threshold`` for
    ``thompson``; ``epsilon`` and the inner selector's options for the gated ones; ``n_candidate_sets``,
    ``n_label_samples``, ``estimator``, ``labels`` for ``information_gain``)."""
    if isinstance(name, Selector):
        return name
    if not isinstance(name, str) or name not in SELECTORS:
        raise ValueError(f"unknown query selector {name!r}; choose one of {list(SELECTORS)}")
    if name == "uniform":
        sel: Selector = UniformSelector()
    elif name == "disagreement":
        sel = DisagreementSelector()
    elif name == "entropy":
        sel = EntropySelector()
    elif name == "thompson":
        return ThompsonSelector(**kw)
    elif name == "information_gain":
        return InformationGainSelector(**kw)
    elif name.startswith("gated_"):
        return GatedSelector(name.split("_", 1)[1], **kw)
    else:
        score = None if name == "kcenter" else name.split("_", 1)[1]
        return KCenterSelector(score=score, **kw)
    if kw:
        raise TypeError(f"the '{name}' selector takes no options, got {sorted(kw)}")
    return sel


def candidate_pairs(
    trajectories: Sequence[Trajectory],
    n: int,
    length: int,
    rng: np.random.Generator | int | None = None,
    recent_episodes: int | None = None,
) -> tuple[Segments, Segments]:
    """A pool of ``n`` candidate pairs of ``length``-step windows (uniform over windows, as B-Pref).

    With ``recent_episodes=K``, windows come only from the last K trajectories of the list (QPA's
    near on-policy query pool; trajectories are assumed to be in the order they were collected).
    """
    if not isinstance(trajectories, Sequence) or len(trajectories) == 0:
        raise ValueError("candidate_pairs needs a non-empty list of Trajectory objects")
    if recent_episodes is not None:
        if not isinstance(recent_episodes, (int, np.integer)) or recent_episodes < 1:
            raise ValueError(f"recent_episodes must be a positive integer or None, got {recent_episodes!r}")
        trajectories = list(trajectories)[-int(recent_episodes):]
    return sample_segment_pairs(trajectories, n, length, rng)
