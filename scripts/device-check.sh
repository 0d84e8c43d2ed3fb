#!/usr/bin/env bash
# Issue 14's device check, on a machine with a GPU and its driver (r580+): builds the
# `cuda` binary (or takes a prepared one), compiles the generated kernels with NVRTC, then
# runs `sbdm bench device`: every deterministic sampler on the GPU against the CPU from
# the same x_T (the stochastic ones under Philox noise generated in the step kernels), the
# fused step's bandwidth against a device-to-device copy at 2^26 f32, the stochastic step
# with its noise generated in the pass against drawing it first, and a U-Net DSM training
# step on each. Figures on stdout and in device-check.json.
#
#   scripts/device-check.sh [DIR]          # DIR: the toolkit, default $HOME/.cache/sbdm-cuda
#   SBDM_BIN=path/to/sbdm scripts/device-check.sh   # a binary built with --features cuda
#
# A prepared binary needs no toolkit and no network, only CUDA's run-time libraries
# (cuBLAS, cuRAND, the runtime, NVRTC) beside the driver: from DIR's toolkit when there is
# one, else from the nvidia wheels of a Python environment (PyTorch's: SBDM_PYTHON,
# default python3). SBDM_DEVICE_JSON names the JSON file; SBDM_DEVICE=cpu runs the same
# check CPU against CPU (no GPU needed: how the script itself is tested).
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICE=${SBDM_DEVICE:-cuda}
if [ "$DEVICE" != cpu ] && ! { command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; }; then
    echo "device-check: no GPU here (nvidia-smi finds none); run it on a machine with one" >&2
    exit 1
fi
DIR=${1:-${SBDM_CUDA_DIR:-$HOME/.cache/sbdm-cuda}}

# The lib folders of a Python environment's nvidia wheels (nvidia/cu13/lib, ...).
python_cuda_libs() {
    "${SBDM_PYTHON:-python3}" - <<'PY' 2>/dev/null || true
import glob, os, site
roots = site.getsitepackages() + [site.getusersitepackages()]
dirs = [d for r in roots for d in sorted(glob.glob(os.path.join(r, "nvidia", "*", "lib")))]
print(":".join(d for d in dirs if glob.glob(os.path.join(d, "lib*.so*"))))
PY
}

if [ -z "${SBDM_BIN:-}" ]; then
    [ -x "$DIR/toolkit/bin/nvcc" ] || scripts/cuda-toolkit.sh "$DIR"
    # shellcheck source=cuda-env.sh
    source scripts/cuda-env.sh "$DIR"
    cargo build --release --features cuda --bin sbdm
    SBDM_BIN=${CARGO_TARGET_DIR:-target}/release/sbdm
elif [ -d "$DIR/toolkit/lib64" ]; then
    # shellcheck source=cuda-env.sh
    source scripts/cuda-env.sh "$DIR"
else
    libs=$(python_cuda_libs)
    if [ -n "$libs" ]; then
        export LD_LIBRARY_PATH="$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
        echo "device-check: CUDA libraries from $libs"
    fi
fi
if [ -n "${CUDA_HOME:-}" ]; then
    python3 scripts/nvrtc-check.py
else
    echo "device-check: no toolkit here; the binary compiles its kernels with NVRTC itself"
fi
"$SBDM_BIN" bench device --device "$DEVICE" --json "${SBDM_DEVICE_JSON:-device-check.json}" \
    ${SBDM_DEVICE_ARGS:-}
