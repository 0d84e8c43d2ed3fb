//! Trains the small U-Net on the synthetic "shapes" images (circles, squares, triangles
//! at random positions, sizes and grey levels; 16×16) and writes a grid of samples.
//!
//! Run: `cargo run --release --example train_shapes [-- --steps N --out DIR --size 16|32]`
//! (2000 steps by default: about 7 minutes on two cores at ~4.8 steps/s).
//!
//! Writes `DIR/shapes_data.png` (training images), `DIR/shapes_samples.png` (DDIM-50
//! samples from the EMA weights), `DIR/loss.png` and `DIR/model.safetensors`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device};
use indicatif::{ProgressBar, ProgressStyle};
use sbdm::prelude::*;
use sbdm_runtime::data::Dataset;
use sbdm_runtime::model::net::{ModelConfig, NetModel};
use sbdm_runtime::model::prediction::Prediction;
use sbdm_runtime::nn::{NetConfig, UNetConfig};
use sbdm_runtime::report::imgrid::image_grid_png;
use sbdm_runtime::report::plot::{self, LineSeries};
use sbdm_runtime::sampling::noise::Noise;
use sbdm_runtime::sampling::{Sampler, TimeGrid};
use sbdm_runtime::train::{Dsm, LrSchedule, TrainConfig, Trainer, Weighting};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<()> {
    sbdm_runtime::train::prefer_batch_parallelism();
    let mut steps: u64 = 2000;
    let mut out = PathBuf::from("shapes-output");
    let mut size: usize = 16;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--steps" => steps = value()?.parse().context("--steps")?,
            "--out" => out = PathBuf::from(value()?),
            "--size" => size = value()?.parse().context("--size")?,
            _ => bail!("unknown option `{a}`; valid: --steps, --out, --size"),
        }
    }
    if size != 16 && size != 32 {
        bail!("--size must be 16 or 32, got {size}");
    }
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let dev = Device::Cpu;
    let sde = VpSde::default();
    let name = format!("shapes{size}");
    let data = Dataset::from_name(&name, 20_000, 0, &dev)?;
    let shown = data.held_out(64, 0, &dev)?;
    image_grid_png(out.join("shapes_data.png"), &shown, 8, 4)?;
    // Images in [-1, 1] with a -1 background: σ_data from the data themselves.
    let sigma_data = f64::from(shown.flatten_all()?.var(0)?.to_scalar::<f32>()?).sqrt();
    let model_cfg = ModelConfig {
        // Two levels (16×16 and 8×8, attention at 8×8) keep a CPU step well under a second.
        net: NetConfig::Unet(UNetConfig {
            image_size: size,
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
        warmup: 100,
        schedule: LrSchedule::Cosine,
        ema_decay: 0.999,
        weighting: Weighting::Uniform,
        seed: 0,
        ..Default::default()
    };
    let model = NetModel::new(sde, model_cfg, 0, &dev)?;
    let mut trainer = Trainer::new(Dsm::new(model), data, name, train_cfg)?;
    let bar = ProgressBar::new(steps);
    bar.set_style(ProgressStyle::with_template(
        "training U-Net {bar:30} {pos}/{len} loss {msg} {per_sec} ETA {eta}",
    )?);
    let start = Instant::now();
    let mut losses = Vec::new();
    let mut smooth = 0.0;
    while trainer.steps_done() < steps {
        let s = trainer.step()?;
        losses.push((s.step as f64, s.loss));
        smooth += (s.loss - smooth) / (s.step as f64).min(100.0);
        bar.set_message(format!("{smooth:.4}"));
        bar.inc(1);
    }
    bar.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    println!(
        "trained {steps} steps in {secs:.1} s ({:.2} steps/s), loss {smooth:.4}",
        steps as f64 / secs
    );
    trainer.save(out.join("model.safetensors"))?;
    plot::line_png(
        out.join("loss.png"),
        "U-Net on shapes: training loss",
        "step",
        "loss",
        &[
            LineSeries {
                label: "loss".into(),
                points: losses.clone(),
                color: (170, 200, 235),
            },
            LineSeries {
                label: "smoothed".into(),
                points: plot::smooth(&losses, 0.02),
                color: (20, 60, 140),
            },
        ],
        true,
    )?;
    let model = trainer.ema_model()?;
    let n = 64;
    let mut noise = Noise::new(7, 0, n, &[1, size, size], &dev);
    let x_t = noise
        .draw()?
        .affine(sde.prior_std(), 0.0)?
        .to_dtype(DType::F32)?;
    let t0 = Instant::now();
    let x = Sampler::Ddim { eta: 0.0 }
        .sample(&sde, &model, &x_t, &TimeGrid::uniform(50), &mut noise)?
        .x;
    println!(
        "sampled {n} images with DDIM-50 in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    image_grid_png(out.join("shapes_samples.png"), &x, 8, 4)?;
    println!(
        "wrote shapes_data.png, shapes_samples.png, loss.png, model.safetensors in {}",
        out.display()
    );
    Ok(())
}
