#!/usr/bin/env bash
# Builds hpo for a GPU machine elsewhere: on a build machine with Rust and a CUDA
# toolkit but no GPU, builds the CUDA binary and the CUDA test binaries of
# hpo-kernels and hpo-train, and gathers them with the datasets the GPU scripts use
# into target/gpu-carry (ignored by git). Copy the repository with that folder to
# the GPU machine (which needs the NVIDIA driver and the CUDA runtime libraries,
# but no Rust) and run the GPU scripts there; scripts/gpu-env.sh unpacks the binary.
# The environment is scripts/gpu-build-env.sh's; without a GPU here set
# CUDA_COMPUTE_CAP to the GPU machine's (default 90: H100/H200). Linking needs a
# libcuda.so, the driver's or a stub; the binary then needs the real libcuda.so.1
# to start, even on the CPU, so use the plain build for CPU work.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/gpu-build-env.sh
cargo build --release --features cuda
tests=$(cargo test --release --features cuda -p hpo-kernels -p hpo-train --no-run --message-format=json |
  python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["lib"]:
        print(m["target"]["name"], m["executable"])')
carry=target/gpu-carry
rm -rf "$carry" && mkdir -p "$carry/data/fashion-mnist" "$carry/data/jargon-file"
strip -o "$carry/hpo" target/cuda/release/hpo && xz -T2 -6 "$carry/hpo"
while read -r name executable; do
  strip -o "$carry/${name//_/-}-tests" "$executable" && xz -T2 -6 "$carry/${name//_/-}-tests"
done <<< "$tests"
find_data() { for d in "${HPO_DATA_DIR:-/nonexistent}/$1" "$2"; do [ -e "$d/$3" ] && { echo "$d/$3"; return; }; done; echo "missing $3" >&2; exit 1; }
for f in train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz; do
  cp "$(find_data fashion-mnist /usr/share/datasets/fashion-mnist $f)" "$carry/data/fashion-mnist/"
done
cp "$(find_data jargon-file /usr/share/doc/jargon-text jargon.txt.gz)" "$carry/data/jargon-file/"
du -sh "$carry"
