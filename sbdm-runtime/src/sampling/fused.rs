//! Fused sampler steps: every step's tensor update `x ← c0·x + c1·y (+ c2·z)` is one
//! pass over memory, in place in `x`, as a candle in-place custom op. The pass also
//! checks that every value it writes is finite, so a sampler can stop at the first
//! NaN or infinity without another pass.
//!
//! ```
//! use candle_core::{Device, Tensor};
//! # fn main() -> sbdm_runtime::error::Result<()> {
//! let x = Tensor::new(&[1f32, 2.0, 3.0], &Device::Cpu)?;
//! let y = Tensor::new(&[1f32, 1.0, 1.0], &Device::Cpu)?;
//! let z = Tensor::new(&[0f32, 1.0, 0.0], &Device::Cpu)?;
//! sbdm_runtime::sampling::fused::axpbypcz(&x, 0.5, &y, 2.0, &z, -1.0)?;   // x = 0.5x + 2y - z, in place
//! assert_eq!(x.to_vec1::<f32>()?, [2.5, 2.0, 3.5]);
//! # Ok(()) }
//! ```

use candle_core::{CpuStorage, InplaceOp2, InplaceOp3, Layout, Tensor};

use crate::error::{invalid, Result};

/// The message a fused step fails with when it writes a non-finite value.
pub const NON_FINITE: &str = "fused step wrote a non-finite value";

/// `x ← c0·x + c1·y` with one source.
struct Axpby {
    c: [f64; 2],
}

/// `x ← c0·x + c1·y + c2·z` with two sources.
struct Axpbypcz {
    c: [f64; 3],
}

fn contiguous<'a, T>(data: &'a [T], l: &Layout, name: &str) -> candle_core::Result<&'a [T]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => candle_core::bail!("{name}: sources must be contiguous"),
    }
}

macro_rules! kernel {
    ($dst:expr, $dl:expr, $srcs:expr, $c:expr, $name:expr, $($variant:ident => $ty:ty),*) => {{
        let (da, db) = match $dl.contiguous_offsets() {
            Some(o) => o,
            None => candle_core::bail!("{}: x must be contiguous", $name),
        };
        match $dst {
            $(
                CpuStorage::$variant(d) => {
                    let d = &mut d[da..db];
                    let mut srcs: Vec<&[$ty]> = Vec::new();
                    for (s, l) in $srcs.iter() {
                        match s {
                            CpuStorage::$variant(v) => srcs.push(contiguous(v, l, $name)?),
                            _ => candle_core::bail!("{}: dtype mismatch", $name),
                        }
                    }
                    for s in &srcs {
                        if s.len() != d.len() {
                            candle_core::bail!("{}: {} elements vs {}", $name, s.len(), d.len());
                        }
                    }
                    let c: Vec<$ty> = $c.iter().map(|v| *v as $ty).collect();
                    let mut finite = true;
                    match srcs.as_slice() {
                        [y] => {
                            for (xi, yi) in d.iter_mut().zip(y.iter()) {
                                let v = c[0] * *xi + c[1] * *yi;
                                finite &= v.is_finite();
                                *xi = v;
                            }
                        }
                        [y, z] => {
                            for ((xi, yi), zi) in d.iter_mut().zip(y.iter()).zip(z.iter()) {
                                let v = c[0] * *xi + c[1] * *yi + c[2] * *zi;
                                finite &= v.is_finite();
                                *xi = v;
                            }
                        }
                        _ => candle_core::bail!("{}: unsupported arity", $name),
                    }
                    if !finite {
                        candle_core::bail!("{}", NON_FINITE);
                    }
                    Ok(())
                }
            )*
            _ => candle_core::bail!("{}: only f32 and f64 are supported", $name),
        }
    }};
}

impl InplaceOp2 for Axpby {
    fn name(&self) -> &'static str {
        "sbdm-axpby"
    }
    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dst_l: &Layout,
        y: &CpuStorage,
        yl: &Layout,
    ) -> candle_core::Result<()> {
        let srcs = [(y, yl)];
        kernel!(dst, dst_l, srcs, self.c, "sbdm-axpby", F32 => f32, F64 => f64)
    }
}

impl InplaceOp3 for Axpbypcz {
    fn name(&self) -> &'static str {
        "sbdm-axpbypcz"
    }
    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dst_l: &Layout,
        y: &CpuStorage,
        yl: &Layout,
        z: &CpuStorage,
        zl: &Layout,
    ) -> candle_core::Result<()> {
        let srcs = [(y, yl), (z, zl)];
        kernel!(dst, dst_l, srcs, self.c, "sbdm-axpbypcz", F32 => f32, F64 => f64)
    }
}

fn prepare(x: &Tensor, y: &Tensor) -> Result<Tensor> {
    if x.dims() != y.dims() {
        return Err(invalid!(
            "fused step: shapes {:?} and {:?} differ",
            x.dims(),
            y.dims()
        ));
    }
    if !x.is_contiguous() {
        return Err(invalid!("fused step: x must be contiguous"));
    }
    Ok(y.to_dtype(x.dtype())?.contiguous()?)
}

/// `x ← c0·x + c1·y`, in place, one pass. Fails on a non-finite result
/// (see [`is_non_finite`]).
pub fn axpby(x: &Tensor, c0: f64, y: &Tensor, c1: f64) -> Result<()> {
    let y = prepare(x, y)?;
    x.inplace_op2(&y, &Axpby { c: [c0, c1] })?;
    Ok(())
}

/// `x ← c0·x + c1·y + c2·z`, in place, one pass. Fails on a non-finite result.
pub fn axpbypcz(x: &Tensor, c0: f64, y: &Tensor, c1: f64, z: &Tensor, c2: f64) -> Result<()> {
    let y = prepare(x, y)?;
    let z = prepare(x, &z.clone())?;
    x.inplace_op3(&y, &z, &Axpbypcz { c: [c0, c1, c2] })?;
    Ok(())
}

/// The same update as [`axpbypcz`] written as a chain of candle ops (out of place):
/// the reference the fused op is tested and benchmarked against.
pub fn axpbypcz_unfused(
    x: &Tensor,
    c0: f64,
    y: &Tensor,
    c1: f64,
    z: &Tensor,
    c2: f64,
) -> Result<Tensor> {
    Ok(((x.affine(c0, 0.0)? + y.affine(c1, 0.0)?)? + z.affine(c2, 0.0)?)?)
}

/// Whether an error came from a fused step writing a non-finite value.
pub fn is_non_finite(e: &crate::error::Error) -> bool {
    e.to_string().contains(NON_FINITE)
}
