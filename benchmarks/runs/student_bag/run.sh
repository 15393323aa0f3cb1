#!/usr/bin/env bash
# The student with a bag of n-grams and the bar in its soft labels, against today's (JOURNAL, "The student with a
# bag of n-grams"), on the teacher and bar of runs/quick_2026-12-06d: one copy of that checkpoint folder per run.
#   bash benchmarks/runs/student_bag/run.sh QUICK_CHECKPOINTS
set -euo pipefail
src=${1:?usage: run.sh QUICK_CHECKPOINTS}
out=benchmarks/runs/student_bag
work=$(mktemp -d)
{
  echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) commit=$(git rev-parse --short HEAD) machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p')"
  for arm in "bag 1 --ngram-bag-buckets 131072 --bar-weight 0.5" "today 2" "bag 2 --ngram-bag-buckets 131072 --bar-weight 0.5"; do
    set -- $arm
    name=$1 seed=$2; shift 2
    mkdir -p "$work/${name}_$seed" && cp -r "$src/teacher" "$src/bar" "$work/${name}_$seed/"
    echo "## python origi.py --preset quick --skip-baseline --seed $seed $* --no-progress --threads 2"
    python origi.py --preset quick --out-dir "$work/${name}_$seed" --results "$out/results.txt" --skip-baseline \
      --seed "$seed" "$@" --no-progress --threads 2
  done
  echo "# checkpoints in $work"
} 2>&1 | tee "$out/log.txt"
