//! Fused sampler passes: `x ← [c0·x +] c1·y [+ c2·z] [+ cn·ξ]` in one pass over memory, in
//! place in `x`, as candle in-place custom ops. `ξ` is Philox noise ([`super::philox`])
//! computed inside the pass ([`combine_noisy`]), so a stochastic step neither stores nor
//! reads a noise tensor. The pass also checks that every value it writes is finite, so a
//! sampler can stop at the first NaN or infinity without another pass.
//!
//! On CUDA tensors (the `cuda` feature) the same passes run as the generated kernels of
//! [`super::fused_kernel`].
//!
//! [`combine`] is the primitive the step algebra ([`super::step`]) builds every sampler
//! step from; [`axpby`] and [`axpbypcz`] are its read-modify-write forms.
//!
//! ```
//! use candle_core::{Device, Tensor};
//! # fn main() -> sbdm_runtime::error::Result<()> {
//! let x = Tensor::new(&[1f32, 2.0, 3.0], &Device::Cpu)?;
//! let y = Tensor::new(&[1f32, 1.0, 1.0], &Device::Cpu)?;
//! let z = Tensor::new(&[0f32, 1.0, 0.0], &Device::Cpu)?;
//! sbdm_runtime::sampling::fused::axpbypcz(&x, 0.5, &y, 2.0, &z, -1.0)?;   // x = 0.5x + 2y - z
//! assert_eq!(x.to_vec1::<f32>()?, [2.5, 2.0, 3.5]);
//! sbdm_runtime::sampling::fused::combine(&x, None, &[(3.0, &y)])?;        // x = 3y
//! assert_eq!(x.to_vec1::<f32>()?, [3.0, 3.0, 3.0]);
//! # Ok(()) }
//! ```

use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::{CpuStorage, InplaceOp1, InplaceOp2, InplaceOp3, Layout, Tensor};

use super::philox::{self, PhiloxFill};
use crate::error::{invalid, Result};
use crate::parallel;

/// The message a fused pass fails with when it writes a non-finite value.
pub const NON_FINITE: &str = "fused step wrote a non-finite value";

/// The most sources one pass reads besides `x` (candle's in-place ops take three tensors).
pub const MAX_SOURCES: usize = 2;

/// One pass `x ← [c_x·x +] Σ c_i·src_i [+ c_n·ξ]`: `c_x` is `None` when `x`'s old value is
/// not read; `noise` is `(c_n, ξ's draw)` when Philox noise is added.
#[derive(Clone, Copy, Debug)]
pub(super) struct Pass {
    pub(super) c_x: Option<f64>,
    pub(super) c: [f64; MAX_SOURCES],
    pub(super) noise: Option<(f64, PhiloxFill)>,
}

/// The element loop, generic over the float type; one specialised loop per form so each
/// vectorises. Returns whether every written value is finite.
trait Element:
    Copy + Send + Sync + std::ops::Mul<Output = Self> + std::ops::Add<Output = Self>
{
    fn from_f64(v: f64) -> Self;
    fn from_f32(v: f32) -> Self;
    fn zero() -> Self;
    fn finite(self) -> bool;
}

impl Element for f32 {
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    fn from_f32(v: f32) -> Self {
        v
    }
    fn zero() -> Self {
        0.0
    }
    fn finite(self) -> bool {
        self.is_finite()
    }
}

impl Element for f64 {
    fn from_f64(v: f64) -> Self {
        v
    }
    fn from_f32(v: f32) -> Self {
        f64::from(v)
    }
    fn zero() -> Self {
        0.0
    }
    fn finite(self) -> bool {
        self.is_finite()
    }
}

fn run_pass<T: Element>(d: &mut [T], pass: Pass, srcs: &[&[T]]) -> bool {
    let [c1, c2] = pass.c.map(T::from_f64);
    run_form(d, pass.c_x.map(T::from_f64), [c1, c2, T::zero()], srcs)
}

/// `x ← [c0·x +] Σ c_i·src_i` over up to three sources (the third a noise row), one
/// specialised loop per form.
fn run_form<T: Element>(
    d: &mut [T],
    c0: Option<T>,
    [c1, c2, c3]: [T; MAX_SOURCES + 1],
    srcs: &[&[T]],
) -> bool {
    let mut finite = true;
    let mut put = |xi: &mut T, v: T| {
        finite &= v.finite();
        *xi = v;
    };
    match (c0, srcs) {
        (Some(c0), []) => d.iter_mut().for_each(|xi| put(xi, c0 * *xi)),
        (None, []) => d.iter_mut().for_each(|xi| put(xi, T::zero())),
        (Some(c0), [y]) => d
            .iter_mut()
            .zip(y.iter())
            .for_each(|(xi, yi)| put(xi, c0 * *xi + c1 * *yi)),
        (None, [y]) => d
            .iter_mut()
            .zip(y.iter())
            .for_each(|(xi, yi)| put(xi, c1 * *yi)),
        (Some(c0), [y, z]) => d
            .iter_mut()
            .zip(y.iter())
            .zip(z.iter())
            .for_each(|((xi, yi), zi)| put(xi, c0 * *xi + c1 * *yi + c2 * *zi)),
        (None, [y, z]) => d
            .iter_mut()
            .zip(y.iter())
            .zip(z.iter())
            .for_each(|((xi, yi), zi)| put(xi, c1 * *yi + c2 * *zi)),
        (Some(c0), [y, z, w]) => d
            .iter_mut()
            .zip(y.iter())
            .zip(z.iter())
            .zip(w.iter())
            .for_each(|(((xi, yi), zi), wi)| put(xi, c0 * *xi + c1 * *yi + c2 * *zi + c3 * *wi)),
        (None, [y, z, w]) => d
            .iter_mut()
            .zip(y.iter())
            .zip(z.iter())
            .zip(w.iter())
            .for_each(|(((xi, yi), zi), wi)| put(xi, c1 * *yi + c2 * *zi + c3 * *wi)),
        _ => unreachable!("at most {} sources per form", MAX_SOURCES + 1),
    }
    finite
}

/// The pass with noise: `x_i ← [c0·x_i + c1·y_i + c2·z_i] + c_n·ξ_i`, the bracket the
/// noiseless pass's expression in the same order, `ξ_i` value `i mod per` of stream
/// `first_stream + i / per` ([`PhiloxFill::fill_row`], one Philox block for four values), widened
/// to `T`. Row by row: the row's `c_n·ξ` into a scratch row, then the noiseless form with
/// the scratch as one more source of coefficient 1 (so the same sum, rounded alike).
/// Rows are split over the kept pool of threads as a noise fill splits them. Returns
/// whether every written value is finite.
fn run_noisy_pass<T: Element>(
    d: &mut [T],
    pass: Pass,
    srcs: &[&[T]],
    c_n: f64,
    fill: &PhiloxFill,
) -> Result<bool> {
    let c0 = pass.c_x.map(T::from_f64);
    let mut c = [T::zero(); MAX_SOURCES + 1];
    for (ck, pk) in c.iter_mut().zip(&pass.c[..srcs.len()]) {
        *ck = T::from_f64(*pk);
    }
    c[srcs.len()] = T::from_f64(1.0);
    let c_n = T::from_f64(c_n);
    let per = fill.per.max(1);
    let finite = AtomicBool::new(true);
    let parts = philox::parts_for(d.len() / per, per);
    parallel::fill_rows(d, per, parts, "fused step", |first, rows| {
        let mut ok = true;
        let mut noise = vec![T::zero(); per];
        for (r, row) in rows.chunks_exact_mut(per).enumerate() {
            fill.fill_row(first + r, &mut noise, |v| c_n * T::from_f32(v));
            let at = (first + r) * per;
            let mut row_srcs: [&[T]; MAX_SOURCES + 1] = [&[]; MAX_SOURCES + 1];
            for (rs, s) in row_srcs.iter_mut().zip(srcs) {
                *rs = &s[at..at + per];
            }
            row_srcs[srcs.len()] = &noise;
            ok &= run_form(row, c0, c, &row_srcs[..=srcs.len()]);
        }
        if !ok {
            finite.store(false, Ordering::Relaxed);
        }
    })?;
    Ok(finite.into_inner())
}

fn contiguous<'a, T>(data: &'a [T], l: &Layout) -> candle_core::Result<&'a [T]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => candle_core::bail!("sbdm fused pass: sources must be contiguous"),
    }
}

impl Pass {
    /// Runs the pass on CPU storage: `dst` and the sources, each with its layout.
    fn cpu(
        &self,
        dst: &mut CpuStorage,
        dst_l: &Layout,
        srcs: &[(&CpuStorage, &Layout)],
    ) -> candle_core::Result<()> {
        let Some((da, db)) = dst_l.contiguous_offsets() else {
            candle_core::bail!("sbdm fused pass: x must be contiguous");
        };
        macro_rules! typed {
            ($variant:ident, $d:expr) => {{
                let d = &mut $d[da..db];
                let mut views = Vec::with_capacity(srcs.len());
                for (s, l) in srcs {
                    let CpuStorage::$variant(v) = s else {
                        candle_core::bail!("sbdm fused pass: dtype mismatch");
                    };
                    let v = contiguous(v, l)?;
                    if v.len() != d.len() {
                        candle_core::bail!("sbdm fused pass: {} elements vs {}", v.len(), d.len());
                    }
                    views.push(v);
                }
                // `apply` has checked that x is whole rows of the noise's width.
                match &self.noise {
                    None => run_pass(d, *self, &views),
                    Some((c_n, fill)) => run_noisy_pass(d, *self, &views, *c_n, fill)
                        .map_err(|e| candle_core::Error::Msg(e.to_string()))?,
                }
            }};
        }
        let finite = match dst {
            CpuStorage::F32(d) => typed!(F32, d),
            CpuStorage::F64(d) => typed!(F64, d),
            _ => candle_core::bail!("sbdm fused pass: only f32 and f64 are supported"),
        };
        if !finite {
            candle_core::bail!("{}", NON_FINITE);
        }
        Ok(())
    }
}

impl InplaceOp1 for Pass {
    fn name(&self) -> &'static str {
        "sbdm-combine"
    }
    fn cpu_fwd(&self, dst: &mut CpuStorage, dst_l: &Layout) -> candle_core::Result<()> {
        self.cpu(dst, dst_l, &[])
    }
    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        dst: &mut candle_core::CudaStorage,
        dst_l: &Layout,
    ) -> candle_core::Result<()> {
        self.cuda(dst, dst_l, &[])
    }
}

impl InplaceOp2 for Pass {
    fn name(&self) -> &'static str {
        "sbdm-combine"
    }
    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dst_l: &Layout,
        y: &CpuStorage,
        yl: &Layout,
    ) -> candle_core::Result<()> {
        self.cpu(dst, dst_l, &[(y, yl)])
    }
    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        dst: &mut candle_core::CudaStorage,
        dst_l: &Layout,
        y: &candle_core::CudaStorage,
        yl: &Layout,
    ) -> candle_core::Result<()> {
        self.cuda(dst, dst_l, &[(y, yl)])
    }
}

impl InplaceOp3 for Pass {
    fn name(&self) -> &'static str {
        "sbdm-combine"
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
        self.cpu(dst, dst_l, &[(y, yl), (z, zl)])
    }
    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        dst: &mut candle_core::CudaStorage,
        dst_l: &Layout,
        y: &candle_core::CudaStorage,
        yl: &Layout,
        z: &candle_core::CudaStorage,
        zl: &Layout,
    ) -> candle_core::Result<()> {
        self.cuda(dst, dst_l, &[(y, yl), (z, zl)])
    }
}

/// A source in `x`'s dtype, contiguous, of `x`'s shape.
fn prepare(x: &Tensor, y: &Tensor) -> Result<Tensor> {
    if x.dims() != y.dims() {
        return Err(invalid!(
            "fused step: shapes {:?} and {:?} differ",
            x.dims(),
            y.dims()
        ));
    }
    Ok(y.to_dtype(x.dtype())?.contiguous()?)
}

/// `x ← [c_x·x +] Σ c_i·src_i` in place, one pass, with at most [`MAX_SOURCES`] sources;
/// `c_x = None` does not read `x` (so its old value may be anything). Fails on a
/// non-finite result (see [`is_non_finite`]).
pub fn combine(x: &Tensor, c_x: Option<f64>, sources: &[(f64, &Tensor)]) -> Result<()> {
    apply(x, c_x, sources, None)
}

/// [`combine`] plus `c_n·ξ`, `ξ` the Philox draw `noise` computed inside the pass: `x`'s
/// rows (of `noise.per` values) take streams `noise.first_stream ..`, so `ξ` equals the
/// tensor [`PhiloxFill`] fills (widened to `x`'s dtype), but is never stored. The noise
/// term is added last, after the others in the order [`combine`] adds them.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use sbdm_runtime::sampling::fused::combine_noisy;
/// use sbdm_runtime::sampling::philox::{normal_at, PhiloxFill};
/// # fn main() -> sbdm_runtime::error::Result<()> {
/// let x = Tensor::new(&[[1f32, 2.0], [3.0, 4.0]], &Device::Cpu)?;
/// let noise = PhiloxFill { seed: 7, first_stream: 0, draw: 0, per: 2 };
/// combine_noisy(&x, Some(1.0), &[], (0.5, noise))?; // x ← x + 0.5·ξ
/// assert_eq!(x.to_vec2::<f32>()?[1][0], 3.0 + 0.5 * normal_at(7, 1, 0, 0));
/// # Ok(()) }
/// ```
pub fn combine_noisy(
    x: &Tensor,
    c_x: Option<f64>,
    sources: &[(f64, &Tensor)],
    noise: (f64, PhiloxFill),
) -> Result<()> {
    apply(x, c_x, sources, Some(noise))
}

/// [`combine`] and [`combine_noisy`]: the checks, then one in-place op.
fn apply(
    x: &Tensor,
    c_x: Option<f64>,
    sources: &[(f64, &Tensor)],
    noise: Option<(f64, PhiloxFill)>,
) -> Result<()> {
    if !x.is_contiguous() {
        return Err(invalid!("fused step: x must be contiguous"));
    }
    if sources.len() > MAX_SOURCES {
        return Err(invalid!(
            "fused step: {} sources, at most {MAX_SOURCES} per pass",
            sources.len()
        ));
    }
    let mut c = [0.0; MAX_SOURCES];
    let mut srcs = Vec::with_capacity(sources.len());
    for (i, (ci, s)) in sources.iter().enumerate() {
        c[i] = *ci;
        srcs.push(prepare(x, s)?);
    }
    if let Some((_, fill)) = &noise {
        let per = fill.per;
        if x.rank() == 0 || x.dims()[1..].iter().product::<usize>() != per {
            return Err(invalid!(
                "fused step: noise of {per} values a row for x of shape {:?}",
                x.dims()
            ));
        }
    }
    let pass = Pass { c_x, c, noise };
    match srcs.as_slice() {
        [] => x.inplace_op1(&pass)?,
        [y] => x.inplace_op2(y, &pass)?,
        [y, z] => x.inplace_op3(y, z, &pass)?,
        _ => unreachable!("checked above"),
    }
    Ok(())
}

/// `x ← c0·x + c1·y`, in place, one pass. Fails on a non-finite result
/// (see [`is_non_finite`]).
pub fn axpby(x: &Tensor, c0: f64, y: &Tensor, c1: f64) -> Result<()> {
    combine(x, Some(c0), &[(c1, y)])
}

/// `x ← c0·x + c1·y + c2·z`, in place, one pass. Fails on a non-finite result.
pub fn axpbypcz(x: &Tensor, c0: f64, y: &Tensor, c1: f64, z: &Tensor, c2: f64) -> Result<()> {
    combine(x, Some(c0), &[(c1, y), (c2, z)])
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
