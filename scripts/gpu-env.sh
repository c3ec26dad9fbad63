# Sourced by the GPU scripts on the GPU machine. Puts the CUDA build of hpo at
# /tmp/hpo: $HPO when set, else the one scripts/gpu-prepare.sh left in
# target/gpu-carry (built on another machine), else target/cuda/release/hpo (built
# here by scripts/gpu-test.sh). Points the loader at the CUDA libraries (the
# toolkit's, and those of PyTorch's wheels when installed), and HPO_DATA_DIR at the
# carried datasets when there are any. Prints the cards, and sets results (the
# folder the scripts write to: $RESULTS_DIR, default results/), n_gpus and devices
# ("cuda:0", ... for a study file).
carry=target/gpu-carry
if [ -n "${HPO:-}" ]; then
  cp "$HPO" /tmp/hpo
elif [ -e "$carry/hpo.xz" ]; then
  python3 -c "import lzma,shutil;shutil.copyfileobj(lzma.open('$carry/hpo.xz'),open('/tmp/hpo','wb'))"
elif [ -x target/cuda/release/hpo ]; then
  cp target/cuda/release/hpo /tmp/hpo
else
  echo "no CUDA build of hpo: run scripts/gpu-test.sh on this machine, or scripts/gpu-prepare.sh on a build machine" >&2
  exit 2
fi
chmod +x /tmp/hpo
NV=$(python3 -c 'import nvidia,os;print(os.path.join(list(nvidia.__path__)[0],"cu13","lib"))' 2>/dev/null || true)
export LD_LIBRARY_PATH="$NV:${CUDA_HOME:-/usr/local/cuda}/lib64:/usr/local/nvidia/lib64:${LD_LIBRARY_PATH:-}"
[ -d "$carry/data" ] && export HPO_DATA_DIR=$PWD/$carry/data
results=${RESULTS_DIR:-results}
mkdir -p "$results"
nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader
n_gpus=$(nvidia-smi --query-gpu=index --format=csv,noheader | wc -l)
devices=$(python3 -c "print(', '.join(f'\"cuda:{i}\"' for i in range($n_gpus)))")
