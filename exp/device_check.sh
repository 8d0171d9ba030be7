#!/usr/bin/env bash
# Device check (issue 14): MBPO ma_l1 with the stale-value refit on Hopper for a short budget and
# one SLBO ma_l1 iteration (refit on), on one device; prints ms per env step / s per iteration and
# fails (exit 1) on any tensor that is not on the requested device (dynamics model parameters and
# buffers, SAC networks, the value-aware update's and the refit's torch generators, the value
# estimator's outputs, the SLBO networks / normalisers / value-fit optimiser state).
#
#   bash exp/device_check.sh                 # cuda (default; <= 8 min on one GPU)
#   bash exp/device_check.sh --device cpu    # the same on CPU (slow: ~10+ min on 1 core)
#   bash exp/device_check.sh --device cpu --smoke   # plumbing check with tiny budgets (~2 min on 1 core)
#   bash exp/device_check.sh --device cuda --mbpo-steps 500 --skip-slbo
# It ends with the MBPO throughput of K = 1, 4, 8 concurrent runs per device (mle, ma_l1), and the
# SLBO seed-batched runner on the host's CPU (S = 1, 8 against the one-seed port, same numbers
# checked: a second machine kind for the batched runner's exactness; --skip-batch to skip). On a GPU
# it first checks the batched runner's device path (lockstep with the exact CPU kernels, 8 seeds'
# short runs on the GPU vs the CPU) and times it at S = 1, 8, 64 (--skip-gpu-batch to skip).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
DEVICE=cuda
MBPO_STEPS=500
SKIP_SLBO=0
SKIP_MBPO=0
SKIP_CONC=0
SKIP_BATCH=0
SKIP_GPU_BATCH=0
SMOKE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --device) DEVICE="$2"; shift 2 ;;
    --mbpo-steps) MBPO_STEPS="$2"; shift 2 ;;
    --skip-slbo) SKIP_SLBO=1; shift ;;
    --skip-mbpo) SKIP_MBPO=1; shift ;;
    --skip-concurrency) SKIP_CONC=1; shift ;;
    --skip-batch) SKIP_BATCH=1; shift ;;
    --skip-gpu-batch) SKIP_GPU_BATCH=1; shift ;;
    --smoke) SMOKE=1; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "unknown argument $1 (valid: --device cpu|cuda|cuda:N, --mbpo-steps N, --skip-slbo, --skip-mbpo, --skip-concurrency, --skip-batch, --skip-gpu-batch, --smoke)" >&2; exit 2 ;;
  esac
done
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" MKL_NUM_THREADS="${MKL_NUM_THREADS:-1}" MUJOCO_GL=disable
WORK="$(mktemp -d "${TMPDIR:-/tmp}/device_check.XXXXXX")"
echo "[device_check] device=$DEVICE smoke=$SMOKE work=$WORK commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"

SMOKE_ARG=""
[ "$SMOKE" = 1 ] && SMOKE_ARG="--smoke"
if [ "$SKIP_MBPO" = 0 ]; then
  PYTHONPATH="$PWD" "$PY" exp/device_check.py mbpo --device "$DEVICE" --steps "$MBPO_STEPS" --work "$WORK" $SMOKE_ARG
fi
if [ "$SKIP_SLBO" = 0 ]; then
  PYTHONPATH="$PWD" "$PY" exp/device_check.py slbo --device "$DEVICE" --work "$WORK" $SMOKE_ARG
fi
if [ "$SKIP_CONC" = 0 ]; then  # MBPO runs per device: mle and ma_l1, K = 1, 4, 8 at once (2 with --smoke)
  K="1 4 8"; [ "$SMOKE" = 1 ] && K="1 2"
  PYTHONPATH="$PWD" "$PY" exp/device_check.py mbpo-concurrency --device "$DEVICE" --work "$WORK" --k $K $SMOKE_ARG
fi
BUDGET="--n-iters 1 --train-samples 2000 --test-samples 1000"
[ "$SMOKE" = 1 ] && BUDGET="--n-iters 1 --model-iters 5 --policy-iters 2 --train-samples 400 --test-samples 400"
if [ "$SKIP_GPU_BATCH" = 0 ] && [ "$DEVICE" != cpu ]; then  # the batched runner's device path (issue 27 part 4)
  # lockstep with the exact CPU kernels (tolerances stated), then 8 seeds' short runs on $DEVICE vs the CPU
  PYTHONPATH="$PWD" "$PY" exp/device_check.py slbo-batch --device "$DEVICE" --work "$WORK" $SMOKE_ARG
  # seconds per seed-iteration at S = 1, 8, 64 on $DEVICE against the one-seed port on one CPU core
  S="1 8 64"; [ "$SMOKE" = 1 ] && S="1 8"
  PYTHONPATH="$PWD" "$PY" exp/slbo/bench_stage_time.py --envs pendulum --variants ma_l1 --setting paper $BUDGET \
    --batch $S --batch-device "$DEVICE" --out "$WORK/slbo_batch_device" | tail -8
fi
if [ "$SKIP_BATCH" = 0 ]; then  # SLBO seeds per process on the host CPU (vaml_ext/slbo/batched; CPU kernels)
  PYTHONPATH="$PWD" "$PY" exp/slbo/bench_stage_time.py --envs pendulum --variants ma_l1 --setting paper $BUDGET \
    --batch 1 8 --out "$WORK/slbo_batch" | tail -6
fi
echo "[device_check] OK ($DEVICE)"
