//! Ancestral sampling from the exact Gaussian posterior, on any linear SDE.
//!
//! Ho et al. (2020), "Denoising Diffusion Probabilistic Models", eq. 6–7, in the
//! continuous-time form of Kingma et al. (2021), "Variational Diffusion Models", eq. 11.
//! With the kernel between times `s < t`, `x_t = a_{t|s}·x_s + b_{t|s}·z`,
//! `a_{t|s} = a_t/a_s`, `b_{t|s}² = b_t² − a_{t|s}²·b_s²`, the posterior
//! `q(x_s | x_t, x_0)` is Gaussian; the sampler plugs in the model's `x_0`:
//!
//! ```text
//! for i = 0 .. steps−1, t = ts[i] → s = ts[i+1]:
//!     x̂_0 = x_0(x, t)
//!     z  ~ N(0, I)
//!     x ← (a_{t|s}·b_s²/b_t²)·x + (a_s·b_{t|s}²/b_t²)·x̂_0 + (b_{t|s}·b_s/b_t)·z
//! ```
//!
//! Noise is kept on every step, the last included: the result is a sample of
//! `p_{t_min}`, not a denoised mean (see `ddpm` for the mean-last variant). One model
//! evaluation and one fused pass per step.

use crate::error::Result;
use crate::model::prediction::Prediction;
use crate::sampling::guidance::Guide;
use crate::sampling::run::Run;
use crate::sde::{GaussianKernel, Transition};

/// Samples over the decreasing grid `ts`.
pub(crate) fn sample<S: GaussianKernel + ?Sized, G: Guide + ?Sized>(
    run: &mut Run<'_, S, G>,
    ts: &[f64],
) -> Result<()> {
    run.steps(ts, |run, step| {
        let q = Transition::between(run.sde, step.s, step.t);
        let x0 = run.predict(&run.x, step.t, Prediction::X0)?;
        let z = run.noise()?;
        run.x
            .assign(q.mean_x * &run.x + q.mean_x0 * x0 + q.std * &z)
    })
}
