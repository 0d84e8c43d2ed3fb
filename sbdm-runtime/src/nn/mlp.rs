//! A conditioned MLP for low-dimensional data.
//!
//! ```text
//! temb = SiLU(embed.proj(TimeEmbedding(c)))        (+ label(y) when num_classes > 0)
//! h    = SiLU(in([x, temb]))                       dim + E → width
//! h    = SiLU(hidden.i(h))  for i in 1..depth      width → width
//! out  = out(h)                                    width → dim
//! ```
//!
//! ```
//! use candle_core::{DType, Device, Tensor};
//! use candle_nn::VarMap;
//! use sbdm_runtime::nn::{seeded_varbuilder, Mlp, MlpConfig, Network};
//! # fn main() -> candle_core::Result<()> {
//! let varmap = VarMap::new();
//! let vb = seeded_varbuilder(&varmap, 0, DType::F32, &Device::Cpu);
//! let net = Mlp::new(&MlpConfig::default(), vb)?;
//! let x = Tensor::zeros((5, 2), DType::F32, &Device::Cpu)?; // [N, dim]
//! let c = Tensor::zeros(5, DType::F32, &Device::Cpu)?; // [N]
//! assert_eq!(net.forward(&x, &c, None)?.dims(), &[5, 2]);
//! # Ok(()) }
//! ```

use candle_core::{
    CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor,
};
use candle_nn::{Embedding, Linear, Module, VarBuilder};
use serde::{Deserialize, Serialize};

use super::embed::{labels_or_null, EmbedConfig, TimeEmbedding};
use super::Network;
use crate::simd::{sigmoid, vectorised};

/// The configuration of an [`Mlp`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MlpConfig {
    /// The data dimension (input and output).
    pub dim: usize,
    /// The hidden width.
    pub width: usize,
    /// The number of hidden layers (`in` plus `depth − 1` hidden ones), at least 1.
    pub depth: usize,
    /// The embedding of the noise conditioning.
    pub embed: EmbedConfig,
    /// The number of classes (0: unconditional).
    pub num_classes: usize,
}

impl Default for MlpConfig {
    fn default() -> Self {
        MlpConfig {
            dim: 2,
            width: 256,
            depth: 3,
            embed: EmbedConfig::default(),
            num_classes: 0,
        }
    }
}

/// A conditioned MLP: `(x [N, dim], c [N], y) → [N, out_dim]`.
#[derive(Clone, Debug)]
pub struct Mlp {
    dim: usize,
    embed: TimeEmbedding,
    embed_proj: Linear,
    label: Option<Embedding>,
    num_classes: usize,
    input: Linear,
    hidden: Vec<Linear>,
    out: Linear,
}

impl Mlp {
    /// A score network: the output has the data dimension `cfg.dim`.
    pub fn new(cfg: &MlpConfig, vb: VarBuilder) -> Result<Self> {
        Self::new_with_out(cfg, cfg.dim, vb)
    }

    /// The same network with `out_dim` outputs (a classifier's logits).
    pub fn new_with_out(cfg: &MlpConfig, out_dim: usize, vb: VarBuilder) -> Result<Self> {
        if cfg.dim == 0 || cfg.width == 0 || cfg.depth == 0 || out_dim == 0 {
            candle_core::bail!(
                "mlp: dim, width, depth and the output dimension must be positive, got {cfg:?} with {out_dim} outputs"
            );
        }
        let embed = TimeEmbedding::new(&cfg.embed, vb.device())?;
        let e = embed.dim();
        let embed_proj = candle_nn::linear(e, e, vb.pp("embed").pp("proj"))?;
        let label = if cfg.num_classes > 0 {
            Some(candle_nn::embedding(
                cfg.num_classes + 1,
                e,
                vb.pp("label"),
            )?)
        } else {
            None
        };
        let input = candle_nn::linear(cfg.dim + e, cfg.width, vb.pp("in"))?;
        let hidden = (1..cfg.depth)
            .map(|i| candle_nn::linear(cfg.width, cfg.width, vb.pp(format!("hidden.{i}"))))
            .collect::<Result<Vec<_>>>()?;
        let out = candle_nn::linear(cfg.width, out_dim, vb.pp("out"))?;
        Ok(Mlp {
            dim: cfg.dim,
            embed,
            embed_proj,
            label,
            num_classes: cfg.num_classes,
            input,
            hidden,
            out,
        })
    }
}

impl Mlp {
    /// The output layer applied to [`features`](Self::features).
    pub fn output(&self, features: &Tensor) -> Result<Tensor> {
        self.out.forward(features)
    }

    /// The last hidden layer's activations `[N, width]` (what the output layer reads):
    /// a classifier's features.
    pub fn features(&self, x: &Tensor, c: &Tensor, y: Option<&Tensor>) -> Result<Tensor> {
        let (n, d) = x.dims2()?;
        if d != self.dim {
            candle_core::bail!(
                "mlp: expected x of shape [N, {}], got {:?}",
                self.dim,
                x.dims()
            );
        }
        if c.dims() != [n] {
            candle_core::bail!("mlp: expected c of shape [{n}], got {:?}", c.dims());
        }
        let mut temb = linear_silu(&self.embed_proj, &self.embed.forward(c)?)?;
        match &self.label {
            Some(label) => {
                let y = labels_or_null(y, n, self.num_classes, x.device())?;
                temb = (temb + label.forward(&y)?)?;
            }
            None if y.is_some() => {
                candle_core::bail!("mlp: labels given to an unconditional network")
            }
            None => {}
        }
        let mut h = linear_silu(&self.input, &Tensor::cat(&[x, &temb], 1)?)?;
        for layer in &self.hidden {
            h = linear_silu(layer, &h)?;
        }
        Ok(h)
    }
}

impl Network for Mlp {
    /// `x [N, dim]`, `c [N]`, `y [N]` u32 or `None` → `[N, out_dim]`. Labels given to an
    /// unconditional network are an error.
    fn forward(&self, x: &Tensor, c: &Tensor, y: Option<&Tensor>) -> Result<Tensor> {
        self.output(&self.features(x, c, y)?)
    }
}

/// `SiLU(layer(x))` for `x [N, in]`: on the CPU in f32 the bias and the activation are
/// one fused pass forward and one backward (candle's own SiLU backward takes nine
/// passes over the activations); elsewhere plain candle ops. Under
/// `CANDLE_GRAD_DO_NOT_DETACH` the backward pass uses differentiable ops instead, so
/// second-order gradients stay right.
fn linear_silu(layer: &Linear, x: &Tensor) -> Result<Tensor> {
    match layer.bias() {
        Some(b) if x.device().is_cpu() && x.dtype() == DType::F32 && x.rank() == 2 => {
            let z = x.matmul(&layer.weight().t()?)?;
            z.apply_op2(b, BiasSilu)
        }
        _ => layer.forward(x)?.silu(),
    }
}

/// The contiguous `[n, w]` f32 data of `z` and `[w]` data of `b`.
fn rows_and_bias<'a>(
    op: &str,
    z: &'a CpuStorage,
    lz: &Layout,
    b: &'a CpuStorage,
    lb: &Layout,
) -> Result<(&'a [f32], &'a [f32], usize)> {
    let (z, b) = (z.as_slice::<f32>()?, b.as_slice::<f32>()?);
    let (Some((z0, z1)), Some((b0, b1))) = (lz.contiguous_offsets(), lb.contiguous_offsets())
    else {
        candle_core::bail!("{op}: inputs must be contiguous");
    };
    let w = b1 - b0;
    let dims = lz.dims();
    if lb.dims() != [w] || dims.len() != 2 || dims[1] != w {
        candle_core::bail!("{op}: expected z [N, {w}] and b [{w}], got {dims:?}");
    }
    Ok((&z[z0..z1], &b[b0..b1], w))
}

/// `SiLU(z + b)`, `z [N, W]`, `b [W]`.
struct BiasSilu;

impl CustomOp2 for BiasSilu {
    fn name(&self) -> &'static str {
        "bias-silu"
    }

    fn cpu_fwd(
        &self,
        z: &CpuStorage,
        lz: &Layout,
        b: &CpuStorage,
        lb: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (z, b, w) = rows_and_bias(self.name(), z, lz, b, lb)?;
        let mut out = vec![0f32; z.len()];
        vectorised(
            #[inline(always)]
            || {
                for (orow, zrow) in out.chunks_exact_mut(w).zip(z.chunks_exact(w)) {
                    for ((o, &z), &b) in orow.iter_mut().zip(zrow).zip(b) {
                        let u = z + b;
                        *o = u * sigmoid(u);
                    }
                }
            },
        );
        Ok((CpuStorage::F32(out), lz.shape().clone()))
    }

    fn bwd(
        &self,
        z: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        if second_order() {
            let gz = bias_silu_grad_ops(z, b, grad)?;
            let gb = gz.sum(0)?;
            return Ok((Some(gz), Some(gb)));
        }
        let gz = grad.contiguous()?.apply_op3_no_bwd(z, b, &BiasSiluGrad)?;
        // candle's `sum(0)` reduces with a strided inner loop; summing whole rows
        // vectorises.
        let gb = gz.apply_op1_no_bwd(&ColumnSum)?;
        Ok((Some(gz), Some(gb)))
    }
}

/// Whether candle keeps the graph of gradients (`CANDLE_GRAD_DO_NOT_DETACH`, read as
/// candle reads it), so that a gradient may itself be differentiated.
pub(super) fn second_order() -> bool {
    std::env::var("CANDLE_GRAD_DO_NOT_DETACH").is_ok_and(|s| !s.is_empty() && s != "0")
}

/// [`BiasSiluGrad`] in differentiable candle ops, for second-order gradients.
fn bias_silu_grad_ops(z: &Tensor, b: &Tensor, g: &Tensor) -> Result<Tensor> {
    let u = z.broadcast_add(b)?;
    let s = (u.neg()?.exp()? + 1.0)?.recip()?;
    let d = (&s * ((&u * s.affine(-1.0, 1.0)?)? + 1.0)?)?;
    g * d
}

/// `g · SiLU'(z + b)` with `SiLU'(u) = σ(u)(1 + u(1 − σ(u)))`: the gradient of
/// [`BiasSilu`] with respect to `z`.
struct BiasSiluGrad;

impl CustomOp3 for BiasSiluGrad {
    fn name(&self) -> &'static str {
        "bias-silu-grad"
    }

    fn cpu_fwd(
        &self,
        g: &CpuStorage,
        lg: &Layout,
        z: &CpuStorage,
        lz: &Layout,
        b: &CpuStorage,
        lb: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (z, b, w) = rows_and_bias(self.name(), z, lz, b, lb)?;
        let g = g.as_slice::<f32>()?;
        let g = match lg.contiguous_offsets() {
            Some((g0, g1)) if lg.dims() == lz.dims() => &g[g0..g1],
            _ => candle_core::bail!("{}: the gradient must be contiguous [N, {w}]", self.name()),
        };
        let mut out = vec![0f32; z.len()];
        let rows = out
            .chunks_exact_mut(w)
            .zip(z.chunks_exact(w))
            .zip(g.chunks_exact(w));
        // Zeroed then overwritten: `extend` with these iterators does not vectorise.
        vectorised(
            #[inline(always)]
            || {
                for ((orow, zrow), grow) in rows {
                    for (((o, &z), &g), &b) in orow.iter_mut().zip(zrow).zip(grow).zip(b) {
                        let u = z + b;
                        let s = sigmoid(u);
                        *o = g * s * (1.0 + u * (1.0 - s));
                    }
                }
            },
        );
        Ok((CpuStorage::F32(out), lz.shape().clone()))
    }
}

/// The column sums `[W]` of a contiguous f32 `[N, W]`.
struct ColumnSum;

impl CustomOp1 for ColumnSum {
    fn name(&self) -> &'static str {
        "column-sum"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (Some((a, b)), &[_, w]) = (l.contiguous_offsets(), l.dims()) else {
            candle_core::bail!(
                "column-sum: expected a contiguous [N, W], got {:?}",
                l.dims()
            );
        };
        let mut out = vec![0f32; w];
        if w > 0 {
            for row in s.as_slice::<f32>()?[a..b].chunks_exact(w) {
                for (o, &x) in out.iter_mut().zip(row) {
                    *o += x;
                }
            }
        }
        Ok((CpuStorage::F32(out), Shape::from(w)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// The second-order path computes the fused kernel's values, and is itself
    /// differentiable: `d/dz Σ g·SiLU'(z)` matches a finite difference.
    #[test]
    fn bias_silu_grad_ops_matches_the_kernel() -> Result<()> {
        let dev = Device::Cpu;
        let z = Tensor::new(&[[-3f32, -0.5, 0.0], [0.7, 2.0, 9.0]], &dev)?;
        let b = Tensor::new(&[0.1f32, -0.2, 0.3], &dev)?;
        let g = Tensor::new(&[[1f32, -2.0, 0.5], [3.0, 1.0, -1.0]], &dev)?;
        let fused = g.apply_op3_no_bwd(&z, &b, &BiasSiluGrad)?;
        let ops = bias_silu_grad_ops(&z, &b, &g)?;
        let diff = (fused - &ops)?
            .abs()?
            .flatten_all()?
            .max(0)?
            .to_scalar::<f32>()?;
        assert!(diff < 1e-6, "{diff}");

        let zv = candle_core::Var::from_tensor(&z)?;
        let grads = bias_silu_grad_ops(zv.as_tensor(), &b, &g)?
            .sum_all()?
            .backward()?;
        let analytic = grads.get(&zv).unwrap().to_vec2::<f32>()?;
        let eps = 1e-2;
        for i in 0..2 {
            for j in 0..3 {
                let bump = |h: f32| -> Result<f32> {
                    let mut v = z.to_vec2::<f32>()?;
                    v[i][j] += h;
                    let zh = Tensor::new(v, &dev)?;
                    bias_silu_grad_ops(&zh, &b, &g)?
                        .sum_all()?
                        .to_scalar::<f32>()
                };
                let numeric = (bump(eps)? - bump(-eps)?) / (2.0 * eps);
                let a = analytic[i][j];
                assert!(
                    (a - numeric).abs() < 1e-2 * a.abs().max(1.0),
                    "{i},{j}: {a} {numeric}"
                );
            }
        }
        Ok(())
    }

    #[test]
    fn column_sum() -> Result<()> {
        let t = Tensor::new(&[[1f32, 2.0, 3.0], [10.0, 20.0, 30.0]], &Device::Cpu)?;
        let s = t.apply_op1_no_bwd(&ColumnSum)?;
        assert_eq!(s.to_vec1::<f32>()?, [11.0, 22.0, 33.0]);
        Ok(())
    }
}
