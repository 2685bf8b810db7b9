#!/usr/bin/env bash
# The test command of the README: set up (idempotent), lint, then the fast test suite on two pytest-xdist
# workers (PBRL_TEST_WORKERS=0 runs it in one process; the suite is mostly single-threaded: 9.6 min against 16.2).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export MUJOCO_GL=${MUJOCO_GL:-osmesa} OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
.venv/bin/ruff check pbrl agents envs scripts tests
.venv/bin/python -m pytest -q -n "${PBRL_TEST_WORKERS:-2}" "$@"
