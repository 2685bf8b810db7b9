"""Teachers that no single Markovian reward explains: an intransitive population and a last-step teacher.

Both serve the claims of SPO (Swamy et al., "A Minimaximalist Approach to Reinforcement Learning from Human
Feedback", ICML 2024): that self-play on win rates handles preferences that are *intransitive* (a population
of raters with different objectives, whose aggregate preference can cycle) and *non-Markovian* (they judge
a whole segment by something no per-step reward sums to).

:class:`PopulationTeacher` (registry name ``intransitive``): ``K`` scripted raters, each with its own
objective over a segment; every query is answered by ONE rater drawn at random (``weights``, uniform by
default), who prefers the segment with the higher objective (0.5 when equal). The population's preference
is ``P(b > a) = sum_k w_k [f_k(b) > f_k(a)] (+ w_k / 2 on ties)``. With three raters whose rankings of three
segments are rotations of each other (``f_1: A > B > C``, ``f_2: B > C > A``, ``f_3: C > A > B``) every
segment beats the next with probability 2/3: rock-paper-scissors, a Condorcet cycle that no reward
function can represent.

:class:`LastStepTeacher` (``last_step``): prefers the segment whose *last* step has the higher true reward
(0.5 when equal), the non-Markovian preference that pbrl's Preference Transformer tests use
(``tests/helpers.py``, ``last_only=True``).

Objectives (:data:`OBJECTIVES`), each ``Segments -> [N]``, higher is better unless the name is prefixed
with ``-``:

* ``return``: the undiscounted true return ``sum_k r_k``;
* ``last``: the true reward of the last step ``r_{H-1}``;
* ``ctrl``: the control energy ``sum_k ||a_k||^2`` (``-ctrl``: less energy is better);
* ``obs<i>``: the sum of observation dimension ``i`` over the segment (``obs0``: ``sum_k s_k[0]``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np

from pbrl.segments import Segments
from pbrl.teachers import Teacher, _check_pair

__all__ = ["PopulationTeacher", "LastStepTeacher", "OBJECTIVES", "objective_values", "DEFAULT_POPULATION"]

#: named segment objectives, ``Segments -> [N]`` float64 (higher is better)
OBJECTIVES: dict[str, Callable[[Segments], np.ndarray]] = {
    "return": lambda s: s.reward.astype(np.float64).sum(1),
    "last": lambda s: s.reward[:, -1].astype(np.float64),
    "ctrl": lambda s: np.square(s.act.astype(np.float64)).sum((1, 2)),
}

#: the default population: return-seeker, energy-saver, finish-judge (one rater each, drawn uniformly)
DEFAULT_POPULATION = ("return", "-ctrl", "last")

_OBS = re.compile(r"^obs(\d+)$")


def _objective(name: str) -> tuple[Callable[[Segments], np.ndarray], float]:
    """The objective function and its sign (``-name``: lower is better); ``ValueError`` for an unknown name."""
    sign = -1.0 if name.startswith("-") else 1.0
    base = name.lstrip("-")
    if base in OBJECTIVES:
        return OBJECTIVES[base], sign
    m = _OBS.match(base)
    if m:
        i = int(m.group(1))

        def f(s: Segments) -> np.ndarray:
            if i >= s.obs_dim:
                raise ValueError(f"objective 'obs{i}' reads observation dimension {i}, but observations have "
                                 f"{s.obs_dim}; choose obs0..obs{s.obs_dim - 1}")
            return s.obs[:, :, i].astype(np.float64).sum(1)

        return f, sign
    raise ValueError(f"unknown objective {name!r}; choose one of {', '.join(OBJECTIVES)} or obs<i> "
                     "(prefix '-' for lower-is-better)")


def objective_values(seg: Segments, objectives: Sequence[str]) -> np.ndarray:
    """Every objective (sign applied) of every segment, ``[N, K]`` float64."""
    return np.stack([sign * f(seg) for f, sign in map(_objective, objectives)], 1)


class PopulationTeacher(Teacher):
    """An intransitive population: each query is answered by one rater drawn at random (module docstring).

    Args:
        objectives: one objective name per rater (default :data:`DEFAULT_POPULATION`: ``return``, ``-ctrl``,
            ``last``); at least two; a name may repeat (two raters with the same objective).
        weights: the probability of drawing each rater (default uniform); >= 0, summing to a positive number
            (normalised).
        seed: seed or Generator of the rater draws.
    """

    name = "intransitive"

    def __init__(self, objectives: Sequence[str] = DEFAULT_POPULATION, weights: Sequence[float] | None = None,
                 seed: int | np.random.Generator | None = 0):
        if isinstance(objectives, str) or not isinstance(objectives, Sequence) or len(objectives) < 2:
            raise ValueError(f"objectives must list at least two objective names (one per rater), got {objectives!r}")
        for o in objectives:
            _objective(str(o))  # one clear error for an unknown name
        if weights is None:
            w = np.full(len(objectives), 1.0 / len(objectives))
        else:
            try:
                w = np.asarray(weights, dtype=np.float64).reshape(-1)
            except (TypeError, ValueError):
                w = np.array([np.nan])
            if len(w) != len(objectives) or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
                raise ValueError(f"weights must be {len(objectives)} numbers >= 0 with a positive sum (one per "
                                 f"objective), got {weights!r}")
            w = w / w.sum()
        super().__init__(seed)
        self.objectives = tuple(str(o) for o in objectives)
        self.weights = w

    def __repr__(self) -> str:
        return f"PopulationTeacher(objectives={self.objectives}, weights={np.round(self.weights, 4).tolist()})"

    def rater_labels(self, a: Segments, b: Segments) -> np.ndarray:
        """Every rater's label of every pair, ``[N, K]``: 1.0 b has the higher objective, 0.0 a, 0.5 equal."""
        _check_pair(a, b)
        fa, fb = objective_values(a, self.objectives), objective_values(b, self.objectives)
        return np.where(fb > fa, 1.0, np.where(fb < fa, 0.0, 0.5)).astype(np.float32)

    def preference(self, a: Segments, b: Segments) -> np.ndarray:
        """The population's probability that b is preferred, ``[N]``: ``rater_labels @ weights``."""
        return (self.rater_labels(a, b).astype(np.float64) @ self.weights).astype(np.float32)

    def label(self, a: Segments, b: Segments) -> np.ndarray:
        """Labels ``[N]``: the label of one rater per pair, drawn with probabilities ``weights``."""
        lab = self.rater_labels(a, b)
        who = self.rng.choice(len(self.objectives), size=len(a), p=self.weights)
        return lab[np.arange(len(a)), who]


class LastStepTeacher(Teacher):
    """Prefers the segment whose last step has the higher true reward (a non-Markovian preference).

    Args:
        seed: unused by the rule (it is deterministic); kept for the common teacher interface.
    """

    name = "last_step"

    def label(self, a: Segments, b: Segments) -> np.ndarray:
        """Labels ``[N]``: 1.0 if ``b.reward[:, -1] > a.reward[:, -1]``, 0.0 if lower, 0.5 if equal."""
        _check_pair(a, b)
        ra, rb = a.reward[:, -1], b.reward[:, -1]
        return np.where(rb > ra, 1.0, np.where(rb < ra, 0.0, 0.5)).astype(np.float32)
