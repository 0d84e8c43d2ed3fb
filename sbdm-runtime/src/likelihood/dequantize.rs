//! Bits per dimension of quantised data (images) under a continuous density.
//!
//! Data on `L` levels `k ∈ {0, …, L−1}`, stored scaled to `[low, high]` as
//! `x = low + (high − low)·k/(L − 1)` (8-bit images in `[−1, 1]`: `2k/255 − 1`), is
//! dequantised uniformly into its cell, `x' = low + (high − low)·(k + u)/L` with
//! `u ~ U(0, 1)^d`. Each cell has width `w = (high − low)/L` in every dimension, so
//! (Theis et al. 2016; Ho et al. 2019) the discrete model's probability is bounded by
//! `log P(k) ≥ E_u[log p(x')] + d·log w`, and in bits per dimension
//!
//! ```text
//! bits/dim = −log p(x')/(d·ln 2) − log₂ w = −log p(x')/(d·ln 2) + log₂ L − log₂(high − low)
//! ```
//!
//! For 256 levels scaled to `[−1, 1]` the offset is `8 − 1 = 7` bits (score_sde's
//! `7 − inverse_scaler(−1)`); for data in `[0, 1]` it is 8. Without dequantisation a
//! continuous density on discrete points has no such bound, and the offset alone
//! separates reported figures by a whole bit per dimension.

use rand::Rng;

use crate::error::{invalid, Result};
use crate::sampling::noise::stream;

/// Seeds the dequantisation noise apart from other draws that share the user's seed.
const KEY: u64 = 0x6465_7175_616e_7421;

/// Uniform dequantisation of data on `levels` evenly spaced values spanning
/// `[low, high]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dequantization {
    levels: u32,
    low: f64,
    high: f64,
}

impl Dequantization {
    /// `levels ≥ 2` values from `low` to `high > low`.
    pub fn new(levels: u32, low: f64, high: f64) -> Result<Dequantization> {
        if levels < 2 {
            return Err(invalid!(
                "dequantisation needs at least 2 levels, got {levels}"
            ));
        }
        if !(low.is_finite() && high.is_finite() && low < high) {
            return Err(invalid!(
                "the data range must be finite with low < high, got [{low}, {high}]"
            ));
        }
        Ok(Dequantization { levels, low, high })
    }

    /// 8-bit images scaled to `[−1, 1]`, as the networks here are trained.
    pub fn images() -> Dequantization {
        Dequantization {
            levels: 256,
            low: -1.0,
            high: 1.0,
        }
    }

    /// The number of levels.
    pub fn levels(&self) -> u32 {
        self.levels
    }

    /// `log₂ L − log₂(high − low)`: the bits per dimension added to the continuous
    /// density's (7 for 8-bit data in `[−1, 1]`).
    pub fn offset_bits(&self) -> f64 {
        f64::from(self.levels).log2() - (self.high - self.low).log2()
    }

    /// Bits per dimension of a point of dimension `d` whose dequantised value has
    /// log-density `log_p` (nats).
    pub fn bits_per_dim(&self, log_p: f64, d: usize) -> f64 {
        super::bits_per_dim(-log_p, d) + self.offset_bits()
    }

    /// The level `k` of the value `x` (the nearest, clamped to the range).
    pub fn level(&self, x: f64) -> u32 {
        let k = ((x - self.low) / (self.high - self.low) * f64::from(self.levels - 1)).round();
        k.clamp(0.0, f64::from(self.levels - 1)) as u32
    }

    /// Dequantises the points `x` (`n × d`, row-major; samples `first .. first + n`) in
    /// place: each value goes to its level's cell at a uniform position drawn from
    /// sample `i`'s own stream of `seed`, so a sample's draw does not depend on its batch.
    pub fn apply(&self, x: &mut [f64], d: usize, first: usize, seed: u64) {
        let width = (self.high - self.low) / f64::from(self.levels);
        for (i, row) in x.chunks_exact_mut(d.max(1)).enumerate() {
            let mut rng = stream(seed ^ KEY, first as u64, i);
            for v in row {
                let u: f64 = rng.random();
                *v = self.low + width * (f64::from(self.level(*v)) + u);
            }
        }
    }
}
