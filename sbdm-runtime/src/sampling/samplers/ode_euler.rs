//! Probability-flow ODE, explicit Euler (order 1).
//!
//! Song et al. (2021), "Score-Based Generative Modeling through Stochastic Differential
//! Equations", §4.3: integrate the probability-flow ODE
//! `dx/dt = F(t)·x − ½·g(t)²·∇log p_t(x)` backwards in time. One step from `t` down to
//! `s < t`, with `Δ = t − s` (encoding takes the same step up, `Δ < 0`):
//!
//! ```text
//! x_s = x − Δ·(F_t·x − ½·g_t²·score(x, t))
//!     = (1 − Δ·F_t)·x + (½·Δ·g_t²)·score(x, t)
//! ```
//!
//! The score is folded into the step as the model's raw output (`score = s_x·x + s_o·out`,
//! [`Denoiser::predict_linear`](crate::sampling::Denoiser::predict_linear)), so a step is one model evaluation and one fused pass
//! over `x` and `out`, with no converted tensor. Global error `O(Δ)`.

use crate::error::Result;
use crate::sampling::guidance::Guide;
use crate::sampling::run::Run;
use crate::sde::GaussianKernel;

/// Integrates the state over the grid `ts` (decreasing; increasing to encode).
pub(crate) fn sample<S: GaussianKernel + ?Sized, G: Guide + ?Sized>(
    run: &mut Run<'_, S, G>,
    ts: &[f64],
) -> Result<()> {
    run.steps(ts, |run, step| {
        let (t, h) = (step.t, step.s - step.t); // h < 0 sampling, > 0 encoding
        let drift = run.pf_ode_drift(&run.x, t, h)?; // h·f(x, t)
        run.x.assign(1.0 * &run.x + drift)
    })
}
