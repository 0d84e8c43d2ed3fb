//! DDIM(η), in continuous time on any linear SDE.
//!
//! Song, Meng & Ermon (2021), "Denoising Diffusion Implicit Models", eq. 12 and 16, with
//! `√ᾱ → a(t)` and `√(1 − ᾱ) → b(t)`. From `t` down to `s < t`:
//!
//! ```text
//! ε̂   = eps(x, t),   x̂_0 = (x − b_t·ε̂)/a_t
//! σ   = η·(b_s/b_t)·b_{t|s}         (VP: η·√((1−ᾱ_s)/(1−ᾱ_t))·√(1 − ᾱ_t/ᾱ_s))
//! x_s = a_s·x̂_0 + √(b_s² − σ²)·ε̂ + σ·z
//!     = (a_s/a_t)·x + (√(b_s² − σ²) − a_s·b_t/a_t)·ε̂ + σ·z,   z ~ N(0, I)
//! ```
//!
//! `η = 0` is deterministic (no noise is drawn) and equals DPM-Solver-1; `η = 1` has the
//! DDPM posterior variance `β̃`. At `η = 0` the same step with `s > t` is DDIM inversion
//! (§4.3), `x_s = (a_s/a_t)·x + (b_s − a_s·b_t/a_t)·ε̂`: the kernel between `s` and `t`
//! enters only through `σ`, so it is computed only for `η > 0`. Noise is kept on every step, the last included. One model
//! evaluation and one fused pass per step. [`ddim_coefficients`] gives the same
//! coefficients in the paper's `ᾱ` notation.

use crate::error::Result;
use crate::model::prediction::Prediction;
use crate::sampling::guidance::Guide;
use crate::sampling::run::Run;
use crate::sde::{GaussianKernel, Transition};

/// One DDIM step `x_s = c_x·x_t + c_eps·ε̂ + sigma·z` (Song et al. 2021, eq. 12).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DdimCoefficients {
    /// `√(ᾱ_s/ᾱ_t)`.
    pub c_x: f64,
    /// `√(1 − ᾱ_s − σ²) − √ᾱ_s·√(1 − ᾱ_t)/√ᾱ_t`.
    pub c_eps: f64,
    /// `σ = η·√((1 − ᾱ_s)/(1 − ᾱ_t))·√(1 − ᾱ_t/ᾱ_s)` (eq. 16).
    pub sigma: f64,
}

/// The DDIM(η) step from `ᾱ_t` to the earlier `ᾱ_s > ᾱ_t`, in the paper's notation.
///
/// ```
/// use sbdm_runtime::sampling::ddim_coefficients;
/// let c = ddim_coefficients(0.25, 1.0, 0.0);
/// // Down to ᾱ_s = 1 the step returns x̂_0 = (x − √0.75·ε̂)/√0.25.
/// assert!((c.c_x - 2.0).abs() < 1e-15 && (c.c_eps + 0.75f64.sqrt() * 2.0).abs() < 1e-15);
/// assert_eq!(c.sigma, 0.0);
/// ```
pub fn ddim_coefficients(alpha_bar_t: f64, alpha_bar_s: f64, eta: f64) -> DdimCoefficients {
    let sigma = eta
        * ((1.0 - alpha_bar_s) / (1.0 - alpha_bar_t)).sqrt()
        * (1.0 - alpha_bar_t / alpha_bar_s).sqrt();
    DdimCoefficients {
        c_x: (alpha_bar_s / alpha_bar_t).sqrt(),
        c_eps: (1.0 - alpha_bar_s - sigma * sigma).sqrt()
            - alpha_bar_s.sqrt() * (1.0 - alpha_bar_t).sqrt() / alpha_bar_t.sqrt(),
        sigma,
    }
}

/// Samples over the decreasing grid `ts` (or encodes over an increasing one at `eta = 0`) with `eta` (checked by `Sampler::validate`:
/// `σ ≤ b_s` on every step).
pub(crate) fn sample<S: GaussianKernel + ?Sized, G: Guide + ?Sized>(
    run: &mut Run<'_, S, G>,
    ts: &[f64],
    eta: f64,
) -> Result<()> {
    run.steps(ts, |run, step| {
        let (t, s) = (step.t, step.s);
        if run.is_pure_noise(t) {
            return run.step_from_pure_noise(t, s, eta);
        }
        let (a_t, b_t) = (run.sde.mean_coef(t), run.sde.std(t));
        let (a_s, b_s) = (run.sde.mean_coef(s), run.sde.std(s));
        let eps = run.predict(&run.x, t, Prediction::Eps)?;
        if eta == 0.0 {
            // No kernel between s and t: also the inversion step, s > t (encoding).
            return run
                .x
                .assign((a_s / a_t) * &run.x + (b_s - a_s * b_t / a_t) * eps);
        }
        let q = Transition::between(run.sde, s, t);
        let sigma = eta * q.std;
        // (b_s² − σ²)/b_s² = 1 − η²·b_{t|s}²/b_t² = (1 − η²) + η²·e^{2(λ_t − λ_s)}.
        let keep = (1.0 - eta * eta) + eta * eta * q.keep;
        let c_eps = b_s * keep.sqrt() - a_s * b_t / a_t;
        let z = run.noise()?;
        run.x
            .assign((a_s / a_t) * &run.x + c_eps * eps + sigma * &z)
    })
}
