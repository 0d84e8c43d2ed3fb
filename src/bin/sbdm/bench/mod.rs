//! `sbdm bench`: the measurements behind docs/benchmarks.md, each a subcommand; the
//! PyTorch side of a comparison is a script in `bench/` run by the Python given with
//! `--torch` (without one, or without torch in it, only sbdm's side is measured).

use std::path::Path;
use std::time::Instant;

use anyhow::{anyhow, bail, Result};
use clap::{Args, Subcommand};

mod device;
mod sample;
mod step;
mod train;

/// Arguments of `sbdm bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    what: BenchCommand,
}

#[derive(Subcommand, Debug)]
enum BenchCommand {
    /// The fused sampler step vs a chain of candle ops vs a plain copy.
    Step(step::StepArgs),
    /// Training throughput of the MLP and the U-Net, beside PyTorch's (bench/torch_train.py).
    Train(train::TrainBenchArgs),
    /// DDIM sampling speed, exact mixture and MLP, beside PyTorch's (bench/torch_sample.py),
    /// its thread scaling, peak memory and the operation-count limit.
    Sample(sample::SampleBenchArgs),
    /// The device check of a `cuda` build (scripts/device-check.sh): deterministic samplers
    /// on the GPU against the CPU, the fused step's bandwidth against a device copy, a
    /// U-Net training step on each.
    Device(device::DeviceBenchArgs),
}

/// Runs `sbdm bench`.
pub fn run(args: &BenchArgs) -> Result<()> {
    match &args.what {
        BenchCommand::Step(a) => step::step(a),
        BenchCommand::Train(a) => train::train(a),
        BenchCommand::Sample(a) => sample::sample(a),
        BenchCommand::Device(a) => device::device(a),
    }
}

/// Refuses a count flag whose buffers (`bytes_each` per unit) would not fit in the
/// memory budget ([`sbdm_runtime::limits`]).
fn check_count(flag: &str, value: usize, bytes_each: u128) -> Result<()> {
    sbdm_runtime::limits::check(
        format_args!("{flag} {value}"),
        (value as u128).saturating_mul(bytes_each),
    )
    .map_err(crate::common::one_line)
}

/// A new Philox draw of `rows` rows of `per` values at each call (draws 1, 2, … of
/// streams `0..rows` under `seed`): the noise of the benches' stochastic step.
fn philox_draws(
    seed: u64,
    rows: usize,
    per: usize,
) -> impl FnMut() -> sbdm_runtime::sampling::GeneratedNoise {
    let mut draw = 0u32;
    move || {
        draw += 1;
        sbdm_runtime::sampling::GeneratedNoise {
            fill: sbdm_runtime::sampling::philox::PhiloxFill {
                seed,
                first_stream: 0,
                draw,
                per,
            },
            dims: vec![rows, per],
        }
    }
}

/// Median and minimum of timings in seconds.
fn stats(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    };
    (median, v[0])
}

/// Times `f` `iters` times after one untimed warm-up call.
fn time(iters: usize, mut f: impl FnMut() -> Result<()>) -> Result<(f64, f64)> {
    f()?;
    let mut v = Vec::with_capacity(iters);
    for _ in 0..iters {
        let start = Instant::now();
        f()?;
        v.push(start.elapsed().as_secs_f64());
    }
    Ok(stats(v))
}

/// The allocator this binary was built with.
pub fn allocator() -> &'static str {
    if cfg!(feature = "mimalloc") {
        "mimalloc"
    } else {
        "system (glibc)"
    }
}

/// Runs `PYTHON bench/SCRIPT ARGS` and returns the JSON report it prints on stdout. Errors
/// are one line: a missing interpreter, a failed script (its last stderr line, e.g. no
/// torch module), an unreadable report.
pub fn run_python(python: &Path, script: &str, args: &[String]) -> Result<serde_json::Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("bench")
        .join(script);
    if !script.exists() {
        bail!(
            "{} is missing (it ships with the sbdm sources)",
            script.display()
        );
    }
    let out = std::process::Command::new(python)
        .arg(&script)
        .args(args)
        .output()
        .map_err(|e| anyhow!("cannot run {}: {e}", python.display()))?;
    if !out.status.success() {
        bail!(
            "{} {} failed: {}",
            python.display(),
            script.display(),
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .rfind(|l| !l.trim().is_empty())
                .unwrap_or("(no message)")
        );
    }
    serde_json::from_slice(&out.stdout)
        .map_err(|e| anyhow!("reading the report of {}: {e}", script.display()))
}

/// Prints the line saying that the PyTorch side was not measured, and why.
pub fn torch_skipped(e: &anyhow::Error) {
    println!("pytorch side not measured: {e}");
}
