"""Per-task hyperparameter files, in rl-zoo3's style: ``pbrl/hyperparams/<agent>.yml``, one per registered
agent, installed with the package.

Each file is a YAML mapping from an *entry key* to run-config values (the keys of
:class:`~pbrl.app.config.OnlineConfig` / :class:`~pbrl.app.config.OfflineConfig`, with nested ``agent_kwargs``,
``learner_kwargs``, ``reward_model_kwargs``)::

    default:                      # every task
      agent_kwargs: {chi2_coeff: 0.5}
    metaworld/*:                  # a domain pattern (fnmatch: * ? [..])
      segment_length: 25
      agent_kwargs: {chi2_coeff: 3, expectile: 0.75}
    metaworld/button-press-v3:    # one task id (options after ':' are ignored when matching)
      total_feedback: 10000

Lookup for a run of ``agent`` on ``task``: the entries that match are merged, each key from the most
specific one: **exact task id > domain pattern > default** (among several matching patterns, the one with more
literal characters wins). Nested mappings merge key by key. A key that no entry gives keeps the agent's
default (the config dataclass's or the agent class's).

What the files hold, and from where, is in ``docs/hyperparams_files.md``; ``docs/hyperparameters.md`` holds a
generated table of every entry (:func:`markdown`), which a test compares with the files.

Example::

    from pbrl.app.hyperparams import load
    p = load("ipl", "metaworld/button-press-v3")
    p.values["agent_kwargs"]["chi2_coeff"]      # 3
    p.sources["agent_kwargs.chi2_coeff"]         # 'pbrl/hyperparams/ipl.yml [metaworld/*]'
"""

from __future__ import annotations

import argparse
import difflib
import fnmatch
import inspect
import json
import os
import re
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from pbrl.agents.registry import agent_names, get_entry
from pbrl.app.config import _ONLINE_SET_BY_CONFIG, OfflineConfig, OnlineConfig, _init_params
from pbrl.envs.dmc import dmc_available
from pbrl.envs.registry import check_task, is_dmc, list_tasks
from pbrl.reward_models import RewardEnsemble

__all__ = ["HYPERPARAMS_DIR", "Preset", "load", "file_path", "read_file", "check_file", "matching_entries",
           "flatten", "markdown", "write_docs", "main"]

HYPERPARAMS_DIR = Path(__file__).resolve().parents[1] / "hyperparams"
"""Where the packaged files live (``pbrl/hyperparams/``, package data of ``pbrl.app.hyperparams``)."""

#: config keys a hyperparameter file may not set: they name the run, not its hyperparameters
_RUN_KEYS = ("task", "agent", "seed", "dataset", "labels", "teacher", "teacher_kwargs", "n_classes",
             "checkpoint_every", "eval_every", "n_eval_episodes", "torch_threads", "collect_policy",
             "collect_steps", "collect_kwargs", "max_episode_steps")
_WILDCARDS = set("*?[")


@dataclass(frozen=True)
class Preset:
    """What a hyperparameter file gives one run.

    Attributes:
        agent: the agent's registry name.
        task: the task id asked for.
        file: the file read, as shown to people (``pbrl/hyperparams/ipl.yml`` for a packaged file).
        entries: the entries that matched, lowest precedence first (``["default", "metaworld/*"]``).
        values: the merged values (a nested mapping of config keys).
        sources: dotted key -> ``"<file> [<entry>]"``, for every leaf of ``values``.
    """

    agent: str
    task: str
    file: str
    entries: tuple[str, ...]
    values: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)


def file_path(agent: str) -> Path:
    """The packaged file of ``agent`` (``pbrl/hyperparams/<agent>.yml``); ``ValueError`` for an unknown agent."""
    get_entry(agent)
    return HYPERPARAMS_DIR / f"{agent}.yml"


def _shown(path: Path) -> str:
    path = Path(path).resolve()
    try:
        return str(Path("pbrl") / path.relative_to(HYPERPARAMS_DIR.parent))
    except ValueError:
        return str(path)


def read_file(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """The entries of a hyperparameter file (entry key -> mapping); one ``ValueError`` naming the file when it is
    missing, not YAML, or not a mapping of mappings."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"hyperparameter file '{path}' does not exist; give a YAML file of entries "
                         "(see docs/hyperparams_files.md)")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ValueError(f"hyperparameter file '{path}' is not valid YAML: {' '.join(str(e).split())}") from None
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ValueError(f"hyperparameter file '{path}' must map entry keys (task ids, patterns, default) to "
                         f"mappings, got {type(data).__name__}")
    for key, entry in data.items():
        if not isinstance(key, str):
            raise ValueError(f"entry key {key!r} in hyperparameter file '{path}' must be a task id, a pattern "
                             "like 'metaworld/*' or 'default'")
        if entry is not None and not isinstance(entry, dict):
            raise ValueError(f"entry '{key}' in hyperparameter file '{path}' must be a mapping of config keys, "
                             f"got {type(entry).__name__}")
    return {k: dict(v or {}) for k, v in data.items()}


# ---------------------------------------------------------------------------------------------- checks


def _allowed_top(kind: str) -> list[str]:
    cls = OnlineConfig if kind == "online" else OfflineConfig
    return sorted(f.name for f in fields(cls) if f.name not in _RUN_KEYS)


def _allowed_nested(agent: str, kind: str) -> dict[str, list[str] | None]:
    """Allowed keys of each nested mapping (``None``: not checked)."""
    entry = get_entry(agent)
    agent_keys = _init_params(entry.load())
    out: dict[str, list[str] | None] = {}
    if kind == "online":
        import stable_baselines3 as sb3

        learner = getattr(sb3, entry.learner or "SAC")
        out["learner_kwargs"] = sorted(p for p in inspect.signature(learner.__init__).parameters if p != "self")
        out["reward_model_kwargs"] = sorted(p for p in inspect.signature(RewardEnsemble.__init__).parameters
                                            if p != "self")
        out["agent_kwargs"] = None if agent_keys is None else sorted(agent_keys - set(_ONLINE_SET_BY_CONFIG))
    else:
        out["agent_kwargs"] = None if agent_keys is None else sorted(agent_keys - {"obs_dim", "act_dim", "seed"})
    return out


def _unknown(path: str, entry: str, key: str, allowed: list[str], prefix: str = "") -> ValueError:
    close = difflib.get_close_matches(key, allowed, n=1)
    hint = f"; did you mean '{prefix}{close[0]}'?" if close else f"; allowed keys: {', '.join(allowed)}"
    return ValueError(f"unknown key '{prefix}{key}' in entry '{entry}' of hyperparameter file '{path}'{hint}")


def _check_entry_key(path: str, key: str) -> None:
    if key == "default" or _WILDCARDS & set(key):
        return
    if ":" in key:
        raise ValueError(f"entry '{key}' of hyperparameter file '{path}' has task options; key entries by the "
                         f"task id alone ('{key.split(':')[0]}')")
    if is_dmc(key) and not dmc_available():
        return
    try:
        check_task(key)
    except ValueError:
        close = difflib.get_close_matches(key, list_tasks(), n=1) + difflib.get_close_matches(key, ["default"], n=1)
        hint = f"; did you mean '{close[0]}'?" if close else "; use a task id (`pbrl tasks`), a pattern or default"
        raise ValueError(f"unknown entry key '{key}' in hyperparameter file '{path}'{hint}") from None


def check_file(entries: dict[str, dict[str, Any]], agent: str, path: str) -> None:
    """Every entry key is ``default``, a pattern or a registered task id, and every key inside is a config key
    a hyperparameter file may set (nested keys: the agent's, its learner's or the reward model's parameters).
    One ``ValueError`` naming the file, the entry and the nearest allowed key."""
    kind = get_entry(agent).kind
    top = _allowed_top(kind)
    nested = _allowed_nested(agent, kind)
    for key, entry in entries.items():
        _check_entry_key(path, key)
        for k, v in entry.items():
            if k in _RUN_KEYS:
                raise ValueError(f"key '{k}' in entry '{key}' of hyperparameter file '{path}' names the run, not a "
                                 f"hyperparameter; give it as a flag (--{k.replace('_', '-')}) instead")
            if k not in top:
                raise _unknown(path, key, k, top)
            if k in nested:
                if not isinstance(v, dict):
                    raise ValueError(f"'{k}' in entry '{key}' of hyperparameter file '{path}' must be a mapping, "
                                     f"got {type(v).__name__}")
                allowed = nested[k]
                for sub in v if allowed is not None else ():
                    if sub not in allowed:
                        raise _unknown(path, key, sub, allowed, prefix=f"{k}.")


# ---------------------------------------------------------------------------------------------- lookup


def matching_entries(entries: dict[str, Any], task: str) -> list[str]:
    """Entry keys that apply to ``task``, lowest precedence first: ``default``, the matching patterns (fewer
    literal characters first), then the exact task id. Task options (``:reward=v1``) are ignored."""
    base = task.split(":", 1)[0]
    patterns = [k for k in entries if k != "default" and _WILDCARDS & set(k) and fnmatch.fnmatchcase(base, k)]
    patterns.sort(key=lambda k: len([c for c in k if c not in _WILDCARDS]))
    return (["default"] if "default" in entries else []) + patterns + ([base] if base in entries else [])


def flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}, "c": 2}`` -> ``{"a.b": 1, "c": 2}`` (lists and other values are leaves)."""
    out: dict[str, Any] = {}
    for k, v in values.items():
        if isinstance(v, dict) and v:
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load(agent: str, task: str, path: str | os.PathLike | None = None, default: bool = True) -> Preset:
    """The hyperparameters a file gives ``agent`` on ``task``: merged values and where each came from.

    Args:
        agent: registry name (``pbrl.agents.registry``).
        task: task id, options allowed (``metaworld/button-press-v3:reward=v1``).
        path: a hyperparameter file of the same format (default: the packaged ``pbrl/hyperparams/<agent>.yml``).
        default: include the ``default`` entry. ``False`` gives only what the task's own entries change (a
            packaged file's ``default`` entry is the agent's code defaults, checked by the tests), which is
            what a script that builds configs of its own (``scripts/bench_offline.py``) adds.

    Returns:
        A :class:`Preset`; ``values`` is empty when the file has no matching entry.

    Raises:
        ValueError: unknown agent, unreadable file, or an unknown key anywhere in the file (naming the file and
            the nearest allowed key).
    """
    p = Path(path) if path is not None else file_path(agent)
    shown = _shown(p)
    entries = read_file(p)
    check_file(entries, agent, shown)
    keys = [k for k in matching_entries(entries, task) if default or k != "default"]
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for k in keys:
        values = _merge(values, entries[k])
        sources.update({leaf: f"{shown} [{k}]" for leaf in flatten(entries[k])})
    return Preset(agent, task, shown, tuple(keys), values, {k: sources[k] for k in flatten(values)})


def markdown(agent: str) -> str:
    """The Markdown table of every entry of ``agent``'s packaged file (the block ``docs/hyperparameters.md``
    holds between ``<!-- hyperparams:<agent> -->`` markers, rewritten by
    ``python -m pbrl.app.hyperparams --write-docs``)."""
    import json

    entries = read_file(file_path(agent))
    rows = [f"| `{k}` | `{key}` | `{json.dumps(v)}` |" for k, e in entries.items() for key, v in flatten(e).items()]
    head = f"`pbrl/hyperparams/{agent}.yml` (entries: exact task > pattern > default)\n\n| entry | key | value |\n|---|---|---|"
    return head + ("\n" + "\n".join(rows) if rows else "\n| - | - | - |")


# ---------------------------------------------------------------------------------------------- command line
_CLI_DOC = """``python -m pbrl.app.hyperparams --write-docs [PATH]``: rewrite the generated per-agent tables of
``docs/hyperparameters.md`` (between ``<!-- hyperparams:<agent> -->`` markers) from the packaged files;
``python -m pbrl.app.hyperparams AGENT TASK`` prints what the files give a run and from which entries."""

_SECTION = "## Per-task hyperparameter files (generated)"


def write_docs(path: Path) -> list[str]:
    """Rewrite (or append) every agent's block in ``path``; returns the agents whose block changed."""
    text = path.read_text()
    changed = []
    for agent in agent_names():
        block = f"<!-- hyperparams:{agent} -->\n{markdown(agent)}\n<!-- /hyperparams:{agent} -->"
        pat = re.compile(rf"<!-- hyperparams:{agent} -->\n.*?\n<!-- /hyperparams:{agent} -->", re.S)
        if pat.search(text):
            new = pat.sub(lambda _m, b=block: b, text)
        else:
            if _SECTION not in text:
                text = text.rstrip("\n") + f"\n\n{_SECTION}\n\nWritten by `python -m pbrl.app.hyperparams --write-docs` " \
                    "from `pbrl/hyperparams/*.yml`; a test fails when they differ. Sources of each value: the " \
                    "comments in the files and `docs/hyperparams_files.md`.\n"
            new = text.rstrip("\n") + f"\n\n### `{agent}`\n\n{block}\n"
        if new != text:
            changed.append(agent)
        text = new
    path.write_text(text)
    return changed


def main(argv: list[str] | None = None) -> int:
    """``python -m pbrl.app.hyperparams``: print what the files give ``AGENT TASK`` (JSON), or
    ``--write-docs``; returns the exit code."""
    ap = argparse.ArgumentParser(prog="python -m pbrl.app.hyperparams", description=_CLI_DOC)
    ap.add_argument("--write-docs", nargs="?", const="docs/hyperparameters.md", default=None, metavar="PATH")
    ap.add_argument("agent", nargs="?")
    ap.add_argument("task", nargs="?")
    a = ap.parse_args(argv)
    try:
        if a.write_docs:
            print(f"rewrote: {', '.join(write_docs(Path(a.write_docs))) or 'nothing (up to date)'}")
            return 0
        if not (a.agent and a.task):
            ap.error("give AGENT TASK, or --write-docs")
        p = load(a.agent, a.task)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps({"file": p.file, "entries": p.entries, "values": p.values, "sources": p.sources}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
