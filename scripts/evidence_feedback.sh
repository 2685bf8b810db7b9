#!/usr/bin/env bash
# The other core's half of the evidence re-run (issues 30 and 32), beside scripts/evidence_runs.sh:
#   nohup bash scripts/evidence_feedback.sh > /tmp/study.log 2>&1 &
# 1. The feedback study (scripts/bench_feedback.py, one worker), then its summary.
# 2. Once it is done, DTR and DPPO on Hopper medium-replay (issue 32), the step of evidence_runs.sh that costs the
#    most (about 2.5 CPU-h a run). Both scripts may reach the same runs: a run trains in one process at a time
#    (its lock), and the sweep that finds a run the other is training skips it untouched, so the two cores share
#    those six runs without training any twice. This one takes DTR first, evidence_runs.sh DPPO.
# Every step resumes where it stopped: the same command continues after any stop.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 MUJOCO_GL="${MUJOCO_GL:-osmesa}"
PY="nice -n 19 .venv/bin/python"
HOPPER=data/datasets/mujoco_Hopper-v5/medium-replay.hdf5
CURVE=benchmarks/offline_curve_d4rl
CAP=50000

$PY scripts/bench_feedback.py --workers 1 || echo "evidence_feedback.sh: the feedback study exited with $? (its failures are listed above)"
$PY scripts/bench_feedback.py --report-only
STEPS=$(.venv/bin/python -c "import json, sys; print(min(int(sys.argv[2]), json.load(open(sys.argv[1]))['recommended_steps']))" \
    "$CURVE/offline_curve.json" "$CAP")
$PY scripts/bench_offline.py --workers 1 --out benchmarks/bench_offline_d4rl --steps "$STEPS" --agents dtr dppo \
    --no-progress --datasets "$HOPPER"
