//! The exact oracle: a Gaussian mixture with isotropic components. Under any linear
//! SDE its diffused density is again a mixture, `p_t = Σ w_k N(a μ_k, (a² s_k² + b²) I)`,
//! so its score, eps, x_0, log-density, class posteriors and samples are exact at every t.
//!
//! The batched functions ([`GaussianMixture::score`], [`GaussianMixture::log_prob`],
//! [`GaussianMixture::class_posterior`], the [`MixtureScore`] model) run the vectorised,
//! multi-threaded kernel of `batch.rs`; the point-wise ones (`score_at`, `log_prob_at`,
//! `class_posterior_at`) are the straightforward form it is tested against.

mod batch;

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::Deserialize;

use crate::error::{invalid, Error, Result};
use crate::host::{with_host_values, HostValues};
use crate::model::prediction::Prediction;
use crate::model::{time_in_dtype, Condition, Conditioning, ScoreModel};
use crate::sde::GaussianKernel;
use batch::{Kernels, Quantity, Real};

/// A Gaussian mixture `Σ_k w_k N(μ_k, s_k² I)` in `D` dimensions.
#[derive(Clone, Debug, PartialEq)]
pub struct GaussianMixture {
    weights: Vec<f64>,
    means: Vec<Vec<f64>>,
    stds: Vec<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MixtureFile {
    weights: Vec<f64>,
    means: Vec<Vec<f64>>,
    stds: Vec<f64>,
}

/// The largest magnitude of a mixture's mean coordinates and stds (and the inverse of
/// the smallest std): squared distances over variances stay far from overflow.
pub const MAX_SCALE: f64 = 1e100;

impl GaussianMixture {
    /// A mixture; weights must be positive and sum to 1 (within 1e-6), every mean must
    /// have the same dimension, every std must be > 0; means within ±[`MAX_SCALE`] and
    /// stds within `[1/MAX_SCALE, MAX_SCALE]`.
    pub fn new(weights: Vec<f64>, means: Vec<Vec<f64>>, stds: Vec<f64>) -> Result<Self> {
        let k = weights.len();
        if k == 0 {
            return Err(invalid!("mixture: no components"));
        }
        if means.len() != k || stds.len() != k {
            return Err(invalid!(
                "mixture: {k} weights but {} means and {} stds",
                means.len(),
                stds.len()
            ));
        }
        if let Some((i, w)) = weights
            .iter()
            .enumerate()
            .find(|(_, w)| !(w.is_finite() && **w > 0.0))
        {
            return Err(invalid!("mixture: weight {i} is {w}; weights must be > 0"));
        }
        let sum: f64 = weights.iter().sum();
        if (sum - 1.0).abs() > 1e-6 {
            return Err(invalid!("mixture: weights sum to {sum}, not 1"));
        }
        let d = means[0].len();
        if d == 0 {
            return Err(invalid!("mixture: means have dimension 0"));
        }
        if let Some((i, m)) = means.iter().enumerate().find(|(_, m)| m.len() != d) {
            return Err(invalid!(
                "mixture: ragged means: mean 0 has {d} components, mean {i} has {}",
                m.len()
            ));
        }
        if means.iter().flatten().any(|v| !v.is_finite()) {
            return Err(invalid!("mixture: a mean is not finite"));
        }
        if let Some((i, v)) = means
            .iter()
            .enumerate()
            .find_map(|(i, m)| m.iter().find(|v| v.abs() > MAX_SCALE).map(|v| (i, v)))
        {
            return Err(invalid!(
                "mixture: mean {i} has the coordinate {v}, beyond ±{MAX_SCALE:e} (the score would overflow)"
            ));
        }
        if let Some((i, s)) = stds
            .iter()
            .enumerate()
            .find(|(_, s)| !(s.is_finite() && **s > 0.0))
        {
            return Err(invalid!("mixture: std {i} is {s}; stds must be > 0"));
        }
        if let Some((i, s)) = stds
            .iter()
            .enumerate()
            .find(|(_, s)| !(1.0 / MAX_SCALE..=MAX_SCALE).contains(*s))
        {
            return Err(invalid!(
                "mixture: std {i} is {s}, outside [{:e}, {MAX_SCALE:e}] (the score would overflow)",
                1.0 / MAX_SCALE
            ));
        }
        Ok(GaussianMixture {
            weights,
            means,
            stds,
        })
    }

    /// Parses `{"weights": [...], "means": [[...], ...], "stds": [...]}`.
    pub fn from_json(text: &str) -> Result<Self> {
        let f: MixtureFile = serde_json::from_str(text).map_err(|e| Error::Format {
            path: "mixture JSON".into(),
            message: e.to_string(),
        })?;
        GaussianMixture::new(f.weights, f.means, f.stds)
    }

    /// Reads a mixture JSON file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })?;
        GaussianMixture::from_json(&text).map_err(|e| match e {
            Error::Format { message, .. } => Error::Format {
                path: path.display().to_string(),
                message,
            },
            Error::Invalid(m) => Error::Format {
                path: path.display().to_string(),
                message: m,
            },
            e => e,
        })
    }

    /// `n` equal-weight components of std `std` on a circle of radius `radius` (2-D).
    pub fn ring(n: usize, radius: f64, std: f64) -> Result<Self> {
        let means = (0..n)
            .map(|k| {
                let a = 2.0 * std::f64::consts::PI * k as f64 / n as f64;
                vec![radius * a.cos(), radius * a.sin()]
            })
            .collect();
        GaussianMixture::new(vec![1.0 / n as f64; n], means, vec![std; n])
    }

    /// The dimension `D`.
    pub fn dim(&self) -> usize {
        self.means[0].len()
    }
    /// The number of components.
    pub fn len(&self) -> usize {
        self.weights.len()
    }
    /// Always false: a mixture has at least one component.
    pub fn is_empty(&self) -> bool {
        false
    }
    /// The weights.
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }
    /// The means.
    pub fn means(&self) -> &[Vec<f64>] {
        &self.means
    }
    /// The stds.
    pub fn stds(&self) -> &[f64] {
        &self.stds
    }

    /// `E|x_0|² = Σ w_k (|μ_k|² + D s_k²)`.
    pub fn second_moment(&self) -> f64 {
        let d = self.dim() as f64;
        self.weights
            .iter()
            .zip(&self.means)
            .zip(&self.stds)
            .map(|((w, m), s)| w * (m.iter().map(|v| v * v).sum::<f64>() + d * s * s))
            .sum()
    }

    /// Component `k` under the kernel `(a, b)` ([`ComponentAt`]).
    fn component_at(&self, k: usize, a: f64, b: f64) -> ComponentAt {
        let s = self.stds[k];
        let var = a * a * s * s + b * b;
        ComponentAt {
            var,
            gain: a * s * s / var,
        }
    }

    /// Per-component log-weights + log-densities at time `(a, b)` for one point.
    fn log_terms(&self, x: &[f64], a: f64, b: f64, out: &mut [f64]) {
        let d = self.dim() as f64;
        for (k, o) in out.iter_mut().enumerate().take(self.len()) {
            let var = self.component_at(k, a, b).var;
            let mut r2 = 0.0;
            for (xi, mi) in x.iter().zip(&self.means[k]) {
                let u = xi - a * mi;
                r2 += u * u;
            }
            *o = self.weights[k].ln()
                - 0.5 * d * (2.0 * std::f64::consts::PI * var).ln()
                - 0.5 * r2 / var;
        }
    }

    /// Posterior class probabilities `p(k | x_t)` at `(a, b)`, written into `out`;
    /// returns `log p_t(x)`.
    fn posterior(&self, x: &[f64], a: f64, b: f64, out: &mut [f64]) -> f64 {
        self.log_terms(x, a, b, out);
        let m = out.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let s: f64 = out.iter().map(|l| (l - m).exp()).sum();
        for l in out.iter_mut() {
            *l = (*l - m).exp() / s;
        }
        m + s.ln()
    }

    /// The exact score of `p_t` at one point, `(a, b)` the kernel at `t`.
    pub fn score_at(&self, x: &[f64], a: f64, b: f64, out: &mut [f64]) {
        let mut r = vec![0.0; self.len()];
        self.posterior(x, a, b, &mut r);
        out.iter_mut().for_each(|o| *o = 0.0);
        for (k, rk) in r.iter().enumerate() {
            let var = a * a * self.stds[k] * self.stds[k] + b * b;
            for ((o, xi), mi) in out.iter_mut().zip(x).zip(&self.means[k]) {
                *o -= rk * (xi - a * mi) / var;
            }
        }
    }

    /// The exact score of `p_t` at one point, written into `score`, and its divergence
    /// `∇·s = Σ_k r_k·(|s_k|² − d/v_k) − |s|²` (`r_k` the class posterior, `s_k` and `v_k`
    /// component `k`'s score and variance), `(a, b)` the kernel at `t`.
    pub fn score_divergence_at(&self, x: &[f64], a: f64, b: f64, score: &mut [f64]) -> f64 {
        let mut r = vec![0.0; self.len()];
        self.posterior(x, a, b, &mut r);
        score.iter_mut().for_each(|o| *o = 0.0);
        let d = x.len() as f64;
        let mut div = 0.0;
        for (k, rk) in r.iter().enumerate() {
            let var = a * a * self.stds[k] * self.stds[k] + b * b;
            let mut sk2 = 0.0;
            for ((o, xi), mi) in score.iter_mut().zip(x).zip(&self.means[k]) {
                let sk = -(xi - a * mi) / var;
                sk2 += sk * sk;
                *o += rk * sk;
            }
            div += rk * (sk2 - d / var);
        }
        div - score.iter().map(|v| v * v).sum::<f64>()
    }

    /// The exact posterior mean `x̂_0 = E[x_0 | x_t = x]` at one point, written into `x0`,
    /// and its divergence `∇·x̂_0`, `(a, b)` the kernel at `t`. Given component `k`, `x_0`
    /// is Gaussian with mean `m_k = μ_k + gain_k·(x − a·μ_k)` and variance
    /// `c_k = s_k²·b²/v_k` per coordinate (`v_k = a²·s_k² + b²`, `gain_k = a·s_k²/v_k`),
    /// so `x̂_0 = Σ_k r_k·m_k` (`r_k`
    /// the class posterior, as the batched [`MixtureScore::predicting_x0`]) and, by
    /// Tweedie's `∇ₓx̂_0 = (a/b²)·Cov[x_0 | x_t]`,
    /// `∇·x̂_0 = (a/b²)·(d·Σ_k r_k·c_k + Σ_k r_k·|m_k − x̂_0|²)
    ///        = d·Σ_k r_k·gain_k + (a/b²)·Σ_k r_k·|m_k − x̂_0|²`
    /// (the spread of the means taken about `x̂_0`, not as `Σ r_k|m_k|² − |x̂_0|²`, which
    /// cancels). Finite where `a = 0` (pure noise: `x̂_0` is the data mean and `∇·x̂_0 = 0`).
    pub fn posterior_mean_divergence_at(&self, x: &[f64], a: f64, b: f64, x0: &mut [f64]) -> f64 {
        let mut r = vec![0.0; self.len()];
        self.posterior(x, a, b, &mut r);
        let components: Vec<ComponentAt> = (0..self.len())
            .map(|k| self.component_at(k, a, b))
            .collect();
        let m_k = |k: usize, i: usize| {
            let mu = self.means[k][i];
            mu + components[k].gain * (x[i] - a * mu)
        };
        x0.iter_mut().for_each(|o| *o = 0.0);
        for (k, rk) in r.iter().enumerate() {
            for (i, o) in x0.iter_mut().enumerate() {
                *o += rk * m_k(k, i);
            }
        }
        let d = x.len() as f64;
        let (mut within, mut between) = (0.0, 0.0);
        for (k, rk) in r.iter().enumerate() {
            within += rk * components[k].gain;
            let spread: f64 = x0
                .iter()
                .enumerate()
                .map(|(i, m)| (m_k(k, i) - m).powi(2))
                .sum();
            between += rk * spread;
        }
        d * within + a / (b * b) * between
    }

    /// The exact score of component `k` of `p_t` at one point, `(a, b)` the kernel at `t`:
    /// `−(x − a·μ_k)/(a²·s_k² + b²)`.
    pub fn component_score_at(&self, k: usize, x: &[f64], a: f64, b: f64, out: &mut [f64]) {
        let var = a * a * self.stds[k] * self.stds[k] + b * b;
        for ((o, xi), mi) in out.iter_mut().zip(x).zip(&self.means[k]) {
            *o = -(xi - a * mi) / var;
        }
    }

    /// Component `k` alone, as a one-component mixture (its class-conditional law).
    pub fn component(&self, k: usize) -> Result<GaussianMixture> {
        if k >= self.len() {
            return Err(invalid!(
                "component {k} is out of range: the mixture has {} components",
                self.len()
            ));
        }
        GaussianMixture::new(vec![1.0], vec![self.means[k].clone()], vec![self.stds[k]])
    }

    /// The mixture with its components reweighted by `counts` (e.g. how many samples of
    /// each class were drawn): the law of a sample whose class is drawn from `counts`.
    /// Components with count 0 are dropped.
    pub fn reweighted(&self, counts: &[usize]) -> Result<GaussianMixture> {
        if counts.len() != self.len() {
            return Err(invalid!(
                "{} counts for a mixture of {} components",
                counts.len(),
                self.len()
            ));
        }
        let total: usize = counts.iter().sum();
        if total == 0 {
            return Err(invalid!("every count is 0"));
        }
        let keep: Vec<usize> = (0..self.len()).filter(|&k| counts[k] > 0).collect();
        GaussianMixture::new(
            keep.iter()
                .map(|&k| counts[k] as f64 / total as f64)
                .collect(),
            keep.iter().map(|&k| self.means[k].clone()).collect(),
            keep.iter().map(|&k| self.stds[k]).collect(),
        )
    }

    /// `log p_t(x)` at one point.
    pub fn log_prob_at(&self, x: &[f64], a: f64, b: f64) -> f64 {
        let mut r = vec![0.0; self.len()];
        self.posterior(x, a, b, &mut r)
    }

    /// Class posteriors `p(k | x_t)` at one point.
    pub fn class_posterior_at(&self, x: &[f64], a: f64, b: f64) -> Vec<f64> {
        let mut r = vec![0.0; self.len()];
        self.posterior(x, a, b, &mut r);
        r
    }

    /// The exact score of `p_t` for a batch `[N, D]` at time `t` of `sde`.
    pub fn score<S: GaussianKernel + ?Sized>(&self, sde: &S, x: &Tensor, t: f64) -> Result<Tensor> {
        self.evaluate_batch(x, Kernels::Same(kernel_at(sde, t)), Quantity::Score)
    }

    /// `log p_t(x)` for a batch `[N, D]`, as f64 values.
    pub fn log_prob<S: GaussianKernel + ?Sized>(
        &self,
        sde: &S,
        x: &Tensor,
        t: f64,
    ) -> Result<Vec<f64>> {
        let kernels = Kernels::Same(kernel_at(sde, t));
        self.with_rows(x, |rows| {
            let n = rows.len() / self.dim();
            let mut out = vec![0.0f64; n];
            match rows {
                HostValues::F32(v) => {
                    batch::evaluate(self, v, kernels, Quantity::LogDensity, &mut out)?
                }
                HostValues::F64(v) => {
                    batch::evaluate(self, v, kernels, Quantity::LogDensity, &mut out)?
                }
            }
            Ok(out)
        })
    }

    /// The class posteriors `p_t(k | x)` for a batch `[N, D]`: `[N, K]`, rows summing to 1.
    pub fn class_posterior<S: GaussianKernel + ?Sized>(
        &self,
        sde: &S,
        x: &Tensor,
        t: f64,
    ) -> Result<Tensor> {
        self.evaluate_batch(x, Kernels::Same(kernel_at(sde, t)), Quantity::Posterior)
    }

    /// Calls `f` with the rows of `x` (`[N, D]`) as one contiguous f32 or f64 slice on
    /// the CPU ([`with_host_values`]: borrowed when they already are).
    fn with_rows<R>(&self, x: &Tensor, f: impl FnOnce(HostValues) -> Result<R>) -> Result<R> {
        let d = self.dim();
        let dims = x.dims();
        if dims.len() != 2 || dims[1] != d {
            return Err(invalid!(
                "expected a batch of shape [N, {d}], got {:?}",
                dims
            ));
        }
        with_host_values(x, f)
    }

    /// `quantity` at every row of `x`, as a tensor `[N, width]` of `x`'s dtype and device.
    fn evaluate_batch(&self, x: &Tensor, kernels: Kernels, quantity: Quantity) -> Result<Tensor> {
        let width = quantity.width(self.dim(), self.len());
        let out = self.with_rows(x, |rows| {
            let n = rows.len() / self.dim();
            Ok(match rows {
                HostValues::F32(v) => {
                    let mut out = vec![0.0f32; n * width];
                    batch::evaluate(self, v, kernels, quantity, &mut out)?;
                    Tensor::from_vec(out, (n, width), &Device::Cpu)?
                }
                HostValues::F64(v) => {
                    let mut out = vec![0.0f64; n * width];
                    batch::evaluate(self, v, kernels, quantity, &mut out)?;
                    Tensor::from_vec(out, (n, width), &Device::Cpu)?
                }
            })
        })?;
        Ok(out.to_device(x.device())?.to_dtype(x.dtype())?)
    }

    /// `n` exact samples of `p_0` (f32 `[n, D]`), seeded.
    pub fn sample(&self, n: usize, seed: u64, device: &Device) -> Result<Tensor> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let d = self.dim();
        let mut data = Vec::with_capacity(n * d);
        let cdf: Vec<f64> = self
            .weights
            .iter()
            .scan(0.0, |acc, w| {
                *acc += w;
                Some(*acc)
            })
            .collect();
        for _ in 0..n {
            let u: f64 = rng.random();
            let k = cdf.iter().position(|c| u < *c).unwrap_or(self.len() - 1);
            for i in 0..d {
                let z: f64 = StandardNormal.sample(&mut rng);
                data.push((self.means[k][i] + self.stds[k] * z) as f32);
            }
        }
        Ok(Tensor::from_vec(data, (n, d), device)?)
    }

    /// `n` exact samples of `p_t` under `sde`: `a(t)·x_0 + b(t)·eps`, seeded.
    pub fn sample_at<S: GaussianKernel + ?Sized>(
        &self,
        sde: &S,
        t: f64,
        n: usize,
        seed: u64,
        device: &Device,
    ) -> Result<Tensor> {
        let x0 = self.sample(n, seed, device)?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x9e37_79b9_7f4a_7c15);
        let eps: Vec<f32> = (0..n * self.dim())
            .map(|_| {
                let z: f64 = StandardNormal.sample(&mut rng);
                z as f32
            })
            .collect();
        let eps = Tensor::from_vec(eps, (n, self.dim()), device)?;
        Ok((x0.affine(sde.mean_coef(t), 0.0)? + eps.affine(sde.std(t), 0.0)?)?)
    }

    /// The component nearest (in units of its std) to each row: a hard class label.
    pub fn nearest_component(&self, x: &Tensor) -> Result<Vec<usize>> {
        fn nearest<T: Real>(m: &GaussianMixture, rows: &[T]) -> Vec<usize> {
            let d = m.dim();
            let inv_var: Vec<f64> = m.stds.iter().map(|s| 1.0 / (s * s)).collect();
            rows.chunks_exact(d)
                .map(|r| {
                    let mut best = (0, f64::INFINITY);
                    for (k, mean) in m.means.iter().enumerate() {
                        let d2: f64 = r
                            .iter()
                            .zip(mean)
                            .map(|(a, b)| (a.to_f64() - b) * (a.to_f64() - b))
                            .sum::<f64>()
                            * inv_var[k];
                        if d2 < best.1 {
                            best = (k, d2);
                        }
                    }
                    best.0
                })
                .collect()
        }
        self.with_rows(x, |rows| {
            Ok(match rows {
                HostValues::F32(v) => nearest(self, v),
                HostValues::F64(v) => nearest(self, v),
            })
        })
    }

    /// The exact model of this mixture under `sde`: it predicts the score, or, where the
    /// kernel reaches pure noise (`a(T) = 0`, where no score or ε model can give `x̂_0`),
    /// the posterior mean `x̂_0` ([`MixtureScore::predicting_x0`]).
    pub fn model<'a, S: GaussianKernel + ?Sized>(&'a self, sde: &'a S) -> MixtureScore<'a, S> {
        let score = MixtureScore {
            mixture: self,
            sde,
            output: Prediction::Score,
        };
        if sde.is_pure_noise(sde.time_range().1) {
            score.predicting_x0()
        } else {
            score
        }
    }
}

/// One component `N(μ_k, s_k²I)` under the kernel `(a, b)`: `x_t | k ~ N(a·μ_k, v_k·I)`,
/// and the posterior of `x_0` given `x_t = x` and `k` is
/// `N(μ_k + gain_k·(x − a·μ_k), (s_k²·b²/v_k)·I)`.
#[derive(Clone, Copy, Debug)]
struct ComponentAt {
    /// `v_k = a²·s_k² + b²`.
    var: f64,
    /// `gain_k = a·s_k²/v_k`.
    gain: f64,
}

/// `(a(t), b(t))`, the kernel of `sde` at `t`.
fn kernel_at<S: GaussianKernel + ?Sized>(sde: &S, t: f64) -> (f64, f64) {
    (sde.mean_coef(t), sde.std(t))
}

/// A batch `[N, D]` as rows of f64.
pub fn rows_f64(x: &Tensor, d: usize) -> Result<Vec<Vec<f64>>> {
    let dims = x.dims();
    if dims.len() != 2 || dims[1] != d {
        return Err(invalid!(
            "expected a batch of shape [N, {d}], got {:?}",
            dims
        ));
    }
    Ok(x.to_dtype(candle_core::DType::F64)?.to_vec2()?)
}

/// The exact score of a [`GaussianMixture`] diffused by an SDE, as a [`ScoreModel`]; or,
/// [`predicting_x0`](MixtureScore::predicting_x0), its exact posterior mean
/// `E[x_0 | x_t]`, which stays finite where `a(t) = 0` (pure noise: the data mean).
pub struct MixtureScore<'a, S: ?Sized> {
    mixture: &'a GaussianMixture,
    sde: &'a S,
    output: Prediction,
}

impl<S: GaussianKernel + ?Sized> MixtureScore<'_, S> {
    /// The mixture.
    pub fn mixture(&self) -> &GaussianMixture {
        self.mixture
    }

    /// The exact `∇ₓ log p_t(k | x) = ∇log p_t(x | k) − ∇log p_t(x)` for each row's class
    /// `k` (a component index) at time `t`: the mixture's exact time-dependent classifier.
    pub fn class_log_prob_grad(&self, x: &Tensor, t: f64, classes: &[u32]) -> Result<Tensor> {
        let n = x.dims().first().copied().unwrap_or(0);
        if classes.len() != n {
            return Err(invalid!("{} class labels for {n} samples", classes.len()));
        }
        self.check_classes(classes)?;
        self.mixture.evaluate_batch(
            x,
            Kernels::Same(kernel_at(self.sde, t)),
            Quantity::ClassLogProbGrad(classes),
        )
    }

    /// The classes of `condition` for a batch `x` (one per row, each a component), if any.
    fn classes_of(&self, x: &Tensor, condition: &Condition) -> Result<Option<Vec<u32>>> {
        let classes: Option<Vec<u32>> = condition.labels().map(|y| y.to_vec1()).transpose()?;
        if let Some(c) = &classes {
            let n = x.dims().first().copied().unwrap_or(0);
            if c.len() != n {
                return Err(invalid!("{} class labels for {n} samples", c.len()));
            }
            self.check_classes(c)?;
        }
        Ok(classes)
    }

    /// The same oracle predicting the exact posterior mean `x̂_0 = E[x_0 | x_t]` (with a
    /// class condition, each row's component's).
    pub fn predicting_x0(self) -> Self {
        MixtureScore {
            output: Prediction::X0,
            ..self
        }
    }

    /// The mixture's score or posterior mean (with classes, each row's component's).
    fn quantity<'c>(&self, classes: Option<&'c [u32]>) -> Quantity<'c> {
        match (self.output, classes) {
            (Prediction::X0, None) => Quantity::PosteriorMean,
            (Prediction::X0, Some(c)) => Quantity::ComponentPosteriorMean(c),
            (_, None) => Quantity::Score,
            (_, Some(c)) => Quantity::ComponentScore(c),
        }
    }

    /// Checks that every class is a component.
    fn check_classes(&self, classes: &[u32]) -> Result<()> {
        match classes.iter().find(|k| **k as usize >= self.mixture.len()) {
            Some(k) => Err(invalid!(
                "class {k} is out of range: the mixture has {} components",
                self.mixture.len()
            )),
            None => Ok(()),
        }
    }
}

impl<S: GaussianKernel + ?Sized> ScoreModel for MixtureScore<'_, S> {
    fn prediction(&self) -> Prediction {
        self.output
    }

    /// The components are the classes.
    fn conditioning(&self) -> Conditioning {
        Conditioning::Classes(self.mixture.len())
    }

    /// The exact score of `p_t`, or under [`Condition::Classes`] the exact score of each
    /// row's component: `−(x − a·μ_k)/(a²·s_k² + b²)`.
    fn forward(&self, x: &Tensor, t: &Tensor, condition: &Condition) -> Result<Tensor> {
        let ts: Vec<f64> = t.to_dtype(DType::F64)?.to_vec1()?;
        let n = x.dims().first().copied().unwrap_or(0);
        if ts.len() != n {
            return Err(invalid!("{} times for {n} samples", ts.len()));
        }
        let classes = self.classes_of(x, condition)?;
        // One kernel for the usual batch at one time; else each row's, computed once per
        // run of equal times.
        let per_row: Vec<(f64, f64)>;
        let kernels = match ts.first() {
            Some(&t0) if ts.iter().all(|&t| t == t0) => Kernels::Same(kernel_at(self.sde, t0)),
            _ => {
                let mut last = (f64::NAN, (0.0, 0.0));
                per_row = ts
                    .iter()
                    .map(|&t| {
                        if t != last.0 {
                            last = (t, kernel_at(self.sde, t));
                        }
                        last.1
                    })
                    .collect();
                Kernels::PerRow(&per_row)
            }
        };
        self.mixture
            .evaluate_batch(x, kernels, self.quantity(classes.as_deref()))
    }

    /// Every row at `t` (as the state's dtype holds it): one kernel, no tensor of times.
    fn forward_at(&self, x: &Tensor, t: f64, condition: &Condition) -> Result<Tensor> {
        let t = time_in_dtype(t, x.dtype())?;
        let classes = self.classes_of(x, condition)?;
        self.mixture.evaluate_batch(
            x,
            Kernels::Same(kernel_at(self.sde, t)),
            self.quantity(classes.as_deref()),
        )
    }
}
