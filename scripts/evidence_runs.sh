#!/usr/bin/env bash
# The offline half of the evidence re-run (issue 30) and the D4RL-sized rows of issue 32, in order, on one core.
# Every step resumes where it stopped, so the same command continues after any stop (a session's end included):
#   nohup bash scripts/evidence_runs.sh > /tmp/evidence.log 2>&1 &
# The feedback study runs beside it on the other core (scripts/bench_feedback.py --workers 1).
#
# 1. Hopper-v5: the SAC expert (resumable chunks; the best-evaluated checkpoint is the expert; capped at 400k steps,
#    since its best evaluation, 3,216 at 380k, is 99.4 % of D4RL's expert 3,234; Walker2d's cap is 500k) and D4RL's medium / medium-replay / expert / medium-expert files with their cards; then drawer-open's scripted
#    data (a bare --metaworld builds none).
# 1b. The update budget on the D4RL-sized Hopper data: IQL-true and MR+IQL's learning curves over 100k updates.
# 2. The offline benchmark at its defaults (3 seeds, 15,000 updates) into a folder of its own (the old folder's
#    runs were trained on the old 25k-step Hopper file, which had the same path; every run now pins its file's
#    sha256): Hopper medium-replay first, with DPPO, DTR and the ensemble-normalised MR+IQL (issue 32), then
#    drawer-open's scripted-noisy data without DPPO / DTR (their papers' figures are D4RL locomotion; at about
#    50 CPU-min a run they come last, step 6).
# 3. IPL beside its authors' code on Hopper medium-replay (docs/results/ipl_hopper.md).
# 4. Walker2d-v5: the SAC expert (same cap) and its datasets; 5. the rows without DPPO / DTR on its medium-replay
#    file; 6. DPPO / DTR on Walker2d medium-replay and drawer-open; 7. the summary of all of it (the rows a
#    stopped run has not reached are listed as unfinished).
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 MUJOCO_GL="${MUJOCO_GL:-osmesa}"
PY="nice -n 19 .venv/bin/python"
DATA=data/datasets
OUT=benchmarks/bench_offline_d4rl
ROWS="iql_true bc mriql mriql_zscore pt_iql ipl cpl cplbc cpl_regret cplbc_regret oppo"

$PY scripts/make_datasets.py --mujoco mujoco/Hopper-v5 --metaworld --sac-steps 400000 --workers 1 --resume
$PY scripts/make_datasets.py --mujoco --metaworld metaworld/drawer-open-v3 --workers 1 --resume
HOPPER="$DATA/mujoco_Hopper-v5/medium-replay.hdf5"
DRAWER="$DATA/metaworld_drawer-open-v3/scripted-noisy.hdf5"
WALKER="$DATA/mujoco_Walker2d-v5/medium-replay.hdf5"
# 1b. the update budget on D4RL-sized data: IQL-true and MR+IQL for 100k updates (one seed); at bench_offline's 15k
#     (measured on the old 25k-step data) IQL-true was at 17 normalised after 12k, against the paper's 94.7 at 1M
$PY scripts/offline_curve.py --datasets "$HOPPER" --agents iql_true mriql --steps 100000 --eval-every 5000 --seeds 0 \
    --eval-episodes 5 --out benchmarks/offline_curve_d4rl --workers 1 --no-progress
$PY scripts/bench_offline.py --workers 1 --out "$OUT" --agents $ROWS dppo dtr --no-progress --datasets "$HOPPER"
$PY scripts/bench_offline.py --workers 1 --out "$OUT" --agents $ROWS --no-progress --datasets "$DRAWER"
$PY scripts/ipl_peer.py --dataset "$HOPPER" --labels "$DATA/mujoco_Hopper-v5/medium-replay.prefs_oracle_500.h5" \
    --variants pbrl pbrl-mask pbrl-rawobs peer --seeds 0 1 2 --steps 10000 --eval-every 1000 --eval-episodes 5 --jobs 1
$PY scripts/make_datasets.py --mujoco mujoco/Walker2d-v5 --sac-steps 500000 --workers 1 --resume
$PY scripts/bench_offline.py --workers 1 --out "$OUT" --agents $ROWS --no-progress --datasets "$WALKER"
$PY scripts/bench_offline.py --workers 1 --out "$OUT" --agents dppo dtr --no-progress --datasets "$WALKER" "$DRAWER"
# 7. one summary of every row on every dataset (a grid summarises its own points only)
$PY scripts/bench_offline.py --out "$OUT" --agents $ROWS dppo dtr --datasets "$HOPPER" "$DRAWER" "$WALKER" --report-only
