//! `sbdm train` end to end, with tiny models: the files it writes, refusing to overwrite
//! a checkpoint, resuming to the weights of an uninterrupted run, stopping on a NaN
//! loss, one-line errors for bad input, and `sbdm sample --model ckpt:…` on the result.

mod common;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use sbdm_runtime::train::checkpoint::{self, Checkpoint};

use common::{sbdm, Run};

/// A tiny MLP on moons for VP: fast enough to train for tens of steps in a test.
const TINY: &[&str] = &[
    "train", "--sde", "vp", "--data", "moons", "--model", "mlp", "--width", "32", "--depth", "2",
    "--batch", "32",
];

/// `sbdm train` with [`TINY`]'s flags, overridden or extended by `extra`.
fn train(extra: &[&str]) -> Run {
    let mut args: Vec<&str> = TINY.to_vec();
    let mut rest = extra.iter();
    while let Some(flag) = rest.next() {
        let takes_value = !matches!(*flag, "--resume" | "--precondition" | "--conditional");
        let value = if takes_value {
            rest.next().copied()
        } else {
            None
        };
        match args.iter().position(|a| a == flag) {
            Some(i) if takes_value => args[i + 1] = value.unwrap(),
            _ => {
                args.push(flag);
                args.extend(value);
            }
        }
    }
    sbdm(&args)
}

/// `sbdm sample` arguments: `n` samples from `model` by DDIM in `steps` steps, to `out`.
fn ddim_sample<'a>(model: &'a str, steps: &'a str, n: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
        "sample",
        "--model",
        model,
        "--sampler",
        "ddim",
        "--steps",
        steps,
        "--n",
        n,
        "--out",
        out,
    ]
}

fn path_str(p: &Path) -> String {
    p.display().to_string()
}

fn load(path: &Path) -> Checkpoint {
    checkpoint::load(path, &Device::Cpu).expect("a readable checkpoint")
}

/// The values of the tensors under `prefix/`, by name.
fn group(ck: &Checkpoint, prefix: &str) -> Vec<(String, Vec<f32>)> {
    ck.group(prefix)
        .into_iter()
        .map(|(n, t)| (n, t.flatten_all().unwrap().to_vec1().unwrap()))
        .collect()
}

/// Fails with exit code 1 and one line of stderr mentioning `expect`.
fn assert_rejected(r: &Run, expect: &str) {
    assert_eq!(
        r.code,
        Some(1),
        "expected failure:\n{}{}",
        r.stdout,
        r.stderr
    );
    let msg = r.stderr.trim();
    assert_eq!(msg.lines().count(), 1, "not one line:\n{msg}");
    assert!(msg.contains(expect), "`{msg}` does not mention `{expect}`");
}

#[test]
fn help_lists_every_name() {
    let listed = |flag: &str, names: &[&str]| {
        let r = sbdm(&["train", flag, "help"]);
        assert!(r.ok(), "{}", r.stderr);
        for name in names {
            assert!(
                r.stdout
                    .lines()
                    .any(|l| l.split_whitespace().next() == Some(*name)),
                "{flag} help lacks {name}:\n{}",
                r.stdout
            );
        }
    };
    listed("--sde", &["vp", "ve", "edm", "ddpm-linear"]);
    listed("--data", &["moons", "8gaussians", "shapes16", "FILE.npy"]);
    listed("--model", &["mlp", "unet"]);
    listed("--param", &["score", "eps", "x0", "v"]);
    listed("--weighting", &["b2", "likelihood", "uniform", "min-snr"]);
    listed("--time-density", &["uniform", "logit-normal"]);
}

#[test]
fn bad_input_fails_with_one_line_and_writes_nothing() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("out");
    let out_s = path_str(&out);
    // A float64 array: the data module names the dtype.
    let f64_npy = root.path().join("x64.npy");
    Tensor::zeros((8, 2), DType::F64, &Device::Cpu)
        .unwrap()
        .write_npy(&f64_npy)
        .unwrap();
    let f64_s = path_str(&f64_npy);
    let cases: &[(&[&str], &str)] = &[
        (&["--data", "spirals"], "shapes16"),
        (&["--data", &f64_s], "float64"),
        (&["--model", "transformer"], "unet"),
        (&["--weighting", "snr"], "min-snr"),
        (&["--time-density", "normal"], "logit-normal"),
        (
            &["--time-density", "logit-normal:0,0"],
            "scale must be finite and > 0",
        ),
        (&["--param", "noise"], "x0"),
        (&["--sde", "vq"], "ddpm-linear"),
        (&["--schedule", "linear"], "cosine"),
        (&["--steps", "0"], "--steps"),
        (&["--batch", "0"], "--batch"),
        (&["--lr", "0"], "--lr"),
        (&["--lr", "-1e-3"], "--lr"),
        (&["--sigma-data", "-1"], "--sigma-data"),
        (&["--model", "unet"], "--model mlp"),
        (&["--data", "shapes16", "--n-data", "16"], "--model unet"),
        (&["--conditional"], "no class labels"),
        (&["--resume"], "no checkpoint"),
    ];
    for (extra, expect) in cases {
        let mut args = vec!["--steps", "5", "--out", &out_s];
        args.extend_from_slice(extra);
        let r = train(&args);
        assert_rejected(&r, expect);
        assert!(!out.exists(), "{extra:?} created {out_s}");
    }
}

#[test]
fn train_refuse_resume_and_sample() {
    let root = tempfile::tempdir().unwrap();
    let (a, b) = (root.path().join("a"), root.path().join("b"));
    let (a_s, b_s) = (path_str(&a), path_str(&b));

    // 20 straight steps: checkpoint, 20 rows of loss, the plot.
    let r = train(&["--steps", "20", "--out", &a_s]);
    assert!(r.ok(), "{}", r.stderr);
    assert!(r.stdout.contains("final loss (smoothed)"), "{}", r.stdout);
    let csv = std::fs::read_to_string(a.join("loss.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "step,loss,grad_norm,lr");
    assert_eq!(lines.len(), 21);
    assert!(lines[20].starts_with("20,"));
    let png = std::fs::read(a.join("loss.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let ckpt_a = a.join("model.safetensors");
    let ck_a = load(&ckpt_a);
    assert_eq!(ck_a.info.step, 20);
    assert_eq!(ck_a.info.sde, "VpSde");
    assert_eq!(ck_a.info.data.as_deref(), Some("moons"));

    // Again without --resume: refused, nothing touched.
    let bytes = std::fs::read(&ckpt_a).unwrap();
    let r = train(&["--steps", "20", "--out", &a_s]);
    assert_rejected(&r, "already holds a checkpoint at step 20; pass --resume");
    assert_eq!(std::fs::read(&ckpt_a).unwrap(), bytes);
    assert_eq!(std::fs::read_to_string(a.join("loss.csv")).unwrap(), csv);

    // 10 steps, then resumed to 20: the weights, EMA and losses of the straight run.
    let r = train(&["--steps", "10", "--checkpoint-every", "4", "--out", &b_s]);
    assert!(r.ok(), "{}", r.stderr);
    let r = train(&[
        "--steps",
        "20",
        "--checkpoint-every",
        "4",
        "--out",
        &b_s,
        "--resume",
    ]);
    assert!(r.ok(), "{}", r.stderr);
    let ckpt_b = b.join("model.safetensors");
    let ck_b = load(&ckpt_b);
    assert_eq!(ck_b.info.step, 20);
    for prefix in ["net", "ema"] {
        assert_eq!(group(&ck_a, prefix), group(&ck_b, prefix), "{prefix}/*");
    }
    assert_eq!(std::fs::read_to_string(b.join("loss.csv")).unwrap(), csv);

    // Resuming with other settings or another SDE is refused and changes nothing.
    let bytes = std::fs::read(&ckpt_b).unwrap();
    let r = train(&["--steps", "30", "--lr", "0.01", "--out", &b_s, "--resume"]);
    assert_rejected(&r, "other settings");
    let r = train(&[
        "--steps",
        "30",
        "--time-density",
        "logit-normal",
        "--out",
        &b_s,
        "--resume",
    ]);
    assert_rejected(&r, "other settings");
    let r = train(&["--steps", "30", "--sde", "ve", "--out", &b_s, "--resume"]);
    assert_rejected(&r, "trained for the SDE VpSde, not VeSde");
    let r = train(&["--steps", "20", "--out", &b_s, "--resume"]);
    assert_rejected(&r, "already trained to 20 steps");
    assert_eq!(std::fs::read(&ckpt_b).unwrap(), bytes);

    // Sampling: the SDE comes from the checkpoint; another one is refused.
    let model = format!("ckpt:{}", path_str(&ckpt_a));
    let samples = root.path().join("s.npy");
    let samples_s = path_str(&samples);
    let sample = |extra: &[&str]| {
        let mut args = ddim_sample(&model, "10", "100", &samples_s);
        args.extend_from_slice(extra);
        sbdm(&args)
    };
    let r = sample(&[]);
    assert!(r.ok(), "{}", r.stderr);
    assert!(r.stdout.contains("ddim on vp (VpSde)"), "{}", r.stdout);
    assert!(r.stdout.contains("E|x|^2"), "{}", r.stdout);
    let x = sbdm_runtime::io::read_npy(&samples, 2).unwrap();
    assert_eq!(x.dims(), [100, 2]);
    std::fs::remove_file(&samples).unwrap();
    assert_rejected(&sample(&["--sde", "ve"]), "not VeSde");
    assert!(!samples.exists());

    // A checkpoint cut in half: the loader's message, exit code 1.
    let cut = root.path().join("cut.safetensors");
    let bytes = std::fs::read(&ckpt_a).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let cut_model = format!("ckpt:{}", path_str(&cut));
    for sde in [None, Some("vp")] {
        let mut args = vec![
            "sample",
            "--model",
            &cut_model,
            "--sampler",
            "ddim",
            "--steps",
            "10",
            "--out",
            &samples_s,
        ];
        if let Some(sde) = sde {
            args.extend(["--sde", sde]);
        }
        assert_rejected(&sbdm(&args), "truncated or corrupt");
    }
    assert!(!samples.exists());
}

/// A NaN loss stops the run naming the step; the last periodic checkpoint is kept and
/// the log holds the steps taken.
#[test]
fn nan_loss_stops_and_keeps_the_checkpoint() {
    let root = tempfile::tempdir().unwrap();
    let out: PathBuf = root.path().join("nan");
    let out_s = path_str(&out);
    // A learning rate of 1e30 (1e28 in the first warm-up step) overflows the weights.
    let r = train(&[
        "--steps",
        "20",
        "--lr",
        "1e30",
        "--checkpoint-every",
        "1",
        "--out",
        &out_s,
    ]);
    assert_rejected(&r, "training stopped at step 2");
    assert_eq!(load(&out.join("model.safetensors")).info.step, 1);
    let csv = std::fs::read_to_string(out.join("loss.csv")).unwrap();
    assert_eq!(csv.lines().count(), 2, "{csv}");
    assert!(!out.join("loss.png").exists());
}

/// A U-Net on 16x16 shapes trains, and sampling it writes a PNG grid.
#[test]
fn unet_on_shapes_trains_and_samples_images() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("u");
    let out_s = path_str(&out);
    let r = sbdm(&[
        "train", "--sde", "vp", "--data", "shapes16", "--n-data", "64", "--model", "unet",
        "--width", "8", "--steps", "2", "--batch", "4", "--out", &out_s,
    ]);
    assert!(r.ok(), "{}", r.stderr);
    let model = format!("ckpt:{}", path_str(&out.join("model.safetensors")));
    let (npy, png) = (root.path().join("s.npy"), root.path().join("s.png"));
    let (npy_s, png_s) = (path_str(&npy), path_str(&png));
    let mut args = ddim_sample(&model, "3", "6", &npy_s);
    args.extend(["--plot", png_s.as_str()]);
    let r = sbdm(&args);
    assert!(r.ok(), "{}", r.stderr);
    let x = sbdm_runtime::io::read_npy(&npy, 4).unwrap();
    assert_eq!(x.dims(), [6, 1, 16, 16]);
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
}

/// The fraction of rows of `x` `[N, 2]` within `radius` of `centre`.
fn within(x: &Tensor, centre: [f64; 2], radius: f64) -> f64 {
    let rows = x.to_dtype(DType::F64).unwrap().to_vec2::<f64>().unwrap();
    let inside = rows
        .iter()
        .filter(|r| (r[0] - centre[0]).hypot(r[1] - centre[1]) <= radius)
        .count();
    inside as f64 / rows.len() as f64
}

/// A class-conditional MLP trained on 8 Gaussians (label = component, std 0.5 on a circle
/// of radius 4) samples the class it is asked for: with `--class 3`, > 95 % of DDIM-50
/// samples lie within 3 std (radius 1.5) of component 3's mean; the exact component
/// gives 1 − e^{−4.5} = 98.9 %. Per-sample classes from a file follow their labels, and
/// an unconditional model refuses `--class`. (The CI-sized run; the full-sized figure and
/// its command are in docs/training.md.)
#[test]
fn a_conditional_model_samples_the_class_asked_for() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("cond");
    let out_s = path_str(&out);
    let r = sbdm(&[
        "train",
        "--sde",
        "vp",
        "--data",
        "8gaussians",
        "--model",
        "mlp",
        "--width",
        "128",
        "--conditional",
        "--batch",
        "256",
        "--lr",
        "3e-3",
        "--warmup",
        "50",
        "--schedule",
        "cosine",
        "--ema",
        "0.995",
        "--steps",
        "2500",
        "--out",
        &out_s,
    ]);
    assert!(r.ok(), "{}", r.stderr);
    let model = format!("ckpt:{}", path_str(&out.join("model.safetensors")));
    let samples = root.path().join("s.npy");
    let samples_s = path_str(&samples);
    let mean = |k: usize| {
        let a = std::f64::consts::TAU * k as f64 / 8.0;
        [4.0 * a.cos(), 4.0 * a.sin()]
    };

    let mut args = ddim_sample(&model, "50", "2000", &samples_s);
    args.extend(["--class", "3"]);
    let r = sbdm(&args);
    assert!(r.ok(), "{}", r.stderr);
    assert!(r.stdout.contains("class 3"), "{}", r.stdout);
    let x = sbdm_runtime::io::read_npy(&samples, 2).unwrap();
    let share = within(&x, mean(3), 1.5);
    assert!(
        share > 0.95,
        "--class 3: {share} within 3 std of component 3"
    );
    std::fs::remove_file(&samples).unwrap();

    // One class per sample from a .npy file: each sample near its own component.
    let labels: Vec<u32> = (0..800).map(|i| (i % 8) as u32).collect();
    let labels_path = root.path().join("labels.npy");
    Tensor::from_vec(labels.clone(), 800, &Device::Cpu)
        .unwrap()
        .write_npy(&labels_path)
        .unwrap();
    let labels_s = path_str(&labels_path);
    let mut args = ddim_sample(&model, "50", "800", &samples_s);
    args.extend(["--class", &labels_s]);
    let r = sbdm(&args);
    assert!(r.ok(), "{}", r.stderr);
    let x = sbdm_runtime::io::read_npy(&samples, 2)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec2::<f64>()
        .unwrap();
    let near_own = x
        .iter()
        .zip(&labels)
        .filter(|(r, k)| {
            let m = mean(**k as usize);
            (r[0] - m[0]).hypot(r[1] - m[1]) <= 1.5
        })
        .count() as f64
        / 800.0;
    assert!(
        near_own > 0.95,
        "per-sample classes: {near_own} near their own component"
    );
    std::fs::remove_file(&samples).unwrap();

    // A class out of range, and a class for an unconditional model: one line, nothing written.
    let mut args = ddim_sample(&model, "50", "10", &samples_s);
    args.extend(["--class", "8"]);
    assert_rejected(
        &sbdm(&args),
        "class 8 (sample 0) is out of range: the model has 8 classes",
    );
    let plain = root.path().join("plain");
    let plain_s = path_str(&plain);
    assert!(train(&["--steps", "2", "--out", &plain_s]).ok());
    let plain_model = format!("ckpt:{}", path_str(&plain.join("model.safetensors")));
    let mut args = ddim_sample(&plain_model, "10", "10", &samples_s);
    args.extend(["--class", "0"]);
    assert_rejected(&sbdm(&args), "the model is unconditional");
    assert!(!samples.exists());
}
