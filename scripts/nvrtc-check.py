#!/usr/bin/env python3
"""Compiles every generated CUDA module of sbdm with NVRTC to PTX for sm_80 and sm_90.

The generated sources are the insta snapshots under sbdm-runtime/tests/snapshots/ that
hold a `__global__` function (the CPU test suite checks that each snapshot is exactly what
the code generates). NVRTC is a library: no GPU or driver is needed, only the toolkit's
libnvrtc (scripts/cuda-toolkit.sh; CUDA_HOME from scripts/cuda-env.sh). Exits 1 naming the
module, the architecture and NVRTC's log on any compile error, or when a kernel of the
source is missing from the PTX.

    source scripts/cuda-env.sh && python3 scripts/nvrtc-check.py
"""
import ctypes
import glob
import os
import re
import sys

ARCHS = ("compute_80", "compute_90")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SNAPSHOTS = os.path.join(ROOT, "sbdm-runtime", "tests", "snapshots", "*.snap")


def fail(message):
    print(f"nvrtc-check: {message}", file=sys.stderr)
    sys.exit(1)


def load_nvrtc():
    home = os.environ.get("CUDA_HOME")
    if not home:
        fail("CUDA_HOME is not set; source scripts/cuda-env.sh first")
    for name in ("libnvrtc.so.13", "libnvrtc.so"):
        path = os.path.join(home, "lib64", name)
        if os.path.exists(path):
            return ctypes.CDLL(path)
    fail(f"no libnvrtc in {home}/lib64; run scripts/cuda-toolkit.sh")


def generated_modules():
    """(name, source) of every snapshot holding CUDA kernels, the insta header removed."""
    modules = []
    for path in sorted(glob.glob(SNAPSHOTS)):
        text = open(path, encoding="utf-8").read()
        if "__global__" not in text:
            continue
        # An insta snapshot: a `---` header block, then the value.
        parts = text.split("---\n", 2)
        if len(parts) != 3:
            fail(f"{path}: not an insta snapshot")
        modules.append((os.path.basename(path), parts[2]))
    if not modules:
        fail(f"no generated CUDA source under {SNAPSHOTS}")
    return modules


def compile_ptx(nvrtc, name, source, arch):
    """The PTX of `source` for `arch`, or exit 1 with NVRTC's log."""
    def check(rc, what, log=""):
        if rc != 0:
            nvrtc.nvrtcGetErrorString.restype = ctypes.c_char_p
            why = nvrtc.nvrtcGetErrorString(rc).decode()
            fail(f"{name}, {arch}: {what}: {why}" + (f"\n{log}" if log else ""))

    program = ctypes.c_void_p()
    check(nvrtc.nvrtcCreateProgram(ctypes.byref(program), source.encode(), name.encode(),
                                   0, None, None), "nvrtcCreateProgram")
    options = [f"--gpu-architecture={arch}".encode()]
    rc = nvrtc.nvrtcCompileProgram(program, len(options),
                                   (ctypes.c_char_p * len(options))(*options))
    size = ctypes.c_size_t()
    nvrtc.nvrtcGetProgramLogSize(program, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    nvrtc.nvrtcGetProgramLog(program, log)
    check(rc, "compile error", log.value.decode(errors="replace").strip())
    check(nvrtc.nvrtcGetPTXSize(program, ctypes.byref(size)), "nvrtcGetPTXSize")
    ptx = ctypes.create_string_buffer(size.value)
    check(nvrtc.nvrtcGetPTX(program, ptx), "nvrtcGetPTX")
    nvrtc.nvrtcDestroyProgram(ctypes.byref(program))
    return ptx.value.decode()


def main():
    nvrtc = load_nvrtc()
    major, minor = ctypes.c_int(), ctypes.c_int()
    nvrtc.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor))
    print(f"NVRTC {major.value}.{minor.value}")
    for name, source in generated_modules():
        kernels = re.findall(r'extern "C" __global__ void (\w+)\(', source)
        for arch in ARCHS:
            ptx = compile_ptx(nvrtc, name, source, arch)
            missing = [k for k in kernels if f".entry {k}(" not in ptx]
            if missing:
                fail(f"{name}, {arch}: no PTX entry for {', '.join(missing)}")
            print(f"{name:<56} {arch:<11} {len(kernels):>3} kernels, {len(ptx):>7} bytes of PTX")


if __name__ == "__main__":
    main()
