//! Predictor–corrector sampling: reverse-diffusion predictor, Langevin corrector.
//!
//! Song et al. (2021), "Score-Based Generative Modeling through Stochastic Differential
//! Equations", Algorithms 2–5 (App. G), with the corrector's step size set by the
//! signal-to-noise ratio `r = snr` as in Algorithms 4–5 and `score_sde`'s
//! `LangevinCorrector`:
//!
//! ```text
//! for i = 0 .. steps−1, t = ts[i] → s = ts[i+1]:
//!     x ← reverse-diffusion step from t to s               (predictor)
//!     repeat corrector_steps times:                         (corrector, at s)
//!         g ← score(x, s);  z ~ N(0, I)
//!         ε ← 2·α·(r·‖z‖/‖g‖)²
//!         x ← x + ε·g + √(2ε)·z
//! ```
//!
//! `‖z‖` and `‖g‖` are per-sample norms averaged over the batch, as in `score_sde`;
//! so unlike the other samplers, a sample's path depends (weakly) on its batch.
//! Per-sample norms were tried and are unstable: a sample where the score nearly
//! vanishes (between modes) gets a huge step (on a 2-D mixture, sliced-W2 68× the
//! exact-vs-exact floor on VE), which the batch average prevents.
//! `α = a_{t|s}²`: the forward step the predictor has just reversed. On VE this is 1, as
//! in `score_sde`; on VP it is `1 − β` of that step, `score_sde`'s `alphas[i]` up to a
//! shift of one grid step (a difference of order `Δ²`). The norms cost two reduction
//! passes; the update itself is one fused pass. NFE = `steps·(1 + corrector_steps)`.

use candle_core::{DType, Tensor};

use crate::error::Result;
use crate::sampling::guidance::Guide;
use crate::sampling::run::Run;
use crate::sampling::samplers::reverse_diffusion;
use crate::sde::{GaussianKernel, Transition};

/// Predictor–corrector sampling over the decreasing grid `ts`.
pub(crate) fn sample_pc<S: GaussianKernel + ?Sized, G: Guide + ?Sized>(
    run: &mut Run<'_, S, G>,
    ts: &[f64],
    snr: f64,
    corrector_steps: usize,
) -> Result<()> {
    run.steps(ts, |run, step| {
        reverse_diffusion::step(run, step)?;
        let alpha = Transition::between(run.sde, step.s, step.t).a_ts.powi(2);
        run.at = step.s; // the corrector works at the time the predictor reached
        for _ in 0..corrector_steps {
            correct(run, step.s, alpha, snr)?;
        }
        Ok(())
    })
}

/// One Langevin step at time `s`, in place.
fn correct<S: GaussianKernel + ?Sized, G: Guide + ?Sized>(
    run: &mut Run<'_, S, G>,
    s: f64,
    alpha: f64,
    snr: f64,
) -> Result<()> {
    let grad = run.model.score(&run.x, s)?;
    let z = run.noise_tensor()?;
    let grad_norm = mean_norm(&grad)?;
    // A vanishing score (every sample at a stationary point) leaves x where it is.
    let eps = if grad_norm == 0.0 {
        0.0
    } else {
        2.0 * alpha * (snr * mean_norm(&z)? / grad_norm).powi(2)
    };
    let grad = crate::sampling::step::Buffer::new(grad)?;
    run.x
        .assign(1.0 * &run.x + eps * &grad + (2.0 * eps).sqrt() * &z)
}

/// The per-sample Euclidean norm of a batch `[N, ...]`, averaged over the batch.
fn mean_norm(v: &Tensor) -> Result<f64> {
    let per_sample = v.flatten_from(1)?.sqr()?.sum(1)?.sqrt()?;
    Ok(per_sample
        .mean_all()?
        .to_dtype(DType::F64)?
        .to_scalar::<f64>()?)
}
