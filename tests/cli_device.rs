//! `--device` on every command that evaluates a model (issue 14): `cpu` runs and gives
//! what the default gives, an unknown name lists the valid ones, and `cuda` without a
//! usable GPU (a CPU build here; in a `cuda` build, no driver or no GPU) is one line
//! naming what is missing, with nothing written.

mod common;

use candle_core::{Device, Tensor};
use common::{sample_args, sbdm, tiny_train_args, Run};

/// The mixture of the command tests: two components in 2-D.
const MIXTURE: &str = r#"{"weights": [0.5, 0.5], "means": [[-2, 0], [2, 0]], "stds": [0.5, 0.5]}"#;

/// Each command with valid inputs in `dir`, writing `out`.
fn commands(dir: &std::path::Path, out: &std::path::Path) -> Vec<(&'static str, Vec<String>)> {
    let gmm = dir.join("gmm.json");
    std::fs::write(&gmm, MIXTURE).unwrap();
    let x = dir.join("x.npy");
    Tensor::new(&[[-2f32, 0.1], [2.0, -0.2], [0.5, 0.5]], &Device::Cpu)
        .unwrap()
        .write_npy(&x)
        .unwrap();
    let mask = dir.join("mask.npy");
    Tensor::new(&[1f32, 0.0], &Device::Cpu)
        .unwrap()
        .write_npy(&mask)
        .unwrap();
    let model = format!("gmm:{}", gmm.display());
    let (x, mask, out) = (
        x.display().to_string(),
        mask.display().to_string(),
        out.display().to_string(),
    );
    let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let train_out = dir.join("train").display().to_string();
    vec![
        ("sample", sample_args(&model, "ddim", 5, 16, &out)),
        (
            "encode",
            words(&[
                "encode", "--sde", "vp", "--model", &model, "--data", &x, "--steps", "5", "--out",
                &out,
            ]),
        ),
        (
            "likelihood",
            words(&[
                "likelihood",
                "--sde",
                "vp",
                "--model",
                &model,
                "--data",
                &x,
                "--out",
                &out,
            ]),
        ),
        (
            "translate",
            words(&[
                "translate",
                "--method",
                "sdedit",
                "--sde",
                "vp",
                "--model",
                &model,
                "--source",
                &x,
                "--t0",
                "0.5",
                "--steps",
                "5",
                "--out",
                &out,
            ]),
        ),
        (
            "inpaint",
            words(&[
                "inpaint", "--sde", "vp", "--model", &model, "--image", &x, "--mask", &mask,
                "--steps", "5", "--out", &out,
            ]),
        ),
        ("train", {
            let mut a = tiny_train_args("vp", 3, std::path::Path::new(&train_out));
            a.extend(["--checkpoint-every".to_string(), "1".to_string()]);
            a
        }),
    ]
}

fn run(args: &[String], device: Option<&str>) -> Run {
    let mut a: Vec<&str> = args.iter().map(String::as_str).collect();
    if let Some(d) = device {
        a.extend(["--device", d]);
    }
    sbdm(&a)
}

#[test]
fn every_model_command_takes_the_device_and_refuses_a_missing_gpu_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.npy");
    for (name, args) in commands(dir.path(), &out) {
        // The default and `--device cpu` give the same bytes.
        let default = run(&args, None);
        assert!(default.ok(), "{name}: {}", default.stderr);
        let written = |name: &str| -> Vec<u8> {
            if name == "train" {
                std::fs::read(dir.path().join("train/loss.csv")).unwrap()
            } else {
                std::fs::read(&out).unwrap()
            }
        };
        let want = written(name);
        if name == "train" {
            std::fs::remove_dir_all(dir.path().join("train")).unwrap();
        }
        let cpu = run(&args, Some("cpu"));
        assert!(cpu.ok(), "{name} --device cpu: {}", cpu.stderr);
        assert_eq!(
            cpu.stdout.lines().count(),
            default.stdout.lines().count(),
            "{name}"
        );
        assert_eq!(
            written(name),
            want,
            "{name}: --device cpu differs from the default"
        );
        if name == "train" {
            std::fs::remove_dir_all(dir.path().join("train")).unwrap();
        } else {
            std::fs::remove_file(&out).unwrap();
        }
        // An unknown device, and CUDA where there is none: one line, exit 1, no output.
        for (device, expect) in [
            ("tpu", "valid: cpu, cuda, cuda:N"),
            ("cuda", "--device: device `cuda`"),
            ("cuda:3", "--device: device `cuda:3`"),
        ] {
            let r = run(&args, Some(device));
            assert_eq!(r.code, Some(1), "{name} --device {device}: {}", r.stderr);
            let msg = r.stderr.trim();
            assert!(msg.contains(expect), "{name} --device {device}: {msg}");
            assert_eq!(msg.lines().count(), 1, "{name} --device {device}: {msg}");
            if !sbdm_runtime::device::HAS_CUDA && device != "tpu" {
                assert!(msg.contains("built without CUDA"), "{name}: {msg}");
            }
            assert!(
                !out.exists(),
                "{name} --device {device} wrote {}",
                out.display()
            );
            assert!(
                !dir.path().join("train/model.safetensors").exists(),
                "{name} --device {device} wrote a checkpoint"
            );
        }
    }
}

#[test]
fn philox_noise_is_chosen_by_name_and_listed() {
    let dir = tempfile::tempdir().unwrap();
    let gmm = dir.path().join("gmm.json");
    std::fs::write(&gmm, MIXTURE).unwrap();
    let model = format!("gmm:{}", gmm.display());
    let sample = |noise: Option<&str>, out: &str| {
        let out = dir.path().join(out).display().to_string();
        let mut a = sample_args(&model, "em", 5, 64, &out);
        if let Some(n) = noise {
            a.extend(["--noise".to_string(), n.to_string()]);
        }
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let r = sbdm(&a);
        (r, std::fs::read(&out).ok())
    };
    let (r, chacha) = sample(None, "a.npy");
    assert!(r.ok(), "{}", r.stderr);
    let (r, named) = sample(Some("chacha"), "b.npy");
    assert!(r.ok(), "{}", r.stderr);
    assert_eq!(named, chacha, "the default is chacha");
    let (r, philox) = sample(Some("philox"), "c.npy");
    assert!(r.ok(), "{}", r.stderr);
    let (r, again) = sample(Some("philox"), "d.npy");
    assert!(r.ok(), "{}", r.stderr);
    assert_eq!(philox, again, "seeded");
    assert_ne!(philox, chacha, "another generator");
    let (r, none) = sample(Some("mt19937"), "e.npy");
    assert_eq!(r.code, Some(1));
    assert!(
        r.stderr.contains("possible values: chacha, philox"),
        "{}",
        r.stderr
    );
    assert!(none.is_none());
    let r = sbdm(&["sample", "--noise", "help"]);
    assert!(r.ok() && r.stdout.starts_with("chacha"), "{}", r.stdout);
    assert!(r.stdout.contains("philox"), "{}", r.stdout);
}
