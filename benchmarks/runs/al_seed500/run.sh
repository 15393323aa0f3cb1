#!/usr/bin/env bash
# Active learning on quick with a seed set of 500 (margin against random, seeds 1-3), then today's default
# (a seed set of 2,000, margin only) on the same seeds (JOURNAL, "Active learning: a seed set of 500").
set -euo pipefail
out=benchmarks/runs/al_seed500
work=$(mktemp -d)
{
  echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) commit=$(git rev-parse --short HEAD) machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p')"
  echo "## python training.py --preset quick --initial-labels 500 --compare-random --seeds 1,2,3 --eval-test-each-round --no-progress --threads 2"
  python training.py --preset quick --initial-labels 500 --compare-random --seeds 1,2,3 --eval-test-each-round \
    --out-dir "$work/seed500" --results "$out/results.txt" --no-progress --threads 2
  for seed in 1 2 3; do
    echo "## python training.py --preset quick --seeds $seed --no-progress --threads 2"
    python training.py --preset quick --seeds "$seed" --out-dir "$work/today_$seed" --results "$out/results.txt" \
      --no-progress --threads 2
  done
  echo "# done $(date -u +%H:%M:%SZ)"
} 2>&1 | tee "$out/log.txt"
