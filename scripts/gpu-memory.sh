#!/usr/bin/env bash
# Peak memory of one fashion-mnist CNN trial on a GPU machine: the first trial of
# studies/fashion-cnn.toml (channels, hidden and the rest as its seed draws them),
# cut to $EPOCHS epochs (default 2; each ends with an evaluation of the training
# and validation splits), run by the CUDA build of hpo (scripts/gpu-env.sh says
# which). Prints the card's peak memory in use (nvidia-smi, sampled every 0.2 s,
# less what was in use before) and the process's peak host memory (RSS).
# With target/gpu-carry/hpo-before.xz present (another build, e.g. of an earlier
# commit), measures it the same way first, for a before/after pair.
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/gpu-env.sh
epochs=${EPOCHS:-2}
study=/tmp/fashion-memory.toml
sed -e "s/^max_epochs = .*/max_epochs = $epochs/" -e 's/^trials = .*/trials = 1/' \
  -e 's/^device = .*/device = "cuda"/' studies/fashion-cnn.toml > "$study"
binaries=()
if [ -e "$carry/hpo-before.xz" ]; then
  python3 -c "import lzma,shutil;shutil.copyfileobj(lzma.open('$carry/hpo-before.xz'),open('/tmp/hpo-before','wb'))"
  chmod +x /tmp/hpo-before
  binaries+=(/tmp/hpo-before)
fi
binaries+=(/tmp/hpo)
for bin in "${binaries[@]}"; do
  db=$(mktemp -u /tmp/fashion-memory-XXXX.sqlite)
  base=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -i 0)
  samples=$(mktemp)
  ( while true; do nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -i 0 >> "$samples"; sleep 0.2; done ) &
  sampler=$!
  started=$(date +%s.%N)
  /usr/bin/time -v "$bin" run "$study" --db "$db" > /tmp/run.out 2> /tmp/run.err
  rc=$?
  ended=$(date +%s.%N)
  kill "$sampler" 2>/dev/null
  peak=$(sort -n "$samples" | tail -1)
  rss=$(grep "Maximum resident set size" /tmp/run.err | awk '{print $NF}')
  echo "== $bin (exit $rc, $(python3 -c "print(round($ended - $started, 1))") s, $epochs epochs)"
  grep -E "^trial|best:" /tmp/run.out | head -3
  echo "gpu memory in use: peak ${peak} MiB, before the run ${base} MiB: the trial took $((peak - base)) MiB"
  echo "host peak RSS: $((rss / 1024)) MiB"
  cp "$db" "$results/$(basename "$bin").sqlite" 2>/dev/null
  rm -f "$samples"
done
