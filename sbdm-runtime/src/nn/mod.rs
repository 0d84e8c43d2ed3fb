//! Score networks and classifiers on candle-nn.
//!
//! A [`Network`] maps a batch `x` (already input-scaled by the model wrapper), a noise
//! conditioning `c` and optional class labels to an output of `x`'s shape (score
//! networks) or to logits (classifiers). The conditioning is `c = ln(σ)/4 = −λ/4` with
//! `σ = b/a` and `λ` the half log-SNR (EDM's `c_noise`, for every SDE), so one network
//! design serves VP, VE, EDM and user-declared SDEs alike: `c` lies in about `[−2, 2]`.
//!
//! Constructors follow candle-nn: `fn new(cfg: &Config, vb: VarBuilder) -> Result<Self>`;
//! configs implement `Default` and serialise to JSON (checkpoint metadata).
//! Weights are created through [`seeded_varbuilder`], so they are a pure function of the
//! seed and each variable's name (candle's own CPU RNG cannot be seeded).

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

pub mod classifier;
mod conv;
pub mod embed;
pub mod group_norm;
pub mod init;
mod linear_silu;
pub mod mlp;
mod size;
mod strided;
pub mod unet;

pub use classifier::{Classifier, ClassifierConfig};
pub use embed::{EmbedConfig, TimeEmbedding};
pub use group_norm::FusedGroupNorm;
pub use init::seeded_varbuilder;
pub use mlp::{Mlp, MlpConfig};
pub use unet::{UNet, UNetConfig};

/// A conditioned network: `x` `[N, ...]` f32, `c` `[N]` f32 noise conditioning, `y`
/// optional class labels `[N]` u32 (the index `num_classes` is the "no label" class,
/// for classifier-free guidance; `None` means no label for every row).
pub trait Network: Send + Sync {
    /// The network output at `(x, c, y)`.
    fn forward(&self, x: &Tensor, c: &Tensor, y: Option<&Tensor>) -> Result<Tensor>;
}

impl<N: Network + ?Sized> Network for Box<N> {
    fn forward(&self, x: &Tensor, c: &Tensor, y: Option<&Tensor>) -> Result<Tensor> {
        (**self).forward(x, c, y)
    }
}

/// Which score network, with its configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum NetConfig {
    /// An MLP for low-dimensional data.
    Mlp(MlpConfig),
    /// A small U-Net for images.
    Unet(UNetConfig),
}

impl NetConfig {
    /// The CLI names of the networks.
    pub const NAMES: [&'static str; 2] = ["mlp", "unet"];

    /// The CLI name.
    pub fn name(&self) -> &'static str {
        match self {
            NetConfig::Mlp(_) => "mlp",
            NetConfig::Unet(_) => "unet",
        }
    }

    /// The shape of one data sample: `[dim]` or `[channels, size, size]`.
    pub fn sample_shape(&self) -> Vec<usize> {
        match self {
            NetConfig::Mlp(c) => vec![c.dim],
            NetConfig::Unet(c) => vec![c.channels, c.image_size, c.image_size],
        }
    }

    /// The number of classes the network is conditioned on (0: unconditional).
    pub fn num_classes(&self) -> usize {
        match self {
            NetConfig::Mlp(c) => c.num_classes,
            NetConfig::Unet(c) => c.num_classes,
        }
    }

    /// Builds the network, creating its variables through `vb`.
    pub fn build(&self, vb: VarBuilder) -> Result<Box<dyn Network>> {
        Ok(match self {
            NetConfig::Mlp(c) => Box::new(Mlp::new(c, vb)?),
            NetConfig::Unet(c) => Box::new(UNet::new(c, vb)?),
        })
    }
}

/// Whether candle keeps the graph of gradients (`CANDLE_GRAD_DO_NOT_DETACH`, read as
/// candle reads it), so that a gradient may itself be differentiated: the fused layers'
/// hand-written backward passes are not differentiable, so they give way to candle's ops.
pub(crate) fn second_order() -> bool {
    std::env::var("CANDLE_GRAD_DO_NOT_DETACH").is_ok_and(|s| !s.is_empty() && s != "0")
}

/// Seeded standard normal data for the layers' tests (candle's own `randn` cannot be
/// seeded).
#[cfg(test)]
pub(crate) fn seeded_randn(seed: u64, shape: &[usize]) -> Result<Tensor> {
    use rand::SeedableRng;
    use rand_distr::{Distribution, StandardNormal};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let n = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| StandardNormal.sample(&mut rng)).collect();
    Tensor::from_vec(v, shape, &candle_core::Device::Cpu)
}
