#!/usr/bin/env bash
# The report's three timing commands again on full_2026-12-06c's checkpoints, with end-to-end passes timed
# over at least 2 s (JOURNAL: "an end-to-end pass of the student is too short to time once").
#   bash benchmarks/runs/full_timing_2026-12-06/run.sh 2>&1 | tee benchmarks/runs/full_timing_2026-12-06/log.txt
set -euo pipefail
cd "$(dirname "$0")/../../.."
ck=benchmarks/runs/full_2026-12-06c/checkpoints res=benchmarks/runs/full_timing_2026-12-06/results.txt
echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) commit=$(git rev-parse --short HEAD) $(nproc) cores"
python compare_student.py --preset full --out-dir $ck --results $res --no-progress
python vanilla_inference.py --preset full --out-dir $ck --results $res --no-progress
python compare_student.py --preset full --out-dir $ck --results $res --no-progress --both
echo "# end $(date -u +%H:%M:%SZ)"
