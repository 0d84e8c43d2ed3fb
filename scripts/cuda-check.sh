#!/usr/bin/env bash
# The `cuda` build's check on a machine without a GPU: compiles every generated kernel
# with NVRTC to PTX for sm_80 and sm_90 (scripts/nvrtc-check.py, seconds; CI runs it too),
# then type-checks the workspace, tests and examples included, with `--features cuda`
# (candle's own kernels are compiled by nvcc first: the long part). Assembles the toolkit
# first if DIR has none.
#
#   scripts/cuda-check.sh [DIR]        # default DIR: $HOME/.cache/sbdm-cuda
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-${SBDM_CUDA_DIR:-$HOME/.cache/sbdm-cuda}}
[ -x "$DIR/toolkit/bin/nvcc" ] || scripts/cuda-toolkit.sh "$DIR"
# shellcheck source=cuda-env.sh
source scripts/cuda-env.sh "$DIR"
python3 scripts/nvrtc-check.py
cargo check --workspace --all-targets --features cuda
