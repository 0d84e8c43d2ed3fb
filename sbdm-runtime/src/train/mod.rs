//! Training for any declared linear SDE: one [`Trainer`], generic over what it
//! optimises ([`Objective`]) — denoising score matching of a score network ([`Dsm`]) or
//! the cross-entropy of a time-dependent classifier ([`CrossEntropy`]).
//!
//! One step: draw a batch `x_0` (and labels), times `t ~ U(t_min, T)` (or another
//! [`TimeDensity`]) and noise `ε` from
//! the ChaCha8 stream `(seed, step)`, let the objective form its loss on
//! `x_t = a·x_0 + b·ε` (in [`TrainConfig::chunks`] parts of the batch on parallel threads,
//! gradients summed), clip the global gradient norm, take an AdamW step with warm-up, and
//! fold the weights into their EMA. Training is reproducible and a resumed run continues
//! exactly: N steps straight and N/2 + resume + N/2 give identical weights.

use std::path::Path;

use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use crate::data::Dataset;
use crate::error::{invalid, Error, Result};
use crate::model::net::NetModel;
use crate::model::Trainable;
use crate::parallel::run_parts;
use crate::sde::GaussianKernel;

pub mod checkpoint;
pub mod classifier;
pub mod dsm;
pub mod loss;
mod objective;
pub mod optim;
pub mod time_density;

pub use checkpoint::{Checkpoint, CheckpointInfo, ModelKind};
pub use classifier::{load_classifier, CrossEntropy};
pub use dsm::Dsm;
pub use loss::Weighting;
pub use objective::{Objective, StepLoss};
pub use time_density::TimeDensity;

/// Sets `RAYON_NUM_THREADS=1` unless it is set: candle's matmuls then run on one thread,
/// and training steps ([`TrainConfig::chunks`]) and large model evaluations
/// ([`NetModel::forward_times`]) parallelise over parts of the batch instead — on two
/// cores a training step of the benchmark MLP takes ~48 ms this way against ~73 ms with a
/// 2-thread matmul (docs/benchmarks.md). Call it first thing in `main`, before any thread
/// exists (it changes the process environment); the `sbdm` binary and the examples do.
pub fn prefer_batch_parallelism() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        std::env::set_var("RAYON_NUM_THREADS", "1");
    }
}

/// The learning-rate schedule after the linear warm-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LrSchedule {
    /// Constant at `lr`.
    Constant,
    /// Cosine decay from `lr` to `lr/10` at the last step.
    Cosine,
}

/// Training hyper-parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Total optimiser steps.
    pub steps: u64,
    /// Batch size.
    pub batch: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Linear warm-up steps.
    pub warmup: u64,
    /// Schedule after warm-up.
    pub schedule: LrSchedule,
    /// AdamW's decoupled weight decay.
    pub weight_decay: f64,
    /// AdamW `β₁`.
    pub beta1: f64,
    /// AdamW `β₂`.
    pub beta2: f64,
    /// AdamW `ε`.
    pub adam_eps: f64,
    /// Global gradient-norm clip (0: off).
    pub clip: f64,
    /// EMA decay of the weights.
    pub ema_decay: f64,
    /// The loss weighting.
    pub weighting: Weighting,
    /// The density training times are drawn from (uniform unless set; a checkpoint
    /// written before the option existed reads as uniform).
    #[serde(default)]
    pub time_density: TimeDensity,
    /// For class-conditional models: the probability a label is replaced by the null
    /// class (classifier-free guidance).
    pub label_dropout: f64,
    /// The seed of the initialisation and of every step's randomness.
    pub seed: u64,
    /// Each step's batch is evaluated (forward and backward) in this many parts on
    /// parallel threads and their gradients summed: the same loss and gradient up to
    /// float summation order, faster on several cores. Part of the configuration (not
    /// taken from the machine), so results do not depend on the core count.
    #[serde(default = "one")]
    pub chunks: usize,
}

fn one() -> usize {
    1
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            steps: 10_000,
            batch: 512,
            lr: 1e-3,
            warmup: 100,
            schedule: LrSchedule::Constant,
            weight_decay: 0.0,
            beta1: 0.9,
            beta2: 0.999,
            adam_eps: 1e-8,
            clip: 1.0,
            ema_decay: 0.999,
            weighting: Weighting::B2,
            time_density: TimeDensity::Uniform,
            label_dropout: 0.1,
            seed: 0,
            chunks: 2,
        }
    }
}

impl TrainConfig {
    /// Checks ranges, naming the offending field.
    pub fn validate(&self) -> Result<()> {
        let unit = |name: &str, v: f64| {
            if (0.0..1.0).contains(&v) {
                Ok(())
            } else {
                Err(invalid!("{name} must be in [0, 1), got {v}"))
            }
        };
        if self.batch == 0 {
            return Err(invalid!("batch must be > 0"));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(invalid!("lr must be finite and > 0, got {}", self.lr));
        }
        unit("beta1", self.beta1)?;
        unit("beta2", self.beta2)?;
        unit("ema decay", self.ema_decay)?;
        if !(0.0..=1.0).contains(&self.label_dropout) {
            return Err(invalid!(
                "label dropout must be in [0, 1], got {}",
                self.label_dropout
            ));
        }
        if !(self.clip.is_finite() && self.clip >= 0.0) {
            return Err(invalid!("clip must be finite and >= 0, got {}", self.clip));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(invalid!(
                "weight decay must be finite and >= 0, got {}",
                self.weight_decay
            ));
        }
        if !(self.adam_eps.is_finite() && self.adam_eps > 0.0) {
            return Err(invalid!(
                "adam eps must be finite and > 0, got {}",
                self.adam_eps
            ));
        }
        Ok(())
    }

    /// The learning rate of step `k` (0-based).
    pub fn lr_at(&self, k: u64) -> f64 {
        if k < self.warmup {
            return self.lr * (k + 1) as f64 / self.warmup as f64;
        }
        match self.schedule {
            LrSchedule::Constant => self.lr,
            LrSchedule::Cosine => {
                let span = self.steps.saturating_sub(self.warmup).max(1) as f64;
                let p = ((k - self.warmup) as f64 / span).min(1.0);
                self.lr * (0.1 + 0.45 * (1.0 + (std::f64::consts::PI * p).cos()))
            }
        }
    }
}

/// What one step did.
#[derive(Clone, Copy, Debug)]
pub struct StepStats {
    /// Steps completed, this one included.
    pub step: u64,
    /// The batch loss.
    pub loss: f64,
    /// The gradient norm before clipping.
    pub grad_norm: f64,
    /// The learning rate used.
    pub lr: f64,
}

/// A training run: the objective (its model), data, optimiser, EMA and step count.
///
/// ```
/// use candle_core::Device;
/// use sbdm_runtime::data::{Dataset, Toy};
/// use sbdm_runtime::model::net::{ModelConfig, NetModel};
/// use sbdm_runtime::sde::builtin::VpSde;
/// use sbdm_runtime::train::{Dsm, TrainConfig, Trainer};
/// # fn main() -> sbdm_runtime::error::Result<()> {
/// let model = NetModel::new(VpSde::default(), ModelConfig::default(), 0, &Device::Cpu)?;
/// let cfg = TrainConfig { steps: 2, batch: 16, ..Default::default() };
/// let mut trainer = Trainer::new(Dsm::new(model), Dataset::Toy(Toy::Moons), "moons", cfg)?;
/// let stats = trainer.step()?;
/// assert_eq!((stats.step, trainer.steps_done()), (1, 1));
/// let ema = trainer.ema_model()?; // a NetModel with the EMA weights, to sample from
/// # Ok(()) }
/// ```
pub struct Trainer<O: Objective> {
    objective: O,
    data: Dataset,
    data_name: String,
    cfg: TrainConfig,
    state: RunState,
}

impl<O: Objective> Trainer<O> {
    /// A run from the model's current weights. `data_name` is recorded in checkpoints
    /// (a resumed run must use the same data).
    pub fn new(
        objective: O,
        data: Dataset,
        data_name: impl Into<String>,
        cfg: TrainConfig,
    ) -> Result<Self> {
        cfg.validate()?;
        let data_name = data_name.into();
        objective.check_data(&data, &data_name)?;
        let state = RunState::new(objective.model().weights().vars(), &cfg)?;
        Ok(Trainer {
            objective,
            data,
            data_name,
            cfg,
            state,
        })
    }

    /// Steps completed.
    pub fn steps_done(&self) -> u64 {
        self.state.step
    }

    /// The configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.cfg
    }

    /// Changes the total number of steps (e.g. to extend a resumed run).
    pub fn set_total_steps(&mut self, steps: u64) {
        self.cfg.steps = steps;
    }

    /// The objective.
    pub fn objective(&self) -> &O {
        &self.objective
    }

    /// The model with its current (raw) weights.
    pub fn model(&self) -> &O::Model {
        self.objective.model()
    }

    /// A copy of the model carrying the EMA weights (what one samples or guides with).
    pub fn ema_model(&self) -> Result<O::Model> {
        self.objective
            .model()
            .with_weights(&self.state.ema_weights())
    }

    /// One optimiser step. A non-finite loss or gradient stops with an error naming the
    /// step, before any weight is touched.
    pub fn step(&mut self) -> Result<StepStats> {
        let k = self.state.step;
        let model = self.objective.model();
        let device = model.weights().device().clone();
        let draws = Draws::new(&self.data, &self.cfg, model.sde_dyn(), k, &device)?;
        let n = self.cfg.batch;
        let loss = self.objective.step_loss(draws, &self.cfg)?;
        // Rows in `chunks` parts, each loss a share of the full-batch mean, evaluated on
        // parallel threads (the first on this one). With candle's matmuls single-threaded
        // (RAYON_NUM_THREADS=1, which the sbdm binaries set), this is the fastest use of
        // two cores (docs/benchmarks.md).
        let chunks = self.cfg.chunks.clamp(1, n);
        let bounds: Vec<(usize, usize)> = (0..chunks)
            .map(|i| (i * n / chunks, (i + 1) * n / chunks))
            .collect();
        let part = |i: usize| -> Result<(f64, Option<GradStore>)> {
            let (s, e) = bounds[i];
            let l = loss.rows(s, e)?;
            let lv = f64::from(l.to_dtype(candle_core::DType::F32)?.to_scalar::<f32>()?);
            // No backward through a non-finite loss: the step fails below.
            let grads = if lv.is_finite() {
                Some(l.backward()?)
            } else {
                None
            };
            Ok((lv, grads))
        };
        let parts = run_parts(chunks, "training", part)?;
        drop(loss);
        let mut lv = 0.0;
        let mut grads: Option<GradStore> = None;
        for (l, g) in parts {
            lv += l;
            match (&mut grads, g) {
                (_, None) => {}
                (None, Some(g)) => grads = Some(g),
                (Some(acc), Some(g)) => {
                    for var in &self.state.vars {
                        if let Some(gi) = g.get(var) {
                            let sum = match acc.get(var) {
                                Some(a) => (a + gi)?,
                                None => gi.clone(),
                            };
                            acc.insert(var, sum);
                        }
                    }
                }
            }
        }
        if !lv.is_finite() {
            return Err(Error::Training {
                step: k + 1,
                message: format!("the loss is {lv}"),
            });
        }
        let grads = grads.ok_or_else(|| invalid!("no gradients were computed"))?;
        self.state.apply(&grads, &self.cfg, lv)
    }

    /// The checkpoint metadata of the run as it stands.
    pub fn info(&self) -> CheckpointInfo {
        let sde = self.objective.model().sde_dyn();
        CheckpointInfo {
            kind: self.objective.kind(),
            sde: sde.name().to_string(),
            sde_fingerprint: checkpoint::sde_fingerprint(sde),
            sde_source: sde.source(),
            model: self.objective.model_config(),
            train: Some(self.cfg.clone()),
            data: Some(self.data_name.clone()),
            step: self.state.step,
            adam_t: self.state.opt.t,
            version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }

    /// Writes weights, EMA, optimiser state and metadata to `dest`, atomically.
    pub fn save(&self, dest: impl AsRef<Path>) -> Result<()> {
        checkpoint::save(dest, &self.info(), &self.state.tensors())
    }

    /// Continues from a checkpoint of this same run: the kind, SDE, model configuration,
    /// data and training configuration (all but the total step count) must match.
    pub fn restore(&mut self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let model = self.objective.model();
        let ck = checkpoint::load(path, model.weights().device())?;
        checkpoint::check_kind(&ck.info, self.objective.kind(), path)?;
        checkpoint::check_sde(&ck.info, model.sde_dyn(), path)?;
        checkpoint::check_model(&ck.info, &self.objective.model_config(), path)?;
        check_train(&ck.info, &self.cfg, path)?;
        if ck.info.data.as_deref() != Some(self.data_name.as_str()) {
            return Err(format_error(
                path,
                format!(
                    "the checkpoint was trained on `{}`, not `{}`",
                    ck.info.data.as_deref().unwrap_or("?"),
                    self.data_name
                ),
            ));
        }
        let weights = self.objective.model().weights();
        self.state.restore(&ck, path, |w| weights.set(w))
    }
}

/// An [`Error::Format`] about the checkpoint at `path`.
fn format_error(path: &Path, message: String) -> Error {
    Error::Format {
        path: path.display().to_string(),
        message,
    }
}

/// Refuses a checkpoint (at `path`) without training state, or trained with settings
/// other than `cfg`'s (all but the total step count).
fn check_train(info: &CheckpointInfo, cfg: &TrainConfig, path: &Path) -> Result<()> {
    let Some(train) = &info.train else {
        return Err(format_error(
            path,
            "the checkpoint has no training state (weights only)".into(),
        ));
    };
    let mut mine = cfg.clone();
    mine.steps = train.steps;
    if &mine != train {
        return Err(format_error(
            path,
            format!(
                "the checkpoint was trained with other settings: {} (resume needs the same; \
                 only --steps may change)",
                serde_json::to_string(train).unwrap_or_default()
            ),
        ));
    }
    Ok(())
}

/// Step `k`'s batch and noise, drawn in this order from the ChaCha8 stream `(seed, k)`:
/// the data batch `x_0` (with its labels), one time `t ~ U(t_min, T)` per row and `ε`
/// of `x_0`'s shape.
pub struct Draws {
    /// The stream, for any further draws of the step.
    pub rng: ChaCha8Rng,
    /// The clean batch.
    pub x0: Tensor,
    /// Its labels, for labelled data.
    pub labels: Option<Tensor>,
    /// The times.
    pub ts: Vec<f64>,
    /// The noise.
    pub eps: Tensor,
}

impl Draws {
    /// Draws step `k`'s batch of `cfg.batch` rows from `data`, with times in `sde`'s range.
    pub fn new<S: GaussianKernel + ?Sized>(
        data: &Dataset,
        cfg: &TrainConfig,
        sde: &S,
        k: u64,
        device: &Device,
    ) -> Result<Self> {
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        rng.set_stream(k + 1);
        let n = cfg.batch;
        let (x0, labels) = data.batch(n, &mut rng, device)?;
        let (t0, t1) = sde.time_range();
        let ts: Vec<f64> = (0..n)
            .map(|_| cfg.time_density.draw(t0, t1, &mut rng))
            .collect();
        let numel = x0.elem_count();
        let eps: Vec<f32> = (0..numel).map(|_| rng.sample(StandardNormal)).collect();
        let eps = Tensor::from_vec(eps, x0.shape(), device)?;
        Ok(Draws {
            rng,
            x0,
            labels,
            ts,
            eps,
        })
    }
}

/// The checkpoint tensor groups of a run: weights, EMA, AdamW's first and second moments.
const GROUPS: [&str; 4] = ["net", "ema", "adam.m", "adam.v"];

/// What a training run optimises and how far it is: the variables (sorted by name),
/// AdamW, the EMA of the weights and the steps completed.
struct RunState {
    names: Vec<String>,
    vars: Vec<Var>,
    opt: optim::AdamW,
    ema: optim::Ema,
    step: u64,
}

impl RunState {
    /// Fresh optimiser state and EMA for `vars` (as `(name, var)`, sorted by name).
    fn new(vars: Vec<(String, Var)>, cfg: &TrainConfig) -> Result<Self> {
        let (names, vars): (Vec<_>, Vec<_>) = vars.into_iter().unzip();
        let opt = optim::AdamW::new(&vars, cfg.beta1, cfg.beta2, cfg.adam_eps, cfg.weight_decay)?;
        let ema = optim::Ema::new(&vars, cfg.ema_decay)?;
        Ok(RunState {
            names,
            vars,
            opt,
            ema,
            step: 0,
        })
    }

    /// The EMA weights by name.
    fn ema_weights(&self) -> Vec<(String, Tensor)> {
        self.names
            .iter()
            .cloned()
            .zip(self.ema.values.iter().cloned())
            .collect()
    }

    /// Ends a step whose batch loss was `loss`: clips the gradients' global norm to
    /// `cfg.clip`, takes the AdamW step, folds the weights into the EMA and counts the
    /// step. A non-finite gradient norm stops with an error naming the step, before any
    /// weight is touched.
    fn apply(&mut self, grads: &GradStore, cfg: &TrainConfig, loss: f64) -> Result<StepStats> {
        let k = self.step;
        let gn = optim::grad_norm(&self.vars, grads)?;
        if !gn.is_finite() {
            return Err(Error::Training {
                step: k + 1,
                message: format!("the gradient norm is {gn}"),
            });
        }
        let scale = if cfg.clip > 0.0 && gn > cfg.clip {
            cfg.clip / gn
        } else {
            1.0
        };
        let lr = cfg.lr_at(k);
        self.opt.step(&self.vars, grads, lr, scale)?;
        self.ema.update(&self.vars, k)?;
        self.step += 1;
        Ok(StepStats {
            step: self.step,
            loss,
            grad_norm: gn,
            lr,
        })
    }

    /// The tensors to checkpoint, named `GROUP/NAME` with the [`GROUPS`] of the weights,
    /// the EMA and AdamW's first and second moments.
    fn tensors(&self) -> Vec<(String, Tensor)> {
        let [net, ema, m, v] = GROUPS;
        let mut tensors = Vec::with_capacity(4 * self.names.len());
        for (i, name) in self.names.iter().enumerate() {
            tensors.push((format!("{net}/{name}"), self.vars[i].as_tensor().clone()));
            tensors.push((format!("{ema}/{name}"), self.ema.values[i].clone()));
            tensors.push((format!("{m}/{name}"), self.opt.m[i].clone()));
            tensors.push((format!("{v}/{name}"), self.opt.v[i].clone()));
        }
        tensors
    }

    /// Takes the state of checkpoint `ck` (loaded from `path`), stored as by
    /// [`tensors`](Self::tensors): the weights go to `set_weights`, then the EMA, the
    /// optimiser and the step count are replaced. Each group must hold this run's names.
    fn restore(
        &mut self,
        ck: &Checkpoint,
        path: &Path,
        set_weights: impl FnOnce(&[(String, Tensor)]) -> Result<()>,
    ) -> Result<()> {
        let group = |p: &str| -> Result<Vec<Tensor>> {
            let g = ck.group(p);
            if g.len() != self.names.len() || g.iter().zip(&self.names).any(|((a, _), b)| a != b) {
                return Err(format_error(
                    path,
                    format!("the checkpoint's `{p}` tensors do not match the model's"),
                ));
            }
            Ok(g.into_iter().map(|(_, t)| t).collect())
        };
        let [net, ema, m, v] = GROUPS;
        let net = group(net)?;
        let ema = group(ema)?;
        let m = group(m)?;
        let v = group(v)?;
        let w: Vec<(String, Tensor)> = self.names.iter().cloned().zip(net).collect();
        set_weights(&w)?;
        self.ema.values = ema;
        self.opt.m = m;
        self.opt.v = v;
        self.opt.t = ck.info.adam_t;
        self.step = ck.info.step;
        Ok(())
    }
}

/// Loads a score model from a checkpoint for sampling: the EMA weights if `ema` (else
/// the raw ones). The checkpoint must hold a score model trained for `sde` (same name
/// and parameters).
pub fn load_model<S: GaussianKernel + Clone>(
    path: impl AsRef<Path>,
    sde: S,
    ema: bool,
    device: &Device,
) -> Result<(NetModel<S>, CheckpointInfo)> {
    let ck = checkpoint::load(path.as_ref(), device)?;
    let model = model_from_checkpoint(&ck, sde, ema)?;
    Ok((model, ck.info))
}

/// The score model of a loaded checkpoint, with its EMA weights if `ema` (else the raw
/// ones). The checkpoint must hold a score model trained for `sde`.
pub fn model_from_checkpoint<S: GaussianKernel + Clone>(
    ck: &Checkpoint,
    sde: S,
    ema: bool,
) -> Result<NetModel<S>> {
    checkpoint::check_kind(&ck.info, ModelKind::Score, &ck.path)?;
    checkpoint::check_sde(&ck.info, &sde, &ck.path)?;
    checkpoint::check_parameters(ck, ck.info.model.net.parameter_count())?;
    let model = NetModel::new(sde, ck.info.model.clone(), 0, &ck.device).map_err(|e| {
        format_error(
            &ck.path,
            format!(
                "its model configuration does not build: {}",
                e.to_string().lines().next().unwrap_or("")
            ),
        )
    })?;
    ck.set_weights(ema, |w| model.weights().set(w))?;
    Ok(model)
}
