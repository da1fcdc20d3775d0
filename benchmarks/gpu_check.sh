#!/usr/bin/env bash
# The GPU check for a session lent an accelerator: one call of the device tool, under 8 minutes.
#   run(command="bash benchmarks/gpu_check.sh", timeout_s=540)
# Uses the image's own jax / flax / optax (the core install: no TensorFlow needed) and writes the
# figures to $OUT/gpu_check.json when $OUT is set.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
timeout 480 python3 benchmarks/gpu_check.py --steps 20 ${OUT:+--json "$OUT/gpu_check.json"} "$@"
