//! Embeddings of the noise conditioning `c = ln(σ)/4`.
//!
//! Two classic choices, both fixed (no trainable parameters):
//!
//! * [`EmbedConfig::Fourier`]: Gaussian Fourier features (Tancik et al. 2020, used by
//!   Song et al.'s NCSN++): `[sin(2π W c), cos(2π W c)]` with `W ~ N(0, scale²)` drawn
//!   once from a fixed seed, so the same configuration always gives the same features.
//! * [`EmbedConfig::Sinusoidal`]: the DDPM / Transformer positional embedding of
//!   `1000·c`: `[sin(1000 c f_i), cos(1000 c f_i)]` with `f_i = max_period^(−i/half)`.
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use sbdm_runtime::nn::{EmbedConfig, TimeEmbedding};
//! # fn main() -> candle_core::Result<()> {
//! let emb = TimeEmbedding::new(&EmbedConfig::default(), &Device::Cpu)?;
//! let c = Tensor::new(&[-1f32, 0.0, 1.5], &Device::Cpu)?; // [N]
//! assert_eq!(emb.forward(&c)?.dims(), &[3, 64]); // [N, dim]
//! # Ok(()) }
//! ```

use candle_core::{DType, Device, Result, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

/// The fixed seed of the Fourier features' frequencies: the features are part of the
/// architecture, not of the weights, so they never depend on a training seed.
const FOURIER_SEED: u64 = 0x5bd1;

/// How the noise conditioning is embedded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum EmbedConfig {
    /// Gaussian Fourier features with `dim/2` frequencies `W ~ N(0, scale²)`.
    Fourier {
        /// The embedding dimension (even).
        dim: usize,
        /// The standard deviation of the frequencies.
        scale: f64,
    },
    /// The DDPM sinusoidal embedding of `1000·c`.
    Sinusoidal {
        /// The embedding dimension (even).
        dim: usize,
        /// The longest period (10000 in DDPM).
        max_period: f64,
    },
}

impl Default for EmbedConfig {
    fn default() -> Self {
        EmbedConfig::Fourier {
            dim: 64,
            scale: 16.0,
        }
    }
}

impl EmbedConfig {
    /// The embedding dimension.
    pub fn dim(&self) -> usize {
        match self {
            EmbedConfig::Fourier { dim, .. } | EmbedConfig::Sinusoidal { dim, .. } => *dim,
        }
    }
}

/// A fixed embedding `c [N] → [N, dim]` of the noise conditioning.
#[derive(Clone, Debug)]
pub struct TimeEmbedding {
    /// The angular frequencies `ω_i`, shape `[1, dim/2]`: the embedding is
    /// `[sin(ω c), cos(ω c)]`.
    omega: Tensor,
    dim: usize,
}

impl TimeEmbedding {
    /// Builds the embedding; fails if `dim` is zero or odd or a parameter is not finite
    /// and positive.
    pub fn new(cfg: &EmbedConfig, device: &Device) -> Result<Self> {
        let dim = cfg.dim();
        if dim == 0 || dim % 2 != 0 {
            candle_core::bail!("time embedding: dim must be even and positive, got {dim}");
        }
        let half = dim / 2;
        let omega: Vec<f32> = match *cfg {
            EmbedConfig::Fourier { scale, .. } => {
                if !(scale.is_finite() && scale > 0.0) {
                    candle_core::bail!("Fourier embedding: scale must be positive, got {scale}");
                }
                let mut rng = ChaCha8Rng::seed_from_u64(FOURIER_SEED);
                (0..half)
                    .map(|_| {
                        let w: f64 = StandardNormal.sample(&mut rng);
                        (2.0 * std::f64::consts::PI * scale * w) as f32
                    })
                    .collect()
            }
            EmbedConfig::Sinusoidal { max_period, .. } => {
                if !(max_period.is_finite() && max_period > 0.0) {
                    candle_core::bail!(
                        "sinusoidal embedding: max_period must be positive, got {max_period}"
                    );
                }
                (0..half)
                    .map(|i| (1000.0 * (-max_period.ln() * i as f64 / half as f64).exp()) as f32)
                    .collect()
            }
        };
        let omega = Tensor::from_vec(omega, (1, half), device)?;
        Ok(TimeEmbedding { omega, dim })
    }

    /// The embedding dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The angular frequencies `ω`, shape `[dim/2]`: the embedding is
    /// `[sin(ω c), cos(ω c)]` (for Fourier features `ω = 2π W`).
    pub fn frequencies(&self) -> Result<Tensor> {
        self.omega.squeeze(0)
    }

    /// Embeds `c` `[N]` (any float dtype) as `[N, dim]` f32.
    pub fn forward(&self, c: &Tensor) -> Result<Tensor> {
        let n = c.dims1()?;
        let arg = c
            .to_dtype(DType::F32)?
            .reshape((n, 1))?
            .broadcast_mul(&self.omega)?;
        Tensor::cat(&[arg.sin()?, arg.cos()?], 1)
    }
}

/// The class indices to embed: `y` (checked to be `[n]`), or the null class
/// `num_classes` for every row when `y` is `None`.
pub(crate) fn labels_or_null(
    y: Option<&Tensor>,
    n: usize,
    num_classes: usize,
    device: &Device,
) -> Result<Tensor> {
    match y {
        Some(y) => {
            if y.dims() != [n] {
                candle_core::bail!("labels must have shape [{n}], got {:?}", y.dims());
            }
            Ok(y.clone())
        }
        None => Tensor::full(num_classes as u32, n, device),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fourier_is_fixed_and_scaled() -> Result<()> {
        let cfg = EmbedConfig::Fourier {
            dim: 512,
            scale: 3.0,
        };
        let a = TimeEmbedding::new(&cfg, &Device::Cpu)?.frequencies()?;
        let b = TimeEmbedding::new(&cfg, &Device::Cpu)?.frequencies()?;
        let (a, b) = (a.to_vec1::<f32>()?, b.to_vec1::<f32>()?);
        assert_eq!(a, b);
        // ω = 2π·W with W ~ N(0, 9): the sample std of 256 draws is within 20% of 6π.
        let n = a.len() as f64;
        let mean = a.iter().map(|&w| w as f64).sum::<f64>() / n;
        let var = a.iter().map(|&w| (w as f64 - mean).powi(2)).sum::<f64>() / n;
        let target = 2.0 * std::f64::consts::PI * 3.0;
        assert!(
            (var.sqrt() / target - 1.0).abs() < 0.2,
            "std {}",
            var.sqrt()
        );
        Ok(())
    }

    #[test]
    fn sinusoidal_frequencies() -> Result<()> {
        let cfg = EmbedConfig::Sinusoidal {
            dim: 8,
            max_period: 10000.0,
        };
        let f = TimeEmbedding::new(&cfg, &Device::Cpu)?
            .frequencies()?
            .to_vec1::<f32>()?;
        // f_i = 1000 · 10000^(−i/4), i = 0..4.
        let want = [1000.0, 100.0, 10.0, 1.0];
        for (g, w) in f.iter().zip(want) {
            assert!((g / w - 1.0).abs() < 1e-5, "{f:?}");
        }
        Ok(())
    }

    #[test]
    fn rejects_odd_dim() {
        let cfg = EmbedConfig::Fourier { dim: 3, scale: 1.0 };
        assert!(TimeEmbedding::new(&cfg, &Device::Cpu).is_err());
    }

    #[test]
    fn serde_is_tagged() {
        let s = serde_json::to_string(&EmbedConfig::default()).unwrap();
        assert_eq!(s, r#"{"kind":"fourier","dim":64,"scale":16.0}"#);
        let back: EmbedConfig = serde_json::from_str(&s).unwrap();
        assert_eq!(back, EmbedConfig::default());
    }
}
