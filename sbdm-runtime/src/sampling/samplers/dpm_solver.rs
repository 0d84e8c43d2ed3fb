//! DPM-Solver-1 (order 1) and DPM-Solver-2 (singlestep, order 2), noise prediction.
//!
//! Lu et al. (2022), "DPM-Solver: A Fast ODE Solver for Diffusion Probabilistic Model
//! Sampling in Around 10 Steps", §3.3 and Algorithm 1. The probability-flow ODE is
//! solved in the half log-SNR `λ = ln(a/b)` with its linear part integrated exactly:
//! `x_s = (a_s/a_t)·x − a_s·∫_{λ_t}^{λ_s} e^{−λ}·eps(x_λ, λ) dλ`. With `h = λ_s − λ_t > 0`:
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
//! its conversion to `eps` folded into the coefficients ([`Denoiser::predict_linear`]), so
//! DPM-Solver-1 is one model evaluation and one fused pass per step; DPM-Solver-2 two of
//! each, the intermediate `x_u` written into a buffer allocated once per run. Works on any
//! linear SDE (VP: `a² + b² = 1`; VE: `a = 1`).

use candle_core::Tensor;

use crate::error::Result;
use crate::model::prediction::Prediction;
use crate::model::{Denoiser, ScoreModel};
use crate::sampling::at_step;
use crate::sampling::fused;
use crate::sde::GaussianKernel;

/// DPM-Solver-1 over the decreasing grid `ts`, `x` updated in place.
pub(crate) fn run_1<S: GaussianKernel + ?Sized, M: ScoreModel + ?Sized>(
    den: &Denoiser<'_, S, M>,
    x: &Tensor,
    ts: &[f64],
) -> Result<()> {
    let sde = den.sde();
    for (i, w) in ts.windows(2).enumerate() {
        let (t, s) = (w[0], w[1]);
        let h = sde.log_snr(s) - sde.log_snr(t);
        let eps = den
            .predict_linear(x, t, Prediction::Eps)
            .map_err(at_step(i, t))?;
        let (a_t, a_s, b_s) = (sde.mean_coef(t), sde.mean_coef(s), sde.std(s));
        let c = -b_s * h.exp_m1();
        fused::axpby(x, a_s / a_t + c * eps.c_x, &eps.out, c * eps.c_out).map_err(at_step(i, t))?;
    }
    Ok(())
}

/// DPM-Solver-2 (singlestep, `r₁ = ½`) over the decreasing grid `ts`, `x` updated in place.
pub(crate) fn run_2<S: GaussianKernel + ?Sized, M: ScoreModel + ?Sized>(
    den: &Denoiser<'_, S, M>,
    x: &Tensor,
    ts: &[f64],
) -> Result<()> {
    let sde = den.sde();
    // The intermediate x_u. It starts finite and every fused write checks finiteness, so
    // the `0·x_u` below contributes exactly nothing.
    let x_u = x.zeros_like()?;
    for (i, w) in ts.windows(2).enumerate() {
        let (t, s) = (w[0], w[1]);
        let (lambda_t, lambda_s) = (sde.log_snr(t), sde.log_snr(s));
        let h = lambda_s - lambda_t;
        let u = sde.t_of_log_snr(lambda_t + 0.5 * h);
        let (a_t, a_u, b_u) = (sde.mean_coef(t), sde.mean_coef(u), sde.std(u));
        let eps_t = den
            .predict_linear(x, t, Prediction::Eps)
            .map_err(at_step(i, t))?;
        let c = -b_u * (0.5 * h).exp_m1();
        fused::axpbypcz(
            &x_u,
            0.0,
            x,
            a_u / a_t + c * eps_t.c_x,
            &eps_t.out,
            c * eps_t.c_out,
        )
        .map_err(at_step(i, t))?;
        let eps_u = den
            .predict_linear(&x_u, u, Prediction::Eps)
            .map_err(at_step(i, t))?;
        let (a_s, b_s) = (sde.mean_coef(s), sde.std(s));
        let c = -b_s * h.exp_m1();
        fused::axpbypcz(
            x,
            a_s / a_t,
            &x_u,
            c * eps_u.c_x,
            &eps_u.out,
            c * eps_u.c_out,
        )
        .map_err(at_step(i, t))?;
    }
    Ok(())
}
