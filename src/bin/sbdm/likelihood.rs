//! `sbdm likelihood`: `log p(x)` of data under a score model through the
//! probability-flow ODE (`sbdm_runtime::likelihood`), in nats and bits per dimension,
//! with the standard error of the mean; per-sample values to a `.npy`.

use std::path::PathBuf;

use anyhow::{anyhow, bail, Result};
use candle_core::{Device, Tensor};
use clap::Args;
use sbdm_runtime::io::{self, PendingFile};
use sbdm_runtime::likelihood::{log_likelihood, ExactMixture, OdeTolerance};
use sbdm_runtime::model::mixture::rows_f64;

use crate::common::{one_line, require};
use crate::models::{read_batch, ModelSpec, Source};
use crate::sde_arg::{self, SdeFlags};

/// Arguments of `sbdm likelihood`.
#[derive(Args, Debug)]
pub struct LikelihoodArgs {
    /// The forward SDE (`help` lists them): a built-in, or a FILE.sde declaring one.
    #[arg(long, value_name = "NAME|FILE.sde")]
    pub sde: Option<String>,
    /// The score model: `gmm:FILE.json`, a Gaussian mixture (exact score and divergence).
    #[arg(long)]
    pub model: Option<String>,
    /// The data: a float32 FILE.npy of shape [N, D].
    #[arg(long, value_name = "FILE.npy")]
    pub data: Option<PathBuf>,
    /// Relative tolerance of the adaptive Dormand-Prince solver.
    #[arg(long, default_value_t = 1e-6, allow_hyphen_values = true)]
    pub rtol: f64,
    /// Absolute tolerance of the solver.
    #[arg(long, default_value_t = 1e-6, allow_hyphen_values = true)]
    pub atol: f64,
    /// Where `log p(x)` of each sample goes (nats): a float32 .npy of shape [N].
    #[arg(long, value_name = "LOGP.npy")]
    pub out: Option<PathBuf>,
}

/// Runs `sbdm likelihood`.
pub fn run(args: &LikelihoodArgs) -> Result<()> {
    let tol = OdeTolerance::new(args.rtol, args.atol).map_err(|e| anyhow!("--rtol/--atol: {e}"))?;
    let model = ModelSpec::parse(&require(&args.model, "--model")?)?;
    if let ModelSpec::Checkpoint(_) = model {
        bail!(
            "likelihoods of trained networks need the network's divergence (exact per \
             dimension or Hutchinson's estimate), which is not available yet; use --model \
             gmm:FILE.json"
        );
    }
    let data = require(&args.data, "--data")?;
    let out_path = require(&args.out, "--out")?;
    let out = PendingFile::new(&out_path).map_err(one_line)?;
    let chosen = sde_arg::resolve(args.sde.as_deref(), &SdeFlags::default())?;
    let (sde_name, sde, source) = model.load(chosen)?;
    let Source::Mixture(mixture) = source else {
        bail!("--model must be gmm:FILE.json");
    };
    let d = mixture.dim();
    let x = read_batch(&data, &[d], "the data")?;
    let rows = rows_f64(&x, d).map_err(one_line)?;
    let field = ExactMixture {
        sde: sde.as_ref(),
        mixture: &mixture,
    };
    let prior = |x: &[f64]| sde.prior_log_prob(x);
    let bar = indicatif::ProgressBar::new(rows.len() as u64);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{bar:40} {pos}/{len} samples ({elapsed}, eta {eta})",
    ) {
        bar.set_style(style);
    }
    let mut log_p = Vec::with_capacity(rows.len());
    let mut nfe = 0usize;
    for (i, row) in rows.iter().enumerate() {
        let r = log_likelihood(sde.as_ref(), &field, row, &prior, tol)
            .map_err(|e| anyhow!("sample {i}: {}", one_line(e)))?;
        nfe += r.nfe;
        log_p.push(r.log_p);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let n = log_p.len() as f64;
    let mean = log_p.iter().sum::<f64>() / n;
    let var = log_p.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    let se = (var / n).sqrt();
    let bits = |nats: f64| nats / (d as f64 * std::f64::consts::LN_2);
    println!("{:<28} {}", "SDE", sde_name);
    println!("{:<28} {}", "samples", log_p.len());
    println!("{:<28} {:.6} ± {:.6}", "NLL (nats)", -mean, se);
    println!("{:<28} {:.6} ± {:.6}", "bits/dim", bits(-mean), bits(se));
    println!("{:<28} {:.1}", "NFE per sample", nfe as f64 / n);
    let values: Vec<f32> = log_p.iter().map(|&v| v as f32).collect();
    let t = Tensor::from_vec(values, log_p.len(), &Device::Cpu)?;
    io::write_npy_pending(&out, &t).map_err(one_line)?;
    out.commit().map_err(one_line)?;
    println!("wrote {}", out_path.display());
    Ok(())
}
