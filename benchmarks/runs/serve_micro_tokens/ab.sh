#!/usr/bin/env bash
# The JOURNAL's A/B for micro-batches by padded tokens: A = main (micro-batches of 8 reviews), B = branch
# micro-tokens (2,048 padded tokens per call), alternated A B A B on the same checkpoints, nothing else running.
#   bash benchmarks/runs/serve_micro_tokens/ab.sh 2>&1 | tee benchmarks/runs/serve_micro_tokens/log.txt
set -euo pipefail
main=/work/main wt=/work/wt-mb
ckpt=$main/benchmarks/runs/full_2026-12-06c/checkpoints
res=$main/benchmarks/runs/serve_micro_tokens/results.txt
for arm in A B A B; do
  dir=$main; [ "$arm" = B ] && dir=$wt
  echo "# arm $arm: $(git -C "$dir" rev-parse --short HEAD) $(date -u +%H:%M:%SZ)"
  (cd "$dir" && python compare_student.py --preset full --out-dir "$ckpt" --results "$res" \
     --batch-sizes 32 --threads 2 --no-progress --both)
done
