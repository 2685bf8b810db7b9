"""MkDocs hooks of pbrl's documentation site (``mkdocs.yml``: ``hooks:``).

Three jobs, each checked at build time (a failure stops ``mkdocs build``):

* **Repository links.** The pages are written so that every relative link resolves from the page's own
  place in the repository (``docs/results/x.md`` links ``../../benchmarks/bench_feedback/feedback.png``), so
  they work on a code host and in an editor as well as on the site. A link that leaves ``docs/`` is
  rewritten here: an image is copied into the site (``_repo/<path>``) and the link pointed at the copy;
  any other file becomes its path in code (or a link to ``repo_url`` when ``mkdocs.yml`` sets one). A link
  whose target does not exist raises :class:`~mkdocs.exceptions.PluginError`.
* **Hyperparameter tables.** ``docs/hyperparameters.md`` is the one source of the tables. A page includes
  a section of it with a line ``<!-- hyperparameters: HEADING -->``; HEADING is the start of a ``###``
  heading there. The section is inserted with its links rebased; its ``###`` heading stays a sub-section of the page's
  ``## Hyperparameters``.
* **API sources.** pbrl installs ``agents/`` and ``envs/`` as ``pbrl.agents`` and ``pbrl.envs``; mkdocstrings
  reads sources by their folders, so the build points it at a temporary copy of the sources laid out as
  installed (``agents/`` and ``envs/`` inside ``pbrl/``).
* **CLI reference.** A line ``<!-- cli-reference -->`` becomes the ``--help`` text of every ``pbrl``
  command and sub-command, rendered from the typer app at build time.
"""

from __future__ import annotations

import os
import posixpath
import re
import shutil
import tempfile
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.plugins import event_priority
from mkdocs.structure.files import File

_LINK = re.compile(r"(!?\[[^\]]*\]\()([^)\s]+)(\))")
_HP = re.compile(r"^<!-- hyperparameters: (.+?) -->$", re.MULTILINE)
_CLI = "<!-- cli-reference -->"
_IMAGE_EXT = (".png", ".jpg", ".jpeg", ".gif", ".svg")
_REPO_PREFIX = "_repo"


def _repo_root(config) -> Path:
    return Path(config["config_file_path"]).resolve().parent


def _docs_dir(config) -> Path:
    return Path(config["docs_dir"]).resolve()


def _split(target: str) -> tuple[str, str]:
    path, hash_, frag = target.partition("#")
    return path, hash_ + frag


def _is_relative(target: str) -> bool:
    return not (re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target) or target.startswith(("#", "/")))


def _outside_targets(markdown: str, page_dir: Path, docs: Path, root: Path):
    """(match, repo-relative path) of each relative link of ``markdown`` that leaves ``docs``."""
    for m in _LINK.finditer(_strip_code(markdown)):
        target = m.group(2)
        if not _is_relative(target):
            continue
        path, _ = _split(target)
        if not path:
            continue
        abs_path = (page_dir / path).resolve()
        if docs in abs_path.parents or abs_path == docs:
            continue
        try:
            rel = abs_path.relative_to(root)
        except ValueError:
            raise PluginError(f"link '{target}' points outside the repository") from None
        yield m, rel.as_posix()


def _strip_code(markdown: str) -> str:
    """``markdown`` with fenced code blocks and inline code blanked out (same length), so links inside
    them are not read."""
    def blank(m):
        return re.sub(r"[^\n]", " ", m.group(0))
    out = re.sub(r"^(```|~~~).*?^\1[^\n]*$", blank, markdown, flags=re.MULTILINE | re.DOTALL)
    return re.sub(r"`[^`\n]+`", blank, out)


# ---------------------------------------------------------------- config: the package as installed


@event_priority(100)  # before mkdocstrings builds its handler from these paths
def on_config(config):
    root = _repo_root(config)
    tree = Path(tempfile.mkdtemp(prefix="pbrl-docs-"))
    keep = shutil.ignore_patterns("__pycache__", "*.pyc", "static", "configs")
    shutil.copytree(root / "pbrl", tree / "pbrl", ignore=keep)
    for sub in ("agents", "envs"):
        shutil.copytree(root / sub, tree / "pbrl" / sub, ignore=keep)
    handlers = config.plugins["mkdocstrings"].config["handlers"]
    handlers.setdefault("python", {})["paths"] = [str(tree)]
    return config


# ---------------------------------------------------------------- files: repository images into the site


def on_files(files, config):
    """Add every image that a page links outside ``docs/`` to the site, as ``_repo/<repo path>``."""
    docs, root = _docs_dir(config), _repo_root(config)
    wanted: set[str] = set()
    for f in files.documentation_pages():
        text = _expand_hyperparameters(Path(f.abs_src_path).read_text(encoding="utf-8"),
                                       Path(f.abs_src_path).parent, docs)
        for _, rel in _outside_targets(text, Path(f.abs_src_path).parent, docs, root):
            if rel.lower().endswith(_IMAGE_EXT):
                wanted.add(rel)
    for rel in sorted(wanted):
        if not (root / rel).is_file():
            continue  # reported with the page that links it
        f = File(f"{_REPO_PREFIX}/{rel}", src_dir=str(root), dest_dir=config["site_dir"],
                 use_directory_urls=config["use_directory_urls"])
        f.abs_src_path = str(root / rel)  # the file itself stays where the repository keeps it
        files.append(f)
    return files


# ---------------------------------------------------------------- pages


def on_page_markdown(markdown, page, config, files):
    docs, root = _docs_dir(config), _repo_root(config)
    page_dir = Path(page.file.abs_src_path).parent
    markdown = _expand_hyperparameters(markdown, page_dir, docs)
    if _CLI in markdown:
        markdown = markdown.replace(_CLI, cli_reference())
    return _rewrite_outside_links(markdown, page, page_dir, docs, root, config)


def _rewrite_outside_links(markdown, page, page_dir, docs, root, config):
    repo_url = (config.get("repo_url") or "").rstrip("/")
    edits = []
    for m, rel in _outside_targets(markdown, page_dir, docs, root):
        target = root / rel
        if not target.exists():
            raise PluginError(f"{page.file.src_uri}: link '{m.group(2)}' -> '{rel}' does not exist")
        _, frag = _split(m.group(2))
        if rel.lower().endswith(_IMAGE_EXT):
            dest = posixpath.relpath(f"{_REPO_PREFIX}/{rel}", posixpath.dirname(page.file.src_uri) or ".")
            new = m.group(1) + dest + frag + m.group(3)
        elif repo_url:
            kind = "tree" if target.is_dir() else "blob"
            new = m.group(1) + f"{repo_url}/{kind}/main/{rel}{frag}" + m.group(3)
        else:
            text = m.group(1)[1:] if m.group(1).startswith("[") else m.group(1)[2:]
            text = text[:-2]
            new = text if f"`{rel}`" in text or text.strip("`") == rel else f"{text} (`{rel}`)"
            if text.strip("`") == rel:
                new = f"`{rel}`"
        edits.append((m.start(), m.end(), new))
    for start, end, new in reversed(edits):
        markdown = markdown[:start] + new + markdown[end:]
    return markdown


# ---------------------------------------------------------------- hyperparameter sections


def hyperparameter_section(heading: str, docs: Path) -> tuple[str, Path]:
    """The ``###`` section of ``docs/hyperparameters.md`` whose heading starts with ``heading``."""
    src = docs / "hyperparameters.md"
    lines = src.read_text(encoding="utf-8").splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("### ") and line[4:].startswith(heading)]
    if len(starts) != 1:
        raise PluginError(f"hyperparameters.md: {len(starts)} '### {heading}...' headings (need exactly one)")
    i = starts[0]
    end = next((j for j in range(i + 1, len(lines)) if re.match(r"^#{1,3} ", lines[j])), len(lines))
    return "\n".join(lines[i:end]).rstrip() + "\n", src.parent


def _expand_hyperparameters(markdown: str, page_dir: Path, docs: Path) -> str:
    def include(m):
        text, src_dir = hyperparameter_section(m.group(1).strip(), docs)
        return _rebase(text, src_dir, page_dir)
    return _HP.sub(include, markdown)


def _rebase(text: str, src_dir: Path, page_dir: Path) -> str:
    """Relative links of ``text`` (written in ``src_dir``) rewritten for a page in ``page_dir``."""
    def fix(m):
        target = m.group(2)
        if not _is_relative(target):
            return m.group(0)
        path, frag = _split(target)
        if not path:
            return m.group(0)
        new = os.path.relpath(src_dir / path, page_dir).replace(os.sep, "/")
        return m.group(1) + new + frag + m.group(3)
    return _LINK.sub(fix, text)


# ---------------------------------------------------------------- CLI reference


def _commands(cmd, path):
    yield path, cmd
    if hasattr(cmd, "list_commands"):
        ctx = cmd.make_context(path[-1], ["--help"], resilient_parsing=True)
        for name in cmd.list_commands(ctx):
            yield from _commands(cmd.get_command(ctx, name), [*path, name])


def cli_reference(width: int = 100) -> str:
    """Markdown: one section per ``pbrl`` command with its ``--help`` output, in command order."""
    import typer
    from typer.testing import CliRunner

    from pbrl.app.cli import app

    runner = CliRunner()
    env = {"COLUMNS": str(width), "TERM": "dumb", "NO_COLOR": "1", "PBRL_DEBUG": ""}
    out = []
    for path, _ in _commands(typer.main.get_command(app), ["pbrl"]):
        res = runner.invoke(app, [*path[1:], "--help"], env=env, terminal_width=width)
        if res.exit_code != 0:
            raise PluginError(f"'{' '.join(path)} --help' failed (exit {res.exit_code}): {res.output[-400:]}")
        text = "\n".join(line.rstrip() for line in res.output.strip("\n").splitlines())
        level = "#" * min(len(path) + 1, 4)
        out.append(f"{level} `{' '.join(path)}`\n\n```text\n{text}\n```\n")
    return "\n".join(out)
