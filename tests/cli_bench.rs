//! Every benchmark runs once at a tiny size, so none can rot: its table, its JSON, and the
//! PyTorch side refused in one line (a missing interpreter, one that fails) with sbdm's
//! side still measured. The timings themselves are not checked (they are noisy here).

mod common;

use common::sbdm;

#[test]
fn bench_step_runs() {
    let r = sbdm(&["bench", "step", "--elements", "1024", "--iters", "1"]);
    assert!(r.ok(), "{}", r.stderr);
    assert!(r.stdout.contains("fused vs chain"), "{}", r.stdout);
    assert!(
        r.stdout.contains("noise in the pass vs drawn first"),
        "{}",
        r.stdout
    );
}

#[test]
fn bench_train_runs_without_pytorch() {
    let r = sbdm(&[
        "bench",
        "train",
        "--warmup",
        "0",
        "--steps",
        "1",
        "--torch",
        "/nonexistent/python3",
    ]);
    assert!(r.ok(), "{}", r.stderr);
    let skipped: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| l.starts_with("pytorch side not measured"))
        .collect();
    assert_eq!(skipped.len(), 1, "{}", r.stdout);
    assert!(skipped[0].contains("/nonexistent/python3"), "{}", r.stdout);
    for model in ["mlp", "unet"] {
        assert!(
            r.stdout.lines().any(|l| l.starts_with(model)),
            "{model}: {}",
            r.stdout
        );
    }
}

#[test]
fn bench_sample_runs_and_writes_json() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let tiny = [
        "bench", "sample", "--n", "300", "--net-n", "64", "--steps", "2", "--repeat", "1",
    ];
    let mut args = tiny.to_vec();
    args.extend(["--json", json.to_str().unwrap(), "--torch", "/bin/false"]);
    let r = sbdm(&args);
    assert!(r.ok(), "{}", r.stderr);
    // A Python that fails: one line, and our side measured.
    assert_eq!(
        r.stdout
            .lines()
            .filter(|l| l.starts_with("pytorch side not measured"))
            .count(),
        1,
        "{}",
        r.stdout
    );
    for row in [
        "exact mixture: whole `sbdm sample` process",
        "exact mixture: operation-count limit",
        "MLP: sampling loop, 1 thread",
        "scaling 1 ->",
        "peak RSS:",
    ] {
        assert!(r.stdout.contains(row), "{row}: {}", r.stdout);
    }
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    for key in [
        "process_s",
        "oracle_loop_1_thread_s",
        "mlp_loop_all_threads_s",
        "peak_rss_mib",
    ] {
        assert!(
            report[key].as_f64().is_some_and(|v| v > 0.0),
            "{key}: {report}"
        );
    }
    assert!(report["pytorch"].is_null());

    // Bad sizes: one line.
    let r = sbdm(&["bench", "sample", "--n", "0"]);
    assert!(!r.ok());
    assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
    assert!(r.stderr.contains("--n"), "{}", r.stderr);
}

#[test]
fn bench_device_runs_on_the_cpu_and_names_a_missing_gpu() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("device.json");
    let r = sbdm(&[
        "bench",
        "device",
        "--device",
        "cpu",
        "--n",
        "64",
        "--steps",
        "3",
        "--elements-log2",
        "12",
        "--iters",
        "1",
        "--train-steps",
        "1",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(r.ok(), "{}", r.stderr);
    // CPU against CPU: every sampler (the stochastic ones under Philox noise) and the
    // noise itself, difference 0.
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let diffs = report["max_abs_diff"].as_object().unwrap();
    assert_eq!(diffs.len(), 13, "{report}");
    assert_eq!(
        report["philox_noise_max_abs_diff"].as_f64(),
        Some(0.0),
        "{report}"
    );
    assert!(diffs.values().all(|d| d.as_f64() == Some(0.0)), "{report}");
    for key in [
        "fused_step_gb_s",
        "copy_gb_s",
        "noisy_step_gb_s",
        "noisy_step_drawn_first_s",
        "unet_step_device_s",
        "unet_step_cpu_s",
    ] {
        assert!(
            report[key].as_f64().is_some_and(|v| v > 0.0),
            "{key}: {report}"
        );
    }
    assert!(r.stdout.contains("step/copy bandwidth"), "{}", r.stdout);
    assert!(r.stdout.contains("noise in the pass"), "{}", r.stdout);
    // The default device is the GPU: in a CPU build, one line naming what is missing.
    if sbdm_runtime::device::HAS_CUDA {
        return;
    }
    let r = sbdm(&["bench", "device"]);
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(
        r.stderr.trim().starts_with("sbdm: --device: device `cuda`"),
        "{}",
        r.stderr
    );
    assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
}

#[test]
fn the_device_check_script_runs_a_prepared_binary() {
    // scripts/device-check.sh as a lent GPU machine runs it (a prepared binary, no toolkit,
    // no network), here CPU against CPU at a tiny size; and without a GPU, one line
    // saying so.
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("device-check.json");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/device-check.sh");
    let run = |device: Option<&str>| {
        let mut cmd = std::process::Command::new("bash");
        cmd.arg(script)
            .env("SBDM_BIN", env!("CARGO_BIN_EXE_sbdm"))
            .env("SBDM_CUDA_DIR", dir.path().join("no-toolkit"))
            .env("SBDM_DEVICE_JSON", &json)
            .env(
                "SBDM_DEVICE_ARGS",
                "--n 32 --steps 2 --elements-log2 10 --iters 1 --train-steps 0",
            );
        if let Some(d) = device {
            cmd.env("SBDM_DEVICE", d);
        } else {
            cmd.env_remove("SBDM_DEVICE");
        }
        cmd.output().unwrap()
    };
    let out = run(Some("cpu"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["device"], "cpu", "{report}");
    assert!(report["noisy_step_gb_s"].as_f64().is_some_and(|v| v > 0.0));
    let has_gpu = std::process::Command::new("nvidia-smi")
        .arg("-L")
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_gpu {
        let out = run(None);
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.trim().starts_with("device-check: no GPU here"), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
}
