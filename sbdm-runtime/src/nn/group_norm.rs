//! Group normalisation fused with an optional SiLU, with a hand-written backward pass.
//!
//! For an input `x [N, C, ...]` whose `C` channels fall into `G` groups of `C/G`
//! consecutive channels, each `(n, group)` holds `M = (C/G)·L` values (`L` the product of
//! the trailing dims), with mean `μ` and biased variance `σ²`:
//!
//! ```text
//! x̂ = (x − μ)·r,   r = 1/√(σ² + ε)
//! z = γ_c·x̂ + β_c                      (per-channel affine)
//! y = z            or  y = SiLU(z) = z·s(z),  s the logistic sigmoid
//! ```
//!
//! Backward, with `ḡ = dL/dy` and `dz = ḡ` (or `dz = ḡ·s·(1 + z·(1 − s))` through the
//! SiLU):
//!
//! ```text
//! dL/dγ_c = Σ_{n, l} dz·x̂            dL/dβ_c = Σ_{n, l} dz
//! g = γ_c·dz,   dL/dx = r·(g − mean(g) − x̂·mean(g·x̂))   means over each (n, group)
//! ```
//!
//! candle-nn's `GroupNorm` is a chain of about a dozen composite ops (plus the SiLU),
//! each allocating a tensor, and its backward pass is twice as long; here, on the CPU in
//! f32, the forward pass is one [`CustomOp3`] (two reads of `x` for the statistics and
//! one write of `y`) and the backward pass one op writing `dL/dx` and the parameter
//! gradients (the per-group statistics are kept from the forward pass). Elsewhere (other
//! dtypes, other devices) the layer computes exactly what candle-nn's `GroupNorm`
//! followed by `silu()` computes.

use std::sync::OnceLock;

use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Module, Result, Shape, Tensor};
use candle_nn::{Init, VarBuilder};

use super::second_order;
use crate::simd::{sigmoid, vectorised};

/// Group normalisation with a per-channel affine, optionally followed by a SiLU: the
/// variables (`weight` initialised to ones, `bias` to zeros) and the numbers of
/// `candle_nn::group_norm` (then `.silu()`), with a fused CPU f32 forward and backward
/// pass (see the [module docs](self)).
#[derive(Clone, Debug)]
pub struct FusedGroupNorm {
    weight: Tensor,
    bias: Tensor,
    num_groups: usize,
    eps: f64,
    silu: bool,
}

impl FusedGroupNorm {
    /// Creates `weight` and `bias` `[num_channels]` through `vb`, like
    /// `candle_nn::group_norm`; `silu` appends a SiLU to the normalisation.
    pub fn new(
        num_groups: usize,
        num_channels: usize,
        eps: f64,
        silu: bool,
        vb: VarBuilder,
    ) -> Result<Self> {
        let weight = vb.get_with_hints(num_channels, "weight", Init::Const(1.))?;
        let bias = vb.get_with_hints(num_channels, "bias", Init::Const(0.))?;
        Self::from_tensors(weight, bias, num_groups, eps, silu)
    }

    /// The layer with the given `weight` and `bias` `[C]`; `num_groups` must divide `C`.
    pub fn from_tensors(
        weight: Tensor,
        bias: Tensor,
        num_groups: usize,
        eps: f64,
        silu: bool,
    ) -> Result<Self> {
        let channels = weight.elem_count();
        if weight.rank() != 1 || bias.dims() != [channels] {
            candle_core::bail!(
                "group norm: weight and bias must both be [C], got {:?} and {:?}",
                weight.dims(),
                bias.dims()
            );
        }
        if num_groups == 0 || channels % num_groups != 0 {
            candle_core::bail!(
                "group norm: num_groups ({num_groups}) must divide num_channels ({channels})"
            );
        }
        Ok(FusedGroupNorm {
            weight,
            bias,
            num_groups,
            eps,
            silu,
        })
    }

    /// Whether a SiLU follows the normalisation.
    pub fn has_silu(&self) -> bool {
        self.silu
    }

    /// What candle-nn computes: its `GroupNorm`, then `silu()` when fused. The fallback
    /// for inputs the fused op does not take, and the reference of the tests.
    fn composite(&self, x: &Tensor) -> Result<Tensor> {
        let norm = candle_nn::GroupNorm::new(
            self.weight.clone(),
            self.bias.clone(),
            self.weight.elem_count(),
            self.num_groups,
            self.eps,
        )?;
        let y = norm.forward(x)?;
        if self.silu {
            y.silu()
        } else {
            Ok(y)
        }
    }

    /// Whether the fused op takes `x`: f32 on the CPU with f32 parameters, at least
    /// `[N, C, L]`, non-empty, and every `[L]` plane contiguous; and gradients are not
    /// themselves differentiated (`CANDLE_GRAD_DO_NOT_DETACH`): the fused backward pass
    /// is not differentiable, the composite's is.
    fn fused_applies(&self, x: &Tensor) -> bool {
        let params_ok = [&self.weight, &self.bias]
            .iter()
            .all(|t| t.dtype() == DType::F32 && t.device().is_cpu() && t.is_contiguous());
        params_ok
            && x.dtype() == DType::F32
            && x.device().is_cpu()
            && x.rank() >= 3
            && x.dim(1).ok() == Some(self.weight.elem_count())
            && x.elem_count() > 0
            && Planes::of(x.layout()).is_some()
            && !second_order()
    }
}

impl Module for FusedGroupNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if !self.fused_applies(x) {
            return self.composite(x);
        }
        let op = GroupNormOp {
            num_groups: self.num_groups,
            eps: self.eps,
            silu: self.silu,
            stats: OnceLock::new(),
        };
        x.apply_op3(&self.weight, &self.bias, op)
    }
}

/// Where the `[L]` planes of an `[N, C, ...]` tensor lie in its storage: plane `(n, c)`
/// is `data[start + n·stride_n + c·stride_c ..][..len]`. Covers contiguous tensors and
/// the `[C, N, H, W]`-ordered outputs of the U-Net's convolutions alike.
#[derive(Clone, Copy, Debug)]
struct Planes {
    n: usize,
    c: usize,
    len: usize,
    start: usize,
    stride_n: usize,
    stride_c: usize,
}

impl Planes {
    /// The planes of `layout`, or `None` unless its trailing dims are contiguous.
    fn of(layout: &Layout) -> Option<Planes> {
        let (dims, strides) = (layout.dims(), layout.stride());
        if dims.len() < 3 {
            return None;
        }
        let mut expected = 1;
        for (&d, &s) in dims[2..].iter().zip(&strides[2..]).rev() {
            if d != 1 && s != expected {
                return None;
            }
            expected *= d;
        }
        Some(Planes {
            n: dims[0],
            c: dims[1],
            len: expected,
            start: layout.start_offset(),
            stride_n: strides[0],
            stride_c: strides[1],
        })
    }

    /// Plane `(n, c)` of `data`.
    fn plane<'a>(&self, data: &'a [f32], n: usize, c: usize) -> &'a [f32] {
        let at = self.start + n * self.stride_n + c * self.stride_c;
        &data[at..at + self.len]
    }
}

/// The contiguous f32 values of a parameter `[C]`.
fn param<'a>(storage: &'a CpuStorage, layout: &Layout, what: &str) -> Result<&'a [f32]> {
    match layout.contiguous_offsets() {
        Some((a, b)) => Ok(&storage.as_slice::<f32>()?[a..b]),
        None => candle_core::bail!("group norm: the {what} must be contiguous"),
    }
}

/// Values summed per lane of this width, so that the sums vectorise.
const LANES: usize = 8;
/// Values summed in f32 lanes before the partial sums are added into an f64.
const BLOCK: usize = 1024;

/// `Σ f(v)` over `values`: in [`LANES`] f32 lanes, flushed into an f64 every
/// [`BLOCK`] values, so that long planes lose no precision.
fn sum_f64(values: &[f32], f: impl Fn(f32) -> f32) -> f64 {
    let mut total = 0f64;
    for block in values.chunks(BLOCK) {
        let mut acc = [0f32; LANES];
        let lanes = block.chunks_exact(LANES);
        let mut tail = 0f32;
        for &v in lanes.remainder() {
            tail += f(v);
        }
        for chunk in lanes {
            for (a, &v) in acc.iter_mut().zip(chunk) {
                *a += f(v);
            }
        }
        total += f64::from(acc.iter().sum::<f32>() + tail);
    }
    total
}

/// Below this many elements per thread an op runs on the calling thread alone: a
/// scoped thread costs tens of µs, and training already splits each batch across the
/// cores (`TrainConfig::chunks`), so only very large inputs gain from more threads.
const PARALLEL_MIN_ELEMENTS: usize = 1 << 20;

/// Runs `work(item, out, side)` for each of `items` work items, where `out` and `side`
/// are the item's equal shares of the two buffers (`out.len()` and `side.len()`
/// multiples of `items`): on this thread, or for large `out` split into contiguous
/// runs of items over scoped threads.
fn for_each_item<S: Send>(
    items: usize,
    out: &mut [f32],
    side: &mut [S],
    work: impl Fn(usize, &mut [f32], &mut [S]) + Sync,
) {
    let (out_per, side_per) = (out.len() / items, side.len() / items);
    // Compiled for AVX2 where the CPU has it (the same results: see `crate::simd`).
    let run = |first: usize, out: &mut [f32], side: &mut [S]| {
        vectorised(
            #[inline(always)]
            || {
                for (i, (o, s)) in out
                    .chunks_mut(out_per)
                    .zip(side.chunks_mut(side_per))
                    .enumerate()
                {
                    work(first + i, o, s);
                }
            },
        )
    };
    let threads = crate::parallel::threads()
        .min(items)
        .min(out.len() / PARALLEL_MIN_ELEMENTS)
        .max(1);
    if threads == 1 {
        return run(0, out, side);
    }
    let per_thread = items.div_ceil(threads);
    std::thread::scope(|scope| {
        let run = &run;
        let mut parts = out
            .chunks_mut(per_thread * out_per)
            .zip(side.chunks_mut(per_thread * side_per))
            .enumerate();
        let (_, (first_out, first_side)) = parts.next().expect("at least one item");
        for (t, (o, s)) in parts {
            scope.spawn(move || run(t * per_thread, o, s));
        }
        run(0, first_out, first_side);
    });
}

/// The fused forward pass `(x, weight, bias) → y`; keeps each `(n, group)`'s `(μ, r)`
/// for [`GroupNormBwd`].
struct GroupNormOp {
    num_groups: usize,
    eps: f64,
    silu: bool,
    /// `[N·G][μ, r]`, set by the forward pass.
    stats: OnceLock<Vec<[f32; 2]>>,
}

impl CustomOp3 for GroupNormOp {
    fn name(&self) -> &'static str {
        "fused-group-norm"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let Some(planes) = Planes::of(xl) else {
            candle_core::bail!("group norm: the [L] planes of x must be contiguous");
        };
        let x = xs.as_slice::<f32>()?;
        let (gamma, beta) = (param(ws, wl, "weight")?, param(bs, bl, "bias")?);
        let (groups, len) = (self.num_groups, planes.len);
        if gamma.len() != planes.c || beta.len() != planes.c || planes.c % groups != 0 {
            candle_core::bail!("group norm: parameters do not match x {:?}", xl.dims());
        }
        let per_group = planes.c / groups;
        let count = (per_group * len) as f64;
        let mut out = vec![0f32; planes.n * planes.c * len];
        let mut stats = vec![[0f32; 2]; planes.n * groups];
        for_each_item(
            planes.n * groups,
            &mut out,
            &mut stats,
            #[inline(always)]
            |item, out, stat| {
                let (n, g) = (item / groups, item % groups);
                let channels = g * per_group..(g + 1) * per_group;
                // Two passes, the variance about the mean, both accumulated in f64.
                let sum: f64 = channels
                    .clone()
                    .map(|c| sum_f64(planes.plane(x, n, c), |v| v))
                    .sum();
                let mean = sum / count;
                let mean32 = mean as f32;
                let sq: f64 = channels
                    .clone()
                    .map(|c| sum_f64(planes.plane(x, n, c), |v| (v - mean32) * (v - mean32)))
                    .sum();
                let rstd = 1.0 / (sq / count + self.eps).sqrt();
                stat[0] = [mean32, rstd as f32];
                for (c, y) in channels.zip(out.chunks_exact_mut(len)) {
                    // y = γ·(x − μ)·r + β = a·x + b.
                    let a = (f64::from(gamma[c]) * rstd) as f32;
                    let b = (f64::from(beta[c]) - mean * f64::from(gamma[c]) * rstd) as f32;
                    let xs = planes.plane(x, n, c);
                    if self.silu {
                        for (y, &v) in y.iter_mut().zip(xs) {
                            let z = a * v + b;
                            *y = z * sigmoid(z);
                        }
                    } else {
                        for (y, &v) in y.iter_mut().zip(xs) {
                            *y = a * v + b;
                        }
                    }
                }
            },
        );
        // A CustomOp runs its forward pass once; a second run would only repeat these.
        let _ = self.stats.set(stats);
        let shape = Shape::from(xl.dims());
        Ok((CpuStorage::F32(out), shape))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        bias: &Tensor,
        _y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let Some(stats) = self.stats.get() else {
            candle_core::bail!("group norm: backward pass before the forward pass");
        };
        let grad = if Planes::of(grad.layout()).is_some() {
            grad.clone()
        } else {
            grad.contiguous()?
        };
        let op = GroupNormBwd {
            num_groups: self.num_groups,
            silu: self.silu,
            gamma: weight.to_vec1()?,
            beta: bias.to_vec1()?,
            stats: stats.clone(),
        };
        // One buffer: dL/dx [N·C·L], then dL/dγ [C] and dL/dβ [C].
        let all = x.apply_op2_no_bwd(&grad, &op)?;
        let (numel, channels) = (x.elem_count(), op.gamma.len());
        let dx = all.narrow(0, 0, numel)?.reshape(x.shape())?;
        let dgamma = all.narrow(0, numel, channels)?;
        let dbeta = all.narrow(0, numel + channels, channels)?;
        Ok((Some(dx), Some(dgamma), Some(dbeta)))
    }
}

/// The fused backward pass `(x, dL/dy) → [dL/dx (flattened), dL/dγ, dL/dβ]` of a
/// [`GroupNormOp`], from its kept statistics (see the [module docs](self)).
struct GroupNormBwd {
    num_groups: usize,
    silu: bool,
    gamma: Vec<f32>,
    beta: Vec<f32>,
    stats: Vec<[f32; 2]>,
}

impl CustomOp2 for GroupNormBwd {
    fn name(&self) -> &'static str {
        "fused-group-norm-bwd"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (Some(planes), Some(gplanes)) = (Planes::of(xl), Planes::of(gl)) else {
            candle_core::bail!("group norm backward: the [L] planes must be contiguous");
        };
        if xl.dims() != gl.dims() {
            candle_core::bail!(
                "group norm backward: x {:?} and its gradient {:?} differ",
                xl.dims(),
                gl.dims()
            );
        }
        let (x, dy) = (xs.as_slice::<f32>()?, gs.as_slice::<f32>()?);
        let (groups, len, channels) = (self.num_groups, planes.len, planes.c);
        let per_group = channels / groups;
        let numel = planes.n * channels * len;
        let count = (per_group * len) as f64;
        let mut out = vec![0f32; numel + 2 * channels];
        let (dx_all, dparams) = out.split_at_mut(numel);
        // Per (n, c): [Σ dz·x̂, Σ dz], summed over n below.
        let mut partial = vec![[0f64; 2]; planes.n * channels];
        for_each_item(
            planes.n * groups,
            dx_all,
            &mut partial,
            #[inline(always)]
            |item, dx, sums| {
                let (n, g) = (item / groups, item % groups);
                let [mean, rstd] = self.stats[item];
                let channels = g * per_group..(g + 1) * per_group;
                // Pass 1: dz (kept in dx when it passes through the SiLU) and its sums.
                for ((c, dx), sums) in channels
                    .clone()
                    .zip(dx.chunks_exact_mut(len))
                    .zip(&mut *sums)
                {
                    let (xs, dys) = (planes.plane(x, n, c), gplanes.plane(dy, n, c));
                    *sums = if self.silu {
                        silu_dz(xs, dys, dx, mean, rstd, self.gamma[c], self.beta[c])
                    } else {
                        sums_dz(xs, dys, mean, rstd)
                    };
                }
                // Pass 2: dx = r·(γ·dz − mean(γ·dz) − x̂·mean(γ·dz·x̂)).
                let (mut sum_g, mut sum_gx) = (0f64, 0f64);
                for (c, [s_dzx, s_dz]) in channels.clone().zip(&*sums) {
                    sum_g += f64::from(self.gamma[c]) * s_dz;
                    sum_gx += f64::from(self.gamma[c]) * s_dzx;
                }
                let (mean_g, mean_gx) = ((sum_g / count) as f32, (sum_gx / count) as f32);
                for (c, dx) in channels.zip(dx.chunks_exact_mut(len)) {
                    let xs = planes.plane(x, n, c);
                    let gamma = self.gamma[c];
                    if self.silu {
                        for (d, &v) in dx.iter_mut().zip(xs) {
                            let xhat = (v - mean) * rstd;
                            *d = rstd * (gamma * *d - mean_g - xhat * mean_gx);
                        }
                    } else {
                        let dys = gplanes.plane(dy, n, c);
                        for ((d, &v), &g) in dx.iter_mut().zip(xs).zip(dys) {
                            let xhat = (v - mean) * rstd;
                            *d = rstd * (gamma * g - mean_g - xhat * mean_gx);
                        }
                    }
                }
            },
        );
        let (dgamma, dbeta) = dparams.split_at_mut(channels);
        for (c, (dg, db)) in dgamma.iter_mut().zip(dbeta.iter_mut()).enumerate() {
            let (sg, sb) = (0..planes.n)
                .map(|n| partial[n * channels + c])
                .fold((0f64, 0f64), |(a, b), [s, t]| (a + s, b + t));
            *dg = sg as f32;
            *db = sb as f32;
        }
        Ok((CpuStorage::F32(out), Shape::from(numel + 2 * channels)))
    }
}

/// Without the SiLU `dz = dL/dy`: `[Σ dz·x̂, Σ dz]` over one plane.
fn sums_dz(xs: &[f32], dys: &[f32], mean: f32, rstd: f32) -> [f64; 2] {
    let mut total = [0f64; 2];
    for (xb, gb) in xs.chunks(BLOCK).zip(dys.chunks(BLOCK)) {
        let (mut acc_x, mut acc) = ([0f32; LANES], [0f32; LANES]);
        let (xl, gl) = (xb.chunks_exact(LANES), gb.chunks_exact(LANES));
        let (mut tail_x, mut tail) = (0f32, 0f32);
        for (&v, &g) in xl.remainder().iter().zip(gl.remainder()) {
            tail_x += g * (v - mean) * rstd;
            tail += g;
        }
        for (xc, gc) in xl.zip(gl) {
            for i in 0..LANES {
                acc_x[i] += gc[i] * (xc[i] - mean) * rstd;
                acc[i] += gc[i];
            }
        }
        total[0] += f64::from(acc_x.iter().sum::<f32>() + tail_x);
        total[1] += f64::from(acc.iter().sum::<f32>() + tail);
    }
    total
}

/// Through the SiLU: writes `dz = dL/dy·s·(1 + z·(1 − s))` (`z = γ·x̂ + β`, `s` its
/// sigmoid) into `dz_out` and returns `[Σ dz·x̂, Σ dz]` over one plane.
fn silu_dz(
    xs: &[f32],
    dys: &[f32],
    dz_out: &mut [f32],
    mean: f32,
    rstd: f32,
    gamma: f32,
    beta: f32,
) -> [f64; 2] {
    let dz_at = |v: f32, g: f32| {
        let xhat = (v - mean) * rstd;
        let z = gamma * xhat + beta;
        let s = sigmoid(z);
        (g * s * (1.0 + z * (1.0 - s)), xhat)
    };
    let mut total = [0f64; 2];
    for ((xb, gb), ob) in xs
        .chunks(BLOCK)
        .zip(dys.chunks(BLOCK))
        .zip(dz_out.chunks_mut(BLOCK))
    {
        let (mut acc_x, mut acc) = ([0f32; LANES], [0f32; LANES]);
        let whole = xb.len() - xb.len() % LANES;
        let (ob, ob_tail) = ob.split_at_mut(whole);
        let (mut tail_x, mut tail) = (0f32, 0f32);
        for ((&v, &g), o) in xb[whole..].iter().zip(&gb[whole..]).zip(ob_tail) {
            let (dz, xhat) = dz_at(v, g);
            *o = dz;
            tail_x += dz * xhat;
            tail += dz;
        }
        let lanes = xb[..whole]
            .chunks_exact(LANES)
            .zip(gb[..whole].chunks_exact(LANES))
            .zip(ob.chunks_exact_mut(LANES));
        for ((xc, gc), oc) in lanes {
            for i in 0..LANES {
                let (dz, xhat) = dz_at(xc[i], gc[i]);
                oc[i] = dz;
                acc_x[i] += dz * xhat;
                acc[i] += dz;
            }
        }
        total[0] += f64::from(acc_x.iter().sum::<f32>() + tail_x);
        total[1] += f64::from(acc.iter().sum::<f32>() + tail);
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    use crate::nn::seeded_randn as randn;

    /// `max |a − b| / max(max |b|, 1)`, computed in f64.
    fn rel_diff(a: &Tensor, b: &Tensor) -> Result<f64> {
        let (a, b) = (a.to_dtype(DType::F64)?, b.to_dtype(DType::F64)?);
        let diff = (&a - &b)?
            .abs()?
            .flatten_all()?
            .max(0)?
            .to_scalar::<f64>()?;
        let scale = b.abs()?.flatten_all()?.max(0)?.to_scalar::<f64>()?;
        Ok(diff / scale.max(1.0))
    }

    /// A layer with non-trivial weight `1 + N(0, 0.5²)` and bias `N(0, 0.3²)`, as Vars.
    fn layer(seed: u64, channels: usize, groups: usize, silu: bool) -> Result<FusedGroupNorm> {
        let w = Var::from_tensor(&randn(seed, &[channels])?.affine(0.5, 1.0)?)?;
        let b = Var::from_tensor(&(randn(seed + 1, &[channels])? * 0.3)?)?;
        FusedGroupNorm::from_tensors(
            w.as_tensor().clone(),
            b.as_tensor().clone(),
            groups,
            1e-5,
            silu,
        )
    }

    /// The layer with its parameters as f64 Vars: candle-nn's composite ops in f64.
    fn in_f64(norm: &FusedGroupNorm) -> Result<FusedGroupNorm> {
        let w = Var::from_tensor(&norm.weight.to_dtype(DType::F64)?)?;
        let b = Var::from_tensor(&norm.bias.to_dtype(DType::F64)?)?;
        FusedGroupNorm::from_tensors(
            w.as_tensor().clone(),
            b.as_tensor().clone(),
            norm.num_groups,
            norm.eps,
            norm.silu,
        )
    }

    /// The fused layer against candle-nn's `GroupNorm` (+ `silu()`) in f64: values and
    /// the gradients of `x`, `weight` and `bias` of `Σ r·y` for a random `r`, each to
    /// `1e-5` of its scale (`max |reference|`, at least 1). Where `dL/dx` cancels to
    /// about 0 (two values per group: `x̂ = ±1` whatever `x`) every f32 computation
    /// errs by more, in proportion to `1/σ` (the f32 rounding of `μ` and of each term,
    /// amplified); there the bound is 4× the error of the same composite ops in f32.
    fn check_against_composite(x: &Tensor, norm: &FusedGroupNorm, what: &str) -> Result<()> {
        assert!(norm.fused_applies(x), "{what}: the fused op must apply");
        let r = randn(99, x.dims())?;
        let loss_grads = |y: &Tensor| -> Result<candle_core::backprop::GradStore> {
            (y * r.to_dtype(y.dtype())?)?.sum_all()?.backward()
        };
        // Ours.
        let x32 = Var::from_tensor(x)?;
        let ours = norm.forward(x32.as_tensor())?;
        assert!(ours.is_contiguous());
        assert_eq!(ours.dims(), x.dims(), "{what}");
        let g_ours = loss_grads(&ours)?;
        // candle-nn's composite in f64 (the reference) and in f32.
        let norm64 = in_f64(norm)?;
        let x64 = Var::from_tensor(&x.to_dtype(DType::F64)?)?;
        assert!(!norm64.fused_applies(&x64));
        let reference = norm64.forward(x64.as_tensor())?;
        let g_ref = loss_grads(&reference)?;
        let x32c = Var::from_tensor(x)?;
        let composite = norm.composite(x32c.as_tensor())?;
        let g_comp = loss_grads(&composite)?;

        let check = |ours: &Tensor, composite: &Tensor, reference: &Tensor, name: &str| {
            let d = rel_diff(ours, reference)?;
            let d32 = rel_diff(composite, reference)?;
            let bound = 1e-5f64.max(4.0 * d32);
            assert!(
                d < bound,
                "{what}: {name} differs by {d:e} (f32 composite {d32:e})"
            );
            Ok::<_, candle_core::Error>(())
        };
        check(&ours, &composite, &reference, "y")?;
        let params = [
            (x32.as_tensor(), x32c.as_tensor(), x64.as_tensor(), "dx"),
            (&norm.weight, &norm.weight, &norm64.weight, "dweight"),
            (&norm.bias, &norm.bias, &norm64.bias, "dbias"),
        ];
        for (ours, comp, reference, name) in params {
            let g = g_ours.get(ours).unwrap();
            assert_eq!(g.dims(), ours.dims(), "{what}: {name} shape");
            check(
                g,
                g_comp.get(comp).unwrap(),
                g_ref.get(reference).unwrap(),
                name,
            )?;
        }
        Ok(())
    }

    #[test]
    fn matches_candle_group_norm_and_silu() -> Result<()> {
        // (shape, groups): several channels per group, one per group, one group,
        // H·W = 1, N = 1, odd planes (lane tails), [N, C, L] and a 5-D input.
        let cases: [(&[usize], usize); 10] = [
            (&[2, 8, 4, 4], 4),
            (&[2, 8, 4, 4], 8),
            (&[3, 12, 5, 7], 1),
            (&[4, 6, 1, 1], 3),
            (&[4, 12, 1, 1], 3),
            (&[1, 16, 9, 9], 4),
            (&[1, 4, 1, 1], 2),
            (&[2, 6, 37], 2),
            (&[2, 4, 3, 2, 5], 2),
            (&[2, 32, 40, 40], 8),
        ];
        for (i, (shape, groups)) in cases.into_iter().enumerate() {
            for silu in [false, true] {
                let norm = layer(10 + i as u64, shape[1], groups, silu)?;
                // Off-centre data with a large mean: the variance must not cancel.
                let x = randn(i as u64, shape)?.affine(2.0, 3.0)?;
                check_against_composite(&x, &norm, &format!("{shape:?} g{groups} silu {silu}"))?;
            }
        }
        Ok(())
    }

    /// The U-Net's convolutions return `[C, N, H, W]`-ordered views: the fused op reads
    /// their planes in place.
    #[test]
    fn reads_transposed_views_in_place() -> Result<()> {
        let x = randn(5, &[6, 3, 4, 5])?.transpose(0, 1)?; // [3, 6, 4, 5], planes contiguous
        assert!(!x.is_contiguous());
        check_against_composite(&x, &layer(7, 6, 3, true)?, "transposed")?;
        // A view whose planes are not contiguous takes the composite path.
        let x = randn(5, &[3, 6, 5, 4])?.transpose(2, 3)?;
        let norm = layer(7, 6, 3, true)?;
        assert!(!norm.fused_applies(&x));
        let d = rel_diff(&norm.forward(&x)?, &norm.composite(&x)?)?;
        assert_eq!(d, 0.0);
        Ok(())
    }

    /// Above [`PARALLEL_MIN_ELEMENTS`] the items are split across threads (on a
    /// multi-core machine); the numbers are the same.
    #[test]
    fn large_inputs_match_too() -> Result<()> {
        let shape = [8, 64, 64, 64];
        assert!(shape.iter().product::<usize>() >= 2 * PARALLEL_MIN_ELEMENTS);
        let x = randn(3, &shape)?;
        check_against_composite(&x, &layer(4, 64, 8, true)?, "large")
    }

    /// Other dtypes take candle-nn's composite ops, with identical results.
    #[test]
    fn falls_back_to_the_composite() -> Result<()> {
        let norm32 = layer(1, 8, 4, true)?;
        let norm = FusedGroupNorm::from_tensors(
            norm32.weight.to_dtype(DType::F64)?,
            norm32.bias.to_dtype(DType::F64)?,
            4,
            1e-5,
            true,
        )?;
        let x = randn(2, &[2, 8, 3, 3])?.to_dtype(DType::F64)?;
        assert!(!norm.fused_applies(&x));
        let ours = norm.forward(&x)?;
        let composite =
            candle_nn::GroupNorm::new(norm.weight.clone(), norm.bias.clone(), 8, 4, 1e-5)?
                .forward(&x)?
                .silu()?;
        assert_eq!(ours.dtype(), DType::F64);
        assert_eq!(rel_diff(&ours, &composite)?, 0.0);
        // And f32 parameters with an f64 input are not fused either.
        assert!(!norm32.fused_applies(&x));
        Ok(())
    }

    #[test]
    fn rejects_bad_configurations() -> Result<()> {
        let w = Tensor::ones(6, DType::F32, &Device::Cpu)?;
        assert!(FusedGroupNorm::from_tensors(w.clone(), w.clone(), 4, 1e-5, false).is_err());
        assert!(FusedGroupNorm::from_tensors(w.clone(), w.clone(), 0, 1e-5, false).is_err());
        let norm = FusedGroupNorm::from_tensors(w.clone(), w, 3, 1e-5, false)?;
        // Wrong channel count and too low a rank: candle-nn's errors.
        assert!(norm.forward(&randn(0, &[2, 4, 3, 3])?).is_err());
        assert!(norm.forward(&randn(0, &[2, 6])?).is_err());
        Ok(())
    }

    /// `(L(p + h·v) − L(p − h·v)) / 2h` against `⟨∇L, v⟩` for `L = Σ r·y`, with `L`
    /// evaluated in f64 through the composite path: an independent check of the
    /// hand-written gradients, which also shows a 1 % error in a gradient is caught.
    #[test]
    fn gradients_match_finite_differences() -> Result<()> {
        let shape = [2, 6, 3, 4];
        let norm = layer(21, 6, 2, true)?;
        let x = Var::from_tensor(&(randn(22, &shape)? * 1.5)?)?;
        let r = randn(23, &shape)?;
        let grads = (norm.forward(x.as_tensor())? * &r)?.sum_all()?.backward()?;
        let r64 = r.to_dtype(DType::F64)?;
        let loss64 = |x: &Tensor, w: &Tensor, b: &Tensor| -> Result<f64> {
            let f = FusedGroupNorm::from_tensors(w.clone(), b.clone(), 2, 1e-5, true)?;
            (f.forward(x)? * &r64)?.sum_all()?.to_scalar::<f64>()
        };
        let p64 =
            [x.as_tensor(), &norm.weight, &norm.bias].map(|t| t.to_dtype(DType::F64).unwrap());
        let h = 1e-4;
        for (k, (t, name)) in [
            (x.as_tensor(), "x"),
            (&norm.weight, "weight"),
            (&norm.bias, "bias"),
        ]
        .into_iter()
        .enumerate()
        {
            let grad = grads.get(t).unwrap().to_dtype(DType::F64)?;
            for seed in 0..3 {
                let v = randn(100 + seed, t.dims())?.to_dtype(DType::F64)?;
                let at = |sign: f64| -> Result<f64> {
                    let mut p = p64.clone();
                    p[k] = (&p[k] + (&v * (sign * h))?)?;
                    loss64(&p[0], &p[1], &p[2])
                };
                let fd = (at(1.0)? - at(-1.0)?) / (2.0 * h);
                let rel = |g: &Tensor| -> Result<f64> {
                    let dot = (g * &v)?.sum_all()?.to_scalar::<f64>()?;
                    Ok((dot - fd).abs() / fd.abs().max(1.0))
                };
                let err = rel(&grad)?;
                assert!(err < 1e-4, "d{name}, direction {seed}: error {err:e}");
                let wrong = rel(&(&grad * 1.01)?)?;
                assert!(wrong > 1e-3, "d{name}: a 1 % error went unseen ({wrong:e})");
            }
        }
        Ok(())
    }
}
