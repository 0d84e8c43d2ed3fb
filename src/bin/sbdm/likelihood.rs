//! `sbdm likelihood`: `log p(x)` of data under a score model through the
//! probability-flow ODE (`sbdm_runtime::likelihood`), in nats and bits per dimension,
//! with the standard error of the mean; per-sample values to a `.npy`. The exact
//! mixture's divergence is analytic; a network's is exact (one backward pass per
//! dimension) up to `--exact-up-to` dimensions and Hutchinson's estimate above.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{anyhow, bail, Result};
use candle_core::{DType, Device, Tensor};
use clap::Args;
use sbdm_runtime::io::{self, PendingFile};
use sbdm_runtime::likelihood::{
    bits_per_dim, log_likelihoods, mean_and_std_error, Dequantization, Divergence, ExactMixture,
    NetworkDivergence, OdeTolerance, PointLikelihood, Probe, ScoreDivergence,
};
use sbdm_runtime::limits;
use sbdm_runtime::model::mixture::rows_f64;

use crate::common::{applies_only, one_line, require, DeviceFlag};
use crate::models::{read_batch, shape_text, ModelSpec, Source};
use crate::sde_arg::{self, SdeFlags};

/// Arguments of `sbdm likelihood`.
#[derive(Args, Debug)]
pub struct LikelihoodArgs {
    /// The forward SDE (`help` lists them): a built-in, or a FILE.sde declaring one. A
    /// checkpoint's own SDE by default.
    #[arg(long, value_name = "NAME|FILE.sde")]
    pub sde: Option<String>,
    /// The score model: `gmm:FILE.json` (a Gaussian mixture: exact score and divergence)
    /// or `ckpt:FILE.safetensors` (a network trained by `sbdm train`).
    #[arg(long)]
    pub model: Option<String>,
    /// The data: a float32 FILE.npy of shape [N, D] (or [N, C, H, W] for an image model).
    #[arg(long, value_name = "FILE.npy")]
    pub data: Option<PathBuf>,
    /// A network's divergence exactly, one backward pass per dimension, at any dimension.
    #[arg(long, conflicts_with = "hutchinson")]
    pub exact: bool,
    /// A network's divergence by Hutchinson's estimate with K probes, at any dimension.
    #[arg(long, value_name = "K")]
    pub hutchinson: Option<usize>,
    /// Without --exact or --hutchinson: exact up to this dimension, Hutchinson's
    /// estimate with one probe above it.
    #[arg(long, value_name = "D", default_value_t = 16)]
    pub exact_up_to: usize,
    /// Hutchinson's probes: rademacher or gaussian.
    #[arg(long, default_value = "rademacher")]
    pub probe: String,
    /// Seeds the probes and the dequantisation noise (sample i draws from stream i).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Samples integrated together, sharing one step-size control (each within
    /// tolerance; 1 gives every sample its own steps).
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Dequantise data on LEVELS levels (256 for 8-bit images) uniformly before scoring,
    /// and report bits/dim of the discrete data (adds log2(LEVELS / width of
    /// --data-range): 7 bits for 256 levels in [-1, 1]).
    #[arg(long, value_name = "LEVELS")]
    pub dequantize: Option<u32>,
    /// The range the data's levels span, LOW,HIGH (with --dequantize).
    #[arg(
        long,
        value_name = "LOW,HIGH",
        default_value = "-1,1",
        allow_hyphen_values = true
    )]
    pub data_range: String,
    /// Relative tolerance of the adaptive Dormand-Prince solver.
    #[arg(long, default_value_t = 1e-5, allow_hyphen_values = true)]
    pub rtol: f64,
    /// Absolute tolerance of the solver.
    #[arg(long, default_value_t = 1e-5, allow_hyphen_values = true)]
    pub atol: f64,
    /// Where `log p(x)` of each sample goes (nats): a float32 .npy of shape [N].
    #[arg(long, value_name = "LOGP.npy")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub device: DeviceFlag,
}

impl LikelihoodArgs {
    /// The network divergence the flags ask for at dimension `d`.
    fn divergence(&self, d: usize) -> Result<Divergence> {
        let probe = Probe::from_name(&self.probe).map_err(|e| anyhow!("--probe: {e}"))?;
        let method = match (self.exact, self.hutchinson) {
            (true, _) => Divergence::Exact,
            (false, Some(probes)) => Divergence::Hutchinson {
                probes,
                probe,
                seed: self.seed,
            },
            (false, None) => Divergence::for_dimension(d, self.exact_up_to, 1, probe, self.seed),
        };
        method
            .validate()
            .map_err(|e| anyhow!("--hutchinson: {e}"))?;
        Ok(method)
    }

    /// `--dequantize` with `--data-range`.
    fn dequantization(&self) -> Result<Option<Dequantization>> {
        let Some(levels) = self.dequantize else {
            return Ok(None);
        };
        let bad = || anyhow!("--data-range must be LOW,HIGH, got `{}`", self.data_range);
        let (low, high) = self.data_range.split_once(',').ok_or_else(bad)?;
        let (low, high) = (
            low.trim().parse::<f64>().map_err(|_| bad())?,
            high.trim().parse::<f64>().map_err(|_| bad())?,
        );
        Ok(Some(
            Dequantization::new(levels, low, high).map_err(|e| anyhow!("--dequantize: {e}"))?,
        ))
    }
}

/// Runs `sbdm likelihood`.
pub fn run(args: &LikelihoodArgs) -> Result<()> {
    let tol = OdeTolerance::new(args.rtol, args.atol).map_err(|e| anyhow!("--rtol/--atol: {e}"))?;
    if args.batch == 0 {
        bail!("--batch must be at least 1");
    }
    let dequantization = args.dequantization()?;
    let model = ModelSpec::parse(&require(&args.model, "--model")?)?;
    let data = require(&args.data, "--data")?;
    let out_path = require(&args.out, "--out")?;
    let out = PendingFile::new(&out_path).map_err(one_line)?;
    let chosen = sde_arg::resolve(args.sde.as_deref(), &SdeFlags::default())?;
    let device = args.device.open()?;
    let (sde_name, sde, source) = model.load_on(chosen, &device)?;
    let shape = source.sample_shape();
    let d: usize = shape.iter().product();
    let x = read_batch(&data, &shape, "the data")?;
    let n = x.dim(0)?;
    // Every sample as f64 rows, then a batch's ODE: its state (the sample and one
    // divergence integral per probe) through the solver's stages in f64, the probes,
    // a network's forward and backward passes.
    let probes = match (&source, args.exact, args.hutchinson) {
        (Source::Net(..), false, Some(k)) => k,
        _ => 1,
    };
    let activations = match &source {
        Source::Mixture(_) => 0,
        Source::Net(net, _) => net.config().net.activations_per_sample(),
    };
    let per_row = (d as u128)
        .saturating_add(probes as u128)
        .saturating_mul(8 * 16)
        .saturating_add((d as u128).saturating_mul(probes as u128).saturating_mul(4))
        .saturating_add(activations.saturating_mul(12));
    let rows_at_once = args.batch.min(n) as u128;
    limits::check(
        format_args!(
            "--batch {} with {probes} divergence estimate(s) per sample (samples of shape {})",
            args.batch,
            shape_text(&shape)
        ),
        per_row
            .saturating_mul(rows_at_once)
            .saturating_add((n as u128).saturating_mul(d as u128).saturating_mul(8)),
    )
    .map_err(one_line)?;
    let mut rows: Vec<f64> = rows_f64(&x.reshape((n, d))?, d).map_err(one_line)?.concat();
    if let Some(q) = &dequantization {
        q.apply(&mut rows, d, 0, args.seed);
    }
    let (mut field, divergence): (Box<dyn ScoreDivergence + '_>, String) = match &source {
        Source::Mixture(mixture) => {
            let network_only = "networks (ckpt:); a mixture's divergence is exact";
            applies_only(args.exact, "--exact", network_only)?;
            applies_only(args.hutchinson.is_some(), "--hutchinson", network_only)?;
            (
                Box::new(ExactMixture {
                    sde: sde.as_ref(),
                    mixture,
                }),
                "exact (analytic)".to_string(),
            )
        }
        Source::Net(net, _) => {
            let method = args.divergence(d)?;
            let field = NetworkDivergence::new(
                sde.as_ref(),
                net.as_ref(),
                &shape,
                DType::F32,
                &device,
                method,
            )
            .map_err(one_line)?;
            (Box::new(field), method.describe())
        }
    };
    let prior = |x: &[f64]| sde.prior_log_prob(x);
    let bar = indicatif::ProgressBar::new(n as u64);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{bar:40} {pos}/{len} samples ({elapsed}, eta {eta})",
    ) {
        bar.set_style(style);
    }
    let start = Instant::now();
    let mut points: Vec<PointLikelihood> = Vec::with_capacity(n);
    let mut nfe = 0usize;
    for (b, chunk) in rows.chunks(args.batch.saturating_mul(d)).enumerate() {
        let first = b * args.batch;
        let got = log_likelihoods(sde.as_ref(), field.as_mut(), chunk, first, &prior, tol)
            .map_err(|e| anyhow!("samples {first}..: {}", one_line(e)))?;
        nfe += got.first().map_or(0, |p| p.nfe);
        bar.inc(got.len() as u64);
        points.extend(got);
    }
    bar.finish_and_clear();
    let log_p: Vec<f64> = points.iter().map(|p| p.log_p).collect();
    let (mean, se) = mean_and_std_error(&log_p);
    let se = if se.is_nan() { 0.0 } else { se };
    let bits = |nats: f64| bits_per_dim(nats, d);
    println!("{:<28} {}", "SDE", sde_name);
    println!("{:<28} {} of shape {}", "samples", n, shape_text(&shape));
    println!("{:<28} {}", "divergence", divergence);
    println!("{:<28} {:.6} ± {:.6}", "NLL (nats)", -mean, se);
    match &dequantization {
        None => println!("{:<28} {:.6} ± {:.6}", "bits/dim", bits(-mean), bits(se)),
        Some(q) => println!(
            "{:<28} {:.6} ± {:.6}  (continuous {:.6} + {:.4} for {} levels)",
            "bits/dim (dequantised)",
            q.bits_per_dim(mean, d),
            bits(se),
            bits(-mean),
            q.offset_bits(),
            q.levels()
        ),
    }
    let probe_se: Vec<f64> = points
        .iter()
        .map(|p| p.std_error)
        .filter(|v| v.is_finite() && *v > 0.0)
        .collect();
    if !probe_se.is_empty() {
        let mean_se = probe_se.iter().sum::<f64>() / probe_se.len() as f64;
        println!("{:<28} {:.6}", "probe s.e. per sample (nats)", mean_se);
    }
    println!(
        "{:<28} {:.1}  (batches of {})",
        "NFE per batch",
        nfe as f64 / n.div_ceil(args.batch) as f64,
        args.batch.min(n)
    );
    println!("{:<28} {:.2} s", "time", start.elapsed().as_secs_f64());
    let values: Vec<f32> = log_p.iter().map(|&v| v as f32).collect();
    let t = Tensor::from_vec(values, n, &Device::Cpu)?;
    io::write_npy_pending(&out, &t).map_err(one_line)?;
    out.commit().map_err(one_line)?;
    println!("wrote {}", out_path.display());
    Ok(())
}
