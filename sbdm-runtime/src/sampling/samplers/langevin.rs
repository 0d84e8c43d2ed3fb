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
use crate::model::{Denoiser, ScoreModel};
use crate::sampling::fused;
use crate::sampling::noise::Noise;
use crate::sampling::samplers::ancestral::Posterior;
use crate::sampling::samplers::reverse_diffusion;
use crate::sampling::{at_step, SamplerConfig};
use crate::sde::GaussianKernel;

/// Predictor–corrector sampling in place over the decreasing grid `ts`.
pub(crate) fn run_pc<S: GaussianKernel + ?Sized, M: ScoreModel + ?Sized>(
    den: &Denoiser<'_, S, M>,
    x: &Tensor,
    ts: &[f64],
    cfg: &SamplerConfig,
    noise: &mut Noise,
) -> Result<()> {
    for (i, w) in ts.windows(2).enumerate() {
        let (t, s) = (w[0], w[1]);
        reverse_diffusion::step(den, x, i, t, s, noise)?;
        let alpha = Posterior::new(den.sde(), t, s).a_ts.powi(2);
        for _ in 0..cfg.corrector_steps {
            correct(den, x, s, alpha, cfg.snr, noise).map_err(at_step(i, s))?;
        }
    }
    Ok(())
}

/// One Langevin step at time `s`, in place.
fn correct<S: GaussianKernel + ?Sized, M: ScoreModel + ?Sized>(
    den: &Denoiser<'_, S, M>,
    x: &Tensor,
    s: f64,
    alpha: f64,
    snr: f64,
    noise: &mut Noise,
) -> Result<()> {
    let grad = den.score(x, s)?;
    let z = noise.next_as(x.dtype())?;
    let grad_norm = mean_norm(&grad)?;
    // A vanishing score (every sample at a stationary point) leaves x where it is.
    let eps = if grad_norm == 0.0 {
        0.0
    } else {
        2.0 * alpha * (snr * mean_norm(&z)? / grad_norm).powi(2)
    };
    fused::axpbypcz(x, 1.0, &grad, eps, &z, (2.0 * eps).sqrt())
}

/// The per-sample Euclidean norm of a batch `[N, ...]`, averaged over the batch.
fn mean_norm(v: &Tensor) -> Result<f64> {
    let per_sample = v.flatten_from(1)?.sqr()?.sum(1)?.sqrt()?;
    Ok(per_sample
        .mean_all()?
        .to_dtype(DType::F64)?
        .to_scalar::<f64>()?)
}
