//! DPM-Solver-1 (order 1) and DPM-Solver-2 (singlestep, order 2), noise prediction.
//!
//! Lu et al. (2022), "DPM-Solver: A Fast ODE Solver for Diffusion Probabilistic Model
//! Sampling in Around 10 Steps", §3.3 and Algorithm 1. The probability-flow ODE is
//! solved in the half log-SNR `λ = ln(a/b)` with its linear part integrated exactly:
//! `x_s = (a_s/a_t)·x − a_s·∫_{λ_t}^{λ_s} e^{−λ}·eps(x_λ, λ) dλ`. With `h = λ_s − λ_t` (`> 0` sampling; `< 0` encoding, where the
//! same formulas hold):
//!
//! ```text
//! DPM-Solver-1:  x_s = (a_s/a_t)·x − b_s·(e^h − 1)·eps(x, t)            (= DDIM, η = 0)
//!
//! DPM-Solver-2 (r₁ = ½):
//!   λ_u = λ_t + h/2,  u = λ⁻¹(λ_u)
//!   x_u = (a_u/a_t)·x − b_u·(e^{h/2} − 1)·eps(x, t)
//!   x_s = (a_s/a_t)·x − b_s·(e^h − 1)·eps(x_u, u)
//! ```
//!
//! (Algorithm 1's last line, `… − b_s/(2r₁)·(e^h − 1)·(eps(x_u, u) − eps(x, t))`, with
//! `r₁ = ½` cancels the `eps(x, t)` term.) The model's raw output enters each pass with
//! its conversion to `eps` folded into the coefficients ([`Denoiser::predict_linear`](crate::sampling::Denoiser::predict_linear)), so
//! DPM-Solver-1 is one model evaluation and one fused pass per step; DPM-Solver-2 two of
//! each, the intermediate `x_u` written into a buffer allocated once per run. Works on any
//! linear SDE (VP: `a² + b² = 1`; VE: `a = 1`).

use crate::error::Result;
use crate::model::prediction::Prediction;
use crate::sampling::guidance::Guide;
use crate::sampling::run::Run;
use crate::sde::GaussianKernel;

/// DPM-Solver-1 over the grid `ts` (decreasing; increasing to encode).
pub(crate) fn sample_1<S: GaussianKernel + ?Sized, G: Guide + ?Sized>(
    run: &mut Run<'_, S, G>,
    ts: &[f64],
) -> Result<()> {
    run.steps(ts, |run, step| {
        let (sde, t, s) = (run.sde, step.t, step.s);
        if run.is_pure_noise(t) {
            return run.step_from_pure_noise(t, s, 0.0);
        }
        let h = sde.log_snr(s) - sde.log_snr(t);
        let eps = run.predict(&run.x, t, Prediction::Eps)?;
        let (a_t, a_s, b_s) = (sde.mean_coef(t), sde.mean_coef(s), sde.std(s));
        run.x
            .assign((a_s / a_t) * &run.x + (-b_s * h.exp_m1()) * eps)
    })
}

/// DPM-Solver-2 (singlestep, `r₁ = ½`) over the grid `ts` (decreasing; increasing to
/// encode).
pub(crate) fn sample_2<S: GaussianKernel + ?Sized, G: Guide + ?Sized>(
    run: &mut Run<'_, S, G>,
    ts: &[f64],
) -> Result<()> {
    let x_u = run.buffer()?;
    run.steps(ts, |run, step| {
        let (sde, t, s) = (run.sde, step.t, step.s);
        if run.is_pure_noise(t) {
            // Its midpoint λ_t + h/2 is −∞ too: the first-order step (local error O(h²)).
            return run.step_from_pure_noise(t, s, 0.0);
        }
        let (lambda_t, lambda_s) = (sde.log_snr(t), sde.log_snr(s));
        let h = lambda_s - lambda_t;
        let u = sde.t_of_log_snr(lambda_t + 0.5 * h);
        let (a_t, a_u, b_u) = (sde.mean_coef(t), sde.mean_coef(u), sde.std(u));
        let eps_t = run.predict(&run.x, t, Prediction::Eps)?;
        x_u.assign((a_u / a_t) * &run.x + (-b_u * (0.5 * h).exp_m1()) * eps_t)?;
        let eps_u = run.predict(&x_u, u, Prediction::Eps)?;
        let (a_s, b_s) = (sde.mean_coef(s), sde.std(s));
        run.x
            .assign((a_s / a_t) * &run.x + (-b_s * h.exp_m1()) * eps_u)
    })
}
