//! Probability-flow ODE, Heun's second-order method (order 2), with EDM's optional churn.
//!
//! Karras et al. (2022), "Elucidating the Design Space of Diffusion-Based Generative
//! Models", Algorithm 2, written for the general PF-ODE in `t`,
//! `dx/dt = f(x, t) = F(t)·x − ½·g(t)²·score(x, t)`. One step from `t` down to `s`,
//! `h = s − t < 0`:
//!
//! ```text
//! (churn, if S_tmin ≤ σ_t ≤ S_tmax)
//!          γ = min(S_churn/N, √2 − 1);  σ̂ = σ_t·(1 + γ),  σ = b/a;  t̂ = λ⁻¹(−ln σ̂)
//!          x̂ = a_{t̂|t}·x + S_noise·b_{t̂|t}·z,  z ~ N(0, I);  t ← t̂
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
//! coefficients folded in ([`Denoiser::predict_linear`](crate::sampling::Denoiser::predict_linear)).

use crate::error::Result;
use crate::sampling::guidance::Guide;
use crate::sampling::run::Run;
use crate::sde::{GaussianKernel, Transition};

/// Integrates the state over the grid `ts` (decreasing; increasing to encode, without
/// churn); noise is drawn only for churn
/// (`churn > 0` and `σ(t)` inside `sigma_range = (S_tmin, S_tmax)`).
pub(crate) fn sample<S: GaussianKernel + ?Sized, G: Guide + ?Sized>(
    run: &mut Run<'_, S, G>,
    ts: &[f64],
    churn: f64,
    sigma_range: (f64, f64),
    s_noise: f64,
) -> Result<()> {
    let steps = ts.len().saturating_sub(1) as f64;
    let gamma = (churn / steps).min(std::f64::consts::SQRT_2 - 1.0);
    let x_tilde = run.buffer()?;
    run.steps(ts, |run, step| {
        let sigma = run.sde.sigma(step.t);
        // No churn from pure noise (σ = ∞): there is no more noise to add.
        let churn_here = gamma > 0.0 && !run.is_pure_noise(step.t);
        let t = if churn_here && sigma_range.0 <= sigma && sigma <= sigma_range.1 {
            raise_noise(run, step.t, gamma, s_noise)?
        } else {
            step.t
        };
        let (s, h) = (step.s, step.s - t);
        let d = run.pf_ode_drift(&run.x, t, h)?; // h·f(x, t)
        x_tilde.assign(1.0 * &run.x + d)?; // Euler predictor x̃
        let d_tilde = run.pf_ode_drift(&x_tilde, s, h)?; // h·f(x̃, s)
        run.x
            .assign(0.5 * &run.x + 0.5 * (1.0 * &x_tilde + d_tilde))
    })
}

/// EDM's churn: moves the state from `t` up to `t̂` with `σ(t̂) = (1 + γ)·σ(t)` by the
/// forward kernel, `x ← a_{t̂|t}·x + S_noise·b_{t̂|t}·z`, and returns `t̂` (clamped to the
/// time range: near `T` the raised `σ̂` may lie beyond it).
fn raise_noise<S: GaussianKernel + ?Sized, G: Guide + ?Sized>(
    run: &mut Run<'_, S, G>,
    t: f64,
    gamma: f64,
    s_noise: f64,
) -> Result<f64> {
    let hi = run.sde.time_range().1;
    let sigma_hat = run.sde.sigma(t) * (1.0 + gamma);
    let t_hat = run.sde.t_of_log_snr(-sigma_hat.ln()).min(hi).max(t);
    let k = Transition::between(run.sde, t, t_hat);
    let z = run.noise()?;
    run.x
        .assign(k.a_ts * &run.x + (s_noise * k.std_ts()) * &z)?;
    Ok(t_hat)
}
