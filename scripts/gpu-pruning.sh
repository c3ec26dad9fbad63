#!/usr/bin/env bash
# The fashion-mnist half of issue 5's pruning benchmark, on a GPU machine (CUDA 13,
# no Rust). Prepare on the build machine with scripts/gpu-prepare.sh.
# On the GPU machine, from the repository root: bash scripts/gpu-pruning.sh
#  1. Throughput against trials at once on one GPU: studies/fashion-cnn.toml cut to
#     one epoch per trial, with trials_per_device = K (1, 2, 4, 8, 16), one K per
#     GPU at the same time (the GPUs are independent; only the CPUs are shared).
#  2. `hpo bench pruning` on studies/fashion-cnn.toml (30 trials, 15 epochs, random
#     search) for none, median, asha and hyperband, over study seeds 0-4. Each run
#     spreads its trials over every GPU (TPD trials at once per GPU, default 2);
#     JOBS runs at once (default 4). Finished runs go to $OUT/runs.jsonl as they end;
#     pass a previous runs.jsonl as RUNS to skip what it holds (a cut-short
#     benchmark resumes). BENCH_SECONDS bounds part 2 (default 500).
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/gpu-env.sh
out=${OUT:-/tmp/out}
mkdir -p "$out"
nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader
nproc
n_gpus=$(nvidia-smi --query-gpu=index --format=csv,noheader | wc -l)
devices=$(python3 -c "print(', '.join(f'\"cuda:{i}\"' for i in range($n_gpus)))")

if [ "${PROFILE:-1}" = 1 ]; then
  echo "== 1. fashion CNN (32 channels, hidden 256, batch 128): step throughput, then 3-epoch"
  echo "   trials, several at once on one GPU (one setting per GPU, all at the same time)"
  /tmp/hpo bench train --device cuda --workload fashion-cnn --steps 50 2>&1 | tail -1
  mk() { sed -e "s/^device = .*/device = \"cuda:$1\"\ntrials_per_device = $2/" \
      -e "s/^trials = .*/trials = $2/" -e 's/^max_epochs = .*/max_epochs = 3/' \
      -e 's/^fixed = .*/fixed = { blocks = 2, batch_size = 128, schedule = "cosine", augment = "none", channels = 32, hidden = 256 }/' \
      -e '/^augment/d;/^channels/d;/^hidden/d' studies/fashion-cnn.toml > "$3"; }
  go() { /tmp/hpo run "$1" --db "$2" > /dev/null 2>&1
    /tmp/hpo export fashion-cnn --db "$2" --format csv --curves | awk -F, -v what="$3" -v k="$4" '
      $3 == "epoch_seconds" && $2 > 1 { s += $4; n++ }
      END { printf "%s: epochs 2-3 take %.2f s each; %d at once: %.2f trial-epochs/s\n", what, s / n, k, k * n / s }'; }
  mk 0 1 /tmp/p1.toml; mk 2 4 /tmp/p4.toml; mk 3 8 /tmp/p8.toml
  go /tmp/p1.toml /tmp/p1.db "1 trial, 1 process" 1 &
  for i in 1 2 3 4; do mk 1 1 /tmp/q$i.toml; go /tmp/q$i.toml /tmp/q$i.db "4 processes of 1 trial, #$i" 1 & done
  go /tmp/p4.toml /tmp/p4.db "4 trials in 1 process" 4 &
  go /tmp/p8.toml /tmp/p8.db "8 trials in 1 process" 8 &
  wait
fi

[ "${BENCH:-1}" = 1 ] || exit 0
echo "== 2. hpo bench pruning, fashion-mnist CNN, $n_gpus GPU(s), ${TPD:-2} trial(s) per GPU per run, ${JOBS:-4} run(s) at once per process, ${PROCS:-1} process(es)"
sed -e "s/^device = .*/devices = [$devices]\ntrials_per_device = ${TPD:-2}/" \
    studies/fashion-cnn.toml > studies/fashion-cnn-gpus.toml
[ -n "${RUNS:-}" ] && cp "$RUNS" "$out/runs.jsonl"
start=$(date +%s)
if [ "${PROCS:-1}" = 1 ]; then
  timeout "${BENCH_SECONDS:-500}" /tmp/hpo bench pruning --studies studies/fashion-cnn-gpus.toml \
    --seeds 5 --jobs "${JOBS:-4}" --runs "$out/runs.jsonl" 2>&1
else
  # One process per pruner (separate CUDA contexts), all appending to one runs file.
  for p in none median asha hyperband; do
    timeout "${BENCH_SECONDS:-500}" /tmp/hpo bench pruning --studies studies/fashion-cnn-gpus.toml \
      --seeds 5 --pruners $p --jobs "${JOBS:-4}" --runs "$out/runs.jsonl" > "/tmp/bench-$p.log" 2>&1 &
  done
  wait
  cat /tmp/bench-*.log
fi
echo "bench wall seconds: $(( $(date +%s) - start ))"
rm -f studies/fashion-cnn-gpus.toml
