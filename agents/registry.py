"""The one list of pbrl's agents: name -> class, imported lazily.

Every place that needs to know which agents exist reads this module: the ``pbrl`` command and its help
texts, run configs, sweeps, benchmarks and the tests' contract suite. Adding an algorithm is one new file
in ``agents/`` plus one :class:`AgentEntry` here.

Each class also says what it is, as class attributes that the entry mirrors (a test checks they agree):

* ``kind``: ``"online"`` (learns on a live task, on an SB3 learner) or ``"offline"`` (from a dataset);
* ``learner_cls``: the SB3 learner of an online agent (``SAC`` or ``PPO``);
* ``requires_preferences``: whether it learns from labelled pairs (``IQL`` on the true reward and ``BC``
  do not).

The entry repeats ``kind``, ``learner`` and ``needs_preferences`` so that help texts and listings never
import torch or SB3.

Example::

    from pbrl.agents.registry import agent_names, get_agent
    agent_names("online")            # ['hprior', 'pebble', 'pref_ppo', 'qpa', 'rime', 'rune', 'sac', 'surf']
    PEBBLE = get_agent("pebble")     # the class, imported on first use
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass

__all__ = ["AgentEntry", "AGENTS", "agent_names", "get_agent", "get_entry", "class_names"]

KINDS = ("online", "offline")


@dataclass(frozen=True)
class AgentEntry:
    """One registered agent.

    Attributes:
        name: the name users type (``pbrl train online --agent pebble``).
        target: ``"module:Class"``, imported on first use.
        kind: ``"online"`` or ``"offline"``.
        learner: SB3 learner of an online agent (``"SAC"`` / ``"PPO"``), ``None`` offline.
        needs_preferences: whether the agent learns from labelled pairs.
        summary: one line for help texts and tables.
        extras: top-level packages of optional extras the agent needs (:mod:`pbrl.extras`); a run checks
            them before any work.
    """

    name: str
    target: str
    kind: str
    learner: str | None
    needs_preferences: bool
    summary: str
    extras: tuple[str, ...] = ()

    @property
    def class_name(self) -> str:
        """The class's name, e.g. ``"PEBBLE"``."""
        return self.target.split(":")[1]

    def load(self) -> type:
        """Import and return the class."""
        mod, cls = self.target.split(":")
        try:
            return getattr(importlib.import_module(mod), cls)
        except (ImportError, AttributeError) as e:
            raise ValueError(f"agent '{self.name}' ({self.target}) cannot be imported in this installation: {e}") from None


def _entries(*rows: AgentEntry) -> dict[str, AgentEntry]:
    return {r.name: r for r in rows}


AGENTS: dict[str, AgentEntry] = _entries(
    # ---- online, on SB3 learners
    AgentEntry("pebble", "pbrl.agents.pebble:PEBBLE", "online", "SAC", True,
               "PEBBLE: entropy pre-training, reward ensemble, replay relabelling"),
    AgentEntry("pref_ppo", "pbrl.agents.pref_ppo:PrefPPO", "online", "PPO", True,
               "PrefPPO: PPO on the learned reward (B-Pref)"),
    AgentEntry("surf", "pbrl.agents.surf:SURF", "online", "SAC", True,
               "SURF: PEBBLE + pseudo-labels and temporal cropping"),
    AgentEntry("qpa", "pbrl.agents.qpa:QPA", "online", "SAC", True,
               "QPA: PEBBLE + policy-aligned queries and hybrid replay"),
    AgentEntry("rune", "pbrl.agents.rune:RUNE", "online", "SAC", True,
               "RUNE: PEBBLE + ensemble-disagreement exploration bonus"),
    AgentEntry("rime", "pbrl.agents.rime:RIME", "online", "SAC", True,
               "RIME: PEBBLE + denoising discriminator for noisy labels, reward warm start"),
    AgentEntry("hprior", "pbrl.agents.hprior:HPRIOR", "online", "SAC", True,
               "Hindsight PRIOR: PEBBLE + world-model attention prior on per-step rewards"),
    AgentEntry("spo", "pbrl.agents.spo:SPO", "online", "PPO", True,
               "SPO: self-play on PPO, reward = win rate against a queue of recent trajectories (no reward model)"),
    AgentEntry("sac", "pbrl.agents.sac_true:SACTrue", "online", "SAC", False,
               "SAC on the true reward (the upper bound; asks no queries)"),
    AgentEntry("pebble_true", "pbrl.agents.pebble_true:PEBBLETrueReward", "online", "SAC", False,
               "control: PEBBLE's schedule (seed steps, entropy pre-training, critic reset) on the true reward"),
    # ---- offline, from datasets
    AgentEntry("mriql", "pbrl.agents.iql:MRIQL", "offline", None, True,
               "MR+IQL: learned reward relabels the dataset, then IQL"),
    AgentEntry("iql", "pbrl.agents.iql:IQL", "offline", None, False,
               "IQL on the dataset's true reward (the upper bound)"),
    AgentEntry("ipl", "pbrl.agents.ipl:IPL", "offline", None, True,
               "IPL: implicit reward Q - gamma V in the preference loss (IQL form)"),
    AgentEntry("iplawac", "pbrl.agents.ipl:IPLAWAC", "offline", None, True,
               "IPL with AWAC-style policy extraction"),
    AgentEntry("cpl", "pbrl.agents.cpl:CPL", "offline", None, True,
               "CPL: contrastive loss on policy log-likelihoods"),
    AgentEntry("cplbc", "pbrl.agents.cpl:CPLBC", "offline", None, True,
               "CPL with a behaviour-cloning term"),
    AgentEntry("bc", "pbrl.agents.bc:BC", "offline", None, False,
               "behaviour cloning on the dataset (no labels): the baseline"),
    AgentEntry("oppo", "pbrl.agents.oppo:OPPO", "offline", None, True,
               "OPPO: hindsight information matching, optimal context z*"),
    AgentEntry("pearl", "pbrl.agents.pearl:PEARL", "offline", None, True,
               "PEARL: cross-task label transfer, robust Gaussian reward, IQL", extras=("ot",)),
    AgentEntry("dppo", "pbrl.agents.dppo:DPPO", "offline", None, True,
               "DPPO: contrastive policy on segments scored by a smoothed preference predictor"),
    AgentEntry("dtr", "pbrl.agents.dtr:DTR", "offline", None, True,
               "DTR: return-conditioned Decision Transformer + twin-Q regulariser, ensemble-normalised rewards"),
    AgentEntry("vpl", "pbrl.agents.vpl:VPL", "offline", None, True,
               "VPL: a latent per user, reward r(s, z), z-conditioned IQL (labels carry user ids)"),
)
"""Every agent, by the name users type."""


def agent_names(kind: str | None = None) -> list[str]:
    """Sorted names of the registered agents, all or of one ``kind`` (``"online"`` / ``"offline"``)."""
    if kind is not None and kind not in KINDS:
        raise ValueError(f"unknown agent kind '{kind}'; choose one of {', '.join(KINDS)}")
    return sorted(n for n, e in AGENTS.items() if kind is None or e.kind == kind)


def get_entry(name: str, kind: str | None = None) -> AgentEntry:
    """The :class:`AgentEntry` of ``name``; one clear ``ValueError`` for an unknown name or wrong kind."""
    names = agent_names(kind)
    if name not in names:
        where = f" for {kind} training" if kind else ""
        close = difflib.get_close_matches(str(name), names, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ValueError(f"unknown agent '{name}'{where}{hint}; allowed values: {', '.join(names)}")
    return AGENTS[name]


def get_agent(name: str, kind: str | None = None) -> type:
    """The class registered as ``name`` (imported on first use)."""
    return get_entry(name, kind).load()


def class_names() -> dict[str, str]:
    """Class name -> registry name (``{"PEBBLE": "pebble", ...}``)."""
    return {e.class_name: n for n, e in AGENTS.items()}
