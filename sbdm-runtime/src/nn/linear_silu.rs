//! `SiLU(x·Wᵀ + b)`, the MLP's hidden layer, as one node of the graph on the CPU in f32.
//!
//! ```text
//! forward    u  = b + x·Wᵀ  (kept by the op),   y = SiLU(u) = u·σ(u)
//! backward   dz = g·SiLU'(u) = g·σ(u)·(1 + u·(1 − σ(u)))
//!            ∂x = dz·W,   ∂W = dzᵀ·x,   ∂b = Σ_rows dz
//! ```
//!
//! As candle ops the layer was three nodes (the matmul, `Wᵀ`, the bias and SiLU): each
//! product a fresh zero-filled tensor and each node's input gradient a zero-filled tensor
//! that the gradient was then added to. Here the products are written where they belong
//! ([`super::strided`]) and the layer's one input gradient is the only activation-sized
//! tensor of its backward pass. Under `CANDLE_GRAD_DO_NOT_DETACH` (gradients that are
//! themselves differentiated), and off the CPU or in other dtypes, the layer is candle's
//! `Linear` followed by `silu()`.

use std::sync::OnceLock;

use candle_core::{CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor};
use candle_nn::{Linear, Module};

use super::second_order;
use super::strided::{matmul_threads, product, values, with_values, Matrix};
use crate::simd::{sigmoid, vectorised};

/// `SiLU(layer(x))` for `x [N, in]`: one fused node on the CPU in f32 (see the module
/// docs), candle's ops otherwise.
pub(super) fn linear_silu(layer: &Linear, x: &Tensor) -> Result<Tensor> {
    match layer.bias() {
        Some(b) if fused_applies(x, layer.weight(), b) => x.contiguous()?.apply_op3(
            &layer.weight().contiguous()?,
            &b.contiguous()?,
            LinearSilu::default(),
        ),
        _ => layer.forward(x)?.silu(),
    }
}

/// Whether the fused op takes `x`, `W` and `b`: all f32 on the CPU, `x` of rank 2, and
/// gradients not themselves differentiated.
fn fused_applies(x: &Tensor, w: &Tensor, b: &Tensor) -> bool {
    [x, w, b]
        .iter()
        .all(|t| t.dtype() == DType::F32 && t.device().is_cpu())
        && x.rank() == 2
        && !second_order()
}

/// The op's name, in its errors too.
const OP: &str = "linear-silu";

/// The fused layer; holds `u = b + x·Wᵀ` from its forward pass for its backward pass.
#[derive(Debug, Default)]
struct LinearSilu {
    pre_activation: OnceLock<Vec<f32>>,
}

impl CustomOp3 for LinearSilu {
    fn name(&self) -> &'static str {
        OP
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
        let ((n, fan_in), (fan_out, w_in)) = (xl.shape().dims2()?, wl.shape().dims2()?);
        if w_in != fan_in || bl.dims() != [fan_out] {
            candle_core::bail!(
                "linear-silu: x {:?}, weight {:?} and bias {:?} do not fit",
                xl.dims(),
                wl.dims(),
                bl.dims()
            );
        }
        let (x, w, b) = (
            values(xs, xl, OP)?,
            values(ws, wl, OP)?,
            values(bs, bl, OP)?,
        );
        let mut u = Vec::with_capacity(n * fan_out);
        for _ in 0..n {
            u.extend_from_slice(b);
        }
        let (x, w) = (
            Matrix::row_major(x, n, fan_in),
            Matrix::row_major(w, fan_out, fan_in),
        );
        product(&mut u, (fan_out, 1), true, x, w.t(), matmul_threads());
        let mut y = vec![0f32; u.len()];
        vectorised(
            #[inline(always)]
            || {
                for (y, &u) in y.iter_mut().zip(&u) {
                    *y = u * sigmoid(u);
                }
            },
        );
        if self.pre_activation.set(u).is_err() {
            candle_core::bail!("linear-silu: the op ran twice");
        }
        Ok((CpuStorage::F32(y), Shape::from((n, fan_out))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let Some(u) = self.pre_activation.get() else {
            candle_core::bail!("linear-silu: backward before forward");
        };
        let ((n, fan_in), (fan_out, _)) = (x.dims2()?, w.dims2()?);
        let (x, w) = (x.detach().contiguous()?, w.detach().contiguous()?);
        let grad = grad.detach().contiguous()?;
        let (dx, dw, db) = with_values(&x, OP, |x| {
            with_values(&w, OP, |w| {
                with_values(&grad, OP, |g| {
                    Ok(gradients(u, g, x, w, (n, fan_in, fan_out)))
                })
            })
        })?;
        let dev = x.device();
        Ok((
            Some(Tensor::from_vec(dx, (n, fan_in), dev)?),
            Some(Tensor::from_vec(dw, (fan_out, fan_in), dev)?),
            Some(Tensor::from_vec(db, fan_out, dev)?),
        ))
    }
}

/// `(∂x, ∂W, ∂b)` from `u`, the output gradient `g`, `x` and `W` (see the module docs).
fn gradients(
    u: &[f32],
    g: &[f32],
    x: &[f32],
    w: &[f32],
    (n, fan_in, fan_out): (usize, usize, usize),
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut dz = vec![0f32; n * fan_out];
    vectorised(
        #[inline(always)]
        || {
            for ((d, &u), &g) in dz.iter_mut().zip(u).zip(g) {
                let s = sigmoid(u);
                *d = g * s * (1.0 + u * (1.0 - s));
            }
        },
    );
    let mut db = vec![0f32; fan_out];
    for row in dz.chunks_exact(fan_out.max(1)) {
        for (s, &d) in db.iter_mut().zip(row) {
            *s += d;
        }
    }
    let (mut dx, mut dw) = (vec![0f32; n * fan_in], vec![0f32; fan_out * fan_in]);
    let dz = Matrix::row_major(&dz, n, fan_out);
    let (x, w) = (
        Matrix::row_major(x, n, fan_in),
        Matrix::row_major(w, fan_out, fan_in),
    );
    product(&mut dx, (fan_in, 1), false, dz, w, matmul_threads());
    product(&mut dw, (fan_in, 1), false, dz.t(), x, matmul_threads());
    (dx, dw, db)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::{seeded_randn as randn, seeded_varbuilder};
    use candle_core::{Device, Var};
    use candle_nn::VarMap;

    /// Values and the gradients of `x`, `W` and `b` against candle's `Linear` + `silu()`,
    /// relative to each tensor's largest value.
    #[test]
    fn matches_candle_linear_and_silu() -> Result<()> {
        for (n, fan_in, fan_out) in [(1, 1, 1), (5, 3, 7), (300, 66, 256), (64, 256, 2)] {
            let vm = VarMap::new();
            let vb = seeded_varbuilder(&vm, 4, DType::F32, &Device::Cpu);
            let layer = candle_nn::linear(fan_in, fan_out, vb.pp("l"))?;
            let x = Var::from_tensor(&randn(1, &[n, fan_in])?)?;
            let ours = linear_silu(&layer, x.as_tensor())?;
            let theirs = layer.forward(x.as_tensor())?.silu()?;
            let r = randn(2, ours.dims())?;
            let g1 = (&ours * &r)?.sum_all()?.backward()?;
            let g2 = (&theirs * &r)?.sum_all()?.backward()?;
            let bias = layer.bias().expect("a bias");
            let pairs = [
                (ours.clone(), theirs.clone()),
                (g1.get(&x).unwrap().clone(), g2.get(&x).unwrap().clone()),
                (
                    g1.get(layer.weight()).unwrap().clone(),
                    g2.get(layer.weight()).unwrap().clone(),
                ),
                (g1.get(bias).unwrap().clone(), g2.get(bias).unwrap().clone()),
            ];
            for (i, (a, b)) in pairs.iter().enumerate() {
                let scale = b.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
                let diff = (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
                // Sums of up to 300 f32 terms in another order than candle's.
                assert!(
                    diff <= 1e-5 * scale.max(1e-30),
                    "{n}×{fan_in}→{fan_out}, tensor {i}: {diff} at scale {scale}"
                );
            }
        }
        Ok(())
    }

    /// Other dtypes take candle's ops, with identical results.
    #[test]
    fn falls_back_to_candle_ops() -> Result<()> {
        let vm = VarMap::new();
        let vb = seeded_varbuilder(&vm, 4, DType::F64, &Device::Cpu);
        let layer = candle_nn::linear(3, 4, vb.pp("l"))?;
        let x = randn(1, &[5, 3])?.to_dtype(DType::F64)?;
        assert!(!fused_applies(&x, layer.weight(), layer.bias().unwrap()));
        let ours = linear_silu(&layer, &x)?;
        let theirs = layer.forward(&x)?.silu()?;
        let diff = (ours - theirs)?
            .abs()?
            .flatten_all()?
            .max(0)?
            .to_scalar::<f64>()?;
        assert_eq!(diff, 0.0);
        Ok(())
    }
}
