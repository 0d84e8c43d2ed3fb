//! `sbdm sample` end to end: samples from an exact mixture score land in a float32
//! `.npy` of the right shape and are close to exact samples; every bad input exits
//! non-zero with a one-line message and writes nothing.

mod common;

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};

use common::sbdm;

const MIXTURE: &str = r#"{"weights": [0.25, 0.25, 0.25, 0.25],
  "means": [[2, 0], [0, 2], [-2, 0], [0, -2]], "stds": [0.3, 0.3, 0.3, 0.3]}"#;

/// A temp dir with `in/` (inputs: the mixture JSON) and an empty `out/`.
struct Dirs {
    _root: tempfile::TempDir,
    input: PathBuf,
    out: PathBuf,
}

impl Dirs {
    fn new() -> Dirs {
        let root = tempfile::tempdir().unwrap();
        let (input, out) = (root.path().join("in"), root.path().join("out"));
        std::fs::create_dir(&input).unwrap();
        std::fs::create_dir(&out).unwrap();
        std::fs::write(input.join("gmm.json"), MIXTURE).unwrap();
        Dirs {
            _root: root,
            input,
            out,
        }
    }
    fn model(&self) -> String {
        format!("gmm:{}", self.input.join("gmm.json").display())
    }
    fn write_model(&self, name: &str, json: &str) -> String {
        std::fs::write(self.input.join(name), json).unwrap();
        format!("gmm:{}", self.input.join(name).display())
    }
    fn out_file(&self, name: &str) -> String {
        self.out.join(name).display().to_string()
    }
    fn out_entries(&self) -> Vec<String> {
        std::fs::read_dir(&self.out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }
}

/// The number in the first column after `label` in the printed table.
fn value(stdout: &str, label: &str) -> f64 {
    let line = stdout
        .lines()
        .find(|l| l.starts_with(label))
        .unwrap_or_else(|| panic!("no `{label}` line in:\n{stdout}"));
    line[label.len()..]
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no number on `{line}`"))
}

/// The number in the second column (the reference) after `label`.
fn second_value(stdout: &str, label: &str) -> f64 {
    let line = stdout.lines().find(|l| l.starts_with(label)).unwrap();
    line[label.len()..]
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no reference on `{line}`"))
}

/// `name` starts a line of a `help` listing.
fn assert_listed(stdout: &str, name: &str) {
    assert!(
        stdout
            .lines()
            .any(|l| l.split_whitespace().next() == Some(name)),
        "{name} missing from:\n{stdout}"
    );
}

fn read_npy(path: &Path) -> Tensor {
    sbdm_runtime::io::read_npy(path, 2).expect("a float32 [N, D] .npy")
}

#[test]
fn ddim_samples_are_close_to_exact_samples() {
    let d = Dirs::new();
    let (out, png) = (d.out_file("s.npy"), d.out_file("s.png"));
    let model = d.model();
    let args = [
        "sample",
        "--sde",
        "vp",
        "--model",
        &model,
        "--sampler",
        "ddim",
        "--steps",
        "50",
        "--n",
        "2000",
        "--seed",
        "3",
        "--out",
        &out,
        "--metrics",
        "--plot",
        &png,
    ];
    let r = sbdm(&args);
    assert!(r.ok(), "{}", r.stderr);
    let x = read_npy(Path::new(&out));
    assert_eq!(x.dims(), [2000, 2]);
    assert_eq!(value(&r.stdout, "NFE"), 50.0);
    // Exact sets of 2000 are ~0.1 apart (the floor printed beside the value); a wrong
    // score or sampler is > 1 away. With this seed the samples are 0.07 from exact ones.
    let w2 = value(&r.stdout, "sliced W2");
    let floor = second_value(&r.stdout, "sliced W2");
    assert!(w2 < 0.2 && w2 < 2.0 * floor, "sliced W2 {w2}\n{}", r.stdout);
    // Without --metrics the one-pass checks only, and the hint, which works (above).
    let cheap: Vec<&str> = args.iter().copied().filter(|a| *a != "--metrics").collect();
    let r2 = sbdm(&cheap);
    assert!(r2.ok(), "{}", r2.stderr);
    assert!(r2.stdout.contains("add --metrics"), "{}", r2.stdout);
    assert_eq!(value(&r2.stdout, "E|x|^2"), value(&r.stdout, "E|x|^2"));
    // E|x|^2 = 4 + 2·(a²·0.3² + b²) = 4.180 at t_min; DDIM's 50-step bias is about -2%.
    let m2 = value(&r.stdout, "E|x|^2");
    assert!((m2 - 4.18).abs() < 0.05 * 4.18, "E|x|^2 {m2}\n{}", r.stdout);
    let png_bytes = std::fs::read(&png).unwrap();
    assert_eq!(&png_bytes[..8], b"\x89PNG\r\n\x1a\n");
    // Only the two outputs: no temporary files left behind.
    let mut entries = d.out_entries();
    entries.sort();
    assert_eq!(entries, ["s.npy", "s.png"]);

    // The same seed gives the same samples, bit for bit.
    let again = d.out_file("again.npy");
    let mut args2 = args.to_vec();
    let i = args2.iter().position(|a| *a == out.as_str()).unwrap();
    args2[i] = &again;
    args2.truncate(args2.len() - 2); // no plot
    assert!(sbdm(&args2).ok());
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&again).unwrap());
}

#[test]
fn init_is_used_as_given() {
    // On VE (b(T) = 50) the CLI's DDIM from --init equals, bit for bit, the library's DDIM
    // from the same f32 array: the init is neither redrawn nor rescaled (a variant that
    // multiplied it by b(T), or drew from the prior, differs by orders of magnitude).
    use sbdm_runtime::model::mixture::GaussianMixture;
    use sbdm_runtime::sampling::{Noise, Sampler, TimeGrid};
    use sbdm_runtime::sde::builtin::VeSde;
    let d = Dirs::new();
    let init = d.input.join("x_T.npy");
    // 64 points on the VE prior's scale: deterministic values, no RNG needed.
    let v: Vec<f32> = (0..128)
        .map(|i| 50.0 * (((i * 37 % 101) as f32 / 50.0) - 1.0))
        .collect();
    let x_t = Tensor::from_vec(v, (64, 2), &Device::Cpu).unwrap();
    x_t.write_npy(&init).unwrap();
    let out = d.out_file("s.npy");
    let model = d.model();
    let init_s = init.display().to_string();
    let r = sbdm(&[
        "sample",
        "--sde",
        "ve",
        "--model",
        &model,
        "--sampler",
        "ddim",
        "--steps",
        "20",
        "--init",
        &init_s,
        "--out",
        &out,
    ]);
    assert!(r.ok(), "{}", r.stderr);
    let got = read_npy(Path::new(&out));
    assert_eq!(got.dims(), [64, 2]);
    let mix = GaussianMixture::load(&d.input.join("gmm.json")).unwrap();
    let ve = VeSde::default();
    let mut noise = Noise::new(0, 0, 64, &[2], &Device::Cpu);
    let want = Sampler::Ddim { eta: 0.0 }
        .sample(
            &ve,
            &mix.model(&ve),
            &x_t,
            &TimeGrid::uniform(20),
            &mut noise,
        )
        .unwrap()
        .x
        .to_dtype(candle_core::DType::F32)
        .unwrap();
    let (got, want): (Vec<f32>, Vec<f32>) = (
        got.flatten_all().unwrap().to_vec1().unwrap(),
        want.flatten_all().unwrap().to_vec1().unwrap(),
    );
    assert!(
        got.iter()
            .zip(&want)
            .all(|(a, b)| a.to_bits() == b.to_bits()),
        "the CLI's samples from --init differ from the library's"
    );
}

#[test]
fn help_lists_every_name() {
    let r = sbdm(&["sample", "--sampler", "help"]);
    assert!(r.ok());
    for name in [
        "em",
        "reverse-diffusion",
        "ancestral",
        "pc",
        "ode-euler",
        "heun",
        "rk45",
        "ddpm",
        "ddim",
        "dpm1",
        "dpm2",
        "dpmpp2m",
        "dpmpp3m",
    ] {
        assert_listed(&r.stdout, name);
    }
    let r = sbdm(&["sample", "--sde", "help"]);
    assert!(r.ok());
    for name in [
        "vp",
        "subvp",
        "ve",
        "edm",
        "cosine",
        "ddpm-linear",
        "ddpm-scaled-linear",
        "ddpm-cosine",
        "ddpm-linear-zsnr",
        "ddpm-scaled-linear-zsnr",
        "ddpm-cosine-zsnr",
    ] {
        assert_listed(&r.stdout, name);
    }
}

/// DDIM (η = 0) on DDPM's linear β table written out from the papers, in f64: ᾱ from the
/// β linspace, the exact mixture's ε at each timestep, `x ← √ᾱ_prev·x̂_0 + √(1 − ᾱ_prev)·ε̂`,
/// over the timesteps `steps` (decreasing; the last is the one landed on).
fn ddim_on_the_linear_table(x_t: &[[f64; 2]], steps: &[usize]) -> Vec<[f64; 2]> {
    let n = 1000;
    let mut alpha_bar = Vec::with_capacity(n);
    let mut prod = 1.0;
    for i in 0..n {
        let beta = 1e-4 + (0.02 - 1e-4) * i as f64 / (n - 1) as f64;
        prod *= 1.0 - beta;
        alpha_bar.push(prod);
    }
    // The four components of MIXTURE: weights 1/4, means (±2, 0), (0, ±2), std 0.3.
    let means = [[2.0, 0.0], [0.0, 2.0], [-2.0, 0.0], [0.0, -2.0]];
    let eps_hat = |x: [f64; 2], ab: f64| -> [f64; 2] {
        let var = ab * 0.09 + 1.0 - ab;
        let logs: Vec<f64> = means
            .iter()
            .map(|m| {
                let d = [x[0] - ab.sqrt() * m[0], x[1] - ab.sqrt() * m[1]];
                -(d[0] * d[0] + d[1] * d[1]) / (2.0 * var)
            })
            .collect();
        let top = logs.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let w: Vec<f64> = logs.iter().map(|l| (l - top).exp()).collect();
        let total: f64 = w.iter().sum();
        let mut score = [0.0; 2];
        for (k, m) in means.iter().enumerate() {
            for j in 0..2 {
                score[j] -= w[k] / total * (x[j] - ab.sqrt() * m[j]) / var;
            }
        }
        [-(1.0 - ab).sqrt() * score[0], -(1.0 - ab).sqrt() * score[1]]
    };
    x_t.iter()
        .map(|&x0| {
            let mut x = x0;
            for w in steps.windows(2) {
                let (ab, prev) = (alpha_bar[w[0]], alpha_bar[w[1]]);
                let e = eps_hat(x, ab);
                for j in 0..2 {
                    let x0_hat = (x[j] - (1.0 - ab).sqrt() * e[j]) / ab.sqrt();
                    x[j] = prev.sqrt() * x0_hat + (1.0 - prev).sqrt() * e[j];
                }
            }
            x
        })
        .collect()
}

#[test]
fn discrete_schedule_samples() {
    // DDIM on ddpm-linear with leading spacing (50 of 1000 timesteps: 980, 960, ..., 0),
    // from a given x_T, against DDIM written out from the β table (f64, above): equal to
    // f32 rounding (the CLI's output is f32: measured 2e-6, 2e-5 allowed on values of size
    // ~2). The same reference one timestep off (981, ..., 1) is 1.7e-3 away: the test can
    // fail.
    let d = Dirs::new();
    let init = d.input.join("x_T.npy");
    let x_t: Vec<[f64; 2]> = (0..100)
        .map(|i| {
            let u = |k: usize| ((i * 37 + k * 53) % 101) as f64 / 50.5 - 1.0;
            [1.7 * u(0), 1.7 * u(1)]
        })
        .collect();
    let flat: Vec<f32> = x_t
        .iter()
        .flat_map(|r| [r[0] as f32, r[1] as f32])
        .collect();
    Tensor::from_vec(flat, (100, 2), &Device::Cpu)
        .unwrap()
        .write_npy(&init)
        .unwrap();
    let out = d.out_file("s.npy");
    let model = d.model();
    let init_s = init.display().to_string();
    let r = sbdm(&[
        "sample",
        "--sde",
        "ddpm-linear",
        "--model",
        &model,
        "--sampler",
        "ddim",
        "--spacing",
        "leading",
        "--steps",
        "50",
        "--init",
        &init_s,
        "--out",
        &out,
    ]);
    assert!(r.ok(), "{}", r.stderr);
    let got: Vec<f32> = read_npy(Path::new(&out))
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    // x_T as the CLI read it (f32).
    let x_t: Vec<[f64; 2]> = x_t
        .iter()
        .map(|r| [f64::from(r[0] as f32), f64::from(r[1] as f32)])
        .collect();
    let gap = |steps: &[usize]| -> f64 {
        ddim_on_the_linear_table(&x_t, steps)
            .iter()
            .flatten()
            .zip(&got)
            .map(|(w, g)| (w - f64::from(*g)).abs())
            .fold(0.0, f64::max)
    };
    let leading: Vec<usize> = (0..50).rev().map(|i| 20 * i).collect();
    let off_by_one: Vec<usize> = leading.iter().map(|i| i + 1).collect();
    let (exact, wrong) = (gap(&leading), gap(&off_by_one));
    println!("CLI vs the table's DDIM {exact:e}; one timestep off {wrong:e}");
    assert!(exact < 2e-5, "CLI vs the table's DDIM: {exact}");
    assert!(
        wrong > 40.0 * exact.max(1e-6),
        "off by one: {wrong} vs {exact}"
    );
}

#[test]
fn denoise_is_tweedie_in_closed_form() {
    // One Gaussian N(μ, s²I): at t_min, E[x_0 | x] = μ + a·s²/(a²s² + b²)·(x − a·μ) on VP.
    // `--denoise` must give exactly that from the undenoised samples (same seed).
    use sbdm_runtime::sde::builtin::VpSde;
    use sbdm_runtime::{GaussianKernel, Sde};
    let d = Dirs::new();
    let model = d.write_model(
        "one.json",
        r#"{"weights": [1.0], "means": [[1.5, -0.5]], "stds": [0.4]}"#,
    );
    let (plain, denoised) = (d.out_file("x.npy"), d.out_file("x0.npy"));
    for (out, extra) in [(&plain, None), (&denoised, Some("--denoise"))] {
        let mut args = vec![
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
            "200",
            "--out",
            out,
        ];
        args.extend(extra);
        let r = sbdm(&args);
        assert!(r.ok(), "{}", r.stderr);
    }
    let vp = VpSde::default();
    let t = vp.time_range().0;
    let (a, b, s2, mu) = (vp.mean_coef(t), vp.std(t), 0.16, [1.5, -0.5]);
    let gain = a * s2 / (a * a * s2 + b * b);
    let x: Vec<f32> = read_npy(Path::new(&plain))
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let x0: Vec<f32> = read_npy(Path::new(&denoised))
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let mut worst = 0.0_f64;
    for (i, (xi, gi)) in x.iter().zip(&x0).enumerate() {
        let m = mu[i % 2];
        let want = m + gain * (f64::from(*xi) - a * m);
        worst = worst.max((want - f64::from(*gi)).abs());
    }
    // f32 samples: a few ulp of values ~2 (measured 1.4e-7); --denoise must change x.
    println!("denoised vs Tweedie {worst:e}");
    assert!(worst < 1e-5, "denoised vs Tweedie: {worst}");
    let undone = x
        .iter()
        .zip(&x0)
        .map(|(p, q)| (p - q).abs())
        .fold(0.0_f32, f32::max);
    assert!(undone > 1e-4, "--denoise changed nothing: {undone}");
}

/// Runs `sbdm sample` with one thing wrong: it must fail with one line naming the
/// problem (`expect` in it) and leave `out/` empty.
fn rejects(d: &Dirs, changes: &[(&str, &str)], expect: &str) {
    let out = d.out_file("s.npy");
    let png = d.out_file("s.png");
    let model = d.model();
    let mut args: Vec<(&str, String)> = vec![
        ("--sde", "vp".into()),
        ("--model", model),
        ("--sampler", "ddim".into()),
        ("--steps", "10".into()),
        ("--n", "100".into()),
        ("--out", out),
        ("--plot", png),
    ];
    for (flag, v) in changes {
        match args.iter_mut().find(|(f, _)| f == flag) {
            Some(a) => a.1 = v.to_string(),
            None => args.push((flag, v.to_string())),
        }
    }
    if changes.iter().any(|(f, _)| *f == "--init") {
        args.retain(|(f, _)| *f != "--n");
    }
    if changes.iter().any(|(f, _)| *f == "--times") {
        args.retain(|(f, _)| *f != "--steps");
    }
    let mut argv = vec!["sample".to_string()];
    for (f, v) in args {
        argv.push(f.to_string());
        argv.push(v);
    }
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let r = sbdm(&argv);
    assert!(!r.ok(), "{changes:?} succeeded:\n{}", r.stdout);
    let msg = r.stderr.trim();
    assert_eq!(msg.lines().count(), 1, "{changes:?}: not one line:\n{msg}");
    assert!(
        msg.contains(expect),
        "{changes:?}: `{msg}` does not mention `{expect}`"
    );
    assert!(
        d.out_entries().is_empty(),
        "{changes:?} wrote {:?}",
        d.out_entries()
    );
}

#[test]
fn bad_input_fails_with_one_line_and_writes_nothing() {
    let d = Dirs::new();
    // Mixture JSON: malformed, weights not summing to 1, ragged means, std <= 0, missing.
    let m = d.write_model("bad.json", r#"{"weights": [1.0], "means": [[0, 0]"#);
    rejects(&d, &[("--model", &m)], "bad.json");
    let m = d.write_model(
        "sum.json",
        r#"{"weights": [0.5, 0.6], "means": [[0, 0], [1, 1]], "stds": [1, 1]}"#,
    );
    rejects(&d, &[("--model", &m)], "sum to");
    let m = d.write_model(
        "ragged.json",
        r#"{"weights": [0.5, 0.5], "means": [[0, 0], [1]], "stds": [1, 1]}"#,
    );
    rejects(&d, &[("--model", &m)], "ragged");
    let m = d.write_model(
        "std.json",
        r#"{"weights": [0.5, 0.5], "means": [[0, 0], [1, 1]], "stds": [1, 0]}"#,
    );
    rejects(&d, &[("--model", &m)], "std");
    let missing = format!("gmm:{}", d.input.join("nope.json").display());
    rejects(&d, &[("--model", &missing)], "nope.json");
    rejects(&d, &[("--model", "mlp:net.safetensors")], "gmm:FILE.json");
    // x_T of the wrong dimension, and a file that is not .npy.
    let init3 = d.input.join("x3.npy");
    Tensor::zeros((5, 3), candle_core::DType::F32, &Device::Cpu)
        .unwrap()
        .write_npy(&init3)
        .unwrap();
    rejects(
        &d,
        &[("--init", &init3.display().to_string())],
        "dimension 3",
    );
    let notnpy = d.input.join("gmm.json").display().to_string();
    rejects(&d, &[("--init", &notnpy)], "npy");
    let init64 = d.input.join("x64.npy");
    Tensor::zeros((5, 2), candle_core::DType::F64, &Device::Cpu)
        .unwrap()
        .write_npy(&init64)
        .unwrap();
    rejects(&d, &[("--init", &init64.display().to_string())], "float32");
    // Unknown names list the valid ones.
    rejects(&d, &[("--sde", "vq")], "ddpm-linear");
    rejects(&d, &[("--sampler", "dpmpp4m")], "dpmpp3m");
    rejects(&d, &[("--grid", "cubic")], "karras");
    rejects(&d, &[("--device", "tpu")], "valid: cpu, cuda, cuda:N");
    // A CPU build says it has no CUDA; a `cuda` build without a GPU that it has none.
    rejects(&d, &[("--device", "cuda:1")], "--device: device `cuda:1`");
    // Numbers out of range: the library's own messages (see `one_validation_site`).
    rejects(&d, &[("--steps", "0")], "at least 1 step");
    rejects(&d, &[("--eta", "-0.5")], "eta must be finite and >= 0");
    rejects(&d, &[("--n", "0")], "--n");
    // A setting the sampler does not have.
    rejects(&d, &[("--snr", "0.1")], "ddim has no setting `snr`");
    // Explicit times that are not decreasing, or not numbers.
    rejects(&d, &[("--times", "1,0.5,0.7")], "strictly decreasing");
    rejects(&d, &[("--times", "1,x")], "not a number");
    // Classes: out of range (the mixture has 4 components), a file of the wrong length.
    rejects(&d, &[("--class", "4")], "class 4");
    rejects(&d, &[("--class", "-1")], "class index");
    let labels = d.input.join("labels.npy");
    Tensor::from_vec(vec![0u32, 1, 2], 3, &Device::Cpu)
        .unwrap()
        .write_npy(&labels)
        .unwrap();
    rejects(
        &d,
        &[("--class", &labels.display().to_string())],
        "3 class labels for 100 samples",
    );
    // A time range the SDE does not cover.
    rejects(&d, &[("--t-min", "0")], "time range");
    rejects(&d, &[("--t-max", "2")], "time range");
    rejects(&d, &[("--sde", "edm"), ("--t-max", "100")], "time range");
    // An output directory that does not exist.
    let nodir = d.out.join("no/such/dir/s.npy").display().to_string();
    rejects(&d, &[("--out", &nodir)], "does not exist");
}

/// Two unit-std-0.5 components at (±2, 0): E|x_0|² = 4 + 2·0.25 = 4.5.
const PAIR: &str = r#"{"weights":[0.5,0.5],"means":[[-2,0],[2,0]],"stds":[0.5,0.5]}"#;

/// Discrete schedules sample on their own timesteps with `--spacing`; other SDEs refuse it.
#[test]
fn discrete_spacing() {
    let d = Dirs::new();
    let model = d.write_model("pair.json", PAIR);
    let out = d.out_file("s.npy");
    let run = |sde: &str| {
        sbdm(&[
            "sample",
            "--sde",
            sde,
            "--model",
            &model,
            "--sampler",
            "ddim",
            "--steps",
            "200",
            "--spacing",
            "trailing",
            "--n",
            "2000",
            "--out",
            &out,
        ])
    };
    let ok = run("ddpm-linear");
    assert!(ok.ok(), "{}", ok.stderr);
    assert!(ok.stdout.contains("trailing spacing"), "{}", ok.stdout);
    // E|x|² within 5% of the exact 4.5 at 200 DDIM steps (first-order bias ~0.5%).
    let m2 = value(&ok.stdout, "E|x|^2");
    assert!((m2 - 4.5).abs() < 0.05 * 4.5, "E|x|^2 = {m2}");
    std::fs::remove_file(&out).unwrap();
    let bad = run("vp");
    assert!(!bad.ok());
    assert!(
        bad.stderr.contains("--spacing applies to the discrete"),
        "{}",
        bad.stderr
    );
    assert!(d.out_entries().is_empty());
}

/// A zero-terminal-SNR table (Lin et al. 2023) samples from pure noise at t = 1 with
/// trailing spacing: the mixture oracle gives x̂_0 there.
#[test]
fn zero_terminal_snr_table_samples_from_pure_noise() {
    let d = Dirs::new();
    let model = d.write_model("pair.json", PAIR);
    let out = d.out_file("s.npy");
    let r = sbdm(&[
        "sample",
        "--sde",
        "ddpm-scaled-linear-zsnr",
        "--model",
        &model,
        "--sampler",
        "ddim",
        "--spacing",
        "trailing",
        "--steps",
        "50",
        "--n",
        "2000",
        "--out",
        &out,
    ]);
    assert!(r.ok(), "{}", r.stderr);
    assert!(
        r.stdout.contains("trailing spacing") && r.stdout.contains("t from 1 to 0.001"),
        "{}",
        r.stdout
    );
    // E|x|² within 5% of the exact a(t_min)²·4.5 + 2·b(t_min)² ≈ 4.498.
    let m2 = value(&r.stdout, "E|x|^2");
    assert!((m2 - 4.5).abs() < 0.05 * 4.5, "E|x|^2 = {m2}");
    assert_eq!(read_npy(Path::new(&out)).dims(), [2000, 2]);
}

/// EDM defaults to the Karras grid, on which 20 DPM-Solver++(2M) steps are accurate;
/// uniform steps in t = σ are far worse there.
#[test]
fn edm_defaults_to_karras() {
    let d = Dirs::new();
    let model = d.write_model("pair.json", PAIR);
    let out = d.out_file("s.npy");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "sample",
            "--sde",
            "edm",
            "--model",
            &model,
            "--sampler",
            "dpmpp2m",
            "--steps",
            "20",
            "--n",
            "2000",
            "--out",
            &out,
            "--metrics",
        ];
        args.extend_from_slice(extra);
        let r = sbdm(&args);
        assert!(r.ok(), "{}", r.stderr);
        r
    };
    let auto = run(&[]);
    assert!(auto.stdout.contains("Karras grid"), "{}", auto.stdout);
    let uniform = run(&["--grid", "uniform"]);
    let (a, u) = (
        value(&auto.stdout, "sliced W2"),
        value(&uniform.stdout, "sliced W2"),
    );
    assert!(a < 0.3 && u > 2.0 * a, "auto {a}, uniform {u}");
}

/// Explicit times, as a list or a `.npy` vector, replace `--steps` and `--grid`; the run
/// is the same either way and reports one evaluation per step.
#[test]
fn explicit_times() {
    let d = Dirs::new();
    let model = d.write_model("pair.json", PAIR);
    let times = [1.0f64, 0.6, 0.3, 0.1, 0.03, 0.001];
    let list = times.map(|t| t.to_string()).join(",");
    let file = d.input.join("times.npy");
    Tensor::new(&times, &Device::Cpu)
        .unwrap()
        .write_npy(&file)
        .unwrap();
    let file_s = file.display().to_string();
    let run = |times: &str, out: &str| {
        let out = d.out_file(out);
        let r = sbdm(&[
            "sample",
            "--sde",
            "vp",
            "--model",
            &model,
            "--sampler",
            "dpmpp2m",
            "--times",
            times,
            "--n",
            "500",
            "--out",
            &out,
        ]);
        assert!(r.ok(), "{}", r.stderr);
        assert!(r.stdout.contains("6 given times"), "{}", r.stdout);
        assert_eq!(value(&r.stdout, "NFE"), 5.0);
        std::fs::read(&out).unwrap()
    };
    assert_eq!(run(&list, "a.npy"), run(&file_s, "b.npy"));
    // With --steps, clap refuses the combination in one line.
    let r = sbdm(&[
        "sample",
        "--sde",
        "vp",
        "--model",
        &model,
        "--sampler",
        "ddim",
        "--times",
        &list,
        "--steps",
        "5",
        "--out",
        &d.out_file("c.npy"),
    ]);
    assert!(!r.ok());
    assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
    assert!(r.stderr.contains("cannot be used with"), "{}", r.stderr);
}

/// Sampler settings reach the sampler; settings of another sampler are refused.
#[test]
fn sampler_settings_reach_the_sampler() {
    let d = Dirs::new();
    let model = d.model();
    let run = |extra: &[&str]| {
        let out = d.out_file("s.npy");
        let _ = std::fs::remove_file(&out);
        let mut args = vec![
            "sample", "--sde", "vp", "--model", &model, "--steps", "10", "--n", "200", "--out",
            &out,
        ];
        args.extend_from_slice(extra);
        sbdm(&args)
    };
    let r = run(&["--sampler", "pc", "--snr", "0.05", "--corrector-steps", "2"]);
    assert!(r.ok(), "{}", r.stderr);
    assert!(
        r.stdout
            .starts_with("pc(snr=0.05, corrector_steps=2) on vp"),
        "{}",
        r.stdout
    );
    assert_eq!(value(&r.stdout, "NFE"), 30.0);
    let r = run(&["--sampler", "heun", "--churn", "5", "--s-noise", "1.003"]);
    assert!(r.ok(), "{}", r.stderr);
    assert!(
        r.stdout.starts_with("heun(churn=5, s_noise=1.003)"),
        "{}",
        r.stdout
    );
    let r = run(&["--sampler", "dpm2", "--eta", "0.5"]);
    assert!(!r.ok());
    assert!(
        r.stderr.contains("--eta: dpm2 has no settings"),
        "{}",
        r.stderr
    );
    for flag in [
        "--grid",
        "--spacing",
        "--ddpm-variance",
        "--sampler",
        "--guidance",
    ] {
        let r = sbdm(&["sample", flag, "help"]);
        assert!(r.ok(), "{flag} help: {}", r.stderr);
        assert!(r.stdout.lines().count() >= 2, "{flag} help:\n{}", r.stdout);
    }
}
