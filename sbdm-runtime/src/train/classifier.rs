//! Time-dependent classifiers `p_t(y | x_t)` for classifier guidance, and their training.
//!
//! A [`ClassifierModel`] wraps a [`Classifier`] network the way
//! [`NetModel`](crate::model::net::NetModel) wraps a score network: for
//! `x_t = a·x_0 + b·ε` with `σ = b/a` the network sees `c_in·x_t`,
//! `c_in = 1/√(b² + a²σ_d²)`, and the conditioning `c_noise = ln(σ)/4`.
//! Guidance needs `∇_x log p_t(y | x)`: [`ClassifierModel::grad_log_prob`] takes it
//! through the input scaling with one backward pass.
//!
//! A [`ClassifierTrainer`] minimises the cross-entropy of the logits at noised labelled
//! data, `t ~ U(t_min, T)`, with the optimiser, clipping, EMA and per-step randomness of
//! [`Trainer`](super::Trainer): step `k` draws its batch, times and noise from the
//! ChaCha8 stream `(seed, k)` in the same order, so with the same seed and data a
//! classifier sees exactly the `x_t` a score model's run sees, and a resumed run
//! continues bit for bit.
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use sbdm_runtime::sde::builtin::VpSde;
//! use sbdm_runtime::data::{Dataset, Toy};
//! use sbdm_runtime::nn::ClassifierConfig;
//! use sbdm_runtime::train::classifier::{ClassifierModel, ClassifierTrainer};
//! use sbdm_runtime::train::TrainConfig;
//! # fn main() -> sbdm_runtime::error::Result<()> {
//! let dev = Device::Cpu;
//! let cfg = ClassifierConfig::default(); // MLP on 2-D data, 8 classes
//! let model = ClassifierModel::new(VpSde::default(), cfg, 2.9, 0, &dev)?;
//! let data = Dataset::Toy(Toy::EightGaussians);
//! let train = TrainConfig { steps: 2, batch: 16, ..Default::default() };
//! let mut tr = ClassifierTrainer::new(model, data, "8gaussians", train)?;
//! tr.step()?;
//! let clf = tr.ema_model()?;
//! let x = Tensor::zeros((3, 2), candle_core::DType::F32, &dev)?; // x_t [N, 2]
//! let t = [0.1, 0.5, 0.9];                                         // one time per row
//! let y = Tensor::new(&[0u32, 3, 7], &dev)?;                       // target classes [N]
//! assert_eq!(clf.logits(&x, &t)?.dims(), &[3, 8]);                // [N, num_classes]
//! assert_eq!(clf.log_prob(&x, &t, &y)?.dims(), &[3]);             // log p_t(y | x)
//! assert_eq!(clf.grad_log_prob(&x, &t, &y)?.dims(), &[3, 2]);     // ∇_x, x's shape
//! # Ok(()) }
//! ```

use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;

use super::checkpoint::{self, CheckpointInfo};
use super::{check_train, loss, Draws, RunState, StepStats, TrainConfig};
use crate::data::Dataset;
use crate::error::{invalid, Error, Result};
use crate::model::net::{row_tensor, set_vars, sorted_vars, ModelConfig};
use crate::model::prediction::Prediction;
use crate::nn::{seeded_varbuilder, Classifier, ClassifierConfig};
use crate::sde::GaussianKernel;

/// The checkpoint tensor groups of a classifier run. They differ from a score model's
/// (`net`, `ema`, …), so neither kind of checkpoint loads as the other.
const NET: &str = "classifier.net";
const EMA: &str = "classifier.ema";
const ADAM_M: &str = "classifier.adam.m";
const ADAM_V: &str = "classifier.adam.v";
/// All four, in the order [`RunState`] takes them.
const GROUPS: [&str; 4] = [NET, EMA, ADAM_M, ADAM_V];

/// The input scale `c_in = 1/√(b² + a²σ_d²)` and the conditioning `c_noise = ln(σ)/4`,
/// `σ = b/a`, of each time in `t` (the same as [`NetModel`](crate::model::net::NetModel)'s).
pub(crate) fn input_conditioning<S: GaussianKernel + ?Sized>(
    sde: &S,
    sigma_data: f64,
    t: &[f64],
) -> (Vec<f64>, Vec<f64>) {
    t.iter()
        .map(|&ti| {
            let (a, b) = (sde.mean_coef(ti), sde.std(ti));
            let c_in = 1.0 / (b * b + a * a * sigma_data * sigma_data).sqrt();
            (c_in, 0.25 * (b / a).ln())
        })
        .unzip()
}

/// A noise-conditioned classifier `p_t(y | x_t)` for the SDE `S`.
pub struct ClassifierModel<S> {
    sde: S,
    cfg: ClassifierConfig,
    sigma_data: f64,
    net: Classifier,
    varmap: VarMap,
    device: Device,
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
        let varmap = VarMap::new();
        let vb = seeded_varbuilder(&varmap, seed, DType::F32, device);
        let net = Classifier::new(&cfg, vb)?;
        Ok(ClassifierModel {
            sde,
            cfg,
            sigma_data,
            net,
            varmap,
            device: device.clone(),
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

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The weights.
    pub fn varmap(&self) -> &VarMap {
        &self.varmap
    }

    /// The weights as `(name, var)`, sorted by name.
    pub fn vars(&self) -> Vec<(String, Var)> {
        sorted_vars(&self.varmap)
    }

    /// Overwrites the weights by name; every variable must be given, with its shape.
    pub fn set_weights(&self, weights: &[(String, Tensor)]) -> Result<()> {
        set_vars(&self.varmap, weights, "classifier", &self.device)
    }

    /// The logits f32 `[N, num_classes]` of `x` (`[N, dim]` or `[N, C, H, W]`, any float
    /// dtype) at times `t` (one per row).
    pub fn logits(&self, x: &Tensor, t: &[f64]) -> Result<Tensor> {
        let n = x.dim(0)?;
        if t.len() != n {
            return Err(invalid!("{} times for a batch of {n}", t.len()));
        }
        let x = x.to_dtype(DType::F32)?;
        let (c_in, c_noise) = input_conditioning(&self.sde, self.sigma_data, t);
        let xin = x.broadcast_mul(&row_tensor(&c_in, &x)?)?;
        let cn = Tensor::from_vec(
            c_noise.iter().map(|&v| v as f32).collect::<Vec<_>>(),
            n,
            x.device(),
        )?;
        Ok(self.net.forward(&xin, &cn)?)
    }

    /// `log p_t(y | x)` f32 `[N]`: the log-softmax of the logits at each row's label `y`
    /// (u32 `[N]`, each below [`num_classes`](Self::num_classes)). Differentiable in `x`
    /// (pass a [`Var`]'s tensor).
    pub fn log_prob(&self, x: &Tensor, t: &[f64], y: &Tensor) -> Result<Tensor> {
        let n = x.dim(0)?;
        if y.dims() != [n] || y.dtype() != DType::U32 {
            return Err(invalid!(
                "labels must be u32 of shape [{n}], got {:?} of shape {:?}",
                y.dtype(),
                y.dims()
            ));
        }
        let k = self.cfg.num_classes;
        if let Some((i, bad)) = y
            .to_vec1::<u32>()?
            .into_iter()
            .enumerate()
            .find(|(_, v)| *v as usize >= k)
        {
            return Err(invalid!(
                "label {bad} (row {i}) is out of range: the classifier has {k} classes \
                 (labels 0..{k})"
            ));
        }
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
    fn checkpoint_model(&self) -> ModelConfig {
        ModelConfig {
            net: self.cfg.net.clone(),
            prediction: Prediction::Eps,
            precondition: false,
            sigma_data: self.sigma_data,
        }
    }
}

/// A checkpoint's `data` entry for a classifier with `num_classes` classes trained on
/// `data_name`: `classifier[K]:NAME`, so the class count travels with the file.
fn data_tag(num_classes: usize, data_name: &str) -> String {
    format!("classifier[{num_classes}]:{data_name}")
}

/// The class count and data name of a [`data_tag`].
fn parse_data_tag(tag: &str) -> Option<(usize, &str)> {
    let rest = tag.strip_prefix("classifier[")?;
    let (k, name) = rest.split_once("]:")?;
    Some((k.parse().ok()?, name))
}

/// A classifier training run: model, labelled data, optimiser, EMA and step count.
///
/// It takes the same [`TrainConfig`] as [`Trainer`](super::Trainer); its `weighting`
/// and `label_dropout` are ignored (every row weighs the same in the cross-entropy, and
/// a classifier has no null class), though they are still validated and recorded.
pub struct ClassifierTrainer<S> {
    model: ClassifierModel<S>,
    data: Dataset,
    data_name: String,
    cfg: TrainConfig,
    state: RunState,
}

impl<S: GaussianKernel + Clone> ClassifierTrainer<S> {
    /// A run from the model's current weights. The data must be labelled, with the
    /// classifier's number of classes and sample shape. `data_name` is recorded in
    /// checkpoints (a resumed run must use the same data).
    pub fn new(
        model: ClassifierModel<S>,
        data: Dataset,
        data_name: impl Into<String>,
        cfg: TrainConfig,
    ) -> Result<Self> {
        cfg.validate()?;
        let data_name = data_name.into();
        let want = model.cfg.net.sample_shape();
        let got = data.sample_shape();
        if want != got {
            return Err(invalid!(
                "the data's samples have shape {got:?} but the {} classifier expects {want:?}",
                model.cfg.net.name()
            ));
        }
        match data.num_classes() {
            0 => {
                return Err(invalid!(
                    "the dataset `{data_name}` is unlabelled; a classifier needs labelled \
                     data (e.g. 8gaussians or shapes)"
                ))
            }
            k if k != model.num_classes() => {
                return Err(invalid!(
                    "the dataset `{data_name}` has {k} classes (labels 0..{k}) but the \
                     classifier has {}",
                    model.num_classes()
                ))
            }
            _ => {}
        }
        let state = RunState::new(model.vars(), &cfg)?;
        Ok(ClassifierTrainer {
            model,
            data,
            data_name,
            cfg,
            state,
        })
    }

    /// Steps completed.
    pub fn steps_done(&self) -> u64 {
        self.state.step()
    }

    /// The configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.cfg
    }

    /// Changes the total number of steps (e.g. to extend a resumed run).
    pub fn set_total_steps(&mut self, steps: u64) {
        self.cfg.steps = steps;
    }

    /// The classifier with its current (raw) weights.
    pub fn model(&self) -> &ClassifierModel<S> {
        &self.model
    }

    /// A copy of the classifier carrying the EMA weights (what guidance uses).
    pub fn ema_model(&self) -> Result<ClassifierModel<S>> {
        let m = ClassifierModel::new(
            self.model.sde.clone(),
            self.model.cfg.clone(),
            self.model.sigma_data,
            self.cfg.seed,
            &self.model.device,
        )?;
        m.set_weights(&self.state.ema_weights())?;
        Ok(m)
    }

    /// One optimiser step on the mean cross-entropy at `x_t = a·x_0 + b·ε`,
    /// `t ~ U(t_min, T)`. A non-finite loss or gradient stops with an
    /// [`Error::Training`] naming the step, before any weight is touched.
    pub fn step(&mut self) -> Result<StepStats> {
        let k = self.state.step();
        let device = self.model.device.clone();
        let sde = &self.model.sde;
        let Draws {
            x0,
            labels,
            ts,
            eps,
            ..
        } = Draws::new(&self.data, &self.cfg, sde, k, &device)?;
        let labels = labels.ok_or_else(|| invalid!("the dataset gave a batch without labels"))?;
        let a: Vec<f64> = ts.iter().map(|&t| sde.mean_coef(t)).collect();
        let b: Vec<f64> = ts.iter().map(|&t| sde.std(t)).collect();
        let xt = loss::perturb(&x0, &eps, &a, &b)?;
        let l = candle_nn::loss::cross_entropy(&self.model.logits(&xt, &ts)?, &labels)?;
        let lv = f64::from(l.to_scalar::<f32>()?);
        if !lv.is_finite() {
            return Err(Error::Training {
                step: k + 1,
                message: format!("the classifier's cross-entropy is {lv}"),
            });
        }
        let grads = l.backward()?;
        self.state.apply(&grads, &self.cfg, lv)
    }

    /// The checkpoint metadata of the run as it stands: `model` holds the backbone and
    /// `σ_d`, `data` is `classifier[K]:NAME` (the class count and the data's name).
    pub fn info(&self) -> CheckpointInfo {
        self.state.info(
            &self.model.sde,
            self.model.checkpoint_model(),
            &self.cfg,
            data_tag(self.model.num_classes(), &self.data_name),
        )
    }

    /// Writes weights, EMA, optimiser state and metadata to `dest`, atomically. The
    /// tensors are grouped as `classifier.net/`, `classifier.ema/`,
    /// `classifier.adam.m/`, `classifier.adam.v/`.
    pub fn save(&self, dest: impl AsRef<Path>) -> Result<()> {
        checkpoint::save(dest, &self.info(), &self.state.tensors(GROUPS))
    }

    /// Continues from a checkpoint of this same run: the SDE, classifier configuration,
    /// `σ_d`, data and training configuration (all but the total step count) must match.
    pub fn restore(&mut self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let ck = checkpoint::load(path, &self.model.device)?;
        let fmt = |message: String| Error::Format {
            path: path.display().to_string(),
            message,
        };
        checkpoint::check_sde(&ck.info, &self.model.sde, path)?;
        if ck.group(NET).is_empty() {
            return Err(fmt(
                "not a classifier checkpoint (no classifier weights)".into()
            ));
        }
        checkpoint::check_model(&ck.info, &self.model.checkpoint_model(), path)?;
        check_train(&ck.info, &self.cfg, path)?;
        let tag = data_tag(self.model.num_classes(), &self.data_name);
        if ck.info.data.as_deref() != Some(tag.as_str()) {
            return Err(fmt(format!(
                "the checkpoint was trained as `{}`, not `{tag}`",
                ck.info.data.as_deref().unwrap_or("?")
            )));
        }
        self.state.restore(&ck, GROUPS, "classifier", path, |w| {
            self.model.set_weights(w)
        })
    }
}

/// Loads a classifier from a [`ClassifierTrainer`] checkpoint for guidance: the EMA
/// weights if `ema` (else the raw ones). The checkpoint must have been trained for `sde`
/// (same name and parameters).
pub fn load_classifier<S: GaussianKernel>(
    path: impl AsRef<Path>,
    sde: S,
    ema: bool,
    device: &Device,
) -> Result<(ClassifierModel<S>, CheckpointInfo)> {
    let path = path.as_ref();
    let fmt = |message: String| Error::Format {
        path: path.display().to_string(),
        message,
    };
    let ck = checkpoint::load(path, device)?;
    checkpoint::check_sde(&ck.info, &sde, path)?;
    let Some((num_classes, _)) = ck.info.data.as_deref().and_then(parse_data_tag) else {
        return Err(fmt(
            "not a classifier checkpoint (its data entry names no class count)".into(),
        ));
    };
    let cfg = ClassifierConfig {
        net: ck.info.model.net.clone(),
        num_classes,
    };
    let model = ClassifierModel::new(sde, cfg, ck.info.model.sigma_data, 0, device)?;
    let w = ck.group(if ema { EMA } else { NET });
    model.set_weights(&w).map_err(|e| {
        fmt(format!(
            "the weights do not fit the stored classifier configuration: {e}"
        ))
    })?;
    Ok((model, ck.info))
}
