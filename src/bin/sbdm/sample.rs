//! `sbdm sample`: draw samples with any sampler from an exact Gaussian-mixture score
//! (`gmm:FILE.json`) or from a network trained by `sbdm train` (`ckpt:FILE.safetensors`,
//! its EMA weights), write them as `.npy` (and a PNG), and report how close they are to
//! the exact distribution when there is one (the mixture).
//!
//! The prior is `N(0, b(T)²·I)` with `b(T)` the SDE's kernel std at `T` (`--t-max`):
//! `x_T = b(T)·z`, `z` drawn from stream `i` of `--seed` for sample `i`. The sampler's
//! own noise continues the same per-sample streams, so sample `i` of a batch is the
//! same as sample `i` drawn alone. `--init x_T.npy` replaces the prior draw (used as
//! given, no rescaling). Samples have the model's shape: `[N, D]` for vectors,
//! `[N, C, H, W]` for a checkpoint trained on images.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use candle_core::{DType, Device, Tensor};
use clap::Args;
use sbdm_runtime::io::{self, PendingFile};
use sbdm_runtime::model::mixture::GaussianMixture;
use sbdm_runtime::model::net::NetModel;
use sbdm_runtime::model::ScoreModel;
use sbdm_runtime::report::imgrid::image_grid_png;
use sbdm_runtime::report::metrics;
use sbdm_runtime::report::plot::{self, Mark, ScatterConfig, Series};
use sbdm_runtime::sampling::grid::{discrete_times, Grid, Spacing};
use sbdm_runtime::sampling::noise::Noise;
use sbdm_runtime::sampling::{self, DdpmVariance, Sampled, SamplerConfig, SamplerKind};
use sbdm_runtime::sde::builtin;
use sbdm_runtime::sde::discrete::{BetaSchedule, DiscreteSchedule};
use sbdm_runtime::train::{checkpoint, load_model};
use sbdm_runtime::GaussianKernel;

use crate::{list, one_line, print_listing, require, Listing};

/// Arguments of `sbdm sample`. Without `--init`, x_T is drawn from the prior
/// N(0, b(T)²·I), b(T) the SDE's kernel std at T (or `--t-max`).
#[derive(Args, Debug)]
pub struct SampleArgs {
    /// The forward SDE (`help` lists them): a built-in or a discrete DDPM table. With a
    /// checkpoint it may be left out: the built-in SDE the checkpoint was trained for.
    #[arg(long)]
    pub sde: Option<String>,
    /// The score model: `gmm:FILE.json`, the exact score of a Gaussian mixture
    /// `{"weights": [...], "means": [[...], ...], "stds": [...]}`, or
    /// `ckpt:FILE.safetensors`, a network trained by `sbdm train` (its EMA weights).
    #[arg(long)]
    pub model: Option<String>,
    /// The sampler (`help` lists them).
    #[arg(long)]
    pub sampler: Option<String>,
    /// Number of steps (for rk45: the initial step-size guess is (T - t_min)/steps).
    #[arg(long, value_name = "N")]
    pub steps: Option<usize>,
    /// DDIM's η: 0 is deterministic, 1 is DDPM-like.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub eta: f64,
    /// The time grid: uniform, quadratic, logsnr or karras (ρ = 7); `auto` (the default)
    /// is karras for edm (σ = t, where uniform steps in t waste the small-σ end) and
    /// uniform otherwise.
    #[arg(long, default_value = "auto")]
    pub grid: String,
    /// For the discrete `ddpm-*` schedules: sample on `--steps` of the 1000 training
    /// timesteps with this spacing (leading, trailing or linspace) instead of `--grid`.
    #[arg(long)]
    pub spacing: Option<String>,
    /// Langevin corrector signal-to-noise ratio (pc).
    #[arg(long, default_value_t = 0.16, allow_negative_numbers = true)]
    pub snr: f64,
    /// Langevin corrector steps per predictor step (pc).
    #[arg(long, default_value_t = 1)]
    pub corrector_steps: usize,
    /// Heun's churn S_churn (0: deterministic).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub churn: f64,
    /// RK45 relative tolerance.
    #[arg(long, default_value_t = 1e-5, allow_negative_numbers = true)]
    pub rtol: f64,
    /// RK45 absolute tolerance.
    #[arg(long, default_value_t = 1e-5, allow_negative_numbers = true)]
    pub atol: f64,
    /// DDPM's variance: `beta` (σ² = β) or `beta-tilde` (the posterior variance).
    #[arg(long, default_value = "beta")]
    pub ddpm_variance: String,
    /// Start at this time instead of the SDE's T.
    #[arg(long, allow_negative_numbers = true)]
    pub t_max: Option<f64>,
    /// Stop at this time instead of the SDE's t_min.
    #[arg(long, allow_negative_numbers = true)]
    pub t_min: Option<f64>,
    /// The initial state x_T, a float32 .npy of shape [N, D] (or [N, C, H, W] for an
    /// image model), used as is.
    #[arg(long, value_name = "X_T.npy", conflicts_with = "n")]
    pub init: Option<PathBuf>,
    /// Number of samples drawn from the prior N(0, b(T)² I) (default 1000).
    #[arg(long)]
    pub n: Option<usize>,
    /// Seed of the prior draw and of the sampler's noise.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Replace the final state by the model's x_0 prediction at t_min (Tweedie).
    #[arg(long)]
    pub denoise: bool,
    /// Where to write the samples: float32 .npy, shape [N, D] (or [N, C, H, W]).
    #[arg(long, value_name = "SAMPLES.npy")]
    pub out: Option<PathBuf>,
    /// Also write a PNG: a scatter plot of the first two coordinates, or for an image
    /// model a grid of the first 64 images.
    #[arg(long, value_name = "SAMPLES.png")]
    pub plot: Option<PathBuf>,
}

/// The discrete DDPM tables, by CLI name, each with 1000 training steps.
const DISCRETE: &[(&str, &str)] = &[
    (
        "ddpm-linear",
        "discrete DDPM table, linear beta 1e-4..0.02, 1000 steps",
    ),
    (
        "ddpm-scaled-linear",
        "discrete table, scaled-linear beta 0.00085..0.012, 1000 steps (latent diffusion)",
    ),
    (
        "ddpm-cosine",
        "discrete table, squaredcos_cap_v2 (Nichol & Dhariwal), 1000 steps",
    ),
];

/// Every SDE the CLI knows, with a description.
pub fn sde_names() -> Listing {
    builtin::NAMES.iter().chain(DISCRETE).copied().collect()
}

fn sampler_names() -> Listing {
    SamplerKind::ALL.iter().map(|(_, n, d)| (*n, *d)).collect()
}

/// The SDE named `name` (a built-in or a discrete table).
pub fn sde_by_name(name: &str) -> Result<Box<dyn GaussianKernel>> {
    if let Some(sde) = builtin::by_name(name) {
        return Ok(sde);
    }
    let kind = match name {
        "ddpm-linear" => BetaSchedule::linear(),
        "ddpm-scaled-linear" => BetaSchedule::scaled_linear(),
        "ddpm-cosine" => BetaSchedule::squaredcos_cap_v2(),
        _ => bail!(
            "unknown SDE `{name}`; valid: {}",
            list(sde_names().into_iter().map(|(n, _)| n))
        ),
    };
    Ok(Box::new(DiscreteSchedule::new(kind, 1000)?))
}

/// The CLI name of the built-in SDE whose `Sde::name` is `struct_name` (`VpSde` → `vp`).
fn builtin_name(struct_name: &str) -> Option<&'static str> {
    builtin::NAMES
        .iter()
        .map(|(n, _)| *n)
        .find(|n| builtin::by_name(n).is_some_and(|s| s.name() == struct_name))
}

fn sampler_by_name(name: &str) -> Result<SamplerKind> {
    SamplerKind::from_name(name).ok_or_else(|| {
        anyhow!(
            "unknown sampler `{name}`; valid: {}",
            list(SamplerKind::ALL.iter().map(|(_, n, _)| *n))
        )
    })
}

fn grid_by_name(name: &str) -> Result<Grid> {
    Grid::from_name(name)
        .ok_or_else(|| anyhow!("unknown grid `{name}`; valid: auto, {}", list(Grid::NAMES)))
}

fn ddpm_variance_by_name(name: &str) -> Result<DdpmVariance> {
    match name {
        "beta" => Ok(DdpmVariance::Beta),
        "beta-tilde" => Ok(DdpmVariance::BetaTilde),
        _ => bail!("unknown --ddpm-variance `{name}`; valid: beta, beta-tilde"),
    }
}

/// `--model` before it is loaded.
enum ModelSpec {
    /// `gmm:FILE.json`.
    Mixture(PathBuf),
    /// `ckpt:FILE.safetensors`.
    Checkpoint(PathBuf),
}

impl ModelSpec {
    fn parse(spec: &str) -> Result<ModelSpec> {
        if let Some(file) = spec.strip_prefix("gmm:") {
            return Ok(ModelSpec::Mixture(file.into()));
        }
        if let Some(file) = spec.strip_prefix("ckpt:") {
            return Ok(ModelSpec::Checkpoint(file.into()));
        }
        bail!(
            "unknown model `{spec}`; valid: gmm:FILE.json (the exact score of a Gaussian \
             mixture), ckpt:FILE.safetensors (a network trained by `sbdm train`)"
        )
    }

    /// The CLI name of the SDE a checkpoint was trained for, if it is a built-in.
    fn trained_sde(path: &Path) -> Result<String> {
        let info = checkpoint::load(path, &Device::Cpu).map_err(one_line)?.info;
        builtin_name(&info.sde).map(str::to_string).ok_or_else(|| {
            anyhow!(
                "{}: the checkpoint was trained for the SDE {}, which is not a built-in; \
                 name it with --sde",
                path.display(),
                info.sde
            )
        })
    }

    /// Loads the model for `sde` (a checkpoint must have been trained for it).
    fn load(&self, sde: &Arc<dyn GaussianKernel>) -> Result<Source> {
        Ok(match self {
            ModelSpec::Mixture(path) => {
                Source::Mixture(GaussianMixture::load(path).map_err(one_line)?)
            }
            ModelSpec::Checkpoint(path) => {
                let (model, _) =
                    load_model(path, sde.clone(), true, &Device::Cpu).map_err(one_line)?;
                Source::Net(Box::new(model))
            }
        })
    }
}

/// The score model of `--model`.
enum Source {
    /// The exact score of a Gaussian mixture.
    Mixture(GaussianMixture),
    /// A trained network with its EMA weights.
    Net(Box<NetModel<Arc<dyn GaussianKernel>>>),
}

impl Source {
    /// The shape of one sample: `[D]` or `[C, H, W]`.
    fn sample_shape(&self) -> Vec<usize> {
        match self {
            Source::Mixture(m) => vec![m.dim()],
            Source::Net(m) => m.config().net.sample_shape(),
        }
    }
}

/// A sample shape for messages: `2` or `1x16x16`.
fn shape_text(shape: &[usize]) -> String {
    shape
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("x")
}

/// Everything `sbdm sample` needs, validated before any work is done.
struct Plan {
    sde_name: String,
    sde: Arc<dyn GaussianKernel>,
    source: Source,
    /// The shape of one sample.
    shape: Vec<usize>,
    kind: SamplerKind,
    cfg: SamplerConfig,
    /// An explicit time grid (discrete spacings), else `cfg`'s grid.
    times: Option<Vec<f64>>,
    t_min: f64,
    t_max: f64,
    init: Option<Tensor>,
    n: usize,
    out: PathBuf,
}

fn check_range(name: &str, v: f64, ok: bool, what: &str) -> Result<()> {
    if !(v.is_finite() && ok) {
        bail!("{name} must be {what}, got {v}");
    }
    Ok(())
}

/// Reads `--init`: a finite float32 array `[N, ..shape]` with `N ≥ 1`.
fn read_init(path: &Path, shape: &[usize]) -> Result<Tensor> {
    let x = io::read_npy(path, 1 + shape.len()).map_err(one_line)?;
    let got = &x.dims()[1..];
    if got != shape {
        if let ([dx], [d]) = (got, shape) {
            bail!(
                "{}: x_T has dimension {dx} but the model has dimension {d}",
                path.display()
            );
        }
        bail!(
            "{}: x_T holds samples of shape {got:?} but the model's have shape {shape:?}",
            path.display()
        );
    }
    let n = x.dim(0)?;
    if n == 0 {
        bail!("{}: x_T has no rows", path.display());
    }
    let flat: Vec<f32> = x.flatten_all()?.to_vec1()?;
    let per = flat.len() / n;
    if let Some(i) = flat.iter().position(|v| !v.is_finite()) {
        bail!("{}: row {} of x_T is not finite", path.display(), i / per);
    }
    Ok(x)
}

/// Checks that `--plot` can draw samples of this shape.
fn check_plot(shape: &[usize]) -> Result<()> {
    match shape {
        [d] if *d < 2 => {
            bail!("--plot needs samples of dimension >= 2; the model has dimension {d}")
        }
        [c, _, _] if *c != 1 && *c != 3 => {
            bail!("--plot draws images of 1 or 3 channels; the model's have {c}")
        }
        [_] | [_, _, _] => Ok(()),
        s => bail!("--plot draws vectors or [C, H, W] images, not samples of shape {s:?}"),
    }
}

fn plan(args: &SampleArgs) -> Result<Plan> {
    let spec = ModelSpec::parse(&require(&args.model, "--model")?)?;
    let sde_name = match (&args.sde, &spec) {
        (None, ModelSpec::Checkpoint(path)) => ModelSpec::trained_sde(path)?,
        _ => require(&args.sde, "--sde")?,
    };
    let sde: Arc<dyn GaussianKernel> = Arc::from(sde_by_name(&sde_name)?);
    let kind = sampler_by_name(&require(&args.sampler, "--sampler")?)?;
    let grid = if args.grid == "auto" {
        if sde_name.eq_ignore_ascii_case("edm") {
            Grid::Karras { rho: 7.0 }
        } else {
            Grid::Uniform
        }
    } else {
        grid_by_name(&args.grid)?
    };
    let ddpm_variance = ddpm_variance_by_name(&args.ddpm_variance)?;
    let steps = require(&args.steps, "--steps")?;
    if steps == 0 {
        bail!("--steps must be at least 1, got 0");
    }
    check_range("--eta", args.eta, args.eta >= 0.0, ">= 0")?;
    check_range("--snr", args.snr, args.snr > 0.0, "> 0")?;
    check_range("--churn", args.churn, args.churn >= 0.0, ">= 0")?;
    check_range("--rtol", args.rtol, args.rtol > 0.0, "> 0")?;
    check_range("--atol", args.atol, args.atol > 0.0, "> 0")?;
    let (lo, hi) = sde.time_range();
    let times = match &args.spacing {
        None => None,
        Some(name) => {
            let spacing = Spacing::from_name(name).ok_or_else(|| {
                anyhow!(
                    "unknown spacing `{name}`; valid: {}",
                    Spacing::NAMES.join(", ")
                )
            })?;
            if !sde_name.starts_with("ddpm-") {
                bail!("--spacing applies to the discrete ddpm-* schedules, not `{sde_name}`");
            }
            Some(discrete_times(1000, steps, spacing).map_err(one_line)?)
        }
    };
    let t_min = match &times {
        Some(ts) => ts[ts.len() - 1],
        None => args.t_min.unwrap_or(lo),
    };
    let t_max = match &times {
        Some(ts) => ts[0],
        None => args.t_max.unwrap_or(hi),
    };
    if !(t_min.is_finite() && t_max.is_finite() && t_min >= lo && t_max <= hi && t_min < t_max) {
        bail!("time range [{t_min}, {t_max}] is not inside {sde_name}'s [{lo}, {hi}]");
    }
    let source = spec.load(&sde)?;
    let shape = source.sample_shape();
    let (init, n) = match (&args.init, args.n) {
        (Some(path), _) => {
            let x = read_init(path, &shape)?;
            let n = x.dim(0)?;
            (Some(x), n)
        }
        (None, Some(0)) => bail!("--n must be at least 1, got 0"),
        (None, n) => (None, n.unwrap_or(1000)),
    };
    let out = require(&args.out, "--out")?;
    if let Some(p) = &args.plot {
        check_plot(&shape)?;
        if p == &out {
            bail!("--plot and --out name the same file {}", out.display());
        }
    }
    let cfg = SamplerConfig {
        steps,
        grid,
        t_max: Some(t_max),
        t_min: Some(t_min),
        eta: args.eta,
        snr: args.snr,
        corrector_steps: args.corrector_steps,
        churn: args.churn,
        rtol: args.rtol,
        atol: args.atol,
        ddpm_variance,
        denoise: args.denoise,
    };
    Ok(Plan {
        sde_name,
        sde,
        source,
        shape,
        kind,
        cfg,
        times,
        t_min,
        t_max,
        init,
        n,
        out,
    })
}

/// Peak resident memory of this process (Linux `VmHWM`), in bytes.
pub fn peak_rss() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn spinner(message: String) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new_spinner();
    if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
        bar.set_style(style);
    }
    bar.set_message(message);
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// Runs the plan's sampler with `model` from `x_t`.
fn draw<M: ScoreModel + ?Sized>(
    p: &Plan,
    model: &M,
    x_t: &Tensor,
    noise: &mut Noise,
) -> sbdm_runtime::error::Result<Sampled> {
    match &p.times {
        Some(ts) => sampling::sample_on(p.kind, &p.sde, model, x_t, ts, &p.cfg, noise),
        None => sampling::sample(p.kind, &p.sde, model, x_t, &p.cfg, noise),
    }
}

/// Samples compared with the exact distribution of a mixture at the final time.
struct Comparison {
    /// Sliced W2 against exact sets, and between exact sets (the floor).
    w2: f64,
    w2_floor: f64,
    /// The exact `E|x|²`.
    m2_exact: f64,
    /// The largest gap between a component's share of the samples and its weight.
    share_err: f64,
    /// What the reference is.
    label: String,
}

fn compare(p: &Plan, mixture: &GaussianMixture, x: &Tensor, seed: u64) -> Result<Comparison> {
    let dev = Device::Cpu;
    // Exact reference at the final time: p_{t_min}, or p_0 after the denoising step.
    let (t_ref, a, b) = if p.cfg.denoise {
        (0.0, 1.0, 0.0)
    } else {
        (p.t_min, p.sde.mean_coef(p.t_min), p.sde.std(p.t_min))
    };
    let exact = |seed: u64| -> Result<Tensor> {
        Ok(if p.cfg.denoise {
            mixture.sample(p.n, seed, &dev)?
        } else {
            mixture.sample_at(&p.sde, p.t_min, p.n, seed, &dev)?
        })
    };
    // Sliced W2 of a multimodal set fluctuates with the sampled mode shares, so both the
    // value and its floor are averaged: the samples against each of 3 exact sets, and
    // the 3 exact sets against each other. Their seeds are independent of the sampler's
    // streams (which are ChaCha streams of `seed`).
    let ref_seed = seed ^ 0x5851_f42d_4c95_7f2d;
    let refs = (0..3)
        .map(|i| exact(ref_seed.wrapping_add(i)))
        .collect::<Result<Vec<_>>>()?;
    let sw2 = |a: &Tensor, b: &Tensor| metrics::sliced_w2(a, b, 64, 7);
    let mut w2 = 0.0;
    let mut w2_floor = 0.0;
    for (i, r) in refs.iter().enumerate() {
        w2 += sw2(x, r)? / 3.0;
        w2_floor += sw2(r, &refs[(i + 1) % 3])? / 3.0;
    }
    let d = mixture.dim() as f64;
    let m2_exact = a * a * mixture.second_moment() + d * b * b;
    let shares = metrics::shares(&mixture.nearest_component(x)?, mixture.len());
    let share_err = shares
        .iter()
        .zip(mixture.weights())
        .map(|(s, w)| (s - w).abs())
        .fold(0.0, f64::max);
    let t_label = if p.cfg.denoise {
        "p_0 (denoised)".to_string()
    } else {
        format!("p_t at t = {t_ref}")
    };
    Ok(Comparison {
        w2,
        w2_floor,
        m2_exact,
        share_err,
        label: format!("3 sets of {} from {t_label}", p.n),
    })
}

/// The images drawn by `--plot` for an image model (at most this many, the first ones).
const GRID_IMAGES: usize = 64;

/// Writes the `--plot` PNG of the samples `x` to `dest`.
fn draw_plot(p: &Plan, dest: &Path, x: &Tensor) -> Result<()> {
    if let [_, _, w] = p.shape[..] {
        let k = p.n.min(GRID_IMAGES);
        let cols = (k as f64).sqrt().ceil() as usize;
        let scale = (64 / w).max(1);
        return image_grid_png(dest, &x.narrow(0, 0, k)?, cols, scale).map_err(one_line);
    }
    let mut series = vec![Series::from_tensor("samples", x, Mark::Dot, 20_000)?];
    if let Source::Mixture(m) = &p.source {
        series.push(Series {
            label: "component means".into(),
            points: m.means().iter().map(|m| [m[0], m[1]]).collect(),
            mark: Mark::Cross,
        });
    }
    let cfg = ScatterConfig {
        title: format!(
            "{} on {}, {} steps: {} samples",
            p.kind.name(),
            p.sde_name,
            p.cfg.steps,
            p.n
        ),
        ..Default::default()
    };
    plot::draw_scatter(dest, &series, &cfg).map_err(one_line)
}

/// Runs `sbdm sample`.
pub fn run(args: &SampleArgs) -> Result<()> {
    if print_listing(&[
        (args.sde.as_deref(), sde_names),
        (args.sampler.as_deref(), sampler_names),
    ]) {
        return Ok(());
    }
    let p = plan(args)?;
    let dev = Device::Cpu;
    let shape = shape_text(&p.shape);
    // Claim the output paths first: a missing or unwritable directory fails before sampling.
    let out = PendingFile::new(&p.out).map_err(one_line)?;
    let png = args
        .plot
        .as_ref()
        .map(PendingFile::new)
        .transpose()
        .map_err(one_line)?;

    let mut noise = Noise::new(args.seed, 0, p.n, &p.shape, &dev);
    let x_t = match &p.init {
        Some(x) => x.clone(),
        None => noise.draw()?.affine(p.sde.std(p.t_max), 0.0)?,
    };
    let bar = spinner(format!(
        "sampling {} x {shape} with {}, {} steps",
        p.n,
        p.kind.name(),
        p.cfg.steps
    ));
    let start = Instant::now();
    let result = match &p.source {
        Source::Mixture(m) => draw(&p, &m.model(&p.sde), &x_t, &mut noise),
        Source::Net(net) => draw(&p, net.as_ref(), &x_t, &mut noise),
    };
    let wall = start.elapsed();
    // Before the metrics below, which hold several copies of the samples as f64 rows.
    let sampling_peak = peak_rss();
    bar.finish_and_clear();
    let sampled = result.map_err(one_line)?;
    let x = sampled.x.to_dtype(DType::F32)?;
    let rows = x.flatten_from(1)?;
    let (m2, m2_se) = metrics::second_moment(&rows)?;
    let comparison = match &p.source {
        Source::Mixture(m) => Some(compare(&p, m, &x, args.seed)?),
        Source::Net(_) => None,
    };

    // Write both outputs to their temporary files, then rename them into place.
    io::write_npy_pending(&out, &x).map_err(one_line)?;
    if let Some(png) = &png {
        draw_plot(&p, png.path(), &x)?;
    }
    out.commit().map_err(one_line)?;
    if let Some(png) = png {
        png.commit().map_err(one_line)?;
    }

    println!(
        "{} on {} ({}), {} steps, {}, t from {} to {}, seed {}",
        p.kind.name(),
        p.sde_name,
        p.sde.name(),
        p.cfg.steps,
        match &args.spacing {
            Some(s) => format!("{s} spacing of 1000 timesteps"),
            None => match p.cfg.grid {
                Grid::Uniform => "uniform grid".to_string(),
                Grid::Quadratic => "quadratic grid".to_string(),
                Grid::LogSnr => "log-SNR grid".to_string(),
                Grid::Karras { rho } => format!("Karras grid (rho = {rho})"),
            },
        },
        p.t_max,
        p.t_min,
        args.seed
    );
    println!("{:<24} {:>14}   reference", "", "value");
    println!("{:<24} {:>14}", "samples", format!("{} x {shape}", p.n));
    println!("{:<24} {:>14}", "NFE", sampled.nfe);
    println!("{:<24} {:>14.3}", "wall time (s)", wall.as_secs_f64());
    match &comparison {
        Some(c) => {
            println!(
                "{:<24} {:>14.5}   {:.5} exact vs exact (floor); both vs {}",
                "sliced W2", c.w2, c.w2_floor, c.label
            );
            println!(
                "{:<24} {:>14.5}   {:.5} exact; sample s.e. {:.5}",
                "E|x|^2", m2, c.m2_exact, m2_se
            );
            println!(
                "{:<24} {:>14.5}   0 (nearest component vs weights)",
                "max |share - weight|", c.share_err
            );
        }
        None => println!(
            "{:<24} {:>14.5}   none exact (a trained model); sample s.e. {:.5}",
            "E|x|^2", m2, m2_se
        ),
    }
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    if let (Some(sampling), Some(total)) = (sampling_peak, peak_rss()) {
        println!(
            "{:<24} {:>14.1}   {:.1} for the whole run (metrics included)",
            "peak RSS sampling (MiB)",
            mib(sampling),
            mib(total)
        );
    }
    println!("wrote {}", p.out.display());
    if let Some(path) = &args.plot {
        println!("wrote {}", path.display());
    }
    Ok(())
}
