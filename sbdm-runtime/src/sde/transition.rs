//! The Gaussian kernel between two times of a linear SDE, and the posterior it gives.
//!
//! For `s < t`, `x_t = a_{t|s}·x_s + b_{t|s}·z` with `a_{t|s} = a_t/a_s` and
//! `b_{t|s}² = b_t² − a_{t|s}²·b_s²`. Given `x_0` as well, Bayes' rule gives the Gaussian
//! posterior `q(x_s | x_t, x_0) = N(mean_x·x_t + mean_x0·x_0, std²·I)` with
//! `mean_x = a_{t|s}·b_s²/b_t²`, `mean_x0 = a_s·b_{t|s}²/b_t²`, `std = b_{t|s}·b_s/b_t`
//! (Ho et al. 2020, eq. 6–7; Kingma et al. 2021, eq. 11). Every sampler, model and
//! constraint that needs the kernel between two times takes it from here.
//!
//! ```
//! use sbdm_runtime::sde::builtin::VpSde;
//! use sbdm_runtime::sde::{GaussianKernel, Transition};
//!
//! let sde = VpSde::default();
//! let k = Transition::between(&sde, 0.3, 0.7);
//! // Two kernel steps compose to the kernel from 0: a_t = a_{t|s}·a_s.
//! assert!((k.a_ts * sde.mean_coef(0.3) - sde.mean_coef(0.7)).abs() < 1e-12);
//! assert!((k.var_ts + k.a_ts.powi(2) * sde.variance(0.3) - sde.variance(0.7)).abs() < 1e-12);
//! ```

use super::GaussianKernel;

/// The forward kernel from `s` to `t > s` and the posterior `q(x_s | x_t, x_0)`.
///
/// `b_{t|s}²/b_t² = 1 − e^{2(λ_t − λ_s)}` is evaluated with `expm1` of the half log-SNR,
/// so nearby times do not cancel.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Transition {
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
    /// The posterior standard deviation `b_{t|s}·b_s/b_t`.
    pub std: f64,
}

impl Transition {
    /// The kernel and posterior between `s` and `t > s` of `sde`.
    pub fn between<S: GaussianKernel + ?Sized>(sde: &S, s: f64, t: f64) -> Self {
        let (a_t, b_t) = (sde.mean_coef(t), sde.std(t));
        let (a_s, b_s) = (sde.mean_coef(s), sde.std(s));
        // b_{t|s}²/b_t² = 1 − (a_{t|s}·b_s/b_t)² = −expm1(2(λ_t − λ_s)).
        let two_dl = 2.0 * (sde.log_snr(t) - sde.log_snr(s));
        let ratio = -two_dl.exp_m1();
        let a_ts = a_t / a_s;
        Transition {
            a_ts,
            var_ts: b_t * b_t * ratio,
            keep: two_dl.exp(),
            mean_x: a_ts * (b_s / b_t) * (b_s / b_t),
            mean_x0: a_s * ratio,
            std: b_s * ratio.sqrt(),
        }
    }

    /// `b_{t|s}`, the forward kernel's standard deviation.
    pub fn std_ts(&self) -> f64 {
        self.var_ts.sqrt()
    }
}
