//! `sbdm likelihood` on the exact mixture: per-sample log-densities close to the exact
//! `log p_{t_min}` (the SDE's N(0, b(T)²) prior stands in for p_T, so they differ by the
//! prior's mismatch, below 0.05 nats for VP here), the summary printed; on a trained
//! checkpoint (CI-sized) with the exact and Hutchinson divergences and dequantisation;
//! bad input refused in one line with nothing written. On SDEs that reach pure noise (rf,
//! TrigFlow) the mixture's values are the exact ones (the prior is then p_T itself), and a
//! flow checkpoint trained on rf is scored, exactly and by Hutchinson.

mod common;

use std::path::Path;

use candle_core::{Device, Tensor};
use common::sbdm;
use sbdm_runtime::io;
use sbdm_runtime::model::mixture::GaussianMixture;
use sbdm_runtime::sde::builtin::{RectifiedFlow, TrigFlow, VpSde};
use sbdm_runtime::sde::{GaussianKernel, Sde};

const MIX: &str = r#"{"weights":[0.5,0.5],"means":[[-2,0],[2,0]],"stds":[0.5,0.5]}"#;

fn setup(dir: &Path) -> (String, String, Vec<Vec<f64>>) {
    let mix = dir.join("mix.json");
    std::fs::write(&mix, MIX).unwrap();
    let points = vec![
        vec![-2.0, 0.1],
        vec![0.0, 0.0],
        vec![2.5, -0.4],
        vec![1.0, 1.0],
    ];
    let flat: Vec<f32> = points.iter().flatten().map(|&v| v as f32).collect();
    let x = Tensor::from_vec(flat, (points.len(), 2), &Device::Cpu).unwrap();
    let data = dir.join("x.npy");
    io::write_npy(&data, &x).unwrap();
    (
        format!("gmm:{}", mix.display()),
        data.display().to_string(),
        points,
    )
}

#[test]
fn log_densities_match_the_exact_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (model, data, points) = setup(dir.path());
    let out = dir.path().join("logp.npy");
    let run = sbdm(&[
        "likelihood",
        "--sde",
        "vp",
        "--model",
        &model,
        "--data",
        &data,
        "--rtol",
        "1e-8",
        "--atol",
        "1e-8",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(run.ok(), "{}", run.stderr);
    assert!(
        run.stdout.contains("bits/dim") && run.stdout.contains("NLL (nats)"),
        "{}",
        run.stdout
    );
    let got = io::read_npy_vector(&out).unwrap();
    let mix = GaussianMixture::from_json(MIX).unwrap();
    let sde = VpSde::default();
    let t0 = sde.time_range().0;
    for (g, x) in got.iter().zip(&points) {
        let want = mix.log_prob_at(x, sde.mean_coef(t0), sde.std(t0));
        assert!((g - want).abs() < 0.05, "{x:?}: {g} vs exact {want}");
    }
}

#[test]
fn bad_input_is_one_line_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (model, data, _) = setup(dir.path());
    let out = dir.path().join("logp.npy");
    let out_s = out.to_str().unwrap();
    let one_d = dir.path().join("one_d.npy");
    io::write_npy(
        &one_d,
        &Tensor::from_vec(vec![1f32, 2.0], (2, 1), &Device::Cpu).unwrap(),
    )
    .unwrap();
    let nan = dir.path().join("nan.npy");
    io::write_npy(
        &nan,
        &Tensor::from_vec(vec![1f32, f32::NAN], (1, 2), &Device::Cpu).unwrap(),
    )
    .unwrap();
    let base = |data: &str| {
        vec![
            "likelihood".to_string(),
            "--sde".into(),
            "vp".into(),
            "--model".into(),
            model.clone(),
            "--data".into(),
            data.to_string(),
            "--out".into(),
            out_s.to_string(),
        ]
    };
    let cases: Vec<(Vec<String>, &str)> = vec![
        (base(one_d.to_str().unwrap()), "dimension 1"),
        (base(nan.to_str().unwrap()), "not finite"),
        (
            [base(&data), vec!["--rtol".into(), "0".into()]].concat(),
            "rtol",
        ),
        (
            [base(&data), vec!["--atol".into(), "-1".into()]].concat(),
            "atol",
        ),
        (
            [base(&data), vec!["--exact".into()]].concat(),
            "--exact applies to networks",
        ),
        (
            [base(&data), vec!["--batch".into(), "0".into()]].concat(),
            "--batch",
        ),
        (
            [base(&data), vec!["--dequantize".into(), "1".into()]].concat(),
            "at least 2 levels",
        ),
        (
            [
                base(&data),
                vec![
                    "--dequantize".into(),
                    "256".into(),
                    "--data-range".into(),
                    "1".into(),
                ],
            ]
            .concat(),
            "--data-range must be LOW,HIGH",
        ),
    ];
    for (args, needle) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = sbdm(&args);
        assert!(!run.ok(), "{args:?} succeeded");
        assert_eq!(run.stderr.trim().lines().count(), 1, "{}", run.stderr);
        assert!(
            run.stderr.contains(needle),
            "`{needle}` not in {}",
            run.stderr
        );
        assert!(!out.exists(), "{args:?} wrote {out_s}");
    }
}

#[test]
fn a_checkpoint_is_scored_exactly_and_by_hutchinson() {
    // The trained-network path: the checkpoint's own SDE, the exact divergence (2-D is
    // under --exact-up-to) and Hutchinson's with 32 probes estimate the same NLL; their
    // difference is the probes' noise, within 4 standard errors of the mean.
    let dir = tempfile::tempdir().unwrap();
    let model = common::tiny_checkpoint(dir.path(), "run");
    let (_, data, points) = setup(dir.path());
    let score = |extra: &[&str], out: &str| -> (Vec<f64>, String) {
        let out = dir.path().join(out);
        let mut args = vec![
            "likelihood",
            "--model",
            &model,
            "--data",
            &data,
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend(extra);
        let run = sbdm(&args);
        assert!(run.ok(), "{}", run.stderr);
        (io::read_npy_vector(&out).unwrap(), run.stdout)
    };
    let (exact, stdout) = score(&[], "exact.npy");
    assert!(
        stdout.contains("divergence                   exact"),
        "{stdout}"
    );
    assert_eq!(exact.len(), points.len());
    assert!(exact.iter().all(|v| v.is_finite()));
    let (hutch, stdout) = score(&["--hutchinson", "32", "--seed", "3"], "hutch.npy");
    assert!(stdout.contains("hutchinson(K = 32"), "{stdout}");
    assert!(stdout.contains("probe s.e."), "{stdout}");
    let n = exact.len() as f64;
    let diffs: Vec<f64> = exact.iter().zip(&hutch).map(|(e, h)| h - e).collect();
    let mean = diffs.iter().sum::<f64>() / n;
    let sd = (diffs.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    assert!(
        mean.abs() <= 4.0 * sd / n.sqrt() + 1e-3,
        "Hutchinson differs from exact by {mean} (sd {sd}): {diffs:?}"
    );
    // Dequantised: bits/dim of the discrete data carries the 7-bit offset.
    let (_, stdout) = score(&["--dequantize", "256"], "deq.npy");
    assert!(
        stdout.contains("bits/dim (dequantised)") && stdout.contains("+ 7.0000 for 256 levels"),
        "{stdout}"
    );
    // K = 0 is refused before any work, nothing written.
    let out = dir.path().join("zero.npy");
    let run = sbdm(&[
        "likelihood",
        "--model",
        &model,
        "--data",
        &data,
        "--hutchinson",
        "0",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!run.ok());
    assert!(run.stderr.contains("K = 0"), "{}", run.stderr);
    assert_eq!(run.stderr.trim().lines().count(), 1);
    assert!(!out.exists());
}

#[test]
fn sdes_that_reach_pure_noise_are_scored_exactly() {
    // a(T) = 0: the PF-ODE runs in its posterior-mean form, and N(0, b(T)²I) is p_T
    // exactly, so at rtol 1e-8 the values are the exact log p_{t_min} (to the f32 file).
    let dir = tempfile::tempdir().unwrap();
    let (model, data, points) = setup(dir.path());
    let mix = GaussianMixture::from_json(MIX).unwrap();
    let sdes: [(&str, &dyn GaussianKernel); 2] = [("rf", &RectifiedFlow), ("trigflow", &TrigFlow)];
    for (name, sde) in sdes {
        let out = dir.path().join(format!("{name}.npy"));
        let run = sbdm(&[
            "likelihood",
            "--sde",
            name,
            "--model",
            &model,
            "--data",
            &data,
            "--rtol",
            "1e-8",
            "--atol",
            "1e-8",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(run.ok(), "{name}: {}", run.stderr);
        let got = io::read_npy_vector(&out).unwrap();
        let t0 = sde.time_range().0;
        for (g, x) in got.iter().zip(&points) {
            let want = mix.log_prob_at(x, sde.mean_coef(t0), sde.std(t0));
            assert!((g - want).abs() < 1e-5, "{name} {x:?}: {g} vs exact {want}");
        }
    }
}

#[test]
fn a_flow_checkpoint_on_rectified_flow_is_scored() {
    // A flow-matching checkpoint trained on rf (pure noise at T): finite values, and the
    // exact and Hutchinson (K = 32) divergences agree within 4 standard errors of the mean.
    let dir = tempfile::tempdir().unwrap();
    let (run, model) = common::train_tiny(dir.path(), "rf", "rf");
    assert!(run.ok(), "{}", run.stderr);
    let (_, data, points) = setup(dir.path());
    let score = |extra: &[&str], out: &str| -> (Vec<f64>, String) {
        let out = dir.path().join(out);
        let mut args = vec![
            "likelihood",
            "--model",
            &model,
            "--data",
            &data,
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend(extra);
        let run = sbdm(&args);
        assert!(run.ok(), "{}", run.stderr);
        (io::read_npy_vector(&out).unwrap(), run.stdout)
    };
    let (exact, stdout) = score(&["--exact"], "exact.npy");
    assert!(
        stdout.contains("SDE                          rf"),
        "{stdout}"
    );
    assert_eq!(exact.len(), points.len());
    assert!(exact.iter().all(|v| v.is_finite()), "{exact:?}");
    let (hutch, stdout) = score(&["--hutchinson", "32", "--seed", "3"], "hutch.npy");
    assert!(stdout.contains("hutchinson(K = 32"), "{stdout}");
    assert!(hutch.iter().all(|v| v.is_finite()), "{hutch:?}");
    let n = exact.len() as f64;
    let diffs: Vec<f64> = exact.iter().zip(&hutch).map(|(e, h)| h - e).collect();
    let mean = diffs.iter().sum::<f64>() / n;
    let sd = (diffs.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    assert!(
        mean.abs() <= 4.0 * sd / n.sqrt() + 1e-3,
        "Hutchinson differs from exact by {mean} (sd {sd}): {diffs:?}"
    );
}
