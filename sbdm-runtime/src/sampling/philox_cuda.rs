//! [`PhiloxFill`] on CUDA storage (the `cuda` feature): the kernel of
//! [`super::philox_kernel`], compiled with NVRTC once per process and loaded once per
//! device, launched on the tensor's own stream. The noise is computed on the device: no
//! host draw, no copy.

use std::sync::OnceLock;

use candle_core::cuda_backend::cudarc::driver::{LaunchConfig, PushKernelArg};
use candle_core::cuda_backend::cudarc::nvrtc;
use candle_core::cuda_backend::{CudaStorageSlice, WrapErr};
use candle_core::{CudaStorage, Layout};

use super::philox::PhiloxFill;
use super::philox_kernel::{module_source, KERNEL, MODULE};

/// The module's PTX, or why NVRTC could not compile it.
static PTX: OnceLock<std::result::Result<String, String>> = OnceLock::new();

fn ptx() -> candle_core::Result<&'static str> {
    PTX.get_or_init(|| {
        nvrtc::compile_ptx(module_source())
            .map(|p| p.to_src())
            .map_err(|e| e.to_string())
    })
    .as_deref()
    .map_err(|e| {
        candle_core::Error::Cuda(format!("NVRTC could not compile the noise kernel: {e}").into())
    })
}

/// Threads per block, and the most blocks launched (the kernel loops over the rest).
const BLOCK: u32 = 256;
const MAX_BLOCKS: u64 = 1 << 16;

/// Fills `storage` (f32, contiguous, whole rows of `fill.per`) on its device.
pub(super) fn fill(
    fill: &PhiloxFill,
    storage: &mut CudaStorage,
    layout: &Layout,
) -> candle_core::Result<()> {
    let Some((a, b)) = layout.contiguous_offsets() else {
        candle_core::bail!("sbdm philox: the output must be contiguous");
    };
    let per = fill.per.max(1) as u64;
    let n = (b - a) as u64;
    let dev = storage.device.clone();
    let func = dev.get_or_load_custom_func(KERNEL, MODULE, ptx()?)?;
    let CudaStorageSlice::F32(out) = &mut storage.slice else {
        candle_core::bail!("sbdm philox: the output must be f32");
    };
    let mut out = out.slice_mut(a..b);
    let rows = n / per;
    let blocks = n.div_ceil(u64::from(BLOCK)).clamp(1, MAX_BLOCKS) as u32;
    let cfg = LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (BLOCK, 1, 1),
        shared_mem_bytes: 0,
    };
    let mut builder = func.builder();
    builder.arg(&mut out);
    builder.arg(&rows);
    builder.arg(&per);
    builder.arg(&fill.seed);
    builder.arg(&fill.first_stream);
    builder.arg(&fill.draw);
    // SAFETY: the arguments match the kernel's signature (philox_kernel.rs): the output
    // slice of rows·per f32 values, rows, per, seed, first stream, draw.
    #[allow(unsafe_code, reason = "a kernel launch is an FFI call")]
    unsafe { builder.launch(cfg) }.w()?;
    Ok(())
}
