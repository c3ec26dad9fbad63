#!/usr/bin/env bash
# The fashion-mnist half of the pruning benchmark (hpo bench pruning), on a GPU machine, with a CUDA
# build of hpo (scripts/gpu-env.sh says which).
# On the GPU machine, from the repository root: bash scripts/gpu-pruning.sh
#
# `hpo bench pruning` on studies/fashion-cnn.toml (30 trials, at most 15 epochs,
# random search) for none, median, asha and hyperband over study seeds 0-4. Each
# run spreads its trials over every visible GPU, TPD trials at once per GPU (default
# 1: one fashion CNN trial keeps an H200 busy; docs/benchmarks.md), JOBS runs at
# once (default 1). Finished runs are appended to $RESULTS_DIR/runs.jsonl as
# they end; RUNS=previous/runs.jsonl starts from a previous invocation's file and skips
# what it holds, so the benchmark can be spread over several invocations (about 45 min
# of one H200 in all). PRUNERS=asha,hyperband runs only those. BENCH_SECONDS bounds
# the invocation (default 540), cutting short the run under way; START_WITHIN=330s starts
# no run after 330 s, so an invocation ends between runs if START_WITHIN plus the longest
# run (a no-pruning run: up to about 4 minutes) is under BENCH_SECONDS, e.g.
# START_WITHIN=330s BENCH_SECONDS=590. The runs so far are committed in
# docs/runs/fashion-pruning.jsonl: RUNS=docs/runs/fashion-pruning.jsonl goes on
# from them (copy an invocation's $RESULTS_DIR/runs.jsonl back over it afterwards). They ran on
# one GPU with TPD=1: a run's fingerprint covers the study file as run, devices
# line included, so on another number of GPUs or another TPD they run again.
# scripts/pruning-table.sh prints the committed runs of both studies as one table.
#
# Each trial at once on a GPU trains in a lane of its own (own
# stream and cuBLAS handle), and trials at once no longer slow each other down;
# but one fashion CNN trial already keeps an H200 busy, so TPD=1 is as fast as any
# (docs/benchmarks.md).
#
# PROFILE=1 first measures trial-epochs per second with K = 1, 2, 4, 8 trials at once
# on one GPU each (one K per GPU, at the same time; 3-epoch trials of a fixed CNN);
# on a machine of one GPU one K after another, K from PROFILE_KS. PROFILE_ONLY=1
# stops after that.
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/gpu-env.sh

if [ "${PROFILE:-0}" = 1 ]; then
  echo "== trial-epochs per second against trials at once on one GPU"
  mk() { sed -e "s/^device = .*/device = \"cuda:$1\"\ntrials_per_device = $2/" \
      -e "s/^trials = .*/trials = $2/" -e 's/^max_epochs = .*/max_epochs = 3/' \
      -e 's/^fixed = .*/fixed = { blocks = 2, batch_size = 128, schedule = "cosine", augment = "none", channels = 32, hidden = 256 }/' \
      -e '/^augment/d;/^channels/d;/^hidden/d' studies/fashion-cnn.toml > "$3"; }
  go() { /tmp/hpo run "$1" --db "$2" > /dev/null 2>&1
    /tmp/hpo export fashion-cnn --db "$2" --format csv --curves | awk -F, -v what="$3" -v k="$4" '
      $3 == "epoch_seconds" && $2 > 1 { s += $4; n++ }
      END { printf "%s: epochs 2-3 take %.2f s each; %.2f trial-epochs/s\n", what, s / n, k * n / s }'; }
  ks=(${PROFILE_KS:-1 2 4 8})
  if [ "$n_gpus" = 1 ]; then
    # One GPU: one K after another.
    for k in "${ks[@]}"; do
      mk 0 "$k" "/tmp/k$k.toml"
      go "/tmp/k$k.toml" "/tmp/k$k.db" "$k trial(s) at once on cuda:0" "$k"
    done
  else
    for i in $(seq 0 $((n_gpus - 1))); do
      [ "$i" -lt "${#ks[@]}" ] || break
      k=${ks[$i]}
      mk "$i" "$k" "/tmp/k$k.toml"
      go "/tmp/k$k.toml" "/tmp/k$k.db" "$k trial(s) at once on cuda:$i" "$k" &
    done
    wait
  fi
  [ "${PROFILE_ONLY:-0}" = 1 ] && exit 0
fi

echo "== hpo bench pruning, fashion-mnist CNN, $n_gpus GPU(s), ${TPD:-1} trial(s) per GPU per run, ${JOBS:-1} run(s) at once"
scripts/fashion-gpu-study.sh "$devices" "${TPD:-1}" studies/fashion-cnn-gpus.toml
[ -n "${RUNS:-}" ] && cp "$RUNS" "$results/runs.jsonl"
start=$(date +%s)
timeout "${BENCH_SECONDS:-540}" /tmp/hpo bench pruning --studies studies/fashion-cnn-gpus.toml \
  --seeds 5 --jobs "${JOBS:-1}" --runs "$results/runs.jsonl" ${PRUNERS:+--pruners "$PRUNERS"} \
  ${START_WITHIN:+--start-within "$START_WITHIN"} 2>&1
echo "bench wall seconds: $(( $(date +%s) - start ))"
rm -f studies/fashion-cnn-gpus.toml
