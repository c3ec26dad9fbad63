#!/usr/bin/env bash
# Builds the CUDA binary and the CUDA test binary of hpo-train, and gathers what
# the GPU scripts need into target/gpu-carry (ignored by git). Needs a CUDA 13.0
# toolkit in $CUDA_HOME (default ~/.local/cuda13): nvcc 13.0.x (PTX from a newer
# nvcc may not load on a 13.0 driver), cudart, cublas, curand and nvrtc, and a
# libcuda.so to link against (the driver's, or a stub on a machine without a GPU;
# the binary then needs the real libcuda.so.1 at run time, even on CPU, so ship the
# plain build for CPU use). Targets compute capability 9.0 (H100/H200).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${CUDA_HOME:=$HOME/.local/cuda13}"
export CUDA_HOME PATH=$CUDA_HOME/bin:$PATH NVCC=$CUDA_HOME/bin/nvcc CUDA_COMPUTE_CAP=90 CUDARC_CUDA_VERSION=13000
export CARGO_TARGET_DIR=target/cuda
cargo build --release --features cuda
tests=$(cargo test --release --features cuda -p hpo-train --no-run --message-format=json |
  python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["lib"]:
        print(m["executable"])')
carry=target/gpu-carry
rm -rf "$carry" && mkdir -p "$carry/data/fashion-mnist" "$carry/data/jargon-file"
strip -o "$carry/hpo" target/cuda/release/hpo && xz -T2 -6 "$carry/hpo"
strip -o "$carry/hpo-train-tests" "$tests" && xz -T2 -6 "$carry/hpo-train-tests"
find_data() { for d in "${HPO_DATA_DIR:-/nonexistent}/$1" "$2"; do [ -e "$d/$3" ] && { echo "$d/$3"; return; }; done; echo "missing $3" >&2; exit 1; }
for f in train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz; do
  cp "$(find_data fashion-mnist /usr/share/datasets/fashion-mnist $f)" "$carry/data/fashion-mnist/"
done
cp "$(find_data jargon-file /usr/share/doc/jargon-text jargon.txt.gz)" "$carry/data/jargon-file/"
du -sh "$carry"
