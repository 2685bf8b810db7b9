"""Dataset cards (written by ``scripts/make_datasets.py``): one JSON and one Markdown file beside every dataset.

A card holds the dataset's size (steps, episodes, terminals, time-outs), its return distribution (raw and
D4RL-normalised where the task has D4RL's reference returns), the policies that made it and their evaluated
returns, how it was made (D4RL's definition, the sizes D4RL uses and any cut), the file's sha256 and the
command that rebuilds it bit for bit (with the versions of the packages whose numerics it depends on).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from pbrl.envs.datasets import SCORE_NAME, reference_scores
from pbrl.io import atomic_write, sha256_of

__all__ = ["sha256_of", "return_stats", "make_card", "write_card", "card_markdown", "versions"]

#: what D4RL calls each kind, and its size on hopper / walker2d (Fu et al. 2020; the v2 files)
D4RL_DEFINITIONS = {
    "medium": ("1M steps of a SAC policy early-stopped at about a third of the expert's return", 1_000_000),
    "expert": ("1M steps of a fully trained SAC policy", 1_000_000),
    "medium-replay": ("every transition of the SAC run's replay buffer until the policy reached the medium "
                      "level (hopper 402k steps, walker2d 302k)", None),
    "medium-expert": ("the medium and the expert data joined, half each (2M steps)", 2_000_000),
}


def return_stats(returns: np.ndarray) -> dict[str, float]:
    """Mean, std, min, quantiles 10/25/50/75/90 and max of ``returns``."""
    r = np.asarray(returns, dtype=np.float64)
    q = np.quantile(r, [0.1, 0.25, 0.5, 0.75, 0.9])
    return {"mean": float(r.mean()), "std": float(r.std()), "min": float(r.min()), "p10": float(q[0]),
            "p25": float(q[1]), "median": float(q[2]), "p75": float(q[3]), "p90": float(q[4]), "max": float(r.max())}


def versions() -> dict[str, str]:
    """Python and the packages whose numerics the data depend on."""
    import importlib.metadata as md

    out = {"python": sys.version.split()[0]}
    for pkg in ("numpy", "torch", "stable-baselines3", "gymnasium", "mujoco", "metaworld", "h5py"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def make_card(ds, path: Path, kind: str, policies: dict[str, Any], how: str, command: str,
              cut: str | None = None) -> dict[str, Any]:
    """The card of dataset ``ds`` saved at ``path`` (see the module docstring)."""
    rets = ds.episode_returns()
    card: dict[str, Any] = {
        "dataset_id": ds.dataset_id, "task_id": ds.task_id, "kind": kind, "file": path.name,
        "sha256": sha256_of(path), "steps": len(ds), "episodes": int(ds.n_episodes),
        "terminals": int(ds.terminals.sum()), "timeouts": int(ds.timeouts.sum()),
        "episode_length_mean": float(ds.episode_lengths().mean()), "returns": return_stats(rets),
    }
    try:
        lo, hi = reference_scores(ds)
        card["normalised"] = {"score": SCORE_NAME, "reference_returns": [lo, hi],
                              "returns": return_stats(100 * (rets - lo) / (hi - lo))}
    except ValueError:
        pass
    if ds.success is not None and ds.task_id and ds.task_id.startswith("metaworld/"):
        card["success_rate"] = float(ds.episode_success().mean())
    card["policies"] = policies
    d4rl = D4RL_DEFINITIONS.get(kind)
    card["how_made"] = how
    if d4rl is not None:
        card["d4rl_definition"] = d4rl[0]
        card["d4rl_steps"] = d4rl[1]
    card["size_cut"] = cut
    card["rebuild_command"] = command
    card["versions"] = versions()
    return card


def card_markdown(card: dict[str, Any]) -> str:
    """A dataset card (:func:`make_card`'s dict) as Markdown: title, how it was made, a field table."""
    r = card["returns"]
    lines = [f"# {card['dataset_id']}", "", card["how_made"], ""]
    if card.get("d4rl_definition"):
        lines += [f"D4RL's definition: {card['d4rl_definition']}.", ""]
    lines += ["| field | value |", "|---|---|"]
    for k in ("file", "sha256", "steps", "episodes", "terminals", "timeouts", "episode_length_mean"):
        v = card[k]
        lines.append(f"| {k} | {v:.1f} |" if isinstance(v, float) else f"| {k} | {v} |")
    lines.append("| return mean +- std | " + f"{r['mean']:.1f} +- {r['std']:.1f} |")
    lines.append("| return min / p10 / p25 / median / p75 / p90 / max | "
                 + " / ".join(f"{r[k]:.1f}" for k in ("min", "p10", "p25", "median", "p75", "p90", "max")) + " |")
    if "normalised" in card:
        n = card["normalised"]["returns"]
        lines.append(f"| {card['normalised']['score']}: mean, median | {n['mean']:.1f}, {n['median']:.1f} |")
    if "success_rate" in card:
        lines.append(f"| success rate | {card['success_rate']:.2f} |")
    lines.append(f"| size cut | {card['size_cut'] or 'none: D4RL size'} |")
    lines += ["", "Policies:", "", "```json", json.dumps(card["policies"], indent=1), "```", "",
              "Rebuild (bit for bit with the same package versions: "
              + ", ".join(f"{k} {v}" for k, v in card["versions"].items()) + "):", "",
              "```", card["rebuild_command"], "```", ""]
    return "\n".join(lines)


def write_card(card: dict[str, Any], path: Path) -> tuple[Path, Path]:
    """``<stem>.card.json`` and ``<stem>.card.md`` beside the dataset file ``path`` (atomically)."""
    js, md = path.with_suffix(".card.json"), path.with_suffix(".card.md")
    with atomic_write(js, suffix=".json") as tmp:
        tmp.write_text(json.dumps(card, indent=1))
    with atomic_write(md, suffix=".md") as tmp:
        tmp.write_text(card_markdown(card))
    return js, md
