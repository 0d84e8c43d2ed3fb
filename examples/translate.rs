//! Unpaired image-to-image translation on the generated shapes: squares (the source
//! domain) into discs (the target domain) with SDEdit, ILVR and EGSDE, on VP.
//!
//! Run: `cargo run --release --example translate [-- --dir DIR] [--quick]`
//! (about 15 minutes on two cores; `--quick` is a CI-sized run of under a minute).
//!
//! It trains, or loads from `DIR` when they are there, the target domain's score model (a
//! small U-Net on discs) and a time-dependent domain classifier (squares vs discs, a
//! U-Net encoder), translates 64 squares with each method, and writes
//! - `DIR/translate_grid.png`: source | SDEdit | ILVR | EGSDE, one row per source;
//! - `DIR/tradeoff.png`: realism against faithfulness as `t₀` varies (SDEdit, EGSDE)
//!   with ILVR's point;
//! - `DIR/translate.json`: the numbers of the table it prints.
//!
//! Realism is the domain classifier's mean `P(disc)` on the outputs (at `t_min`);
//! faithfulness the PSNR and (global) SSIM of `φ_N(output)` against `φ_N(source)`, `φ_N`
//! the low-pass filter of factor `N = 4` the methods use.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use indicatif::{ProgressBar, ProgressStyle};
use sbdm::prelude::*;
use sbdm_runtime::data::{shapes, Dataset, ShapesConfig};
use sbdm_runtime::guide::{noised, Egsde, Ilvr, LowPass};
use sbdm_runtime::model::classifier::ClassifierModel;
use sbdm_runtime::model::net::{ModelConfig, NetModel};
use sbdm_runtime::model::prediction::Prediction;
use sbdm_runtime::nn::{ClassifierConfig, NetConfig, UNetConfig};
use sbdm_runtime::report::imgrid::columns_png;
use sbdm_runtime::report::metrics::{psnr, ssim};
use sbdm_runtime::report::plot::{self, LineSeries};
use sbdm_runtime::sampling::{Guided, Noise, Sampler, TimeGrid};
use sbdm_runtime::train::{
    load_classifier, load_model, CrossEntropy, Dsm, LrSchedule, Objective, TrainConfig, Trainer,
    Weighting,
};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The label of each domain in the shapes generator.
const DISC: u32 = 0;
const SQUARE: u32 = 1;
/// The domain classifier's classes.
const SOURCE_CLASS: u32 = 0;
const TARGET_CLASS: u32 = 1;

/// Sizes of a full run and of `--quick`.
struct Sizes {
    score_steps: u64,
    classifier_steps: u64,
    sources: usize,
    sampler_steps: usize,
    sweep: Vec<f64>,
}

/// The settings every method shares.
struct Setup {
    sde: VpSde,
    model: NetModel<VpSde>,
    classifier: ClassifierModel<VpSde>,
    lowpass: LowPass,
    steps: usize,
}

/// One method's outputs and figures.
struct Outcome {
    x: Tensor,
    realism: f64,
    psnr: f64,
    ssim: f64,
    seconds: f64,
}

fn main() -> Result<()> {
    sbdm_runtime::train::prefer_batch_parallelism();
    let mut dir = PathBuf::from("translate-output");
    let mut quick = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--dir" => dir = PathBuf::from(args.next().context("--dir needs a value")?),
            "--quick" => quick = true,
            _ => bail!("unknown option `{a}`; valid: --dir DIR, --quick"),
        }
    }
    let sizes = if quick {
        Sizes {
            score_steps: 150,
            classifier_steps: 60,
            sources: 16,
            sampler_steps: 20,
            sweep: vec![0.1, 0.3, 0.5],
        }
    } else {
        Sizes {
            score_steps: 2500,
            classifier_steps: 1000,
            sources: 64,
            sampler_steps: 100,
            sweep: vec![0.1, 0.2, 0.3, 0.45, 0.6],
        }
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let dev = Device::Cpu;
    let sde = VpSde::default();

    // The two domains, generated in code.
    let cfg = ShapesConfig::default();
    let (images, labels) = shapes(24_000, &cfg, 0)?;
    let all = Tensor::from_vec(images, (24_000, 1, 16, 16), &dev)?;
    let pick = |class: u32| -> Result<Tensor> {
        let idx: Vec<u32> = (0..labels.len() as u32)
            .filter(|&i| labels[i as usize] == class)
            .collect();
        Ok(all.index_select(&Tensor::new(idx.as_slice(), &dev)?, 0)?)
    };
    let (discs, squares) = (pick(DISC)?, pick(SQUARE)?);
    let n_src = sizes.sources;
    let held = squares.dim(0)? - n_src;
    let sources = squares.narrow(0, held, n_src)?;
    let train_squares = squares.narrow(0, 0, held)?;
    let sigma_data = f64::from(discs.flatten_all()?.var(0)?.to_scalar::<f32>()?).sqrt();

    let model = score_model(&dir, &sde, &discs, sigma_data, sizes.score_steps)?;
    let classifier = domain_classifier(
        &dir,
        &sde,
        &train_squares,
        &discs,
        sigma_data,
        sizes.classifier_steps,
    )?;
    let setup = Setup {
        sde,
        model,
        classifier,
        lowpass: LowPass::new(4)?,
        steps: sizes.sampler_steps,
    };

    let t0 = 0.5;
    let (lo, hi) = setup.sde.time_range();
    println!(
        "translating {n_src} squares into discs on VP, reverse-SDE Euler-Maruyama, {} steps",
        setup.steps
    );
    let sdedit = run(&setup, &sources, Method::Sdedit, t0)?;
    let ilvr = run(&setup, &sources, Method::Ilvr, hi)?;
    let egsde = run(&setup, &sources, Method::Egsde, t0)?;
    columns_png(
        dir.join("translate_grid.png"),
        &[&sources, &sdedit.x, &ilvr.x, &egsde.x],
        n_src,
        3,
    )?;

    println!(
        "\n{:<28} {:>8} {:>10} {:>9} {:>8}",
        "method", "realism", "PSNR (dB)", "SSIM", "time (s)"
    );
    let source_realism = realism(&setup, &sources)?;
    println!(
        "{:<28} {:>8.3} {:>10} {:>9} {:>8}",
        "sources (squares)", source_realism, "-", "-", "-"
    );
    let rows = [
        (format!("SDEdit (t0 = {t0})"), &sdedit),
        (format!("ILVR (N = 4, from T = {hi})"), &ilvr),
        (format!("EGSDE (t0 = {t0})"), &egsde),
    ];
    for (name, o) in &rows {
        println!(
            "{name:<28} {:>8.3} {:>10.2} {:>9.3} {:>8.1}",
            o.realism, o.psnr, o.ssim, o.seconds
        );
    }

    // The trade-off as t₀ varies, on the first sources.
    let k = n_src.min(32);
    let few = sources.narrow(0, 0, k)?;
    let mut curves = [Vec::new(), Vec::new()];
    let mut sweep_rows = Vec::new();
    for &t in &sizes.sweep {
        let t = lo + t * (hi - lo);
        for (i, method) in [Method::Sdedit, Method::Egsde].into_iter().enumerate() {
            let o = run(&setup, &few, method, t)?;
            curves[i].push((o.psnr, o.realism));
            sweep_rows.push(serde_json::json!({
                "method": format!("{method:?}"), "t0": t, "realism": o.realism,
                "psnr": o.psnr, "ssim": o.ssim,
            }));
        }
    }
    let ilvr_few = run(&setup, &few, Method::Ilvr, hi)?;
    plot::line_png(
        dir.join("tradeoff.png"),
        "squares to discs: realism vs faithfulness as t0 varies (0.1 to 0.6)",
        "faithfulness: PSNR of the low-pass images (dB)",
        "realism: P(disc)",
        &[
            LineSeries {
                label: "SDEdit".into(),
                points: curves[0].clone(),
                color: (200, 80, 40),
            },
            LineSeries {
                label: "EGSDE".into(),
                points: curves[1].clone(),
                color: (30, 90, 170),
            },
            LineSeries {
                label: "ILVR (from T)".into(),
                points: vec![(ilvr_few.psnr, ilvr_few.realism)],
                color: (40, 150, 60),
            },
        ],
        false,
    )?;
    let summary = serde_json::json!({
        "sources": n_src,
        "sampler_steps": setup.steps,
        "t0": t0,
        "source_realism": source_realism,
        "methods": rows.iter().map(|(name, o)| serde_json::json!({
            "method": name, "realism": o.realism, "psnr": o.psnr, "ssim": o.ssim, "seconds": o.seconds,
        })).collect::<Vec<_>>(),
        "sweep": sweep_rows,
        "ilvr_sweep_point": {"realism": ilvr_few.realism, "psnr": ilvr_few.psnr, "ssim": ilvr_few.ssim},
    });
    let json = dir.join("translate.json");
    sbdm_runtime::io::write_file_atomic(
        &json,
        serde_json::to_string_pretty(&summary).unwrap_or_default(),
    )?;
    println!(
        "\nwrote translate_grid.png (source | SDEdit | ILVR | EGSDE), tradeoff.png, translate.json in {}",
        dir.display()
    );
    Ok(())
}

#[derive(Clone, Copy, Debug)]
enum Method {
    Sdedit,
    Ilvr,
    Egsde,
}

/// Translates `sources` with `method` from `t0` and measures the outputs.
fn run(setup: &Setup, sources: &Tensor, method: Method, t0: f64) -> Result<Outcome> {
    let sde = &setup.sde;
    let n = sources.dim(0)?;
    let lo = sde.time_range().0;
    let mut noise = Noise::new(11, 0, n, &[1, 16, 16], &Device::Cpu);
    let x_t0 = noised(sde, sources, t0, &mut noise)?;
    let grid = TimeGrid::uniform(setup.steps).between(t0, lo);
    let start = Instant::now();
    let x = match method {
        Method::Sdedit => Sampler::Em.sample(sde, &setup.model, &x_t0, &grid, &mut noise)?,
        Method::Ilvr => {
            let ilvr = Ilvr::new(sde, sources, setup.lowpass, lo)?;
            let guided = Guided::new(&setup.model).with_constraint(ilvr);
            Sampler::Em.sample(sde, &guided, &x_t0, &grid, &mut noise)?
        }
        Method::Egsde => {
            // The paper's weights (λ_s = 500, λ_i = 2) for a realistic expert whose cosine
            // similarity has a small gradient, and the low-pass expert of factor 4.
            let egsde = Egsde::new(
                sde,
                sources,
                &setup.classifier,
                setup.lowpass,
                (500.0, 2.0),
                5,
            )?;
            let guided = Guided::new(&setup.model).with_term(egsde);
            Sampler::Em.sample(sde, &guided, &x_t0, &grid, &mut noise)?
        }
    }
    .x
    .clamp(-1.0, 1.0)?;
    let seconds = start.elapsed().as_secs_f64();
    let (lx, ls) = (setup.lowpass.apply(&x)?, setup.lowpass.apply(sources)?);
    Ok(Outcome {
        realism: realism(setup, &x)?,
        psnr: psnr(&lx, &ls, 2.0)?,
        ssim: ssim(&lx, &ls, 2.0)?,
        x,
        seconds,
    })
}

/// The domain classifier's mean `P(target)` at `t_min`.
fn realism(setup: &Setup, x: &Tensor) -> Result<f64> {
    let n = x.dim(0)?;
    let t = vec![setup.sde.time_range().0; n];
    let target = Tensor::new(vec![TARGET_CLASS; n].as_slice(), x.device())?;
    let p = setup.classifier.log_prob(x, &t, &target)?.exp()?;
    Ok(f64::from(p.mean_all()?.to_scalar::<f32>()?))
}

/// Trains `trainer` to `steps` with a progress bar named `what`.
fn train<O: Objective>(trainer: &mut Trainer<O>, steps: u64, what: &str) -> Result<()> {
    let bar = ProgressBar::new(steps);
    bar.set_style(ProgressStyle::with_template(&format!(
        "training {what} {{bar:30}} {{pos}}/{{len}} loss {{msg}} {{per_sec}} ETA {{eta}}"
    ))?);
    let mut smooth = 0.0;
    let start = Instant::now();
    while trainer.steps_done() < steps {
        let s = trainer.step()?;
        smooth += (s.loss - smooth) / (s.step as f64).min(50.0);
        bar.set_message(format!("{smooth:.4}"));
        bar.inc(1);
    }
    bar.finish_and_clear();
    println!(
        "trained {what}: {steps} steps in {:.1} s, loss {smooth:.4}",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The target domain's score model: loaded from `dir/score.safetensors`, or trained on
/// `discs` and saved there.
fn score_model(
    dir: &Path,
    sde: &VpSde,
    discs: &Tensor,
    sigma_data: f64,
    steps: u64,
) -> Result<NetModel<VpSde>> {
    let path = dir.join("score.safetensors");
    if path.exists() {
        println!("loading the score model from {}", path.display());
        return Ok(load_model(&path, *sde, true, &Device::Cpu)?.0);
    }
    let cfg = ModelConfig {
        net: NetConfig::Unet(UNetConfig {
            base_channels: 16,
            channel_mult: vec![1, 2],
            ..Default::default()
        }),
        prediction: Prediction::Eps,
        precondition: true,
        sigma_data,
    };
    let train_cfg = TrainConfig {
        steps,
        batch: 32,
        lr: 1e-3,
        warmup: 100.min(steps / 2),
        schedule: LrSchedule::Cosine,
        ema_decay: 0.999,
        weighting: Weighting::Uniform,
        ..Default::default()
    };
    let model = NetModel::new(*sde, cfg, 0, &Device::Cpu)?;
    let data = Dataset::from_tensor(discs.clone(), None)?;
    let mut trainer = Trainer::new(Dsm::new(model), data, "discs", train_cfg)?;
    train(&mut trainer, steps, "the score model on discs")?;
    trainer.save(&path)?;
    Ok(trainer.ema_model()?)
}

/// The time-dependent domain classifier (squares: 0, discs: 1): loaded from
/// `dir/domain.safetensors`, or trained and saved there.
fn domain_classifier(
    dir: &Path,
    sde: &VpSde,
    squares: &Tensor,
    discs: &Tensor,
    sigma_data: f64,
    steps: u64,
) -> Result<ClassifierModel<VpSde>> {
    let path = dir.join("domain.safetensors");
    if path.exists() {
        println!("loading the domain classifier from {}", path.display());
        return Ok(load_classifier(&path, *sde, true, &Device::Cpu)?.0);
    }
    let x = Tensor::cat(&[squares, discs], 0)?;
    let labels: Vec<u32> = std::iter::repeat_n(SOURCE_CLASS, squares.dim(0)?)
        .chain(std::iter::repeat_n(TARGET_CLASS, discs.dim(0)?))
        .collect();
    let cfg = ClassifierConfig {
        net: NetConfig::Unet(UNetConfig {
            base_channels: 16,
            channel_mult: vec![1, 2],
            attention: false,
            ..Default::default()
        }),
        num_classes: 2,
    };
    let train_cfg = TrainConfig {
        steps,
        batch: 64,
        lr: 1e-3,
        warmup: 20.min(steps / 2),
        ema_decay: 0.99,
        ..Default::default()
    };
    let clf = ClassifierModel::new(*sde, cfg, sigma_data, 0, &Device::Cpu)?;
    let data = Dataset::from_tensor(x, Some(labels))?;
    let mut trainer = Trainer::new(CrossEntropy::new(clf), data, "squares-and-discs", train_cfg)?;
    train(&mut trainer, steps, "the domain classifier")?;
    trainer.save(&path)?;
    Ok(trainer.ema_model()?)
}
