//! `sbdm sample`: draw samples with any sampler from an exact Gaussian-mixture score
//! (`gmm:FILE.json`) or from a network trained by `sbdm train` (`ckpt:FILE.safetensors`,
//! its EMA weights), optionally of given classes, write them as `.npy` (and a PNG), and
//! report how close they are to the exact distribution when there is one (the mixture).
//!
//! The prior is `N(0, b(T)²·I)` with `b(T)` the SDE's kernel std at the grid's first
//! time: `x_T = b(T)·z`, `z` drawn from stream `i` of `--seed` for sample `i`. The
//! sampler's own noise continues the same per-sample streams, so sample `i` of a batch is
//! the same as sample `i` drawn alone. `--init x_T.npy` replaces the prior draw (used as
//! given, no rescaling). Samples have the model's shape: `[N, D]` for vectors,
//! `[N, C, H, W]` for a checkpoint trained on images.
//!
//! Every setting is checked by the library's own validation ([`Sampler::validate`],
//! [`Condition::check`]) before anything is sampled or written, so the messages are the
//! library's.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, bail, Result};
use candle_core::{DType, Device, Tensor};
use clap::Args;
use sbdm_runtime::guide::{ClassifierFree, ClassifierGuidance, TimeClassifier};
use sbdm_runtime::model::mixture::GaussianMixture;
use sbdm_runtime::model::{Condition, ScoreModel};
use sbdm_runtime::report::imgrid::image_grid_png;
use sbdm_runtime::report::metrics::{self, SlicedProjections};
use sbdm_runtime::report::plot::{self, Mark, ScatterConfig, Series};
use sbdm_runtime::sampling::{
    DdpmVariance, GridKind, Guide, Guided, Noise, Sampled, Sampler, Spacing, TimeGrid,
};
use sbdm_runtime::sde::named;
use sbdm_runtime::GaussianKernel;
use sbdm_runtime::{io, limits};

use crate::common::{
    applies_only, asks_help, check_steps, choice, grid_rows, one_line, peak_rss,
    print_help_listing, require, sampler_rows, sde_names, spaced_grid, spinner, DeviceFlag,
    Listing, NoiseFlag, Outputs, Pick,
};
use crate::models::{
    check_samples, load_classifier_spec_on, read_batch, shape_text, Classifier, ModelSpec, Source,
};

/// Arguments of `sbdm sample`. Without `--init`, x_T is drawn from the prior
/// N(0, b(T)²·I), b(T) the SDE's kernel std at T (or `--t-max`).
#[derive(Args, Debug)]
pub struct SampleArgs {
    /// The forward SDE (`help` lists them): a built-in, a discrete DDPM table, or a
    /// FILE.sde declaring one (what goes between the braces of `sde! { .. }`); or declare
    /// it with the inline flags below. With a checkpoint it may be left out: the SDE the
    /// checkpoint was trained for (a named one, or the declaration stored in the file).
    #[arg(long, value_name = "NAME|FILE.sde")]
    pub sde: Option<String>,
    /// The SDE declared inline, or parameter values for --sde.
    #[command(flatten)]
    pub sde_flags: crate::sde_arg::SdeFlags,
    /// The score model: `gmm:FILE.json`, the exact score of a Gaussian mixture
    /// `{"weights": [...], "means": [[...], ...], "stds": [...]}` (its components are its
    /// classes), or `ckpt:FILE.safetensors`, a network trained by `sbdm train` (its EMA
    /// weights).
    #[arg(long)]
    pub model: Option<String>,
    /// The sampler (`help` lists them).
    #[arg(long, value_parser = choice(sampler_rows()))]
    pub sampler: Option<Pick<Sampler>>,
    /// Number of steps (for rk45: the initial step is (T - t_min)/steps).
    #[arg(long, value_name = "N")]
    pub steps: Option<usize>,
    /// Explicit decreasing times instead of --steps/--grid/--spacing: a .npy vector, or
    /// a comma-separated list such as 1,0.5,0.1,0.001 (as diffusers' custom timesteps).
    #[arg(
        long,
        value_name = "FILE.npy|T0,T1,...",
        conflicts_with_all = ["steps", "grid", "spacing", "t_max", "t_min"]
    )]
    pub times: Option<String>,
    /// The time grid (`help` lists them); `auto` (the default) is karras where t is
    /// EDM's sigma (uniform steps in t waste the small-sigma end) and uniform otherwise.
    #[arg(long, value_parser = choice(grid_rows()))]
    pub grid: Option<Pick<Option<GridKind>>>,
    /// For the discrete `ddpm-*` schedules: sample on `--steps` of the 1000 training
    /// timesteps with this spacing (`help` lists them) instead of `--grid`.
    #[arg(long, value_parser = choice(Spacing::ALL.to_vec()), conflicts_with = "grid")]
    pub spacing: Option<Pick<Spacing>>,
    /// ddim: η; 0 is deterministic, 1 is DDPM-like [default: 0].
    #[arg(long, allow_negative_numbers = true)]
    pub eta: Option<f64>,
    /// pc: the Langevin corrector's signal-to-noise ratio [default: 0.16].
    #[arg(long, allow_negative_numbers = true)]
    pub snr: Option<f64>,
    /// pc: Langevin corrector steps per predictor step [default: 1].
    #[arg(long)]
    pub corrector_steps: Option<usize>,
    /// heun: EDM's S_churn (0: deterministic) [default: 0].
    #[arg(long, allow_negative_numbers = true)]
    pub churn: Option<f64>,
    /// heun: churn only where sigma = b/a >= S_tmin [default: 0].
    #[arg(long, allow_negative_numbers = true)]
    pub s_tmin: Option<f64>,
    /// heun: churn only where sigma <= S_tmax [default: inf].
    #[arg(long, allow_negative_numbers = true)]
    pub s_tmax: Option<f64>,
    /// heun: the churn noise's scale S_noise [default: 1].
    #[arg(long, allow_negative_numbers = true)]
    pub s_noise: Option<f64>,
    /// rk45: relative tolerance [default: 1e-5].
    #[arg(long, allow_negative_numbers = true)]
    pub rtol: Option<f64>,
    /// rk45: absolute tolerance [default: 1e-5].
    #[arg(long, allow_negative_numbers = true)]
    pub atol: Option<f64>,
    /// ddpm: the variance, sigma^2 = beta or the posterior variance beta-tilde
    /// [default: beta].
    #[arg(long, value_parser = choice(variance_rows()))]
    pub ddpm_variance: Option<Pick<DdpmVariance>>,
    /// Start at this time instead of the SDE's T.
    #[arg(long, allow_negative_numbers = true)]
    pub t_max: Option<f64>,
    /// Stop at this time instead of the SDE's t_min.
    #[arg(long, allow_negative_numbers = true)]
    pub t_min: Option<f64>,
    /// Sample these classes: one class index for every sample, or a .npy vector of one
    /// index per sample. The model must be class-conditional (a `--conditional`
    /// checkpoint, or a mixture, whose components are its classes).
    #[arg(long, value_name = "K|LABELS.npy", allow_hyphen_values = true)]
    pub class: Option<String>,
    /// Guidance towards --class (`help` lists them): classifier, the score plus
    /// s·∇log p_t(y | x_t) of --classifier (a mixture's own exact posterior if omitted);
    /// cfg, classifier-free guidance of a --conditional model (or a mixture).
    #[arg(long, value_parser = choice(guidance_rows()))]
    pub guidance: Option<Pick<GuidanceKind>>,
    /// The guidance scale: s for classifier guidance (1: the Bayes posterior), w for
    /// cfg (1: the conditional model, 0: the unconditional one) [default: 1].
    #[arg(long, allow_negative_numbers = true)]
    pub guidance_scale: Option<f64>,
    /// --guidance classifier: a classifier trained by `sbdm train --objective classifier`.
    #[arg(long, value_name = "ckpt:FILE.safetensors")]
    pub classifier: Option<String>,
    /// --guidance cfg: rescale the guided x_0's std to the conditional one's, with weight
    /// PHI in [0, 1] (Lin et al. 2023).
    #[arg(long, value_name = "PHI")]
    pub cfg_rescale: Option<f64>,
    /// --guidance cfg: guide only where sigma(t) = b/a lies in [LO, HI] (Kynkäänniemi et
    /// al. 2024).
    #[arg(long, value_name = "LO,HI")]
    pub guidance_interval: Option<String>,
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
    #[command(flatten)]
    pub noise: NoiseFlag,
    /// Replace the final state by the model's x_0 prediction at t_min (Tweedie).
    #[arg(long)]
    pub denoise: bool,
    /// With a mixture: also measure the sliced W2 distance (64 directions) between the
    /// samples and 3 exact sample sets of the same size, and its floor between those
    /// sets. Without it only the one-pass checks are printed (E|x|^2 against its exact
    /// value, each component's share against its weight).
    #[arg(long)]
    pub metrics: bool,
    /// Where to write the samples: float32 .npy, shape [N, D] (or [N, C, H, W]).
    #[arg(long, value_name = "SAMPLES.npy")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub device: DeviceFlag,
    /// Also write a PNG: a scatter plot of the first two coordinates, or for an image
    /// model a grid of the first 64 images.
    #[arg(long, value_name = "SAMPLES.png")]
    pub plot: Option<PathBuf>,
}

fn variance_rows() -> Vec<(DdpmVariance, &'static str, &'static str)> {
    vec![
        (
            DdpmVariance::Beta,
            "beta",
            "sigma^2 = beta (DDPM's default)",
        ),
        (
            DdpmVariance::BetaTilde,
            "beta-tilde",
            "sigma^2 = the posterior variance beta-tilde",
        ),
    ]
}

/// What `--guidance` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuidanceKind {
    /// Classifier guidance.
    Classifier,
    /// Classifier-free guidance.
    Cfg,
}

fn guidance_rows() -> Vec<(GuidanceKind, &'static str, &'static str)> {
    vec![
        (
            GuidanceKind::Classifier,
            "classifier",
            "score + s * grad log p_t(class | x) of --classifier (a mixture: its exact posterior)",
        ),
        (
            GuidanceKind::Cfg,
            "cfg",
            "classifier-free: out_null + w * (out_class - out_null) of a --conditional model",
        ),
    ]
}

/// The guidance of a run, validated.
enum Guidance {
    /// Sampling as is (the class, if any, goes to the model).
    None,
    /// Classifier guidance of scale `scale`; `None`: the mixture's exact posterior.
    Classifier {
        classifier: Option<Box<Classifier>>,
        scale: f64,
    },
    /// Classifier-free guidance.
    Cfg {
        scale: f64,
        rescale: Option<f64>,
        interval: Option<(f64, f64)>,
    },
}

impl Guidance {
    fn describe(&self) -> String {
        match self {
            Guidance::None => String::new(),
            Guidance::Classifier { classifier, scale } => format!(
                ", classifier guidance s = {scale} ({})",
                if classifier.is_some() {
                    "trained classifier"
                } else {
                    "exact posterior"
                }
            ),
            Guidance::Cfg {
                scale,
                rescale,
                interval,
            } => {
                let mut s = format!(", classifier-free guidance w = {scale}");
                if let Some(phi) = rescale {
                    s += &format!(", rescale {phi}");
                }
                if let Some((lo, hi)) = interval {
                    s += &format!(", sigma in [{lo}, {hi}]");
                }
                s
            }
        }
    }
}

/// `--class` before the number of samples is known.
enum ClassSpec {
    /// One class for every sample.
    All(u32),
    /// One class per sample, from a file.
    File(PathBuf, Vec<u32>),
}

impl ClassSpec {
    fn parse(spec: &str) -> Result<ClassSpec> {
        if let Ok(k) = spec.trim().parse::<u32>() {
            return Ok(ClassSpec::All(k));
        }
        if spec.trim().starts_with('-') || spec.trim().parse::<f64>().is_ok() {
            bail!(
                "--class must be a class index (a whole number >= 0) or a .npy file, got `{spec}`"
            );
        }
        let path = PathBuf::from(spec);
        let labels = io::read_npy_labels(&path).map_err(one_line)?;
        Ok(ClassSpec::File(path, labels))
    }

    /// The condition for `n` samples, on `device`.
    fn condition(&self, n: usize, device: &Device) -> Result<Condition> {
        Ok(match self {
            ClassSpec::All(k) => Condition::class(*k, n, device)?,
            ClassSpec::File(_, labels) => Condition::classes(labels, device)?,
        })
    }

    fn describe(&self) -> String {
        match self {
            ClassSpec::All(k) => format!("class {k}"),
            ClassSpec::File(path, _) => format!("classes from {}", path.display()),
        }
    }
}

/// Everything `sbdm sample` needs, validated before any work is done.
struct Plan {
    sde_name: String,
    sde: Arc<dyn GaussianKernel>,
    source: Source,
    /// The shape of one sample.
    shape: Vec<usize>,
    sampler: Sampler,
    grid: TimeGrid,
    t_min: f64,
    t_max: f64,
    condition: Condition,
    classes: Option<ClassSpec>,
    guidance: Guidance,
    init: Option<Tensor>,
    n: usize,
    out: PathBuf,
    /// Where the samples are drawn (`--device`).
    device: Device,
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

/// The sampler of `--sampler` with the settings given by their flags.
fn sampler(args: &SampleArgs) -> Result<Sampler> {
    let mut sampler = Pick::chosen(args.sampler.as_ref(), None, "--sampler")?;
    let number = |v: Option<f64>| v.map(|v| v.to_string());
    let settings = [
        ("--eta", "eta", number(args.eta)),
        ("--snr", "snr", number(args.snr)),
        (
            "--corrector-steps",
            "corrector_steps",
            args.corrector_steps.map(|v| v.to_string()),
        ),
        ("--churn", "churn", number(args.churn)),
        ("--s-tmin", "s_tmin", number(args.s_tmin)),
        ("--s-tmax", "s_tmax", number(args.s_tmax)),
        ("--s-noise", "s_noise", number(args.s_noise)),
        ("--rtol", "rtol", number(args.rtol)),
        ("--atol", "atol", number(args.atol)),
        (
            "--ddpm-variance",
            "variance",
            args.ddpm_variance
                .as_ref()
                .and_then(Pick::value)
                .map(|v| v.name().to_string()),
        ),
    ];
    for (flag, key, value) in settings {
        if let Some(v) = value {
            sampler
                .set(key, &v)
                .map_err(|e| anyhow!("{flag}: {}", one_line(e)))?;
        }
    }
    Ok(sampler)
}

/// The time grid of `--times`, or `--steps` with `--spacing` or `--grid` and the range.
fn grid(args: &SampleArgs, sde_name: &str, sde: &dyn GaussianKernel) -> Result<TimeGrid> {
    if let Some(times) = &args.times {
        let ts = if times.ends_with(".npy") {
            io::read_npy_vector(times).map_err(one_line)?
        } else {
            times
                .split(',')
                .map(|v| {
                    v.trim()
                        .parse::<f64>()
                        .map_err(|_| anyhow!("--times: `{}` is not a number", v.trim()))
                })
                .collect::<Result<_>>()?
        };
        return Ok(TimeGrid::Times(ts));
    }
    let steps = require(&args.steps, "--steps")?;
    if let Some(spacing) = args.spacing.as_ref().and_then(Pick::value) {
        let Some(num_train) = named::entry(sde_name).and_then(|e| e.num_train) else {
            bail!("--spacing applies to the discrete ddpm-* schedules, not `{sde_name}`");
        };
        if args.t_max.is_some() || args.t_min.is_some() {
            bail!(
                "--spacing samples the schedule's own timesteps; --t-max and --t-min do not apply"
            );
        }
        return Ok(TimeGrid::Discrete {
            num_train,
            steps,
            spacing,
        });
    }
    let kind = args.grid.as_ref().and_then(Pick::value).flatten();
    Ok(spaced_grid(sde, kind, steps, args.t_max, args.t_min))
}

fn plan(args: &SampleArgs) -> Result<Plan> {
    let spec = ModelSpec::parse(&require(&args.model, "--model")?)?;
    let device = args.device.open()?;
    let sampler = sampler(args)?;
    let classes = args.class.as_deref().map(ClassSpec::parse).transpose()?;
    let (sde_name, sde, source) = spec.load_on(
        crate::sde_arg::resolve(args.sde.as_deref(), &args.sde_flags)?,
        &device,
    )?;
    let grid = grid(args, &sde_name, sde.as_ref())?;
    check_steps(&sampler, grid.steps())?;
    sampler.validate(&sde, &grid).map_err(one_line)?;
    let (t_max, t_min) = grid.span(&sde).map_err(one_line)?;
    let shape = source.sample_shape();
    // --metrics: 3 exact sets of the samples' size in f64, and 4 sets of projections.
    let metrics = if args.metrics {
        limits::elems(&shape)
            .saturating_mul(3)
            .saturating_add(4 * W2_PROJECTIONS as u128)
            .saturating_mul(8)
    } else {
        0
    };
    let (init, n) = match (&args.init, args.n) {
        (Some(path), _) => {
            let x = read_batch(path, &shape, "x_T")?.to_device(&device)?;
            let n = x.dim(0)?;
            check_samples(
                n,
                &source,
                metrics,
                format_args!("--init {}", path.display()),
            )?;
            (Some(x), n)
        }
        (None, Some(0)) => bail!("--n must be at least 1, got 0"),
        (None, n) => {
            let n = n.unwrap_or(1000);
            check_samples(n, &source, metrics, format_args!("--n {n}"))?;
            (None, n)
        }
    };
    let condition = match &classes {
        Some(c) => c.condition(n, &device)?,
        None => Condition::None,
    };
    let guidance = guidance(args, &sde, &source, &condition, &device)?;
    // The exact law is known for a mixture, but not once a trained classifier guides it.
    let exact_law = matches!(source, Source::Mixture(_))
        && !matches!(
            guidance,
            Guidance::Classifier {
                classifier: Some(_),
                ..
            }
        );
    applies_only(
        args.metrics && !exact_law,
        "--metrics",
        "a mixture model (gmm:FILE.json) not guided by a trained classifier: only its law is known exactly",
    )?;
    let accepts = match &source {
        Source::Mixture(m) => m.model(&sde).conditioning(),
        Source::Net(net, _) => net.conditioning(),
    };
    // Classifier guidance gives the class to the classifier, not to the model.
    if !matches!(guidance, Guidance::Classifier { .. }) {
        condition.check(accepts, n).map_err(one_line)?;
    }
    let out = require(&args.out, "--out")?;
    if args.plot.is_some() {
        check_plot(&shape)?;
    }
    Ok(Plan {
        sde_name,
        sde,
        source,
        shape,
        sampler,
        grid,
        t_min,
        t_max,
        condition,
        classes,
        guidance,
        init,
        n,
        out,
        device,
    })
}

/// The guidance of `--guidance` and its flags, checked against the model and the class.
fn guidance(
    args: &SampleArgs,
    sde: &Arc<dyn GaussianKernel>,
    source: &Source,
    condition: &Condition,
    device: &Device,
) -> Result<Guidance> {
    let kind = args.guidance.as_ref().and_then(Pick::value);
    let only = |given: bool, flag: &str, needs: &str| {
        applies_only(given, flag, &format!("--guidance {needs}"))
    };
    if kind != Some(GuidanceKind::Classifier) {
        only(args.classifier.is_some(), "--classifier", "classifier")?;
    }
    if kind != Some(GuidanceKind::Cfg) {
        only(args.cfg_rescale.is_some(), "--cfg-rescale", "cfg")?;
        only(
            args.guidance_interval.is_some(),
            "--guidance-interval",
            "cfg",
        )?;
    }
    let Some(kind) = kind else {
        only(
            args.guidance_scale.is_some(),
            "--guidance-scale",
            "classifier or cfg",
        )?;
        return Ok(Guidance::None);
    };
    let Some(labels) = condition.labels() else {
        bail!("--guidance needs --class: the class to guide towards");
    };
    let scale = args.guidance_scale.unwrap_or(1.0);
    Ok(match kind {
        GuidanceKind::Classifier => {
            let classifier = match (&args.classifier, source) {
                (None, Source::Mixture(_)) => None,
                (None, Source::Net(..)) => bail!(
                    "--guidance classifier needs --classifier ckpt:FILE (train one with \
                     `sbdm train --objective classifier`)"
                ),
                (Some(spec), _) => {
                    let (clf, clf_data) = load_classifier_spec_on(spec, sde, device)?;
                    if let (Source::Net(_, Some(model_data)), Some(clf_data)) = (source, &clf_data)
                    {
                        if model_data != clf_data {
                            bail!(
                                "{spec}: the classifier was trained on `{clf_data}`, the model on `{model_data}`"
                            );
                        }
                    }
                    Some(Box::new(clf))
                }
            };
            // The library's checks: labels against the classifier, a finite scale.
            match (&classifier, source) {
                (Some(c), _) => {
                    drop(ClassifierGuidance::new(c.as_ref(), labels, scale).map_err(one_line)?)
                }
                (None, Source::Mixture(m)) => {
                    drop(ClassifierGuidance::new(&m.model(sde), labels, scale).map_err(one_line)?)
                }
                (None, Source::Net(..)) => unreachable!("refused above"),
            }
            Guidance::Classifier { classifier, scale }
        }
        GuidanceKind::Cfg => {
            let interval = args
                .guidance_interval
                .as_deref()
                .map(|s| -> Result<(f64, f64)> {
                    let parts: Vec<f64> = s
                        .split(',')
                        .map(|v| v.trim().parse::<f64>())
                        .collect::<std::result::Result<_, _>>()
                        .map_err(|_| anyhow!("--guidance-interval must be LO,HI, got `{s}`"))?;
                    match parts[..] {
                        [lo, hi] => Ok((lo, hi)),
                        _ => bail!("--guidance-interval must be LO,HI, got `{s}`"),
                    }
                })
                .transpose()?;
            let check = |model: &dyn ScoreModel| -> Result<()> {
                let mut cfg = ClassifierFree::new(sde, model, scale).map_err(one_line)?;
                if let Some(phi) = args.cfg_rescale {
                    cfg = cfg.with_rescale(phi).map_err(one_line)?;
                }
                if let Some((lo, hi)) = interval {
                    cfg.with_interval(lo, hi).map_err(one_line)?;
                }
                Ok(())
            };
            match source {
                Source::Mixture(m) => check(&m.model(sde))?,
                Source::Net(net, _) => check(net.as_ref())?,
            }
            Guidance::Cfg {
                scale,
                rescale: args.cfg_rescale,
                interval,
            }
        }
    })
}

/// Runs the plan's sampler with `model` from `x_t` (integrated in place: its storage
/// becomes the state), under the plan's condition and
/// guidance; `exact` is the mixture's own classifier, for classifier guidance without a
/// trained one.
fn draw<M: ScoreModel + ?Sized>(
    p: &Plan,
    model: &M,
    exact: Option<&dyn TimeClassifier>,
    x_t: Tensor,
    noise: &mut Noise,
    denoise: bool,
) -> sbdm_runtime::error::Result<Sampled> {
    match &p.guidance {
        Guidance::None => {
            let guided = Guided::new(model).with_condition(p.condition.clone());
            finish(
                p,
                &guided,
                p.sampler
                    .sample_in_place(&p.sde, &guided, x_t, &p.grid, noise)?,
                denoise,
            )
        }
        Guidance::Classifier { classifier, scale } => {
            let classifier: &dyn TimeClassifier = match (classifier, exact) {
                (Some(c), _) => c.as_ref(),
                (None, Some(e)) => e,
                (None, None) => unreachable!("checked when planning"),
            };
            let labels = p.condition.labels().expect("checked when planning");
            let guided =
                Guided::new(model).with_term(ClassifierGuidance::new(classifier, labels, *scale)?);
            finish(
                p,
                &guided,
                p.sampler
                    .sample_in_place(&p.sde, &guided, x_t, &p.grid, noise)?,
                denoise,
            )
        }
        Guidance::Cfg {
            scale,
            rescale,
            interval,
        } => {
            let mut cfg = ClassifierFree::new(&p.sde, model, *scale)?;
            if let Some(phi) = rescale {
                cfg = cfg.with_rescale(*phi)?;
            }
            if let Some((lo, hi)) = interval {
                cfg = cfg.with_interval(*lo, *hi)?;
            }
            let guided = Guided::new(&cfg).with_condition(p.condition.clone());
            finish(
                p,
                &guided,
                p.sampler
                    .sample_in_place(&p.sde, &guided, x_t, &p.grid, noise)?,
                denoise,
            )
        }
    }
}

/// The sampled state, denoised at the end if asked (Tweedie, under the same guide).
fn finish<G: Guide + ?Sized>(
    p: &Plan,
    guide: &G,
    sampled: Sampled,
    denoise: bool,
) -> sbdm_runtime::error::Result<Sampled> {
    if denoise {
        sampled.denoise(&p.sde, guide)
    } else {
        Ok(sampled)
    }
}

/// Samples compared with the exact distribution of a mixture at the final time.
struct Comparison {
    /// Sliced W2 against exact sets, and between exact sets (the floor): with `--metrics`.
    w2: Option<(f64, f64)>,
    /// The exact `E|x|²`.
    m2_exact: f64,
    /// The largest gap between a component's share of the samples and its weight.
    share_err: f64,
    /// What the sliced W2's reference is.
    label: String,
}

/// The law the samples should follow at time 0: the mixture, or with classes the
/// mixture reweighted by how many samples of each class were asked for.
fn reference_mixture(p: &Plan, mixture: &GaussianMixture) -> Result<GaussianMixture> {
    let Some(labels) = p.condition.labels() else {
        return Ok(mixture.clone());
    };
    let mut counts = vec![0usize; mixture.len()];
    for k in labels.to_vec1::<u32>()? {
        counts[k as usize] += 1;
    }
    mixture.reweighted(&counts).map_err(one_line)
}

/// Directions of the sliced W2 and their seed.
const W2_PROJECTIONS: usize = 64;
const W2_SEED: u64 = 7;
/// Exact reference sets the sliced W2 is averaged over.
const W2_REFERENCES: u64 = 3;

/// The comparison with the exact law: always the second moment and the mode shares
/// (one pass over the samples); with `sliced_w2` also the sliced W2 distance.
fn compare(
    p: &Plan,
    mixture: &GaussianMixture,
    x: &Tensor,
    seed: u64,
    denoised: bool,
    sliced_w2: bool,
) -> Result<Comparison> {
    let dev = Device::Cpu;
    let reference = reference_mixture(p, mixture)?;
    // Exact reference at the final time: p_{t_min}, or p_0 after the denoising step.
    let (t_ref, a, b) = if denoised {
        (0.0, 1.0, 0.0)
    } else {
        (p.t_min, p.sde.mean_coef(p.t_min), p.sde.std(p.t_min))
    };
    let w2 = if sliced_w2 {
        // Sliced W2 of a multimodal set fluctuates with the sampled mode shares, so both
        // the value and its floor are averaged: the samples against each of 3 exact sets,
        // and the 3 exact sets against each other. Each set is drawn and projected once.
        // Their seeds are independent of the sampler's streams (ChaCha streams of `seed`).
        let ref_seed = seed ^ 0x5851_f42d_4c95_7f2d;
        let project = |x: &Tensor| SlicedProjections::new(x, W2_PROJECTIONS, W2_SEED);
        let refs = (0..W2_REFERENCES)
            .map(|i| {
                let s = ref_seed.wrapping_add(i);
                let exact = if denoised {
                    reference.sample(p.n, s, &dev)?
                } else {
                    reference.sample_at(&p.sde, p.t_min, p.n, s, &dev)?
                };
                Ok(project(&exact)?)
            })
            .collect::<Result<Vec<_>>>()?;
        let samples = project(x)?;
        let k = refs.len();
        let (mut w2, mut floor) = (0.0, 0.0);
        for (i, r) in refs.iter().enumerate() {
            w2 += samples.w2(r)? / k as f64;
            floor += r.w2(&refs[(i + 1) % k])? / k as f64;
        }
        Some((w2, floor))
    } else {
        None
    };
    let d = mixture.dim() as f64;
    let m2_exact = a * a * reference.second_moment() + d * b * b;
    // Shares of the full mixture's components against the weights the reference gives them.
    let shares = metrics::shares(&mixture.nearest_component(x)?, mixture.len());
    let want: Vec<f64> = match p.condition.labels() {
        None => mixture.weights().to_vec(),
        Some(labels) => {
            let mut w = vec![0.0; mixture.len()];
            for k in labels.to_vec1::<u32>()? {
                w[k as usize] += 1.0 / p.n as f64;
            }
            w
        }
    };
    let share_err = shares
        .iter()
        .zip(&want)
        .map(|(s, w)| (s - w).abs())
        .fold(0.0, f64::max);
    let t_label = if denoised {
        "p_0 (denoised)".to_string()
    } else {
        format!("p_t at t = {t_ref}")
    };
    let of = match &p.classes {
        Some(c) => format!(" of {}", c.describe()),
        None => String::new(),
    };
    Ok(Comparison {
        w2,
        m2_exact,
        share_err,
        label: format!("{W2_REFERENCES} sets of {} from {t_label}{of}", p.n),
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
    let of = match &p.classes {
        Some(c) => format!(", {}", c.describe()),
        None => String::new(),
    };
    let cfg = ScatterConfig {
        title: format!(
            "{} on {}, {} steps: {} samples{of}",
            p.sampler,
            p.sde_name,
            p.grid.steps(),
            p.n
        ),
        ..Default::default()
    };
    plot::draw_scatter(dest, &series, &cfg).map_err(one_line)
}

/// Runs `sbdm sample`.
pub fn run(args: &SampleArgs) -> Result<()> {
    let sde_listing = || sde_names();
    let sampler_listing =
        || -> Listing { sampler_rows().into_iter().map(|(_, n, d)| (n, d)).collect() };
    let grid_listing = || -> Listing { grid_rows().into_iter().map(|(_, n, d)| (n, d)).collect() };
    let spacing_listing = || -> Listing { Spacing::ALL.iter().map(|(_, n, d)| (*n, *d)).collect() };
    let variance_listing = || -> Listing {
        variance_rows()
            .into_iter()
            .map(|(_, n, d)| (n, d))
            .collect()
    };
    let guidance_listing = || -> Listing {
        guidance_rows()
            .into_iter()
            .map(|(_, n, d)| (n, d))
            .collect()
    };
    if print_help_listing(&[
        (args.sde.as_deref() == Some("help"), &sde_listing),
        (asks_help(&args.sampler), &sampler_listing),
        (asks_help(&args.grid), &grid_listing),
        (asks_help(&args.spacing), &spacing_listing),
        (asks_help(&args.ddpm_variance), &variance_listing),
        (asks_help(&args.guidance), &guidance_listing),
        (args.noise.asks_help(), &NoiseFlag::listing),
    ]) {
        return Ok(());
    }
    let mut p = plan(args)?;
    let dev = p.device.clone();
    let shape = shape_text(&p.shape);
    // Claim the output paths first: a missing or unwritable directory fails before sampling.
    let outputs = Outputs::claim(&p.out, args.plot.as_deref())?;

    let mut noise = Noise::with_kind(args.noise.kind(), args.seed, 0, p.n, &p.shape, &dev);
    // x_T is moved into the sampler, whose state it becomes (no second copy of the batch).
    let x_t = match p.init.take() {
        Some(x) => x,
        None => noise.draw()?.affine(p.sde.std(p.t_max), 0.0)?,
    };
    let bar = spinner(format!(
        "sampling {} x {shape} with {}, {}",
        p.n, p.sampler, p.grid
    ));
    let start = Instant::now();
    let result = match &p.source {
        Source::Mixture(m) => {
            let exact = m.model(&p.sde);
            draw(&p, &exact, Some(&exact), x_t, &mut noise, args.denoise)
        }
        Source::Net(net, _) => draw(&p, net.as_ref(), None, x_t, &mut noise, args.denoise),
    };
    let wall = start.elapsed();
    // Before the metrics below, which hold several copies of the samples as f64 rows.
    let sampling_peak = peak_rss();
    bar.finish_and_clear();
    let sampled = result.map_err(one_line)?;
    // Reports and files are made on the host.
    let x = sampled.x.to_device(&Device::Cpu)?.to_dtype(DType::F32)?;
    let rows = x.flatten_from(1)?;
    let (m2, m2_se) = metrics::second_moment(&rows)?;
    // The mixture's law is exact, but not once a trained classifier guides it (its
    // classes are the classifier's, not the mixture's components).
    let trained_guidance = matches!(
        p.guidance,
        Guidance::Classifier {
            classifier: Some(_),
            ..
        }
    );
    let comparison = match &p.source {
        Source::Mixture(m) if !trained_guidance => {
            Some(compare(&p, m, &x, args.seed, args.denoise, args.metrics)?)
        }
        _ => None,
    };

    // Write both outputs to their temporary files, then rename them into place.
    outputs.write(&x, |png| draw_plot(&p, png, &x))?;

    let of = match &p.classes {
        Some(c) => format!(", {}{}", c.describe(), p.guidance.describe()),
        None => String::new(),
    };
    println!(
        "{} on {} ({}), {}, t from {} to {}, seed {}{of}",
        p.sampler,
        p.sde_name,
        p.sde.name(),
        p.grid,
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
            match c.w2 {
                Some((w2, floor)) => println!(
                    "{:<24} {:>14.5}   {:.5} exact vs exact (floor); both vs {}",
                    "sliced W2", w2, floor, c.label
                ),
                None => println!(
                    "{:<24} {:>14}   add --metrics to measure it against exact samples",
                    "sliced W2", "-"
                ),
            }
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
            "{:<24} {:>14.5}   none exact (a trained model or classifier); sample s.e. {:.5}",
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
