//! Training runs: reproducibility, resume, checkpoints and their refusals.

mod common;

use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use sbdm_runtime::data::{Dataset, Toy};
use sbdm_runtime::error::Error;
use sbdm_runtime::model::net::{ModelConfig, NetModel};
use sbdm_runtime::model::prediction::Prediction;
use sbdm_runtime::model::{Condition, ScoreModel, Trainable};
use sbdm_runtime::nn::{EmbedConfig, MlpConfig, NetConfig};
use sbdm_runtime::sde::builtin::{VeSde, VpSde};
use sbdm_runtime::train::{self, checkpoint, Dsm, TrainConfig, Trainer, Weighting};
use sbdm_runtime::GaussianKernel;

use common::{half_then_resume, tensors};

fn small_model(prediction: Prediction, precondition: bool) -> ModelConfig {
    ModelConfig {
        net: NetConfig::Mlp(MlpConfig {
            dim: 2,
            width: 32,
            depth: 2,
            embed: EmbedConfig::Fourier {
                dim: 16,
                scale: 4.0,
            },
            num_classes: 0,
        }),
        prediction,
        precondition,
        sigma_data: 2.9,
    }
}

fn small_train(steps: u64) -> TrainConfig {
    TrainConfig {
        steps,
        batch: 64,
        lr: 2e-3,
        warmup: 3,
        seed: 5,
        ..Default::default()
    }
}

fn trainer<S: GaussianKernel + Clone>(sde: S, m: ModelConfig, t: TrainConfig) -> Trainer<Dsm<S>> {
    let model = NetModel::new(sde, m, t.seed, &Device::Cpu).unwrap();
    Trainer::new(
        Dsm::new(model),
        Dataset::Toy(Toy::EightGaussians),
        "8gaussians",
        t,
    )
    .unwrap()
}

#[test]
fn resume_continues_exactly_and_seeds_reproduce() {
    let dir = tempfile::tempdir().unwrap();
    for (pred, precond, w) in [
        (Prediction::Eps, false, Weighting::B2),
        (Prediction::V, true, Weighting::MinSnr { gamma: 5.0 }),
    ] {
        let cfg = small_model(pred, precond);
        let mut t = small_train(12);
        t.weighting = w;
        let straight = dir.path().join("straight.safetensors");
        let mut a = trainer(VpSde::default(), cfg.clone(), t.clone());
        for _ in 0..12 {
            a.step().unwrap();
        }
        a.save(&straight).unwrap();

        let (_, resumed) = half_then_resume(dir.path(), || {
            trainer(VpSde::default(), cfg.clone(), t.clone())
        });
        // Weights, EMA and optimiser moments all bit-identical.
        assert!(
            tensors(&straight) == tensors(&resumed),
            "{pred:?}: resumed run differs"
        );
        // The same run twice gives the same tensors; another seed does not. (Bytes may
        // differ: safetensors writes its metadata map in hash order.)
        let again = dir.path().join("again.safetensors");
        let mut d = trainer(VpSde::default(), cfg.clone(), t.clone());
        for _ in 0..12 {
            d.step().unwrap();
        }
        d.save(&again).unwrap();
        assert!(
            tensors(&straight) == tensors(&again),
            "{pred:?}: rerun differs"
        );
        let mut other = t.clone();
        other.seed = 6;
        let mut e = trainer(VpSde::default(), cfg.clone(), other);
        for _ in 0..12 {
            e.step().unwrap();
        }
        let o = dir.path().join("other.safetensors");
        e.save(&o).unwrap();
        assert!(tensors(&straight) != tensors(&o), "{pred:?}: seed ignored");
    }
}

#[test]
fn checkpoint_round_trip_gives_identical_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    let mut tr = trainer(
        VpSde::default(),
        small_model(Prediction::X0, false),
        small_train(5),
    );
    for _ in 0..5 {
        tr.step().unwrap();
    }
    tr.save(&path).unwrap();
    let x = Tensor::randn(0f32, 3.0, (17, 2), &Device::Cpu).unwrap();
    let t = Tensor::from_vec(
        (0..17).map(|i| 0.01 + 0.05 * i as f32).collect(),
        17,
        &Device::Cpu,
    )
    .unwrap();
    for ema in [true, false] {
        let (loaded, info) = train::load_model(&path, VpSde::default(), ema, &Device::Cpu).unwrap();
        assert_eq!(info.step, 5);
        assert_eq!(loaded.prediction(), Prediction::X0);
        let direct = if ema {
            tr.ema_model().unwrap()
        } else {
            trainer_model_copy(&tr)
        };
        let a = loaded
            .forward(&x, &t, &Condition::None)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        let b = direct
            .forward(&x, &t, &Condition::None)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        assert_eq!(a, b, "ema = {ema}");
    }
    // EMA and raw weights differ after training, so the flag matters.
    let (e, _) = train::load_model(&path, VpSde::default(), true, &Device::Cpu).unwrap();
    let (r, _) = train::load_model(&path, VpSde::default(), false, &Device::Cpu).unwrap();
    assert_ne!(
        e.forward(&x, &t, &Condition::None)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap(),
        r.forward(&x, &t, &Condition::None)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap()
    );
}

fn trainer_model_copy(tr: &Trainer<Dsm<VpSde>>) -> NetModel<VpSde> {
    let m = NetModel::new(
        VpSde::default(),
        tr.model().config().clone(),
        99,
        &Device::Cpu,
    )
    .unwrap();
    let w: Vec<(String, Tensor)> = tr
        .model()
        .weights()
        .vars()
        .into_iter()
        .map(|(k, v)| (k, v.as_tensor().clone()))
        .collect();
    m.weights().set(&w).unwrap();
    m
}

fn message(e: Error) -> String {
    e.to_string()
}

#[test]
fn checkpoints_of_another_configuration_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    let cfg = small_model(Prediction::Eps, false);
    let mut tr = trainer(VpSde::default(), cfg.clone(), small_train(4));
    tr.step().unwrap();
    tr.save(&path).unwrap();

    let e = message(
        train::load_model(&path, VeSde::default(), true, &Device::Cpu)
            .err()
            .unwrap(),
    );
    assert!(e.contains("trained for the SDE VpSde, not VeSde"), "{e}");
    let other = VpSde {
        beta_min: 0.1,
        beta_max: 10.0,
    };
    let e = message(
        train::load_model(&path, other, true, &Device::Cpu)
            .err()
            .unwrap(),
    );
    assert!(e.contains("other parameters"), "{e}");

    // Resume with another model configuration / training setting / SDE / data.
    let mut wider = cfg.clone();
    if let NetConfig::Mlp(m) = &mut wider.net {
        m.width = 48;
    }
    let e = message(
        trainer(VpSde::default(), wider, small_train(4))
            .restore(&path)
            .err()
            .unwrap(),
    );
    assert!(e.contains("model configuration differs"), "{e}");
    let mut lr = small_train(4);
    lr.lr = 1e-4;
    let e = message(
        trainer(VpSde::default(), cfg.clone(), lr)
            .restore(&path)
            .err()
            .unwrap(),
    );
    assert!(e.contains("other settings"), "{e}");
    let e = message(
        trainer(other, cfg.clone(), small_train(4))
            .restore(&path)
            .err()
            .unwrap(),
    );
    assert!(e.contains("other parameters"), "{e}");
    let model = NetModel::new(VpSde::default(), cfg.clone(), 5, &Device::Cpu).unwrap();
    let mut moons = Trainer::new(
        Dsm::new(model),
        Dataset::Toy(Toy::Moons),
        "moons",
        small_train(4),
    )
    .unwrap();
    let e = message(moons.restore(&path).err().unwrap());
    assert!(e.contains("trained on `8gaussians`, not `moons`"), "{e}");
    // Only the total step count may change.
    let mut longer = trainer(VpSde::default(), cfg, small_train(40));
    longer.restore(&path).unwrap();
    assert_eq!(longer.steps_done(), 1);
}

#[test]
fn truncated_or_corrupted_checkpoints_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    let mut tr = trainer(
        VpSde::default(),
        small_model(Prediction::Eps, false),
        small_train(2),
    );
    tr.step().unwrap();
    tr.save(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();

    let cut = dir.path().join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = message(checkpoint::load(&cut, &Device::Cpu).err().unwrap());
    assert!(e.contains("truncated or corrupt"), "{e}");

    let flipped = dir.path().join("flipped.safetensors");
    let mut b = bytes.clone();
    let i = b.len() - 10;
    b[i] ^= 0x40;
    std::fs::write(&flipped, &b).unwrap();
    let e = message(checkpoint::load(&flipped, &Device::Cpu).err().unwrap());
    assert!(e.contains("checksum mismatch"), "{e}");

    let missing = dir.path().join("none.safetensors");
    let e = message(checkpoint::load(&missing, &Device::Cpu).err().unwrap());
    assert!(e.contains("none.safetensors"), "{e}");

    // A safetensors file that is not an sbdm checkpoint.
    let plain = dir.path().join("plain.safetensors");
    let t = Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap();
    t.save_safetensors("w", &plain).unwrap();
    let e = message(checkpoint::load(&plain, &Device::Cpu).err().unwrap());
    assert!(e.contains("not an sbdm checkpoint"), "{e}");
    // The original is intact and loads.
    checkpoint::load(&path, &Device::Cpu).unwrap();

    // The metadata alone: the same info as a full load, refused where the header is.
    let info = checkpoint::read_info(&path).unwrap();
    assert_eq!(info, checkpoint::load(&path, &Device::Cpu).unwrap().info);
    assert_eq!(info.kind, checkpoint::ModelKind::Score);
    let e = message(checkpoint::read_info(&plain).err().unwrap());
    assert!(e.contains("not an sbdm checkpoint"), "{e}");
    let e = message(checkpoint::read_info(&missing).err().unwrap());
    assert!(e.contains("none.safetensors"), "{e}");
    let short = dir.path().join("short.safetensors");
    std::fs::write(&short, &bytes[..5]).unwrap();
    let e = message(checkpoint::read_info(&short).err().unwrap());
    assert!(e.contains("shorter than its header"), "{e}");
    let header = dir.path().join("header.safetensors");
    std::fs::write(&header, &bytes[..100]).unwrap();
    let e = message(checkpoint::read_info(&header).err().unwrap());
    assert!(e.contains("header of"), "{e}");
}

#[test]
fn a_non_finite_loss_stops_training_naming_the_step() {
    let mut t = small_train(50);
    t.lr = 1e6;
    t.clip = 0.0;
    t.warmup = 0;
    let mut tr = trainer(VpSde::default(), small_model(Prediction::Eps, false), t);
    let mut failed = None;
    for _ in 0..50 {
        match tr.step() {
            Ok(_) => {}
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    let e = failed.expect("lr 1e6 without clipping must diverge");
    let Error::Training { step, .. } = &e else {
        panic!("unexpected error {e}");
    };
    assert_eq!(*step, tr.steps_done() + 1);
    assert!(e.to_string().contains(&format!("step {step}")), "{e}");
}

#[test]
fn model_and_train_configs_are_validated() {
    let mut m = small_model(Prediction::Eps, false);
    m.sigma_data = 0.0;
    let e = NetModel::new(VpSde::default(), m, 0, &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("sigma_data"), "{e}");
    let mut m = small_model(Prediction::PosteriorMean { num_train: 1000 }, false);
    m.sigma_data = 1.0;
    let e = NetModel::new(VpSde::default(), m, 0, &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("score, eps, x0, v"), "{e}");
    let model = NetModel::new(
        VpSde::default(),
        small_model(Prediction::Eps, false),
        0,
        &Device::Cpu,
    )
    .unwrap();
    let mut t = small_train(3);
    t.beta2 = 1.0;
    let e = Trainer::new(Dsm::new(model), Dataset::Toy(Toy::EightGaussians), "x", t)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("beta2"), "{e}");
    // Data of the wrong shape for the model.
    let model = NetModel::new(
        Arc::new(VpSde::default()),
        small_model(Prediction::Eps, false),
        0,
        &Device::Cpu,
    )
    .unwrap();
    let data = Dataset::from_name("shapes16", 8, 0, &Device::Cpu).unwrap();
    let e = Trainer::new(Dsm::new(model), data, "shapes16", small_train(3))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("expects [2]"), "{e}");
}
