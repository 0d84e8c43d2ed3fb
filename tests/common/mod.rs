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
