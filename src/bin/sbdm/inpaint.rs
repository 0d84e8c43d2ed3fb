//! `sbdm inpaint`: fill in the unknown part of a batch with any sampler, for any SDE: the
//! known part (mask 1) replaced after every step by a draw of the derived kernel
//! `q(x_t | x_0)`, optionally with RePaint's resampling (`--resample R`), and set exactly
//! at the end. Everything is checked before anything is sampled or written.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{anyhow, Result};
use candle_core::{DType, Device};
use clap::Args;
use sbdm_runtime::guide::Inpainting;
use sbdm_runtime::io;
use sbdm_runtime::sampling::{Noise, Sampler, TimeGrid};

use crate::common::{
    asks_help, check_steps, choice, draw_side_by_side, one_line, print_help_listing, require,
    sampler_rows, sde_names, spinner, DeviceFlag, Listing, NoiseFlag, Outputs, Pick,
};
use crate::models::{check_samples, read_batch, shape_text, ModelSpec, Source};

/// Arguments of `sbdm inpaint`.
#[derive(Args, Debug)]
pub struct InpaintArgs {
    /// The forward SDE (`help` lists them): a built-in, a discrete table, or a FILE.sde
    /// declaring one; with a checkpoint, the one it was trained for by default.
    #[arg(long, value_name = "NAME|FILE.sde")]
    pub sde: Option<String>,
    /// The score model: gmm:FILE.json or ckpt:FILE.safetensors.
    #[arg(long)]
    pub model: Option<String>,
    /// The batch to complete, a float32 .npy of the model's sample shape; its values
    /// where the mask is 0 are ignored.
    #[arg(long, value_name = "IMAGE.npy")]
    pub image: Option<PathBuf>,
    /// The mask, a .npy of 0 (to sample) and 1 (known): one of a sample's shape for
    /// every sample, or one per sample.
    #[arg(long, value_name = "MASK.npy")]
    pub mask: Option<PathBuf>,
    /// RePaint's resampling: take every step R times, jumping back by the forward kernel
    /// in between (1: plain replacement; needs a single-step sampler).
    #[arg(long, value_name = "R", default_value_t = 1)]
    pub resample: usize,
    /// The sampler (`help` lists them) [default: ancestral].
    #[arg(long, value_parser = choice(sampler_rows()))]
    pub sampler: Option<Pick<Sampler>>,
    /// Steps over the SDE's time range, uniform in t.
    #[arg(long, default_value_t = 100)]
    pub steps: usize,
    /// Seed of the prior draw and of the noise.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub noise: NoiseFlag,
    /// Where to write the completed batch: float32 .npy.
    #[arg(long, value_name = "OUT.npy")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub device: DeviceFlag,
    /// Also write a PNG: masked input | completion pairs for images, a scatter for vectors.
    #[arg(long, value_name = "GRID.png")]
    pub plot: Option<PathBuf>,
}

/// Runs `sbdm inpaint`.
pub fn run(args: &InpaintArgs) -> Result<()> {
    let samplers = || -> Listing { sampler_rows().into_iter().map(|(_, n, d)| (n, d)).collect() };
    if print_help_listing(&[
        (asks_help(&args.sampler), &samplers),
        (args.sde.as_deref() == Some("help"), &sde_names),
        (args.noise.asks_help(), &NoiseFlag::listing),
    ]) {
        return Ok(());
    }
    let sampler = Pick::chosen(args.sampler.as_ref(), Some(Sampler::Ancestral), "--sampler")?;
    let spec = ModelSpec::parse(&require(&args.model, "--model")?)?;
    let device = args.device.open()?;
    let (sde_name, sde, source) = spec.load_on(
        crate::sde_arg::resolve(args.sde.as_deref(), &crate::sde_arg::SdeFlags::default())?,
        &device,
    )?;
    let shape = source.sample_shape();
    let image_path = require(&args.image, "--image")?;
    let image = read_batch(&image_path, &shape, "the image")?;
    check_samples(
        image.dim(0)?,
        &source,
        0,
        format_args!("--image {}", image_path.display()),
    )?;
    let mask_path = require(&args.mask, "--mask")?;
    let mask = io::read_npy_any(&mask_path)
        .map_err(one_line)?
        .to_dtype(DType::F32)?;
    // The job on the device; `image` and `mask` stay on the host for the plot.
    let job = Inpainting::new(&image.to_device(&device)?, &mask.to_device(&device)?)
        .map_err(|e| anyhow!("{}: {}", mask_path.display(), one_line(e)))?
        .with_resampling(args.resample);
    sampler
        .validate_resampling(args.resample)
        .map_err(one_line)?;
    check_steps(&sampler, args.steps)?;
    let grid = TimeGrid::uniform(args.steps);
    sampler.validate(&sde, &grid).map_err(one_line)?;
    let out_path = require(&args.out, "--out")?;
    let outputs = Outputs::claim(&out_path, args.plot.as_deref())?;

    let n = image.dim(0)?;
    let bar = spinner(format!(
        "inpainting {n} x {} with {sampler}, {} steps, resampling {}",
        shape_text(&shape),
        args.steps,
        args.resample
    ));
    let start = Instant::now();
    let mut noise = Noise::with_kind(args.noise.kind(), args.seed, 0, n, &shape, &device);
    let x_t = noise.draw()?.affine(sde.prior_std(), 0.0)?;
    let result = match &source {
        Source::Mixture(m) => job.sample(&sampler, &sde, &m.model(&sde), &x_t, &grid, &mut noise),
        Source::Net(net, _) => job.sample(&sampler, &sde, net.as_ref(), &x_t, &grid, &mut noise),
    };
    let wall = start.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let sampled = result.map_err(one_line)?;
    let x = sampled.x.to_device(&Device::Cpu)?.to_dtype(DType::F32)?;

    // What the model was given: the known part, the rest at -1 (black for images).
    let full_mask = if mask.dims() == image.dims() {
        mask.clone()
    } else {
        mask.unsqueeze(0)?
            .broadcast_as(image.shape())?
            .contiguous()?
    };
    let given = ((&image * &full_mask)? + full_mask.affine(1.0, -1.0)?)?;
    let title = format!("inpainting with {sampler} on {sde_name}");
    outputs.write(&x, |png| {
        draw_side_by_side(png, &title, &[("given", &given), ("completions", &x)])
    })?;
    println!(
        "inpainting with {sampler} on {sde_name} ({}), {} steps, resampling {}, seed {}",
        sde.name(),
        args.steps,
        args.resample,
        args.seed
    );
    println!(
        "{:<24} {:>14}",
        "samples",
        format!("{n} x {}", shape_text(&shape))
    );
    println!("{:<24} {:>14}", "NFE", sampled.nfe);
    println!("{:<24} {:>14.3}", "wall time (s)", wall);
    println!("wrote {}", out_path.display());
    if let Some(path) = &args.plot {
        println!("wrote {}", path.display());
    }
    Ok(())
}
