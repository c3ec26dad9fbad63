//! Compiles `cuda/fused.cu` to PTX with nvcc when the `cuda` feature is on (the
//! fused ops' CUDA forms load it at run time). nvcc comes from `$NVCC`, else
//! `$CUDA_HOME/bin/nvcc`, else the PATH; the target is compute capability
//! `$CUDA_COMPUTE_CAP` (default 90: H100/H200), as for candle's own kernels.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo::rerun-if-changed=cuda/fused.cu");
    for var in ["NVCC", "CUDA_HOME", "CUDA_COMPUTE_CAP"] {
        println!("cargo::rerun-if-env-changed={var}");
    }
    if env::var_os("CARGO_FEATURE_CUDA").is_none() {
        return;
    }
    let nvcc = env::var_os("NVCC").map(PathBuf::from).unwrap_or_else(|| {
        env::var_os("CUDA_HOME")
            .map(|home| PathBuf::from(home).join("bin/nvcc"))
            .unwrap_or_else(|| PathBuf::from("nvcc"))
    });
    let cap = env::var("CUDA_COMPUTE_CAP").unwrap_or_else(|_| "90".into());
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("fused.ptx");
    let status = Command::new(&nvcc)
        .args(["--ptx", "-O3", &format!("-arch=sm_{cap}"), "-o"])
        .arg(&out)
        .arg("cuda/fused.cu")
        .status()
        .unwrap_or_else(|err| {
            panic!(
                "the cuda feature needs nvcc to compile cuda/fused.cu, but running {} failed: {err}. \
                 Install a CUDA toolkit and set NVCC or CUDA_HOME (see scripts/gpu-build-env.sh).",
                nvcc.display()
            )
        });
    assert!(status.success(), "nvcc failed to compile cuda/fused.cu ({status})");
}
