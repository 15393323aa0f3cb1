#!/usr/bin/env bash
# --both with every ratio from back-to-back pairs of passes (JOURNAL: "every ratio of --both from back-to-back
# pairs"), on the checkpoints of the quick and full pipeline runs at d764493 (runs/*_2026-12-07b).
#   bash benchmarks/runs/both_all_paired_2026-12-07/run.sh 2>&1 | tee benchmarks/runs/both_all_paired_2026-12-07/log.txt
#   RESULTS=results_repeat.txt bash benchmarks/runs/both_all_paired_2026-12-07/run.sh 2>&1 | tee .../log_repeat.txt
set -euo pipefail
cd "$(dirname "$0")/../../.."
res=benchmarks/runs/both_all_paired_2026-12-07/${RESULTS:-results.txt}
echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) commit=$(git rev-parse --short HEAD) $(nproc) cores"
for preset in quick full; do
  ck=benchmarks/runs/${preset}_2026-12-07b/checkpoints
  echo "# $preset: $ck"
  start=$(date +%s)
  python compare_student.py --preset $preset --out-dir $ck --results $res --no-progress --both --threads 2
  echo "# --both took $(( $(date +%s) - start )) s"
done
echo "# end $(date -u +%H:%M:%SZ)"
