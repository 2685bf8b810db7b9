"""The documentation's files: relative links resolve, the README stays short, every agent has a page and a
row in every agents table, every public name has a docstring.

These run without the docs extra; ``scripts/docs.sh`` (mkdocs build --strict) checks the rendered site.
"""

from __future__ import annotations

import ast
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


# ---------------------------------------------------------------------------------------- truth against the code
_AGENT_TABLES = {"README.md": "docs/agents/", "docs/index.md": "agents/", "docs/agents/index.md": ""}


def agent_pages_linked(text: str, prefix: str) -> set[str]:
    """The agent pages (file stems) that the table rows of ``text`` link to (``| [`Name`](PREFIXpage.md) |``)."""
    return set(re.findall(rf"^\| \[[^\]]+\]\({re.escape(prefix)}(\w+)\.md\)", text, flags=re.MULTILINE))


def test_agent_table_reader(tmp_path):
    text = "| [`PEBBLE`](docs/agents/pebble.md) | online |\n| [`X`](docs/other.md) | - |\nsee [`SPO`](docs/agents/spo.md)\n"
    assert agent_pages_linked(text, "docs/agents/") == {"pebble"}


@pytest.mark.parametrize("page", sorted(_AGENT_TABLES))
def test_agent_tables_list_every_registered_agent(page):
    """The agents tables of the README, the site's home page and the agents index link every agent's page
    (each registered name is covered by the page whose ``<!-- agents: ... -->`` marker names it)."""
    page_of = {}
    for p in (DOCS / "agents").glob("*.md"):
        m = re.search(r"^<!-- agents: (.+?) -->$", p.read_text(encoding="utf-8"), flags=re.MULTILINE)
        for name in (n.strip() for n in m.group(1).split(",")) if m else ():
            page_of[name] = p.stem
    linked = agent_pages_linked((ROOT / page).read_text(encoding="utf-8"), _AGENT_TABLES[page])
    missing = sorted(name for name in agent_names() if page_of.get(name) not in linked)
    assert not missing, f"{page}'s agents table lacks registered agents: {missing}"


def _undocumented_public_names(path: Path) -> list[str]:
    """Names in the module's ``__all__`` that it defines without a docstring: a function or class without
    one, a module-level constant with neither a ``#:`` comment line above nor a string literal below."""
    src = path.read_text(encoding="utf-8")
    tree = ast.parse(src)
    lines = src.splitlines()
    public: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            public = {e.value for e in node.value.elts if isinstance(e, ast.Constant)}
    out = []
    for i, node in enumerate(tree.body):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if node.name in public and not ast.get_docstring(node):
                out.append(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [t.id for t in targets if isinstance(t, ast.Name) and t.id in public]
            nxt = tree.body[i + 1] if i + 1 < len(tree.body) else None
            string_below = isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant) \
                and isinstance(nxt.value.value, str)
            comment_above = node.lineno >= 2 and lines[node.lineno - 2].lstrip().startswith("#:")
            if names and not (string_below or comment_above):
                out += names
    return out


def test_undocumented_reader(tmp_path):
    mod = tmp_path / "m.py"
    mod.write_text('__all__ = ["f", "g", "C", "A", "B", "D"]\n\ndef f():\n    """Doc."""\n\ndef g():\n    pass\n\n'
                   'class C:\n    pass\n\n#: documented\nA = 1\nB = 2\nD = 3\n"""Documented below."""\n', encoding="utf-8")
    assert _undocumented_public_names(mod) == ["g", "C", "B"]


def test_every_public_name_has_a_docstring():
    """What a module exports (its ``__all__``) is what the API reference shows: each needs a docstring."""
    files = [p for d in ("pbrl", "agents", "envs") for p in sorted((ROOT / d).rglob("*.py"))]
    bad = {str(p.relative_to(ROOT)): names for p in files if (names := _undocumented_public_names(p))}
    assert not bad, f"public names without a docstring: {bad}"
