//! The resolution-dependent time shift of rectified-flow image models.
//!
//! Larger images keep more signal at the same noise level (Esser et al. 2024, SD3 §5.3.2),
//! so their sampling is shifted towards noise by more: SD3 scales the shift with the
//! resolution, `s = √(m/n)` for `m` pixels against a base of `n`; Flux makes its logarithm
//! `μ = ln s` linear in the number of image tokens (latent patches), from `μ = 0.5` at
//! 256 tokens to `1.15` at 4096. Either way the shift itself is the time shift of any
//! declared SDE ([`super::DynSde::time_shifted`], `t → s·t/(1 + (s − 1)·t)`) with
//! `s = e^μ`.

use crate::error::{invalid, Result};

/// The linear rule `μ(tokens)` through two points (Flux's by default).
///
/// ```
/// use sbdm_runtime::sde::resolution_shift::{pixel_ratio_shift, ResolutionShift};
/// let flux = ResolutionShift::default();
/// assert_eq!(flux.mu(256.0)?, 0.5);
/// assert!((flux.mu(4096.0)? - 1.15).abs() < 1e-15);
/// assert!((flux.shift(1024.0)? - 0.63_f64.exp()).abs() < 1e-12);
/// assert!(flux.mu(0.0).is_err());
/// assert_eq!(pixel_ratio_shift(1024.0 * 1024.0, 256.0 * 256.0)?, 4.0);
/// # Ok::<(), sbdm_runtime::error::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ResolutionShift {
    /// Token count of the first point.
    pub base_tokens: f64,
    /// Token count of the second point.
    pub max_tokens: f64,
    /// `μ` at `base_tokens`.
    pub base_mu: f64,
    /// `μ` at `max_tokens`.
    pub max_mu: f64,
}

impl Default for ResolutionShift {
    /// Flux's rule: `μ = 0.5` at 256 tokens, `1.15` at 4096.
    fn default() -> Self {
        ResolutionShift {
            base_tokens: 256.0,
            max_tokens: 4096.0,
            base_mu: 0.5,
            max_mu: 1.15,
        }
    }
}

impl ResolutionShift {
    /// `μ` for an image of `tokens` tokens: the line through the two points (extended
    /// beyond them).
    ///
    /// # Errors
    /// A token count that is not finite and positive, or a rule whose two token counts
    /// coincide or are not finite.
    pub fn mu(&self, tokens: f64) -> Result<f64> {
        if !(tokens.is_finite() && tokens > 0.0) {
            return Err(invalid!(
                "the token count must be finite and > 0, got {tokens}"
            ));
        }
        let span = self.max_tokens - self.base_tokens;
        if !(span.is_finite() && span != 0.0) {
            return Err(invalid!(
                "a resolution shift needs two distinct finite token counts, got {} and {}",
                self.base_tokens,
                self.max_tokens
            ));
        }
        let slope = (self.max_mu - self.base_mu) / span;
        Ok(self.base_mu + slope * (tokens - self.base_tokens))
    }

    /// The shift `s = e^μ` for an image of `tokens` tokens.
    ///
    /// # Errors
    /// As [`mu`](Self::mu).
    pub fn shift(&self, tokens: f64) -> Result<f64> {
        self.mu(tokens).map(f64::exp)
    }
}

/// SD3's resolution shift `s = √(pixels/base_pixels)` (the paper's base is 256²; at 1024²
/// the rule gives 4, and the paper settled on 3 by preference).
///
/// # Errors
/// A pixel count that is not finite and positive.
pub fn pixel_ratio_shift(pixels: f64, base_pixels: f64) -> Result<f64> {
    for (v, what) in [(pixels, "pixel count"), (base_pixels, "base pixel count")] {
        if !(v.is_finite() && v > 0.0) {
            return Err(invalid!("the {what} must be finite and > 0, got {v}"));
        }
    }
    Ok((pixels / base_pixels).sqrt())
}
