#!/usr/bin/env bash
# --both with the end-to-end ratios from back-to-back pairs of passes (JOURNAL: "the student against the bar in
# back-to-back pairs of passes"), on the checkpoints of today's quick and full pipeline runs at d764493.
#   bash benchmarks/runs/both_paired_2026-12-07/run.sh 2>&1 | tee benchmarks/runs/both_paired_2026-12-07/log.txt
#   RESULTS=results_repeat.txt bash benchmarks/runs/both_paired_2026-12-07/run.sh 2>&1 | tee .../log_repeat.txt
set -euo pipefail
cd "$(dirname "$0")/../../.."
res=benchmarks/runs/both_paired_2026-12-07/${RESULTS:-results.txt}
echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) commit=$(git rev-parse --short HEAD) $(nproc) cores"
for preset in quick full; do
  ck=benchmarks/runs/${preset}_2026-12-07b/checkpoints
  echo "# $preset: $ck"
  python compare_student.py --preset $preset --out-dir $ck --results $res --no-progress --both --threads 2
done
echo "# end $(date -u +%H:%M:%SZ)"
