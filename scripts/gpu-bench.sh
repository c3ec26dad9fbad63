#!/usr/bin/env bash
# The GPU checks of issue 3, in one call on a GPU machine (H100/H200, CUDA 13,
# PyTorch, no Rust). Prepare on the build machine with scripts/gpu-prepare.sh, which
# puts the CUDA build of hpo and the datasets under target/gpu-carry/.
# On the GPU machine, from the repository root: bash scripts/gpu-bench.sh
# Prints: the card; hpo's unit tests of the CUDA path (gradients on the GPU); the
# three training workloads in hpo (candle) and PyTorch at the default batch and at
# batches that fill the GPU; then a fashion-mnist CNN study on the GPU.
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/gpu-env.sh

echo "== throughput: hpo (candle CUDA) vs PyTorch (eager CUDA), fp32, same card"
for batch in default large; do
  for w in digits-mlp fashion-cnn jargon-transformer; do
    case "$batch:$w" in
      default:*) b="" ;;
      large:digits-mlp) b="--batch 8192" ;;
      large:fashion-cnn) b="--batch 1024" ;;
      large:jargon-transformer) b="--batch 256" ;;
    esac
    /tmp/hpo bench train --device cuda --workload "$w" $b --steps 50 --json
    python3 scripts/bench_torch.py --device cuda --workload "$w" $b --steps 50
  done
done

echo "== fashion-mnist CNN study on the GPU"
study=${STUDY:-studies/fashion-cnn.toml}
sed -e "s/^device = .*/device = \"cuda\"/" "$study" > /tmp/gpu-study.toml
start=$(date +%s)
timeout "${STUDY_SECONDS:-900}" /tmp/hpo run /tmp/gpu-study.toml --db /tmp/gpu.sqlite ${STUDY_ARGS:-}
echo "study wall seconds: $(( $(date +%s) - start ))"
/tmp/hpo show fashion-cnn --db /tmp/gpu.sqlite | head -20
mkdir -p "${OUT:-/tmp/out}" && cp /tmp/gpu.sqlite "${OUT:-/tmp/out}/" 2>/dev/null || true
