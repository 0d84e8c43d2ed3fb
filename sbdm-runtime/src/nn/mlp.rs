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

use candle_core::{Result, Tensor};
use candle_nn::{Embedding, Linear, Module, VarBuilder};
use serde::{Deserialize, Serialize};

use super::embed::{labels_or_null, EmbedConfig, TimeEmbedding};
use super::linear_silu::linear_silu;
use super::Network;

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
