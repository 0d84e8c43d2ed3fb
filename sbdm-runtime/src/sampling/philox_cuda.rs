//! [`PhiloxFill`] on CUDA storage (the `cuda` feature): the kernel of
//! [`super::philox_kernel`], compiled with NVRTC once per process and loaded once per
//! device, launched on the tensor's own stream. The noise is computed on the device: no
//! host draw, no copy.

use std::sync::OnceLock;

use candle_core::cuda_backend::cudarc::driver::PushKernelArg;
use candle_core::cuda_backend::{CudaStorageSlice, WrapErr};
use candle_core::{CudaStorage, Layout};

use super::cuda_module;
use super::philox::PhiloxFill;
use super::philox_kernel::{items, module_source, KERNEL, MODULE};

/// The module's PTX, or why NVRTC could not compile it.
static PTX: OnceLock<std::result::Result<String, String>> = OnceLock::new();

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
    let ptx = cuda_module::ptx(&PTX, module_source, "the noise kernel")?;
    let func = dev.get_or_load_custom_func(KERNEL, MODULE, ptx)?;
    let CudaStorageSlice::F32(out) = &mut storage.slice else {
        candle_core::bail!("sbdm philox: the output must be f32");
    };
    let mut out = out.slice_mut(a..b);
    let rows = n / per;
    let cfg = cuda_module::grid_for(items(rows, per));
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
