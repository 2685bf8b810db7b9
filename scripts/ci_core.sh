#!/usr/bin/env bash
# The plainest install, checked as a new user meets it: a fresh virtual environment with pbrl's core
# dependencies only (no extra), then the commands that must work there, and the commands that need an
# extra, each of which must stop before any work with one line naming that extra (exit code 2, no
# traceback, no run directory created).
#
#   bash scripts/ci_core.sh            # venv in .venv-core (kept between calls; --fresh rebuilds it)
#
# CI runs it after the full suite (.ci/run). It caught the `import click` crash of typer 0.29, which
# no longer depends on click: the full-extras venv had click only through uvicorn (the label extra).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${CORE_VENV:-.venv-core}
[ "${1:-}" = "--fresh" ] && rm -rf "$VENV"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
fi
# the CPU build of torch from this machine's wheel cache (see scripts/setup.sh), then the core only
"$VENV/bin/python" -c "import torch" 2>/dev/null || "$VENV/bin/python" -m pip install -q "torch==2.13.0"
"$VENV/bin/python" -m pip install -q -e .

export MUJOCO_GL=${MUJOCO_GL:-osmesa} OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} PBRL_DEBUG=0
PBRL="$VENV/bin/pbrl"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0

ok() {  # a command that must succeed
  local what=$1; shift
  if "$@" >"$tmp/out" 2>&1; then
    echo "[core] ok: $what"
  else
    echo "[core] FAIL: $what (exit $?)"; tail -n 15 "$tmp/out" | sed 's/^/    /'; fails=$((fails + 1))
  fi
}

needs_extra() {  # a command that must stop at once: exit 2, one error line naming the extra, no traceback
  local what=$1 extra=$2 made=$3; shift 3
  local rc=0
  "$@" >"$tmp/out" 2>&1 || rc=$?
  local errs
  errs=$(grep -c '^error:' "$tmp/out" || true)
  if [ "$rc" = 2 ] && [ "$errs" = 1 ] && grep -q "pip install 'pbrl\[$extra\]'" "$tmp/out" \
      && ! grep -q Traceback "$tmp/out" && { [ -z "$made" ] || [ ! -e "$made" ]; }; then
    echo "[core] ok: $what -> $(grep '^error:' "$tmp/out")"
  else
    echo "[core] FAIL: $what must exit 2 with one line naming pip install 'pbrl[$extra]' (exit $rc)"
    tail -n 15 "$tmp/out" | sed 's/^/    /'; fails=$((fails + 1))
  fi
}

ok "pbrl --help" "$PBRL" --help
ok "pbrl tasks" "$PBRL" tasks
ok "import every core module without the extras" "$VENV/bin/python" tests/core/import_core.py
ok "a tiny offline run (BC on 2,000 random Hopper steps)" \
  "$PBRL" train offline --task mujoco/Hopper-v5 --agent bc --collect-policy random --collect-steps 2000 \
  --steps 50 --eval-every 50 --n-eval-episodes 1 --checkpoint-every 50 --quiet -o "$tmp/bc"
ok "the tiny run's directory has its metrics" test -s "$tmp/bc/metrics.json"

ok "pbrl label queue --help (the label group loads without its extra)" "$PBRL" label queue --help
needs_extra "pbrl label serve" label "$tmp/answers.sqlite" \
  "$PBRL" label serve "$tmp/none.queue.h5" --db "$tmp/answers.sqlite"
needs_extra "pbrl sweep --address" sweep "$tmp/sw" \
  "$PBRL" sweep -o "$tmp/sw" --tasks mujoco/Hopper-v5 --agents sac --address 127.0.0.1:6379
needs_extra "a dmc/... task" dmc "$tmp/dmc" \
  "$PBRL" train online --task dmc/walker-walk --agent sac --total-timesteps 100 -o "$tmp/dmc"
needs_extra "a Minari dataset id" offline "$tmp/minari" \
  "$PBRL" train offline --task mujoco/Hopper-v5 --dataset mujoco/hopper/medium-v0 --agent bc --steps 10 -o "$tmp/minari"
needs_extra "pbrl train --track (Weights & Biases)" wandb "$tmp/track" \
  "$PBRL" train offline --task mujoco/Hopper-v5 --agent bc --collect-policy random --collect-steps 500 --steps 10 \
  --track -o "$tmp/track"
needs_extra "PEARL (optimal transport)" offline "$tmp/pearl" \
  "$PBRL" train offline --task mujoco/Hopper-v5 --agent pearl --collect-policy random --collect-steps 500 \
  --steps 10 -o "$tmp/pearl"

if [ "$fails" -gt 0 ]; then
  echo "[core] $fails check(s) failed"; exit 1
fi
echo "[core] all checks passed"
