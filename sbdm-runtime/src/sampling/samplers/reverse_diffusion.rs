//! The reverse-diffusion predictor, on any linear SDE.
//!
//! Song et al. (2021), "Score-Based Generative Modeling through Stochastic Differential
//! Equations", eq. 46–47 (App. E): discretise the forward SDE as
//! `x_t = x_s + f_s(x_s) + G_s·z` and run the same discretisation backwards. Here the
//! forward discretisation is the exact kernel between grid times, `f = (a_{t|s} − 1)·x`,
//! `G = b_{t|s}` (for VE this is Song's `σ_t² − σ_s²`; for VP, `a_{t|s} ≈ √(1 − β)`):
//!
//! ```text
//! for i = 0 .. steps−1, t = ts[i] → s = ts[i+1]:
//!     z ~ N(0, I)
//!     x ← x − (a_{t|s} − 1)·x + b_{t|s}²·score(x, t) + b_{t|s}·z
//!       = (2 − a_{t|s})·x + b_{t|s}²·score(x, t) + b_{t|s}·z
//! ```
//!
//! One model evaluation and one fused pass per step. Also the predictor of `pc`.

use candle_core::Tensor;

use crate::error::Result;
use crate::model::prediction::Prediction;
use crate::model::{Denoiser, ScoreModel};
use crate::sampling::at_step;
use crate::sampling::fused;
use crate::sampling::noise::Noise;
use crate::sampling::samplers::ancestral::Posterior;
use crate::sde::GaussianKernel;

/// Samples in place over the decreasing grid `ts`.
pub(crate) fn run<S: GaussianKernel + ?Sized, M: ScoreModel + ?Sized>(
    den: &Denoiser<'_, S, M>,
    x: &Tensor,
    ts: &[f64],
    noise: &mut Noise,
) -> Result<()> {
    for (i, w) in ts.windows(2).enumerate() {
        step(den, x, i, w[0], w[1], noise)?;
    }
    Ok(())
}

/// Step `i`, from `t` down to `s`, in place.
pub(crate) fn step<S: GaussianKernel + ?Sized, M: ScoreModel + ?Sized>(
    den: &Denoiser<'_, S, M>,
    x: &Tensor,
    i: usize,
    t: f64,
    s: f64,
    noise: &mut Noise,
) -> Result<()> {
    let k = Posterior::new(den.sde(), t, s);
    let score = den
        .predict_linear(x, t, Prediction::Score)
        .map_err(at_step(i, t))?;
    let z = noise.next_as(x.dtype())?;
    fused::axpbypcz(
        x,
        2.0 - k.a_ts + k.var_ts * score.c_x,
        &score.out,
        k.var_ts * score.c_out,
        &z,
        k.var_ts.sqrt(),
    )
    .map_err(at_step(i, t))
}
