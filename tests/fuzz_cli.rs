//! Fuzzing the `sbdm` command line: random commands, flags, values and combinations,
//! files that are valid, corrupt, truncated, missing or claim absurd sizes. Every run
//! must end in time with exit code 0, or 1 with one line on stderr (`sbdm: ...`), no
//! panic and no internal error (exit code 101), and nothing written when it fails.
//!
//! Seeded: the same commands every run. `SBDM_FUZZ_CLI_CASES=N` runs `N` commands
//! (64 in CI; the long run of docs/reliability.md uses 2000), `SBDM_FUZZ_SEED=S` other
//! ones. The runs get `SBDM_MEMORY_LIMIT=1G`, so that what is refused does not depend on
//! the machine's memory. Values are small (what runs in well under a second) or absurd
//! (what must be refused): sizes in between are legitimate work, too slow to fuzz.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};

/// Seconds a run may take before it counts as a hang (a debug build, a loaded machine).
const HANG_S: u64 = 120;

/// The flags of each command, with the values drawn for them: mostly well-formed ones
/// (small numbers, valid names and files), sometimes odd ones (absurd sizes, text where a
/// number goes, corrupt files). `{NAME}` is a file of the fixture ([`Fixture::path`]);
/// `{out}` is the case's own output path.
struct CommandSpec {
    name: &'static str,
    /// `(flag, well-formed values, odd values)`: a flag is given with probability 1/16
    /// (a `!` prefix: 15/16), a value is odd with probability 1/6. No values: a switch.
    flags: &'static [(
        &'static str,
        &'static [&'static str],
        &'static [&'static str],
    )],
}

const STEPS: &[&str] = &["1", "2", "5", "10"];
const STEPS_ODD: &[&str] = &[
    "0",
    "-1",
    "1000000000",
    "1000000000000",
    "18446744073709551615",
    "18446744073709551616",
    "abc",
    "",
];
const N: &[&str] = &["1", "8", "64"];
const N_ODD: &[&str] = &[
    "0",
    "-3",
    "10000000000",
    "1000000000000000",
    "18446744073709551615",
    "x",
];
const REAL: &[&str] = &["0", "0.5", "1", "1e-3", "0.999", "2"];
const REAL_ODD: &[&str] = &["-1", "1e308", "inf", "NaN", "-inf", "abc", "1e-320", ""];
const SEED: &[&str] = &["0", "7", "18446744073709551615"];
const SEED_ODD: &[&str] = &["-1", "x"];
const SAMPLERS: &[&str] = &[
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
];
const SAMPLERS_ODD: &[&str] = &["help", "bogus", ""];
const SDES: &[&str] = &[
    "vp",
    "ve",
    "edm",
    "rf",
    "subvp",
    "cosine",
    "trigflow",
    "ddpm-linear",
    "{sde}",
];
const SDES_ODD: &[&str] = &[
    "help",
    "bogus",
    "{bad_sde}",
    "{missing}.sde",
    "{mut_sde}",
    "{junk}",
];
const MODELS: &[&str] = &["gmm:{mix}", "gmm:{mix}", "ckpt:{ckpt}"];
const MODELS_ODD: &[&str] = &[
    "gmm:{mut_mix}",
    "ckpt:{mut_ckpt}",
    "ckpt:{wide}",
    "ckpt:{junk}",
    "gmm:{missing}",
    "bogus",
    "ckpt:{mix}",
    "gmm:{huge}",
    "ckpt:{clf}",
];
const NPY_IN: &[&str] = &["{x}"];
const NPY_ODD: &[&str] = &[
    "{mut_npy}",
    "{mut_npy}",
    "{huge}",
    "{ovf}",
    "{junk}",
    "{missing}",
    "{dir}",
    "{x64}",
    "{img}",
];
const OUT: &[&str] = &["{out}.npy"];
const OUT_ODD: &[&str] = &["{nodir}/x.npy", "{dir}", ""];
const PLOT: &[&str] = &["{out}.png"];
const PLOT_ODD: &[&str] = &["{out}.npy", "{nodir}/p.png"];
const GRIDS: &[&str] = &["uniform", "karras", "logsnr", "quadratic", "auto"];
const GRIDS_ODD: &[&str] = &["help", "bogus"];
const DRIFTS: &[&str] = &[
    "-0.5*x",
    "-x",
    "-t*x",
    "-0.5*(0.1 + 19.9*t)*x",
    "-((((t))))*x",
];
const DIFFUSIONS: &[&str] = &["1.0", "t.sqrt()", "(0.1 + 19.9*t).sqrt()", "(2.0*t).sqrt()"];
const MEANS: &[&str] = &["1.0", "(-t).exp()", "1.0 - t", "(1.0 + t*t).recip()"];
const STDS: &[&str] = &["t", "t.sqrt()", "(1.0 - (-2.0*t).exp()).sqrt()"];
const EXPRS_ODD: &[&str] = &[
    "-0.5*x*x",
    "t.sqrt()*x",
    "x",
    "1/0",
    "x*x",
    "t.ln()",
    "",
    "1e308*1e308",
    "(",
    "-(-(-(-t)))",
    "t.powi(100000)",
    "k*t",
    "t.exp().exp().exp()",
    "t.sqrt().sqrt().sqrt().sqrt().sqrt().sqrt().sqrt()",
];
const NONE: &[&str] = &[];

const SAMPLE: CommandSpec = CommandSpec {
    name: "sample",
    flags: &[
        ("!--sde", SDES, SDES_ODD),
        ("!--model", MODELS, MODELS_ODD),
        ("!--sampler", SAMPLERS, SAMPLERS_ODD),
        ("!--steps", STEPS, STEPS_ODD),
        ("--n", N, N_ODD),
        ("--init", NPY_IN, NPY_ODD),
        (
            "--times",
            &["1,0.5,0.01", "{times}"],
            &["1,2", "0.5", "nan,0.1", "{huge1}", "{mut_npy}"],
        ),
        ("--grid", GRIDS, GRIDS_ODD),
        (
            "--spacing",
            &["leading", "trailing", "linspace"],
            &["help", "x"],
        ),
        ("--eta", REAL, REAL_ODD),
        ("--snr", REAL, REAL_ODD),
        ("--corrector-steps", &["0", "1", "2"], &["x", "-1"]),
        ("--churn", REAL, REAL_ODD),
        ("--s-noise", REAL, REAL_ODD),
        ("--rtol", REAL, REAL_ODD),
        ("--atol", REAL, REAL_ODD),
        ("--ddpm-variance", &["beta", "beta-tilde"], &["help", "x"]),
        ("--t-max", REAL, REAL_ODD),
        ("--t-min", REAL, REAL_ODD),
        (
            "--class",
            &["0", "1", "{labels}"],
            &["-1", "99999999999", "{junk}", "{huge1}"],
        ),
        ("--guidance", &["classifier", "cfg"], &["help", "x"]),
        ("--guidance-scale", REAL, REAL_ODD),
        (
            "--classifier",
            &["ckpt:{clf}"],
            &["ckpt:{ckpt}", "ckpt:{junk}", "x"],
        ),
        ("--cfg-rescale", REAL, REAL_ODD),
        ("--guidance-interval", &["0.1,2"], &["2,0.1", "a,b", "1"]),
        ("--seed", SEED, SEED_ODD),
        ("--denoise", NONE, NONE),
        ("--metrics", NONE, NONE),
        ("!--out", OUT, OUT_ODD),
        ("--plot", PLOT, PLOT_ODD),
        (
            "--sde-param",
            &["beta_min=0.2"],
            &["k=1", "beta_max=abc", "x"],
        ),
        ("--shift", REAL, REAL_ODD),
    ],
};

const DERIVE: CommandSpec = CommandSpec {
    name: "derive",
    flags: &[
        (
            "",
            &["vp", "ve", "edm", "rf", "cosine", "trigflow"],
            &["help", "bogus", ""],
        ),
        (
            "--sde",
            &["{sde}"],
            &["{bad_sde}", "{missing}.sde", "{mut_sde}", "{junk}"],
        ),
        ("--latex", NONE, NONE),
        ("!--drift", DRIFTS, EXPRS_ODD),
        ("!--diffusion", DIFFUSIONS, EXPRS_ODD),
        ("--mean", MEANS, EXPRS_ODD),
        ("--std", STDS, EXPRS_ODD),
        (
            "--time",
            &["1e-3,1.0", "0.01,2"],
            &["1,0", "a,b", "0.5", "0,1e308"],
        ),
        ("--let", &["beta=t", "u=t.sqrt()"], &["=", "x"]),
        ("--param", &["k=1"], &["k", "k=abc", "beta_min=0.2"]),
        ("--sde-param", &["k=1"], &["k=nan"]),
        ("--sde-name", &["Fz"], &["", "1x", "struct"]),
        ("--shift", REAL, REAL_ODD),
        ("--shift-mu", REAL, REAL_ODD),
        ("--shift-tokens", &["256", "4096"], REAL_ODD),
    ],
};

const TRAIN: CommandSpec = CommandSpec {
    name: "train",
    flags: &[
        ("!--sde", SDES, SDES_ODD),
        (
            "!--data",
            &["moons", "8gaussians", "{x}", "{img}"],
            &[
                "shapes",
                "{huge}",
                "{junk}",
                "bogus",
                "help",
                "{mut_npy}",
                "{x64}",
            ],
        ),
        ("!--model", &["mlp", "mlp", "unet"], &["help", "x"]),
        (
            "!--steps",
            &["1", "3"],
            &["0", "1000000000000", "18446744073709551615", "x"],
        ),
        (
            "!--batch",
            &["1", "8"],
            &["0", "100000000000", "18446744073709551615"],
        ),
        (
            "!--width",
            &["1", "4", "8"],
            &["0", "1000000000", "4294967296"],
        ),
        ("!--depth", &["1", "2"], &["0", "1000000000"]),
        ("--n-data", &["8"], &["0", "1000000000000"]),
        ("--lr", REAL, REAL_ODD),
        ("--ema", REAL, REAL_ODD),
        ("--clip", REAL, REAL_ODD),
        ("--weight-decay", REAL, REAL_ODD),
        ("--warmup", &["0", "100"], &["18446744073709551615"]),
        ("--schedule", &["constant", "cosine"], &["help", "x"]),
        ("--objective", &["dsm", "classifier"], &["help"]),
        (
            "--param",
            &["eps", "x0", "v", "flow", "score"],
            &["help", "x"],
        ),
        (
            "--weighting",
            &["b2", "uniform", "min-snr:5"],
            &["min-snr:x", "bogus"],
        ),
        (
            "--time-density",
            &["uniform", "logit-normal", "logit-normal:0,1"],
            &["logit-normal:a"],
        ),
        ("--sigma-data", &["auto", "1"], &["0", "-1", "nan"]),
        ("--labels", &["{labels}"], &["{junk}", "{huge1}"]),
        ("--conditional", NONE, NONE),
        ("--precondition", NONE, NONE),
        ("--no-attention", NONE, NONE),
        ("--checkpoint-every", &["0", "1", "2"], &["x"]),
        ("--resume", NONE, NONE),
        ("!--out", &["{out}"], &["{nodir}/d", "{file}"]),
    ],
};

const LIKELIHOOD: CommandSpec = CommandSpec {
    name: "likelihood",
    flags: &[
        ("--sde", SDES, SDES_ODD),
        ("!--model", MODELS, MODELS_ODD),
        ("!--data", NPY_IN, NPY_ODD),
        ("--exact", NONE, NONE),
        (
            "--hutchinson",
            &["1", "2"],
            &["0", "1000000000000", "18446744073709551615"],
        ),
        ("--exact-up-to", &["0", "16"], &["18446744073709551615"]),
        ("--probe", &["rademacher", "gaussian"], &["x"]),
        ("--batch", &["1", "64"], &["0", "18446744073709551615"]),
        ("--dequantize", &["256"], &["0", "1", "4294967295"]),
        ("--data-range", &["-1,1"], &["1,-1", "a"]),
        ("--rtol", &["1e-3"], REAL_ODD),
        ("--atol", &["1e-3"], REAL_ODD),
        ("!--out", OUT, OUT_ODD),
    ],
};

const ENCODE: CommandSpec = CommandSpec {
    name: "encode",
    flags: &[
        ("--sde", SDES, SDES_ODD),
        ("!--model", MODELS, MODELS_ODD),
        ("!--data", NPY_IN, NPY_ODD),
        (
            "--sampler",
            &["ddim", "ode-euler", "heun", "rk45", "dpmpp2m"],
            SAMPLERS_ODD,
        ),
        ("!--steps", STEPS, STEPS_ODD),
        ("--grid", GRIDS, GRIDS_ODD),
        ("--rtol", &["1e-3"], REAL_ODD),
        ("--atol", &["1e-3"], REAL_ODD),
        ("!--out", OUT, OUT_ODD),
    ],
};

const TRANSLATE: CommandSpec = CommandSpec {
    name: "translate",
    flags: &[
        ("!--method", &["sdedit", "ilvr", "egsde"], &["help", "x"]),
        ("--sde", SDES, SDES_ODD),
        ("!--model", MODELS, MODELS_ODD),
        ("!--source", NPY_IN, NPY_ODD),
        ("!--t0", &["0.5", "0.9"], REAL_ODD),
        ("--sampler", SAMPLERS, SAMPLERS_ODD),
        ("!--steps", STEPS, STEPS_ODD),
        ("--factor", &["1", "2"], &["4", "3", "0", "1000000000000"]),
        ("--cutoff", REAL, REAL_ODD),
        ("--classifier", &["ckpt:{clf}"], &["ckpt:{junk}"]),
        ("--lambda-s", REAL, REAL_ODD),
        ("--lambda-i", REAL, REAL_ODD),
        ("--seed", SEED, SEED_ODD),
        ("!--out", OUT, OUT_ODD),
        ("--plot", PLOT, PLOT_ODD),
    ],
};

const INPAINT: CommandSpec = CommandSpec {
    name: "inpaint",
    flags: &[
        ("--sde", SDES, SDES_ODD),
        ("!--model", MODELS, MODELS_ODD),
        ("!--image", NPY_IN, NPY_ODD),
        (
            "!--mask",
            &["{mask}"],
            &["{junk}", "{x}", "{huge}", "{mut_npy}"],
        ),
        ("--resample", &["1", "2"], &["0"]),
        ("--sampler", &["ancestral", "ddpm", "em"], SAMPLERS_ODD),
        ("!--steps", STEPS, STEPS_ODD),
        ("--seed", SEED, SEED_ODD),
        ("!--out", OUT, OUT_ODD),
        ("--plot", PLOT, PLOT_ODD),
    ],
};

/// The commands, the first ones most often.
const COMMANDS: [&CommandSpec; 7] = [
    &SAMPLE,
    &DERIVE,
    &TRAIN,
    &LIKELIHOOD,
    &ENCODE,
    &TRANSLATE,
    &INPAINT,
];

/// One fuzzed command line, before its placeholders are filled in.
#[derive(Clone, Debug)]
struct Case {
    command: usize,
    /// Per flag of the command: present, odd, and the index of its value.
    flags: Vec<(bool, bool, usize)>,
    /// The order flags are given in (a rotation).
    rotate: usize,
    /// Mutations of the files behind `{mut_*}`.
    mutations: Vec<(usize, u8)>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop_oneof![
            5 => Just(0usize),
            2 => Just(1usize),
            2 => Just(2usize),
            1 => 3usize..7,
        ],
        prop::collection::vec((0u8..16, 0u8..6, any::<usize>()), 40),
        any::<usize>(),
        prop::collection::vec((any::<usize>(), any::<u8>()), 1..4),
    )
        .prop_map(|(command, picks, rotate, mutations)| {
            let spec = COMMANDS[command];
            let flags = spec
                .flags
                .iter()
                .zip(&picks)
                .map(|((flag, _, _), (p, odd, v))| {
                    let present = if flag.starts_with('!') {
                        *p < 15
                    } else {
                        *p < 1
                    };
                    (present, *odd == 0, *v)
                })
                .collect();
            Case {
                command,
                flags,
                rotate,
                mutations,
            }
        })
}

/// The files commands read: valid ones, and corrupt, truncated, huge-claiming ones.
struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

fn npy_f32(path: &Path, shape: &[usize], values: &[f32]) {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_text = if shape.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    npy_raw(
        path,
        "<f4",
        &shape_text,
        &values
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<_>>(),
    );
}

fn npy_raw(path: &Path, descr: &str, shape: &str, data: &[u8]) {
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    let pad = (64 - (10 + header.len() + 1) % 64) % 64;
    header.push_str(&" ".repeat(pad));
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    bytes.extend(data);
    std::fs::write(path, bytes).unwrap();
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let f = |n: &str| root.join(n);
        std::fs::write(
            f("mix.json"),
            r#"{"weights": [0.5, 0.5], "means": [[-2.0, 0.0], [2.0, 0.0]], "stds": [0.5, 0.5]}"#,
        )
        .unwrap();
        let x: Vec<f32> = (0..16).map(|i| (i as f32 - 8.0) * 0.25).collect();
        npy_f32(&f("x.npy"), &[8, 2], &x);
        npy_f32(&f("mask.npy"), &[2], &[1.0, 0.0]);
        npy_f32(&f("times.npy"), &[3], &[1.0, 0.5, 0.01]);
        npy_f32(&f("img.npy"), &[2, 1, 8, 8], &[0.1; 128]);
        npy_raw(&f("labels.npy"), "<i8", "(8,)", &[0u8; 64]);
        npy_raw(&f("x64.npy"), "<f8", "(2, 2)", &[0u8; 32]);
        npy_raw(&f("huge.npy"), "<f4", "(1000000000000, 2)", &[0u8; 64]);
        npy_raw(&f("huge1.npy"), "<f4", "(1000000000000,)", &[0u8; 64]);
        npy_raw(
            &f("ovf.npy"),
            "<f4",
            "(18446744073709551615, 18446744073709551615)",
            &[0u8; 64],
        );
        std::fs::write(f("junk"), b"\x93NUMPY\x01\x00\xff\xff not really").unwrap();
        std::fs::create_dir(f("dir")).unwrap();
        std::fs::write(f("file"), b"a file").unwrap();
        std::fs::write(
            f("decl.sde"),
            "struct Fz {\n    time = [1e-3, 1.0];\n    drift = -0.5 * x;\n    diffusion = 1.0;\n}\n",
        )
        .unwrap();
        std::fs::write(
            f("bad.sde"),
            "struct Fz { time = [1e-3, 1.0]; drift = -x * x; }",
        )
        .unwrap();
        // A tiny score checkpoint and a classifier, trained here; one with an absurd width.
        let (run, _) = common::train_tiny(&root, "ckpt", "vp");
        assert!(run.ok(), "{}{}", run.stdout, run.stderr);
        let clf = common::sbdm(&[
            "train",
            "--sde",
            "vp",
            "--data",
            "8gaussians",
            "--model",
            "mlp",
            "--objective",
            "classifier",
            "--width",
            "8",
            "--depth",
            "1",
            "--batch",
            "16",
            "--steps",
            "5",
            "--out",
            f("clf").to_str().unwrap(),
        ]);
        assert!(clf.ok(), "{}", clf.stderr);
        let ckpt = std::fs::read(f("ckpt/model.safetensors")).unwrap();
        std::fs::write(f("wide.safetensors"), widened(&ckpt)).unwrap();
        Fixture { _dir: dir, root }
    }

    /// The path of a placeholder's file.
    fn path(&self, key: &str) -> PathBuf {
        let r = &self.root;
        match key {
            "mix" => r.join("mix.json"),
            "x" => r.join("x.npy"),
            "mask" => r.join("mask.npy"),
            "times" => r.join("times.npy"),
            "img" => r.join("img.npy"),
            "labels" => r.join("labels.npy"),
            "x64" => r.join("x64.npy"),
            "huge" => r.join("huge.npy"),
            "huge1" => r.join("huge1.npy"),
            "ovf" => r.join("ovf.npy"),
            "junk" => r.join("junk"),
            "dir" => r.join("dir"),
            "file" => r.join("file"),
            "sde" => r.join("decl.sde"),
            "bad_sde" => r.join("bad.sde"),
            "ckpt" => r.join("ckpt/model.safetensors"),
            "clf" => r.join("clf/model.safetensors"),
            "wide" => r.join("wide.safetensors"),
            "missing" => r.join("no-such-file"),
            "nodir" => r.join("no-such-dir"),
            other => panic!("unknown placeholder {other}"),
        }
    }
}

/// A checkpoint whose metadata claims an MLP width of 10^9, with its metadata checksum
/// removed (as in a file from before it existed), so that the loader must catch the
/// width against the tensors.
fn widened(ckpt: &[u8]) -> Vec<u8> {
    let n = u64::from_le_bytes(ckpt[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&ckpt[8..8 + n]).unwrap();
    let meta = header["__metadata__"].as_object_mut().unwrap();
    meta.remove("info_checksum");
    let mut info: serde_json::Value = serde_json::from_str(meta["info"].as_str().unwrap()).unwrap();
    info["model"]["net"]["width"] = 1_000_000_000u64.into();
    meta.insert("info".into(), info.to_string().into());
    let mut h = header.to_string().into_bytes();
    while h.len() % 8 != 0 {
        h.push(b' ');
    }
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend(h);
    out.extend(&ckpt[8 + n..]);
    out
}

/// `base` with byte mutations (position, xor mask).
fn mutate(base: &[u8], mutations: &[(usize, u8)]) -> Vec<u8> {
    let mut b = base.to_vec();
    for &(i, m) in mutations {
        if b.is_empty() {
            break;
        }
        let p = i % b.len();
        match m % 4 {
            0 => b.truncate(p),
            _ => b[p] ^= m | 1,
        }
    }
    b
}

/// The arguments of `case`, with files written in `dir` for it.
fn arguments(case: &Case, fx: &Fixture, dir: &Path) -> Vec<String> {
    let spec = COMMANDS[case.command];
    let out = dir.join("out");
    let fill = |v: &str| -> String {
        let mut s = v.to_string();
        while let Some(a) = s.find('{') {
            let b = a + s[a..].find('}').unwrap();
            let key = &s[a + 1..b];
            let path = match key {
                "out" => out.clone(),
                "mut_npy" | "mut_mix" | "mut_ckpt" | "mut_sde" => {
                    let base = match key {
                        "mut_npy" => fx.path("x"),
                        "mut_mix" => fx.path("mix"),
                        "mut_ckpt" => fx.path("ckpt"),
                        _ => fx.path("sde"),
                    };
                    let name = base.file_name().unwrap().to_string_lossy().into_owned();
                    let p = dir.join(format!("mut-{name}"));
                    let bytes = std::fs::read(&base).unwrap();
                    std::fs::write(&p, mutate(&bytes, &case.mutations)).unwrap();
                    p
                }
                k => fx.path(k),
            };
            s.replace_range(a..=b, &path.display().to_string());
        }
        s
    };
    let mut words: Vec<Vec<String>> = Vec::new();
    for ((flag, good, odd), (present, is_odd, pick)) in spec.flags.iter().zip(&case.flags) {
        if !present {
            continue;
        }
        let flag = flag.trim_start_matches('!');
        let mut w = Vec::new();
        if !flag.is_empty() {
            w.push(flag.to_string());
        }
        let values = if *is_odd && !odd.is_empty() {
            odd
        } else {
            good
        };
        if !values.is_empty() {
            w.push(fill(values[pick % values.len()]));
        }
        words.push(w);
    }
    if !words.is_empty() {
        let k = case.rotate % words.len();
        // The positional name of `derive` stays first; flags come in any order.
        let start =
            usize::from(spec.name == "derive" && spec.flags[0].0.is_empty() && case.flags[0].0);
        let len = words.len();
        if len > start {
            words[start..].rotate_left(k % (len - start));
        }
    }
    std::iter::once(spec.name.to_string())
        .chain(words.into_iter().flatten())
        .collect()
}

/// What one run did.
struct Ran {
    code: Option<i32>,
    stderr: String,
    seconds: f64,
}

/// Runs `sbdm args` with the fuzzing environment, killing it after [`HANG_S`].
fn run(args: &[String], cwd: &Path) -> Result<Ran, String> {
    let start = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sbdm"))
        .args(args)
        .current_dir(cwd)
        .env("SBDM_MEMORY_LIMIT", "1G")
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
        s
    });
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if start.elapsed() > Duration::from_secs(HANG_S) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("hangs (> {HANG_S} s): sbdm {}", args.join(" ")));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Ok(Ran {
        code: status.code(),
        stderr: reader.join().unwrap_or_default(),
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// The files in `dir` that a failed run may not leave: outputs and temporary files.
fn written(dir: &Path, before: &[String]) -> Vec<String> {
    let mut left: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !before.contains(n))
        .collect();
    left.sort();
    left
}

fn kind(stderr: &str) -> &'static str {
    let s = stderr;
    if s.contains("of memory") {
        "refused: memory budget"
    } else if s.contains("bytes of data") || s.contains(".npy") {
        "refused: .npy file"
    } else if s.contains("safetensors") || s.contains("checksum") || s.contains("parameters, but") {
        "refused: checkpoint"
    } else if s.contains("invalid value")
        || s.contains("unexpected argument")
        || s.contains("cannot be used")
        || s.contains("required")
    {
        "refused: flag syntax (clap)"
    } else if s.contains("No such file") || s.contains("does not exist") || s.contains("directory")
    {
        "refused: missing file or directory"
    } else {
        "refused: invalid value or combination"
    }
}

fn check(case: &Case, fx: &Fixture, tally: &mut BTreeMap<&'static str, u64>) -> Result<(), String> {
    let dir = tempfile::tempdir_in(&fx.root).map_err(|e| e.to_string())?;
    let args = arguments(case, fx, dir.path());
    let before = written(dir.path(), &[]);
    let ran = run(&args, dir.path())?;
    let shown = format!("sbdm {}", args.join(" "));
    let err = ran.stderr.trim();
    for bad in [
        "panicked",
        "RUST_BACKTRACE",
        "internal error",
        "stack backtrace",
    ] {
        if err.contains(bad) {
            return Err(format!("`{bad}` on stderr of {shown}: {err}"));
        }
    }
    match ran.code {
        Some(0) => {
            *tally.entry("ran").or_default() += 1;
        }
        Some(1) | Some(2) => {
            if err.lines().count() != 1 || !err.starts_with("sbdm: ") {
                return Err(format!("not one `sbdm: ...` line from {shown}: {err:?}"));
            }
            let left = written(dir.path(), &before);
            // A run that stopped in training (a non-finite loss) keeps its log; any
            // other failure leaves nothing.
            let training_failed = err.contains("training stopped");
            if !left.is_empty() && !training_failed {
                return Err(format!("{shown} failed ({err}) but left {left:?}"));
            }
            *tally.entry(kind(err)).or_default() += 1;
        }
        code => return Err(format!("exit code {code:?} from {shown}: {err}")),
    }
    if std::env::var_os("SBDM_FUZZ_SHOW").is_some() {
        println!("{shown}\n  -> {:?} {err} ({:.2} s)", ran.code, ran.seconds);
    }
    if ran.seconds > 30.0 {
        eprintln!("slow ({:.1} s): {shown}", ran.seconds);
    }
    Ok(())
}

#[test]
fn fuzz_command_line() {
    let n: u32 = std::env::var("SBDM_FUZZ_CLI_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let extra: u64 = std::env::var("SBDM_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut seed = [7u8; 32];
    seed[..8].copy_from_slice(&extra.to_le_bytes());
    let fx = Fixture::new();
    let config = Config {
        cases: n,
        failure_persistence: None,
        max_shrink_iters: 64,
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &seed));
    let tally = std::cell::RefCell::new(BTreeMap::new());
    let start = Instant::now();
    let result = runner.run(&case(), |c| {
        check(&c, &fx, &mut tally.borrow_mut()).map_err(TestCaseError::fail)
    });
    let parts: Vec<String> = tally
        .borrow()
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    println!(
        "fuzz cli: {n} commands in {:.1} s: {}",
        start.elapsed().as_secs_f64(),
        parts.join(", ")
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// The failures of issue 15, each refused in one line naming the value, the limit and
/// the flag or file, with nothing written; rk45 with a huge `--steps` builds no grid and
/// runs.
#[test]
fn absurd_sizes_are_refused_before_allocating() {
    let fx = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.npy");
    let o = out.to_str().unwrap();
    let p = |k: &str| fx.path(k).display().to_string();
    let mix = format!("gmm:{}", p("mix"));
    let refused = |args: &[&str], needles: &[&str]| {
        let ran = run(
            &args.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            dir.path(),
        )
        .unwrap();
        let err = ran.stderr.trim();
        assert_eq!(ran.code, Some(1), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        for n in needles {
            assert!(err.contains(n), "`{n}` not in: {err}");
        }
        assert_eq!(written(dir.path(), &[]), Vec::<String>::new(), "{args:?}");
    };
    let memory = "more than the 1.0 GiB SBDM_MEMORY_LIMIT allows";
    let sample = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = ["sample", "--sde", "vp", "--model", &mix, "--out", o]
            .iter()
            .map(|s| s.to_string())
            .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let args = sample(&["--sampler", "ode-euler", "--steps", "1000000000000"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    refused(
        &args,
        &["--steps 1000000000000 (a time grid", "29.1 TiB", memory],
    );
    let args = sample(&["--sampler", "ddim", "--steps", "10", "--n", "10000000000"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    refused(&args, &["--n 10000000000 (samples of shape 2)", memory]);
    for (file, shape) in [
        ("huge", "[1000000000000, 2]"),
        ("ovf", "too large to index"),
    ] {
        let args = sample(&["--sampler", "ddim", "--steps", "10", "--init", &p(file)]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        refused(&args, &[&p(file), shape]);
    }
    let wide = format!("ckpt:{}", p("wide"));
    refused(
        &[
            "sample",
            "--model",
            &wide,
            "--sampler",
            "ddim",
            "--steps",
            "5",
            "--n",
            "4",
            "--out",
            o,
        ],
        &[
            &p("wide"),
            "\"width\":1000000000",
            "but its `net` tensors hold",
        ],
    );
    let train = |flag: &str, value: &str, needle: &str| {
        let d = dir.path().join("run");
        refused(
            &[
                "train",
                "--sde",
                "vp",
                "--data",
                "moons",
                "--model",
                "mlp",
                "--steps",
                "2",
                flag,
                value,
                "--out",
                d.to_str().unwrap(),
            ],
            &[needle, memory],
        );
    };
    train(
        "--batch",
        "100000000000",
        "--batch 100000000000 (samples of shape [2])",
    );
    train(
        "--width",
        "1000000000",
        "--width 1000000000 --depth 3 (2000000071000004162 parameters",
    );
    train("--depth", "1000000000", "--depth 1000000000");
    let d = dir.path().join("run");
    refused(
        &[
            "train",
            "--sde",
            "vp",
            "--data",
            "shapes",
            "--model",
            "unet",
            "--steps",
            "2",
            "--n-data",
            "1000000000000",
            "--out",
            d.to_str().unwrap(),
        ],
        &["--n-data 1000000000000 (images of 1x16x16)", memory],
    );
    refused(
        &[
            "train",
            "--sde",
            "vp",
            "--data",
            "moons",
            "--model",
            "mlp",
            "--steps",
            "1000000000000",
            "--out",
            d.to_str().unwrap(),
        ],
        &["--steps 1000000000000 (a loss-log row per step)", memory],
    );
    let ckpt = format!("ckpt:{}", p("ckpt"));
    refused(
        &[
            "likelihood",
            "--model",
            &ckpt,
            "--data",
            &p("x"),
            "--out",
            o,
            "--hutchinson",
            "1000000000000",
        ],
        &["with 1000000000000 divergence estimate(s)", memory],
    );
    // Accepted: rk45 never builds the grid, and a batch larger than the data is the data.
    let args = sample(&["--sampler", "rk45", "--steps", "1000000000000", "--n", "8"]);
    let ran = run(&args, dir.path()).unwrap();
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    std::fs::remove_file(&out).unwrap();
    let ran = run(
        &[
            "likelihood",
            "--model",
            &mix,
            "--sde",
            "vp",
            "--data",
            &p("x"),
            "--out",
            o,
            "--batch",
            "18446744073709551615",
        ]
        .map(String::from),
        dir.path(),
    )
    .unwrap();
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
}
