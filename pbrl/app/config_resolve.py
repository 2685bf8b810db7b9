"""The run config ``pbrl train`` starts from, and where each of its values came from.

Layers, lowest precedence first:

1. the agent's defaults (the config dataclass's fields, the agent class's keyword defaults);
2. the hyperparameter file's entries for the run's task (:mod:`pbrl.app.hyperparams`: default < pattern < task);
3. the ``--config`` file;
4. the command's flags (``--segment-length 25``);
5. ``--set key=value``.

The resolved config carries ``provenance`` (written into the run's ``config.json``)::

    {"hyperparams_file": "pbrl/hyperparams/ipl.yml", "hyperparams_entries": ["default", "metaworld/*"],
     "sources": {"agent_kwargs.chi2_coeff": "pbrl/hyperparams/ipl.yml [metaworld/*]",
                 "segment_length": "flag --segment-length", "steps": "default", ...}}

Every config field has a source; a nested key (``agent_kwargs.x``) is listed when something set it, and
otherwise keeps the agent class's default.
"""

from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path
from typing import Any

from pbrl.agents.registry import get_entry
from pbrl.app.config import (
    OfflineConfig,
    OnlineConfig,
    RunConfig,
    _an,
    _merge,
    _read_file,
    config_from_dict,
    parse_overrides,
)
from pbrl.app.hyperparams import flatten, load

__all__ = ["resolve_config"]


def resolve_config(
    kind: str | None,
    config: str | os.PathLike | None = None,
    flags: dict[str, Any] | None = None,
    sets: list[str] | None = None,
    hyperparams: str | os.PathLike | bool = True,
) -> RunConfig:
    """Validated config from the layers above, with ``provenance`` set.

    Args:
        kind: ``"online"`` / ``"offline"`` (``None``: the config file's ``kind``, else online).
        config: a YAML/JSON run-config file, or ``None``.
        flags: the command's flags (``None`` values mean "not given").
        sets: ``key=value`` strings of ``--set``.
        hyperparams: ``True``: the packaged file of the run's agent; a path: that file instead; ``False``: none.

    Raises:
        ValueError: one line naming the bad key, file or value, before anything is made.
    """
    user_file = _read_file(config) if config is not None else {}
    file_kind = user_file.pop("kind", None)
    kind = kind or file_kind or "online"
    if file_kind is not None and file_kind != kind:
        raise ValueError(f"the config says kind '{file_kind}' but {_an(kind)} {kind} run was asked for")
    if kind not in ("online", "offline"):
        raise ValueError(f"unknown run kind '{kind}'; allowed values: offline, online")
    cls = OnlineConfig if kind == "online" else OfflineConfig
    user_file.pop("provenance", None)  # a run's config.json given as --config: its sources are re-derived
    flag_vals = {k: v for k, v in (flags or {}).items() if v is not None}
    set_vals = parse_overrides(sets)
    user = _merge(_merge(user_file, flag_vals), set_vals)
    agent = user.get("agent", cls.agent)
    task = user.get("task", cls.task)
    preset = None
    if hyperparams is not False and isinstance(agent, str) and isinstance(task, str):
        get_entry(agent, kind)  # an unknown agent or the wrong kind: the registry's one line
        preset = load(agent, task, None if hyperparams is True else Path(hyperparams))
    data = _merge(preset.values, user) if preset is not None else user
    cfg = config_from_dict(data, kind)
    sources: dict[str, str] = dict(preset.sources) if preset is not None else {}
    sources.update({k: f"config file {config}" for k in flatten(user_file)})
    sources.update({k: f"flag --{k.replace('_', '-')}" for k in flatten(flag_vals)})
    sources.update({k: "--set" for k in flatten(set_vals)})
    for f in fields(cls):
        if not any(k == f.name or k.startswith(f"{f.name}.") for k in sources):
            sources[f.name] = "default"
    cfg.provenance = {
        "hyperparams_file": preset.file if preset is not None else None,
        "hyperparams_entries": list(preset.entries) if preset is not None else [],
        "sources": dict(sorted(sources.items())),
    }
    return cfg
