"""A griffe extension for the API reference: pbrl's docstrings use a few reStructuredText forms inside
Google-style sections. This turns them into Markdown before mkdocstrings renders them:

* roles: ``:class:`~pbrl.online.QueryPool``` -> ```QueryPool```, ``:func:`pbrl.x.f``` -> ```pbrl.x.f```;
* double back-quoted literals: ````x```` -> ```x```;
* a paragraph ending in ``::`` (a literal block follows) -> ``:`` plus a fenced code block.
"""

from __future__ import annotations

import re

from griffe import Extension

_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|attr|data|obj|exc|const|ref|doc|math):`~?([^`]+)`")


def _role(m: re.Match) -> str:
    target = m.group(1)
    if "<" in target and target.endswith(">"):  # :ref:`text <target>`
        return target.split("<")[0].strip()
    if m.group(0).startswith((":class:`~", ":func:`~", ":meth:`~", ":mod:`~", ":attr:`~", ":data:`~",
                              ":obj:`~", ":exc:`~", ":const:`~")):
        target = target.rsplit(".", 1)[-1]
    return f"`{target}`"


def _literal_blocks(text: str) -> str:
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.rstrip().endswith("::") and i + 1 < len(lines):
            head = line.rstrip()[:-2].rstrip()
            out.append(head + ":" if head else "")
            j = i + 1
            while j < len(lines) and not lines[j].strip():
                j += 1
            if j < len(lines):
                base = len(line) - len(line.lstrip())
                indent = len(lines[j]) - len(lines[j].lstrip())
                if indent > base:
                    block = []
                    while j < len(lines) and (not lines[j].strip() or
                                              len(lines[j]) - len(lines[j].lstrip()) >= indent):
                        block.append(lines[j][indent:] if lines[j].strip() else "")
                        j += 1
                    while block and not block[-1]:
                        block.pop()
                    pad = " " * base
                    out += ["", pad + "```text", *[pad + b if b else "" for b in block], pad + "```", ""]
                    i = j
                    continue
            i += 1
            continue
        out.append(line)
        i += 1
    return "\n".join(out)


def rst_to_markdown(text: str) -> str:
    """The Markdown form of a pbrl docstring (see the module docstring)."""
    text = _ROLE.sub(_role, text)
    text = re.sub(r"``([^`]+?)``", r"`\1`", text)
    return _literal_blocks(text)


class RstToMarkdown(Extension):
    """Rewrite every loaded object's docstring with :func:`rst_to_markdown`."""

    def on_object(self, *, obj, **kwargs) -> None:
        if obj.docstring is not None and not obj.is_alias:
            obj.docstring.value = rst_to_markdown(obj.docstring.value)
