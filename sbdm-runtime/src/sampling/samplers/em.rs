//! Reverse-time SDE, Euler–Maruyama.
//!
//! Song et al. (2021), "Score-Based Generative Modeling through Stochastic Differential
//! Equations", eq. 6 and App. D: Anderson's reverse SDE
//! `dx = [F(t)·x − g(t)²·∇log p_t(x)] dt + g(t) dw̄`, integrated backwards in time.
//! One step from `t` down to `s < t`, `Δ = t − s`:
//!
//! ```text
//! z   ~ N(0, I)
//! x_s = x − Δ·(F_t·x − g_t²·score(x, t)) + g_t·√Δ·z
//!     = (1 − Δ·F_t)·x + (Δ·g_t²)·score(x, t) + (g_t·√Δ)·z
//! ```
//!
//! One model evaluation and one fused pass per step; weak order 1.

use candle_core::Tensor;

use crate::error::Result;
use crate::model::prediction::Prediction;
use crate::model::{Denoiser, ScoreModel};
use crate::sampling::at_step;
use crate::sampling::fused;
use crate::sampling::noise::Noise;
use crate::sde::GaussianKernel;

/// Integrates `x` in place over the decreasing grid `ts`.
pub(crate) fn run<S: GaussianKernel + ?Sized, M: ScoreModel + ?Sized>(
    den: &Denoiser<'_, S, M>,
    x: &Tensor,
    ts: &[f64],
    noise: &mut Noise,
) -> Result<()> {
    let sde = den.sde();
    for (i, w) in ts.windows(2).enumerate() {
        let (t, s) = (w[0], w[1]);
        let delta = t - s;
        let (f, g2) = (sde.drift_coef(t), sde.diffusion_sq(t));
        let score = den
            .predict_linear(x, t, Prediction::Score)
            .map_err(at_step(i, t))?;
        let z = noise.next_as(x.dtype())?;
        fused::axpbypcz(
            x,
            1.0 - delta * f + delta * g2 * score.c_x,
            &score.out,
            delta * g2 * score.c_out,
            &z,
            (g2 * delta).sqrt(),
        )
        .map_err(at_step(i, t))?;
    }
    Ok(())
}
