//! `sbdm bench train`: training throughput of the MLP and the U-Net, beside PyTorch's
//! (`bench/torch_train.py`) when a Python with torch is given.

use std::time::Instant;

use anyhow::{bail, Result};
use candle_core::Device;
use clap::Args;

use super::{allocator, check_count, run_python, stats, torch_skipped};

/// Arguments of `sbdm bench train`.
#[derive(Args, Debug)]
pub struct TrainBenchArgs {
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

/// One model's training-step timing.
pub(super) struct TrainTiming {
    model: &'static str,
    batch: usize,
    params: usize,
    pub(super) median: f64,
    min: f64,
}

/// Times `Trainer::step` (batch draw, perturbation, forward, loss, backward, clipping,
/// AdamW, EMA) of the benchmark models: the MLP 2→256→256→256→2 on 8 Gaussians at batch
/// 4096 and the default U-Net (16×16×1) on shapes at batch 64, on `dev` (each step
/// waits for the device to finish its work).
pub(super) fn time_training(
    name: &'static str,
    warmup: usize,
    steps: usize,
    dev: &Device,
) -> Result<TrainTiming> {
    use sbdm_runtime::data::{Dataset, Toy};
    use sbdm_runtime::model::net::{ModelConfig, NetModel};
    use sbdm_runtime::model::Trainable;
    use sbdm_runtime::nn::{MlpConfig, NetConfig, UNetConfig};
    use sbdm_runtime::train::{Dsm, TrainConfig, Trainer};

    let (net, data, batch) = match name {
        "mlp" => (
            NetConfig::Mlp(MlpConfig::default()),
            Dataset::Toy(Toy::EightGaussians),
            4096,
        ),
        _ => (
            NetConfig::Unet(UNetConfig::default()),
            Dataset::from_name("shapes16", 1024, 0, dev)?,
            64,
        ),
    };
    let cfg = ModelConfig {
        net,
        ..Default::default()
    };
    let model = NetModel::new(sbdm_runtime::sde::builtin::VpSde::default(), cfg, 0, dev)?;
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
        dev.synchronize()?;
        bar.inc(1);
    }
    let mut v = Vec::with_capacity(steps);
    for _ in 0..steps {
        let start = Instant::now();
        trainer.step()?;
        dev.synchronize()?;
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

/// Runs `sbdm bench train`.
pub fn train(a: &TrainBenchArgs) -> Result<()> {
    if a.steps == 0 {
        bail!("--steps must be at least 1");
    }
    // A timing per step.
    check_count("--steps", a.steps, 8)?;
    check_count("--warmup", a.warmup, 8)?;
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
        .map(|m| time_training(m, a.warmup, a.steps, &Device::Cpu))
        .collect::<Result<Vec<_>>>()?;
    let torch = match &a.torch {
        None => None,
        Some(python) => match run_torch(python, a, threads) {
            Ok(results) => Some(results),
            Err(e) => {
                torch_skipped(&e);
                None
            }
        },
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
    let args: Vec<String> = [
        "--threads",
        &threads.to_string(),
        "--model",
        &a.model,
        "--variant",
        "full",
        "--warmup",
        &a.warmup.to_string(),
        "--steps",
        &a.steps.to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let report = run_python(python, "torch_train.py", &args)?;
    println!(
        "pytorch {} with {} thread(s), load average {:.2} -> {:.2}",
        report["torch_version"].as_str().unwrap_or("?"),
        report["threads"],
        report["loadavg_1m_before"].as_f64().unwrap_or(f64::NAN),
        report["loadavg_1m_after"].as_f64().unwrap_or(f64::NAN)
    );
    Ok(report["results"].as_array().cloned().unwrap_or_default())
}
