# Sourced by scripts/gpu-test.sh and scripts/gpu-prepare.sh: the environment a CUDA
# build of hpo needs. CUDA_HOME is the CUDA toolkit (default /usr/local/cuda, else
# $HOME/.local/cuda13 when that exists); nvcc compiles candle's kernels and hpo's
# own (crates/kernels/cuda/fused.cu). CUDA_COMPUTE_CAP is the GPU's compute
# capability without the dot (default: the first visible GPU's, else 90 for
# H100/H200). CUDARC_CUDA_VERSION follows nvcc's release (13.0 -> 13000).
# Builds go to target/cuda, apart from the plain CPU build in target/.
if [ -z "${CUDA_HOME:-}" ]; then
  if [ -x /usr/local/cuda/bin/nvcc ]; then CUDA_HOME=/usr/local/cuda; else CUDA_HOME=$HOME/.local/cuda13; fi
fi
if [ ! -x "$CUDA_HOME/bin/nvcc" ]; then
  echo "no nvcc at $CUDA_HOME/bin/nvcc: install a CUDA toolkit and set CUDA_HOME to it" >&2
  exit 2
fi
if [ -z "${CUDA_COMPUTE_CAP:-}" ]; then
  CUDA_COMPUTE_CAP=$( (nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null || true) | head -1 | tr -d '. ')
  : "${CUDA_COMPUTE_CAP:=90}"
fi
if [ -z "${CUDARC_CUDA_VERSION:-}" ]; then
  release=$("$CUDA_HOME/bin/nvcc" --version | sed -n 's/.*release \([0-9]*\)\.\([0-9]*\).*/\1 \2/p')
  CUDARC_CUDA_VERSION=$(printf '%d%03d' $release)
fi
export CUDA_HOME CUDA_COMPUTE_CAP CUDARC_CUDA_VERSION PATH=$CUDA_HOME/bin:$PATH NVCC=$CUDA_HOME/bin/nvcc
export CARGO_TARGET_DIR=target/cuda
echo "CUDA build: $CUDA_HOME (CUDA $CUDARC_CUDA_VERSION), compute capability $CUDA_COMPUTE_CAP, into $CARGO_TARGET_DIR"
