//! `sbdm translate`: image-to-image translation of a source batch with a score model of
//! the target domain, for any SDE: SDEdit (the source noised to `t₀` by the derived
//! kernel, then any sampler from `t₀`), ILVR (the same, the low frequencies refined
//! towards the source while `t` is above a cut-off) and EGSDE (the same, the score plus
//! the energy guidance of a domain classifier and the low-pass expert). Everything is
//! checked before anything is sampled or written.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Result};
use candle_core::{DType, Tensor};
use clap::Args;
use sbdm_runtime::guide::{check_time, noised, Egsde, Ilvr, LowPass};
use sbdm_runtime::model::ScoreModel;
use sbdm_runtime::sampling::{Guided, Noise, NoiseKind, Sampled, Sampler, TimeGrid};
use sbdm_runtime::GaussianKernel;

use crate::common::{
    applies_only, asks_help, check_steps, choice, draw_side_by_side, one_line, print_help_listing,
    require, sampler_rows, sde_names, spinner, DeviceFlag, Listing, NoiseFlag, Outputs, Pick,
};
use crate::models::{
    check_samples, load_classifier_spec_on, read_batch, shape_text, Classifier, ModelSpec, Source,
};

/// Arguments of `sbdm translate`.
#[derive(Args, Debug)]
pub struct TranslateArgs {
    /// The method (`help` lists them): sdedit, ilvr or egsde.
    #[arg(long, value_parser = choice(method_rows()))]
    pub method: Option<Pick<Method>>,
    /// The forward SDE (`help` lists them): a built-in, a discrete table, or a FILE.sde
    /// declaring one; with a checkpoint, the one it was trained for by default.
    #[arg(long, value_name = "NAME|FILE.sde")]
    pub sde: Option<String>,
    /// The target domain's score model: gmm:FILE.json or ckpt:FILE.safetensors.
    #[arg(long)]
    pub model: Option<String>,
    /// The sources, a float32 .npy of the model's sample shape: [N, D] or [N, C, H, W].
    #[arg(long, value_name = "SOURCE.npy")]
    pub source: Option<PathBuf>,
    /// The time the sources are noised to and sampling starts from (default for ilvr: T,
    /// a start from the prior; required for sdedit and egsde).
    #[arg(long, allow_negative_numbers = true)]
    pub t0: Option<f64>,
    /// The sampler (`help` lists them) [default: em, the reverse SDE of the papers].
    #[arg(long, value_parser = choice(sampler_rows()))]
    pub sampler: Option<Pick<Sampler>>,
    /// Steps from t0 down to the SDE's t_min, uniform in t.
    #[arg(long, default_value_t = 100)]
    pub steps: usize,
    /// ilvr, egsde: the low-pass factor N (a power of two dividing the sample's size)
    /// [default: 4].
    #[arg(long, value_name = "N")]
    pub factor: Option<usize>,
    /// ilvr: refine while t >= this time [default: the SDE's t_min, every step].
    #[arg(long, allow_negative_numbers = true)]
    pub cutoff: Option<f64>,
    /// egsde: the time-dependent domain classifier whose features make the realistic
    /// expert (`sbdm train --objective classifier` on both domains).
    #[arg(long, value_name = "ckpt:FILE.safetensors")]
    pub classifier: Option<String>,
    /// egsde: the realistic expert's weight λ_s [default: 500].
    #[arg(long, allow_negative_numbers = true)]
    pub lambda_s: Option<f64>,
    /// egsde: the faithful expert's weight λ_i [default: 2].
    #[arg(long, allow_negative_numbers = true)]
    pub lambda_i: Option<f64>,
    /// Seed of the noise.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub noise: NoiseFlag,
    /// Where to write the translations: float32 .npy, the sources' shape.
    #[arg(long, value_name = "OUT.npy")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub device: DeviceFlag,
    /// Also write a PNG: source | translation pairs for images, a scatter of both for
    /// vectors.
    #[arg(long, value_name = "GRID.png")]
    pub plot: Option<PathBuf>,
}

/// The translation methods.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// SDEdit (Meng et al. 2022).
    Sdedit,
    /// ILVR (Choi et al. 2021).
    Ilvr,
    /// EGSDE (Zhao et al. 2022).
    Egsde,
}

fn method_rows() -> Vec<(Method, &'static str, &'static str)> {
    vec![
        (
            Method::Sdedit,
            "sdedit",
            "noise the source to t0, then sample (Meng et al. 2022)",
        ),
        (
            Method::Ilvr,
            "ilvr",
            "refine the low frequencies to the source's while t >= cutoff (Choi et al. 2021)",
        ),
        (
            Method::Egsde,
            "egsde",
            "SDEdit with the energy guidance of a domain classifier and a low-pass expert (Zhao et al. 2022)",
        ),
    ]
}

/// What the method adds to plain sampling from `t₀`.
enum Extra {
    None,
    Ilvr {
        lowpass: LowPass,
        cutoff: f64,
    },
    Egsde {
        lowpass: LowPass,
        classifier: Box<Classifier>,
        lambdas: (f64, f64),
    },
}

/// A checked run.
struct Plan {
    method: Method,
    sde_name: String,
    sde: std::sync::Arc<dyn GaussianKernel>,
    source_model: Source,
    source: Tensor,
    shape: Vec<usize>,
    t0: f64,
    sampler: Sampler,
    grid: TimeGrid,
    extra: Extra,
    lowpass: LowPass,
    out: PathBuf,
}

fn plan(args: &TranslateArgs) -> Result<Plan> {
    let method = Pick::chosen(args.method.as_ref(), None, "--method")?;
    let only = |given: bool, flag: &str, methods: &str| {
        applies_only(given, flag, &format!("--method {methods}"))
    };
    if method != Method::Ilvr {
        only(args.cutoff.is_some(), "--cutoff", "ilvr")?;
    }
    if method != Method::Egsde {
        only(args.classifier.is_some(), "--classifier", "egsde")?;
        only(args.lambda_s.is_some(), "--lambda-s", "egsde")?;
        only(args.lambda_i.is_some(), "--lambda-i", "egsde")?;
    }
    if method == Method::Sdedit {
        only(args.factor.is_some(), "--factor", "ilvr or egsde")?;
    }
    let sampler = Pick::chosen(args.sampler.as_ref(), Some(Sampler::Em), "--sampler")?;
    let spec = ModelSpec::parse(&require(&args.model, "--model")?)?;
    let device = args.device.open()?;
    let (sde_name, sde, source_model) = spec.load_on(
        crate::sde_arg::resolve(args.sde.as_deref(), &crate::sde_arg::SdeFlags::default())?,
        &device,
    )?;
    let shape = source_model.sample_shape();
    let source_path = require(&args.source, "--source")?;
    let source = read_batch(&source_path, &shape, "the source")?.to_device(&device)?;
    check_samples(
        source.dim(0)?,
        &source_model,
        0,
        format_args!("--source {}", source_path.display()),
    )?;
    let (lo, hi) = sde.time_range();
    let t0 = match (args.t0, method) {
        (Some(t0), _) => t0,
        (None, Method::Ilvr) => hi,
        (None, _) => bail!("--t0 is needed: the time the source is noised to"),
    };
    check_time(&sde, t0, "--t0").map_err(one_line)?;
    check_steps(&sampler, args.steps)?;
    let grid = TimeGrid::uniform(args.steps).between(t0, lo);
    sampler.validate(&sde, &grid).map_err(one_line)?;
    // SDEdit uses the filter only for the faithfulness figure it prints: there the
    // default N = 4 falls back to the largest power of two that fits the samples (at
    // least 1, the identity), so SDEdit runs on any shape.
    let lowpass = match args.factor {
        Some(n) => LowPass::new(n).map_err(one_line)?,
        None if method == Method::Sdedit => [4, 2, 1]
            .into_iter()
            .filter_map(|n| LowPass::new(n).ok())
            .find(|f| f.check(&shape).is_ok())
            .unwrap_or(LowPass::new(1).map_err(one_line)?),
        None => LowPass::new(4).map_err(one_line)?,
    };
    lowpass.check(&shape).map_err(one_line)?;
    let extra = match method {
        Method::Sdedit => Extra::None,
        Method::Ilvr => {
            let cutoff = args.cutoff.unwrap_or(lo);
            Ilvr::new(&sde, &source, lowpass, cutoff).map_err(one_line)?;
            Extra::Ilvr { lowpass, cutoff }
        }
        Method::Egsde => {
            let spec = require(&args.classifier, "--classifier")?;
            let (classifier, _) = load_classifier_spec_on(&spec, &sde, &device)?;
            let lambdas = (args.lambda_s.unwrap_or(500.0), args.lambda_i.unwrap_or(2.0));
            Egsde::new(&sde, &source, &classifier, lowpass, lambdas, 0).map_err(one_line)?;
            Extra::Egsde {
                lowpass,
                classifier: Box::new(classifier),
                lambdas,
            }
        }
    };
    let out = require(&args.out, "--out")?;
    if let (Some(_), [d]) = (&args.plot, &shape[..]) {
        if *d < 2 {
            bail!("--plot needs samples of dimension >= 2; the model has dimension {d}");
        }
    }
    Ok(Plan {
        method,
        sde_name,
        sde,
        source_model,
        source,
        shape,
        t0,
        sampler,
        grid,
        extra,
        lowpass,
        out,
    })
}

/// Translates the plan's sources with `model`.
fn translate<M: ScoreModel + ?Sized>(
    p: &Plan,
    model: &M,
    seed: u64,
    kind: NoiseKind,
) -> sbdm_runtime::error::Result<Sampled> {
    let n = p.source.dim(0)?;
    let mut noise = Noise::with_kind(kind, seed, 0, n, &p.shape, p.source.device());
    let x_t0 = noised(&p.sde, &p.source, p.t0, &mut noise)?;
    match &p.extra {
        Extra::None => p.sampler.sample(&p.sde, model, &x_t0, &p.grid, &mut noise),
        Extra::Ilvr { lowpass, cutoff } => {
            let ilvr = Ilvr::new(&p.sde, &p.source, *lowpass, *cutoff)?;
            let guided = Guided::new(model).with_constraint(ilvr);
            p.sampler
                .sample(&p.sde, &guided, &x_t0, &p.grid, &mut noise)
        }
        Extra::Egsde {
            lowpass,
            classifier,
            lambdas,
        } => {
            // The energy's own noise streams: another seed than the sampler's.
            let egsde = Egsde::new(
                &p.sde,
                &p.source,
                classifier.as_ref(),
                *lowpass,
                *lambdas,
                seed ^ 0xe95d_e000,
            )?;
            let guided = Guided::new(model).with_term(egsde);
            p.sampler
                .sample(&p.sde, &guided, &x_t0, &p.grid, &mut noise)
        }
    }
}

/// Runs `sbdm translate`.
pub fn run(args: &TranslateArgs) -> Result<()> {
    let methods = || -> Listing { method_rows().into_iter().map(|(_, n, d)| (n, d)).collect() };
    let samplers = || -> Listing { sampler_rows().into_iter().map(|(_, n, d)| (n, d)).collect() };
    if print_help_listing(&[
        (asks_help(&args.method), &methods),
        (asks_help(&args.sampler), &samplers),
        (args.sde.as_deref() == Some("help"), &sde_names),
        (args.noise.asks_help(), &NoiseFlag::listing),
    ]) {
        return Ok(());
    }
    let p = plan(args)?;
    let outputs = Outputs::claim(&p.out, args.plot.as_deref())?;
    let n = p.source.dim(0)?;
    let bar = spinner(format!(
        "translating {n} x {} with {:?} ({}), t0 = {}",
        shape_text(&p.shape),
        p.method,
        p.sampler,
        p.t0
    ));
    let start = Instant::now();
    let result = match &p.source_model {
        Source::Mixture(m) => translate(&p, &m.model(&p.sde), args.seed, args.noise.kind()),
        Source::Net(net, _) => translate(&p, net.as_ref(), args.seed, args.noise.kind()),
    };
    let wall = start.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let sampled = result.map_err(one_line)?;
    let x = sampled.x.to_dtype(DType::F32)?;
    // Faithfulness: the low-pass images' mean squared difference to the source's.
    let (phi_x, phi_y) = (p.lowpass.apply(&x)?, p.lowpass.apply(&p.source)?);
    let low_mse = (phi_x - phi_y)?.sqr()?.mean_all()?.to_scalar::<f32>()?;
    let mse = (&x - &p.source)?.sqr()?.mean_all()?.to_scalar::<f32>()?;

    let title = format!("{:?} on {}, t0 = {}", p.method, p.sde_name, p.t0);
    outputs.write(&x, |png| {
        draw_side_by_side(png, &title, &[("sources", &p.source), ("translations", &x)])
    })?;
    println!(
        "{:?} with {} on {} ({}), t0 = {}, {} steps, seed {}",
        p.method,
        p.sampler,
        p.sde_name,
        p.sde.name(),
        p.t0,
        p.grid.steps(),
        args.seed
    );
    println!(
        "{:<30} {:>14}",
        "samples",
        format!("{n} x {}", shape_text(&p.shape))
    );
    println!("{:<30} {:>14}", "NFE", sampled.nfe);
    println!("{:<30} {:>14.3}", "wall time (s)", wall);
    println!(
        "{:<30} {:>14.5}   (faithfulness: low frequencies, N = {})",
        "mean (phi(out) - phi(src))^2",
        low_mse,
        p.lowpass.factor()
    );
    println!("{:<30} {:>14.5}", "mean (out - src)^2", mse);
    println!("wrote {}", p.out.display());
    if let Some(path) = &args.plot {
        println!("wrote {}", path.display());
    }
    Ok(())
}
