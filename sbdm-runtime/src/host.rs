//! A tensor's values read where they lie. A contiguous f32 or f64 tensor on the CPU is
//! borrowed, not copied: the oracle, the reports and the `.npy` writer go over a whole
//! batch, and a copy of it (or an f64 one, twice its size) would be the largest
//! allocation of a sampling run (docs/benchmarks.md, "Peak memory").

use candle_core::{CpuStorage, DType, Device, Storage, Tensor};

use crate::error::{invalid, Result};

/// A tensor's values as one contiguous slice, in row-major order.
#[derive(Clone, Copy, Debug)]
pub enum HostValues<'a> {
    /// f32 values.
    F32(&'a [f32]),
    /// f64 values.
    F64(&'a [f64]),
}

impl HostValues<'_> {
    /// The number of values.
    pub fn len(&self) -> usize {
        match self {
            HostValues::F32(v) => v.len(),
            HostValues::F64(v) => v.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Calls `f` with the values of `x` as one contiguous slice on the CPU. A contiguous f32
/// or f64 tensor on the CPU is borrowed; f32 and f64 on another device are brought to
/// the CPU in their own dtype, other dtypes converted to f64, a strided view made
/// contiguous (each of those is a copy).
pub fn with_host_values<R>(x: &Tensor, f: impl FnOnce(HostValues<'_>) -> Result<R>) -> Result<R> {
    let x = match x.dtype() {
        DType::F32 | DType::F64 => x.to_device(&Device::Cpu)?.contiguous()?,
        _ => x
            .to_device(&Device::Cpu)?
            .to_dtype(DType::F64)?
            .contiguous()?,
    };
    let (storage, layout) = x.storage_and_layout();
    let (start, end) = layout
        .contiguous_offsets()
        .ok_or_else(|| invalid!("expected a contiguous tensor"))?;
    match &*storage {
        Storage::Cpu(CpuStorage::F32(v)) => f(HostValues::F32(&v[start..end])),
        Storage::Cpu(CpuStorage::F64(v)) => f(HostValues::F64(&v[start..end])),
        _ => Err(invalid!("expected f32 or f64 values on the CPU")),
    }
}
