#!/usr/bin/env bash
# Assembles a CUDA 13 toolkit for `cargo build --features cuda` from PyPI wheels: no GPU,
# no system CUDA, nothing downloaded but the pinned wheels below (pip, from PyPI).
#
#   scripts/cuda-toolkit.sh [DIR]      # default DIR: $HOME/.cache/sbdm-cuda
#   source scripts/cuda-env.sh [DIR]   # then: cargo build --release --features cuda
#
# DIR/toolkit gets the layout build scripts expect of a CUDA_HOME: bin/ (nvcc, ptxas),
# include/, nvvm/ (cicc, libdevice), lib64/ (the runtime, NVRTC, cuBLAS, cuRAND, with the
# unversioned names `-l` needs) and lib64/stubs/libcuda.so, a link-only stand-in for the
# driver library, which no wheel ships: every `cu*` entry point of cuda.h returning
# CUDA_ERROR_STUB_LIBRARY. At run time the real driver (r580 or newer, for CUDA 13) must be
# found first; without one a `--device cuda` run stops with a one-line error.
# Idempotent: a second run reuses the downloaded wheels.
set -euo pipefail

DIR=${1:-${SBDM_CUDA_DIR:-$HOME/.cache/sbdm-cuda}}
mkdir -p "$DIR/wheels"
DIR=$(cd "$DIR" && pwd)

command -v python3 >/dev/null || { echo "cuda-toolkit: python3 is required" >&2; exit 1; }
command -v gcc >/dev/null || { echo "cuda-toolkit: gcc is required (nvcc's host compiler)" >&2; exit 1; }

# One version set, tested together (nvcc 13.5 with cudarc via CUDARC_CUDA_VERSION, see
# cuda-env.sh). nvvm: cicc; crt: headers cuda_runtime.h includes; cccl: <cuda/std/...>
# used by candle's kernels; cublas, curand: libraries cudarc links against.
WHEELS=(
    nvidia-cuda-nvcc==13.5.37
    nvidia-cuda-crt==13.5.37
    nvidia-nvvm==13.5.37
    nvidia-cuda-runtime==13.5.37
    nvidia-cuda-nvrtc==13.5.37
    nvidia-cuda-cccl==13.3.5.0.6
    nvidia-cublas==13.10.0.20
    nvidia-curand==10.4.5.25
)

[ -x "$DIR/venv/bin/pip" ] || python3 -m venv "$DIR/venv"
"$DIR/venv/bin/pip" download --quiet --no-deps --dest "$DIR/wheels" "${WHEELS[@]}"
"$DIR/venv/bin/pip" install --quiet --no-deps --no-index --find-links "$DIR/wheels" "${WHEELS[@]}"

CU13=$("$DIR/venv/bin/python" -c 'import nvidia, os; print(os.path.join(nvidia.__path__[0], "cu13"))')
TK="$DIR/toolkit"
rm -rf "$TK"
mkdir -p "$TK/lib64/stubs"
for part in bin include nvvm; do
    if [ -e "$CU13/$part" ]; then
        ln -s "$CU13/$part" "$TK/$part"
    fi
done
for lib in "$CU13"/lib/*; do
    ln -s "$lib" "$TK/lib64/"
done
(
    cd "$TK/lib64"
    for so in libcudart.so.13 libnvrtc.so.13 libcublas.so.13 libcublasLt.so.13 libcurand.so.10 libnvvm.so.4; do
        if [ -e "$so" ]; then
            ln -sf "$so" "${so%%.so*}.so"
        fi
    done
)

# The driver's link-only stand-in (SONAME libcuda.so.1, so the real driver is used at run
# time wherever one is installed).
STUB_SRC="$TK/lib64/stubs/libcuda.c"
grep -oE '\bcu[A-Z][A-Za-z0-9_]*\b' "$CU13/include/cuda.h" | sort -u \
    | awk '{ print "int " $1 "(void) { return 34; }" }' > "$STUB_SRC"
gcc -shared -fPIC -O0 -w -Wl,-soname,libcuda.so.1 -o "$TK/lib64/stubs/libcuda.so" "$STUB_SRC"
rm "$STUB_SRC"
# Under its SONAME too, for running on a machine with no driver (scripts/cuda-check.sh).
ln -sf libcuda.so "$TK/lib64/stubs/libcuda.so.1"

echo "CUDA toolkit in $TK"
"$TK/bin/nvcc" --version | tail -1
