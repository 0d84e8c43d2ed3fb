//! Rectified flow from the command line: the built-in `rf` (pure noise at t = 1) samples
//! with the exact mixture from every kind of sampler; `sbdm train --sde rf` trains the
//! flow velocity by default and its checkpoint samples; eps and preconditioning are
//! refused in one line; a pure-noise end declared inline derives.

mod common;

use common::{sbdm, train_tiny, train_tiny_with};
use sbdm_runtime::io;

/// Two components at (±2, 0), std 0.5: E|x|² = 4 + 2·0.25 = 4.5.
const MIX: &str = r#"{"weights":[0.5,0.5],"means":[[-2,0],[2,0]],"stds":[0.5,0.5]}"#;

fn second_moment(path: &std::path::Path) -> f64 {
    let x = io::read_npy(path, 2).unwrap();
    let v: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
    v.iter().map(|&a| f64::from(a) * f64::from(a)).sum::<f64>() / x.dim(0).unwrap() as f64
}

#[test]
fn flows_sample_from_pure_noise_with_the_exact_mixture() {
    let dir = tempfile::tempdir().unwrap();
    let mix = dir.path().join("mix.json");
    std::fs::write(&mix, MIX).unwrap();
    let model = format!("gmm:{}", mix.display());
    let out = dir.path().join("x.npy");
    // E|x_{t_min}|² = a(t_min)²·4.5 + 2·b(t_min)²: (1 − t_min)²·4.5 + 2·t_min² ≈ 4.491
    // on rf, cos²(π t_min/2)·4.5 + 2 sin²(π t_min/2) ≈ 4.49999 on trigflow; 4000
    // samples: s.e. ≈ 0.05.
    let cases = ["ddim", "dpmpp2m", "heun", "em", "ancestral", "rk45"]
        .into_iter()
        .map(|s| ("rf", 4.491, s))
        .chain(["ddim", "heun", "em"].map(|s| ("trigflow", 4.49999, s)));
    for (sde, want, sampler) in cases {
        let run = sbdm(&[
            "sample",
            "--sde",
            sde,
            "--model",
            &model,
            "--sampler",
            sampler,
            "--steps",
            "100",
            "--n",
            "4000",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(run.ok(), "{sde} {sampler}: {}", run.stderr);
        let m = second_moment(&out);
        assert!((m - want).abs() < 0.25, "{sde} {sampler}: E|x|² = {m}");
    }
}

#[test]
fn training_on_rf_defaults_to_the_flow_velocity() {
    let dir = tempfile::tempdir().unwrap();
    let (run, ckpt) = train_tiny(dir.path(), "run", "rf");
    assert!(run.ok(), "{}", run.stderr);
    assert!(
        run.stdout.contains("flow prediction") && run.stdout.contains("uniform weighting"),
        "{}",
        run.stdout
    );
    let samples = dir.path().join("s.npy");
    let run = sbdm(&[
        "sample",
        "--model",
        &ckpt,
        "--sampler",
        "dpmpp2m",
        "--steps",
        "10",
        "--n",
        "64",
        "--out",
        samples.to_str().unwrap(),
    ]);
    assert!(run.ok(), "{}", run.stderr);
    assert!(second_moment(&samples).is_finite());
}

#[test]
fn logit_normal_times_train_and_are_stored() {
    // SD3's recipe: rectified flow, velocity target, logit-normal(0, 1) times; the
    // density is part of the checkpoint's training configuration.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ln");
    let (run, _) = train_tiny_with(
        dir.path(),
        "ln",
        "rf",
        &["--time-density", "logit-normal:0,1"],
    );
    assert!(run.ok(), "{}", run.stderr);
    assert!(
        run.stdout.contains("logit-normal:0,1 times"),
        "{}",
        run.stdout
    );
    let info = sbdm_runtime::train::checkpoint::read_info(out.join("model.safetensors")).unwrap();
    assert_eq!(
        info.train.unwrap().time_density,
        sbdm_runtime::train::TimeDensity::LogitNormal {
            mean: 0.0,
            std: 1.0
        }
    );
}

#[test]
fn eps_and_preconditioning_are_refused_on_rf() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    for (extra, needle) in [
        (
            &["--param", "eps"][..],
            "--param eps: rf reaches pure noise",
        ),
        (
            &["--precondition"][..],
            "EDM preconditioning divides by a(t)",
        ),
    ] {
        let mut args = vec![
            "train",
            "--sde",
            "rf",
            "--data",
            "moons",
            "--model",
            "mlp",
            "--steps",
            "5",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend(extra);
        let run = sbdm(&args);
        assert!(!run.ok(), "{extra:?} succeeded");
        assert_eq!(run.stderr.trim().lines().count(), 1, "{}", run.stderr);
        assert!(run.stderr.contains(needle), "{}", run.stderr);
        assert!(!out.join("model.safetensors").exists());
    }
}

#[test]
fn a_pure_noise_end_declared_inline_derives() {
    let run = sbdm(&[
        "derive", "--mean", "1 - t", "--std", "t", "--time", "1e-3,1",
    ]);
    assert!(run.ok(), "{}", run.stderr);
    assert!(
        run.stdout
            .contains("t(λ)                         = 1/(1 + exp(lambda))"),
        "{}",
        run.stdout
    );
    // A time range past the pure-noise end (a < 0 beyond t = 1) is an error.
    let run = sbdm(&[
        "derive", "--mean", "1 - t", "--std", "t", "--time", "1e-3,1.5",
    ]);
    assert!(!run.ok());
    assert_eq!(run.stderr.trim().lines().count(), 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("must be > 0 at t = 1.0"),
        "{}",
        run.stderr
    );
    // a(t) = 0 before the end is still an error.
    let run = sbdm(&[
        "derive", "--mean", "1 - 2*t", "--std", "t", "--time", "1e-3,1",
    ]);
    assert!(!run.ok());
    assert!(run.stderr.contains("a(t)"), "{}", run.stderr);
}

#[test]
fn a_time_shift_applies_to_any_declared_sde() {
    let dir = tempfile::tempdir().unwrap();
    let mix = dir.path().join("mix.json");
    std::fs::write(&mix, MIX).unwrap();
    let model = format!("gmm:{}", mix.display());
    let out = dir.path().join("x.npy");
    let run = sbdm(&[
        "sample",
        "--sde",
        "rf",
        "--shift",
        "3",
        "--model",
        &model,
        "--sampler",
        "dpmpp2m",
        "--steps",
        "50",
        "--n",
        "4000",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(run.ok(), "{}", run.stderr);
    assert!(run.stdout.contains("rf (shift 3)"), "{}", run.stdout);
    // t_min' = τ⁻¹(1e-3): the same E|x_{t_min}|² as unshifted, 4.491.
    assert!((second_moment(&out) - 4.491).abs() < 0.25);
    let run = sbdm(&["derive", "--sde", "vp", "--shift", "2"]);
    assert!(
        run.ok() && run.stdout.contains("shift = 2"),
        "{}",
        run.stderr
    );
    // The shift by its logarithm, and Flux's resolution rule: μ = 0.5 at 256 tokens,
    // 1.15 at 4096, linear between (1024 tokens: 0.5 + 0.65·768/3840 = 0.63).
    for (flag, value, mu) in [
        ("--shift-mu", "0.7", 0.7_f64),
        ("--shift-tokens", "256", 0.5),
        ("--shift-tokens", "4096", 1.15),
        ("--shift-tokens", "1024", 0.63),
    ] {
        let run = sbdm(&["derive", "--sde", "rf", flag, value]);
        assert!(run.ok(), "{flag} {value}: {}", run.stderr);
        let shift: f64 = run
            .stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix("params: shift = "))
            .unwrap_or_else(|| panic!("{flag} {value}: {}", run.stdout))
            .parse()
            .unwrap();
        assert!(
            (shift.ln() - mu).abs() < 1e-12,
            "{flag} {value}: shift {shift}"
        );
    }
    for (args, needle) in [
        (
            &["derive", "--sde", "rf", "--shift", "0"][..],
            "must be finite and > 0",
        ),
        (&["derive", "--sde", "edm", "--shift", "3"][..], "ends at T"),
        (
            &["derive", "--sde", "ddpm-linear", "--shift", "3"][..],
            "is a table",
        ),
        (
            &["derive", "--sde", "ddpm-linear", "--shift-mu", "1"][..],
            "--shift-mu: `ddpm-linear` is a table",
        ),
        (
            &["derive", "--sde", "rf", "--shift-tokens", "0"][..],
            "--shift-tokens: the token count must be finite and > 0",
        ),
        (
            &["derive", "--sde", "rf", "--shift", "2", "--shift-mu", "1"][..],
            "cannot be used with",
        ),
    ] {
        let run = sbdm(args);
        assert!(!run.ok(), "{args:?} succeeded");
        assert_eq!(run.stderr.trim().lines().count(), 1, "{}", run.stderr);
        assert!(run.stderr.contains(needle), "{args:?}: {}", run.stderr);
    }
}
