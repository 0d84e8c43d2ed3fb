//! Figures of the probability-flow ODE both ways (docs/likelihood.md):
//!
//! - `likelihood_rtol.png`: the PF-ODE log-likelihood's error against the exact
//!   `log p_{t_min}` and the score evaluations per sample, against the solver's rtol (the
//!   exact 2-D mixture oracle on VP, VE, rectified flow and TrigFlow — the last two reach
//!   pure noise — the exact `p_T` as the prior so only the solver's error is left), and
//!   a table of the same on `ddpm-linear` and `ddpm-linear-zsnr`;
//! - `inversion_roundtrip.png`: `max |decode(encode(x)) − x|` against the number of steps
//!   for DDIM and DPM-Solver++(2M) inversion (and the adaptive RK45 for reference);
//! - with `--unet FILE`: bits/dim of a U-Net trained on the shapes images
//!   (`cargo run --release --example train_shapes`), on fresh images dequantised to 8 bits,
//!   Hutchinson's divergence.
//!
//! Run: `cargo run --release --example likelihood [-- --out DIR --unet FILE --n N --rtol R]`
//! (`--n`, 64, and `--rtol`, 1e-5, apply to the U-Net)
//! (about a minute without `--unet`; DIR defaults to `likelihood-output`). Tables go to
//! stdout and every number to `DIR/likelihood.json`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor};
use indicatif::{ProgressBar, ProgressStyle};
use sbdm::prelude::*;
use sbdm_runtime::io::write_file_atomic;
use sbdm_runtime::likelihood::{
    bits_per_dim, log_likelihood, log_likelihoods, mean_and_std_error, Dequantization, Divergence,
    ExactMixture, NetworkDivergence, OdeTolerance, Probe,
};
use sbdm_runtime::model::mixture::GaussianMixture;
use sbdm_runtime::report::plot::{self, LineSeries};
use sbdm_runtime::sampling::noise::Noise;
use sbdm_runtime::sampling::{GridKind, Sampler, TimeGrid};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const COLORS: [(u8, u8, u8); 4] = [
    (31, 119, 180),
    (214, 39, 40),
    (44, 160, 44),
    (148, 103, 189),
];

fn main() -> Result<()> {
    let mut out = PathBuf::from("likelihood-output");
    let mut unet: Option<PathBuf> = None;
    let mut n_images: usize = 64;
    let mut rtol: f64 = 1e-5;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--out" => out = PathBuf::from(value()?),
            "--unet" => unet = Some(PathBuf::from(value()?)),
            "--n" => n_images = value()?.parse().context("--n")?,
            "--rtol" => rtol = value()?.parse().context("--rtol")?,
            _ => anyhow::bail!("unknown argument {a}; use --out DIR, --unet FILE, --n N, --rtol R"),
        }
    }
    std::fs::create_dir_all(&out)?;
    let mut json = serde_json::Map::new();
    json.insert("rtol_sweep".into(), rtol_sweep(&out)?);
    json.insert("discrete_tables".into(), discrete_tables()?);
    json.insert("inversion".into(), inversion(&out)?);
    if let Some(path) = unet {
        json.insert(
            "unet_bits_per_dim".into(),
            unet_bits(&path, n_images, rtol)?,
        );
    }
    let text = serde_json::to_string_pretty(&json)?;
    write_file_atomic(out.join("likelihood.json"), text)?;
    println!(
        "wrote likelihood_rtol.png, inversion_roundtrip.png, likelihood.json in {}",
        out.display()
    );
    Ok(())
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if let Ok(style) =
        ProgressStyle::with_template(&format!("{{bar:40}} {{pos}}/{{len}} {what} ({{elapsed}})"))
    {
        bar.set_style(style);
    }
    bar
}

/// The data: 8 Gaussians on a ring, and points drawn from it.
fn ring_and_points(n: usize) -> Result<(GaussianMixture, Vec<Vec<f64>>)> {
    let mix = GaussianMixture::ring(8, 4.0, 0.5)?;
    let x = mix.sample(n, 1, &Device::Cpu)?;
    let rows = x.to_dtype(DType::F64)?.to_vec2::<f64>()?;
    Ok((mix, rows))
}

/// The same on the DDPM table `ddpm-linear` and its zero-terminal-SNR rescaling (which
/// reaches pure noise): `ln ᾱ` is piecewise linear, so the drift jumps at each of the
/// 1000 knots and the adaptive solver's error falls slowly with rtol, on both alike.
fn discrete_tables() -> Result<serde_json::Value> {
    let (mix, points) = ring_and_points(20)?;
    println!(
        "{:<18} {:>8} {:>14} {:>14} {:>10}",
        "table", "rtol", "mean |err|", "max |err|", "NFE"
    );
    let mut rows = Vec::new();
    for name in ["ddpm-linear", "ddpm-linear-zsnr"] {
        let sde = sbdm_runtime::sde::named::by_name(name)?;
        let (t0, t1) = sde.time_range();
        let exact_prior = |x: &[f64]| mix.log_prob_at(x, sde.mean_coef(t1), sde.std(t1));
        let mut field = ExactMixture {
            sde: sde.as_ref(),
            mixture: &mix,
        };
        for rtol in [1e-6, 1e-8, 1e-10] {
            let tol = OdeTolerance::new(rtol, rtol)?;
            let (mut sum, mut worst, mut nfe) = (0.0, 0.0f64, 0usize);
            for x in &points {
                let got = log_likelihood(sde.as_ref(), &mut field, x, &exact_prior, tol)?;
                let want = mix.log_prob_at(x, sde.mean_coef(t0), sde.std(t0));
                let e = (got.log_p - want).abs();
                sum += e;
                worst = worst.max(e);
                nfe += got.nfe;
            }
            let n = points.len() as f64;
            let (mean_err, mean_nfe) = (sum / n, nfe as f64 / n);
            println!("{name:<18} {rtol:>8.0e} {mean_err:>14.3e} {worst:>14.3e} {mean_nfe:>10.1}");
            rows.push(
                serde_json::json!({"sde": name, "rtol": rtol, "mean_abs_error_nats": mean_err,
                "max_abs_error_nats": worst, "nfe_per_sample": mean_nfe}),
            );
        }
    }
    Ok(serde_json::Value::Array(rows))
}

/// NLL error and NFE per sample against rtol (= atol), per-sample step control.
fn rtol_sweep(out: &std::path::Path) -> Result<serde_json::Value> {
    let (mix, points) = ring_and_points(100)?;
    let rtols = [1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9];
    // rf and trigflow reach pure noise, a(T) = 0: integrated in the posterior-mean form.
    let sdes: [(&str, Box<dyn GaussianKernel>); 4] = [
        ("vp", Box::new(VpSde::default())),
        ("ve", Box::new(VeSde::default())),
        ("rf", Box::new(RectifiedFlow)),
        ("trigflow", Box::new(TrigFlow)),
    ];
    let progress = bar((rtols.len() * sdes.len()) as u64, "tolerances");
    let (mut err_series, mut nfe_series, mut rows) = (Vec::new(), Vec::new(), Vec::new());
    println!(
        "{:<8} {:>8} {:>14} {:>14} {:>10}",
        "SDE", "rtol", "mean |err|", "max |err|", "NFE"
    );
    for (c, (name, sde)) in sdes.iter().enumerate() {
        let (t0, t1) = sde.time_range();
        let exact_prior = |x: &[f64]| mix.log_prob_at(x, sde.mean_coef(t1), sde.std(t1));
        let mut field = ExactMixture {
            sde: sde.as_ref(),
            mixture: &mix,
        };
        let (mut errs, mut nfes) = (Vec::new(), Vec::new());
        for &rtol in &rtols {
            let tol = OdeTolerance::new(rtol, rtol)?;
            let (mut sum, mut worst, mut nfe) = (0.0, 0.0f64, 0usize);
            for x in &points {
                let got = log_likelihood(sde.as_ref(), &mut field, x, &exact_prior, tol)?;
                let want = mix.log_prob_at(x, sde.mean_coef(t0), sde.std(t0));
                let e = (got.log_p - want).abs();
                sum += e;
                worst = worst.max(e);
                nfe += got.nfe;
            }
            let n = points.len() as f64;
            let (mean_err, mean_nfe) = (sum / n, nfe as f64 / n);
            println!("{name:<8} {rtol:>8.0e} {mean_err:>14.3e} {worst:>14.3e} {mean_nfe:>10.1}");
            errs.push((rtol.log10(), mean_err));
            nfes.push((rtol.log10(), mean_nfe));
            rows.push(
                serde_json::json!({"sde": name, "rtol": rtol, "mean_abs_error_nats": mean_err,
                "max_abs_error_nats": worst, "nfe_per_sample": mean_nfe}),
            );
            progress.inc(1);
        }
        err_series.push(LineSeries {
            label: name.to_string(),
            points: errs,
            color: COLORS[c],
        });
        nfe_series.push(LineSeries {
            label: name.to_string(),
            points: nfes,
            color: COLORS[c],
        });
    }
    progress.finish_and_clear();
    plot::line_png(
        out.join("likelihood_rtol.png"),
        "PF-ODE log-likelihood: mean |error| vs exact log p (8-Gaussian ring)",
        "log10 rtol (= atol)",
        "mean |log p - exact| (nats)",
        &err_series,
        true,
    )?;
    plot::line_png(
        out.join("likelihood_nfe.png"),
        "PF-ODE log-likelihood: score evaluations per sample",
        "log10 rtol (= atol)",
        "NFE per sample",
        &nfe_series,
        false,
    )?;
    Ok(serde_json::Value::Array(rows))
}

/// Round-trip error of encoding then decoding with the same deterministic sampler.
fn inversion(out: &std::path::Path) -> Result<serde_json::Value> {
    let sde = VpSde::default();
    let (mix, points) = ring_and_points(500)?;
    let flat: Vec<f64> = points.concat();
    let x0 = Tensor::from_vec(flat, (points.len(), 2), &Device::Cpu)?;
    let model = mix.model(&sde);
    let steps = [10usize, 20, 50, 100, 200, 500];
    let samplers = [Sampler::Ddim { eta: 0.0 }, Sampler::DpmPp2m];
    let progress = bar((steps.len() * samplers.len()) as u64, "runs");
    let (mut series, mut rows) = (Vec::new(), Vec::new());
    println!(
        "\n{:<8} {:>6} {:>14} {:>14}",
        "sampler", "steps", "max |error|", "RMS error"
    );
    let round_trip = |sampler: Sampler, grid: &TimeGrid| -> Result<(f64, f64)> {
        let x_t = sampler.encode(&sde, &model, &x0, grid)?.x;
        let mut noise = Noise::new(0, 0, points.len(), &[2], &Device::Cpu);
        let back = sampler.sample(&sde, &model, &x_t, grid, &mut noise)?.x;
        let d = (back - &x0)?;
        let max = d.abs()?.max_all()?.to_scalar::<f64>()?;
        let rms = d.sqr()?.mean_all()?.to_scalar::<f64>()?.sqrt();
        Ok((max, rms))
    };
    for (c, sampler) in samplers.iter().enumerate() {
        let mut pts = Vec::new();
        for &n in &steps {
            let grid = TimeGrid::new(GridKind::default_for(&sde), n);
            let (max, rms) = round_trip(*sampler, &grid)?;
            println!("{:<8} {n:>6} {max:>14.3e} {rms:>14.3e}", sampler.name());
            pts.push(((n as f64).log10(), max));
            rows.push(serde_json::json!({"sampler": sampler.name(), "steps": n, "max_abs_error": max, "rms_error": rms}));
            progress.inc(1);
        }
        series.push(LineSeries {
            label: sampler.name().to_string(),
            points: pts,
            color: COLORS[c],
        });
    }
    progress.finish_and_clear();
    let rk45 = Sampler::Rk45 {
        rtol: 1e-8,
        atol: 1e-8,
    };
    let (max, rms) = round_trip(rk45, &TimeGrid::new(GridKind::default_for(&sde), 50))?;
    println!("{:<8} {:>6} {max:>14.3e} {rms:>14.3e}", "rk45", "1e-8");
    rows.push(serde_json::json!({"sampler": "rk45(rtol=1e-8, atol=1e-8)", "max_abs_error": max, "rms_error": rms}));
    plot::line_png(
        out.join("inversion_roundtrip.png"),
        "decode(encode(x)) on VP, exact score (8-Gaussian ring, 500 points)",
        "log10 steps",
        "max |decode(encode(x)) - x|",
        &series,
        true,
    )?;
    Ok(serde_json::Value::Array(rows))
}

/// Bits/dim of a shapes U-Net on fresh 8-bit-dequantised images, Hutchinson (K = 1).
fn unet_bits(path: &std::path::Path, n: usize, rtol: f64) -> Result<serde_json::Value> {
    let sde = VpSde::default();
    let ck = sbdm_runtime::train::checkpoint::load(path, &Device::Cpu)?;
    let model = sbdm_runtime::train::model_from_checkpoint(&ck, sde, true)?;
    let shape = model.config().net.sample_shape();
    let d: usize = shape.iter().product();
    let size = shape[shape.len() - 1];
    let cfg = sbdm_runtime::data::ShapesConfig {
        size,
        channels: shape[0],
    };
    // Seed 1: images the model (trained on seed 0's) has not seen.
    let (images, _) = sbdm_runtime::data::shapes(n, &cfg, 1)?;
    let mut x: Vec<f64> = images.iter().map(|&v| f64::from(v)).collect();
    let q = Dequantization::images();
    q.apply(&mut x, d, 0, 0);
    let method = Divergence::Hutchinson {
        probes: 1,
        probe: Probe::Rademacher,
        seed: 0,
    };
    let mut field = NetworkDivergence::new(&sde, &model, &shape, DType::F32, &Device::Cpu, method)?;
    let tol = OdeTolerance::new(rtol, rtol)?;
    let prior = |x: &[f64]| sde.prior_log_prob(x);
    let batch = 16;
    let progress = bar(n as u64, "images");
    let start = Instant::now();
    let (mut log_p, mut nfe) = (Vec::new(), 0usize);
    for (b, chunk) in x.chunks(batch * d).enumerate() {
        let got = log_likelihoods(&sde, &mut field, chunk, b * batch, &prior, tol)?;
        nfe += got[0].nfe;
        log_p.extend(got.iter().map(|p| p.log_p));
        progress.inc(got.len() as u64);
    }
    progress.finish_and_clear();
    let (mean, se) = mean_and_std_error(&log_p);
    let bpd = q.bits_per_dim(mean, d);
    let se_bits = bits_per_dim(se, d);
    let secs = start.elapsed().as_secs_f64();
    println!(
        "\nshapes U-Net ({}): {n} images of shape {shape:?}",
        path.display()
    );
    println!(
        "{:<28} {bpd:.4} ± {se_bits:.4}",
        "bits/dim (8-bit, dequantised)"
    );
    println!("{:<28} {:.4}", "continuous bits/dim", bpd - q.offset_bits());
    println!(
        "{:<28} {:.1}",
        "NFE per batch",
        nfe as f64 / n.div_ceil(batch) as f64
    );
    println!("{:<28} {secs:.1} s", "time");
    Ok(
        serde_json::json!({"checkpoint": path.display().to_string(), "images": n, "bits_per_dim": bpd,
        "std_error": se_bits, "offset_bits": q.offset_bits(), "divergence": method.describe(),
        "rtol": rtol, "nfe_per_batch": nfe as f64 / n.div_ceil(batch) as f64, "seconds": secs}),
    )
}
