#!/usr/bin/env bash
# Active learning on quick with 2,000 validation reviews and 8,000 pool labels: a seed set of 500 (margin against
# random, seeds 1-3), then today's seed set of 2,000 (margin) on the same seeds (JOURNAL, "Active learning: a seed
# set of 500", the second measurement).
set -euo pipefail
out=benchmarks/runs/al_seed500_val2000
work=$(mktemp -d)
{
  echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) commit=$(git rev-parse --short HEAD) machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p')"
  for arm in "seed500 --initial-labels 500 --compare-random" "today"; do
    set -- $arm
    name=$1; shift
    echo "## python training.py --preset quick --val-size 2000 --label-budget 10000 $* --seeds 1,2,3 --no-progress --threads 2"
    python training.py --preset quick --val-size 2000 --label-budget 10000 "$@" --seeds 1,2,3 \
      --out-dir "$work/$name" --results "$out/results.txt" --no-progress --threads 2
  done
  echo "# done $(date -u +%H:%M:%SZ)"
} 2>&1 | tee "$out/log.txt"
