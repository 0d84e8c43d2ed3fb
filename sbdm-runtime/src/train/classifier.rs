//! Training time-dependent classifiers `p_t(y | x_t)` for classifier guidance: the
//! [`CrossEntropy`] objective of a [`ClassifierModel`] at noised labelled data,
//! `t ~ U(t_min, T)`. With the same seed and data a classifier sees exactly the `x_t` a
//! score model's run sees (the trainer draws the batch, times and noise the same way).
//!
//! ```
//! use candle_core::Device;
//! use sbdm_runtime::data::{Dataset, Toy};
//! use sbdm_runtime::model::classifier::ClassifierModel;
//! use sbdm_runtime::nn::ClassifierConfig;
//! use sbdm_runtime::sde::builtin::VpSde;
//! use sbdm_runtime::train::{CrossEntropy, TrainConfig, Trainer};
//! # fn main() -> sbdm_runtime::error::Result<()> {
//! let dev = Device::Cpu;
//! let model = ClassifierModel::new(VpSde::default(), ClassifierConfig::default(), 2.9, 0, &dev)?;
//! let data = Dataset::Toy(Toy::EightGaussians); // labelled: 8 classes
//! let train = TrainConfig { steps: 2, batch: 16, ..Default::default() };
//! let mut tr = Trainer::new(CrossEntropy::new(model), data, "8gaussians", train)?;
//! tr.step()?;
//! let clf = tr.ema_model()?; // a ClassifierModel for guidance
//! assert_eq!(clf.num_classes(), 8);
//! # Ok(()) }
//! ```

use std::path::Path;

use candle_core::{Device, Tensor};

use super::checkpoint::{self, CheckpointInfo, ModelKind};
use super::objective::{Objective, StepLoss};
use super::{loss, Draws, TrainConfig};
use crate::data::Dataset;
use crate::error::{invalid, Error, Result};
use crate::model::classifier::ClassifierModel;
use crate::model::net::{Coefficients, ModelConfig, NetForward};
use crate::model::Trainable;
use crate::nn::ClassifierConfig;
use crate::sde::GaussianKernel;

/// The cross-entropy of a time-dependent classifier at noised labelled data.
pub struct CrossEntropy<S> {
    model: ClassifierModel<S>,
}

impl<S: GaussianKernel> CrossEntropy<S> {
    /// Trains `model` on the cross-entropy of its logits at `x_t`.
    pub fn new(model: ClassifierModel<S>) -> Self {
        CrossEntropy { model }
    }
}

impl<S: GaussianKernel + Clone> Objective for CrossEntropy<S> {
    type Model = ClassifierModel<S>;

    fn model(&self) -> &ClassifierModel<S> {
        &self.model
    }

    fn kind(&self) -> ModelKind {
        ModelKind::Classifier {
            num_classes: self.model.num_classes(),
        }
    }

    /// The backbone and `σ_d` (the prediction and preconditioning fields carry no meaning).
    fn model_config(&self) -> ModelConfig {
        self.model.checkpoint_config()
    }

    fn check_data(&self, data: &Dataset, data_name: &str) -> Result<()> {
        let want = self.model.config().net.sample_shape();
        let got = data.sample_shape();
        if want != got {
            return Err(invalid!(
                "the data's samples have shape {got:?} but the {} classifier expects {want:?}",
                self.model.config().net.name()
            ));
        }
        match data.num_classes() {
            0 => Err(invalid!(
                "the dataset `{data_name}` is unlabelled; a classifier needs labelled \
                 data (e.g. 8gaussians or shapes)"
            )),
            k if k != self.model.num_classes() => Err(invalid!(
                "the dataset `{data_name}` has {k} classes (labels 0..{k}) but the \
                 classifier has {}",
                self.model.num_classes()
            )),
            _ => Ok(()),
        }
    }

    fn step_loss<'a>(&'a self, draws: Draws, _cfg: &TrainConfig) -> Result<Box<dyn StepLoss + 'a>> {
        let labels = draws
            .labels
            .ok_or_else(|| invalid!("the dataset gave a batch without labels"))?;
        let c = self.model.coefficients(&draws.ts);
        let xt = loss::perturb(&draws.x0, &draws.eps, &c.a, &c.b)?;
        Ok(Box::new(CrossEntropyLoss {
            net: self.model.forward_part(),
            xt,
            labels,
            c,
        }))
    }
}

/// One step's cross-entropy.
struct CrossEntropyLoss<'a> {
    net: NetForward<'a>,
    xt: Tensor,
    labels: Tensor,
    c: Coefficients,
}

impl StepLoss for CrossEntropyLoss<'_> {
    fn rows(&self, s: usize, e: usize) -> Result<Tensor> {
        let n = self.labels.dim(0)?;
        let xt = self.xt.narrow(0, s, e - s)?;
        let logits = self.net.network_output(&xt, &self.c.rows(s, e), None)?;
        let l = candle_nn::loss::cross_entropy(&logits, &self.labels.narrow(0, s, e - s)?)?;
        // The rows' share of the batch mean.
        Ok(if e - s == n {
            l
        } else {
            l.affine((e - s) as f64 / n as f64, 0.0)?
        })
    }
}

/// Loads a classifier from a checkpoint of a [`CrossEntropy`] run for guidance: the EMA
/// weights if `ema` (else the raw ones). The checkpoint must hold a classifier trained
/// for `sde` (same name and parameters).
pub fn load_classifier<S: GaussianKernel + Clone>(
    path: impl AsRef<Path>,
    sde: S,
    ema: bool,
    device: &Device,
) -> Result<(ClassifierModel<S>, CheckpointInfo)> {
    let path = path.as_ref();
    let ck = checkpoint::load(path, device)?;
    let ModelKind::Classifier { num_classes } = ck.info.kind else {
        return Err(Error::Format {
            path: path.display().to_string(),
            message: "not a classifier checkpoint (it holds a score model)".into(),
        });
    };
    checkpoint::check_sde(&ck.info, &sde, path)?;
    let cfg = ClassifierConfig {
        net: ck.info.model.net.clone(),
        num_classes,
    };
    checkpoint::check_parameters(&ck, cfg.parameter_count())?;
    let model =
        ClassifierModel::new(sde, cfg, ck.info.model.sigma_data, 0, device).map_err(|e| {
            Error::Format {
                path: path.display().to_string(),
                message: format!(
                    "its model configuration does not build: {}",
                    e.to_string().lines().next().unwrap_or("")
                ),
            }
        })?;
    ck.set_weights(ema, |w| model.weights().set(w))?;
    Ok((model, ck.info))
}
