"""The documentation's files: relative links resolve, the README stays short, every agent has a page.

These run without the docs extra; ``scripts/docs.sh`` (mkdocs build --strict) checks the rendered site.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pbrl.agents.registry import agent_names

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
README_MAX_LINES = 200

_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


def strip_code(text: str) -> str:
    """``text`` without fenced code blocks and inline code (links there are examples, not links)."""
    text = re.sub(r"^(```|~~~).*?^\1[^\n]*$", "", text, flags=re.MULTILINE | re.DOTALL)
    return re.sub(r"`[^`\n]+`", "", text)


def relative_links(path: Path) -> list[str]:
    """The relative link targets of a Markdown file, without their ``#fragment``."""
    out = []
    for target in _LINK.findall(strip_code(path.read_text(encoding="utf-8"))):
        if _SCHEME.match(target) or target.startswith(("#", "/")):
            continue
        target = target.split("#", 1)[0]
        if target:
            out.append(target)
    return out


def test_link_reader_finds_links_and_skips_code(tmp_path):
    md = tmp_path / "x.md"
    md.write_text("see [a](a.md#s) and ![img](../b.png), [web](https://x.org), [here](#top)\n"
                  "`[not](c.md)`\n```\n[not](d.md)\n```\n", encoding="utf-8")
    assert relative_links(md) == ["a.md", "../b.png"]


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve_in_the_repository(path):
    missing = [t for t in relative_links(path) if not (path.parent / t).exists()]
    assert not missing, f"{path.relative_to(ROOT)} links to missing files: {missing}"


def test_readme_stays_short():
    n = len((ROOT / "README.md").read_text(encoding="utf-8").splitlines())
    assert n <= README_MAX_LINES, f"README.md has {n} lines; results and guides belong in docs/ (the site)"


def test_every_registered_agent_has_a_page():
    covered: set[str] = set()
    for page in (DOCS / "agents").glob("*.md"):
        m = re.search(r"^<!-- agents: (.+?) -->$", page.read_text(encoding="utf-8"), flags=re.MULTILINE)
        if m:
            covered.update(n.strip() for n in m.group(1).split(","))
    assert covered == set(agent_names()), (sorted(set(agent_names()) - covered), sorted(covered - set(agent_names())))


def test_every_page_is_in_the_nav():
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    pages = [p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md") if "_hooks" not in p.parts]
    missing = [p for p in pages if p not in nav]
    assert not missing, f"pages not in mkdocs.yml's nav: {missing}"


def test_every_included_hyperparameter_section_exists_once():
    """Agent pages include sections of docs/hyperparameters.md by heading (docs/_hooks/pbrl_docs.py):
    each must name exactly one ``###`` heading there, or the site build stops."""
    headings = [line[4:] for line in (DOCS / "hyperparameters.md").read_text(encoding="utf-8").splitlines()
                if line.startswith("### ")]
    markers = set()
    for page in (DOCS / "agents").glob("*.md"):
        markers.update(re.findall(r"^<!-- hyperparameters: (.+?) -->$", page.read_text(encoding="utf-8"),
                                  flags=re.MULTILINE))
    assert markers
    bad = {m: n for m in markers if (n := sum(h.startswith(m) for h in headings)) != 1}
    assert not bad, f"markers matching no or several '###' headings of hyperparameters.md: {bad}"
