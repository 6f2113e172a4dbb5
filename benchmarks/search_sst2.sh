#!/usr/bin/env bash
# The issue-16 measurement, scaled by its arguments: the shipped SST-2 BiLSTM spec trained once,
# then specs/sst2_bilstm_search.yaml run twice at the same seed, with its median pruner and with
# pruner none, all on the same train slice and epochs. Prints load, wall times and each
# search's trials.md (dev metric per trial, states, trial and worker RSS, best trial's test).
#
#   benchmarks/search_sst2.sh [LIMIT] [EPOCHS] [TRIALS] [OUT]
#   benchmarks/search_sst2.sh 6000 2 10                      # the scaled-down run in RESULTS.md
#   benchmarks/search_sst2.sh 0 3 20                         # the full run (0: all 67k rows)
set -euo pipefail
LIMIT=${1:-6000}; EPOCHS=${2:-2}; TRIALS=${3:-10}; OUT=${4:-benchmarks/out/search-sst2}
KBUILD=${KBUILD:-kbuild}
SET=(--set train.epochs="$EPOCHS")
if [ "$LIMIT" != 0 ]; then SET+=(--set data.limit="$LIMIT"); fi
rm -rf "$OUT"; mkdir -p "$OUT"

echo "== shipped spec: $(uptime)"
start=$(date +%s)
$KBUILD train specs/sst2_bilstm.yaml "${SET[@]}" --run-dir "$OUT/shipped" 2>"$OUT/shipped.log"
echo "shipped wall: $(( $(date +%s) - start )) s"

for pruner in median none; do
  echo "== search, pruner $pruner: $(uptime)"
  start=$(date +%s)
  $KBUILD tune specs/sst2_bilstm_search.yaml "${SET[@]}" --set search.trials="$TRIALS" \
    --set search.pruner="$pruner" --set search.timeout_s=null --run-dir "$OUT/$pruner" 2>"$OUT/$pruner.log"
  echo "search $pruner wall: $(( $(date +%s) - start )) s; $(uptime)"
  cat "$OUT/$pruner/trials.md"
done
