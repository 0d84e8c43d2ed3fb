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

use crate::error::Result;
use crate::model::prediction::Prediction;
use crate::sampling::guidance::Guide;
use crate::sampling::run::{Run, Step};
use crate::sde::{GaussianKernel, Transition};

/// Samples over the decreasing grid `ts`.
pub(crate) fn sample<S: GaussianKernel + ?Sized, G: Guide + ?Sized>(
    run: &mut Run<'_, S, G>,
    ts: &[f64],
) -> Result<()> {
    run.steps(ts, step)
}

/// One step, from `step.t` down to `step.s`.
pub(crate) fn step<S: GaussianKernel + ?Sized, G: Guide + ?Sized>(
    run: &mut Run<'_, S, G>,
    step: Step,
) -> Result<()> {
    let k = Transition::between(run.sde, step.s, step.t);
    let score = run.predict(&run.x, step.t, Prediction::Score)?;
    let z = run.noise()?;
    run.x
        .assign((2.0 - k.a_ts) * &run.x + k.var_ts * score + k.std_ts() * &z)
}
