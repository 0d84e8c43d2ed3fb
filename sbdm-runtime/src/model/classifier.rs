//! Time-dependent classifiers `p_t(y | x_t)`, for classifier guidance.
//!
//! A [`ClassifierModel`] wraps a [`Classifier`] network the way
//! [`NetModel`](super::net::NetModel) wraps a score network, with the same input scaling
//! and noise conditioning ([`Coefficients`]): for `x_t = a·x_0 + b·ε` with `σ = b/a` the
//! network sees `c_in·x_t`, `c_in = 1/√(b² + a²σ_d²)`, and `c_noise = ln(σ)/4`.
//! Guidance needs `∇_x log p_t(y | x)`: [`ClassifierModel::grad_log_prob`] takes it
//! through the input scaling with one backward pass. Training is the
//! [`CrossEntropy`](crate::train::classifier::CrossEntropy) objective of the
//! [`Trainer`](crate::train::Trainer).
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use sbdm_runtime::model::classifier::ClassifierModel;
//! use sbdm_runtime::nn::ClassifierConfig;
//! use sbdm_runtime::sde::builtin::VpSde;
//! # fn main() -> sbdm_runtime::error::Result<()> {
//! let dev = Device::Cpu;
//! let cfg = ClassifierConfig::default(); // MLP on 2-D data, 8 classes
//! let clf = ClassifierModel::new(VpSde::default(), cfg, 2.9, 0, &dev)?;
//! let x = Tensor::zeros((3, 2), candle_core::DType::F32, &dev)?; // x_t [N, 2]
//! let t = [0.1, 0.5, 0.9];                                         // one time per row
//! let y = Tensor::new(&[0u32, 3, 7], &dev)?;                       // target classes [N]
//! assert_eq!(clf.logits(&x, &t)?.dims(), &[3, 8]);                // [N, num_classes]
//! assert_eq!(clf.log_prob(&x, &t, &y)?.dims(), &[3]);             // log p_t(y | x)
//! assert_eq!(clf.grad_log_prob(&x, &t, &y)?.dims(), &[3, 2]);     // ∇_x, x's shape
//! # Ok(()) }
//! ```

use candle_core::{DType, Device, Tensor, Var};

use super::net::{Coefficients, ModelConfig, NetForward};
use super::prediction::Prediction;
use super::weights::{Trainable, Weights};
use super::{Condition, Conditioning};
use crate::error::{invalid, Result};
use crate::nn::{Classifier, ClassifierConfig};
use crate::sde::GaussianKernel;

/// A noise-conditioned classifier `p_t(y | x_t)` for the SDE `S`.
pub struct ClassifierModel<S> {
    sde: S,
    cfg: ClassifierConfig,
    sigma_data: f64,
    net: Classifier,
    weights: Weights,
}

impl<S: GaussianKernel> ClassifierModel<S> {
    /// A freshly initialised classifier; its weights are a pure function of `seed`.
    /// `sigma_data` (`σ_d`, the data's standard deviation per coordinate) sets the input
    /// scaling and must be finite and positive.
    pub fn new(
        sde: S,
        cfg: ClassifierConfig,
        sigma_data: f64,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        if !(sigma_data.is_finite() && sigma_data > 0.0) {
            return Err(invalid!(
                "sigma_data must be finite and > 0, got {sigma_data}"
            ));
        }
        let (weights, net) = Weights::init("classifier", seed, device, |vb| {
            Ok(Classifier::new(&cfg, vb)?)
        })?;
        Ok(ClassifierModel {
            sde,
            cfg,
            sigma_data,
            net,
            weights,
        })
    }

    /// The SDE.
    pub fn sde(&self) -> &S {
        &self.sde
    }

    /// The configuration.
    pub fn config(&self) -> &ClassifierConfig {
        &self.cfg
    }

    /// The number of classes.
    pub fn num_classes(&self) -> usize {
        self.cfg.num_classes
    }

    /// `σ_d`, the data standard deviation of the input scaling.
    pub fn sigma_data(&self) -> f64 {
        self.sigma_data
    }

    /// The input scaling and noise conditioning at times `t`.
    pub fn coefficients(&self, t: &[f64]) -> Coefficients {
        Coefficients::new(&self.sde, self.sigma_data, false, t)
    }

    /// The network without its SDE (`Send + Sync`, for evaluating parts of a batch on
    /// several threads): its output is the logits.
    pub fn forward_part(&self) -> NetForward<'_> {
        NetForward::new(&self.net, false)
    }

    /// The logits f32 `[N, num_classes]` of `x` (`[N, dim]` or `[N, C, H, W]`, any float
    /// dtype) at times `t` (one per row).
    pub fn logits(&self, x: &Tensor, t: &[f64]) -> Result<Tensor> {
        let n = x.dim(0)?;
        if t.len() != n {
            return Err(invalid!("{} times for a batch of {n}", t.len()));
        }
        let x = x.to_dtype(DType::F32)?;
        self.forward_part()
            .network_output(&x, &self.coefficients(t), None)
    }

    /// The features the logits are a linear function of (f32 `[N, F]`, see
    /// [`Classifier::features`]) of `x` at times `t`: EGSDE's domain-specific features.
    /// Differentiable in `x`.
    pub fn features(&self, x: &Tensor, t: &[f64]) -> Result<Tensor> {
        let n = x.dim(0)?;
        if t.len() != n {
            return Err(invalid!("{} times for a batch of {n}", t.len()));
        }
        let (xin, cn) = self
            .coefficients(t)
            .network_inputs(&x.to_dtype(DType::F32)?)?;
        Ok(self.net.features(&xin, &cn)?)
    }

    /// `log p_t(y | x)` f32 `[N]`: the log-softmax of the logits at each row's label `y`
    /// (u32 `[N]`, each below [`num_classes`](Self::num_classes)). Differentiable in `x`
    /// (pass a [`Var`]'s tensor).
    pub fn log_prob(&self, x: &Tensor, t: &[f64], y: &Tensor) -> Result<Tensor> {
        Condition::Classes(y.clone())
            .check(Conditioning::Classes(self.num_classes()), x.dim(0)?)?;
        let logp = candle_nn::ops::log_softmax(&self.logits(x, t)?, 1)?;
        Ok(logp.gather(&y.unsqueeze(1)?, 1)?.squeeze(1)?)
    }

    /// `∇_x log p_t(y | x)` (x's shape and dtype), the classifier-guidance term: one
    /// backward pass through the network and the input scaling. Rows are independent.
    pub fn grad_log_prob(&self, x: &Tensor, t: &[f64], y: &Tensor) -> Result<Tensor> {
        let xv = Var::from_tensor(&x.to_dtype(DType::F32)?.detach())?;
        let grads = self.log_prob(xv.as_tensor(), t, y)?.sum_all()?.backward()?;
        let g = grads
            .get(xv.as_tensor())
            .ok_or_else(|| invalid!("the classifier's output does not depend on x"))?;
        Ok(g.to_dtype(x.dtype())?)
    }

    /// The model configuration a checkpoint records for this classifier: its backbone
    /// and `σ_d` (the prediction and preconditioning fields carry no meaning).
    pub fn checkpoint_config(&self) -> ModelConfig {
        ModelConfig {
            net: self.cfg.net.clone(),
            prediction: Prediction::Eps,
            precondition: false,
            sigma_data: self.sigma_data,
        }
    }
}

impl<S: GaussianKernel + Clone> Trainable for ClassifierModel<S> {
    fn sde_dyn(&self) -> &dyn GaussianKernel {
        &self.sde
    }

    fn weights(&self) -> &Weights {
        &self.weights
    }

    fn fresh(&self, seed: u64) -> Result<Self> {
        ClassifierModel::new(
            self.sde.clone(),
            self.cfg.clone(),
            self.sigma_data,
            seed,
            self.weights.device(),
        )
    }
}
