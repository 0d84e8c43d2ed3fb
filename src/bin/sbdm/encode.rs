//! `sbdm encode`: carry data up to `x_T` along the probability-flow ODE with a
//! deterministic sampler run up the time grid ([`Sampler::encode`]: DDIM inversion, and the
//! same for every ODE solver), under an exact Gaussian-mixture score (`gmm:FILE.json`) or
//! a network trained by `sbdm train` (`ckpt:FILE.safetensors`).
//!
//! The grid is the one `sbdm sample` builds from the same `--sde`, `--steps` and `--grid`
//! ([`spaced_grid`]), so `sbdm sample --init x_T.npy` with the same flags decodes the
//! batch, to within the sampler's discretisation error (RK45: its tolerance); the command
//! that does so is printed last. Everything is checked ([`Sampler::validate_encode`],
//! the data's shape and values) before any work, and the output is written atomically,
//! nothing on error.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, Result};
use candle_core::DType;
use clap::Args;
use sbdm_runtime::io::{self, PendingFile};
use sbdm_runtime::sampling::{GridKind, Sampler};

use crate::common::{
    asks_help, check_steps, choice, grid_rows, one_line, print_help_listing, require, sampler_rows,
    sde_names, spaced_grid, spinner, DeviceFlag, Listing, Pick,
};
use crate::models::{check_samples, read_batch, shape_text, ModelSpec, Source};
use crate::sde_arg::{self, SdeFlags};

/// Arguments of `sbdm encode`.
#[derive(Args, Debug)]
pub struct EncodeArgs {
    /// The forward SDE (`help` lists them): a built-in, a discrete DDPM table, or a
    /// FILE.sde declaring one. With a checkpoint it may be left out: the SDE the checkpoint
    /// was trained for.
    #[arg(long, value_name = "NAME|FILE.sde")]
    pub sde: Option<String>,
    /// The score model: `gmm:FILE.json`, the exact score of a Gaussian mixture, or
    /// `ckpt:FILE.safetensors`, a network trained by `sbdm train` (its EMA weights).
    #[arg(long)]
    pub model: Option<String>,
    /// The data: a float32 FILE.npy of shape [N, D] (or [N, C, H, W] for an image model),
    /// taken as the state at the grid's last time t_min.
    #[arg(long, value_name = "FILE.npy")]
    pub data: Option<PathBuf>,
    /// The sampler run up the grid (`help` lists them): a deterministic one, the
    /// probability-flow ODE's solvers [default: ddim].
    #[arg(long, value_parser = choice(sampler_rows()))]
    pub sampler: Option<Pick<Sampler>>,
    /// Number of steps (for rk45: the initial step is (T - t_min)/steps).
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub steps: usize,
    /// The time grid (`help` lists them), as in `sbdm sample`; `auto` (the default) is
    /// karras where t is EDM's sigma and uniform otherwise.
    #[arg(long, value_parser = choice(grid_rows()))]
    pub grid: Option<Pick<Option<GridKind>>>,
    /// rk45: relative tolerance [default: 1e-5].
    #[arg(long, allow_negative_numbers = true)]
    pub rtol: Option<f64>,
    /// rk45: absolute tolerance [default: 1e-5].
    #[arg(long, allow_negative_numbers = true)]
    pub atol: Option<f64>,
    /// Where x_T goes: a float32 .npy of the data's shape.
    #[arg(long, value_name = "X_T.npy")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub device: DeviceFlag,
}

/// The sampler of `--sampler` (default ddim) with `--rtol`/`--atol` set.
fn sampler(args: &EncodeArgs) -> Result<Sampler> {
    let mut sampler = Pick::chosen(
        args.sampler.as_ref(),
        Some(Sampler::Ddim { eta: 0.0 }),
        "--sampler",
    )?;
    for (flag, key, value) in [("--rtol", "rtol", args.rtol), ("--atol", "atol", args.atol)] {
        if let Some(v) = value {
            sampler
                .set(key, &v.to_string())
                .map_err(|e| anyhow!("{flag}: {}", one_line(e)))?;
        }
    }
    Ok(sampler)
}

/// `arg` as one shell word: as is when it holds only characters no shell treats
/// specially, otherwise in single quotes.
fn shell_word(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,+@%".contains(c));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// `v` as the shorter of its plain and scientific forms (`1e-8`, `0.5`).
fn number(v: f64) -> String {
    let (plain, sci) = (v.to_string(), format!("{v:e}"));
    if sci.len() < plain.len() {
        sci
    } else {
        plain
    }
}

/// Where the printed decoding command writes: `OUT` with `_decoded` before `.npy`.
fn decoded_path(out: &Path) -> PathBuf {
    let stem = out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    out.with_file_name(format!("{stem}_decoded.npy"))
}

/// The `sbdm sample` command that decodes `out`: the same SDE, model, sampler, steps and
/// grid, starting from `--init out`.
fn decode_command(args: &EncodeArgs, sampler: Sampler, out: &Path) -> String {
    let mut words: Vec<String> = vec!["sbdm".into(), "sample".into()];
    let mut flag = |name: &str, value: String| {
        words.push(name.to_string());
        words.push(shell_word(&value));
    };
    if let Some(sde) = &args.sde {
        flag("--sde", sde.clone());
    }
    if let Some(model) = &args.model {
        flag("--model", model.clone());
    }
    flag("--sampler", sampler.name().to_string());
    flag("--steps", args.steps.to_string());
    if let Some(kind) = args.grid.as_ref().and_then(Pick::value) {
        flag("--grid", kind.map_or("auto", GridKind::name).to_string());
    }
    if let Some(v) = args.rtol {
        flag("--rtol", number(v));
    }
    if let Some(v) = args.atol {
        flag("--atol", number(v));
    }
    if args.device.name != "cpu" {
        flag("--device", args.device.name.clone());
    }
    flag("--init", out.display().to_string());
    flag("--out", decoded_path(out).display().to_string());
    words.join(" ")
}

/// Runs `sbdm encode`.
pub fn run(args: &EncodeArgs) -> Result<()> {
    let sde_listing = || sde_names();
    let sampler_listing =
        || -> Listing { sampler_rows().into_iter().map(|(_, n, d)| (n, d)).collect() };
    let grid_listing = || -> Listing { grid_rows().into_iter().map(|(_, n, d)| (n, d)).collect() };
    if print_help_listing(&[
        (args.sde.as_deref() == Some("help"), &sde_listing),
        (asks_help(&args.sampler), &sampler_listing),
        (asks_help(&args.grid), &grid_listing),
    ]) {
        return Ok(());
    }
    let spec = ModelSpec::parse(&require(&args.model, "--model")?)?;
    let sampler = sampler(args)?;
    let data = require(&args.data, "--data")?;
    let out_path = require(&args.out, "--out")?;
    // Claim the output first: a missing or unwritable directory fails before any work.
    let out = PendingFile::new(&out_path).map_err(one_line)?;
    let chosen = sde_arg::resolve(args.sde.as_deref(), &SdeFlags::default())?;
    let device = args.device.open()?;
    let (sde_name, sde, source) = spec.load_on(chosen, &device)?;
    let kind = args.grid.as_ref().and_then(Pick::value).flatten();
    let grid = spaced_grid(sde.as_ref(), kind, args.steps, None, None);
    check_steps(&sampler, args.steps)?;
    sampler.validate_encode(&sde, &grid).map_err(one_line)?;
    let (t_max, t_min) = grid.span(&sde).map_err(one_line)?;
    let shape = source.sample_shape();
    let x_0 = read_batch(&data, &shape, "the data")?.to_device(&device)?;
    let n = x_0.dim(0)?;
    check_samples(n, &source, 0, format_args!("--data {}", data.display()))?;

    let bar = spinner(format!(
        "encoding {n} x {} with {sampler}, {grid}",
        shape_text(&shape)
    ));
    let start = Instant::now();
    let result = match &source {
        Source::Mixture(m) => sampler.encode(&sde, &m.model(&sde), &x_0, &grid),
        Source::Net(net, _) => sampler.encode(&sde, net.as_ref(), &x_0, &grid),
    };
    let wall = start.elapsed();
    bar.finish_and_clear();
    let encoded = result.map_err(one_line)?;
    let x_t = encoded.x.to_dtype(DType::F32)?;
    io::write_npy_pending(&out, &x_t).map_err(one_line)?;
    out.commit().map_err(one_line)?;

    println!("{:<16} {} ({})", "SDE", sde_name, sde.name());
    println!("{:<16} {sampler}", "sampler");
    println!("{:<16} {grid}, t from {t_min} up to {t_max}", "steps");
    println!("{:<16} {}", "NFE", encoded.nfe);
    println!("{:<16} {n} x {}", "samples", shape_text(&shape));
    println!("{:<16} {:.3}", "wall time (s)", wall.as_secs_f64());
    println!("wrote {}", out_path.display());
    println!("decode it with:");
    println!("{}", decode_command(args, sampler, &out_path));
    Ok(())
}
