//! `sbdm bench device`: the device check of a `cuda` build on a machine with a GPU, in one
//! run (`scripts/device-check.sh` builds and runs it):
//!
//! - every deterministic sampler on the GPU and on the CPU from the same x_T (DDIM and the
//!   other probability-flow solvers on VP, the exact mixture's score): the largest
//!   difference of the samples (the goal is 1e-5); and every stochastic one under Philox
//!   noise, which each device computes itself (the same numbers up to the device's last
//!   bit of `log`/`sincos`), with the largest difference of the noise itself;
//! - the fused step `x ← c0·x + c1·y + c2·z` on the device against a device-to-device copy
//!   of one buffer, at 2^26 f32: bytes moved per second of each (4 buffers' worth for the
//!   step, 2 for the copy) and their ratio (the goal is ≥ 80%); and the stochastic step
//!   `x ← c0·x + c1·y + c2·ξ` with the Philox noise `ξ` generated inside the pass (3
//!   buffers' worth) beside the same step with `ξ` drawn into a tensor first;
//! - a DSM training step of the benchmark U-Net on the device and on the CPU.
//!
//! It runs with `--device cpu` too (CPU against CPU: differences 0), which is how CI keeps
//! it from rotting at a tiny size.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Result};
use candle_core::{DType, Device, Tensor};
use clap::Args;
use sbdm_runtime::model::mixture::GaussianMixture;
use sbdm_runtime::sampling::{fused, Noise, NoiseKind, Sampler, TimeGrid};
use sbdm_runtime::sde::builtin::VpSde;

use super::train::time_training;
use super::{check_count, philox_draws};
use crate::common::{one_line, open_device, spinner};

/// Arguments of `sbdm bench device`.
#[derive(Args, Debug)]
pub struct DeviceBenchArgs {
    /// The device compared with the CPU: cuda (the first GPU), cuda:N, or cpu.
    #[arg(long, default_value = "cuda", value_name = "cuda[:N]|cpu")]
    pub device: String,
    /// Points sampled by each deterministic sampler on both devices.
    #[arg(long, default_value_t = 4096)]
    pub n: usize,
    /// Steps of each sampler (uniform grid on VP).
    #[arg(long, default_value_t = 50)]
    pub steps: usize,
    /// log2 of the f32 elements per buffer of the bandwidth measurement (26: 256 MiB).
    #[arg(long, default_value_t = 26)]
    pub elements_log2: u32,
    /// Timed iterations of the step and of the copy (the median is reported).
    #[arg(long, default_value_t = 20)]
    pub iters: usize,
    /// Timed U-Net training steps on the device (the CPU's are a third, at least 1);
    /// 0 skips the training comparison.
    #[arg(long, default_value_t = 10)]
    pub train_steps: usize,
    /// Also write the figures as JSON.
    #[arg(long, value_name = "FILE.json")]
    pub json: Option<PathBuf>,
}

/// The largest absolute difference of two tensors of one shape, on the host.
fn max_diff(a: &Tensor, b: &Tensor) -> Result<f64> {
    let a = a.to_device(&Device::Cpu)?.to_dtype(DType::F64)?;
    let b = b.to_device(&Device::Cpu)?.to_dtype(DType::F64)?;
    Ok((a - b)?.abs()?.max_all()?.to_scalar::<f64>()?)
}

/// Median seconds of `iters` runs of `f` after one warm-up, each waiting for `dev`.
fn time_on(dev: &Device, iters: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    dev.synchronize()?;
    let mut v = Vec::with_capacity(iters);
    for _ in 0..iters {
        let start = Instant::now();
        f()?;
        dev.synchronize()?;
        v.push(start.elapsed().as_secs_f64());
    }
    Ok(super::stats(v).0)
}

/// Runs `sbdm bench device`.
pub fn device(a: &DeviceBenchArgs) -> Result<()> {
    let dev = open_device(&a.device)?;
    if a.n == 0 || a.steps == 0 || a.iters == 0 {
        bail!("--n, --steps and --iters must be at least 1");
    }
    if a.elements_log2 > 30 {
        bail!(
            "--elements-log2 must be at most 30, got {}",
            a.elements_log2
        );
    }
    let elements = 1usize << a.elements_log2;
    check_count("--n", a.n, 2 * 4 * 8)?;
    check_count("--elements-log2", elements, 4 * 4)?;
    println!("device check: {} against the CPU", a.device);

    // 1. Deterministic samplers from the same x_T.
    let sde = VpSde::default();
    let mixture = GaussianMixture::ring(8, 4.0, 0.5)?;
    let model = mixture.model(&sde);
    let grid = TimeGrid::uniform(a.steps);
    let x_t = Noise::new(0, 0, a.n, &[2], &Device::Cpu).draw()?;
    let bar = spinner("every sampler on both devices".into());
    let mut diffs = Vec::new();
    for sampler in Sampler::ALL {
        // Deterministic samplers draw nothing; stochastic ones draw Philox noise on each
        // device.
        let run = |on: &Device| {
            let mut noise = Noise::with_kind(NoiseKind::Philox, 1, 1, a.n, &[2], on);
            sampler
                .sample(&sde, &model, &x_t.to_device(on)?, &grid, &mut noise)
                .map_err(one_line)
        };
        let (cpu, other) = (run(&Device::Cpu)?, run(&dev)?);
        diffs.push((sampler.name(), max_diff(&cpu.x, &other.x)?));
    }
    let noise_diff = {
        let draw = |on: &Device| {
            Noise::with_kind(NoiseKind::Philox, 2, 0, 1 << 10, &[1 << 10], on)
                .draw()
                .map_err(one_line)
        };
        max_diff(&draw(&Device::Cpu)?, &draw(&dev)?)?
    };
    bar.finish_and_clear();
    println!(
        "{:<17} {:>14}   ({} points, {} steps, VP, exact 8-Gaussian mixture; stochastic \
         samplers under Philox noise)",
        "sampler", "max |gpu-cpu|", a.n, a.steps
    );
    for (name, d) in &diffs {
        println!("{name:<17} {d:>14.3e}");
    }
    println!(
        "{:<17} {noise_diff:>14.3e}   (2^20 values of one draw)",
        "philox noise"
    );

    // 2. The fused step against a copy, on the device.
    let bar = spinner(format!("fused step and copy on 2^{} f32", a.elements_log2));
    let x = Tensor::ones(elements, DType::F32, &dev)?;
    let y = Tensor::ones(elements, DType::F32, &dev)?.affine(0.5, 0.0)?;
    let z = Tensor::ones(elements, DType::F32, &dev)?.affine(0.25, 0.0)?;
    // Coefficients that keep the values bounded over many iterations.
    let step_s = time_on(&dev, a.iters, || {
        fused::axpbypcz(&x, 0.5, &y, 0.3, &z, 0.2).map_err(one_line)
    })?;
    let copy_s = time_on(&dev, a.iters, || {
        let copy = y.copy()?;
        drop(copy);
        Ok(())
    })?;
    // The stochastic step on rows of up to 1024 values, a new Philox draw each time.
    let per = 1usize << a.elements_log2.min(10);
    let (xr, yr) = (
        x.reshape((elements / per, per))?,
        y.reshape((elements / per, per))?,
    );
    let mut next_noise = philox_draws(3, elements / per, per);
    let noisy_s = time_on(&dev, a.iters, || {
        let noise = next_noise();
        fused::combine_noisy(&xr, Some(0.5), &[(0.3, &yr)], (0.2, noise.fill)).map_err(one_line)
    })?;
    let drawn_s = time_on(&dev, a.iters, || {
        let xi = next_noise()
            .materialise(&dev, DType::F32)
            .map_err(one_line)?;
        fused::axpbypcz(&xr, 0.5, &yr, 0.3, &xi, 0.2).map_err(one_line)
    })?;
    bar.finish_and_clear();
    let bytes = (elements * 4) as f64;
    let (step_gbs, copy_gbs) = (4.0 * bytes / step_s / 1e9, 2.0 * bytes / copy_s / 1e9);
    let noisy_gbs = 3.0 * bytes / noisy_s / 1e9;
    println!(
        "fused step {:.3} ms = {step_gbs:.1} GB/s; device copy {:.3} ms = {copy_gbs:.1} GB/s; \
         step/copy bandwidth {:.0}%",
        step_s * 1e3,
        copy_s * 1e3,
        100.0 * step_gbs / copy_gbs
    );
    println!(
        "noisy step, Philox noise in the pass {:.3} ms = {noisy_gbs:.1} GB/s ({:.0}% of the \
         copy's); noise drawn first {:.3} ms ({:.2}x the pass)",
        noisy_s * 1e3,
        100.0 * noisy_gbs / copy_gbs,
        drawn_s * 1e3,
        drawn_s / noisy_s
    );

    // 3. A U-Net training step on the device and on the CPU.
    let training = if a.train_steps > 0 {
        let on_device = time_training("unet", 3, a.train_steps, &dev)?;
        let on_cpu = time_training("unet", 1, (a.train_steps / 3).max(1), &Device::Cpu)?;
        println!(
            "U-Net DSM step (batch 64, 16x16): {:.1} ms on {}, {:.1} ms on the CPU: {:.1}x",
            on_device.median * 1e3,
            a.device,
            on_cpu.median * 1e3,
            on_cpu.median / on_device.median
        );
        Some((on_device.median, on_cpu.median))
    } else {
        None
    };

    if let Some(path) = &a.json {
        let report = serde_json::json!({
            "device": a.device,
            "n": a.n,
            "steps": a.steps,
            "max_abs_diff": diffs.iter().map(|(s, d)| (s.to_string(), *d)).collect::<std::collections::BTreeMap<_, _>>(),
            "philox_noise_max_abs_diff": noise_diff,
            "elements": elements,
            "fused_step_s": step_s,
            "copy_s": copy_s,
            "fused_step_gb_s": step_gbs,
            "copy_gb_s": copy_gbs,
            "noisy_step_s": noisy_s,
            "noisy_step_gb_s": noisy_gbs,
            "noisy_step_drawn_first_s": drawn_s,
            "unet_step_device_s": training.map(|t| t.0),
            "unet_step_cpu_s": training.map(|t| t.1),
        });
        sbdm_runtime::io::write_file_atomic(path, serde_json::to_string_pretty(&report)?)
            .map_err(one_line)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
