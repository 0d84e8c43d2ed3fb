//! SDEs that live at run time through the CLI: a `.sde` file or inline flags for `sbdm
//! derive`, `sample` and `train`; a checkpoint of an SDE declared with `sde!` in this test
//! binary (not a named one) sampled through `sbdm sample` from the declaration it stores;
//! malformed files and edited checkpoints refused in one line, nothing written.

mod common;

use std::path::Path;

use candle_core::Device;
use common::sbdm;
use sbdm::sde;
use sbdm_runtime::data::{Dataset, Toy};
use sbdm_runtime::model::net::{ModelConfig, NetModel};
use sbdm_runtime::sde::{DynSde, GaussianKernel, Sde, SdeSource};
use sbdm_runtime::train::{checkpoint, Dsm, TrainConfig, Trainer};

sde! {
    /// A VP-type SDE with a quadratic β: no built-in has its kernel.
    pub struct QuadVp {
        params { b0: f64 = 0.1, b2: f64 = 24.0 }
        time = [1e-3, 1.0];
        let beta = b0 + b2 * t * t;
        drift = -0.5 * beta * x;
        diffusion = beta.sqrt();
    }
}

/// What `sde!` stores for a `QuadVp`: the file a user would write.
fn quad_vp_file(dir: &Path) -> String {
    let text = QuadVp::default().source().unwrap().text;
    let path = dir.join("quad_vp.sde");
    std::fs::write(&path, text.as_ref()).unwrap();
    path.display().to_string()
}

/// A checkpoint of `sde` after two training steps of a small MLP.
fn train_tiny<S: GaussianKernel + Clone + Send + Sync + 'static>(sde: S, dest: &Path) {
    let model = NetModel::new(sde, ModelConfig::default(), 0, &Device::Cpu).unwrap();
    let cfg = TrainConfig {
        steps: 2,
        batch: 16,
        ..Default::default()
    };
    let mut trainer = Trainer::new(
        Dsm::new(model),
        Dataset::Toy(Toy::EightGaussians),
        "8gaussians",
        cfg,
    )
    .unwrap();
    trainer.step().unwrap();
    trainer.step().unwrap();
    trainer.save(dest).unwrap();
}

/// `sbdm sample --model MODEL --sampler SAMPLER --steps STEPS --n N --out OUT` and `extra`.
fn sample_args<'a>(
    model: &'a str,
    sampler: &'a str,
    steps: &'a str,
    n: &'a str,
    out: &'a str,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec![
        "sample",
        "--model",
        model,
        "--sampler",
        sampler,
        "--steps",
        steps,
        "--n",
        n,
        "--out",
        out,
    ];
    args.extend(extra);
    args
}

fn fails_with(args: &[&str], needle: &str) {
    let run = sbdm(args);
    assert!(!run.ok(), "expected failure for {args:?}");
    assert_eq!(
        run.stderr.trim().lines().count(),
        1,
        "one line: {}",
        run.stderr
    );
    assert!(
        run.stderr.contains(needle),
        "`{needle}` not in: {}",
        run.stderr
    );
}

#[test]
fn a_checkpoint_of_a_declared_sde_samples_from_its_stored_declaration() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("model.safetensors");
    train_tiny(QuadVp { b0: 0.2, b2: 20.0 }, &ckpt);
    let model = format!("ckpt:{}", ckpt.display());
    let sample = |extra: &[&str], out: &Path| {
        sbdm(&sample_args(
            &model,
            "ddim",
            "5",
            "16",
            out.to_str().unwrap(),
            extra,
        ))
    };
    let out = dir.path().join("x.npy");
    let run = sample(&[], &out);
    assert!(run.ok(), "{}", run.stderr);
    assert!(run.stdout.contains("QuadVp"), "{}", run.stdout);
    assert!(out.exists());

    // The same SDE given explicitly (a file with the values) is accepted; another is not.
    let file = quad_vp_file(dir.path());
    let run = sample(
        &[
            "--sde",
            &file,
            "--sde-param",
            "b0=0.2",
            "--sde-param",
            "b2=20",
        ],
        &out,
    );
    assert!(run.ok(), "{}", run.stderr);
    let other = dir.path().join("other.npy");
    let run = sample(&["--sde", &file], &other);
    assert!(
        !run.ok() && run.stderr.contains("trained for"),
        "{}",
        run.stderr
    );
    assert!(!other.exists());
}

#[test]
fn an_edited_stored_declaration_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.safetensors");
    train_tiny(QuadVp::default(), &good);
    let ck = checkpoint::load(&good, &Device::Cpu).unwrap();
    let tensors: Vec<_> = ck.tensors.clone().into_iter().collect();
    let edit = |text: &str, name: &str| {
        let mut info = ck.info.clone();
        info.sde_source = Some(SdeSource {
            text: text.to_string().into(),
            params: info.sde_source.as_ref().unwrap().params.clone(),
        });
        let path = dir.path().join(name);
        checkpoint::save(&path, &info, &tensors).unwrap();
        format!("ckpt:{}", path.display())
    };
    let source = QuadVp::default().source().unwrap().text.to_string();
    let broken = edit(
        &source.replace("diffusion = ", "diffusion = * "),
        "broken.safetensors",
    );
    let other = edit(&source.replace("b2 * t * t", "b2 * t"), "other.safetensors");
    for (model, needle) in [
        (broken, "does not derive"),
        (other, "does not give the kernel"),
    ] {
        let out = dir.path().join("x.npy");
        fails_with(
            &[
                "sample",
                "--model",
                &model,
                "--sampler",
                "ddim",
                "--steps",
                "5",
                "--n",
                "4",
                "--out",
                out.to_str().unwrap(),
            ],
            needle,
        );
        assert!(!out.exists());
    }
}

#[test]
fn sde_files_and_inline_flags_work_in_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let file = quad_vp_file(dir.path());
    // derive: the file gives the macro's derivation.
    let run = sbdm(&["derive", "--sde", &file]);
    assert!(run.ok(), "{}", run.stderr);
    assert_eq!(
        run.stdout.trim_end(),
        QuadVp::derivation().to_string().trim_end()
    );

    // sample with an exact mixture: the file, and the same SDE inline, give the same samples.
    let mix = dir.path().join("mix.json");
    std::fs::write(
        &mix,
        r#"{"weights":[0.5,0.5],"means":[[-2,0],[2,0]],"stds":[0.5,0.5]}"#,
    )
    .unwrap();
    let gmm = format!("gmm:{}", mix.display());
    let sample =
        |sde: &[&str], out: &str| sbdm(&sample_args(&gmm, "dpmpp2m", "10", "64", out, sde));
    let (a, b) = (dir.path().join("a.npy"), dir.path().join("b.npy"));
    let run = sample(&["--sde", &file], a.to_str().unwrap());
    assert!(run.ok(), "{}", run.stderr);
    let inline = [
        "--sde-name",
        "QuadVp",
        "--sde-param",
        "b0=0.1",
        "--sde-param",
        "b2=24.0",
        "--let",
        "beta=b0 + b2 * t * t",
        "--drift",
        "-0.5 * beta * x",
        "--diffusion",
        "beta.sqrt()",
    ];
    let run = sample(&inline, b.to_str().unwrap());
    assert!(run.ok(), "{}", run.stderr);
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());

    // train from the file: the checkpoint stores the declaration.
    let runs = dir.path().join("run");
    let run = sbdm(&[
        "train",
        "--sde",
        &file,
        "--data",
        "8gaussians",
        "--model",
        "mlp",
        "--width",
        "32",
        "--depth",
        "2",
        "--steps",
        "2",
        "--batch",
        "16",
        "--out",
        runs.to_str().unwrap(),
    ]);
    assert!(run.ok(), "{}", run.stderr);
    let info = checkpoint::read_info(runs.join("model.safetensors")).unwrap();
    let stored = DynSde::from_source(info.sde_source.as_ref().unwrap()).unwrap();
    assert_eq!(stored.std(0.5), QuadVp::default().std(0.5));
}

#[test]
fn malformed_files_and_flags_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.sde");
    std::fs::write(
        &bad,
        "struct Bad {\n    time = [1e-3, 1.0];\n    drift = -0.5 * gamma * x;\n    diffusion = 1.0;\n}\n",
    )
    .unwrap();
    let bad = bad.display().to_string();
    fails_with(
        &["derive", "--sde", &bad],
        &format!("{bad}:3:20: unknown name `gamma`"),
    );
    let mix = dir.path().join("mix.json");
    std::fs::write(&mix, r#"{"weights":[1],"means":[[0,0]],"stds":[1]}"#).unwrap();
    let gmm = format!("gmm:{}", mix.display());
    let out = dir.path().join("x.npy");
    let out = out.to_str().unwrap();
    let sample = sample_args(&gmm, "ddim", "3", "1000", out, &[]);
    fails_with(&[&sample[..], &["--sde", &bad]].concat(), ":3:20:");
    fails_with(
        &[&sample[..], &["--sde", "missing.sde"]].concat(),
        "missing.sde",
    );
    fails_with(
        &[&sample[..], &["--sde", "vp", "--sde-param", "gamma=1"]].concat(),
        "no parameter `gamma`",
    );
    fails_with(
        &[&sample[..], &["--sde", "vp", "--drift", "-x"]].concat(),
        "not both",
    );
    fails_with(
        &[&sample[..], &["--let", "b=1"]].concat(),
        "declared inline",
    );
    fails_with(
        &[&sample[..], &["--drift", "-x * x", "--diffusion", "1.0"]].concat(),
        "linear in x",
    );
    assert!(!Path::new(out).exists());
}
