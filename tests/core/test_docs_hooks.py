"""The documentation build's own code (docs/_hooks/): needs the docs extra, skipped without it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("mkdocs")
pytest.importorskip("griffe")

ROOT = Path(__file__).resolve().parents[2]
HOOKS = ROOT / "docs" / "_hooks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"_docs_{name}", HOOKS / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_rst_roles_and_literals_become_markdown():
    rst = _load("griffe_rst")
    text = "Uses :class:`~pbrl.online.QueryPool` and :func:`pbrl.queries.make_selector` on ``obs [N, H]``."
    assert rst.rst_to_markdown(text) == "Uses `QueryPool` and `pbrl.queries.make_selector` on `obs [N, H]`."


def test_rst_literal_block_becomes_a_fence():
    rst = _load("griffe_rst")
    out = rst.rst_to_markdown("Example::\n\n    x = 1\n    y = 2\n\nAfter.")
    assert out.splitlines() == ["Example:", "", "```text", "x = 1", "y = 2", "```", "", "After."]


def test_hyperparameter_section_is_cut_at_the_next_heading(tmp_path):
    hooks = _load("pbrl_docs")
    (tmp_path / "hyperparameters.md").write_text(
        "# T\n\n## Online\n\n### SURF\n\n| a |\n|---|\n\n![f](../benchmarks/x.png)\n\n### QPA\n\nq\n", encoding="utf-8")
    text, _ = hooks.hyperparameter_section("SURF", tmp_path)
    assert text.startswith("### SURF") and "QPA" not in text and "| a |" in text
    with pytest.raises(Exception, match="0 '### RUNE"):
        hooks.hyperparameter_section("RUNE", tmp_path)


def test_included_links_are_rebased_for_the_including_page(tmp_path):
    hooks = _load("pbrl_docs")
    docs = tmp_path / "docs"
    out = hooks._rebase("see ![f](../benchmarks/x.png) and [r](results/a.md#s) and [w](https://x.org)",
                        docs, docs / "agents")
    assert out == "see ![f](../../benchmarks/x.png) and [r](../results/a.md#s) and [w](https://x.org)"


def test_cli_reference_renders_every_command():
    hooks = _load("pbrl_docs")
    text = hooks.cli_reference()
    for cmd in ("pbrl train online", "pbrl train offline", "pbrl label serve", "pbrl dataset collect", "pbrl sweep"):
        assert f"`{cmd}`" in text
    assert "--total-feedback" in text
