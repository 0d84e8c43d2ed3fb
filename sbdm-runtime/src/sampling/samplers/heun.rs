//! Probability-flow ODE, Heun's second-order method (order 2), with EDM's optional churn.
//!
//! Karras et al. (2022), "Elucidating the Design Space of Diffusion-Based Generative
//! Models", Algorithm 2, written for the general PF-ODE in `t`,
//! `dx/dt = f(x, t) = F(t)·x − ½·g(t)²·score(x, t)`. One step from `t` down to `s`,
//! `h = s − t < 0`:
//!
//! ```text
//! (churn)  γ = min(S_churn/N, √2 − 1);  σ̂ = σ_t·(1 + γ),  σ = b/a;  t̂ = λ⁻¹(−ln σ̂)
//!          x̂ = (a_t̂/a_t)·x + sqrt(b_t̂² − (a_t̂/a_t)²·b_t²)·z,  z ~ N(0, I);  t ← t̂
//! d  = f(x, t)
//! x̃  = x + h·d                              (Euler predictor)
//! d' = f(x̃, s)
//! x_s = x + h·(d + d')/2 = ½·x + ½·(x̃ + h·d')   (trapezoidal corrector)
//! ```
//!
//! Two model evaluations per step; global error `O(h²)` without churn. Memory passes
//! per step: one fused pass writes `x̃` into a stage buffer allocated once per run, one
//! fused pass updates `x` in place (plus one for the churn noise when `S_churn > 0`).
//! The scores enter the passes as the model's raw outputs with their conversion
//! coefficients folded in ([`Denoiser::predict_linear`]).

use candle_core::Tensor;

use crate::error::Result;
use crate::model::prediction::Prediction;
use crate::model::{Denoiser, ScoreModel};
use crate::sampling::fused;
use crate::sampling::noise::Noise;
use crate::sampling::{at_step, SamplerConfig};
use crate::sde::GaussianKernel;

/// Integrates `x` in place over the decreasing grid `ts`; `noise` is drawn only when
/// `cfg.churn > 0`.
pub(crate) fn run<S: GaussianKernel + ?Sized, M: ScoreModel + ?Sized>(
    den: &Denoiser<'_, S, M>,
    x: &Tensor,
    ts: &[f64],
    cfg: &SamplerConfig,
    noise: &mut Noise,
) -> Result<()> {
    let sde = den.sde();
    let hi = sde.time_range().1;
    let n = (ts.len() - 1) as f64;
    let gamma = (cfg.churn / n).min(std::f64::consts::SQRT_2 - 1.0);
    // The stage buffer x̃. It starts finite and every fused write checks finiteness, so
    // `0·x̃` in the stage pass below contributes exactly nothing: its old value is never read.
    let x_tilde = x.zeros_like()?;
    for (i, w) in ts.windows(2).enumerate() {
        let (t_i, s) = (w[0], w[1]);
        let mut t = t_i;
        if gamma > 0.0 {
            let sigma_hat = sde.sigma(t) * (1.0 + gamma);
            // Clamped to the time range: near T the raised σ̂ may lie beyond the SDE's T.
            let t_hat = sde.t_of_log_snr(-sigma_hat.ln()).min(hi).max(t);
            let ratio = sde.mean_coef(t_hat) / sde.mean_coef(t);
            let var = sde.variance(t_hat) - ratio * ratio * sde.variance(t);
            let z = noise.next_as(x.dtype())?;
            fused::axpby(x, ratio, &z, var.max(0.0).sqrt()).map_err(at_step(i, t_i))?;
            t = t_hat;
        }
        let h = s - t;
        // d = F_t·x − ½g_t²·score_t;  x̃ = x + h·d   (score_t = s_x·x + s_o·out_t).
        let score_t = den
            .predict_linear(x, t, Prediction::Score)
            .map_err(at_step(i, t_i))?;
        let c = -0.5 * h * sde.diffusion_sq(t);
        let c_x = 1.0 + h * sde.drift_coef(t) + c * score_t.c_x;
        fused::axpbypcz(&x_tilde, 0.0, x, c_x, &score_t.out, c * score_t.c_out)
            .map_err(at_step(i, t_i))?;
        // d' = F_s·x̃ − ½g_s²·score_s;  x_s = ½x + ½(x̃ + h·d').
        let score_s = den
            .predict_linear(&x_tilde, s, Prediction::Score)
            .map_err(at_step(i, t_i))?;
        let c = -0.25 * h * sde.diffusion_sq(s);
        let c_tilde = 0.5 * (1.0 + h * sde.drift_coef(s)) + c * score_s.c_x;
        fused::axpbypcz(x, 0.5, &x_tilde, c_tilde, &score_s.out, c * score_s.c_out)
            .map_err(at_step(i, t_i))?;
    }
    Ok(())
}
