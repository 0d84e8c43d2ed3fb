//! `sbdm bench sample`: DDIM sampling over many points, measured side by side in one run:
//!
//! - the whole `sbdm sample` process with the exact mixture score (start-up, sampling,
//!   writing the `.npy`, the default report), as a user runs it;
//! - the sampling loop alone, exact mixture and the quickstart's MLP, on 1 thread and on
//!   all cores (the scaling);
//! - the operation-count limit of the exact-mixture run: its exponentials and arithmetic
//!   at the rate this machine runs vectorised `exp` and multiply-add loops;
//! - peak memory against the bytes of the state;
//! - PyTorch's plain DDIM loops on the same problems (`bench/torch_sample.py`), with
//!   `--torch PYTHON`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{anyhow, bail, Result};
use candle_core::Device;
use clap::Args;
use sbdm_runtime::data::eight_gaussians;
use sbdm_runtime::model::mixture::GaussianMixture;
use sbdm_runtime::model::net::{ModelConfig, NetModel};
use sbdm_runtime::model::ScoreModel;
use sbdm_runtime::sampling::{GridKind, Noise, Sampler, TimeGrid};
use sbdm_runtime::sde::builtin::VpSde;
use sbdm_runtime::{parallel, simd, GaussianKernel};

use super::{allocator, check_count, run_python, stats, torch_skipped};
use crate::common::spinner;

/// Points of the second memory floor: twice the oracle's rows per thread (2048), so
/// every core's thread runs, with a batch of 32 KiB.
const THREADS_FLOOR_N: usize = 4096;

/// Arguments of `sbdm bench sample`.
#[derive(Args, Debug)]
pub struct SampleBenchArgs {
    /// Points sampled with the exact mixture (8 Gaussians on a ring, 2-D).
    #[arg(long, default_value_t = 100_000)]
    n: usize,
    /// DDIM steps (uniform grid on VP, t from 1 to 0.001).
    #[arg(long, default_value_t = 50)]
    steps: usize,
    /// Points sampled with the MLP (each step is ~30 GFLOP of matmuls at 100 000).
    #[arg(long, default_value_t = 100_000)]
    net_n: usize,
    /// Timed runs of each exact-mixture measurement (the median is reported; the MLP's
    /// are timed once).
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Skip the MLP.
    #[arg(long)]
    no_net: bool,
    /// A Python with PyTorch: runs bench/torch_sample.py on the same problems right after
    /// ours and prints the ratios (see bench/README.md).
    #[arg(long, value_name = "PYTHON")]
    torch: Option<PathBuf>,
    /// Also write the figures as JSON.
    #[arg(long, value_name = "FILE.json")]
    json: Option<PathBuf>,
}

/// Seconds of one DDIM run of `model` over `n` points on `threads` threads.
fn ddim_seconds(model: &dyn ScoreModel, n: usize, steps: usize, threads: usize) -> Result<f64> {
    let sde = VpSde::default();
    let dev = Device::Cpu;
    parallel::set_threads(Some(threads));
    let mut noise = Noise::new(0, 0, n, &[2], &dev);
    let x_t = noise.draw()?.affine(sde.std(1.0), 0.0)?;
    let grid = TimeGrid::new(GridKind::Uniform, steps);
    let start = Instant::now();
    let out = Sampler::Ddim { eta: 0.0 }.sample(&sde, &model, &x_t, &grid, &mut noise);
    let seconds = start.elapsed().as_secs_f64();
    parallel::set_threads(None);
    out?;
    Ok(seconds)
}

/// One `sbdm sample` process: its wall time from start to exit, the sampling time and
/// peak RSS (MiB, sampling and whole run) it reports.
struct ProcessRun {
    wall: f64,
    sampling: f64,
    peak_sampling_mib: f64,
    peak_total_mib: f64,
}

fn run_sample_process(mixture: &Path, out: &Path, n: usize, steps: usize) -> Result<ProcessRun> {
    let exe = std::env::current_exe()?;
    let start = Instant::now();
    let run = Command::new(&exe)
        .args(["sample", "--sde", "vp", "--model"])
        .arg(format!("gmm:{}", mixture.display()))
        .args(["--sampler", "ddim", "--steps", &steps.to_string()])
        .args(["--n", &n.to_string(), "--out"])
        .arg(out)
        .output()?;
    let wall = start.elapsed().as_secs_f64();
    if !run.status.success() {
        bail!(
            "sbdm sample failed: {}",
            String::from_utf8_lossy(&run.stderr).trim()
        );
    }
    let stdout = String::from_utf8_lossy(&run.stdout);
    let numbers = |label: &str| -> Vec<f64> {
        stdout
            .lines()
            .find(|l| l.starts_with(label))
            .map(|l| {
                l[label.len()..]
                    .split_whitespace()
                    .filter_map(|w| w.parse::<f64>().ok())
                    .collect()
            })
            .unwrap_or_default()
    };
    let sampling = numbers("wall time (s)");
    let rss = numbers("peak RSS sampling (MiB)");
    Ok(ProcessRun {
        wall,
        sampling: sampling.first().copied().unwrap_or(f64::NAN),
        peak_sampling_mib: rss.first().copied().unwrap_or(f64::NAN),
        peak_total_mib: rss.get(1).copied().unwrap_or(f64::NAN),
    })
}

/// Seconds per element of a vectorised `exp` loop and of one multiply or add in a
/// vectorised multiply-add loop, on one thread, over a buffer that stays in L1.
fn machine_rates() -> (f64, f64) {
    let input: Vec<f64> = (0..2048).map(|i| -(i as f64) * 0.01).collect();
    let mut out = vec![0.0; input.len()];
    let passes = 4000;
    let time_loop = |out: &mut [f64], kernel: &dyn Fn(&mut [f64])| {
        kernel(out);
        let start = Instant::now();
        for _ in 0..passes {
            kernel(std::hint::black_box(&mut *out));
        }
        start.elapsed().as_secs_f64() / (passes * input.len()) as f64
    };
    let exp_s = time_loop(&mut out, &|out| {
        simd::vectorised(
            #[inline(always)]
            || {
                for (o, x) in out.iter_mut().zip(&input) {
                    *o = simd::exp(*x);
                }
            },
        )
    });
    let mul_add_s = time_loop(&mut out, &|out| {
        simd::vectorised(
            #[inline(always)]
            || {
                for (o, x) in out.iter_mut().zip(&input) {
                    *o = *o * 0.999 + x;
                }
            },
        )
    });
    (exp_s, mul_add_s / 2.0)
}

/// PyTorch's DDIM loops on the same problems (`bench/torch_sample.py`): the exact mixture
/// over `--n` points and, unless `--no-net`, the MLP over `--net-n`; one report with both
/// results.
fn torch_report(
    python: &Path,
    mixture: &Path,
    a: &SampleBenchArgs,
    cores: usize,
) -> Result<serde_json::Value> {
    let run = |what: &str, n: usize| {
        let args = [
            "--mixture".to_string(),
            mixture.display().to_string(),
            "--n".into(),
            n.to_string(),
            "--steps".into(),
            a.steps.to_string(),
            "--threads".into(),
            cores.to_string(),
            "--what".into(),
            what.into(),
        ];
        run_python(python, "torch_sample.py", &args)
    };
    let mut report = run("oracle", a.n)?;
    if !a.no_net {
        let net = run("mlp", a.net_n)?;
        let mut results = report["results"].as_array().cloned().unwrap_or_default();
        results.extend(net["results"].as_array().cloned().unwrap_or_default());
        report["results"] = serde_json::Value::Array(results);
    }
    Ok(report)
}

/// Runs `sbdm bench sample`.
pub fn sample(a: &SampleBenchArgs) -> Result<()> {
    if a.n == 0 || a.steps == 0 || a.repeat == 0 || a.net_n == 0 {
        bail!("--n, --net-n, --steps and --repeat must be at least 1");
    }
    // 2-D samples: 16 f32 copies each, and for the MLP its activations; the grid; timings.
    check_count("--n", a.n, 128)?;
    check_count("--net-n", a.net_n, 16 << 10)?;
    check_count(
        "--steps",
        a.steps,
        sbdm_runtime::limits::GRID_BYTES_PER_STEP,
    )?;
    check_count("--repeat", a.repeat, 64)?;
    let cores = parallel::threads();
    let mixture = eight_gaussians();
    let (d, k) = (mixture.dim(), mixture.len());
    let dir = std::env::temp_dir().join(format!("sbdm-bench-sample-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = measure(a, &mixture, &dir, cores, d, k);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn measure(
    a: &SampleBenchArgs,
    mixture: &GaussianMixture,
    dir: &Path,
    cores: usize,
    d: usize,
    k: usize,
) -> Result<()> {
    let mixture_path = dir.join("8gaussians.json");
    let json = serde_json::json!({
        "weights": mixture.weights(),
        "means": mixture.means(),
        "stds": mixture.stds(),
    });
    std::fs::write(&mixture_path, json.to_string())?;
    let npy = dir.join("x.npy");
    println!(
        "DDIM-{} on VP (uniform grid, t from 1 to 0.001): exact 8-Gaussian mixture over {} \
         points, quickstart MLP over {}; {} cores; allocator {}; median of {}",
        a.steps,
        a.n,
        a.net_n,
        cores,
        allocator(),
        a.repeat
    );
    if cfg!(debug_assertions) {
        println!("warning: debug build; build with --release for meaningful numbers");
    }

    let bar = spinner("the whole `sbdm sample` process".into());
    run_sample_process(&mixture_path, &npy, a.n, a.steps)?;
    let runs = (0..a.repeat)
        .map(|_| run_sample_process(&mixture_path, &npy, a.n, a.steps))
        .collect::<Result<Vec<_>>>()?;
    let floor = run_sample_process(&mixture_path, &npy, 1, 1)?;
    // The smallest run the oracle splits over every core: its threads (and the
    // allocator's heaps for them) without the batch.
    let threads_floor = run_sample_process(&mixture_path, &npy, THREADS_FLOOR_N, 1)?;
    let process = stats(runs.iter().map(|r| r.wall).collect()).0;
    let process_sampling = stats(runs.iter().map(|r| r.sampling).collect()).0;
    let peak = runs.iter().map(|r| r.peak_total_mib).fold(0.0, f64::max);
    let peak_sampling = runs.iter().map(|r| r.peak_sampling_mib).fold(0.0, f64::max);

    bar.set_message("exact mixture, sampling loop");
    let sde = VpSde::default();
    let oracle = mixture.model(&sde);
    // 1 thread and all threads interleaved, so that drifts of the machine's speed (a
    // shared VM's) fall on both alike.
    ddim_seconds(&oracle, a.n, a.steps, cores)?;
    let (mut one, mut all) = (Vec::new(), Vec::new());
    for _ in 0..a.repeat {
        one.push(ddim_seconds(&oracle, a.n, a.steps, 1)?);
        all.push(ddim_seconds(&oracle, a.n, a.steps, cores)?);
    }
    let (oracle_1, oracle_all) = (stats(one).0, stats(all).0);

    bar.set_message("operation-count limit");
    let (exp_s, flop_s) = machine_rates();
    // Per point, component and step: 1 exp and 7D + 6 other operations (squared
    // distance 3D, log-term 2, running max 1, exp argument 1, sum 1, posterior 1,
    // posterior-weighted score 4D).
    let units = (a.n * k * a.steps) as f64;
    let flops_per = (7 * d + 6) as f64;
    let limit = units * (exp_s + flops_per * flop_s) / cores as f64;

    let (net_1, net_all) = if a.no_net {
        (None, None)
    } else {
        bar.set_message("quickstart MLP, sampling loop");
        let net = NetModel::new(
            VpSde::default(),
            ModelConfig::toy_mlp(mixture.second_moment()),
            0,
            &Device::Cpu,
        )?;
        ddim_seconds(&net, a.net_n.min(1000), 2, cores)?;
        let one = ddim_seconds(&net, a.net_n, a.steps, 1)?;
        let all = ddim_seconds(&net, a.net_n, a.steps, cores)?;
        (Some(one), Some(all))
    };
    bar.finish_and_clear();

    let torch = match &a.torch {
        None => None,
        Some(python) => {
            let bar = spinner("PyTorch".into());
            let report = torch_report(python, &mixture_path, a, cores);
            bar.finish_and_clear();
            match report {
                Ok(r) => Some(r),
                Err(e) => {
                    torch_skipped(&e);
                    None
                }
            }
        }
    };
    let torch_wall = |what: &str| -> Option<f64> {
        torch.as_ref().and_then(|r| {
            r["results"]
                .as_array()?
                .iter()
                .find(|v| v["what"] == what)?["wall_s"]
                .as_f64()
        })
    };
    if let Some(r) = &torch {
        println!(
            "pytorch {} with {} thread(s), load average {:.2} -> {:.2}",
            r["torch_version"].as_str().unwrap_or("?"),
            r["threads"],
            r["loadavg_1m_before"].as_f64().unwrap_or(f64::NAN),
            r["loadavg_1m_after"].as_f64().unwrap_or(f64::NAN)
        );
    }

    let ratio = |theirs: Option<f64>, ours: f64| {
        theirs.map_or("-".to_string(), |t| format!("{:.2}x", t / ours))
    };
    let secs = |v: Option<f64>| v.map_or("-".to_string(), |s| format!("{s:.3}"));
    println!(
        "{:<44} {:>10} {:>12} {:>13}",
        "measurement", "ours (s)", "pytorch (s)", "pytorch/ours"
    );
    let torch_oracle = torch_wall("oracle");
    let torch_mlp = torch_wall("mlp");
    let rows: Vec<(String, f64, Option<f64>)> = vec![
        (
            "exact mixture: whole `sbdm sample` process".into(),
            process,
            torch_oracle,
        ),
        (
            format!("exact mixture: sampling loop, {cores} threads"),
            oracle_all,
            torch_oracle,
        ),
        (
            "exact mixture: sampling loop, 1 thread".into(),
            oracle_1,
            None,
        ),
        ("exact mixture: operation-count limit".into(), limit, None),
    ];
    let mut rows = rows;
    if let (Some(one), Some(all)) = (net_1, net_all) {
        rows.push((
            format!("MLP: sampling loop, {cores} threads"),
            all,
            torch_mlp,
        ));
        rows.push(("MLP: sampling loop, 1 thread".into(), one, None));
    }
    for (label, ours, theirs) in &rows {
        println!(
            "{label:<44} {ours:>10.3} {:>12} {:>13}",
            secs(*theirs),
            ratio(*theirs, *ours)
        );
    }
    println!(
        "whole process: {:.2}x the operation-count limit ({:.1} ns per exp, {:.2} ns per \
         other operation, one thread; {} x {} x {} exps and {} operations each); sampling \
         inside it {:.3} s",
        process / limit,
        exp_s * 1e9,
        flop_s * 1e9,
        a.n,
        k,
        a.steps,
        flops_per,
        process_sampling
    );
    println!(
        "scaling 1 -> {cores} threads: exact mixture {:.2}x{}",
        oracle_1 / oracle_all,
        match (net_1, net_all) {
            (Some(one), Some(all)) => format!(", MLP {:.2}x", one / all),
            _ => String::new(),
        }
    );
    let state_mib = (a.n * d * 4) as f64 / (1024.0 * 1024.0);
    println!(
        "peak RSS: {peak_sampling:.1} MiB sampling, {peak:.1} MiB whole run; {:.1} MiB for a \
         1-point run (the process floor); the run's own {:.1} MiB = {:.1}x the f32 state \
         ({state_mib:.2} MiB); {:.1} MiB for a {THREADS_FLOOR_N}-point run (every thread \
         started), {:.1}x the state above it",
        floor.peak_total_mib,
        peak - floor.peak_total_mib,
        (peak - floor.peak_total_mib) / state_mib,
        threads_floor.peak_total_mib,
        (peak - threads_floor.peak_total_mib) / state_mib,
    );

    if let Some(path) = &a.json {
        let report = serde_json::json!({
            "n": a.n,
            "steps": a.steps,
            "net_n": a.net_n,
            "cores": cores,
            "allocator": allocator(),
            "process_s": process,
            "process_sampling_s": process_sampling,
            "oracle_loop_1_thread_s": oracle_1,
            "oracle_loop_all_threads_s": oracle_all,
            "operation_count_limit_s": limit,
            "exp_ns": exp_s * 1e9,
            "operation_ns": flop_s * 1e9,
            "mlp_loop_1_thread_s": net_1,
            "mlp_loop_all_threads_s": net_all,
            "peak_rss_mib": peak,
            "peak_rss_sampling_mib": peak_sampling,
            "peak_rss_floor_mib": floor.peak_total_mib,
            "peak_rss_threads_floor_mib": threads_floor.peak_total_mib,
            "state_mib": state_mib,
            "pytorch": torch,
        });
        sbdm_runtime::io::write_file_atomic(path, serde_json::to_string_pretty(&report)?)
            .map_err(|e| anyhow!("{e}"))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
