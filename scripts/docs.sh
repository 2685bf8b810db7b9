#!/usr/bin/env bash
# Build the documentation site into site/ with warnings as errors (mkdocs.yml: strict, link validation).
# Installs nothing: needs the docs extra in .venv (.venv/bin/python -m pip install -e '.[docs]').
set -euo pipefail
cd "$(dirname "$0")/.."
if ! .venv/bin/python -c "import mkdocs, material, mkdocstrings_handlers.python" 2>/dev/null; then
    echo "error: the docs extra is not installed; run: .venv/bin/python -m pip install -e '.[docs]'" >&2
    exit 2
fi
export NO_MKDOCS_2_WARNING=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} MUJOCO_GL=${MUJOCO_GL:-osmesa}
exec .venv/bin/mkdocs build --strict --site-dir site "$@"
