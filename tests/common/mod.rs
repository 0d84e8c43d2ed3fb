//! Helpers shared by the `sbdm` command-line tests.

use std::process::Command;

/// What a run of the `sbdm` binary did.
pub struct Run {
    /// The exit code (`None`: killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// Whether it exited with 0.
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }
}

/// Runs the `sbdm` binary with `args`.
pub fn sbdm(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_sbdm"))
        .args(args)
        .output()
        .expect("run sbdm");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The arguments of `sbdm sample` on VP: `n` samples from `model` by `sampler` in
/// `steps` steps, written to `out`.
#[allow(dead_code)] // Not every test binary that includes this module samples.
pub fn sample_args(model: &str, sampler: &str, steps: u32, n: usize, out: &str) -> Vec<String> {
    let (steps, n) = (steps.to_string(), n.to_string());
    [
        "sample",
        "--sde",
        "vp",
        "--model",
        model,
        "--sampler",
        sampler,
        "--steps",
        &steps,
        "--n",
        &n,
        "--out",
        out,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The arguments of `sbdm train` for a CI-sized score model written to `out`: a 2-D MLP
/// (width 32, depth 2, batch 32) trained on moons for `steps` steps under `sde`.
#[allow(dead_code)] // Not every test binary that includes this module trains one.
pub fn tiny_train_args(sde: &str, steps: u64, out: &std::path::Path) -> Vec<String> {
    let steps = steps.to_string();
    let out = out.to_str().expect("a UTF-8 path");
    [
        "train", "--sde", sde, "--data", "moons", "--model", "mlp", "--width", "32", "--depth",
        "2", "--batch", "32", "--steps", &steps, "--out", out,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// `sbdm train` of a CI-sized score model in `dir/name` ([`tiny_train_args`], 20 steps)
/// with `extra` flags; the run and the checkpoint's `--model` spec, `ckpt:FILE`.
#[allow(dead_code)] // Not every test binary that includes this module trains one.
pub fn train_tiny_with(
    dir: &std::path::Path,
    name: &str,
    sde: &str,
    extra: &[&str],
) -> (Run, String) {
    let out = dir.join(name);
    let mut args = tiny_train_args(sde, 20, &out);
    args.extend(extra.iter().map(|s| s.to_string()));
    let run = sbdm(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let spec = format!("ckpt:{}", out.join("model.safetensors").display());
    (run, spec)
}

/// [`train_tiny_with`] with no extra flags.
#[allow(dead_code)] // Not every test binary that includes this module trains one.
pub fn train_tiny(dir: &std::path::Path, name: &str, sde: &str) -> (Run, String) {
    train_tiny_with(dir, name, sde, &[])
}

/// A CI-sized score checkpoint in `dir/name` ([`train_tiny`] under VP); returns its
/// `--model` spec.
#[allow(dead_code)] // Not every test binary that includes this module trains one.
pub fn tiny_checkpoint(dir: &std::path::Path, name: &str) -> String {
    let (run, spec) = train_tiny(dir, name, "vp");
    assert!(run.ok(), "{}", run.stderr);
    spec
}
