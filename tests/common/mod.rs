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

/// `sbdm train` of a CI-sized score model in `dir/name`: a 2-D MLP trained on moons for
/// 20 steps under `sde`; the run and the checkpoint's `--model` spec, `ckpt:FILE`.
#[allow(dead_code)] // Not every test binary that includes this module trains one.
pub fn train_tiny(dir: &std::path::Path, name: &str, sde: &str) -> (Run, String) {
    let out = dir.join(name);
    let run = sbdm(&[
        "train",
        "--sde",
        sde,
        "--data",
        "moons",
        "--model",
        "mlp",
        "--width",
        "32",
        "--depth",
        "2",
        "--batch",
        "32",
        "--steps",
        "20",
        "--out",
        out.to_str().expect("a UTF-8 path"),
    ]);
    let spec = format!("ckpt:{}", out.join("model.safetensors").display());
    (run, spec)
}

/// A CI-sized score checkpoint in `dir/name` ([`train_tiny`] under VP); returns its
/// `--model` spec.
#[allow(dead_code)] // Not every test binary that includes this module trains one.
pub fn tiny_checkpoint(dir: &std::path::Path, name: &str) -> String {
    let (run, spec) = train_tiny(dir, name, "vp");
    assert!(run.ok(), "{}", run.stderr);
    spec
}
