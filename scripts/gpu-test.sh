#!/usr/bin/env bash
# Builds and tests hpo's CUDA path on a machine with an NVIDIA GPU, Rust and a CUDA
# toolkit, in one command from the repository root:
#   scripts/gpu-test.sh
# 1. builds hpo with the `cuda` feature into target/cuda (the environment comes
#    from scripts/gpu-build-env.sh: set CUDA_HOME if the toolkit is not in
#    /usr/local/cuda);
# 2. runs the CUDA tests of hpo-kernels and hpo-train: each fused kernel against
#    candle's composite ops on the GPU and against its CPU form, AdamW and the image
#    moves against their CPU forms, every parameter of every model getting a
#    gradient on the GPU;
# 3. runs studies/quickstart.toml cut to 3 trials of 2 epochs on cuda:0 and checks
#    that every trial completed there.
# The other GPU scripts (gpu-bench.sh, gpu-workers.sh, ...) then use this build.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/gpu-build-env.sh
cargo build --release --features cuda
cargo test --release --features cuda -p hpo-kernels -p hpo-train -- --test-threads 1 cuda gpu
hpo=$CARGO_TARGET_DIR/release/hpo
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sed -e 's/^device = .*/device = "cuda:0"/' -e 's/^trials = .*/trials = 3/' \
  -e 's/^max_epochs = .*/max_epochs = 2/' studies/quickstart.toml > "$work/gpu.toml"
"$hpo" run "$work/gpu.toml" --db "$work/gpu.sqlite"
"$hpo" export quickstart --db "$work/gpu.sqlite" --format json | python3 -c '
import json, sys
trials = json.load(sys.stdin)["trials"]
wrong = [(t["number"], t["state"], t["system_attrs"].get("hpo:device")) for t in trials
         if t["state"] != "COMPLETE" or t["system_attrs"].get("hpo:device") != "cuda:0"]
assert len(trials) == 3 and not wrong, f"trials not completed on cuda:0: {wrong}"
print(f"{len(trials)} trials completed on cuda:0")'
echo "the CUDA build of hpo passed its tests: $hpo"
