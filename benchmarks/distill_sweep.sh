#!/usr/bin/env bash
# origi.py settings compared on an existing teacher, one run each (selection by validation accuracy is
# printed in each run's log; test accuracy is reported, never used to choose). Without SETTINGS: the
# temperature / alpha sweep (the default, T=4 and alpha=0.9, runs in the pipeline).
#   bash benchmarks/distill_sweep.sh quick benchmarks/runs/quick/checkpoints benchmarks/runs/distill_sweep
#   bash benchmarks/distill_sweep.sh quick CK OUT "--unlabeled none --seed 1" "--unlabeled imdb --seed 1"
set -euo pipefail
usage="usage: distill_sweep.sh PRESET CHECKPOINTS_DIR OUT_DIR [SETTINGS...]"
preset=${1:?$usage}
ck=${2:?$usage}
out=${3:?$usage}
shift 3
if [ $# -eq 0 ]; then
  set -- "--temperature 1 --alpha 0.7" "--temperature 2 --alpha 0.7" "--temperature 4 --alpha 0.7" \
    "--temperature 8 --alpha 0.9"
fi
cd "$(dirname "$0")/.."
mkdir -p "$out/checkpoints"
# A copy of the teacher, so that the sweep's students do not overwrite the pipeline's.
rm -rf "$out/checkpoints/teacher" && cp -r "$ck/teacher" "$out/checkpoints/teacher"
{
  echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) preset=$preset commit=$(git rev-parse --short HEAD 2>/dev/null || echo none)"
  echo "# machine: $(nproc) cores, $(lscpu 2>/dev/null | grep -m1 'Model name' | sed 's/.*: *//'), torch $(python -c 'import torch; print(torch.__version__)')"
  for settings in "$@"; do
    echo "## python origi.py --preset $preset --skip-baseline $settings"
    # shellcheck disable=SC2086  # settings are several words on purpose
    python origi.py --preset "$preset" --out-dir "$out/checkpoints" --results "$out/results.txt" --no-progress \
      --skip-baseline $settings
  done
} 2>&1 | grep -v "^Loading weights" | tee "$out/log.txt"
