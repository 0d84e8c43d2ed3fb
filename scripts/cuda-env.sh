# Source this (after scripts/cuda-toolkit.sh) before building with `--features cuda`:
#   source scripts/cuda-env.sh [DIR]
_sbdm_dir=${1:-${SBDM_CUDA_DIR:-$HOME/.cache/sbdm-cuda}}
export CUDA_HOME="$_sbdm_dir/toolkit" CUDA_PATH="$_sbdm_dir/toolkit" CUDA_ROOT="$_sbdm_dir/toolkit"
export PATH="$CUDA_HOME/bin:$PATH"
# Link-time search path (the stub driver last: a real one wins at run time).
export LIBRARY_PATH="$CUDA_HOME/lib64:$CUDA_HOME/lib64/stubs${LIBRARY_PATH:+:$LIBRARY_PATH}"
# Run-time search path for the toolkit's libraries (cuBLAS, cuRAND, NVRTC, the runtime).
export LD_LIBRARY_PATH="$CUDA_HOME/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# No nvidia-smi on a build machine: the compute capability candle's kernels target
# (90: H100/H200; set 80 for A100).
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
# cudarc's build script knows CUDA up to 13.4 and refuses 13.5's version string.
export CUDARC_CUDA_VERSION=13040
export CUDAFORGE_THREADS=${CUDAFORGE_THREADS:-2}
unset _sbdm_dir
