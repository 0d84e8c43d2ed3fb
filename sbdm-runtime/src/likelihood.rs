//! Exact log-likelihoods through the probability-flow ODE.
//!
//! The PF-ODE `dx/dt = f̃(x, t) = F(t)·x − ½·g(t)²·s(x, t)` carries `p_{t_min}` to `p_T`,
//! and the instantaneous change of variables gives
//! `log p_{t_min}(x) = log p_T(x_T) + ∫_{t_min}^T ∇·f̃(x_t, t) dt`, with
//! `∇·f̃ = d·F(t) − ½·g(t)²·∇·s`. The linear part's divergence `d·F(t)` comes from the
//! derivation; only the score's divergence depends on the model. This module integrates
//! `(x, ∫∇·f̃)` together with the adaptive Dormand–Prince solver, for score fields whose
//! divergence is known exactly ([`ExactDivergence`]: the Gaussian-mixture oracle).
//!
//! ```
//! use sbdm_runtime::likelihood::{log_likelihood, ExactMixture, OdeTolerance};
//! use sbdm_runtime::model::mixture::GaussianMixture;
//! use sbdm_runtime::sde::{builtin::VpSde, GaussianKernel, Sde};
//!
//! let sde = VpSde::default();
//! let mix = GaussianMixture::new(vec![0.5, 0.5], vec![vec![-2.0], vec![2.0]], vec![0.5, 0.5])?;
//! let field = ExactMixture { sde: &sde, mixture: &mix };
//! let (t0, t1) = sde.time_range();
//! // With the exact p_T as the prior, the result is p_{t_min}'s exact log-density.
//! let exact_prior = |x: &[f64]| mix.log_prob_at(x, sde.mean_coef(t1), sde.std(t1));
//! let got = log_likelihood(&sde, &field, &[1.5], &exact_prior, OdeTolerance::new(1e-8, 1e-8)?)?;
//! let want = mix.log_prob_at(&[1.5], sde.mean_coef(t0), sde.std(t0));
//! assert!((got.log_p - want).abs() < 1e-4);
//! # Ok::<(), sbdm_runtime::error::Error>(())
//! ```

use sbdm_symbolic::numeric::Dopri5;

use crate::error::{invalid, Result};
use crate::model::mixture::GaussianMixture;
use crate::sde::GaussianKernel;

/// A score field whose divergence is known exactly at a point.
pub trait ExactDivergence {
    /// The dimension of a sample.
    fn dim(&self) -> usize;

    /// The score `∇log p_t(x)` written into `score`; returns its divergence `∇·s`.
    fn score_divergence(&self, x: &[f64], t: f64, score: &mut [f64]) -> f64;
}

/// The exact score of a Gaussian mixture diffused by `sde`, with its analytic divergence.
pub struct ExactMixture<'a, S: ?Sized> {
    /// The forward SDE.
    pub sde: &'a S,
    /// The data distribution.
    pub mixture: &'a GaussianMixture,
}

impl<S: GaussianKernel + ?Sized> ExactDivergence for ExactMixture<'_, S> {
    fn dim(&self) -> usize {
        self.mixture.dim()
    }

    fn score_divergence(&self, x: &[f64], t: f64, score: &mut [f64]) -> f64 {
        let (a, b) = (self.sde.mean_coef(t), self.sde.std(t));
        self.mixture.score_divergence_at(x, a, b, score)
    }
}

/// Tolerances of the adaptive ODE solver: a step's error in every component within
/// `rtol·|y| + atol`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OdeTolerance {
    rtol: f64,
    atol: f64,
}

impl OdeTolerance {
    /// Both tolerances must be positive and finite.
    pub fn new(rtol: f64, atol: f64) -> Result<OdeTolerance> {
        for (name, v) in [("rtol", rtol), ("atol", atol)] {
            if !(v.is_finite() && v > 0.0) {
                return Err(invalid!("{name} must be positive and finite, got {v}"));
            }
        }
        Ok(OdeTolerance { rtol, atol })
    }
}

/// One point's likelihood.
#[derive(Clone, Debug, PartialEq)]
pub struct PointLikelihood {
    /// `log p_{t_min}(x)` in nats.
    pub log_p: f64,
    /// `x_T`: the point carried to `T` by the PF-ODE (its encoding).
    pub x_t: Vec<f64>,
    /// `∫_{t_min}^T ∇·f̃ dt`, the change of variables.
    pub delta_log_p: f64,
    /// Score evaluations used.
    pub nfe: usize,
}

/// `log p_{t_min}(x)` by integrating the PF-ODE of `sde` under `field` from `t_min` to
/// `T` with the change of variables, plus `log_prior(x_T)`: the SDE's
/// [`prior_log_prob`](GaussianKernel::prior_log_prob) for the usual estimate, or an exact
/// `log p_T` to isolate the solver's error.
pub fn log_likelihood<S: GaussianKernel + ?Sized>(
    sde: &S,
    field: &dyn ExactDivergence,
    x: &[f64],
    log_prior: &dyn Fn(&[f64]) -> f64,
    tol: OdeTolerance,
) -> Result<PointLikelihood> {
    let d = field.dim();
    if x.len() != d {
        return Err(invalid!(
            "the point has dimension {} but the model has dimension {d}",
            x.len()
        ));
    }
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        return Err(invalid!("coordinate {i} of the point is not finite"));
    }
    let (t0, t1) = sde.time_range();
    // y = (x, ∫∇·f̃); y' = (F·x − ½g²·s, d·F − ½g²·∇·s).
    let mut score = vec![0.0; d];
    let mut rhs = |t: f64, y: &[f64], dy: &mut [f64]| {
        let (f, g2) = (sde.drift_coef(t), sde.diffusion_sq(t));
        let div = field.score_divergence(&y[..d], t, &mut score);
        for i in 0..d {
            dy[i] = f * y[i] - 0.5 * g2 * score[i];
        }
        dy[d] = d as f64 * f - 0.5 * g2 * div;
    };
    let mut y: Vec<f64> = x.iter().copied().chain([0.0]).collect();
    let mut solver = Dopri5::new(tol.rtol, tol.atol, (t1 - t0) / 64.0);
    let mut t = t0;
    solver.advance(&mut rhs, &mut t, &mut y, t1).ok_or_else(|| {
        invalid!("the probability-flow ODE could not be integrated from {t0} to {t1} (non-finite state or vanishing steps)")
    })?;
    let delta_log_p = y[d];
    let x_t = y[..d].to_vec();
    let log_p = log_prior(&x_t) + delta_log_p;
    if !log_p.is_finite() {
        return Err(invalid!("the log-likelihood is not finite ({log_p})"));
    }
    Ok(PointLikelihood {
        log_p,
        x_t,
        delta_log_p,
        nfe: solver.evaluations,
    })
}
