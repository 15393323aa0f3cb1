#!/usr/bin/env bash
# The one prepared script for a GPU machine (issue 30): the whole pipeline and the timing scripts on one
# GPU, then with training.py and origi.py under torchrun on all of the machine's GPUs. Logs, results and
# what the machine is go to OUT (default benchmarks/runs/gpu/): machine.txt, one_gpu/, all_gpus/.
#   bash benchmarks/gpu_check.sh                                  # the full preset on this machine's GPUs
#   GPU_CHECK_PRESET=smoke GPU_CHECK_DEVICE=cpu GPU_CHECK_NPROC=2 bash benchmarks/gpu_check.sh /tmp/gpu
# The second line is its rehearsal on a CPU (tests/test_benchmarks.py runs it). Needs IMDB_DATA or network access.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-benchmarks/runs/gpu}
preset=${GPU_CHECK_PRESET:-full}
device=${GPU_CHECK_DEVICE:-cuda}
if [ "$device" = cuda ]; then
  nproc=${GPU_CHECK_NPROC:-$(nvidia-smi -L | wc -l)}
else
  nproc=${GPU_CHECK_NPROC:-2}
fi
mkdir -p "$out"
{
  date -u +%Y-%m-%dT%H:%M:%SZ
  git rev-parse --short HEAD 2>/dev/null || echo "no git"
  if command -v nvidia-smi >/dev/null; then nvidia-smi; fi
  python -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "gpus", torch.cuda.device_count())'
} > "$out/machine.txt" 2>&1
bash benchmarks/pipeline.sh "$preset" "$out/one_gpu" --device "$device"
if [ "$nproc" -gt 1 ]; then
  NPROC=$nproc bash benchmarks/pipeline.sh "$preset" "$out/all_gpus" --device "$device"
else
  echo "one device: no run on all of them" | tee "$out/all_gpus.txt"
fi
grep -h "wall time" "$out"/*/log.txt
