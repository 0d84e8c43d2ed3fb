//! A noise-conditioned classifier `p(y | x, σ)` for classifier guidance.
//!
//! * MLP data: an [`Mlp`] with `num_classes` outputs.
//! * Images: the U-Net's encoder (`conv_in`, down path, middle block; the same variable
//!   names as in [`UNet`](super::UNet)), then GroupNorm, SiLU, a global average pool
//!   over the pixels and a linear layer `head.linear` to the logits.
//!
//! The network is not conditioned on labels (the configuration's `num_classes` inside
//! `net` is ignored). Nothing is detached, so `∇_x log softmax(logits)` flows back to a
//! `Var` input.
//!
//! ```
//! use candle_core::{DType, Device, Tensor};
//! use candle_nn::VarMap;
//! use sbdm_runtime::nn::{seeded_varbuilder, Classifier, ClassifierConfig};
//! # fn main() -> candle_core::Result<()> {
//! let varmap = VarMap::new();
//! let vb = seeded_varbuilder(&varmap, 0, DType::F32, &Device::Cpu);
//! let clf = Classifier::new(&ClassifierConfig::default(), vb)?; // MLP, 8 classes
//! let x = Tensor::zeros((5, 2), DType::F32, &Device::Cpu)?;
//! let c = Tensor::zeros(5, DType::F32, &Device::Cpu)?;
//! assert_eq!(clf.forward(&x, &c)?.dims(), &[5, 8]); // [N, num_classes]
//! # Ok(()) }
//! ```

use candle_core::{Result, Tensor};
use candle_nn::{GroupNorm, Linear, Module, VarBuilder};
use serde::{Deserialize, Serialize};

use super::mlp::{Mlp, MlpConfig};
use super::unet::Encoder;
use super::{NetConfig, Network};

/// The configuration of a [`Classifier`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassifierConfig {
    /// The backbone; its own `num_classes` (label conditioning) is ignored.
    pub net: NetConfig,
    /// The number of classes (logits).
    pub num_classes: usize,
}

impl Default for ClassifierConfig {
    fn default() -> Self {
        ClassifierConfig {
            net: NetConfig::Mlp(MlpConfig::default()),
            num_classes: 8,
        }
    }
}

#[derive(Clone, Debug)]
enum Backbone {
    Mlp(Mlp),
    Unet(Box<UnetHead>),
}

/// The U-Net classifier: the encoder and its pooling head.
#[derive(Clone, Debug)]
struct UnetHead {
    encoder: Encoder,
    norm: GroupNorm,
    head: Linear,
}

/// A noise-conditioned classifier: `(x, c [N]) → logits [N, num_classes]`.
#[derive(Clone, Debug)]
pub struct Classifier {
    backbone: Backbone,
    num_classes: usize,
}

impl Classifier {
    /// Builds the classifier; fails if `num_classes` is zero or the backbone's
    /// configuration is invalid.
    pub fn new(cfg: &ClassifierConfig, vb: VarBuilder) -> Result<Self> {
        if cfg.num_classes == 0 {
            candle_core::bail!("classifier: num_classes must be positive");
        }
        let backbone = match &cfg.net {
            NetConfig::Mlp(m) => {
                let m = MlpConfig {
                    num_classes: 0,
                    ..m.clone()
                };
                Backbone::Mlp(Mlp::new_with_out(&m, cfg.num_classes, vb)?)
            }
            NetConfig::Unet(u) => {
                let mut u = u.clone();
                u.num_classes = 0;
                let encoder = Encoder::new(&u, vb.clone())?;
                let ch = u.bottleneck_channels();
                Backbone::Unet(Box::new(UnetHead {
                    encoder,
                    norm: candle_nn::group_norm(u.groups, ch, 1e-5, vb.pp("head.norm"))?,
                    head: candle_nn::linear(ch, cfg.num_classes, vb.pp("head.linear"))?,
                }))
            }
        };
        Ok(Classifier {
            backbone,
            num_classes: cfg.num_classes,
        })
    }

    /// The number of classes.
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// The logits `[N, num_classes]` of `x` (`[N, dim]` or `[N, C, H, W]`) at noise
    /// conditioning `c` `[N]`.
    pub fn forward(&self, x: &Tensor, c: &Tensor) -> Result<Tensor> {
        let features = self.features(x, c)?;
        match &self.backbone {
            Backbone::Mlp(m) => m.output(&features),
            Backbone::Unet(u) => u.head.forward(&features),
        }
    }

    /// The features the logits are a linear function of, `[N, F]`: the MLP's last hidden
    /// layer, or the U-Net encoder's pooled bottleneck (EGSDE's domain-specific features).
    pub fn features(&self, x: &Tensor, c: &Tensor) -> Result<Tensor> {
        match &self.backbone {
            Backbone::Mlp(m) => m.features(x, c, None),
            Backbone::Unet(u) => {
                let h = u.encoder.forward(x, c, None)?.h;
                u.norm.forward(&h)?.silu()?.mean((2, 3))
            }
        }
    }
}

impl Network for Classifier {
    /// The logits (see [`Classifier::forward`]); labels are an error.
    fn forward(&self, x: &Tensor, c: &Tensor, y: Option<&Tensor>) -> Result<Tensor> {
        if y.is_some() {
            candle_core::bail!("classifier: a classifier takes no labels");
        }
        Classifier::forward(self, x, c)
    }
}
