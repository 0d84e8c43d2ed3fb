//! `sbdm encode` end to end: data encoded to `x_T` and decoded by the `sbdm sample --init`
//! command it prints (run verbatim by a shell) comes back within the sampler's
//! discretisation error — DDIM-50's, the same as the library's round trip on the same
//! grid, on the exact mixture; RK45's tolerance; a trained checkpoint's too — and bad
//! input is refused in one line with nothing written.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::{DType, Device, Tensor};
use common::{sbdm, Run};
use sbdm_runtime::io;
use sbdm_runtime::model::mixture::GaussianMixture;
use sbdm_runtime::sampling::{Noise, Sampler, TimeGrid};
use sbdm_runtime::sde::builtin::VpSde;

#[path = "../sbdm-runtime/tests/common/orders.rs"]
#[allow(dead_code)] // `order` is not used here.
mod orders;
use orders::max_abs;

const MIX: &str = r#"{"weights":[0.5,0.5],"means":[[-2,0],[2,0]],"stds":[0.5,0.5]}"#;

/// The mixture's JSON and 64 of its samples (f32) in `dir`; their paths.
fn setup(dir: &Path) -> (String, PathBuf) {
    let mix = dir.join("mix.json");
    std::fs::write(&mix, MIX).unwrap();
    let x = GaussianMixture::from_json(MIX)
        .unwrap()
        .sample(64, 5, &Device::Cpu)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap();
    let data = dir.join("x.npy");
    io::write_npy(&data, &x).unwrap();
    (format!("gmm:{}", mix.display()), data)
}

fn read(path: &Path) -> Tensor {
    io::read_npy(path, 2).unwrap().to_dtype(DType::F64).unwrap()
}

/// Runs `sbdm encode` with `args`, then the decoding command it printed last, verbatim,
/// through `sh` with the binary on the PATH; returns the decoded batch.
fn encode_and_decode(args: &[&str]) -> Tensor {
    let enc = sbdm(&[&["encode"], args].concat());
    assert!(enc.ok(), "{}", enc.stderr);
    let command = enc.stdout.trim().lines().last().unwrap();
    assert!(command.starts_with("sbdm sample "), "{}", enc.stdout);
    let out = args[args.iter().position(|a| *a == "--out").unwrap() + 1];
    assert!(command.contains(&format!("--init {out}")), "{command}");
    let bin = Path::new(env!("CARGO_BIN_EXE_sbdm")).parent().unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let dec = Command::new("sh")
        .args(["-c", command])
        .env("PATH", path)
        .output()
        .unwrap();
    assert!(
        dec.status.success(),
        "{command}: {}",
        String::from_utf8_lossy(&dec.stderr)
    );
    let decoded = Path::new(out).with_file_name(format!(
        "{}_decoded.npy",
        Path::new(out).file_stem().unwrap().to_str().unwrap()
    ));
    read(&decoded)
}

#[test]
fn ddim_50_round_trips_through_the_printed_sample_command() {
    let dir = tempfile::tempdir().unwrap();
    let (model, data) = setup(dir.path());
    let out = dir.path().join("xT.npy");
    let (data_s, out_s) = (data.to_str().unwrap(), out.to_str().unwrap());
    let back = encode_and_decode(&[
        "--sde", "vp", "--model", &model, "--data", data_s, "--out", out_s,
    ]);
    let x = read(&data);
    assert_eq!(read(&out).dims(), x.dims());
    // The library's DDIM round trip in f64 on `sbdm sample`'s default grid for VP (50
    // uniform steps): the CLI's, through f32 files, equals it to f32 precision, so both
    // commands ran on that grid; and its error is DDIM-50's, measured 0.15 at worst here
    // (RMS 0.06; samples between the modes move most).
    let sde = VpSde::default();
    let mix = GaussianMixture::from_json(MIX).unwrap();
    let (ddim, grid) = (Sampler::Ddim { eta: 0.0 }, TimeGrid::uniform(50));
    let enc = ddim.encode(&sde, &mix.model(&sde), &x, &grid).unwrap();
    let mut noise = Noise::new(0, 0, 64, &[2], &Device::Cpu);
    let lib = ddim
        .sample(&sde, &mix.model(&sde), &enc.x, &grid, &mut noise)
        .unwrap()
        .x;
    let (err, vs_lib) = (max_abs(&back, &x), max_abs(&back, &lib));
    println!("ddim-50 round trip: max |err| {err:.3e}, {vs_lib:.1e} from the library's");
    assert!(
        vs_lib <= 1e-3,
        "CLI round trip differs from the library's by {vs_lib}"
    );
    assert!(err <= 0.25, "DDIM-50 round trip off by {err}");
}

#[test]
fn rk45_with_tight_tolerances_round_trips_in_f32() {
    let dir = tempfile::tempdir().unwrap();
    let (model, data) = setup(dir.path());
    let x = read(&data);
    for sde in ["vp", "ve"] {
        let out = dir.path().join(format!("xT_{sde}.npy"));
        let back = encode_and_decode(&[
            "--sde",
            sde,
            "--model",
            &model,
            "--data",
            data.to_str().unwrap(),
            "--sampler",
            "rk45",
            "--rtol",
            "1e-7",
            "--atol",
            "1e-7",
            "--out",
            out.to_str().unwrap(),
        ]);
        // Measured ~2e-6: the tolerance and f32 rounding of the files and states.
        let err = max_abs(&back, &x);
        println!("{sde}: rk45 round trip max |err| {err:.2e}");
        assert!(err <= 1e-4, "{sde}: rk45 round trip off by {err}");
    }
}

#[test]
fn a_trained_checkpoint_encodes_and_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let (_, data) = setup(dir.path());
    let model = common::tiny_checkpoint(dir.path(), "m");
    let data_s = data.to_str().unwrap();
    // DDIM (the default), the SDE the checkpoint was trained for.
    let out = dir.path().join("xT.npy");
    let run = sbdm(&[
        "encode",
        "--model",
        &model,
        "--data",
        data_s,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(run.ok(), "{}", run.stderr);
    assert!(run.stdout.contains("vp (VpSde)"), "{}", run.stdout);
    let x_t = read(&out);
    assert_eq!(x_t.dims(), [64, 2]);
    let values = x_t.flatten_all().unwrap().to_vec1::<f64>().unwrap();
    assert!(values.iter().all(|v| v.is_finite()));
    // RK45 at 1e-6 undoes itself to its tolerance whatever the field (measured ~1e-3 on
    // this barely trained network, whose field is far rougher than the exact score's).
    let out = dir.path().join("xT_rk45.npy");
    let back = encode_and_decode(&[
        "--model",
        &model,
        "--data",
        data_s,
        "--sampler",
        "rk45",
        "--rtol",
        "1e-6",
        "--atol",
        "1e-6",
        "--out",
        out.to_str().unwrap(),
    ]);
    let err = max_abs(&back, &read(&data));
    println!("checkpoint: rk45 round trip max |err| {err:.2e}");
    assert!(err <= 1e-2, "checkpoint rk45 round trip off by {err}");
}

/// Asserts `run` failed with one line containing `needle`.
fn assert_refused(run: &Run, needle: &str, what: &str) {
    assert!(!run.ok(), "{what} succeeded");
    assert_eq!(run.stderr.trim().lines().count(), 1, "{}", run.stderr);
    assert!(
        run.stderr.contains(needle),
        "{what}: `{needle}` not in {}",
        run.stderr
    );
}

#[test]
fn bad_input_is_one_line_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (model, data) = setup(dir.path());
    let out = dir.path().join("xT.npy");
    let out_s = out.to_str().unwrap();
    let one_d = dir.path().join("one_d.npy");
    let one_d_x = Tensor::from_vec(vec![1f32, 2.0], (2, 1), &Device::Cpu).unwrap();
    io::write_npy(&one_d, &one_d_x).unwrap();
    let nan = dir.path().join("nan.npy");
    let nan_x = Tensor::from_vec(vec![1f32, f32::NAN], (1, 2), &Device::Cpu).unwrap();
    io::write_npy(&nan, &nan_x).unwrap();
    let base = |data: &Path| -> Vec<String> {
        [
            "encode",
            "--sde",
            "vp",
            "--model",
            &model,
            "--data",
            data.to_str().unwrap(),
            "--out",
            out_s,
        ]
        .map(String::from)
        .to_vec()
    };
    let with = |extra: &[&str]| -> Vec<String> {
        [base(&data), extra.iter().map(|s| s.to_string()).collect()].concat()
    };
    let cases: Vec<(Vec<String>, &str)> = vec![
        (base(&one_d), "dimension 1 but the model has dimension 2"),
        (base(&nan), "not finite"),
        (
            with(&["--sampler", "em"]),
            "em: cannot encode with a stochastic sampler; use a deterministic one: ode-euler",
        ),
        (with(&["--sampler", "ancestral"]), "stochastic"),
        (with(&["--steps", "0"]), "at least 1 step, got 0"),
        (with(&["--rtol", "1e-6"]), "ddim has no setting `rtol`"),
        (with(&["--sampler", "rk45", "--rtol", "0"]), "rtol must be"),
    ];
    for (args, needle) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_refused(&sbdm(&args), needle, &args.join(" "));
        assert!(!out.exists(), "{args:?} wrote {out_s}");
    }
}
