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

use candle_core::Tensor;

use crate::error::Result;
use crate::model::prediction::Prediction;
use crate::model::{Denoiser, ScoreModel};
use crate::sampling::at_step;
use crate::sampling::fused;
use crate::sampling::noise::Noise;
use crate::sde::GaussianKernel;

/// The forward kernel from `s` to `t > s` and the posterior `q(x_s | x_t, x_0)` it gives.
///
/// `b_{t|s}²/b_t² = 1 − e^{2(λ_t − λ_s)}` is evaluated with `expm1` of the half log-SNR,
/// so nearby times do not cancel.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Posterior {
    /// `a_{t|s} = a_t/a_s`.
    pub a_ts: f64,
    /// `b_{t|s}² = b_t² − a_{t|s}²·b_s²`.
    pub var_ts: f64,
    /// `1 − b_{t|s}²/b_t² = e^{2(λ_t − λ_s)}`, in `(0, 1]`, without cancellation.
    pub keep: f64,
    /// The posterior mean's coefficient of `x_t`: `a_{t|s}·b_s²/b_t²`.
    pub mean_x: f64,
    /// The posterior mean's coefficient of `x_0`: `a_s·b_{t|s}²/b_t²`.
    pub mean_x0: f64,
    /// The posterior std `b_{t|s}·b_s/b_t`.
    pub std: f64,
}

impl Posterior {
    /// The kernel and posterior between `t` and `s < t` of `sde`.
    pub(crate) fn new<S: GaussianKernel + ?Sized>(sde: &S, t: f64, s: f64) -> Self {
        let (a_t, b_t) = (sde.mean_coef(t), sde.std(t));
        let (a_s, b_s) = (sde.mean_coef(s), sde.std(s));
        // b_{t|s}²/b_t² = 1 − (a_{t|s}·b_s/b_t)² = −expm1(2(λ_t − λ_s)).
        let two_dl = 2.0 * (sde.log_snr(t) - sde.log_snr(s));
        let ratio = -two_dl.exp_m1();
        let a_ts = a_t / a_s;
        let var_ts = b_t * b_t * ratio;
        Posterior {
            a_ts,
            var_ts,
            keep: two_dl.exp(),
            mean_x: a_ts * (b_s / b_t) * (b_s / b_t),
            mean_x0: a_s * ratio,
            std: b_s * ratio.sqrt(),
        }
    }
}

/// Samples in place over the decreasing grid `ts`.
pub(crate) fn run<S: GaussianKernel + ?Sized, M: ScoreModel + ?Sized>(
    den: &Denoiser<'_, S, M>,
    x: &Tensor,
    ts: &[f64],
    noise: &mut Noise,
) -> Result<()> {
    for (i, w) in ts.windows(2).enumerate() {
        let (t, s) = (w[0], w[1]);
        let q = Posterior::new(den.sde(), t, s);
        let x0 = den
            .predict_linear(x, t, Prediction::X0)
            .map_err(at_step(i, t))?;
        let z = noise.next_as(x.dtype())?;
        fused::axpbypcz(
            x,
            q.mean_x + q.mean_x0 * x0.c_x,
            &x0.out,
            q.mean_x0 * x0.c_out,
            &z,
            q.std,
        )
        .map_err(at_step(i, t))?;
    }
    Ok(())
}
