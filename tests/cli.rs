//! The `sbdm derive` command: built-ins, SDEs given at run time (same output as the
//! macro), and one-line errors with a non-zero exit on bad input.

use std::process::Command;

use sbdm::prelude::*;

fn sbdm(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sbdm"))
        .args(args)
        .output()
        .expect("run sbdm");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn derive_builtin_text_and_latex() {
    let (ok, out, _) = sbdm(&["derive", "vp"]);
    assert!(ok);
    assert_eq!(out, VpSde::derivation().to_string());
    let (ok, out, _) = sbdm(&["derive", "cosine", "--latex"]);
    assert!(ok);
    assert_eq!(out, CosineSde::derivation().latex());
    let (ok, out, _) = sbdm(&["derive", "help"]);
    assert!(ok && out.contains("subvp") && out.contains("edm"));
}

/// The same declaration through the CLI and through the macro prints the same equations.
#[test]
fn runtime_sde_matches_macro() {
    let (ok, out, err) = sbdm(&[
        "derive",
        "--sde-name",
        "VpSde",
        "--param",
        "beta_min=0.1",
        "--param",
        "beta_max=20.0",
        "--time",
        "1e-3,1.0",
        "--let",
        "beta=beta_min + t * (beta_max - beta_min)",
        "--drift",
        "-0.5 * beta * x",
        "--diffusion",
        "beta.sqrt()",
    ]);
    assert!(ok, "{err}");
    let macro_text = VpSde::derivation().to_string();
    // Everything but the first line (the macro's carries the doc comment) is identical.
    let tail = |s: &str| s.lines().skip(1).collect::<Vec<_>>().join("\n");
    assert_eq!(tail(&out), tail(&macro_text));
}

#[test]
fn kernel_form_on_the_command_line() {
    let (ok, out, err) = sbdm(&[
        "derive", "--mean", "1.0 - t", "--std", "t", "--time", "1e-3,0.9",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("F(t) = d ln a/dt"), "{out}");
    assert!(out.contains("t(λ)"));
}

fn fails_with(args: &[&str], needle: &str) {
    let (ok, out, err) = sbdm(args);
    assert!(!ok, "expected failure for {args:?}");
    assert!(out.is_empty(), "nothing on stdout: {out}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(err.contains(needle), "`{needle}` not in: {err}");
}

#[test]
fn bad_input_is_one_line_and_non_zero() {
    fails_with(&["derive", "vpp"], "unknown SDE `vpp`");
    fails_with(
        &[
            "derive",
            "--drift",
            "-0.5 * betta * x",
            "--diffusion",
            "1.0",
            "--param",
            "beta=1",
        ],
        "unknown name `betta`",
    );
    fails_with(&["derive", "--drift", "-x", "--diffusion", "t ^ 2"], "powi");
    fails_with(
        &["derive", "--drift", "-x * x", "--diffusion", "1.0"],
        "linear in x",
    );
    fails_with(
        &[
            "derive",
            "--drift",
            "-0.5 * x",
            "--diffusion",
            "1.0",
            "--mean",
            "(-0.5 * t).exp()",
            "--std",
            "t",
        ],
        "inconsistent",
    );
    fails_with(&["derive", "--drift", "-x"], "missing `diffusion");
    fails_with(
        &[
            "derive",
            "--drift",
            "-x",
            "--diffusion",
            "1.0",
            "--time",
            "1.0,0.5",
        ],
        "time range",
    );
    fails_with(&["derive"], "name a built-in SDE");
}
