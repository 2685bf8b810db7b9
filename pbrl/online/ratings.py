"""Rating feedback in the online loop: :class:`RatingCallback`, the feedback callback whose queries are
single segments that a rating teacher sorts into classes (RbRL, White et al., AAAI 2024).

Everything else is the :class:`~pbrl.online.feedback.PreferenceCallback`'s: B-Pref's schedule and budget
accounting (every segment asked counts against ``total_feedback``, skipped or not), the query pool, the
hooks, the refit (a :class:`~pbrl.reward_models.ratings.RatingTrainer`), replay relabelling and checkpoints
(the :class:`~pbrl.ratings.RatingDataset` takes the place of the preference dataset).

Query selection over single segments (:data:`RATING_SELECTORS`): ``uniform`` (the candidates are the
queries), or ``disagreement``: the ``n`` of ``large_batch * n`` candidates whose predicted return varies most
across the reward ensemble's members (the RbRL authors' disagreement sampling). The first session is
uniform, as PEBBLE's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pbrl.online.feedback import PreferenceCallback
from pbrl.ratings import RatingDataset
from pbrl.segments import Trajectory, sample_segments

__all__ = ["RatingCallback", "RATING_SELECTORS", "rating_selector", "select_segments"]

#: query selectors that work on single segments
RATING_SELECTORS = ("uniform", "disagreement")


def rating_selector(selector: Any) -> str:
    """The name of ``selector`` (a name or a selector object) if it works on single segments; else one
    clear ``ValueError``."""
    name = selector if isinstance(selector, str) else getattr(selector, "name", type(selector).__name__)
    if name not in RATING_SELECTORS:
        raise ValueError(f"query selector '{name}' does not work on single segments; rating queries use one "
                         f"of {', '.join(RATING_SELECTORS)}")
    return name


def select_segments(name: str, candidates: Any, n: int, reward_model: Any = None) -> np.ndarray:
    """``n`` distinct indices into ``candidates`` (a Segments batch): all of the first ``n`` for ``uniform``
    (the candidates were drawn at random), the ``n`` with the largest std of the members' predicted returns
    for ``disagreement`` (ties by index)."""
    rating_selector(name)
    if n > len(candidates):
        raise ValueError(f"cannot select {n} queries from {len(candidates)} candidate segments")
    if name == "uniform":
        return np.arange(n)
    std = reward_model.segment_returns(candidates).std(axis=0)
    return np.sort(np.argsort(-std, kind="stable")[:n])


class RatingCallback(PreferenceCallback):
    """:class:`~pbrl.online.feedback.PreferenceCallback` for a rating teacher: a session rates single segments.

    Takes the same arguments; ``teacher`` must rate (``teacher.rate(segments)``, ``teacher.n_classes``, e.g.
    :class:`~pbrl.teachers.RatingTeacher`) and ``selector`` must be one of :data:`RATING_SELECTORS`. The
    collected ratings are in ``callback.ratings`` (also ``callback.preferences``, the name every run and
    checkpoint reads), a :class:`~pbrl.ratings.RatingDataset`.
    """

    def __init__(self, reward_model: Any, teacher: Any, selector: Any, *args: Any, **kwargs: Any):
        if getattr(teacher, "feedback", None) != "rating" or not hasattr(teacher, "rate"):
            raise TypeError(f"a RatingCallback needs a rating teacher (rate(segments), n_classes; e.g. "
                            f"make_teacher('rating')), got {type(teacher).__name__}")
        super().__init__(reward_model, teacher, rating_selector(selector), *args, **kwargs)
        self.n_classes = int(teacher.n_classes)

    @property
    def ratings(self) -> RatingDataset | None:
        """Every rating collected so far (answered queries only)."""
        return self.preferences

    def empty_labels(self, obs_dim: int, act_dim: int, metadata: dict | None = None) -> RatingDataset:
        """An empty :class:`~pbrl.ratings.RatingDataset` of the teacher's number of classes."""
        return RatingDataset.empty(self.segment_length, obs_dim, act_dim, self.n_classes, metadata=metadata)

    def ask(self, episodes: list[Trajectory], n: int) -> int:
        """Draw ``n`` (uniform) or ``large_batch * n`` (disagreement) candidate segments, choose ``n``, have the
        teacher rate them and store the answered ones; returns how many were answered."""
        name = "uniform" if self.updates == 0 else self.selector.name
        n_candidates = n if name == "uniform" else n * self.large_batch
        cand = sample_segments(episodes, n_candidates, self.segment_length, self.rng)
        q = cand[select_segments(name, cand, n, self.reward_model)]
        ratings = np.asarray(self.teacher.rate(q), dtype=np.float32)
        return self.preferences.append(q, ratings)
