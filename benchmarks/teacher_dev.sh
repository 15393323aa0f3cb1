#!/usr/bin/env bash
# Teacher settings on the movie-disjoint development set (training split only), one line each.
#   bash benchmarks/teacher_dev.sh benchmarks/runs/teacher_dev      # -> benchmarks/runs/teacher_dev/log.txt
#   bash benchmarks/teacher_dev.sh OUT_DIR "--max-len 256" "--max-len 512"   # other settings, one run each
# Needs IMDB_DATA or network access.
set -euo pipefail
out=${1:?usage: teacher_dev.sh OUT_DIR [SETTINGS...]}
shift
if [ $# -eq 0 ]; then set -- "" "--epochs 3" "--lr 2e-3"; fi
cd "$(dirname "$0")/.."
mkdir -p "$out"
{
  echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) commit=$(git rev-parse --short HEAD 2>/dev/null || echo none)"
  echo "# machine: $(nproc) cores, torch $(python -c 'import torch; print(torch.__version__)')"
  for settings in "$@"; do
    echo "## python -m benchmarks.teacher_dev --labels 8000 $settings"
    # shellcheck disable=SC2086  # settings are several words on purpose
    python -m benchmarks.teacher_dev --labels 8000 --no-progress $settings
  done
} 2>&1 | tee "$out/log.txt"
