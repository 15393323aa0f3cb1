#!/usr/bin/env bash
# Serving speed of an existing pipeline's models: each runtime's side-by-side table (student, vanilla,
# bar), then the ratios measured in turn in one process (the numbers to quote).
#   bash benchmarks/serving.sh PRESET CHECKPOINTS_DIR OUT_DIR [args]   # -> OUT_DIR/{log.txt,results.txt}
# Extra arguments go to every script (e.g. --threads 2). Needs IMDB_DATA or network access.
set -euo pipefail
preset=${1:?usage: serving.sh PRESET CHECKPOINTS_DIR OUT_DIR [args]}
ck=${2:?usage: serving.sh PRESET CHECKPOINTS_DIR OUT_DIR [args]}
out=${3:?usage: serving.sh PRESET CHECKPOINTS_DIR OUT_DIR [args]}
shift 3
cd "$(dirname "$0")/.."
mkdir -p "$out"
if [ -e "$out/results.txt" ]; then mv "$out/results.txt" "$out/results.prev.txt"; fi
{
  echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) preset=$preset checkpoints=$ck commit=$(git rev-parse --short HEAD 2>/dev/null || echo none)"
  echo "# machine: $(nproc) cores, $(lscpu 2>/dev/null | grep -m1 'Model name' | sed 's/.*: *//'), torch $(python -c 'import torch; print(torch.__version__)')"
  for runtime in torch onnx onnx-int8; do
    for script in vanilla_inference.py compare_student.py; do
      echo "## python $script --preset $preset --runtime $runtime $*"
      python "$script" --preset "$preset" --out-dir "$ck" --results "$out/results.txt" --no-progress --runtime "$runtime" "$@"
    done
    echo "## python compare_student.py --preset $preset --runtime $runtime --both $*"
    python compare_student.py --preset "$preset" --out-dir "$ck" --results "$out/results.txt" --no-progress --runtime "$runtime" --both "$@"
  done
} 2>&1 | grep -v "^Loading weights" | tee "$out/log.txt"
