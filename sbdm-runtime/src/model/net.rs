//! A neural score model for a declared SDE: a [`Network`] with the SDE-aware input
//! scaling, noise conditioning and output parameterisation around it.
//!
//! For `x_t = a·x_0 + b·ε` with `σ = b/a` and data standard deviation `σ_d`
//! (Karras et al. 2022, written for any linear SDE):
//! - the network sees `c_in·x_t` with `c_in = 1/√(b² + a²σ_d²)` (unit variance input for
//!   every SDE: VP, VE and EDM alike) and the conditioning `c_noise = ln(σ)/4`;
//! - its output `F` means the chosen [`Prediction`] directly, or, with `precondition`,
//!   `x_0 = c_skip·x_t/a + c_out·F` with `c_skip = σ_d²/(σ² + σ_d²)`,
//!   `c_out = σ·σ_d/√(σ² + σ_d²)` (then the model reports [`Prediction::X0`]).

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use super::weights::{Trainable, Weights};
use crate::error::{invalid, Result};
use crate::model::prediction::Prediction;
use crate::model::{time_in_dtype, Condition, Conditioning, ScoreModel};
use crate::nn::{NetConfig, Network};
use crate::parallel;
use crate::sde::GaussianKernel;

/// A score model's configuration: network, parameterisation, preconditioning.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// The network.
    pub net: NetConfig,
    /// What the network's output means (without `precondition`).
    pub prediction: Prediction,
    /// EDM-style output preconditioning: the output is a skip-connected `x_0`.
    pub precondition: bool,
    /// The data's standard deviation per coordinate, `σ_d` (input scaling, and the
    /// preconditioning's skip weights).
    pub sigma_data: f64,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            net: NetConfig::Mlp(Default::default()),
            prediction: Prediction::Eps,
            precondition: false,
            sigma_data: 1.0,
        }
    }
}

impl ModelConfig {
    /// The quickstart's model of 2-D data with second moment `E|x|²`: a 3 × 256 SiLU MLP
    /// with a 64-d Gaussian Fourier time embedding (scale 16), eps output with EDM
    /// preconditioning at `σ_d = √(E|x|²/2)` (the data's per-coordinate scale).
    pub fn toy_mlp(second_moment: f64) -> Self {
        ModelConfig {
            net: NetConfig::Mlp(crate::nn::MlpConfig {
                dim: 2,
                width: 256,
                depth: 3,
                embed: crate::nn::EmbedConfig::Fourier {
                    dim: 64,
                    scale: 16.0,
                },
                num_classes: 0,
            }),
            prediction: Prediction::Eps,
            precondition: true,
            sigma_data: (second_moment / 2.0).sqrt(),
        }
    }

    /// Checks the configuration: a finite positive `σ_d`, a trainable prediction.
    pub fn validate(&self) -> Result<()> {
        if !(self.sigma_data.is_finite() && self.sigma_data > 0.0) {
            return Err(invalid!(
                "sigma_data must be finite and > 0, got {}",
                self.sigma_data
            ));
        }
        if let Prediction::PosteriorMean { .. } = self.prediction {
            return Err(invalid!(
                "a network cannot be trained to predict a posterior mean; choose one of {}",
                prediction_names()
            ));
        }
        Ok(())
    }

    /// Checks the configuration against the SDE it models: where the kernel reaches pure
    /// noise (`a(T) = 0`) EDM's preconditioning (which scales `x_t/a`) is undefined.
    pub fn check_for<S: GaussianKernel + ?Sized>(&self, sde: &S) -> Result<()> {
        let t_max = sde.time_range().1;
        if self.precondition && sde.is_pure_noise(t_max) {
            return Err(invalid!(
                "EDM preconditioning divides by a(t), which is 0 at t = {t_max} for this SDE \
                 (pure noise); train without it, predicting x0, v or flow"
            ));
        }
        Ok(())
    }

    /// What the model's output means after the preconditioning.
    pub fn output(&self) -> Prediction {
        if self.precondition {
            Prediction::X0
        } else {
            self.prediction
        }
    }
}

/// The trainable predictions' names, comma separated.
pub fn prediction_names() -> String {
    Prediction::ALL
        .iter()
        .map(|(_, n)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The largest `ln σ` the noise conditioning sees: at a pure-noise end (`a = 0`,
/// `σ = ∞`) the conditioning stays finite, `c_noise = 20/4`. Every other built-in SDE stays
/// far below it (VE's `σ_max = 50`, EDM's 80: `ln σ < 5`).
const MAX_LN_SIGMA: f64 = 20.0;

/// Per-row coefficients of the wrapper at times `t`.
#[derive(Clone, Debug)]
pub struct Coefficients {
    /// `a(t)`.
    pub a: Vec<f64>,
    /// `b(t)`.
    pub b: Vec<f64>,
    /// The input scale `c_in`.
    pub c_in: Vec<f64>,
    /// The noise conditioning `ln(σ)/4`.
    pub c_noise: Vec<f64>,
    /// Preconditioning skip weight on `x_t/a` (0 without preconditioning).
    pub c_skip: Vec<f64>,
    /// Preconditioning output weight (1 without preconditioning).
    pub c_out: Vec<f64>,
}

impl Coefficients {
    /// The coefficients at times `t` of a network for `sde` with data std `sigma_data`
    /// (`σ_d`), with EDM's output preconditioning if `precondition`: the one place the
    /// input scaling and noise conditioning are written, for score models and classifiers.
    pub fn new<S: GaussianKernel + ?Sized>(
        sde: &S,
        sigma_data: f64,
        precondition: bool,
        t: &[f64],
    ) -> Coefficients {
        let sd = sigma_data;
        let n = t.len();
        let mut c = Coefficients {
            a: Vec::with_capacity(n),
            b: Vec::with_capacity(n),
            c_in: Vec::with_capacity(n),
            c_noise: Vec::with_capacity(n),
            c_skip: Vec::with_capacity(n),
            c_out: Vec::with_capacity(n),
        };
        for &ti in t {
            let (a, b) = (sde.mean_coef(ti), sde.std(ti));
            let sigma = b / a;
            let s2 = sigma * sigma + sd * sd;
            c.a.push(a);
            c.b.push(b);
            c.c_in.push(1.0 / (b * b + a * a * sd * sd).sqrt());
            c.c_noise.push(0.25 * sigma.ln().min(MAX_LN_SIGMA));
            if precondition {
                c.c_skip.push(sd * sd / s2);
                c.c_out.push(sigma * sd / s2.sqrt());
            } else {
                c.c_skip.push(0.0);
                c.c_out.push(1.0);
            }
        }
        c
    }

    /// What the network sees of `x` (f32, one row per coefficient): the scaled input
    /// `c_in·x` and the noise conditioning `c_noise` `[N]`.
    pub fn network_inputs(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let xin = x.broadcast_mul(&row_tensor(&self.c_in, x)?)?;
        let cn = Tensor::from_vec(
            self.c_noise.iter().map(|&v| v as f32).collect::<Vec<_>>(),
            self.c_noise.len(),
            x.device(),
        )?;
        Ok((xin, cn))
    }

    /// The coefficients of rows `start..end`.
    pub fn rows(&self, start: usize, end: usize) -> Coefficients {
        Coefficients {
            a: self.a[start..end].to_vec(),
            b: self.b[start..end].to_vec(),
            c_in: self.c_in[start..end].to_vec(),
            c_noise: self.c_noise[start..end].to_vec(),
            c_skip: self.c_skip[start..end].to_vec(),
            c_out: self.c_out[start..end].to_vec(),
        }
    }
}

/// Defines `NetModel` methods that evaluate the network through
/// [`NetModel::forward_part`]: each `METHOD` is `self.forward_part().METHOD(x, c, labels)`
/// with [`NetForward`]'s signature.
macro_rules! via_forward_part {
    ($($(#[$doc:meta])* $name:ident;)*) => {$(
        $(#[$doc])*
        pub fn $name(&self, x: &Tensor, c: &Coefficients, labels: Option<&Tensor>) -> Result<Tensor> {
            self.forward_part().$name(x, c, labels)
        }
    )*};
}

/// A network score model for the SDE `S`.
pub struct NetModel<S> {
    sde: S,
    cfg: ModelConfig,
    net: Box<dyn Network>,
    weights: Weights,
}

impl<S: GaussianKernel> NetModel<S> {
    /// A freshly initialised model; weights are a pure function of `seed`.
    pub fn new(sde: S, cfg: ModelConfig, seed: u64, device: &Device) -> Result<Self> {
        cfg.validate()?;
        cfg.check_for(&sde)?;
        let (weights, net) = Weights::init("model", seed, device, |vb| Ok(cfg.net.build(vb)?))?;
        Ok(NetModel {
            sde,
            cfg,
            net,
            weights,
        })
    }

    /// The SDE.
    pub fn sde(&self) -> &S {
        &self.sde
    }

    /// The configuration.
    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    /// The wrapper's coefficients at times `t`.
    pub fn coefficients(&self, t: &[f64]) -> Coefficients {
        Coefficients::new(&self.sde, self.cfg.sigma_data, self.cfg.precondition, t)
    }

    via_forward_part! {
        /// The raw network output `F` at `x` (f32) with the coefficients of its rows.
        network_output;
        /// The model output for f32 `x` with precomputed coefficients.
        output_with;
    }

    /// The SDE-free part of the model (network and preconditioning), which can be shared
    /// across threads whatever the SDE type.
    pub fn forward_part(&self) -> NetForward<'_> {
        NetForward::new(&*self.net, self.cfg.precondition)
    }

    /// The model output (in [`ModelConfig::output`]) at `x`, times `t` `[N]`, with
    /// optional class labels (`None`: unconditional).
    pub fn forward_labels(
        &self,
        x: &Tensor,
        t: &Tensor,
        labels: Option<&Tensor>,
    ) -> Result<Tensor> {
        let ts = t.to_dtype(DType::F64)?.to_vec1::<f64>()?;
        self.forward_times(x, &ts, labels)
    }

    /// [`forward_labels`](Self::forward_labels) with the times as a slice.
    pub fn forward_times(&self, x: &Tensor, ts: &[f64], labels: Option<&Tensor>) -> Result<Tensor> {
        let dtype = x.dtype();
        if ts.len() != x.dim(0)? {
            return Err(invalid!("{} times for a batch of {}", ts.len(), x.dim(0)?));
        }
        let x = x.to_dtype(DType::F32)?;
        let c = self.coefficients(ts);
        let n = ts.len();
        // Rows are independent, so large batches are split across cores (the same numbers,
        // and on few cores faster than candle's own 2-thread matmul, docs/benchmarks.md),
        // and each core's part is evaluated in pieces whose activations stay in cache.
        let parts = parallel::parts_for(n, 256);
        let net = self.forward_part();
        let pieces = parallel::run_parts(parts, "model", |i| {
            let (s, e) = parallel::part_range(i, parts, n);
            (s..e)
                .step_by(PIECE_ROWS)
                .map(|a| {
                    let b = (a + PIECE_ROWS).min(e);
                    let y = labels.map(|y| y.narrow(0, a, b - a)).transpose()?;
                    net.output_with(&x.narrow(0, a, b - a)?, &c.rows(a, b), y.as_ref())
                })
                .collect::<Result<Vec<_>>>()
        })?;
        let outs: Vec<Tensor> = pieces.into_iter().flatten().collect();
        Ok(match outs.as_slice() {
            [one] => one.to_dtype(dtype)?,
            _ => Tensor::cat(&outs, 0)?.to_dtype(dtype)?,
        })
    }
}

/// Rows of a batch a network evaluates at once: a 256-wide MLP's activations for 2048
/// rows (2 MiB a layer) stay in cache, where a 100 000-row batch makes 100 MiB
/// intermediates that are written, read back and page-faulted in at every layer.
const PIECE_ROWS: usize = 2048;

/// A [`NetModel`]'s network and output preconditioning, without its SDE: `Send + Sync`
/// for any SDE, so a training step can evaluate parts of a batch on several threads.
#[derive(Clone, Copy)]
pub struct NetForward<'a> {
    net: &'a dyn Network,
    precondition: bool,
}

impl<'a> NetForward<'a> {
    /// `net` with (or without) EDM's output preconditioning.
    pub fn new(net: &'a dyn Network, precondition: bool) -> Self {
        NetForward { net, precondition }
    }

    /// The raw network output `F` at `x` (f32) with the coefficients of its rows.
    pub fn network_output(
        &self,
        x: &Tensor,
        c: &Coefficients,
        labels: Option<&Tensor>,
    ) -> Result<Tensor> {
        let (xin, cn) = c.network_inputs(x)?;
        Ok(self.net.forward(&xin, &cn, labels)?)
    }

    /// The model output (network output after the preconditioning) for f32 `x`.
    pub fn output_with(
        &self,
        x: &Tensor,
        c: &Coefficients,
        labels: Option<&Tensor>,
    ) -> Result<Tensor> {
        let f = self.network_output(x, c, labels)?;
        if !self.precondition {
            return Ok(f);
        }
        let skip: Vec<f64> = c.c_skip.iter().zip(&c.a).map(|(s, a)| s / a).collect();
        Ok((x.broadcast_mul(&row_tensor(&skip, x)?)?
            + f.broadcast_mul(&row_tensor(&c.c_out, x)?)?)?)
    }
}

impl<S: GaussianKernel + Clone> Trainable for NetModel<S> {
    fn sde_dyn(&self) -> &dyn GaussianKernel {
        &self.sde
    }

    fn weights(&self) -> &Weights {
        &self.weights
    }

    fn fresh(&self, seed: u64) -> Result<Self> {
        NetModel::new(
            self.sde.clone(),
            self.cfg.clone(),
            seed,
            self.weights.device(),
        )
    }
}

impl<S: GaussianKernel> ScoreModel for NetModel<S> {
    fn prediction(&self) -> Prediction {
        self.cfg.output()
    }

    /// A class-conditional network takes its classes (and [`Condition::None`], the null
    /// label of classifier-free training); an unconditional one takes nothing.
    fn conditioning(&self) -> Conditioning {
        match self.cfg.net.num_classes() {
            0 => Conditioning::None,
            k => Conditioning::Classes(k),
        }
    }

    fn forward(&self, x: &Tensor, t: &Tensor, condition: &Condition) -> Result<Tensor> {
        self.forward_labels(x, t, condition.labels())
    }

    fn forward_at(&self, x: &Tensor, t: f64, condition: &Condition) -> Result<Tensor> {
        let n = x.dims().first().copied().unwrap_or(0);
        let t = time_in_dtype(t, x.dtype())?;
        self.forward_times(x, &vec![t; n], condition.labels())
    }
}

/// Per-row values as a tensor of `like`'s dtype shaped `[N, 1, …]` to broadcast against it.
pub(crate) fn row_tensor(v: &[f64], like: &Tensor) -> Result<Tensor> {
    let mut shape = vec![1usize; like.rank()];
    shape[0] = v.len();
    let t = match like.dtype() {
        DType::F64 => Tensor::from_vec(v.to_vec(), shape, like.device())?,
        _ => Tensor::from_vec(
            v.iter().map(|&x| x as f32).collect::<Vec<_>>(),
            shape,
            like.device(),
        )?
        .to_dtype(like.dtype())?,
    };
    Ok(t)
}
