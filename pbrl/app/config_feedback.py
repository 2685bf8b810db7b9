"""Validation of what a run's feedback comes from: the teacher's keyword arguments, a rating teacher
against the agent (only agents whose class lists ``"rating"`` in ``feedback_kinds`` learn from ratings),
and an offline run's ``labels`` file, and the keyword-argument check they share with :mod:`pbrl.app.config`
(:func:`check_kwargs`). Used by :mod:`pbrl.app.config`; every check raises one ``ValueError`` naming the key and
the fix."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from pbrl.agents.registry import AGENTS, agent_names, get_agent
from pbrl.envs.regret import CRITIC_CHOICES, dataset_regret_teacher
from pbrl.multi_user import MultiUserTeacher
from pbrl.ratings import RatingDataset, load_labels
from pbrl.teachers import HierarchicalTeacher, RatingTeacher, ScriptedTeacher
from pbrl.teachers_mixture import LastStepTeacher, PopulationTeacher
from pbrl.validation import check_int

__all__ = ["check_kwargs", "check_teacher_kwargs", "feedback_kinds", "check_feedback", "check_labels_file", "needs_user_ids"]


def check_kwargs(name: str, kwargs: Any, target, where: str) -> None:
    """Every key of ``kwargs`` must be a parameter of ``target`` (unless it takes ``**kwargs``)."""
    if not isinstance(kwargs, dict):
        raise ValueError(f"{name} must be a mapping of keyword arguments, got {type(kwargs).__name__}")
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):
        return
    params = sig.parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    allowed = sorted(k for k, p in params.items() if k not in ("self",) and p.kind is not inspect.Parameter.VAR_POSITIONAL)
    for k in kwargs:
        if k not in params:
            raise ValueError(f"unknown key '{k}' in {name} for {where}; allowed keys: {', '.join(allowed)}")


def check_teacher_kwargs(teacher: str, kwargs: Any, n_classes: Any = None) -> None:
    """``teacher_kwargs`` are arguments of the teacher's class (``RatingTeacher`` for ``rating``, else
    ``HierarchicalTeacher`` for ``heron``, else ``ScriptedTeacher``), without ``seed`` or ``n_classes``;
    ``n_classes`` only with ``rating``; a rating or hierarchical teacher can be built from them."""
    if teacher == "regret":
        _check_regret_kwargs(kwargs)
    else:
        klass = {"rating": RatingTeacher, "heron": HierarchicalTeacher, "multi_user": MultiUserTeacher,
                 "intransitive": PopulationTeacher, "last_step": LastStepTeacher}.get(teacher, ScriptedTeacher)
        check_kwargs("teacher_kwargs", kwargs, klass.__init__, f"teacher '{teacher}'")
    if "seed" in kwargs:
        raise ValueError("teacher_kwargs must not set 'seed'; the run's seed seeds the teacher")
    if "n_classes" in kwargs:
        raise ValueError("teacher_kwargs must not set 'n_classes'; use the config key 'n_classes'")
    if n_classes is not None:
        if teacher != "rating":
            raise ValueError(f"n_classes applies to the rating teacher only (teacher is '{teacher}'); "
                             "drop n_classes or pass --teacher rating")
        check_int("n_classes", n_classes, 2)
    if teacher in ("heron", "multi_user"):
        try:
            klass(**kwargs)
        except (TypeError, ValueError) as e:
            raise ValueError(f"teacher '{teacher}': {e}") from None
    if teacher == "intransitive":
        try:
            PopulationTeacher(**kwargs)
        except (TypeError, ValueError) as e:
            raise ValueError(f"teacher 'intransitive': {e}") from None
    if teacher == "rating":
        try:
            RatingTeacher(**{**kwargs, **({"n_classes": n_classes} if n_classes is not None else {})})
        except (TypeError, ValueError) as e:
            raise ValueError(f"teacher 'rating': {e}") from None


def _check_regret_kwargs(kwargs: Any) -> None:
    """The offline regret teacher's ``teacher_kwargs`` are arguments of
    :func:`pbrl.envs.regret.dataset_regret_teacher` (``critic``, ``gamma``, ``beta``, ``n_samples``,
    ``value_gamma``); ``critic`` is ``auto``, ``returns`` or an existing SB3 SAC ``.zip``."""
    if isinstance(kwargs, dict) and "ds" in kwargs:
        raise ValueError("teacher_kwargs must not set 'ds'; the run's dataset is labelled")
    check_kwargs("teacher_kwargs", kwargs, dataset_regret_teacher, "teacher 'regret'")
    critic = kwargs.get("critic", "auto")
    if not isinstance(critic, str) or (critic not in CRITIC_CHOICES and not Path(critic).is_file()):
        raise ValueError(f"teacher_kwargs critic {critic!r} is neither {' nor '.join(CRITIC_CHOICES)} nor an existing "
                         "SB3 SAC .zip file; give one of those")


def feedback_kinds(kind: str, agent: str) -> tuple[str, ...] | None:
    """The kinds of feedback an agent learns from (``None`` when the class cannot be imported here)."""

    try:
        cls = get_agent(agent, kind)
    except ValueError:
        return None
    return tuple(getattr(cls, "feedback_kinds", ("preference",)))


def needs_user_ids(agent: str) -> bool:
    """Whether the agent learns from labels that carry user ids (its class's ``needs_user_ids``: VPL)."""
    if agent not in AGENTS or not AGENTS[agent].needs_preferences:
        return False
    try:
        return bool(getattr(AGENTS[agent].load(), "needs_user_ids", False))
    except ValueError:  # not installed: the run fails at construction with the agent's own message
        return False


def check_feedback(teacher: str, kind: str, agent: str) -> None:
    """A rating teacher needs an agent that learns from ratings; an agent that learns one reward per user
    (VPL) needs the multi-user teacher."""
    if teacher != "multi_user" and needs_user_ids(agent):
        raise ValueError(f"agent '{agent}' learns one reward per user and needs labels with user ids; use "
                         "--teacher multi_user (or a labels file with user ids)")
    if teacher != "rating" or agent not in AGENTS or not AGENTS[agent].needs_preferences:
        return  # agents that learn from no labels ignore the teacher
    kinds = feedback_kinds(kind, agent)
    if kinds is not None and "rating" not in kinds:
        ok = [a for a in agent_names(kind)
              if AGENTS[a].needs_preferences and "rating" in (feedback_kinds(kind, a) or ())]
        raise ValueError(f"agent '{agent}' learns from preference pairs, not ratings; with teacher 'rating' "
                         f"use one of: {', '.join(ok)}")


def check_labels_file(path: Any, agent: str) -> None:
    """The offline ``labels`` file exists, is a pbrl label file, and its kind suits the agent."""
    if not isinstance(path, str):
        raise ValueError(f"labels must be the path of a label file (.h5), got {path!r}")
    if not Path(path).is_file():
        raise ValueError(f"labels file '{path}' does not exist; give a preference or rating dataset (.h5)")

    try:
        labels = load_labels(path)
    except (OSError, ValueError) as e:
        raise ValueError(f"labels file '{path}' cannot be used: {e}") from None
    if isinstance(labels, RatingDataset):
        kinds = feedback_kinds("offline", agent)
        if kinds is not None and "rating" not in kinds:
            raise ValueError(f"labels file '{path}' holds ratings, but agent '{agent}' learns from preference pairs; "
                             "use agent 'mriql' or a preference file")
    if len(labels) == 0:
        raise ValueError(f"labels file '{path}' holds no labels")
    if needs_user_ids(agent) and getattr(labels, "user", None) is None:
        raise ValueError(f"labels file '{path}' has no user ids, but agent '{agent}' learns one reward per user; "
                         "label with --teacher multi_user or export the labelling page per annotator")
