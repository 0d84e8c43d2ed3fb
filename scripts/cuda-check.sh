#!/usr/bin/env bash
# The `cuda` build's check on a machine without a GPU: type-checks the workspace with the
# `cuda` feature, then builds and runs sbdm-runtime's tests/cuda_kernels.rs, which compiles
# every generated fused-step kernel with NVRTC to PTX for sm_80 and sm_90 and checks that
# `--device cuda` without a GPU is a one-line error. The stub driver stands in for
# libcuda.so.1 (no driver here). Assembles the toolkit first if DIR has none.
#
#   scripts/cuda-check.sh [DIR]        # default DIR: $HOME/.cache/sbdm-cuda
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-${SBDM_CUDA_DIR:-$HOME/.cache/sbdm-cuda}}
[ -x "$DIR/toolkit/bin/nvcc" ] || scripts/cuda-toolkit.sh "$DIR"
# shellcheck source=cuda-env.sh
source scripts/cuda-env.sh "$DIR"
cargo check --workspace --features cuda
LD_LIBRARY_PATH="$CUDA_HOME/lib64/stubs:$LD_LIBRARY_PATH" \
    cargo test -p sbdm-runtime --features cuda --test cuda_kernels
