//! Probability-flow ODE, explicit Euler (order 1).
//!
//! Song et al. (2021), "Score-Based Generative Modeling through Stochastic Differential
//! Equations", §4.3: integrate the probability-flow ODE
//! `dx/dt = F(t)·x − ½·g(t)²·∇log p_t(x)` backwards in time. One step from `t` down to
//! `s < t`, with `Δ = t − s`:
//!
//! ```text
//! x_s = x − Δ·(F_t·x − ½·g_t²·score(x, t))
//!     = (1 − Δ·F_t)·x + (½·Δ·g_t²)·score(x, t)
//! ```
//!
//! The score is folded into the step as the model's raw output (`score = s_x·x + s_o·out`,
//! [`Denoiser::predict_linear`]), so a step is one model evaluation and one fused pass
//! over `x` and `out`, with no converted tensor. Global error `O(Δ)`.

use candle_core::Tensor;

use crate::error::Result;
use crate::model::prediction::Prediction;
use crate::model::{Denoiser, ScoreModel};
use crate::sampling::at_step;
use crate::sampling::fused;
use crate::sde::GaussianKernel;

/// Integrates `x` in place over the decreasing grid `ts`.
pub(crate) fn run<S: GaussianKernel + ?Sized, M: ScoreModel + ?Sized>(
    den: &Denoiser<'_, S, M>,
    x: &Tensor,
    ts: &[f64],
) -> Result<()> {
    let sde = den.sde();
    for (i, w) in ts.windows(2).enumerate() {
        let (t, s) = (w[0], w[1]);
        let delta = t - s;
        let score = den
            .predict_linear(x, t, Prediction::Score)
            .map_err(at_step(i, t))?;
        let (f, g2) = (sde.drift_coef(t), sde.diffusion_sq(t));
        let c_score = 0.5 * delta * g2;
        fused::axpby(
            x,
            1.0 - delta * f + c_score * score.c_x,
            &score.out,
            c_score * score.c_out,
        )
        .map_err(at_step(i, t))?;
    }
    Ok(())
}
