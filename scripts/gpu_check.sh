#!/usr/bin/env bash
# The GPU checks in one go (issue 13.6): the gpu-marked tests (CUDA autocast CLIP, the
# pixel measures on CUDA, alone and in same-size groups, GPU JPEG decode, onnxruntime's
# CUDA provider with the fixture insightface pack, a Ray GPU actor), the GPU section of the
# throughput benchmark, the per-stage profile (benchmarks/stage_profile.py) on CUDA, and
# the pixel measures per image alone and in groups (pixel_speed.py, pixel_groups.py).
# Everything goes under one results folder. Without CUDA it stops at once and says so.
#
#   bash scripts/gpu_check.sh [RESULTS_DIR]      (default: gpu-results/<UTC timestamp>)
# Budget: under 8 minutes on one GPU: the steps share GPU_CHECK_BUDGET seconds (default 450).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
OUT=${1:-gpu-results/$(date -u +%Y%m%dT%H%M%SZ)}

if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  echo "gpu_check: torch sees no CUDA device on this machine — nothing to check here." >&2
  echo "gpu_check: run this script on a machine with an NVIDIA GPU and a CUDA build of torch." >&2
  exit 2
fi
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1
status=0
# The whole script stays under 8 minutes: each step gets its own cap or what is left of
# BUDGET seconds, whichever is less; a step cut short, or skipped because the budget is
# spent, fails the run and says so (a hung step is killed 10 s after its time).
SECONDS=0
BUDGET=${GPU_CHECK_BUDGET:-450}
step() {  # step NAME CAP_SECONDS OUTPUT_FILE COMMAND...
  local name=$1 cap=$2 out=$3 left=$((BUDGET - SECONDS)) rc
  shift 3
  if [ "$left" -le 5 ]; then
    echo "gpu_check: $name skipped: the ${BUDGET} s budget is spent"
    status=1
    return
  fi
  [ "$left" -lt "$cap" ] && cap=$left
  timeout -k 10 "$cap" "$@" > "$out" 2>&1
  rc=$?
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
    echo "gpu_check: $name cut short after $cap s"
  fi
  [ "$rc" = 0 ] || status=1
}
{
  echo "date: $(date -u)"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
  "$PY" -c 'import torch, torchvision; print("torch", torch.__version__, "cuda", torch.version.cuda, "torchvision", torchvision.__version__)'
} > "$OUT/machine.txt" 2>&1

echo "== gpu-marked tests"
step "gpu-marked tests" 240 "$OUT/gpu_tests.txt" "$PY" -m pytest -q -m gpu tests/ --junitxml="$OUT/gpu_tests.xml"
tail -3 "$OUT/gpu_tests.txt"

echo "== throughput (GPU section: standard and quick, images/s, FLOP/s share, GPU memory)"
step "throughput" 200 "$OUT/throughput_gpu.log" "$PY" benchmarks/throughput.py --images 8 --batch-sizes 8 \
  --repeats 1 --no-baseline --gpu-images 512 --out "$OUT/throughput.md"
tail -3 "$OUT/throughput_gpu.log"

echo "== stage profile on CUDA (per image and per stage, standard and quick, 1024 px)"
step "stage profile" 120 "$OUT/stage_profile.log" "$PY" benchmarks/stage_profile.py --device cuda --images 4 \
  --out "$OUT/stage_profile.md"
tail -8 "$OUT/stage_profile.log"

echo "== pixel measures per image on CUDA vs CPU"
step "pixel_speed" 60 "$OUT/pixel_speed_cuda.md" "$PY" benchmarks/pixel_speed.py --device cuda
cat "$OUT/pixel_speed_cuda.md"

echo "== pixel measures in same-size groups on CUDA (operations, syncs and ms per image, groups of 1, 8, 16, 32)"
step "pixel_groups" 60 "$OUT/pixel_groups_cuda.md" "$PY" benchmarks/pixel_groups.py --device cuda --size 1024 \
  --groups 1 8 16 32
cat "$OUT/pixel_groups_cuda.md"

echo "gpu_check: results in $OUT (exit $status)"
exit $status
