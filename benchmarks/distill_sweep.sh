#!/usr/bin/env bash
# Temperature / alpha sweep of origi.py on an existing teacher (selection by validation accuracy is
# printed in each run's log; test accuracy is reported, never used to choose).
#   bash benchmarks/distill_sweep.sh quick benchmarks/runs/quick/checkpoints benchmarks/runs/distill_sweep
set -euo pipefail
preset=${1:?usage: distill_sweep.sh PRESET CHECKPOINTS_DIR OUT_DIR}
ck=${2:?usage: distill_sweep.sh PRESET CHECKPOINTS_DIR OUT_DIR}
out=${3:?usage: distill_sweep.sh PRESET CHECKPOINTS_DIR OUT_DIR}
cd "$(dirname "$0")/.."
mkdir -p "$out/checkpoints"
# A copy of the teacher, so that the sweep's students do not overwrite the pipeline's.
rm -rf "$out/checkpoints/teacher" && cp -r "$ck/teacher" "$out/checkpoints/teacher"
{
  echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) preset=$preset commit=$(git rev-parse --short HEAD 2>/dev/null || echo none)"
  for setting in "1 0.7" "2 0.7" "4 0.7" "8 0.9"; do  # the default (T=4, alpha=0.9) runs in the pipeline
    set -- $setting
    echo "# temperature=$1 alpha=$2"
    python origi.py --preset "$preset" --out-dir "$out/checkpoints" --results "$out/results.txt" --no-progress \
      --skip-baseline --temperature "$1" --alpha "$2"
  done
} 2>&1 | tee "$out/log.txt"
