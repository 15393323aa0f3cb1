#!/usr/bin/env bash
# Run the four scripts in order with one preset and report each script's wall time.
#   bash benchmarks/pipeline.sh quick benchmarks/runs/quick        # -> benchmarks/runs/quick/{results.txt,log.txt}
#   NPROC=2 bash benchmarks/pipeline.sh quick benchmarks/runs/quick_torchrun   # training and distillation on 2 ranks
# Extra arguments go to every script (e.g. --threads 2). Needs IMDB_DATA or network access. With NPROC > 1,
# training.py and origi.py run under torchrun with NPROC processes (one per GPU on a GPU machine); the
# timing scripts always run in one process. TRAINING_ARGS: extra arguments for training.py alone (e.g.
# TRAINING_ARGS="--unlabeled imdb").
set -euo pipefail
preset=${1:?usage: pipeline.sh PRESET OUT_DIR [script args...]}
out=${2:?usage: pipeline.sh PRESET OUT_DIR [script args...]}
shift 2
cd "$(dirname "$0")/.."
mkdir -p "$out"
# A fresh results file, so that each script's comparison reads this run's numbers only; the previous
# one is kept beside it.
if [ -e "$out/results.txt" ]; then mv "$out/results.txt" "$out/results.prev.txt"; fi
{
  echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) preset=$preset nproc=${NPROC:-1} commit=$(git rev-parse --short HEAD 2>/dev/null || echo none)"
  echo "# machine: $(nproc) cores, $(python -c 'import platform; print(platform.processor() or platform.machine())'), torch $(python -c 'import torch; print(torch.__version__)')"
  for script in training.py origi.py compare_student.py vanilla_inference.py; do
    start=$(date +%s.%N)
    launch=(python)
    if [ "${NPROC:-1}" -gt 1 ] && [[ $script == training.py || $script == origi.py ]]; then
      launch=(python -m torch.distributed.run --standalone --nproc_per_node "$NPROC")
    fi
    own=()
    if [[ $script == training.py ]]; then read -ra own <<< "${TRAINING_ARGS:-}"; fi
    "${launch[@]}" "$script" --preset "$preset" --out-dir "$out/checkpoints" --results "$out/results.txt" --no-progress "${own[@]}" "$@"
    echo "# wall time $script: $(python -c "print(f'{$(date +%s.%N) - $start:.0f}')") s"
  done
  # The numbers to quote: the student against each model in back-to-back pairs of passes, median ratios.
  python compare_student.py --preset "$preset" --out-dir "$out/checkpoints" --results "$out/results.txt" --no-progress --both "$@"
} 2>&1 | tee "$out/log.txt"
