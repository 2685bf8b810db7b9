"""``python -m pbrl.hyperparams --write-docs [PATH]``: rewrite the generated per-agent tables of
``docs/hyperparameters.md`` (between ``<!-- hyperparams:<agent> -->`` markers) from the packaged files;
``python -m pbrl.hyperparams AGENT TASK`` prints what the files give a run and from which entries."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from pbrl.agents.registry import agent_names
from pbrl.hyperparams import load, markdown

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
                text = text.rstrip("\n") + f"\n\n{_SECTION}\n\nWritten by `python -m pbrl.hyperparams --write-docs` " \
                    "from `pbrl/hyperparams/*.yml`; a test fails when they differ. Sources of each value: the " \
                    "comments in the files and `docs/hyperparams_files.md`.\n"
            new = text.rstrip("\n") + f"\n\n### `{agent}`\n\n{block}\n"
        if new != text:
            changed.append(agent)
        text = new
    path.write_text(text)
    return changed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pbrl.hyperparams", description=__doc__)
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
