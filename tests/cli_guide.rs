//! Controllable generation from the command line: guidance in `sbdm sample`, classifier
//! training, `sbdm translate` and `sbdm inpaint`, each against exact answers where the
//! mixture gives them, and every bad input refused in one line with nothing written.

mod common;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

use common::{sbdm, Run};

const RING: &str = r#"{"weights": [0.25, 0.25, 0.25, 0.25],
  "means": [[2, 0], [0, 2], [-2, 0], [0, -2]], "stds": [0.3, 0.3, 0.3, 0.3]}"#;

/// A 4-D two-component mixture for the translation methods (φ averages coordinate pairs).
const QUAD: &str = r#"{"weights": [0.5, 0.5],
  "means": [[-1, -1, 1, 1], [1, 1, -1, -1]], "stds": [0.4, 0.4]}"#;

struct Dirs {
    root: tempfile::TempDir,
}

impl Dirs {
    fn new() -> Dirs {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("out")).unwrap();
        std::fs::write(root.path().join("ring.json"), RING).unwrap();
        std::fs::write(root.path().join("quad.json"), QUAD).unwrap();
        Dirs { root }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }
    fn s(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }
    fn gmm(&self, name: &str) -> String {
        format!("gmm:{}", self.s(name))
    }
    fn out(&self, name: &str) -> String {
        self.s(&format!("out/{name}"))
    }
    fn out_empty(&self) -> bool {
        std::fs::read_dir(self.path("out"))
            .unwrap()
            .next()
            .is_none()
    }
}

fn ok(r: &Run) {
    assert!(r.ok(), "failed:\n{}{}", r.stdout, r.stderr);
}

/// Fails with one line mentioning `expect`, writing nothing into `out/`.
fn refused(d: &Dirs, args: &[&str], expect: &str) {
    let r = sbdm(args);
    assert!(!r.ok(), "{args:?} succeeded:\n{}", r.stdout);
    let msg = r.stderr.trim();
    assert_eq!(msg.lines().count(), 1, "{args:?}: not one line:\n{msg}");
    assert!(
        msg.contains(expect),
        "{args:?}: `{msg}` does not mention `{expect}`"
    );
    assert!(d.out_empty(), "{args:?} wrote something");
}

/// The number after `label` in a printed table.
fn value(stdout: &str, label: &str) -> f64 {
    let line = stdout.lines().find(|l| l.starts_with(label)).unwrap();
    line[label.len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

fn second_value(stdout: &str, label: &str) -> f64 {
    let line = stdout.lines().find(|l| l.starts_with(label)).unwrap();
    line[label.len()..]
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap()
}

fn read(path: &str) -> Tensor {
    sbdm_runtime::io::read_npy(path, 2).unwrap()
}

#[test]
fn sample_with_guidance() {
    let d = Dirs::new();
    let model = d.gmm("ring.json");
    let base = |out: &str| -> Vec<String> {
        [
            "sample",
            "--sde",
            "vp",
            "--model",
            &model,
            "--sampler",
            "dpmpp2m",
            "--grid",
            "logsnr",
            "--steps",
            "40",
            "--n",
            "2000",
            "--seed",
            "4",
            "--out",
            out,
        ]
        .map(String::from)
        .to_vec()
    };
    let go = |out: &str, extra: &[&str]| {
        let mut args = base(out);
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = sbdm(&args);
        ok(&r);
        r
    };
    for (command, flag) in [
        ("translate", "--method"),
        ("train", "--objective"),
        ("inpaint", "--sampler"),
    ] {
        let r = sbdm(&[command, flag, "help"]);
        ok(&r);
        assert!(
            r.stdout.lines().count() >= 2,
            "{command} {flag} help:\n{}",
            r.stdout
        );
    }
    // Classifier guidance with the mixture's exact posterior, s = 1: component 1.
    let r = go(
        &d.out("cg.npy"),
        &["--class", "1", "--guidance", "classifier", "--metrics"],
    );
    assert!(
        r.stdout
            .contains("classifier guidance s = 1 (exact posterior)"),
        "{}",
        r.stdout
    );
    let (w2, floor) = (
        value(&r.stdout, "sliced W2"),
        second_value(&r.stdout, "sliced W2"),
    );
    assert!(
        w2 < 2.0 * floor,
        "classifier guidance: sliced W2 {w2} vs floor {floor}"
    );
    assert!(
        value(&r.stdout, "max |share - weight|") < 0.01,
        "{}",
        r.stdout
    );
    // CFG at w = 1 is the conditional sampler, at w = 0 the unconditional one: same bytes.
    go(&d.out("cond.npy"), &["--class", "1"]);
    go(
        &d.out("w1.npy"),
        &["--class", "1", "--guidance", "cfg", "--guidance-scale", "1"],
    );
    go(&d.out("free.npy"), &[]);
    go(
        &d.out("w0.npy"),
        &["--class", "1", "--guidance", "cfg", "--guidance-scale", "0"],
    );
    let bytes = |name: &str| std::fs::read(d.out(name)).unwrap();
    assert_eq!(bytes("w1.npy"), bytes("cond.npy"));
    assert_eq!(bytes("w0.npy"), bytes("free.npy"));
    // w = 3 with rescaling and an interval runs and moves the samples.
    go(
        &d.out("w3.npy"),
        &[
            "--class",
            "1",
            "--guidance",
            "cfg",
            "--guidance-scale",
            "3",
            "--cfg-rescale",
            "0.7",
            "--guidance-interval",
            "0.05,20",
        ],
    );
    assert_ne!(bytes("w3.npy"), bytes("cond.npy"));
    for f in ["cg", "cond", "w1", "free", "w0", "w3"] {
        std::fs::remove_file(d.out(&format!("{f}.npy"))).unwrap();
    }

    // Bad input.
    let out = d.out("bad.npy");
    let with = |extra: &[&str]| -> Vec<String> {
        let mut a = base(&out);
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    for (extra, expect) in [
        (vec!["--guidance", "cfg"], "--guidance needs --class"),
        (
            vec!["--class", "9", "--guidance", "classifier"],
            "class 9 (sample 0) is out of range",
        ),
        (
            vec!["--class", "1", "--cfg-rescale", "0.5"],
            "--cfg-rescale applies to --guidance cfg",
        ),
        (
            vec!["--class", "1", "--guidance", "cfg", "--cfg-rescale", "2"],
            "rescale phi must be in [0, 1]",
        ),
        (
            vec![
                "--class",
                "1",
                "--guidance",
                "cfg",
                "--guidance-interval",
                "3,1",
            ],
            "guidance interval must be 0 <= lo <= hi",
        ),
        (
            vec!["--guidance-scale", "2"],
            "--guidance-scale applies to --guidance",
        ),
        (
            vec![
                "--class",
                "1",
                "--guidance",
                "classifier",
                "--classifier",
                "mlp.bin",
            ],
            "--classifier must be ckpt:FILE",
        ),
    ] {
        let args = with(&extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        refused(&d, &args, expect);
    }
}

/// `sbdm train --objective classifier` for a few steps on labelled data.
fn train_classifier(d: &Dirs, name: &str, data: &[&str]) -> String {
    let out = d.s(name);
    let mut args = vec![
        "train",
        "--sde",
        "vp",
        "--objective",
        "classifier",
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
        &out,
    ];
    args.extend_from_slice(data);
    let r = sbdm(&args);
    ok(&r);
    assert!(r.stdout.contains("classifier of"), "{}", r.stdout);
    format!("ckpt:{}", d.path(name).join("model.safetensors").display())
}

#[test]
fn classifier_training_and_guidance_with_it() {
    let d = Dirs::new();
    let clf = train_classifier(&d, "clf", &["--data", "8gaussians"]);
    let ck =
        sbdm_runtime::train::checkpoint::read_info(clf.strip_prefix("ckpt:").unwrap()).unwrap();
    assert_eq!(
        ck.kind,
        sbdm_runtime::train::ModelKind::Classifier { num_classes: 8 }
    );
    // A classifier on a .npy file with --labels.
    let x = Tensor::new(
        &[[0f32, 1.0], [1.0, 0.0], [2.0, 2.0], [-1.0, 0.5]],
        &Device::Cpu,
    )
    .unwrap();
    x.write_npy(d.path("x.npy")).unwrap();
    Tensor::new(&[0i64, 1, 1, 0], &Device::Cpu)
        .unwrap()
        .write_npy(d.path("y.npy"))
        .unwrap();
    let (xs, ys) = (d.s("x.npy"), d.s("y.npy"));
    train_classifier(&d, "clf_npy", &["--data", &xs, "--labels", &ys]);

    // Guidance with the trained classifier on a mixture of the same dimension.
    let out = d.out("g.npy");
    let model = d.gmm("ring.json");
    let r = sbdm(&[
        "sample",
        "--sde",
        "vp",
        "--model",
        &model,
        "--sampler",
        "ddim",
        "--steps",
        "20",
        "--n",
        "100",
        "--class",
        "5",
        "--guidance",
        "classifier",
        "--classifier",
        &clf,
        "--guidance-scale",
        "2",
        "--out",
        &out,
    ]);
    ok(&r);
    assert!(r.stdout.contains("(trained classifier)"), "{}", r.stdout);
    std::fs::remove_file(&out).unwrap();
    // The law is not known exactly once a trained classifier guides: no --metrics.
    let r = sbdm(&[
        "sample",
        "--sde",
        "vp",
        "--model",
        &model,
        "--sampler",
        "ddim",
        "--steps",
        "2",
        "--n",
        "10",
        "--class",
        "5",
        "--guidance",
        "classifier",
        "--classifier",
        &clf,
        "--metrics",
        "--out",
        &out,
    ]);
    assert!(!r.ok(), "{}", r.stdout);
    assert!(
        r.stderr.contains("--metrics applies to a mixture model"),
        "{}",
        r.stderr
    );
    assert!(!Path::new(&out).exists());

    // Refusals: no labels, flags of the other objective, a classifier of another SDE,
    // a class the classifier does not have.
    let plain = d.s("plain");
    let tiny = |extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = [
            "train",
            "--sde",
            "vp",
            "--objective",
            "classifier",
            "--model",
            "mlp",
            "--steps",
            "2",
            "--out",
            &plain,
        ]
        .map(String::from)
        .to_vec();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    for (extra, expect) in [
        (vec!["--data", "moons"], "`moons` has no class labels"),
        (
            vec!["--data", "8gaussians", "--conditional"],
            "--conditional applies to --objective dsm",
        ),
        (
            vec!["--data", "8gaussians", "--param", "v"],
            "--param applies to --objective dsm",
        ),
        (
            vec!["--data", "8gaussians", "--labels", &ys],
            "--labels applies to --data FILE.npy",
        ),
    ] {
        let args = tiny(&extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        refused(&d, &args, expect);
        assert!(!d.path("plain").exists());
    }
    let bad_labels = d.s("bad.npy");
    Tensor::new(&[0i64, 1], &Device::Cpu)
        .unwrap()
        .write_npy(&bad_labels)
        .unwrap();
    let args = tiny(&["--data", &xs, "--labels", &bad_labels]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    refused(&d, &args, "4 samples but 2 labels");
    let base = |sde: &'static str, class: &'static str| -> Vec<String> {
        [
            "sample",
            "--sde",
            sde,
            "--model",
            &model,
            "--sampler",
            "ddim",
            "--steps",
            "10",
            "--class",
            class,
            "--guidance",
            "classifier",
            "--classifier",
            &clf,
            "--out",
            &out,
        ]
        .map(String::from)
        .to_vec()
    };
    for (args, expect) in [
        (base("ve", "1"), "trained for the SDE VpSde, not VeSde"),
        (
            base("vp", "8"),
            "class 8 (sample 0) is out of range: the model has 8 classes",
        ),
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        refused(&d, &args, expect);
    }
}

/// `n` exact samples of the 4-D mixture's component `k`, as a .npy file.
fn sources(d: &Dirs, name: &str, k: usize, n: usize) -> String {
    let mix = sbdm_runtime::model::mixture::GaussianMixture::from_json(QUAD).unwrap();
    mix.component(k)
        .unwrap()
        .sample(n, 3, &Device::Cpu)
        .unwrap()
        .write_npy(d.path(name))
        .unwrap();
    d.s(name)
}

#[test]
fn translate_with_each_method() {
    let d = Dirs::new();
    let model = d.gmm("quad.json");
    let src = sources(&d, "src.npy", 0, 64);
    // A domain classifier on 4-D labelled data (component index).
    let mix = sbdm_runtime::model::mixture::GaussianMixture::from_json(QUAD).unwrap();
    let x = mix.sample(256, 5, &Device::Cpu).unwrap();
    let y: Vec<i64> = mix
        .nearest_component(&x)
        .unwrap()
        .into_iter()
        .map(|k| k as i64)
        .collect();
    x.write_npy(d.path("dom.npy")).unwrap();
    Tensor::new(y.as_slice(), &Device::Cpu)
        .unwrap()
        .write_npy(d.path("dom_y.npy"))
        .unwrap();
    let (dx, dy) = (d.s("dom.npy"), d.s("dom_y.npy"));
    let clf = train_classifier(&d, "dom", &["--data", &dx, "--labels", &dy]);
    let base = |method: &'static str, out: &str| -> Vec<String> {
        [
            "translate",
            "--method",
            method,
            "--sde",
            "vp",
            "--model",
            &model,
            "--source",
            &src,
            "--steps",
            "50",
            "--out",
            out,
        ]
        .map(String::from)
        .to_vec()
    };
    let mut low = Vec::new();
    for (method, extra) in [
        ("sdedit", vec!["--t0", "0.5"]),
        ("ilvr", vec!["--factor", "2"]),
        (
            "egsde",
            vec![
                "--t0",
                "0.5",
                "--factor",
                "2",
                "--classifier",
                &clf,
                "--lambda-s",
                "1",
                "--lambda-i",
                "50",
            ],
        ),
    ] {
        let out = d.out(&format!("{method}.npy"));
        let png = d.out(&format!("{method}.png"));
        let mut args = base(method, &out);
        args.extend(extra.iter().map(|s| s.to_string()));
        args.extend(["--plot".to_string(), png.clone()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = sbdm(&args);
        ok(&r);
        assert_eq!(read(&out).dims(), [64, 4]);
        assert_eq!(&std::fs::read(&png).unwrap()[..4], b"\x89PNG");
        low.push(value(&r.stdout, "mean (phi(out) - phi(src))^2"));
    }
    // SDEdit under Philox noise (generated inside the steps): as faithful as under ChaCha,
    // up to the sample's noise.
    let out = d.out("philox.npy");
    let mut args = base("sdedit", &out);
    args.extend(["--t0", "0.5", "--noise", "philox"].map(String::from));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = sbdm(&args);
    ok(&r);
    assert_eq!(read(&out).dims(), [64, 4]);
    let philox_low = value(&r.stdout, "mean (phi(out) - phi(src))^2");
    assert!(
        philox_low < 2.0 * low[0] + 0.05,
        "sdedit low-pass MSE: {philox_low} (philox) vs {} (chacha)",
        low[0]
    );
    std::fs::remove_file(&out).unwrap();
    // ILVR refines the low frequencies to the source's: the most faithful of the three.
    assert!(
        low[1] < low[0] && low[1] < 0.05,
        "low-pass MSE sdedit/ilvr/egsde: {low:?}"
    );
    for f in ["sdedit", "ilvr", "egsde"] {
        for ext in ["npy", "png"] {
            std::fs::remove_file(d.out(&format!("{f}.{ext}"))).unwrap();
        }
    }
    // Bad input.
    let out = d.out("bad.npy");
    let wrong = d.s("wrong.npy");
    Tensor::zeros((3, 2), DType::F32, &Device::Cpu)
        .unwrap()
        .write_npy(&wrong)
        .unwrap();
    for (method, extra, expect) in [
        ("ilvr", vec!["--factor", "3"], "power of two"),
        (
            "ilvr",
            vec!["--factor", "8"],
            "does not divide the dimension 4",
        ),
        (
            "sdedit",
            vec!["--t0", "2"],
            "--t0 = 2 is outside the SDE's time range",
        ),
        ("sdedit", vec![], "--t0 is needed"),
        (
            "sdedit",
            vec!["--t0", "0.5", "--factor", "2"],
            "--factor applies to --method ilvr or egsde",
        ),
        ("egsde", vec!["--t0", "0.5"], "missing --classifier"),
        ("ilvr", vec!["--cutoff", "5"], "cut-off = 5 is outside"),
    ] {
        let mut args = base(method, &out);
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        refused(&d, &args, expect);
    }
    let mut args = base("sdedit", &out);
    args.extend(["--t0".into(), "0.5".into()]);
    let i = args.iter().position(|a| a == &src).unwrap();
    args[i] = wrong.clone();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    refused(
        &d,
        &args,
        "the source has dimension 2 but the model has dimension 4",
    );
}

#[test]
fn inpaint_keeps_the_known_part() {
    let d = Dirs::new();
    let model = d.gmm("ring.json");
    let image = d.s("image.npy");
    Tensor::from_vec(
        (0..200).flat_map(|_| [1.9f32, 0.0]).collect::<Vec<f32>>(),
        (200, 2),
        &Device::Cpu,
    )
    .unwrap()
    .write_npy(&image)
    .unwrap();
    let mask = d.s("mask.npy");
    Tensor::new(&[1f32, 0.0], &Device::Cpu)
        .unwrap()
        .write_npy(&mask)
        .unwrap();
    let out = d.out("filled.npy");
    let base = |extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = [
            "inpaint", "--sde", "vp", "--model", &model, "--image", &image, "--mask", &mask,
            "--steps", "50", "--out", &out,
        ]
        .map(String::from)
        .to_vec();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    // Under either noise generator (Philox's generated inside the steps and RePaint's
    // jumps).
    let mut completions = Vec::new();
    for noise in ["chacha", "philox"] {
        let args = base(&["--resample", "3", "--noise", noise]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = sbdm(&args);
        ok(&r);
        assert_eq!(value(&r.stdout, "NFE"), 150.0);
        let x = read(&out).to_vec2::<f32>().unwrap();
        assert!(
            x.iter().all(|r| r[0] == 1.9),
            "{noise}: the known coordinate moved"
        );
        // x₁ = 1.9 is component 0's (mean (2, 0), std 0.3): x₂ should sit near 0.
        let near = x.iter().filter(|r| r[1].abs() < 1.2).count();
        assert!(
            near > 180,
            "{noise}: only {near} of 200 completions near component 0"
        );
        completions.push(x);
        std::fs::remove_file(&out).unwrap();
    }
    assert_ne!(completions[0], completions[1], "the two generators' noise");

    let wrong_mask = d.s("mask3.npy");
    Tensor::new(&[1f32, 0.0, 1.0], &Device::Cpu)
        .unwrap()
        .write_npy(&wrong_mask)
        .unwrap();
    let half = d.s("half.npy");
    Tensor::new(&[0.5f32, 0.0], &Device::Cpu)
        .unwrap()
        .write_npy(&half)
        .unwrap();
    for (extra, expect, swap) in [
        (vec![], "the mask has shape [3]", Some(&wrong_mask)),
        (vec![], "0 (to sample) and 1 (known)", Some(&half)),
        (
            vec!["--resample", "3", "--sampler", "dpmpp2m"],
            "resampling (r = 3) repeats single steps",
            None,
        ),
        (
            vec!["--resample", "0"],
            "resampling must be at least 1",
            None,
        ),
    ] {
        let mut args = base(&extra);
        if let Some(m) = swap {
            let i = args.iter().position(|a| a == &mask).unwrap();
            args[i] = m.clone();
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        refused(&d, &args, expect);
    }
    let _ = Path::new(&out);
}
