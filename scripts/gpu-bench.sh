#!/usr/bin/env bash
# hpo's GPU checks in one call on a GPU machine (H100/H200, CUDA 13, PyTorch, no
# Rust). Prepare on the build machine with scripts/gpu-prepare.sh, which puts the
# CUDA build of hpo, the CUDA test binary of hpo-train and the datasets under
# target/gpu-carry/. On the GPU machine, from the repository root:
#   bash scripts/gpu-bench.sh                  # every section
#   SECTIONS="tests throughput" bash scripts/gpu-bench.sh
# Sections:
#   tests       hpo-train's CUDA tests: each fused kernel against the composite
#               candle ops on the GPU and its CPU form; every parameter of every
#               model gets a gradient on the GPU; CUDA AdamW against the CPU update.
#   throughput  training steps/s of the MLP, the fashion-mnist CNN and the GPT
#               ($WORKLOADS) at batches $BATCHES (default "64 256"), hpo (candle CUDA) against
#               PyTorch eager on the same card, fp32, $REPS (3) alternating runs
#               of $STEPS (100) steps; medians and ratios at the end.
#   study       a fashion-mnist CNN study on the GPU ($STUDY, $STUDY_SECONDS).
# Results also go to $OUT (throughput.jsonl, the study's database).
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/gpu-env.sh
sections=${SECTIONS:-tests throughput study}

if [[ " $sections " == *" tests "* ]]; then
  echo "== hpo-train's CUDA tests"
  python3 -c "import lzma,shutil;shutil.copyfileobj(lzma.open('$carry/hpo-train-tests.xz'),open('/tmp/hpo-train-tests','wb'))"
  chmod +x /tmp/hpo-train-tests
  (cd crates/train && /tmp/hpo-train-tests --test-threads 1 cuda gpu 2>&1 | grep -E "^test |test result|panicked|differs|FAILED" | tail -40)
fi

if [[ " $sections " == *" throughput "* ]]; then
  echo "== throughput: hpo (candle CUDA) vs PyTorch (eager CUDA), fp32, same card"
  : > "$out/throughput.jsonl"
  for rep in $(seq "${REPS:-3}"); do
    for w in ${WORKLOADS:-digits-mlp fashion-cnn jargon-transformer}; do
      for b in ${BATCHES:-64 256}; do
        /tmp/hpo bench train --device cuda --workload "$w" --batch "$b" --steps "${STEPS:-100}" --json | grep '^{' >> "$out/throughput.jsonl"
        python3 scripts/bench_torch.py --device cuda --workload "$w" --batch "$b" --steps "${STEPS:-100}" >> "$out/throughput.jsonl"
      done
    done
  done
  python3 - "$out/throughput.jsonl" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
keys = sorted({(r["workload"], r["batch"]) for r in runs})
print(f"{'workload':20} {'batch':>5} {'hpo':>12} {'pytorch':>12} {'ratio':>6}  unit (median of runs; hpo runs)")
for w, b in keys:
    med = lambda impl: statistics.median(r["throughput"] for r in runs if (r["workload"], r["batch"], r["impl"]) == (w, b, impl))
    hpo, torch = med("hpo-candle"), med("pytorch")
    each = " ".join(f"{r['throughput']:.0f}" for r in runs if (r["workload"], r["batch"], r["impl"]) == (w, b, "hpo-candle"))
    unit = next(r["unit"] for r in runs if r["workload"] == w)
    print(f"{w:20} {b:>5} {hpo:>12.0f} {torch:>12.0f} {hpo / torch:>6.2f}  {unit} ({each})")
PY
fi

if [[ " $sections " == *" study "* ]]; then
  echo "== fashion-mnist CNN study on the GPU"
  study=${STUDY:-studies/fashion-cnn.toml}
  sed -e "s/^device = .*/device = \"cuda\"/" "$study" > /tmp/gpu-study.toml
  start=$(date +%s)
  timeout "${STUDY_SECONDS:-900}" /tmp/hpo run /tmp/gpu-study.toml --db /tmp/gpu.sqlite ${STUDY_ARGS:-}
  echo "study wall seconds: $(( $(date +%s) - start ))"
  /tmp/hpo show fashion-cnn --db /tmp/gpu.sqlite | head -20
  cp /tmp/gpu.sqlite "$out/" 2>/dev/null || true
fi
