//! The model-dependent part of the PF-ODE's change of variables: the quantity `m` the
//! drift is affine in — the score `s`, or the posterior mean `x̂_0` on an SDE that reaches
//! pure noise ([`DriftForm`]) — and its divergence `∇·m`: analytic for the
//! Gaussian-mixture oracle, and for a network by automatic differentiation — exactly, one
//! vector–Jacobian product per dimension (`∂m_i/∂x_i` is entry `i` of `e_iᵀ·J`), or by
//! Hutchinson–Skilling's unbiased estimate `∇·m = E_v[vᵀ·J·v]` over probes `v` with
//! `E[v·vᵀ] = I` (Rademacher or Gaussian; Hutchinson 1989, Skilling 1989; FFJORD,
//! Grathwohl et al. 2019, keep each probe fixed along a trajectory so the ODE stays
//! smooth for the adaptive solver).
//!
//! With `K` probes each sample carries `K` integrals `∫(d·c_x + c_m·vₖᵀJvₖ) dt`, one per
//! probe, along the same trajectory: their mean is the estimate and their spread its
//! standard error.

use candle_core::{DType, Device, Tensor, Var};

use super::DriftForm;
use crate::error::{invalid, Result};
use crate::model::mixture::GaussianMixture;
use crate::sampling::{Denoiser, Guide, Noise};
use crate::sde::GaussianKernel;

/// A score field — or its posterior mean `x̂_0`, in the [`DriftForm`] asked for — and its
/// divergence, evaluated for a batch of points at one time.
pub trait ScoreDivergence {
    /// The dimension `d` of a point.
    fn dim(&self) -> usize;

    /// How many divergence estimates each point gets (`K` probes; 1 when exact).
    fn estimates(&self) -> usize {
        1
    }

    /// Whether the divergence is exact (else an unbiased estimate per probe).
    fn is_exact(&self) -> bool {
        true
    }

    /// Called before a batch is integrated: its rows are samples `first .. first + n`
    /// (a stochastic estimate draws its probes here, seeded per sample).
    fn begin(&mut self, first: usize, n: usize) -> Result<()> {
        let _ = (first, n);
        Ok(())
    }

    /// Refuses, in one line, a form the field cannot give at time `t` (a network
    /// predicting ε or the score has no `x̂_0` where the kernel is pure noise); checked
    /// before an integration starts. By default every form is given everywhere.
    fn check_form(&self, form: DriftForm, t: f64) -> Result<()> {
        let _ = (form, t);
        Ok(())
    }

    /// At the points `x` (`n × d`, row-major) and time `t`: `form`'s quantity `m` (the
    /// score or `x̂_0`) into `value` (`n × d`) and the estimates of its divergence `∇·m`
    /// into `div` (`n × K`, row-major).
    fn evaluate(
        &mut self,
        form: DriftForm,
        x: &[f64],
        t: f64,
        value: &mut [f64],
        div: &mut [f64],
    ) -> Result<()>;
}

/// The exact score of a Gaussian mixture diffused by `sde`, or its exact posterior mean,
/// with the analytic divergence ([`GaussianMixture::score_divergence_at`],
/// [`GaussianMixture::posterior_mean_divergence_at`]).
pub struct ExactMixture<'a, S: ?Sized> {
    /// The forward SDE.
    pub sde: &'a S,
    /// The data distribution.
    pub mixture: &'a GaussianMixture,
}

impl<S: GaussianKernel + ?Sized> ScoreDivergence for ExactMixture<'_, S> {
    fn dim(&self) -> usize {
        self.mixture.dim()
    }

    fn evaluate(
        &mut self,
        form: DriftForm,
        x: &[f64],
        t: f64,
        value: &mut [f64],
        div: &mut [f64],
    ) -> Result<()> {
        let (a, b) = (self.sde.mean_coef(t), self.sde.std(t));
        let d = self.dim();
        for ((row, m), v) in x.chunks_exact(d).zip(value.chunks_exact_mut(d)).zip(div) {
            *v = match form {
                DriftForm::Score => self.mixture.score_divergence_at(row, a, b, m),
                DriftForm::PosteriorMean => self.mixture.posterior_mean_divergence_at(row, a, b, m),
            };
        }
        Ok(())
    }
}

/// How a network's score divergence is computed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Divergence {
    /// Exactly: one vector–Jacobian product per dimension (`d` backward passes per
    /// evaluation).
    Exact,
    /// Hutchinson–Skilling: `K` probes per sample (`K` backward passes per evaluation),
    /// drawn once per sample from `seed` and kept along its trajectory.
    Hutchinson {
        /// `K`, at least 1.
        probes: usize,
        /// The probes' law.
        probe: Probe,
        /// Seeds the probes; sample `i` draws from stream `i`, whatever its batch.
        seed: u64,
    },
}

impl Divergence {
    /// Exact up to dimension `exact_up_to`, Hutchinson's estimate with `probes` probes
    /// above it.
    pub fn for_dimension(
        d: usize,
        exact_up_to: usize,
        probes: usize,
        probe: Probe,
        seed: u64,
    ) -> Divergence {
        if d <= exact_up_to {
            Divergence::Exact
        } else {
            Divergence::Hutchinson {
                probes,
                probe,
                seed,
            }
        }
    }

    /// Checks the settings: at least one probe.
    pub fn validate(&self) -> Result<()> {
        match *self {
            Divergence::Hutchinson { probes: 0, .. } => Err(invalid!(
                "Hutchinson's estimate needs at least one probe, got K = 0"
            )),
            _ => Ok(()),
        }
    }

    /// `exact` or `hutchinson(K, rademacher|gaussian)`, for reports.
    pub fn describe(&self) -> String {
        match *self {
            Divergence::Exact => "exact".to_string(),
            Divergence::Hutchinson { probes, probe, .. } => {
                format!("hutchinson(K = {probes}, {})", probe.name())
            }
        }
    }
}

/// The law of Hutchinson's probes: each has `E[v·vᵀ] = I`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// Entries ±1 with equal probability (the lower-variance choice).
    Rademacher,
    /// Entries N(0, 1).
    Gaussian,
}

impl Probe {
    /// `rademacher` or `gaussian`.
    pub fn name(self) -> &'static str {
        match self {
            Probe::Rademacher => "rademacher",
            Probe::Gaussian => "gaussian",
        }
    }

    /// The probe law named `name`.
    pub fn from_name(name: &str) -> Result<Probe> {
        match name {
            "rademacher" => Ok(Probe::Rademacher),
            "gaussian" => Ok(Probe::Gaussian),
            _ => Err(invalid!(
                "unknown probe `{name}`; valid: rademacher, gaussian"
            )),
        }
    }
}

/// A network's score or posterior mean `x̂_0` (through the SDE's conversion of its
/// prediction, as samplers see it) and its divergence by automatic differentiation
/// through the network and the conversion with respect to its input.
///
/// The model must treat the samples of a batch independently (every network here does:
/// no batch statistics), so the gradient of a sum over the batch is each sample's own.
pub struct NetworkDivergence<'a, S: ?Sized, G: ?Sized> {
    denoiser: Denoiser<'a, S, G>,
    shape: Vec<usize>,
    dtype: DType,
    device: Device,
    method: Divergence,
    probes: Vec<Tensor>,
}

impl<'a, S: GaussianKernel + ?Sized, G: Guide + ?Sized> NetworkDivergence<'a, S, G> {
    /// The score of `model` on `sde` for samples of shape `shape` (`[D]` or `[C, H, W]`),
    /// evaluated in `dtype` on `device`.
    pub fn new(
        sde: &'a S,
        model: &'a G,
        shape: &[usize],
        dtype: DType,
        device: &Device,
        method: Divergence,
    ) -> Result<Self> {
        method.validate()?;
        if shape.is_empty() || shape.contains(&0) {
            return Err(invalid!(
                "a sample's shape must be non-empty, got {shape:?}"
            ));
        }
        Ok(NetworkDivergence {
            denoiser: Denoiser::new(sde, model),
            shape: shape.to_vec(),
            dtype,
            device: device.clone(),
            method,
            probes: Vec::new(),
        })
    }

    /// Network evaluations so far (forward passes; each is followed by `d` or `K`
    /// backward passes).
    pub fn nfe(&self) -> usize {
        self.denoiser.nfe()
    }

    /// `[n, shape..]`.
    fn batch_shape(&self, n: usize) -> Vec<usize> {
        std::iter::once(n)
            .chain(self.shape.iter().copied())
            .collect()
    }

    /// `∇_x Σ (m ⊙ w)` over the batch: row `i` is `wᵢᵀ·Jᵢ`, flattened to `[n, d]`.
    fn vjp(&self, x: &Var, m: &Tensor, w: &Tensor) -> Result<Tensor> {
        let grads = (m * w)?.sum_all()?.backward()?;
        let g = grads.get(x).ok_or_else(|| {
            invalid!("the model's output does not depend on x through differentiable operations")
        })?;
        Ok(g.flatten_from(1)?)
    }
}

impl<S: GaussianKernel + ?Sized, G: Guide + ?Sized> ScoreDivergence
    for NetworkDivergence<'_, S, G>
{
    fn dim(&self) -> usize {
        self.shape.iter().product()
    }

    fn estimates(&self) -> usize {
        match self.method {
            Divergence::Exact => 1,
            Divergence::Hutchinson { probes, .. } => probes,
        }
    }

    fn is_exact(&self) -> bool {
        self.method == Divergence::Exact
    }

    fn begin(&mut self, first: usize, n: usize) -> Result<()> {
        let Divergence::Hutchinson {
            probes,
            probe,
            seed,
        } = self.method
        else {
            return Ok(());
        };
        let mut noise = Noise::new(seed, first as u64, n, &self.shape, &self.device);
        self.probes = (0..probes)
            .map(|_| {
                let z = noise.draw()?;
                let v = match probe {
                    Probe::Gaussian => z,
                    // sign(z): ±1 with equal probability.
                    Probe::Rademacher => {
                        (z.ge(0.0)?.to_dtype(DType::F32)? * 2.0)?.affine(1.0, -1.0)?
                    }
                };
                Ok(v.to_dtype(self.dtype)?)
            })
            .collect::<Result<_>>()?;
        Ok(())
    }

    /// The model's prediction converted to `form.prediction()`: an ε or score model has
    /// no `x̂_0` where the kernel is pure noise ([`Denoiser::check_prediction`]).
    fn check_form(&self, form: DriftForm, t: f64) -> Result<()> {
        self.denoiser.check_prediction(t, form.prediction())
    }

    fn evaluate(
        &mut self,
        form: DriftForm,
        x: &[f64],
        t: f64,
        value: &mut [f64],
        div: &mut [f64],
    ) -> Result<()> {
        let d = self.dim();
        let n = x.len() / d;
        let input =
            Tensor::from_slice(x, self.batch_shape(n), &self.device)?.to_dtype(self.dtype)?;
        let var = Var::from_tensor(&input)?;
        // The quantity the integrated drift is affine in, differentiated as it is computed.
        let s = self
            .denoiser
            .predict(var.as_tensor(), t, form.prediction())?;
        let values = s.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
        value.copy_from_slice(&values);
        match self.method {
            Divergence::Exact => {
                div.fill(0.0);
                for i in 0..d {
                    // e_i in every row: the gradient's column i is ∂s_i/∂x_i.
                    let mut e = vec![0.0f64; d];
                    e[i] = 1.0;
                    let e_i = Tensor::from_vec(e, d, &self.device)?
                        .to_dtype(self.dtype)?
                        .reshape(self.shape.as_slice())?
                        .broadcast_as(s.shape())?;
                    let column = self.vjp(&var, &s, &e_i)?.narrow(1, i, 1)?;
                    let column = column
                        .flatten_all()?
                        .to_dtype(DType::F64)?
                        .to_vec1::<f64>()?;
                    for (v, c) in div.iter_mut().zip(column) {
                        *v += c;
                    }
                }
            }
            Divergence::Hutchinson { .. } => {
                let k = self.probes.len();
                if self.probes.first().map(|p| p.dim(0)).transpose()? != Some(n) {
                    return Err(invalid!(
                        "the probes were drawn for another batch: call begin() first"
                    ));
                }
                for (j, v) in self.probes.iter().enumerate() {
                    let g = self.vjp(&var, &s, v)?;
                    let est = (g * v.flatten_from(1)?)?.sum(1)?;
                    let est = est.to_dtype(DType::F64)?.to_vec1::<f64>()?;
                    for (row, e) in est.into_iter().enumerate() {
                        div[row * k + j] = e;
                    }
                }
            }
        }
        Ok(())
    }
}
