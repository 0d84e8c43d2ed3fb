//! One validation site: each invalid setting gives the same one-line error from the
//! library (`Sampler::validate`, `TimeGrid::times`, `Condition::check`, all reached
//! through `Sampler::sample`) and from `sbdm sample`, which calls the same checks before
//! sampling and writes nothing.

mod common;

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use sbdm_runtime::data::{Dataset, Toy};
use sbdm_runtime::model::mixture::GaussianMixture;
use sbdm_runtime::model::net::{ModelConfig, NetModel};
use sbdm_runtime::model::{Condition, ScoreModel};
use sbdm_runtime::sampling::{Guided, Noise, Sampler, TimeGrid};
use sbdm_runtime::sde::builtin::VpSde;
use sbdm_runtime::train::{Dsm, TrainConfig, Trainer};

use common::sbdm;

const MIXTURE: &str = r#"{"weights": [0.25, 0.25, 0.25, 0.25],
  "means": [[2, 0], [0, 2], [-2, 0], [0, -2]], "stds": [0.3, 0.3, 0.3, 0.3]}"#;

/// The library's error for `sampler` on `grid` with `model` under `condition`.
fn library<M: ScoreModel>(
    sampler: &str,
    grid: TimeGrid,
    model: &M,
    condition: Condition,
) -> String {
    let sde = VpSde::default();
    let n = 100;
    let sampler: Sampler = sampler.parse().unwrap();
    let x = Tensor::zeros((n, 2), DType::F32, &Device::Cpu).unwrap();
    let mut noise = Noise::new(0, 0, n, &[2], &Device::Cpu);
    let guided = Guided::new(model).with_condition(condition);
    sampler
        .sample(&sde, &guided, &x, &grid, &mut noise)
        .expect_err("an invalid setting")
        .to_string()
}

/// `sbdm sample` with `extra` flags on top of 100 samples of `model` by `--sampler`:
/// its one line of stderr, which must be `sbdm: ` and the library's message, and
/// nothing written.
fn cli(dir: &Path, model: &str, sampler: &str, extra: &[&str]) -> String {
    let out = dir.join("s.npy");
    let out = out.display().to_string();
    let mut args = vec![
        "sample",
        "--sde",
        "vp",
        "--model",
        model,
        "--sampler",
        sampler,
        "--n",
        "100",
        "--out",
        &out,
    ];
    args.extend_from_slice(extra);
    let r = sbdm(&args);
    assert!(!r.ok(), "{args:?} succeeded:\n{}", r.stdout);
    assert!(!Path::new(&out).exists(), "{args:?} wrote {out}");
    let msg = r.stderr.trim().to_string();
    assert_eq!(msg.lines().count(), 1, "{args:?}: not one line:\n{msg}");
    msg.strip_prefix("sbdm: ").unwrap_or(&msg).to_string()
}

#[test]
fn invalid_settings_give_the_same_error_from_the_library_and_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let gmm = dir.path().join("gmm.json");
    std::fs::write(&gmm, MIXTURE).unwrap();
    let mix = GaussianMixture::from_json(MIXTURE).unwrap();
    let sde = VpSde::default();
    let exact = mix.model(&sde);
    let model = format!("gmm:{}", gmm.display());
    let ten = || TimeGrid::uniform(10);
    let dev = Device::Cpu;

    let cases: Vec<(&str, String, String)> = vec![
        (
            "eta < 0",
            library("ddim(eta=-0.5)", ten(), &exact, Condition::None),
            cli(
                dir.path(),
                &model,
                "ddim",
                &["--steps", "10", "--eta", "-0.5"],
            ),
        ),
        (
            "rtol <= 0",
            library("rk45(rtol=0)", ten(), &exact, Condition::None),
            cli(
                dir.path(),
                &model,
                "rk45",
                &["--steps", "10", "--rtol", "0"],
            ),
        ),
        (
            "steps 0",
            library("ddim", TimeGrid::uniform(0), &exact, Condition::None),
            cli(dir.path(), &model, "ddim", &["--steps", "0"]),
        ),
        (
            "a grid outside the time range",
            library("ddim", ten().between(1.0, 0.0), &exact, Condition::None),
            cli(
                dir.path(),
                &model,
                "ddim",
                &["--steps", "10", "--t-min", "0"],
            ),
        ),
        (
            "explicit times not decreasing",
            library(
                "ddim",
                TimeGrid::Times(vec![1.0, 0.5, 0.7]),
                &exact,
                Condition::None,
            ),
            cli(dir.path(), &model, "ddim", &["--times", "1,0.5,0.7"]),
        ),
        (
            "an unknown class",
            library(
                "ddim",
                ten(),
                &exact,
                Condition::class(7, 100, &dev).unwrap(),
            ),
            cli(
                dir.path(),
                &model,
                "ddim",
                &["--steps", "10", "--class", "7"],
            ),
        ),
    ];
    // A condition on an unconditional model: a checkpoint of an unconditional network.
    let net = NetModel::new(sde, ModelConfig::default(), 0, &dev).unwrap();
    let cfg = TrainConfig {
        steps: 1,
        batch: 8,
        ..Default::default()
    };
    let mut trainer = Trainer::new(Dsm::new(net), Dataset::Toy(Toy::Moons), "moons", cfg).unwrap();
    trainer.step().unwrap();
    let ckpt = dir.path().join("model.safetensors");
    trainer.save(&ckpt).unwrap();
    let net = trainer.ema_model().unwrap();
    let ckpt_model = format!("ckpt:{}", ckpt.display());
    let unconditional = (
        "a class for an unconditional model",
        library("ddim", ten(), &net, Condition::class(0, 100, &dev).unwrap()),
        cli(
            dir.path(),
            &ckpt_model,
            "ddim",
            &["--steps", "10", "--class", "0"],
        ),
    );
    for (what, lib, cli) in cases.into_iter().chain([unconditional]) {
        assert_eq!(lib.lines().count(), 1, "{what}: {lib}");
        assert_eq!(cli, lib, "{what}: the CLI and the library disagree");
    }
}
