#!/usr/bin/env bash
# Set up a fresh machine: system libraries (OSMesa for headless MuJoCo rendering, ffmpeg, Chromium for
# the browser test) when we are root, then a virtual environment in .venv with the CPU build of torch
# and pbrl with all its extras. Safe to run again: finished steps are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  need=""
  for p in libosmesa6 libgl1 libegl1 chromium chromium-driver; do
    dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"
  done
  if [ -n "$need" ]; then
    echo "[setup] apt-get install$need"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/dev/null) \
      || echo "[setup] warning: could not install$need (rendering or browser tests will be skipped)"
  fi
fi

if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
VPIP=".venv/bin/python -m pip"
$VPIP install -q --upgrade pip
# The CPU build of torch: 2.13.0 is served from this machine's local wheel cache; an unpinned
# torch would pull a multi-GB CUDA build. pbrl's own requirement (torch>=2.2) is then satisfied.
.venv/bin/python -c "import torch" 2>/dev/null || $VPIP install -q "torch==2.13.0"
$VPIP install -q -e ".[offline,label,dev,dmc,docs,wandb]"
# for tests/core/test_stats_rliable.py only (pbrl.stats checked against rliable): rliable 1.2 declares arch < 8, and
# arch 7 does not import with pandas 3, so rliable goes in without its pins, beside arch 8 (the test drops the one
# keyword arch 8 no longer takes); pbrl itself never imports rliable
.venv/bin/python -c "import rliable.library" 2>/dev/null || { $VPIP install -q statsmodels && $VPIP install -q --no-deps "rliable==1.2.0" "arch==8.0.0"; }
echo "[setup] done: $(.venv/bin/python -c 'import torch, pbrl; print("pbrl", pbrl.__version__, "torch", torch.__version__)')"
