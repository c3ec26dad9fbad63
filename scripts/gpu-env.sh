# Sourced by the GPU scripts on the GPU machine: unpacks the CUDA build of hpo that
# scripts/gpu-prepare.sh put in target/gpu-carry to /tmp/hpo, points the loader at
# the CUDA 13 libraries PyTorch's wheels bring, and HPO_DATA_DIR at the datasets;
# prints the cards, and sets results (the folder the scripts write their results
# to: $RESULTS_DIR, default results/), n_gpus and devices ("cuda:0", ... for a
# study file).
carry=target/gpu-carry
python3 -c "import lzma,shutil;shutil.copyfileobj(lzma.open('$carry/hpo.xz'),open('/tmp/hpo','wb'))"
chmod +x /tmp/hpo
NV=$(python3 -c 'import nvidia,os;print(os.path.join(list(nvidia.__path__)[0],"cu13","lib"))' 2>/dev/null || true)
export LD_LIBRARY_PATH="$NV:/usr/local/cuda/lib64:/usr/local/nvidia/lib64:${LD_LIBRARY_PATH:-}"
export HPO_DATA_DIR=$PWD/$carry/data
results=${RESULTS_DIR:-results}
mkdir -p "$results"
nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader
n_gpus=$(nvidia-smi --query-gpu=index --format=csv,noheader | wc -l)
devices=$(python3 -c "print(', '.join(f'\"cuda:{i}\"' for i in range($n_gpus)))")
