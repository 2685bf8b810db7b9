"""Scripted teachers: who says which of two segments is better.

:class:`ScriptedTeacher` implements the simulated-human model of B-Pref (Lee et al., "B-Pref:
Benchmarking Preference-Based Reinforcement Learning", NeurIPS Datasets & Benchmarks 2021, Sec. 3.2),
applied to the *true* segment rewards in this order:

1. **skip**: drop the query when ``max(R_a, R_b) < eps_skip * margin`` (both segments uninformative);
2. **equal**: mark the pair equal when ``|R_a - R_b| < eps_equal * |margin|`` (undiscounted sums);
3. **myopic**: weight the reward at step ``k`` by ``gamma ** (H - 1 - k)`` (recent steps count more);
4. **rational**: label 1.0 if ``R_b > R_a`` (on the discounted sums) else 0.0;
5. **stochastic** (finite ``beta``): label ~ Bernoulli(sigmoid(beta * (R_b - R_a))) (Bradley-Terry);
6. **mistake**: flip the label with probability ``eps_mistake``;
7. equal pairs get 0.5.

``margin`` is the mean true return of a segment-length window over recent episodes, as B-Pref sets its
thresholds (mean episode return * H / episode length); set it explicitly, with :meth:`ScriptedTeacher.set_margin`
or :meth:`ScriptedTeacher.update_margin`. If it is never set, the mean |return| of the queried
segments is used, which estimates the same quantity when queries are drawn uniformly from recent episodes.

:class:`RegretTeacher` labels by regret (Knox et al., "Models of human preference for learning reward
functions", 2022): a segment's score is its discounted reward sum plus ``gamma^H V(s_H) - V(s_0)``.

:class:`HierarchicalTeacher` compares reward factors level by level, most important first (HERON, Bukharin et
al., "Deep Reinforcement Learning from Hierarchical Weak Preference Feedback"); see its docstring.

:class:`RatingTeacher` rates single segments into ``n_classes`` ordered classes from their true return
(White et al., "Rating-based Reinforcement Learning", AAAI 2024), with the B-Pref options that carry over
(skip, myopic, mistake); see its docstring.

All teachers return float labels with NaN for skipped queries, and are deterministic given their seed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from pbrl.segments import FACTOR_KEYS, Segments
from pbrl.validation import check_int

__all__ = ["Teacher", "ScriptedTeacher", "RegretTeacher", "HierarchicalTeacher", "HERON_HALFCHEETAH_ORDER", "RatingTeacher", "MISTAKE_KINDS", "TEACHER_PRESETS", "TEACHERS",
           "make_teacher", "teacher_names"]

#: the authors' HalfCheetah order for HERON (``--order 0,1``): speed, then energy (control cost)
HERON_HALFCHEETAH_ORDER: tuple[str, ...] = ("reward_forward", "reward_ctrl")

#: B-Pref's scripted teachers by name: the :class:`ScriptedTeacher` arguments of each
TEACHER_PRESETS: dict[str, dict[str, float]] = {
    "oracle": {},
    "stoc": {"beta": 1.0},
    "mistake": {"eps_mistake": 0.1},
    "skip": {"eps_skip": 0.1},
    "myopic": {"gamma": 0.9},
    "equal": {"eps_equal": 0.1},
}


def _check_pair(a: Segments, b: Segments) -> None:
    if not isinstance(a, Segments) or not isinstance(b, Segments):
        raise TypeError(f"teachers label Segments batches, got {type(a).__name__} and {type(b).__name__}")
    if len(a) != len(b):
        raise ValueError(f"a and b must hold the same number of segments, got {len(a)} and {len(b)}")
    if a.length != b.length:
        raise ValueError(f"a and b must have the same segment length, got {a.length} and {b.length}")


class Teacher(ABC):
    """Base class of every teacher: ``label(a, b) -> [N]`` float labels (1.0 = b preferred, NaN = skipped).

    Subclasses own a ``numpy.random.Generator`` in ``self.rng``; :meth:`get_state` / :meth:`set_state`
    save and restore it so that a resumed run gives the same labels as an uninterrupted one.
    """

    name: str = "teacher"
    #: what the teacher answers: ``"preference"`` (``label(a, b)`` on pairs) or ``"rating"`` (``rate(seg)``)
    feedback: str = "preference"

    def __init__(self, seed: int | np.random.Generator | None = 0):
        self.rng = np.random.default_rng(seed)

    @abstractmethod
    def label(self, a: Segments, b: Segments) -> np.ndarray:
        """Labels ``[N]`` for the pairs ``(a[i], b[i])``: 1.0 b preferred, 0.0 a, 0.5 equal, NaN skipped."""

    def answer(self, a: Segments, b: Segments) -> tuple[np.ndarray, np.ndarray | None]:
        """Labels ``[N]`` (as :meth:`label`) and who gave each one: user ids ``[N]`` (str), or ``None`` for a
        teacher that is one person (every teacher but :class:`~pbrl.multi_user.MultiUserTeacher`)."""
        return self.label(a, b), None

    def update_margin(self, episode_returns: Sequence[float], episode_length: float, segment_length: int) -> None:
        """Hook for teachers whose thresholds follow the agent's recent returns (no-op by default)."""
        return None

    def get_state(self) -> dict[str, Any]:
        """Everything needed to continue labelling identically (RNG state and thresholds)."""
        return {"rng": self.rng.bit_generator.state}

    def set_state(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]


class ScriptedTeacher(Teacher):
    """The B-Pref simulated teacher (see the module docstring for the exact model).

    Args:
        beta: rationality; ``inf`` gives deterministic labels, finite gives Bradley-Terry sampling.
        gamma: myopic discount in (0, 1]; 1.0 is not myopic.
        eps_mistake: probability of flipping a label.
        eps_skip: skip threshold as a fraction of ``margin`` (0 disables).
        eps_equal: equal threshold as a fraction of ``margin`` (0 disables).
        margin: the scale of a segment's return; ``None`` until set (see module docstring).
        seed: seed or Generator for the stochastic parts.
    """

    def __init__(
        self,
        beta: float = float("inf"),
        gamma: float = 1.0,
        eps_mistake: float = 0.0,
        eps_skip: float = 0.0,
        eps_equal: float = 0.0,
        margin: float | None = None,
        seed: int | np.random.Generator | None = 0,
        name: str = "scripted",
    ):
        if not (beta > 0):
            raise ValueError(f"beta must be > 0 (use inf for a rational teacher), got {beta}")
        if not (0.0 < gamma <= 1.0):
            raise ValueError(f"gamma must be in (0, 1], got {gamma}")
        for key, v in (("eps_mistake", eps_mistake), ("eps_skip", eps_skip), ("eps_equal", eps_equal)):
            if not (0.0 <= v <= 1.0):
                raise ValueError(f"{key} must be in [0, 1], got {v}")
        if margin is not None and not np.isfinite(margin):
            raise ValueError(f"margin must be finite, got {margin}")
        super().__init__(seed)
        self.beta = float(beta)
        self.gamma = float(gamma)
        self.eps_mistake = float(eps_mistake)
        self.eps_skip = float(eps_skip)
        self.eps_equal = float(eps_equal)
        self.margin = None if margin is None else float(margin)
        self.name = name

    @classmethod
    def preset(cls, name: str, seed: int | np.random.Generator | None = 0, **overrides) -> ScriptedTeacher:
        """One of B-Pref's teachers: ``oracle, stoc, mistake, skip, myopic, equal``."""
        if name not in TEACHER_PRESETS:
            raise ValueError(f"unknown teacher preset '{name}'; choose one of {sorted(TEACHER_PRESETS)}")
        return cls(**{**TEACHER_PRESETS[name], **overrides}, seed=seed, name=name)

    def __repr__(self) -> str:
        return (
            f"ScriptedTeacher(name={self.name!r}, beta={self.beta}, gamma={self.gamma}, eps_mistake={self.eps_mistake}, "
            f"eps_skip={self.eps_skip}, eps_equal={self.eps_equal}, margin={self.margin})"
        )

    # ---------------------------------------------------------------- margin
    def set_margin(self, margin: float) -> None:
        """Set the return scale used by the skip and equal thresholds (RatingTeacher: skip)."""
        if not np.isfinite(margin):
            raise ValueError(f"margin must be finite, got {margin}")
        self.margin = float(margin)

    def update_margin(self, episode_returns: Sequence[float], episode_length: float, segment_length: int) -> None:
        """B-Pref's rule: margin = mean recent episode return * segment_length / episode_length."""
        rets = np.asarray(episode_returns, dtype=np.float64)
        if rets.size and episode_length > 0:
            self.set_margin(float(rets.mean()) * segment_length / float(episode_length))

    def get_state(self) -> dict[str, Any]:
        return {**super().get_state(), "margin": self.margin}

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        self.margin = state.get("margin", self.margin)

    # ---------------------------------------------------------------- labels
    def label(self, a: Segments, b: Segments) -> np.ndarray:
        """Labels ``[N]``: 1.0 b preferred, 0.0 a preferred, 0.5 equal, NaN skipped."""
        _check_pair(a, b)
        ra, rb = a.reward.astype(np.float64), b.reward.astype(np.float64)
        sum_a, sum_b = ra.sum(1), rb.sum(1)
        n = len(a)
        margin = self.margin
        if margin is None:
            margin = float(np.mean(np.abs(np.concatenate([sum_a, sum_b])))) if n else 0.0

        skip = np.zeros(n, bool)
        if self.eps_skip > 0:
            skip = np.maximum(sum_a, sum_b) < self.eps_skip * margin
        equal = np.zeros(n, bool)
        if self.eps_equal > 0:
            # a tolerance is a magnitude: |margin| keeps it meaningful on tasks with negative returns
            equal = np.abs(sum_a - sum_b) < self.eps_equal * abs(margin)

        if self.gamma < 1.0:
            H = a.length
            w = self.gamma ** (H - 1 - np.arange(H))
            sum_a, sum_b = ra @ w, rb @ w

        if np.isinf(self.beta):
            lab = (sum_b > sum_a).astype(np.float64)
        else:
            z = np.clip(self.beta * (sum_b - sum_a), -60.0, 60.0)
            p = 1.0 / (1.0 + np.exp(-z))
            lab = (self.rng.random(n) < p).astype(np.float64)
        if self.eps_mistake > 0:
            flip = self.rng.random(n) < self.eps_mistake
            lab = np.where(flip, 1.0 - lab, lab)
        lab[equal] = 0.5
        lab[skip] = np.nan
        return lab.astype(np.float32)


class RegretTeacher(Teacher):
    """Labels by regret: score(seg) = sum_k gamma^k r_k + gamma^H V(s_H) - V(s_0) (Knox et al. 2022).

    A segment with low regret (high score) is preferred. ``value_fn`` maps observations ``[N, obs_dim]``
    to values ``[N]`` (for example the critic of a trained agent, or a known value in tests). Segments must
    carry ``next_obs`` (the state after their last step). With finite ``beta`` labels are sampled from
    the Bradley-Terry model on the scores.

    CPL's oracle labels (Hejna et al. 2024, ``scripts/add_pref_labels.py``, label key ``rl_sum``) are this
    score with ``gamma = 1`` and ``V(s) = E_{a ~ pi*}[Q*(s, a)]`` of an expert SAC; build them for an offline
    dataset with :func:`pbrl.envs.regret.dataset_regret_teacher`.

    Args:
        value_fn: ``obs [N, obs_dim] -> V [N]``.
        gamma: discount of the reward sum and of ``V(s_H)`` (default 0.99; CPL's labels use 1.0).
        beta: Bradley-Terry inverse temperature (default inf: the better score always wins).
        seed: seed of the Bernoulli draws.
        terminal_fn: optional ``segments -> [N] bool``, whether each segment ends in a terminal state;
            there ``V(s_H)`` is 0 (nothing follows a fall), whatever ``value_fn`` says of that state.
        value_source: how ``value_fn`` was made (stored with the labels).
    """

    name = "regret"

    def __init__(
        self,
        value_fn: Callable[[np.ndarray], np.ndarray],
        gamma: float = 0.99,
        beta: float = float("inf"),
        seed: int | np.random.Generator | None = 0,
        terminal_fn: Callable[[Segments], np.ndarray] | None = None,
        value_source: str = "value_fn",
    ):
        if not callable(value_fn):
            raise TypeError("value_fn must be callable: obs [N, obs_dim] -> values [N]")
        if terminal_fn is not None and not callable(terminal_fn):
            raise TypeError("terminal_fn must be callable: segments -> [N] bool")
        if not (0.0 < gamma <= 1.0):
            raise ValueError(f"gamma must be in (0, 1], got {gamma}")
        if not (beta > 0):
            raise ValueError(f"beta must be > 0, got {beta}")
        super().__init__(seed)
        self.value_fn = value_fn
        self.gamma = float(gamma)
        self.beta = float(beta)
        self.terminal_fn = terminal_fn
        self.value_source = str(value_source)

    def score(self, seg: Segments) -> np.ndarray:
        """Negative regret of each segment, ``[N]``."""
        if seg.next_obs is None:
            raise ValueError(
                "RegretTeacher needs the state after each segment (Segments.next_obs); "
                "sample segments from trajectories that record it"
            )
        H = seg.length
        disc = self.gamma ** np.arange(H)
        v0 = np.asarray(self.value_fn(seg.obs[:, 0]), dtype=np.float64).reshape(-1)
        vH = np.asarray(self.value_fn(seg.next_obs), dtype=np.float64).reshape(-1)
        if v0.shape != (len(seg),) or vH.shape != (len(seg),):
            raise ValueError(f"value_fn must return one value per observation, got shape {v0.shape}")
        if self.terminal_fn is not None:
            vH = np.where(np.asarray(self.terminal_fn(seg), dtype=bool).reshape(-1), 0.0, vH)
        return seg.reward.astype(np.float64) @ disc + self.gamma**H * vH - v0

    def label(self, a: Segments, b: Segments) -> np.ndarray:
        _check_pair(a, b)
        sa, sb = self.score(a), self.score(b)
        if np.isinf(self.beta):
            lab = (sb > sa).astype(np.float64)
            lab[sa == sb] = 0.5
        else:
            p = 1.0 / (1.0 + np.exp(-np.clip(self.beta * (sb - sa), -60, 60)))
            lab = (self.rng.random(len(a)) < p).astype(np.float64)
        return lab.astype(np.float32)


class HierarchicalTeacher(Teacher):
    """HERON's hierarchical teacher (Bukharin et al., "Deep Reinforcement Learning from Hierarchical Weak
    Preference Feedback"; the authors' code ``abukharin3/HERON``, ``RewardModel.get_loss``).

    The user ranks reward factors by importance (``order``, most important first), each with a margin
    ``sigma_k``. A pair is compared down the ranking: at level ``k`` with factor ``f_k`` and segment sums
    ``F_k(a)``, ``F_k(b)``,

    * ``F_k(b) > F_k(a) + sigma_k * std(F_k)``: b wins (label 1.0);
    * ``F_k(a) > F_k(b) + sigma_k * std(F_k)``: a wins (label 0.0);
    * otherwise the pair is tied at this level and level ``k + 1`` decides;

    a pair tied at every level gets no label (NaN: a skipped query, not stored). ``std(F_k)`` is the sample
    standard deviation (ddof 1) of ``F_k`` over every segment of the batch being labelled (both sides), as
    the authors' code takes it over the minibatch being compared.

    A factor is higher-is-better (Gymnasium's ``reward_ctrl`` is already a negative cost); a name prefixed
    with ``-`` (``"-obj_to_target"``) is lower-is-better. Factors come from ``Segments.factors`` (recorded by
    the online wrapper from ``info``; :data:`~pbrl.segments.FACTOR_KEYS`).

    Args:
        order: factor names, most important first (default ``("reward_forward", "reward_ctrl")``: speed, then
            energy, the authors' HalfCheetah order ``--order 0,1``).
        sigma: one margin for every level or one per level, each >= 0 (default ``None``: 0.5 at the first
            level and 0.1 at every later one, the authors' HalfCheetah ``--sigma 0.5,0.1``; their code reuses
            the second margin at levels 3 and 4).
        seed: unused by the rule (it is deterministic); kept for the common teacher interface.
    """

    name = "heron"

    def __init__(self, order: Sequence[str] = HERON_HALFCHEETAH_ORDER,
                 sigma: float | Sequence[float] | None = None, seed: int | np.random.Generator | None = 0):
        if isinstance(order, str) or not isinstance(order, Sequence) or len(order) == 0:
            raise ValueError(f"order must be a non-empty list of factor names, most important first, got {order!r}")
        names = [str(o).lstrip("-") for o in order]
        unknown = [n for n in names if n not in FACTOR_KEYS]
        if unknown:
            raise ValueError(f"unknown reward factor(s) {unknown} in order; known factors: {', '.join(FACTOR_KEYS)} "
                             "(prefix '-' for lower-is-better)")
        if len(set(names)) != len(names):
            raise ValueError(f"order names a factor twice: {list(order)}")
        if sigma is None:
            sigma = [0.5] + [0.1] * (len(names) - 1)
        try:
            sig = np.atleast_1d(np.asarray(sigma, dtype=np.float64))
        except (TypeError, ValueError):
            sig = np.array([np.nan])
        if sig.ndim != 1 or len(sig) not in (1, len(names)) or not np.all(np.isfinite(sig)) or np.any(sig < 0):
            raise ValueError(f"sigma must be one margin >= 0 or one per factor in order ({len(names)}), got {sigma!r}")
        super().__init__(seed)
        self.order = tuple(names)
        self.signs = tuple(-1.0 if str(o).startswith("-") else 1.0 for o in order)
        self.sigma = tuple(float(x) for x in np.broadcast_to(sig, (len(names),)))

    def __repr__(self) -> str:
        return f"HierarchicalTeacher(order={self.order}, signs={self.signs}, sigma={self.sigma})"

    def factor_sums(self, seg: Segments) -> np.ndarray:
        """Each segment's sum of every ranked factor (sign applied), ``[N, K]`` in ``order``."""
        if seg.factors is None:
            raise ValueError("the heron teacher compares reward factors, but these segments carry none "
                             "(Segments.factors); use an env that reports reward_* entries in info (Gymnasium "
                             "MuJoCo v5, Meta-World) and segments recorded by pbrl's online wrapper")
        missing = [n for n in self.order if n not in seg.factor_names]
        if missing:
            raise ValueError(f"the segments do not record factor(s) {missing}; they record "
                             f"{list(seg.factor_names)}: rank those")
        return np.stack([sg * seg.factors[n].astype(np.float64).sum(1) for n, sg in zip(self.order, self.signs)], 1)

    def label(self, a: Segments, b: Segments) -> np.ndarray:
        """Labels ``[N]``: 1.0 b wins at the first decisive level, 0.0 a wins, NaN tied at every level."""
        _check_pair(a, b)
        fa, fb = self.factor_sums(a), self.factor_sums(b)
        lab = np.full(len(a), np.nan)
        open_ = np.ones(len(a), bool)
        for k, sigma in enumerate(self.sigma):
            both = np.concatenate([fa[:, k], fb[:, k]])
            margin = sigma * (both.std(ddof=1) if len(both) > 1 else 0.0)
            b_wins = open_ & (fb[:, k] > fa[:, k] + margin)
            a_wins = open_ & (fa[:, k] > fb[:, k] + margin)
            lab[b_wins], lab[a_wins] = 1.0, 0.0
            open_ &= ~(a_wins | b_wins)
        return lab.astype(np.float32)


#: how a rating teacher's mistake changes a class: to a neighbouring class (+-1) or to any other class
MISTAKE_KINDS = ("neighbour", "random")


class RatingTeacher(Teacher):
    """A scripted teacher that rates single segments into ``n_classes`` ordered classes from their true return
    (White et al., "Rating-based Reinforcement Learning", AAAI 2024: synthetic ratings from segment returns).

    Applied to the true segment rewards in this order (B-Pref's options where they carry over to one segment):

    1. **skip**: drop the query when ``R < eps_skip * margin`` (B-Pref's skip rule for a single segment;
       ``margin`` as :class:`ScriptedTeacher`'s: set it, or let :meth:`update_margin` follow recent episodes;
       unset, the mean |return| of the queried segments);
    2. **myopic**: classify the discounted return ``sum_k gamma ** (H - 1 - k) r_k`` (recent steps count more);
    3. **class**: the number of class boundaries at or below the return, so class ``i`` holds returns in
       ``[b_i, b_{i+1})``. The ``n_classes - 1`` boundaries are either

       * fixed (``bins=[b_1, ..., b_{n-1}]``, increasing segment returns given by the user; the authors'
         synthetic teacher uses equal-width bins of the task's segment-return range), or
       * (``bins=None``, the default) the ``i / n`` quantiles of every segment return this teacher has rated
         so far, this batch included: the first batch is split into equally full classes, and the
         boundaries follow the returns the teacher has seen, as a person's notion of "good" adapts to what
         they were shown. Online, where returns grow, a segment rated "good" early may be "average" later;
         use fixed ``bins`` for ratings that never drift;
    4. **mistake**: with probability ``eps_mistake`` the class is changed, to a *neighbouring* class
       (``mistake="neighbour"``, the default: one class up or down with equal probability, the only
       neighbour at either end) or to a uniformly drawn *other* class (``mistake="random"``).

    B-Pref's "equal" option has no single-segment meaning and does not exist here; its "stoc" teacher is
    not modelled either.

    :meth:`rate` returns float32 classes ``[N]`` with NaN for skipped segments; :meth:`label` answers pairs
    through the same ratings (the better-rated segment is preferred, equal ratings give 0.5), so a rating
    teacher also works behind the pair interface.

    Args:
        n_classes: number of classes (>= 2; the paper uses 2 to 6).
        bins: ``None`` (quantile boundaries) or ``n_classes - 1`` increasing finite return boundaries.
        eps_mistake: probability of a mistaken class, in [0, 1].
        mistake: ``"neighbour"`` or ``"random"`` (see above).
        eps_skip: skip threshold as a fraction of ``margin`` (0 disables).
        gamma: myopic discount in (0, 1]; 1.0 is not myopic.
        margin: the scale of a segment's return for the skip threshold (``None`` until set).
        seed: seed or Generator for the mistakes.
    """

    name = "rating"
    feedback = "rating"

    def __init__(
        self,
        n_classes: int = 3,
        bins: Sequence[float] | None = None,
        eps_mistake: float = 0.0,
        mistake: str = "neighbour",
        eps_skip: float = 0.0,
        gamma: float = 1.0,
        margin: float | None = None,
        seed: int | np.random.Generator | None = 0,
        name: str = "rating",
    ):
        n_classes = check_int("n_classes", n_classes, 2)
        if bins is not None:
            b = np.asarray(bins, dtype=np.float64).reshape(-1)
            if len(b) != n_classes - 1:
                raise ValueError(f"bins must hold n_classes - 1 = {n_classes - 1} class boundaries (segment "
                                 f"returns), got {len(b)}")
            if not np.all(np.isfinite(b)) or np.any(np.diff(b) <= 0):
                raise ValueError(f"bins must be finite and strictly increasing, got {b.tolist()}")
            bins = b
        if mistake not in MISTAKE_KINDS:
            raise ValueError(f"unknown mistake kind '{mistake}'; choose one of {', '.join(MISTAKE_KINDS)}")
        for key, v in (("eps_mistake", eps_mistake), ("eps_skip", eps_skip)):
            if not (0.0 <= v <= 1.0):
                raise ValueError(f"{key} must be in [0, 1], got {v}")
        if not (0.0 < gamma <= 1.0):
            raise ValueError(f"gamma must be in (0, 1], got {gamma}")
        if margin is not None and not np.isfinite(margin):
            raise ValueError(f"margin must be finite, got {margin}")
        super().__init__(seed)
        self.n_classes = n_classes
        self.bins = bins
        self.eps_mistake, self.mistake = float(eps_mistake), mistake
        self.eps_skip, self.gamma = float(eps_skip), float(gamma)
        self.margin = None if margin is None else float(margin)
        self.name = name
        #: returns of every segment rated so far (the quantile boundaries' sample; unused with fixed bins)
        self.seen = np.zeros(0, np.float64)

    def __repr__(self) -> str:
        bins = "quantiles" if self.bins is None else self.bins.tolist()
        return (f"RatingTeacher(n_classes={self.n_classes}, bins={bins}, eps_mistake={self.eps_mistake}, "
                f"mistake={self.mistake!r}, eps_skip={self.eps_skip}, gamma={self.gamma}, margin={self.margin})")

    set_margin = ScriptedTeacher.set_margin  # B-Pref's margin rule, as for the scripted teachers
    update_margin = ScriptedTeacher.update_margin

    def get_state(self) -> dict[str, Any]:
        """RNG state, margin and the returns seen (the quantile boundaries' sample)."""
        return {**super().get_state(), "margin": self.margin, "seen": self.seen.copy()}

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`get_state`."""
        super().set_state(state)
        self.margin = state.get("margin", self.margin)
        self.seen = np.asarray(state.get("seen", self.seen), dtype=np.float64).copy()

    def boundaries(self) -> np.ndarray:
        """The current ``n_classes - 1`` class boundaries (fixed ``bins``, or quantiles of the returns seen;
        empty before anything was rated with quantile boundaries)."""
        if self.bins is not None:
            return self.bins.copy()
        if self.seen.size == 0:
            return np.zeros(0)
        return np.quantile(self.seen, np.arange(1, self.n_classes) / self.n_classes)

    def rate(self, seg: Segments) -> np.ndarray:
        """Classes ``[N]`` (float32 integers in ``[0, n_classes)``, 0 = worst) of the segments; NaN where skipped."""
        if not isinstance(seg, Segments):
            raise TypeError(f"a rating teacher rates a Segments batch, got {type(seg).__name__}")
        r = seg.reward.astype(np.float64)
        ret = r.sum(1)
        n = len(seg)
        margin = self.margin
        if margin is None:
            margin = float(np.mean(np.abs(ret))) if n else 0.0
        skip = ret < self.eps_skip * margin if self.eps_skip > 0 else np.zeros(n, bool)
        if self.gamma < 1.0:
            ret = r @ (self.gamma ** (seg.length - 1 - np.arange(seg.length)))
        if self.bins is None:
            self.seen = np.concatenate([self.seen, ret[~skip]])
        cls = np.searchsorted(self.boundaries(), ret, side="right").astype(np.int64)
        if self.eps_mistake > 0:
            wrong = self.rng.random(n) < self.eps_mistake
            k = self.n_classes
            if self.mistake == "neighbour":
                step = np.where(self.rng.random(n) < 0.5, -1, 1)
                step = np.where(cls == 0, 1, np.where(cls == k - 1, -1, step))
                other = cls + step
            else:
                other = (cls + self.rng.integers(1, k, size=n)) % k
            cls = np.where(wrong, other, cls)
        out = cls.astype(np.float32)
        out[skip] = np.nan
        return out

    def label(self, a: Segments, b: Segments) -> np.ndarray:
        """Preference labels from ratings: 1.0 if ``b`` is rated higher, 0.0 if lower, 0.5 if equal, NaN if
        either is skipped (both batches are rated in one call)."""
        _check_pair(a, b)
        ra = self.rate(Segments.concatenate([a, b]))
        ca, cb = ra[: len(a)], ra[len(a):]
        lab = np.where(cb > ca, 1.0, np.where(cb < ca, 0.0, 0.5)).astype(np.float32)
        lab[~(np.isfinite(ca) & np.isfinite(cb))] = np.nan
        return lab


#: Teacher kinds by name -> ``"module:Class"`` (imported on first use, so that ``pbrl.teachers`` never imports
#: the labelling server and ``pbrl.label.teacher`` may import this module without a cycle). The B-Pref presets
#: (:data:`TEACHER_PRESETS`) are ``ScriptedTeacher`` settings on top of these.
TEACHERS: dict[str, str] = {
    "scripted": "pbrl.teachers:ScriptedTeacher",
    "regret": "pbrl.teachers:RegretTeacher",
    "heron": "pbrl.teachers:HierarchicalTeacher",
    "rating": "pbrl.teachers:RatingTeacher",
    "intransitive": "pbrl.teachers_mixture:PopulationTeacher",
    "last_step": "pbrl.teachers_mixture:LastStepTeacher",
    "human": "pbrl.label.teacher:HumanTeacher",
    "multi_user": "pbrl.multi_user:MultiUserTeacher",
}


def teacher_names() -> list[str]:
    """Every name :func:`make_teacher` accepts: the B-Pref presets and the teacher kinds."""
    return sorted([*TEACHER_PRESETS, *TEACHERS])


def make_teacher(name: str, seed: int = 0, **kwargs) -> Teacher:
    """Build a teacher by name: a B-Pref preset (``oracle, stoc, mistake, skip, myopic, equal``),
    ``scripted`` with explicit keyword arguments, ``regret`` (``value_fn=...``), ``heron`` (a
    :class:`HierarchicalTeacher`: ``order=[factor, ...]``, ``sigma``), ``rating`` (a
    :class:`RatingTeacher`: ``n_classes=3, bins=None, eps_mistake, mistake, eps_skip, gamma``), ``intransitive``
    (a :class:`~pbrl.teachers_mixture.PopulationTeacher`: ``objectives=[...]``, ``weights``), ``last_step``
    (:class:`~pbrl.teachers_mixture.LastStepTeacher`), ``human`` (``url=...``; needs the label extra) or
    ``multi_user`` (a :class:`~pbrl.multi_user.MultiUserTeacher`: a population of scripted users with different
    goals, ``goals=[[x, y], ...]``). The registry is :data:`TEACHERS`."""
    import importlib

    if name in TEACHER_PRESETS:
        return ScriptedTeacher.preset(name, seed=seed, **kwargs)
    if name not in TEACHERS:
        raise ValueError(f"unknown teacher '{name}'; choose one of {teacher_names()}")
    mod, cls = TEACHERS[name].split(":")
    klass = getattr(importlib.import_module(mod), cls)
    if name == "human":
        return klass(**kwargs)
    return klass(seed=seed, **kwargs)
