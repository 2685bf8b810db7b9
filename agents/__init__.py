"""Preference-based agents, one file per algorithm. Installed as ``pbrl.agents``.

The classes import lazily, as ``from stable_baselines3 import SAC`` reads::

    from pbrl.agents import PEBBLE, SURF, QPA, RUNE, PrefPPO, MRIQL, IQL, IPL, IPLAWAC, CPL, CPLBC, BC, OPPO, PEARL

:mod:`pbrl.agents.registry` is the one list of agents (names, kinds, learners).
"""

from __future__ import annotations

from typing import Any

from pbrl.agents.registry import AGENTS, agent_names, class_names, get_agent

__all__ = ["AGENTS", "agent_names", "get_agent", *sorted(class_names())]


def __getattr__(name: str) -> Any:
    table = class_names()
    if name in table:
        cls = AGENTS[table[name]].load()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module 'pbrl.agents' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
