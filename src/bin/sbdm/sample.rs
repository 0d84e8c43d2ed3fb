//! `sbdm sample`: draw samples with any sampler from an exact Gaussian-mixture score,
//! write them as `.npy` (and a PNG), and report how close they are to the exact
//! distribution.
//!
//! The prior is `N(0, b(T)²·I)` with `b(T)` the SDE's kernel std at `T` (`--t-max`):
//! `x_T = b(T)·z`, `z` drawn from stream `i` of `--seed` for sample `i`. The sampler's
//! own noise continues the same per-sample streams, so sample `i` of a batch is the
//! same as sample `i` drawn alone. `--init x_T.npy` replaces the prior draw (used as
//! given, no rescaling).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use candle_core::{DType, Device, Tensor};
use clap::Args;
use sbdm_runtime::discrete::{BetaSchedule, DiscreteSchedule};
use sbdm_runtime::grid::{discrete_times, Grid, Spacing};
use sbdm_runtime::io::{self, PendingFile};
use sbdm_runtime::metrics;
use sbdm_runtime::mixture::GaussianMixture;
use sbdm_runtime::noise::Noise;
use sbdm_runtime::plot::{self, Mark, ScatterConfig, Series};
use sbdm_runtime::sampler::{self, DdpmVariance, SamplerConfig, SamplerKind};
use sbdm_runtime::GaussianKernel;

/// Arguments of `sbdm sample`. Without `--init`, x_T is drawn from the prior
/// N(0, b(T)²·I), b(T) the SDE's kernel std at T (or `--t-max`).
#[derive(Args, Debug)]
pub struct SampleArgs {
    /// The forward SDE (`help` lists them): a built-in or a discrete DDPM table.
    #[arg(long)]
    pub sde: Option<String>,
    /// The score model: `gmm:FILE.json`, the exact score of a Gaussian mixture
    /// `{"weights": [...], "means": [[...], ...], "stds": [...]}`.
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
    /// The initial state x_T, a float32 .npy of shape [N, D], used as is.
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
    /// Where to write the samples: float32 .npy, shape [N, D].
    #[arg(long, value_name = "SAMPLES.npy")]
    pub out: Option<PathBuf>,
    /// Also write a PNG scatter plot (the first two coordinates).
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
fn sde_names() -> Vec<(&'static str, &'static str)> {
    sbdm_runtime::builtin::NAMES
        .iter()
        .chain(DISCRETE)
        .copied()
        .collect()
}

fn list(names: impl IntoIterator<Item = &'static str>) -> String {
    names.into_iter().collect::<Vec<_>>().join(", ")
}

/// The SDE named `name` (a built-in or a discrete table).
pub fn sde_by_name(name: &str) -> Result<Box<dyn GaussianKernel>> {
    if let Some(sde) = sbdm_runtime::builtin::by_name(name) {
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

/// The one line of an error (candle's carry a backtrace when RUST_BACKTRACE is set).
fn one_line(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("{}", e.to_string().lines().next().unwrap_or("error"))
}

/// Everything `sbdm sample` needs, validated before any work is done.
struct Plan {
    sde_name: String,
    sde: Box<dyn GaussianKernel>,
    mixture: GaussianMixture,
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

fn require<T: Clone>(v: &Option<T>, flag: &str) -> Result<T> {
    v.clone()
        .ok_or_else(|| anyhow!("missing {flag} (see `sbdm sample --help`)"))
}

fn check_range(name: &str, v: f64, ok: bool, what: &str) -> Result<()> {
    if !(v.is_finite() && ok) {
        bail!("{name} must be {what}, got {v}");
    }
    Ok(())
}

fn plan(args: &SampleArgs) -> Result<Plan> {
    let sde_name = require(&args.sde, "--sde")?;
    let sde = sde_by_name(&sde_name)?;
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
    let spec = require(&args.model, "--model")?;
    let file = spec.strip_prefix("gmm:").ok_or_else(|| {
        anyhow!(
            "unknown model `{spec}`; valid: gmm:FILE.json (the exact score of a Gaussian mixture)"
        )
    })?;
    let mixture = GaussianMixture::load(Path::new(file)).map_err(one_line)?;
    let d = mixture.dim();
    let (init, n) = match (&args.init, args.n) {
        (Some(path), _) => {
            let x = io::read_npy(path, 2).map_err(one_line)?;
            let (n, dx) = x.dims2()?;
            if dx != d {
                bail!(
                    "{}: x_T has dimension {dx} but the model has dimension {d}",
                    path.display()
                );
            }
            if n == 0 {
                bail!("{}: x_T has no rows", path.display());
            }
            let flat: Vec<f32> = x.flatten_all()?.to_vec1()?;
            if let Some(i) = flat.iter().position(|v| !v.is_finite()) {
                bail!("{}: row {} of x_T is not finite", path.display(), i / d);
            }
            (Some(x), n)
        }
        (None, Some(0)) => bail!("--n must be at least 1, got 0"),
        (None, n) => (None, n.unwrap_or(1000)),
    };
    let out = require(&args.out, "--out")?;
    if let Some(p) = &args.plot {
        if d < 2 {
            bail!("--plot needs samples of dimension >= 2; the model has dimension {d}");
        }
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
        mixture,
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

/// Runs `sbdm sample`.
pub fn run(args: &SampleArgs) -> Result<()> {
    if args.sde.as_deref() == Some("help") {
        for (n, d) in sde_names() {
            println!("{n:<19} {d}");
        }
        return Ok(());
    }
    if args.sampler.as_deref() == Some("help") {
        for (_, n, d) in SamplerKind::ALL {
            println!("{n:<18} {d}");
        }
        return Ok(());
    }
    let p = plan(args)?;
    let dev = Device::Cpu;
    let d = p.mixture.dim();
    // Claim the output paths first: a missing or unwritable directory fails before sampling.
    let out = PendingFile::new(&p.out).map_err(one_line)?;
    let png = args
        .plot
        .as_ref()
        .map(PendingFile::new)
        .transpose()
        .map_err(one_line)?;

    let mut noise = Noise::new(args.seed, 0, p.n, &[d], &dev);
    let x_t = match &p.init {
        Some(x) => x.clone(),
        None => noise.draw()?.affine(p.sde.std(p.t_max), 0.0)?,
    };
    let model = p.mixture.model(&p.sde);
    let bar = spinner(format!(
        "sampling {} x {d} with {}, {} steps",
        p.n,
        p.kind.name(),
        p.cfg.steps
    ));
    let start = Instant::now();
    let result = match &p.times {
        Some(ts) => sampler::sample_on(p.kind, &p.sde, &model, &x_t, ts, &p.cfg, &mut noise),
        None => sampler::sample(p.kind, &p.sde, &model, &x_t, &p.cfg, &mut noise),
    };
    let wall = start.elapsed();
    // Before the metrics below, which hold several copies of the samples as f64 rows.
    let sampling_peak = peak_rss();
    bar.finish_and_clear();
    let sampled = result.map_err(one_line)?;
    let x = sampled.x.to_dtype(DType::F32)?;

    // Exact reference at the final time: p_{t_min}, or p_0 after the denoising step.
    let (t_ref, a, b) = if p.cfg.denoise {
        (0.0, 1.0, 0.0)
    } else {
        (p.t_min, p.sde.mean_coef(p.t_min), p.sde.std(p.t_min))
    };
    let exact = |seed: u64| -> Result<Tensor> {
        Ok(if p.cfg.denoise {
            p.mixture.sample(p.n, seed, &dev)?
        } else {
            p.mixture.sample_at(&p.sde, p.t_min, p.n, seed, &dev)?
        })
    };
    // Sliced W2 of a multimodal set fluctuates with the sampled mode shares, so both the
    // value and its floor are averaged: the samples against each of 3 exact sets, and
    // the 3 exact sets against each other. Their seeds are independent of the sampler's
    // streams (which are ChaCha streams of `seed`).
    let ref_seed = args.seed ^ 0x5851_f42d_4c95_7f2d;
    let refs = (0..3)
        .map(|i| exact(ref_seed.wrapping_add(i)))
        .collect::<Result<Vec<_>>>()?;
    let sw2 = |a: &Tensor, b: &Tensor| metrics::sliced_w2(a, b, 64, 7);
    let mut w2 = 0.0;
    let mut w2_floor = 0.0;
    for (i, r) in refs.iter().enumerate() {
        w2 += sw2(&x, r)? / 3.0;
        w2_floor += sw2(r, &refs[(i + 1) % 3])? / 3.0;
    }
    let (m2, m2_se) = metrics::second_moment(&x)?;
    let m2_exact = a * a * p.mixture.second_moment() + d as f64 * b * b;
    let shares = metrics::shares(&p.mixture.nearest_component(&x)?, p.mixture.len());
    let share_err = shares
        .iter()
        .zip(p.mixture.weights())
        .map(|(s, w)| (s - w).abs())
        .fold(0.0, f64::max);

    // Write both outputs to their temporary files, then rename them into place.
    io::write_npy_pending(&out, &x).map_err(one_line)?;
    if let Some(png) = &png {
        let title = format!(
            "{} on {}, {} steps: {} samples",
            p.kind.name(),
            p.sde_name,
            p.cfg.steps,
            p.n
        );
        let means: Vec<[f64; 2]> = p.mixture.means().iter().map(|m| [m[0], m[1]]).collect();
        let series = [
            Series::from_tensor("samples", &x, Mark::Dot, 20_000)?,
            Series {
                label: "component means".into(),
                points: means,
                mark: Mark::Cross,
            },
        ];
        let cfg = ScatterConfig {
            title,
            ..Default::default()
        };
        plot::draw_scatter(png.path(), &series, &cfg).map_err(one_line)?;
    }
    out.commit().map_err(one_line)?;
    if let Some(png) = png {
        png.commit().map_err(one_line)?;
    }

    let t_label = if p.cfg.denoise {
        "p_0 (denoised)".to_string()
    } else {
        format!("p_t at t = {t_ref}")
    };
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
    println!("{:<24} {:>14}", "samples", format!("{} x {d}", p.n));
    println!("{:<24} {:>14}", "NFE", sampled.nfe);
    println!("{:<24} {:>14.3}", "wall time (s)", wall.as_secs_f64());
    println!(
        "{:<24} {:>14.5}   {:.5} exact vs exact (floor); both vs 3 sets of {} from {t_label}",
        "sliced W2", w2, w2_floor, p.n
    );
    println!(
        "{:<24} {:>14.5}   {:.5} exact; sample s.e. {:.5}",
        "E|x|^2", m2, m2_exact, m2_se
    );
    println!(
        "{:<24} {:>14.5}   0 (nearest component vs weights)",
        "max |share - weight|", share_err
    );
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
