//! DDPM ancestral sampling, on any linear SDE.
//!
//! Ho et al. (2020), "Denoising Diffusion Probabilistic Models", Algorithm 2 with the
//! posterior mean of eq. 7 and the two variances of §3.2. Between grid times `s < t`
//! the kernel `x_t = a_{t|s}·x_s + b_{t|s}·z` plays the part of one DDPM step
//! (`ᾱ = a²`, `α_t = a_{t|s}²`, `β_t = b_{t|s}²` on a VP SDE):
//!
//! ```text
//! for i = 0 .. steps−1, t = ts[i] → s = ts[i+1]:
//!     x̂_0 = x_0(x, t)
//!     μ   = (a_{t|s}·b_s²/b_t²)·x + (a_s·b_{t|s}²/b_t²)·x̂_0       (eq. 7)
//!     σ²  = b_{t|s}²                  (Beta, DDPM's default)
//!         | b_{t|s}²·b_s²/b_t²        (BetaTilde, the posterior variance β̃)
//!     x ← μ + σ·z,  z ~ N(0, I);   on the last step x ← μ
//! ```
//!
//! One model evaluation and one fused pass per step; the last step draws no noise.
//! [`ddpm_coefficients`] gives the same coefficients in the paper's `ᾱ` notation.

use std::str::FromStr;

use crate::error::{invalid, Error, Result};
use crate::model::prediction::Prediction;
use crate::sampling::guidance::Guide;
use crate::sampling::run::Run;
use crate::sde::{GaussianKernel, Transition};

/// DDPM's variance choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DdpmVariance {
    /// σ² = β.
    #[default]
    Beta,
    /// σ² = β̃, the posterior variance.
    BetaTilde,
}

impl DdpmVariance {
    /// The name: `beta` or `beta-tilde`.
    pub fn name(self) -> &'static str {
        match self {
            DdpmVariance::Beta => "beta",
            DdpmVariance::BetaTilde => "beta-tilde",
        }
    }
}

impl FromStr for DdpmVariance {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "beta" => Ok(DdpmVariance::Beta),
            "beta-tilde" => Ok(DdpmVariance::BetaTilde),
            _ => Err(invalid!(
                "unknown DDPM variance `{s}`; valid: beta, beta-tilde"
            )),
        }
    }
}

/// One DDPM step `x_s = c_x·x_t + c_x0·x̂_0 + sigma·z` (Ho et al. 2020, eq. 7).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DdpmCoefficients {
    /// `√α_t·(1 − ᾱ_s)/(1 − ᾱ_t)`.
    pub c_x: f64,
    /// `√ᾱ_s·β_t/(1 − ᾱ_t)`.
    pub c_x0: f64,
    /// `√β_t` or `√β̃_t`.
    pub sigma: f64,
}

/// The DDPM step from `ᾱ_t` to the earlier `ᾱ_s > ᾱ_t`, in the paper's notation:
/// `α_t = ᾱ_t/ᾱ_s`, `β_t = 1 − α_t`, `β̃_t = (1 − ᾱ_s)/(1 − ᾱ_t)·β_t`.
///
/// ```
/// use sbdm_runtime::sampling::{ddpm_coefficients, DdpmVariance};
/// let c = ddpm_coefficients(0.5, 0.6, DdpmVariance::BetaTilde);
/// // β = 1 − 0.5/0.6 = 1/6; β̃ = (0.4/0.5)·β.
/// assert!((c.sigma.powi(2) - 0.8 / 6.0).abs() < 1e-15);
/// ```
pub fn ddpm_coefficients(
    alpha_bar_t: f64,
    alpha_bar_s: f64,
    variance: DdpmVariance,
) -> DdpmCoefficients {
    let alpha_t = alpha_bar_t / alpha_bar_s;
    let beta_t = 1.0 - alpha_t;
    let beta_tilde = (1.0 - alpha_bar_s) / (1.0 - alpha_bar_t) * beta_t;
    DdpmCoefficients {
        c_x: alpha_t.sqrt() * (1.0 - alpha_bar_s) / (1.0 - alpha_bar_t),
        c_x0: alpha_bar_s.sqrt() * beta_t / (1.0 - alpha_bar_t),
        sigma: match variance {
            DdpmVariance::Beta => beta_t.sqrt(),
            DdpmVariance::BetaTilde => beta_tilde.sqrt(),
        },
    }
}

/// Samples over the decreasing grid `ts`.
pub(crate) fn sample<S: GaussianKernel + ?Sized, G: Guide + ?Sized>(
    run: &mut Run<'_, S, G>,
    ts: &[f64],
    variance: DdpmVariance,
) -> Result<()> {
    run.steps(ts, |run, step| {
        let q = Transition::between(run.sde, step.s, step.t);
        let x0 = run.predict(&run.x, step.t, Prediction::X0)?;
        let mean = q.mean_x * &run.x + q.mean_x0 * x0; // eq. 7
        if step.is_last() {
            return run.x.assign(mean);
        }
        let sigma = match variance {
            DdpmVariance::Beta => q.std_ts(),
            DdpmVariance::BetaTilde => q.std,
        };
        let z = run.noise()?;
        run.x.assign(mean + sigma * &z)
    })
}
