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
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
    echo "device-check: no GPU here (nvidia-smi finds none); run it on a machine with one" >&2
    exit 1
fi
DIR=${1:-${SBDM_CUDA_DIR:-$HOME/.cache/sbdm-cuda}}
[ -x "$DIR/toolkit/bin/nvcc" ] || scripts/cuda-toolkit.sh "$DIR"
# shellcheck source=cuda-env.sh
source scripts/cuda-env.sh "$DIR"
if [ -z "${SBDM_BIN:-}" ]; then
    cargo build --release --features cuda --bin sbdm
    SBDM_BIN=${CARGO_TARGET_DIR:-target}/release/sbdm
fi
python3 scripts/nvrtc-check.py
"$SBDM_BIN" bench device --json "${SBDM_DEVICE_JSON:-device-check.json}"
