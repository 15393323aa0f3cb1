#!/usr/bin/env bash
# Margin sampling on quick scoring a sample of 4,000 unlabeled reviews (today) or the whole pool, in pairs by seed
# (JOURNAL, "Active learning: scoring the whole pool"). Seed 1 of today's arm is runs/quick_2026-12-06d's run.
set -euo pipefail
out=benchmarks/runs/al_pool_sample
work=$(mktemp -d)
{
  echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) commit=$(git rev-parse --short HEAD) machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p')"
  for run in "whole 1" "today 2" "whole 2" "today 3" "whole 3"; do
    set -- $run
    extra=(); [ "$1" = whole ] && extra=(--pool-sample 0)
    echo "## python training.py --preset quick --seeds $2 ${extra[*]} --no-progress --threads 2"
    python training.py --preset quick --seeds "$2" "${extra[@]}" --out-dir "$work/$1_$2" --results "$out/results.txt" \
      --no-progress --threads 2
  done
} 2>&1 | tee "$out/log.txt"
