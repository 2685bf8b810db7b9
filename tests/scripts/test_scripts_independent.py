"""No file under scripts/ imports another script: shared code lives in pbrl (the harness pbrl.bench and its
neighbours), and a script that needs another one runs it as a program. Checked on the source: no import of
a module named like a script, no change to ``sys.path``, no ``importlib`` loading of a script's file."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
FILES = sorted(SCRIPTS.rglob("*.py"))
STEMS = {f.stem for f in FILES}


def script_imports(path: Path) -> list[str]:
    """What ``path`` does that imports another script (one of :data:`STEMS`), one line each (empty: nothing)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if a.name.split(".")[0] in STEMS]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] in STEMS:
            found.append(f"from {node.module} import ...")
        elif isinstance(node, ast.Attribute) and node.attr == "path" and isinstance(node.value, ast.Name) \
                and node.value.id == "sys":
            found.append("sys.path")
        elif isinstance(node, ast.Call):
            name = ast.unparse(node.func)
            text = ", ".join(ast.unparse(a) for a in node.args)
            if name.endswith("import_module") and any(f'"{s}"' in text or f"'{s}'" in text for s in STEMS):
                found.append(f"{name}({text})")
            if name.endswith("spec_from_file_location") and any(f"{s}.py" in text for s in STEMS):
                found.append(f"{name}({text})")
    return found


def test_there_are_scripts_to_check():
    assert len(FILES) > 10 and "bench_feedback" in STEMS and "pebble_ablation" in STEMS


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(SCRIPTS)))
def test_no_script_imports_another_script(path):
    assert script_imports(path) == [], f"{path.relative_to(SCRIPTS.parent)} imports another script"


def test_the_check_finds_each_way_of_importing_a_script(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import sys\nimport importlib\nimport bench_online\nfrom bench_feedback import CPU_SAC_KWARGS\n"
                   "sys.path.insert(0, 'scripts')\nimportlib.import_module('offline_curve')\n"
                   "importlib.util.spec_from_file_location('x', 'scripts/bench_speed.py')\n"
                   "import subprocess\nsubprocess.run(['python', 'scripts/bench_online.py'])\n")  # running is fine
    assert sorted(script_imports(bad)) == sorted([
        "import bench_online", "from bench_feedback import ...", "sys.path", "importlib.import_module('offline_curve')",
        "importlib.util.spec_from_file_location('x', 'scripts/bench_speed.py')"])
