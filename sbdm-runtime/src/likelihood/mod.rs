//! Exact log-likelihoods through the probability-flow ODE.
//!
//! The PF-ODE `dx/dt = f̃(x, t) = F(t)·x − ½·g(t)²·s(x, t)` carries `p_{t_min}` to `p_T`,
//! and the instantaneous change of variables gives
//! `log p_{t_min}(x) = log p_T(x_T) + ∫_{t_min}^T ∇·f̃(x_t, t) dt`, with
//! `∇·f̃ = d·F(t) − ½·g(t)²·∇·s`. The linear part's divergence `d·F(t)` comes from the
//! derivation; only the score's divergence depends on the model
//! ([`ScoreDivergence`]): exact for the Gaussian-mixture oracle ([`ExactMixture`]), and for
//! a network ([`NetworkDivergence`]) exact by one vector–Jacobian product per dimension or
//! Hutchinson–Skilling's estimate with `K` probes ([`Divergence`]). [`log_likelihoods`]
//! integrates `(x, ∫∇·f̃)` for a batch with the adaptive Dormand–Prince solver; images
//! are scored in bits per dimension after uniform dequantisation ([`Dequantization`]).
//!
//! **SDEs that reach pure noise.** Where `a(T) = 0` (rectified flow, TrigFlow, the
//! zero-terminal-SNR tables; [`GaussianKernel::is_pure_noise`]) `F = ȧ/a` and `g²` diverge
//! at `T`: the score form cannot be evaluated there, and near `T` its two terms, each of
//! size `~1/a(t)`, cancel to a finite drift, so the field's own rounding is amplified by
//! `1/a(t)`. The same drift written with the kernel's rates `ȧ`, `ḃ` and the posterior
//! mean `x̂_0 = E[x_0 | x_t] = (x + b²·s)/a`,
//! `f̃ = (ḃ/b)·x + (ȧ − a·ḃ/b)·x̂_0` with `∇·f̃ = d·ḃ/b + (ȧ − a·ḃ/b)·∇·x̂_0`, is finite
//! and well conditioned up to and at `T` (there `∇ₓx̂_0 = (a/b²)·Cov[x_0 | x_t] = 0`).
//! [`DriftForm`] is that choice, made once per SDE, and the one place the coefficients of
//! either form are written ([`DriftForm::coefficients`]): an SDE that reaches pure noise
//! at `T` is integrated in the posterior-mean form over its whole range (one smooth
//! field, no switch at `T`; a network's f32 rounding is not amplified near `T`), every
//! other SDE in the score form, in the same arithmetic as before the posterior-mean form
//! existed (its results are unchanged to the bit). With the exact mixture in f64 the two
//! forms measure the same error on rectified flow, so the choice costs nothing there. The
//! field gives the form's quantity and its divergence ([`ScoreDivergence::evaluate`]):
//! the mixture in closed form, a network by differentiating exactly what is integrated
//! (its prediction converted to `x̂_0`). A network predicting ε or the score has no `x̂_0`
//! at `T` and is refused in one line before integrating
//! ([`ScoreDivergence::check_form`]). The prior is `N(0, b(T)²I)` either way
//! ([`GaussianKernel::prior_log_prob`]); where `a(T) = 0` it is `p_T` exactly.
//!
//! ```
//! use sbdm_runtime::likelihood::{log_likelihood, ExactMixture, OdeTolerance};
//! use sbdm_runtime::model::mixture::GaussianMixture;
//! use sbdm_runtime::sde::{builtin::VpSde, GaussianKernel, Sde};
//!
//! let sde = VpSde::default();
//! let mix = GaussianMixture::new(vec![0.5, 0.5], vec![vec![-2.0], vec![2.0]], vec![0.5, 0.5])?;
//! let mut field = ExactMixture { sde: &sde, mixture: &mix };
//! let (t0, t1) = sde.time_range();
//! // With the exact p_T as the prior, the result is p_{t_min}'s exact log-density.
//! let exact_prior = |x: &[f64]| mix.log_prob_at(x, sde.mean_coef(t1), sde.std(t1));
//! let tol = OdeTolerance::new(1e-8, 1e-8)?;
//! let got = log_likelihood(&sde, &mut field, &[1.5], &exact_prior, tol)?;
//! let want = mix.log_prob_at(&[1.5], sde.mean_coef(t0), sde.std(t0));
//! assert!((got.log_p - want).abs() < 1e-4);
//! # Ok::<(), sbdm_runtime::error::Error>(())
//! ```

mod dequantize;
mod divergence;

pub use dequantize::Dequantization;
pub use divergence::{Divergence, ExactMixture, NetworkDivergence, Probe, ScoreDivergence};

use sbdm_symbolic::numeric::Dopri5;

use crate::error::{invalid, Result};
use crate::model::prediction::Prediction;
use crate::sde::GaussianKernel;

/// The form in which the PF-ODE's drift is integrated: affine in a quantity `m` the field
/// evaluates, `f̃ = c_x·x + c_m·m` with divergence `∇·f̃ = d·c_x + c_m·∇·m`
/// ([`coefficients`](DriftForm::coefficients)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DriftForm {
    /// `m` the score `s = ∇log p_t`: `c_x = F`, `c_m = −½g²`.
    Score,
    /// `m` the posterior mean `x̂_0 = E[x_0 | x_t]`: `c_x = ḃ/b`, `c_m = ȧ − a·ḃ/b`,
    /// finite where `a = 0`.
    PosteriorMean,
}

impl DriftForm {
    /// The form `sde`'s PF-ODE is integrated in: [`PosteriorMean`](Self::PosteriorMean)
    /// when the kernel is pure noise at `T` (where `F` and `g²` diverge), else
    /// [`Score`](Self::Score).
    pub fn for_kernel<S: GaussianKernel + ?Sized>(sde: &S) -> DriftForm {
        if sde.is_pure_noise(sde.time_range().1) {
            DriftForm::PosteriorMean
        } else {
            DriftForm::Score
        }
    }

    /// `(c_x, c_m)` at `t`: the drift is `c_x·x + c_m·m`.
    pub fn coefficients<S: GaussianKernel + ?Sized>(self, sde: &S, t: f64) -> (f64, f64) {
        match self {
            DriftForm::Score => (sde.drift_coef(t), -0.5 * sde.diffusion_sq(t)),
            DriftForm::PosteriorMean => {
                let rate = sde.std_dt(t) / sde.std(t);
                (rate, sde.mean_coef_dt(t) - sde.mean_coef(t) * rate)
            }
        }
    }

    /// The prediction that is `m`: the score or `x_0`.
    pub fn prediction(self) -> Prediction {
        match self {
            DriftForm::Score => Prediction::Score,
            DriftForm::PosteriorMean => Prediction::X0,
        }
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
    /// `log p_{t_min}(x)` in nats (with a stochastic divergence, the mean of the `K`
    /// probes' estimates).
    pub log_p: f64,
    /// The standard error of `log_p` over the divergence's probes (`0` for an exact
    /// divergence; `NaN` for one probe).
    pub std_error: f64,
    /// `x_T`: the point carried to `T` by the PF-ODE (its encoding).
    pub x_t: Vec<f64>,
    /// `∫_{t_min}^T ∇·f̃ dt`, the change of variables.
    pub delta_log_p: f64,
    /// Field evaluations (of the score or `x̂_0`) used (the batch's, when points are
    /// integrated together).
    pub nfe: usize,
}

/// `log p_{t_min}(x)` of one point: [`log_likelihoods`] of a batch of one, so the step
/// control is the point's own.
pub fn log_likelihood<S: GaussianKernel + ?Sized>(
    sde: &S,
    field: &mut dyn ScoreDivergence,
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
    let mut all = log_likelihoods(sde, field, x, 0, log_prior, tol)?;
    Ok(all.remove(0))
}

/// `log p_{t_min}(x)` for each row of the batch `x` (`n × d`, row-major; the rows are
/// samples `first .. first + n` of the data, which seeds a stochastic divergence's probes
/// so a sample's estimate does not depend on the batch it is in): the PF-ODE of `sde`
/// under `field` integrated from `t_min` to `T` together with the change of variables,
/// plus `log_prior(x_T)` — the SDE's [`prior_log_prob`](GaussianKernel::prior_log_prob)
/// for the usual estimate, or an exact `log p_T` to isolate the solver's error.
///
/// The batch is one ODE system with one step-size control: a step is accepted when every
/// component of every row is within tolerance, so each row is at least as accurate as
/// alone (a batch of one is per-sample control), at the cost of the hardest row's steps.
pub fn log_likelihoods<S: GaussianKernel + ?Sized>(
    sde: &S,
    field: &mut dyn ScoreDivergence,
    x: &[f64],
    first: usize,
    log_prior: &dyn Fn(&[f64]) -> f64,
    tol: OdeTolerance,
) -> Result<Vec<PointLikelihood>> {
    let d = field.dim();
    if d == 0 || x.is_empty() || x.len() % d != 0 {
        return Err(invalid!(
            "the batch holds {} values, not a whole number of points of dimension {d}",
            x.len()
        ));
    }
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        return Err(invalid!(
            "coordinate {} of point {} is not finite",
            i % d,
            i / d
        ));
    }
    let n = x.len() / d;
    let (t0, t1) = sde.time_range();
    let form = DriftForm::for_kernel(sde);
    field.check_form(form, t1)?;
    field.begin(first, n)?;
    let k = field.estimates();
    // y = (x rows, the K integrals of each row); y' = (c_x·x + c_m·m, d·c_x + c_m·∇·m).
    let (xs, ks) = (n * d, n * k);
    let mut value = vec![0.0; xs];
    let mut div = vec![0.0; ks];
    let mut failure = None;
    let mut rhs = |t: f64, y: &[f64], dy: &mut [f64]| {
        if failure.is_some() {
            dy.fill(f64::NAN);
            return;
        }
        if let Err(e) = field.evaluate(form, &y[..xs], t, &mut value, &mut div) {
            failure = Some(e);
            dy.fill(f64::NAN);
            return;
        }
        let (c_x, c_m) = form.coefficients(sde, t);
        for i in 0..xs {
            dy[i] = c_x * y[i] + c_m * value[i];
        }
        for i in 0..ks {
            dy[xs + i] = d as f64 * c_x + c_m * div[i];
        }
    };
    let mut y: Vec<f64> = x.iter().copied().chain(vec![0.0; ks]).collect();
    let mut solver = Dopri5::new(tol.rtol, tol.atol, (t1 - t0) / 64.0);
    let mut t = t0;
    let reached = solver.advance(&mut rhs, &mut t, &mut y, t1);
    if let Some(e) = failure {
        return Err(e);
    }
    reached.ok_or_else(|| {
        invalid!("the probability-flow ODE could not be integrated from {t0} to {t1} (non-finite state or vanishing steps)")
    })?;
    let mut out = Vec::with_capacity(n);
    for (row, x_t) in y[..xs].chunks_exact(d).enumerate() {
        let deltas = &y[xs + row * k..xs + (row + 1) * k];
        let (delta_log_p, std_error) = match field.is_exact() {
            true => (deltas[0], 0.0),
            false => mean_and_std_error(deltas),
        };
        let log_p = log_prior(x_t) + delta_log_p;
        if !log_p.is_finite() {
            return Err(invalid!(
                "the log-likelihood of point {} is not finite ({log_p})",
                first + row
            ));
        }
        out.push(PointLikelihood {
            log_p,
            std_error,
            x_t: x_t.to_vec(),
            delta_log_p,
            nfe: solver.evaluations,
        });
    }
    Ok(out)
}

/// `nats` per sample of dimension `d` in bits per dimension: `nats/(d·ln 2)`.
pub fn bits_per_dim(nats: f64, d: usize) -> f64 {
    nats / (d as f64 * std::f64::consts::LN_2)
}

/// The mean of `v` and its standard error `sd/√len` (`NaN` for fewer than two values).
pub fn mean_and_std_error(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    if v.len() < 2 {
        return (mean, f64::NAN);
    }
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, (var / n).sqrt())
}
