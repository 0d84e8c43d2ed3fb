//! `sbdm train`: train a score network by denoising score matching (`--objective dsm`,
//! the default) or a time-dependent classifier for classifier guidance and EGSDE
//! (`--objective classifier`, on labelled data), for any SDE the CLI knows, on a 2-D toy,
//! a generated image set or a float32 `.npy` file (with `--labels`).
//!
//! Every flag is checked and the data, model and (with `--resume`) checkpoint are
//! loaded before anything is written. `--out DIR` then receives `model.safetensors`
//! (every `--checkpoint-every` steps and at the end), `loss.csv` (`step,loss,grad_norm,lr`,
//! rewritten with each checkpoint) and `loss.png` (raw and smoothed loss), each written
//! atomically. A checkpoint is never overwritten without `--resume`, which continues it
//! with the same flags up to a larger `--steps`; the run's randomness is a function of
//! the seed and the step, so 10 steps + 10 resumed give the weights of 20 straight.
//! A non-finite loss stops the run with an error naming the step; the last periodic
//! checkpoint stays as it was.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, bail, Result};
use candle_core::{DType, Device};
use clap::Args;
use sbdm_runtime::data::{Dataset, Toy, SHAPES_DATASETS, TOYS};
use sbdm_runtime::io::{self, PendingFile};
use sbdm_runtime::limits;
use sbdm_runtime::model::classifier::ClassifierModel;
use sbdm_runtime::model::net::{ModelConfig, NetModel};
use sbdm_runtime::model::prediction::Prediction;
use sbdm_runtime::model::Trainable;
use sbdm_runtime::nn::ClassifierConfig;
use sbdm_runtime::nn::{MlpConfig, NetConfig, UNetConfig};
use sbdm_runtime::report::plot::{self, LineSeries};
use sbdm_runtime::train::{
    checkpoint, CrossEntropy, Dsm, LrSchedule, Objective, StepStats, TimeDensity, TrainConfig,
    Trainer, Weighting,
};
use sbdm_runtime::GaussianKernel;

use crate::common::{
    applies_only, asks_help, choice, one_line, print_help_listing, require, sde_names, DeviceFlag,
    Listing, Pick,
};

/// Arguments of `sbdm train`. `help` as the value of `--sde`, `--data`, `--model`,
/// `--param`, `--weighting` or `--time-density` lists the valid names.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// The forward SDE (`help` lists them): a built-in, a discrete DDPM table, or a
    /// FILE.sde declaring one (what goes between the braces of `sde! { .. }`); or declare
    /// it with the inline flags below. The checkpoint stores its declaration, so `sbdm
    /// sample --model ckpt:..` finds it again.
    #[arg(long, value_name = "NAME|FILE.sde")]
    pub sde: Option<String>,
    /// The SDE declared inline, or parameter values for --sde.
    #[command(flatten)]
    pub sde_flags: crate::sde_arg::SdeFlags,
    /// The training data (`help` lists them): a dataset name, or a float32 FILE.npy of
    /// shape [N, D] (vectors) or [N, C, H, W] (images).
    #[arg(long, value_name = "NAME|FILE.npy")]
    pub data: Option<String>,
    /// The network (`help` lists them): mlp for vectors, unet for images.
    #[arg(long, value_parser = choice(net_rows()))]
    pub model: Option<Pick<NetDefaults>>,
    /// What is trained (`help` lists them): dsm, a score model by denoising score
    /// matching; classifier, a time-dependent classifier for classifier guidance (on
    /// labelled data; --model picks its backbone).
    #[arg(long, default_value = "dsm", value_parser = choice(objective_rows()))]
    pub objective: Pick<ObjectiveKind>,
    /// Class labels for --data FILE.npy: a .npy vector of one class index per sample
    /// (any integer dtype).
    #[arg(long, value_name = "LABELS.npy")]
    pub labels: Option<PathBuf>,
    /// What the network predicts (`help` lists them) [default: eps; flow on an SDE that
    /// reaches pure noise, such as rf].
    #[arg(long, value_parser = choice(param_rows()))]
    pub param: Option<Pick<Prediction>>,
    /// EDM preconditioning: the network's output is skip-connected into an x_0 estimate.
    #[arg(long)]
    pub precondition: bool,
    /// The loss weighting (`help` lists them); min-snr:GAMMA sets min-SNR's γ
    /// [default: b2; uniform, the flow-matching loss, with --param flow].
    #[arg(long)]
    pub weighting: Option<String>,
    /// How training times are drawn (`help` lists them): uniform on the time range, or
    /// logit-normal (SD3's: t = t_min + (T - t_min)*sigmoid(m + s*n), n ~ N(0, 1));
    /// logit-normal:M,S sets m and s [default: uniform].
    #[arg(long, value_name = "NAME")]
    pub time_density: Option<String>,
    /// Train to this many steps in all (with --resume: the new total).
    #[arg(long, value_name = "N")]
    pub steps: Option<u64>,
    /// Batch size [default: 512 for mlp, 64 for unet].
    #[arg(long)]
    pub batch: Option<usize>,
    /// Peak learning rate [default: 1e-3 for mlp, 2e-4 for unet].
    #[arg(long, allow_hyphen_values = true)]
    pub lr: Option<f64>,
    /// Steps of linear learning-rate warm-up.
    #[arg(long, default_value_t = 100)]
    pub warmup: u64,
    /// The learning rate after the warm-up: constant, or cosine (decays to lr/10 at
    /// the last step).
    #[arg(long, default_value = "constant", value_parser = choice(schedule_rows()))]
    pub schedule: Pick<LrSchedule>,
    /// EMA decay of the weights (a checkpoint is sampled with its EMA weights).
    #[arg(long, default_value_t = 0.999, allow_hyphen_values = true)]
    pub ema: f64,
    /// Clip the global gradient norm to this (0: no clipping).
    #[arg(long, default_value_t = 1.0, allow_hyphen_values = true)]
    pub clip: f64,
    /// AdamW's decoupled weight decay.
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
    pub weight_decay: f64,
    /// Seed of the initial weights and of every step's batch, times and noise.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// MLP hidden width [default: 256], or U-Net base channels [default: 32].
    #[arg(long)]
    pub width: Option<usize>,
    /// MLP hidden layers [default: 3], or U-Net res blocks per level [default: 1].
    #[arg(long)]
    pub depth: Option<usize>,
    /// A U-Net without self-attention in its middle block.
    #[arg(long)]
    pub no_attention: bool,
    /// Condition on the data's class labels (dropped 10% of the time, for
    /// classifier-free guidance).
    #[arg(long)]
    pub conditional: bool,
    /// The data's std per coordinate σ_d (input scaling, preconditioning): a number,
    /// or auto, the pooled per-coordinate std of 4096 held-out samples.
    #[arg(
        long,
        default_value = "auto",
        value_name = "auto|X",
        allow_hyphen_values = true
    )]
    pub sigma_data: String,
    /// The number of images generated for a shapes dataset [default: 10000].
    #[arg(long, value_name = "N")]
    pub n_data: Option<usize>,
    /// Write the checkpoint and loss.csv every K steps as well as at the end (0: only
    /// at the end).
    #[arg(long, value_name = "K", default_value_t = 1000)]
    pub checkpoint_every: u64,
    /// Continue the checkpoint in --out, with the same flags, up to --steps (a cosine
    /// schedule then decays over the new total).
    #[arg(long)]
    pub resume: bool,
    /// The output directory (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    // Where the network, its optimiser state and each step's batch live (the checkpoint
    // is written from the host and loads on any device).
    #[command(flatten)]
    pub device: DeviceFlag,
}

/// Per-network defaults of the flags that depend on it.
#[derive(Clone, Copy, Debug)]
pub struct NetDefaults {
    name: &'static str,
    description: &'static str,
    width: usize,
    depth: usize,
    batch: usize,
    lr: f64,
}

const NETS: [NetDefaults; 2] = [
    NetDefaults {
        name: "mlp",
        description: "an MLP for vectors [N, D]; --width: hidden width (256), --depth: layers (3)",
        width: 256,
        depth: 3,
        batch: 512,
        lr: 1e-3,
    },
    NetDefaults {
        name: "unet",
        description: "a U-Net for square images [N, C, H, W]; --width: base channels (32), \
                      --depth: res blocks per level (1)",
        width: 32,
        depth: 1,
        batch: 64,
        lr: 2e-4,
    },
];

/// The images generated for a shapes dataset unless `--n-data` says otherwise.
const DEFAULT_N_DATA: usize = 10_000;
/// The seed of generated image sets: the data is fixed, whatever `--seed`.
const DATA_SEED: u64 = 0;
/// Samples behind `--sigma-data auto`, and the seed of a toy's held-out draw (stream 0
/// of this seed; training steps draw from streams 1, 2, … of `--seed`).
const SIGMA_SAMPLES: usize = 4096;
const SIGMA_SEED: u64 = 0x5d5d;
/// The weight of each new loss in the smoothed loss (about the last 50 steps).
const SMOOTHING: f64 = 0.02;
/// The files written in `--out`.
const CHECKPOINT: &str = "model.safetensors";
const LOSS_CSV: &str = "loss.csv";
const LOSS_PNG: &str = "loss.png";
const CSV_HEADER: &str = "step,loss,grad_norm,lr";

fn data_names() -> Listing {
    TOYS.iter()
        .copied()
        .chain(SHAPES_DATASETS.iter().map(|(n, _, _, d)| (*n, *d)))
        .chain([(
            "FILE.npy",
            "a float32 array, [N, D] (vectors) or [N, C, H, W] (images)",
        )])
        .collect()
}

fn net_rows() -> Vec<(NetDefaults, &'static str, &'static str)> {
    NETS.iter().map(|n| (*n, n.name, n.description)).collect()
}

fn param_rows() -> Vec<(Prediction, &'static str, &'static str)> {
    Prediction::ALL
        .iter()
        .map(|&(p, n)| {
            let description = match p {
                Prediction::Score => "the score ∇log p_t(x)",
                Prediction::Eps => "the noise ε (DDPM)",
                Prediction::X0 => "the clean data x_0",
                Prediction::Flow => {
                    "the flow velocity u = ȧ·x_0 + ḃ·ε (flow matching; rectified flow: ε − x_0)"
                }
                _ => "v = a·ε − b·x_0 (Salimans & Ho)",
            };
            (p, n, description)
        })
        .collect()
}

/// What `sbdm train` trains.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectiveKind {
    /// A score model by denoising score matching.
    Dsm,
    /// A time-dependent classifier by cross-entropy at noised data.
    Classifier,
}

fn objective_rows() -> Vec<(ObjectiveKind, &'static str, &'static str)> {
    vec![
        (
            ObjectiveKind::Dsm,
            "dsm",
            "a score model, by denoising score matching (the default)",
        ),
        (
            ObjectiveKind::Classifier,
            "classifier",
            "a time-dependent classifier p_t(y | x_t) for classifier guidance (labelled data)",
        ),
    ]
}

fn schedule_rows() -> Vec<(LrSchedule, &'static str, &'static str)> {
    vec![
        (
            LrSchedule::Constant,
            "constant",
            "constant at --lr after the warm-up",
        ),
        (
            LrSchedule::Cosine,
            "cosine",
            "cosine decay to lr/10 at the last step",
        ),
    ]
}

/// The rows of a choice flag as a listing.
fn listing<T>(rows: Vec<(T, &'static str, &'static str)>) -> Listing {
    rows.into_iter().map(|(_, n, d)| (n, d)).collect()
}

fn time_density_names() -> Listing {
    TimeDensity::NAMES.to_vec()
}

fn weighting_names() -> Listing {
    Weighting::NAMES.to_vec()
}

/// The data of `--data` and the name checkpoints record for it.
fn load_data(
    spec: &str,
    n_data: Option<usize>,
    labels: Option<&Path>,
    device: &Device,
) -> Result<(Dataset, String)> {
    let is_npy = Path::new(spec)
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npy"));
    if (is_npy || Toy::from_name(spec).is_some()) && n_data.is_some() {
        bail!("--n-data applies to the generated shapes datasets, not to `{spec}`");
    }
    if !is_npy && labels.is_some() {
        bail!("--labels applies to --data FILE.npy; `{spec}` is generated with its labels");
    }
    if is_npy {
        let mut data = Dataset::from_npy(spec, device).map_err(one_line)?;
        let mut name =
            std::fs::canonicalize(spec).map_or(spec.to_string(), |p| p.display().to_string());
        if let Some(path) = labels {
            let y = io::read_npy_labels(path).map_err(one_line)?;
            data = data
                .with_labels(y)
                .map_err(|e| anyhow!("--labels {}: {}", path.display(), one_line(e)))?;
            let labels_name = std::fs::canonicalize(path)
                .map_or(path.display().to_string(), |p| p.display().to_string());
            name = format!("{name} (labels {labels_name})");
        }
        return Ok((data, name));
    }
    if let Some(toy) = Toy::from_name(spec) {
        return Ok((Dataset::Toy(toy), toy.name().to_string()));
    }
    let n = n_data.unwrap_or(DEFAULT_N_DATA);
    let key = |s: &str| s.to_ascii_lowercase().replace(['-', '_'], "");
    if let Some((_, size, channels, _)) = SHAPES_DATASETS.iter().find(|s| key(s.0) == key(spec)) {
        // The images in f32, and room for a copy of them.
        limits::check(
            format_args!("--n-data {n} (images of {channels}x{size}x{size})"),
            limits::bytes(&[n, *channels, *size, *size], 4).saturating_mul(2),
        )
        .map_err(one_line)?;
    }
    let data = Dataset::from_name(spec, n, DATA_SEED, device).map_err(one_line)?;
    let name = SHAPES_DATASETS
        .iter()
        .find(|s| key(s.0) == key(spec))
        .map_or(spec, |s| s.0);
    Ok((data, format!("{name} ({n} images)")))
}

/// `--sigma-data`: the number given, or the pooled per-coordinate standard deviation
/// `sqrt(mean_j var_j)` of 4096 held-out samples (all of a smaller finite set), rounded
/// to 6 significant digits so that it reads back exactly from the checkpoint's JSON.
fn sigma_data(spec: &str, data: &Dataset, device: &Device) -> Result<f64> {
    if spec != "auto" {
        let v: f64 = spec
            .parse()
            .map_err(|_| anyhow!("--sigma-data must be auto or a number, got `{spec}`"))?;
        if !(v.is_finite() && v > 0.0) {
            bail!("--sigma-data must be finite and > 0, got {v}");
        }
        return Ok(v);
    }
    let n = data
        .len()
        .map_or(SIGMA_SAMPLES, |len| len.min(SIGMA_SAMPLES));
    let x = data
        .held_out(n, SIGMA_SEED, device)
        .map_err(one_line)?
        .flatten_from(1)?
        .to_dtype(DType::F64)?;
    let centred = x.broadcast_sub(&x.mean_keepdim(0)?)?;
    let var = (centred.sqr()?.sum_keepdim(0)? / n.saturating_sub(1).max(1) as f64)?;
    let s = var.mean_all()?.to_scalar::<f64>()?.sqrt();
    if !(s.is_finite() && s > 0.0) {
        bail!("cannot estimate --sigma-data: the data's std is {s}; give --sigma-data X");
    }
    Ok(format!("{s:.5e}").parse()?)
}

/// Bytes per training step of the loss log kept in memory: its row, and the raw and
/// smoothed points of the loss plot.
const LOG_BYTES_PER_STEP: u128 = 96;

/// Bytes per parameter a training run holds: the weights, their EMA, Adam's two moments
/// and the gradients in f32, the initialisation's f64 draw, and a checkpoint's copies
/// (its bytes and the serialised file) at a save.
const TRAIN_BYTES_PER_PARAMETER: u128 = 64;

/// Refuses a network (`parameters`, `activations` floats per sample's forward pass) or a
/// batch of `batch` samples of `shape` that would not fit in the memory budget, naming
/// the flags that set them.
fn check_training_size(
    args: &TrainArgs,
    net: &NetDefaults,
    parameters: u128,
    activations: u128,
    shape: &[usize],
    batch: usize,
) -> Result<()> {
    let width = args.width.unwrap_or(net.width);
    let depth = args.depth.unwrap_or(net.depth);
    limits::check(
        format_args!(
            "--model {} --width {width} --depth {depth} ({parameters} parameters on samples of shape {shape:?})",
            net.name
        ),
        parameters.saturating_mul(TRAIN_BYTES_PER_PARAMETER),
    )
    .map_err(one_line)?;
    // A batch's samples, noise, targets and losses, and the forward pass kept for the
    // backward one (about three times the activations).
    let per = limits::elems(shape)
        .saturating_mul(8)
        .saturating_add(activations.saturating_mul(3))
        .saturating_mul(4);
    limits::check(
        format_args!("--batch {batch} (samples of shape {shape:?})"),
        per.saturating_mul(batch as u128),
    )
    .map_err(one_line)
}

/// The network for `net` on samples of `shape`.
fn net_config(
    net: &NetDefaults,
    args: &TrainArgs,
    shape: &[usize],
    num_classes: usize,
) -> Result<NetConfig> {
    let width = args.width.unwrap_or(net.width);
    let depth = args.depth.unwrap_or(net.depth);
    if width == 0 || depth == 0 {
        bail!("--width and --depth must be at least 1");
    }
    Ok(match (net.name, shape) {
        ("mlp", [dim]) => {
            if args.no_attention {
                bail!("--no-attention applies to --model unet");
            }
            NetConfig::Mlp(MlpConfig {
                dim: *dim,
                width,
                depth,
                num_classes,
                ..Default::default()
            })
        }
        ("mlp", s) => bail!(
            "--model mlp is for vectors [N, D], but the data holds samples of shape {s:?}; \
             use --model unet for images"
        ),
        ("unet", [c, h, w]) if h == w => NetConfig::Unet(UNetConfig {
            channels: *c,
            image_size: *h,
            base_channels: width,
            num_res_blocks: depth,
            attention: !args.no_attention,
            groups: gcd(width, 8),
            num_classes,
            ..Default::default()
        }),
        ("unet", [_, h, w]) => bail!("--model unet needs square images; the data's are {h}x{w}"),
        (_, s) => bail!(
            "--model unet is for images [N, C, H, W], but the data holds samples of shape \
             {s:?}; use --model mlp for vectors"
        ),
    })
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// One row of `loss.csv`.
#[derive(Clone, Copy, Debug)]
struct Row {
    step: u64,
    loss: f64,
    grad_norm: f64,
    lr: f64,
}

impl From<StepStats> for Row {
    fn from(s: StepStats) -> Row {
        Row {
            step: s.step,
            loss: s.loss,
            grad_norm: s.grad_norm,
            lr: s.lr,
        }
    }
}

/// The rows of an earlier run's `loss.csv` up to step `upto` (none if there is no file).
fn read_log(path: &Path, upto: u64) -> Result<Vec<Row>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => bail!("{}: {e}", path.display()),
    };
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        let v: Vec<&str> = line.split(',').collect();
        let row = match v[..] {
            [s, l, g, r] => (|| {
                Some(Row {
                    step: s.parse().ok()?,
                    loss: l.parse().ok()?,
                    grad_norm: g.parse().ok()?,
                    lr: r.parse().ok()?,
                })
            })(),
            _ => None,
        };
        let row = row.ok_or_else(|| {
            anyhow!(
                "{}: line {} is not `{CSV_HEADER}`; move the file away to start a new log",
                path.display(),
                i + 1
            )
        })?;
        if row.step <= upto {
            rows.push(row);
        }
    }
    Ok(rows)
}

/// Writes `loss.csv` atomically.
fn write_log(path: &Path, rows: &[Row]) -> Result<()> {
    let mut text = format!("{CSV_HEADER}\n");
    for r in rows {
        // `{}` of an f64 is the shortest text that reads back as the same number.
        let _ = writeln!(text, "{},{},{},{}", r.step, r.loss, r.grad_norm, r.lr);
    }
    io::write_file_atomic(path, &text).map_err(one_line)
}

/// [`plot::smooth`], one value at a time: the debiased exponential moving average.
#[derive(Default)]
struct Smoothed {
    m: f64,
    w: f64,
}

impl Smoothed {
    fn push(&mut self, y: f64) -> f64 {
        self.m = (1.0 - SMOOTHING) * self.m + SMOOTHING * y;
        self.w = (1.0 - SMOOTHING) * self.w + SMOOTHING;
        self.value()
    }

    fn value(&self) -> f64 {
        self.m / self.w
    }
}

/// A progress bar over the steps, the smoothed loss as its message.
fn progress(total: u64, done: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total).with_position(done);
    let template = "{bar:30} {pos}/{len} loss {msg} ({per_sec}, ETA {eta})";
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar.reset_eta();
    bar
}

/// The run's trainer, by objective.
enum Job {
    /// A score model by denoising score matching.
    Score(Trainer<Dsm<Arc<dyn GaussianKernel>>>),
    /// A time-dependent classifier.
    Classifier(Trainer<CrossEntropy<Arc<dyn GaussianKernel>>>),
}

/// A validated run, ready to train.
struct Plan {
    job: Job,
    /// What is trained, for the first line printed.
    what: String,
    /// The loss plot's title.
    title: String,
    out: PathBuf,
    /// `loss.csv` rows kept from the run being resumed.
    rows: Vec<Row>,
    /// The step of the checkpoint in `out`, if any.
    saved: Option<u64>,
    total: u64,
    every: u64,
}

/// Restores `trainer` from `ckpt` for `--resume` up to `total` steps: the kept rows of
/// `loss.csv` and the step reached.
fn resume<O: Objective>(
    trainer: &mut Trainer<O>,
    ckpt: &Path,
    csv: &Path,
    total: u64,
) -> Result<(Vec<Row>, Option<u64>)> {
    trainer.restore(ckpt).map_err(one_line)?;
    let done = trainer.steps_done();
    if total <= done {
        bail!(
            "{} is already trained to {done} steps; pass a larger --steps to continue it",
            ckpt.display()
        );
    }
    Ok((read_log(csv, done)?, Some(done)))
}

fn plan(args: &TrainArgs) -> Result<Plan> {
    let chosen = crate::sde_arg::resolve(args.sde.as_deref(), &args.sde_flags)?
        .ok_or_else(|| anyhow!("missing --sde (see the command's --help)"))?;
    let (sde_name, sde) = (chosen.name, chosen.sde);
    let data_spec = require(&args.data, "--data")?;
    let net = Pick::chosen(args.model.as_ref(), None, "--model")?;
    let objective = Pick::chosen(Some(&args.objective), None, "--objective")?;
    // Where the kernel reaches pure noise (a(T) = 0) an eps or score model has no x_0 at T:
    // such SDEs default to the flow velocity (flow matching) and refuse eps and score.
    let pure_noise = sde.is_pure_noise(sde.time_range().1);
    let default_param = if pure_noise {
        Prediction::Flow
    } else {
        Prediction::Eps
    };
    let prediction = Pick::chosen(args.param.as_ref(), Some(default_param), "--param")?;
    // The flow velocity's own loss is the plain MSE (flow matching); the rest default to
    // score_sde's b² weighting.
    let default_weighting = if prediction == Prediction::Flow {
        "uniform"
    } else {
        "b2"
    };
    let weighting = Weighting::from_name(args.weighting.as_deref().unwrap_or(default_weighting))
        .map_err(one_line)?;
    if pure_noise && matches!(prediction, Prediction::Eps | Prediction::Score) {
        bail!(
            "--param {}: {sde_name} reaches pure noise at t = {} (a = 0), where such a model \
             cannot give x_0 for sampling; use --param flow (the default here), x0 or v",
            prediction.name(),
            sde.time_range().1
        );
    }
    let time_density = TimeDensity::from_name(args.time_density.as_deref().unwrap_or("uniform"))
        .map_err(one_line)?;
    let schedule = Pick::chosen(Some(&args.schedule), None, "--schedule")?;
    if objective == ObjectiveKind::Classifier {
        for (given, flag) in [
            (args.conditional, "--conditional"),
            (args.precondition, "--precondition"),
            (args.param.is_some(), "--param"),
            (args.weighting.is_some(), "--weighting"),
        ] {
            applies_only(given, flag, "--objective dsm, not to a classifier")?;
        }
    }
    let total = require(&args.steps, "--steps")?;
    if total == 0 {
        bail!("--steps must be at least 1, got 0");
    }
    limits::check(
        format_args!("--steps {total} (a loss-log row per step)"),
        u128::from(total).saturating_mul(LOG_BYTES_PER_STEP),
    )
    .map_err(one_line)?;
    let batch = args.batch.unwrap_or(net.batch);
    if batch == 0 {
        bail!("--batch must be at least 1, got 0");
    }
    let lr = args.lr.unwrap_or(net.lr);
    if !(lr.is_finite() && lr > 0.0) {
        bail!("--lr must be finite and > 0, got {lr}");
    }
    let cfg = TrainConfig {
        steps: total,
        batch,
        lr,
        warmup: args.warmup,
        schedule,
        weight_decay: args.weight_decay,
        clip: args.clip,
        ema_decay: args.ema,
        weighting,
        time_density,
        seed: args.seed,
        ..Default::default()
    };
    cfg.validate().map_err(one_line)?;

    let out = require(&args.out, "--out")?;
    if out.exists() && !out.is_dir() {
        bail!("--out {} exists and is not a directory", out.display());
    }
    let device = args.device.open()?;
    let ckpt = out.join(CHECKPOINT);
    let existing = ckpt.exists();
    match (existing, args.resume) {
        (true, false) => match checkpoint::read_info(&ckpt) {
            Ok(info) => bail!(
                "{} already holds a checkpoint at step {}; pass --resume to continue it or \
                 choose another --out",
                out.display(),
                info.step
            ),
            Err(e) => bail!(
                "{} already holds {CHECKPOINT}, which is unreadable ({}); choose another --out",
                out.display(),
                one_line(e)
            ),
        },
        (false, true) => bail!(
            "--resume: {} holds no checkpoint ({CHECKPOINT}) to continue",
            out.display()
        ),
        _ => {}
    }

    let (data, data_name) = load_data(&data_spec, args.n_data, args.labels.as_deref(), &device)?;
    let sigma_data = sigma_data(&args.sigma_data, &data, &device)?;
    let classes = data.num_classes();
    let csv = out.join(LOSS_CSV);
    let for_sde = format!("{sde_name} ({})", sde.name());
    let (job, what, title, (rows, saved)) = match objective {
        ObjectiveKind::Dsm => {
            let num_classes = match (args.conditional, classes) {
                (false, _) => 0,
                (true, 0) => bail!("--conditional: `{data_name}` has no class labels"),
                (true, k) => k,
            };
            let model_cfg = ModelConfig {
                net: net_config(&net, args, &data.sample_shape(), num_classes)?,
                prediction,
                precondition: args.precondition,
                sigma_data,
            };
            check_training_size(
                args,
                &net,
                model_cfg.net.parameter_count(),
                model_cfg.net.activations_per_sample(),
                &data.sample_shape(),
                batch,
            )?;
            let what = format!(
                "{} on {data_name} for {for_sde}: {} prediction{}{}, {} weighting{}, sigma_data {sigma_data}",
                net.name,
                prediction.name(),
                if args.precondition { ", preconditioned" } else { "" },
                if num_classes > 0 { ", class-conditional" } else { "" },
                weighting.name(),
                match time_density {
                    TimeDensity::Uniform => String::new(),
                    d => format!(", {} times", d.name()),
                }
            );
            let title = format!(
                "DSM loss: {} on {data_name}, {sde_name}, {} weighting",
                net.name,
                weighting.name()
            );
            let model = NetModel::new(sde, model_cfg, args.seed, &device).map_err(one_line)?;
            let mut trainer =
                Trainer::new(Dsm::new(model), data, data_name.clone(), cfg).map_err(one_line)?;
            let kept = match args.resume {
                true => resume(&mut trainer, &ckpt, &csv, total)?,
                false => (Vec::new(), None),
            };
            (Job::Score(trainer), what, title, kept)
        }
        ObjectiveKind::Classifier => {
            if classes == 0 {
                bail!(
                    "--objective classifier: `{data_name}` has no class labels (a labelled \
                     dataset, or --labels for a .npy file)"
                );
            }
            let clf_cfg = ClassifierConfig {
                net: net_config(&net, args, &data.sample_shape(), 0)?,
                num_classes: classes,
            };
            check_training_size(
                args,
                &net,
                clf_cfg.parameter_count(),
                clf_cfg.activations_per_sample(),
                &data.sample_shape(),
                batch,
            )?;
            let what = format!(
                "a {} classifier of {classes} classes on {data_name} for {for_sde}, sigma_data {sigma_data}",
                net.name
            );
            let title = format!(
                "cross-entropy: {} classifier on {data_name}, {sde_name}",
                net.name
            );
            let clf = ClassifierModel::new(sde, clf_cfg, sigma_data, args.seed, &device)
                .map_err(one_line)?;
            let mut trainer = Trainer::new(CrossEntropy::new(clf), data, data_name.clone(), cfg)
                .map_err(one_line)?;
            let kept = match args.resume {
                true => resume(&mut trainer, &ckpt, &csv, total)?,
                false => (Vec::new(), None),
            };
            (Job::Classifier(trainer), what, title, kept)
        }
    };
    Ok(Plan {
        job,
        what,
        title,
        out,
        rows,
        saved,
        total,
        every: args.checkpoint_every,
    })
}

/// Draws `loss.png`: every step's loss, light, and the smoothed loss over it.
fn plot_loss(dest: &Path, title: &str, rows: &[Row]) -> Result<()> {
    let raw: Vec<(f64, f64)> = rows.iter().map(|r| (r.step as f64, r.loss)).collect();
    let series = [
        LineSeries {
            label: "loss".into(),
            points: raw.clone(),
            color: (170, 190, 225),
        },
        LineSeries {
            label: "smoothed".into(),
            points: plot::smooth(&raw, SMOOTHING),
            color: (20, 50, 140),
        },
    ];
    plot::line_png(dest, title, "step", "loss", &series, true).map_err(one_line)
}

/// Runs `sbdm train`.
pub fn run(args: &TrainArgs) -> Result<()> {
    let is_help = |v: Option<&str>| v == Some("help");
    if print_help_listing(&[
        (is_help(args.sde.as_deref()), &sde_names),
        (is_help(args.data.as_deref()), &data_names),
        (asks_help(&args.model), &|| listing(net_rows())),
        (asks_help(&args.param), &|| listing(param_rows())),
        (is_help(args.weighting.as_deref()), &weighting_names),
        (is_help(args.time_density.as_deref()), &time_density_names),
        (matches!(args.objective, Pick::Help), &|| {
            listing(objective_rows())
        }),
        (matches!(args.schedule, Pick::Help), &|| {
            listing(schedule_rows())
        }),
    ]) {
        return Ok(());
    }
    let plan = plan(args)?;
    std::fs::create_dir_all(&plan.out).map_err(|e| anyhow!("{}: {e}", plan.out.display()))?;
    // Fail now, not at the first checkpoint, if the directory is not writable.
    drop(PendingFile::new(plan.out.join(LOSS_CSV)).map_err(one_line)?);
    match plan.job {
        Job::Score(trainer) => train(
            trainer, plan.what, plan.title, &plan.out, plan.rows, plan.saved, plan.total,
            plan.every,
        ),
        Job::Classifier(trainer) => train(
            trainer, plan.what, plan.title, &plan.out, plan.rows, plan.saved, plan.total,
            plan.every,
        ),
    }
}

/// The training loop of any objective: progress bar, periodic checkpoints and log,
/// the final checkpoint, `loss.csv` and `loss.png`, and the summary table.
#[allow(clippy::too_many_arguments)]
fn train<O: Objective>(
    mut trainer: Trainer<O>,
    what: String,
    title: String,
    out: &Path,
    mut rows: Vec<Row>,
    mut saved: Option<u64>,
    total: u64,
    every: u64,
) -> Result<()> {
    let (ckpt, csv, png) = (out.join(CHECKPOINT), out.join(LOSS_CSV), out.join(LOSS_PNG));
    let params: usize = trainer
        .model()
        .weights()
        .vars()
        .iter()
        .map(|(_, v)| v.as_tensor().elem_count())
        .sum();
    let cfg = trainer.config().clone();
    let first = trainer.steps_done();
    println!(
        "training {what} ({params} parameters), batch {}, lr {}, steps {first}..{total}",
        cfg.batch, cfg.lr
    );

    let mut smoothed = Smoothed::default();
    for r in &rows {
        smoothed.push(r.loss);
    }
    let bar = progress(total, first);
    let start = Instant::now();
    let mut failure = None;
    while trainer.steps_done() < total {
        let stats = match trainer.step() {
            Ok(s) => s,
            Err(e) => {
                failure = Some(e);
                break;
            }
        };
        rows.push(stats.into());
        bar.set_message(format!("{:.4}", smoothed.push(stats.loss)));
        bar.inc(1);
        if every > 0 && stats.step % every == 0 && stats.step < total {
            // The log first: a run killed between the two writes leaves a log at least
            // as long as the checkpoint, which a resume cuts to the checkpoint's step.
            write_log(&csv, &rows)?;
            trainer.save(&ckpt).map_err(one_line)?;
            saved = Some(stats.step);
        }
    }
    let wall = start.elapsed().as_secs_f64();
    bar.finish_and_clear();
    if let Some(e) = failure {
        // The checkpoint stays at its last good step; the log shows the steps taken.
        write_log(&csv, &rows)?;
        let kept = match saved {
            Some(k) => format!("{} holds step {k}", ckpt.display()),
            None => "no checkpoint was written".to_string(),
        };
        bail!("{}; {kept}", one_line(e));
    }
    write_log(&csv, &rows)?;
    trainer.save(&ckpt).map_err(one_line)?;
    plot_loss(&png, &title, &rows)?;

    let run = total - first;
    println!("{:<24} {total} ({run} this run)", "steps");
    println!("{:<24} {:.5}", "final loss (smoothed)", smoothed.value());
    println!("{:<24} {wall:.3}", "wall time (s)");
    println!("{:<24} {:.1}", "steps/s", run as f64 / wall.max(1e-9));
    for path in [&ckpt, &csv, &png] {
        println!("wrote {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoothed_matches_plot_smooth() {
        let ys = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0];
        let points: Vec<(f64, f64)> = ys.iter().enumerate().map(|(i, y)| (i as f64, *y)).collect();
        let mut s = Smoothed::default();
        for ((_, want), y) in plot::smooth(&points, SMOOTHING).iter().zip(ys) {
            assert!((s.push(y) - want).abs() < 1e-12);
        }
    }

    #[test]
    fn log_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOSS_CSV);
        let rows: Vec<Row> = (1..=5)
            .map(|k| Row {
                step: k,
                loss: 1.0 / k as f64,
                grad_norm: 0.1 * k as f64,
                lr: 1e-3,
            })
            .collect();
        write_log(&path, &rows).unwrap();
        let back = read_log(&path, 3).unwrap();
        assert_eq!(back.len(), 3);
        assert_eq!(back[2].loss, 1.0 / 3.0);
        assert_eq!(read_log(&dir.path().join("none.csv"), 9).unwrap().len(), 0);
    }
}
