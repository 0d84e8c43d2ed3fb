//! What the generated CUDA modules ([`super::fused_kernel`], [`super::philox_kernel`])
//! share in a `cuda` build: compiled with NVRTC once per process (the outcome, PTX or the
//! error, kept), and launched as a grid-stride loop of fixed-size blocks.

use std::sync::OnceLock;

use candle_core::cuda_backend::cudarc::driver::LaunchConfig;
use candle_core::cuda_backend::cudarc::nvrtc;

/// A module's PTX, compiled from `source` at first use and kept in `cell`; `what` names
/// the kernels in the error.
pub(super) fn ptx(
    cell: &'static OnceLock<std::result::Result<String, String>>,
    source: impl FnOnce() -> String,
    what: &str,
) -> candle_core::Result<&'static str> {
    cell.get_or_init(|| {
        nvrtc::compile_ptx(source())
            .map(|p| p.to_src())
            .map_err(|e| e.to_string())
    })
    .as_deref()
    .map_err(|e| candle_core::Error::Cuda(format!("NVRTC could not compile {what}: {e}").into()))
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
