//! What the generated CUDA modules ([`super::fused_kernel`], [`super::philox_kernel`])
//! share in a `cuda` build: compiled with NVRTC once per process (the outcome, PTX or the
//! error, kept) and once per machine (the PTX kept on disk, [`super::kernel_cache`]), and
//! launched as a grid-stride loop of fixed-size blocks.

use std::sync::OnceLock;

use candle_core::cuda_backend::cudarc::driver::LaunchConfig;
use candle_core::cuda_backend::cudarc::nvrtc;

use super::kernel_cache;

/// A module's PTX, compiled from `source` at first use and kept in `cell`; `what` names
/// the kernels in the error.
pub(super) fn ptx(
    cell: &'static OnceLock<std::result::Result<String, String>>,
    source: impl FnOnce() -> String,
    what: &str,
) -> candle_core::Result<&'static str> {
    cell.get_or_init(|| compile_kept(kernel_cache::dir().as_deref(), &source()))
        .as_deref()
        .map_err(|e| {
            candle_core::Error::Cuda(format!("NVRTC could not compile {what}: {e}").into())
        })
}

/// The PTX of `source`: kept in `dir` from an earlier run, or compiled with NVRTC (and
/// kept there).
fn compile_kept(
    dir: Option<&std::path::Path>,
    source: &str,
) -> std::result::Result<String, String> {
    kernel_cache::compiled(dir, &nvrtc_name(), source, |s| {
        nvrtc::compile_ptx(s)
            .map(|p| p.to_src())
            .map_err(|e| e.to_string())
    })
}

/// NVRTC and its version ("nvrtc 13.5"): part of a kept module's name, so another NVRTC
/// compiles anew.
fn nvrtc_name() -> String {
    let (mut major, mut minor) = (0, 0);
    // SAFETY: nvrtcVersion writes two ints through the pointers, which point to locals.
    #[allow(unsafe_code, reason = "an FFI call")]
    let result = unsafe { nvrtc::sys::nvrtcVersion(&mut major, &mut minor) };
    match result {
        nvrtc::sys::nvrtcResult::NVRTC_SUCCESS => format!("nvrtc {major}.{minor}"),
        _ => "nvrtc".into(),
    }
}

/// Threads per block, and the most blocks launched (the kernels loop over the rest).
const BLOCK: u32 = 256;
const MAX_BLOCKS: u64 = 1 << 16;

/// The launch of a grid-stride kernel over `n` elements.
pub(super) fn grid_for(n: u64) -> LaunchConfig {
    let blocks = n.div_ceil(u64::from(BLOCK)).clamp(1, MAX_BLOCKS) as u32;
    LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (BLOCK, 1, 1),
        shared_mem_bytes: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Needs NVRTC (the toolkit's lib64 on `LD_LIBRARY_PATH`, scripts/cuda-env.sh), not a
    /// GPU: `cargo test -p sbdm-runtime --features cuda --lib cuda_module`.
    #[test]
    fn the_step_module_is_compiled_once_and_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let source = super::super::fused_kernel::module_source();
        let ptx = compile_kept(Some(tmp.path()), &source).unwrap();
        assert!(ptx.contains(".entry sbdm_combine_f32_x_2_noise("));
        let kept: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
        assert_eq!(kept.len(), 1);
        // The next run reads it (the same text), and says which NVRTC made it.
        assert_eq!(compile_kept(Some(tmp.path()), &source).unwrap(), ptx);
        assert!(nvrtc_name().starts_with("nvrtc 13."), "{}", nvrtc_name());
    }
}
