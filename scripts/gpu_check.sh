#!/usr/bin/env bash
# The 5-minute GPU check (issue: GPU-ready): one online agent, one offline agent and the reward ensemble
# at paper sizes on CUDA, with the CPU throughput measured beside it. Run on a machine with a GPU from the
# repository root; sets up .venv first if needed. Output: results/gpu_check.json and the printed lines.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || bash scripts/setup.sh
export MUJOCO_GL=${MUJOCO_GL:-egl}
.venv/bin/python scripts/gpu_check.py --device "${PBRL_DEVICE:-cuda}" "$@"
