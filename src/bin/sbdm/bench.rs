//! `sbdm bench`: measurements behind docs/benchmarks.md.
//!
//! `sbdm bench step` times one sampler step's tensor update `x ← c0·x + c1·y + c2·z`
//! three ways in one run: the fused in-place op ([`sbdm_runtime::sampling::fused::axpbypcz`]),
//! the same update as a chain of candle ops (what a sampler without fused steps does,
//! allocating a fresh tensor per op), and a plain copy of the buffer (the memory
//! bandwidth the fused op is judged against).

use std::hint::black_box;
use std::time::Instant;

use anyhow::{bail, Result};
use candle_core::{Device, Tensor};
use clap::{Args, Subcommand};
use sbdm_runtime::sampling::fused;

/// Arguments of `sbdm bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    what: BenchCommand,
}

#[derive(Subcommand, Debug)]
enum BenchCommand {
    /// The fused sampler step vs a chain of candle ops vs a plain copy.
    Step(StepArgs),
    /// Training throughput of the MLP and the U-Net, beside PyTorch's (bench/torch_train.py).
    Train(TrainBenchArgs),
}

/// Arguments of `sbdm bench train`.
#[derive(Args, Debug)]
struct TrainBenchArgs {
    /// Untimed warm-up steps per model.
    #[arg(long, default_value_t = 5)]
    warmup: usize,
    /// Timed steps per model (the median is reported).
    #[arg(long, default_value_t = 30)]
    steps: usize,
    /// Which models: mlp, unet or all.
    #[arg(long, default_value = "all")]
    model: String,
    /// A Python with PyTorch: runs bench/torch_train.py with the same settings right
    /// after our steps and prints the ratios (see bench/README.md).
    #[arg(long, value_name = "PYTHON")]
    torch: Option<std::path::PathBuf>,
}

/// Arguments of `sbdm bench step`.
#[derive(Args, Debug)]
struct StepArgs {
    /// Number of f32 elements per buffer (2^24 = 64 MiB).
    #[arg(long, default_value_t = 1 << 24)]
    elements: usize,
    /// Timed iterations of each variant; the median is reported.
    #[arg(long, default_value_t = 10)]
    iters: usize,
}

/// Runs `sbdm bench`.
pub fn run(args: &BenchArgs) -> Result<()> {
    match &args.what {
        BenchCommand::Step(a) => step(a),
        BenchCommand::Train(a) => train(a),
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

fn buffer(n: usize, phase: usize) -> Vec<f32> {
    (0..n).map(|i| ((i + phase) % 1000) as f32 * 1e-3).collect()
}

/// The allocator this binary was built with.
pub fn allocator() -> &'static str {
    if cfg!(feature = "mimalloc") {
        "mimalloc"
    } else {
        "system (glibc)"
    }
}

fn step(a: &StepArgs) -> Result<()> {
    let (n, iters) = (a.elements, a.iters);
    if n == 0 || iters == 0 {
        bail!("--elements and --iters must be at least 1");
    }
    let dev = Device::Cpu;
    let (c0, c1, c2) = (0.5, 0.3, 0.2); // a convex combination: values stay bounded
    let x = Tensor::from_vec(buffer(n, 0), n, &dev)?;
    let y = Tensor::from_vec(buffer(n, 1), n, &dev)?;
    let z = Tensor::from_vec(buffer(n, 2), n, &dev)?;

    let fused_t = time(iters, || {
        fused::axpbypcz(&x, c0, &y, c1, &z, c2)?;
        Ok(())
    })?;
    // As a sampler loop without fused steps: each step replaces x by a fresh tensor.
    let mut xc = x.copy()?;
    let chain_t = time(iters, || {
        xc = fused::axpbypcz_unfused(&xc, c0, &y, c1, &z, c2)?;
        Ok(())
    })?;
    let src = buffer(n, 3);
    let mut dst = vec![0f32; n];
    let copy_t = time(iters, || {
        dst.copy_from_slice(black_box(&src));
        black_box(&mut dst);
        Ok(())
    })?;
    let tcopy_t = time(iters, || {
        black_box(x.copy()?);
        Ok(())
    })?;

    let mb = |buffers: usize| (buffers * n * 4) as f64;
    let gbs = |bytes: f64, s: f64| bytes / s / 1e9;
    let rows = [
        (
            "fused axpbypcz (in place)",
            fused_t,
            mb(4),
            "3 read + 1 write",
        ),
        (
            "chain of candle ops",
            chain_t,
            mb(4),
            "same 4 buffers (logical)",
        ),
        ("copy (into reused Vec)", copy_t, mb(2), "1 read + 1 write"),
        ("Tensor::copy (fresh)", tcopy_t, mb(2), "1 read + 1 write"),
    ];
    println!(
        "x <- {c0}x + {c1}y + {c2}z on {n} f32 ({:.0} MiB per buffer), median of {iters}",
        mb(1) / (1024.0 * 1024.0)
    );
    println!(
        "allocator: {}; threads: 1 (the fused op, candle's elementwise CPU ops and the copy are \
         sequential loops; candle's pool, used for matmul, has {})",
        allocator(),
        candle_core::utils::get_num_threads()
    );
    if cfg!(debug_assertions) {
        println!("warning: debug build; build with --release for meaningful numbers");
    }
    println!(
        "{:<28} {:>10} {:>10} {:>8}   bytes counted",
        "variant", "median ms", "min ms", "GB/s"
    );
    for (name, (med, min), bytes, note) in rows {
        println!(
            "{name:<28} {:>10.2} {:>10.2} {:>8.2}   {note}",
            med * 1e3,
            min * 1e3,
            gbs(bytes, med)
        );
    }
    let speedup = chain_t.0 / fused_t.0;
    let share = gbs(mb(4), fused_t.0) / gbs(mb(2), copy_t.0);
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    println!(
        "fused vs chain: {speedup:.2}x faster (target >= 3x: {})",
        verdict(speedup >= 3.0)
    );
    println!(
        "fused bandwidth: {:.0}% of the copy's (target >= 70%: {})",
        share * 100.0,
        verdict(share >= 0.7)
    );
    Ok(())
}

/// One model's training-step timing.
struct TrainTiming {
    model: &'static str,
    batch: usize,
    params: usize,
    median: f64,
    min: f64,
}

/// Times `Trainer::step` (batch draw, perturbation, forward, loss, backward, clipping,
/// AdamW, EMA) of the benchmark models: the MLP 2→256→256→256→2 on 8 Gaussians at batch
/// 4096 and the default U-Net (16×16×1) on shapes at batch 64.
fn time_training(name: &'static str, warmup: usize, steps: usize) -> Result<TrainTiming> {
    use sbdm_runtime::data::{Dataset, Toy};
    use sbdm_runtime::model::net::{ModelConfig, NetModel};
    use sbdm_runtime::model::Trainable;
    use sbdm_runtime::nn::{MlpConfig, NetConfig, UNetConfig};
    use sbdm_runtime::train::{Dsm, TrainConfig, Trainer};

    let dev = Device::Cpu;
    let (net, data, batch) = match name {
        "mlp" => (
            NetConfig::Mlp(MlpConfig::default()),
            Dataset::Toy(Toy::EightGaussians),
            4096,
        ),
        _ => (
            NetConfig::Unet(UNetConfig::default()),
            Dataset::from_name("shapes16", 1024, 0, &dev)?,
            64,
        ),
    };
    let cfg = ModelConfig {
        net,
        ..Default::default()
    };
    let model = NetModel::new(sbdm_runtime::sde::builtin::VpSde::default(), cfg, 0, &dev)?;
    let params = model
        .weights()
        .vars()
        .iter()
        .map(|(_, v)| v.elem_count())
        .sum();
    let train = TrainConfig {
        batch,
        steps: (warmup + steps) as u64,
        ..Default::default()
    };
    let mut trainer = Trainer::new(Dsm::new(model), data, name, train)?;
    let bar = indicatif::ProgressBar::new((warmup + steps) as u64);
    bar.set_message(format!("{name} steps"));
    for _ in 0..warmup {
        trainer.step()?;
        bar.inc(1);
    }
    let mut v = Vec::with_capacity(steps);
    for _ in 0..steps {
        let start = Instant::now();
        trainer.step()?;
        v.push(start.elapsed().as_secs_f64());
        bar.inc(1);
    }
    bar.finish_and_clear();
    let (median, min) = stats(v);
    Ok(TrainTiming {
        model: name,
        batch,
        params,
        median,
        min,
    })
}

fn train(a: &TrainBenchArgs) -> Result<()> {
    if a.steps == 0 {
        bail!("--steps must be at least 1");
    }
    let models: Vec<&'static str> = match a.model.as_str() {
        "mlp" => vec!["mlp"],
        "unet" => vec!["unet"],
        "all" => vec!["mlp", "unet"],
        other => bail!("unknown model `{other}`; valid: mlp, unet, all"),
    };
    // PyTorch gets every core; ours split each batch in `TrainConfig::chunks` parts on
    // threads, with candle's matmuls on `candle threads`.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "training step (Trainer::step: batch, perturbation, forward, loss, backward, clip, \
         AdamW, EMA); allocator: {}; cores: {threads}; batch parts: {}; candle matmul \
         threads: {}; {} warm-up + {} timed steps",
        allocator(),
        sbdm_runtime::train::TrainConfig::default().chunks,
        candle_core::utils::get_num_threads(),
        a.warmup,
        a.steps
    );
    let ours = models
        .iter()
        .map(|m| time_training(m, a.warmup, a.steps))
        .collect::<Result<Vec<_>>>()?;
    let torch = match &a.torch {
        None => None,
        Some(python) => Some(run_torch(python, a, threads)?),
    };
    println!(
        "{:<6} {:>6} {:>9} {:>11} {:>9} {:>12} {:>12}",
        "model", "batch", "params", "median ms", "steps/s", "torch ms", "ours/torch"
    );
    for t in &ours {
        let theirs = torch.as_ref().and_then(|v| {
            v.iter()
                .find(|r| r["model"] == t.model && r["variant"] == "full")
                .and_then(|r| r["median_step_s"].as_f64())
        });
        println!(
            "{:<6} {:>6} {:>9} {:>11.2} {:>9.2} {:>12} {:>12}",
            t.model,
            t.batch,
            t.params,
            t.median * 1e3,
            1.0 / t.median,
            theirs.map_or("-".into(), |s| format!("{:.2}", s * 1e3)),
            theirs.map_or("-".into(), |s| format!("{:.2}x", t.median / s)),
        );
        println!("{:<6} (min {:.2} ms)", "", t.min * 1e3);
    }
    Ok(())
}

/// Runs bench/torch_train.py (full steps: clip + AdamW + EMA) and returns its results.
fn run_torch(
    python: &std::path::Path,
    a: &TrainBenchArgs,
    threads: usize,
) -> Result<Vec<serde_json::Value>> {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/torch_train.py");
    let out = std::process::Command::new(python)
        .arg(&script)
        .args(["--threads", &threads.to_string()])
        .args(["--model", &a.model, "--variant", "full"])
        .args([
            "--warmup",
            &a.warmup.to_string(),
            "--steps",
            &a.steps.to_string(),
        ])
        .output()
        .map_err(|e| anyhow::anyhow!("running {}: {e}", python.display()))?;
    if !out.status.success() {
        bail!(
            "{} {} failed: {}",
            python.display(),
            script.display(),
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
    }
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| anyhow::anyhow!("reading the PyTorch report: {e}"))?;
    println!(
        "pytorch {} with {} thread(s), load average {:.2} -> {:.2}",
        report["torch_version"].as_str().unwrap_or("?"),
        report["threads"],
        report["loadavg_1m_before"].as_f64().unwrap_or(f64::NAN),
        report["loadavg_1m_after"].as_f64().unwrap_or(f64::NAN)
    );
    Ok(report["results"].as_array().cloned().unwrap_or_default())
}
