//! Crash safety: a process killed (SIGKILL) at a random point while training with
//! `--checkpoint-every` or while writing samples leaves every output either as it was or
//! complete — never a partial file — and a killed training run resumes to exactly the
//! weights and log of a run never interrupted.
//!
//! The kill points are drawn (seeded) uniformly over 90 % of the length of an
//! uninterrupted run, a bounded number of times per command (`KILLS`); at least a quarter
//! must land before the run ends. Shown able to fail: with the atomic writer's temporary
//! path made the destination itself (`io::PendingFile`), the sampling test finds a partial
//! `x.npy` (see docs/reliability.md).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use candle_core::Device;
use common::sbdm;
use sbdm_runtime::train::checkpoint;

/// Kills per command.
const KILLS: u64 = 8;

/// A uniform draw in [0, 1) from a 64-bit LCG (Knuth's MMIX constants), seeded per kill.
fn uniform(seed: u64) -> f64 {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    s = s
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (s >> 11) as f64 / (1u64 << 53) as f64
}

/// Runs `sbdm args` and kills it with SIGKILL after `after` (or lets it finish first).
/// Whether it was killed.
fn run_and_kill(args: &[String], after: Duration) -> bool {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sbdm"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start sbdm");
    let start = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            return false;
        }
        if start.elapsed() >= after {
            child.kill().expect("kill");
            child.wait().expect("reap");
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn train_args(out: &Path, resume: bool) -> Vec<String> {
    let mut args = common::tiny_train_args("vp", 60, out);
    args.extend(["--checkpoint-every".to_string(), "3".to_string()]);
    if resume {
        args.push("--resume".into());
    }
    args
}

/// The `net/` and `ema/` tensors of a checkpoint, by name (f32 values).
fn weights(path: &Path) -> Vec<(String, Vec<f32>)> {
    let ck = checkpoint::load(path, &Device::Cpu).expect("a complete checkpoint");
    let mut all = Vec::new();
    for prefix in ["net", "ema"] {
        for (name, t) in ck.group(prefix) {
            all.push((name, t.flatten_all().unwrap().to_vec1().unwrap()));
        }
    }
    all
}

/// The files of `dir` other than the atomic writer's temporaries (`.NAME.PID-N.tmp.EXT`,
/// which a kill may leave behind beside, never instead of, a destination).
fn outputs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|r| r.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    v.retain(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'));
    v.sort();
    v
}

#[test]
fn killed_training_leaves_whole_files_and_resumes_exactly() {
    let root = tempfile::tempdir().unwrap();
    let straight = root.path().join("straight");
    let start = Instant::now();
    let r = sbdm(
        &train_args(&straight, false)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert!(r.ok() && r.stdout.contains("final loss"), "{}", r.stderr);
    let span = start.elapsed();
    let want = weights(&straight.join("model.safetensors"));
    let want_log = std::fs::read_to_string(straight.join("loss.csv")).unwrap();

    let mut killed = 0;
    for k in 0..KILLS {
        let out = root.path().join(format!("killed{k}"));
        let after = span.mul_f64(0.9 * uniform(k));
        killed += u64::from(run_and_kill(&train_args(&out, false), after));
        // Whatever is there is whole: the checkpoint loads (its checksum holds) at a step
        // the run saves at, the log parses.
        let ckpt = out.join("model.safetensors");
        let resume = ckpt.exists();
        if resume {
            let info = checkpoint::read_info(&ckpt).expect("a whole checkpoint");
            assert!(info.step % 3 == 0 && info.step <= 60, "step {}", info.step);
            weights(&ckpt);
        }
        for f in outputs(&out) {
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            assert!(
                ["model.safetensors", "loss.csv", "loss.png"].contains(&name.as_str()),
                "kill {k}: unexpected {name}"
            );
        }
        // Resumed (or started again where no checkpoint was written): the straight run's
        // weights and log, bit for bit.
        let args = train_args(&out, resume);
        let r = sbdm(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let finished = resume
            && checkpoint::read_info(&ckpt).is_ok_and(|i| i.step == 60)
            && r.stderr.contains("already trained to 60 steps");
        assert!(r.ok() || finished, "kill {k} after {after:?}: {}", r.stderr);
        assert!(
            weights(&ckpt) == want,
            "kill {k} after {after:?}: weights differ"
        );
        let log = std::fs::read_to_string(out.join("loss.csv")).unwrap();
        assert_eq!(log, want_log, "kill {k} after {after:?}: loss.csv differs");
    }
    println!("{killed} of {KILLS} training runs killed before they finished");
    assert!(killed >= KILLS / 4, "only {killed} kills landed mid-run");
}

#[test]
fn killed_sampling_leaves_the_old_file_or_the_new_one() {
    let root = tempfile::tempdir().unwrap();
    let mix = root.path().join("mix.json");
    std::fs::write(
        &mix,
        r#"{"weights":[0.5,0.5],"means":[[-2,0],[2,0]],"stds":[0.5,0.5]}"#,
    )
    .unwrap();
    let model = format!("gmm:{}", mix.display());
    let args = |out: &Path, seed: &str| -> Vec<String> {
        [
            "sample",
            "--sde",
            "vp",
            "--model",
            &model,
            "--sampler",
            "em",
            "--steps",
            "200",
            "--n",
            "40000",
            "--seed",
            seed,
            "--out",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([out.display().to_string()])
        .collect()
    };
    let run = |a: Vec<String>| {
        let r = sbdm(&a.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(r.ok(), "{}", r.stderr);
    };
    let reference = root.path().join("new.npy");
    let start = Instant::now();
    run(args(&reference, "2"));
    let span = start.elapsed();
    let new = std::fs::read(&reference).unwrap();

    let mut killed = 0;
    for k in 0..KILLS {
        let dir = root.path().join(format!("s{k}"));
        std::fs::create_dir(&dir).unwrap();
        let out = dir.join("x.npy");
        run(args(&out, "1"));
        let old = std::fs::read(&out).unwrap();
        assert_ne!(old, new);
        let after = span.mul_f64(0.9 * uniform(100 + k));
        killed += u64::from(run_and_kill(&args(&out, "2"), after));
        let now = std::fs::read(&out).unwrap();
        assert!(
            now == old || now == new,
            "kill {k} after {after:?}: x.npy is neither the old nor the new file"
        );
        assert_eq!(outputs(&dir), vec![out.clone()], "kill {k}");
    }
    println!("{killed} of {KILLS} sampling runs killed before they finished");
    assert!(killed >= KILLS / 4, "only {killed} kills landed mid-run");
}
