//! With the `cuda` feature: the fused step kernels compile with NVRTC to PTX for sm_80 and
//! sm_90 (no GPU needed: NVRTC is a library), and without a usable GPU `--device cuda` is
//! a one-line error. Run in a `cuda` build: `cargo test -p sbdm-runtime --features cuda
//! --test cuda_kernels` (without a GPU, with the toolkit's stub driver on
//! `LD_LIBRARY_PATH`). CI compiles the same kernels through `scripts/nvrtc-check.py`.
#![cfg(feature = "cuda")]

use candle_core::cuda_backend::cudarc::nvrtc::{compile_ptx_with_opts, CompileOptions};
use sbdm_runtime::sampling::fused_kernel::{kernel_name, module_source, Form};

#[test]
fn the_fused_kernels_compile_for_sm_80_and_sm_90() {
    for arch in ["compute_80", "compute_90"] {
        let opts = CompileOptions {
            arch: Some(arch),
            ..Default::default()
        };
        let ptx = compile_ptx_with_opts(module_source(), opts)
            .unwrap_or_else(|e| panic!("{arch}: {e}"))
            .to_src();
        for form in Form::all() {
            let name = kernel_name(form);
            assert!(
                ptx.contains(&format!(".entry {name}(")),
                "{arch}: no {name}"
            );
        }
    }
}

#[test]
fn no_gpu_is_a_one_line_error() {
    // On a build machine (stub driver, no GPU) opening a device fails cleanly.
    if let Err(e) = sbdm_runtime::device::by_name("cuda") {
        let e = e.to_string();
        assert!(e.contains("no usable CUDA device"), "{e}");
        assert_eq!(e.lines().count(), 1, "{e}");
    }
}
