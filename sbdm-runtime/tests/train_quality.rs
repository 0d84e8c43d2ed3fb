//! A CI-sized training run on 8 Gaussians must learn every mode.
//!
//! The bar (issue 4): with DDIM-50 from the EMA weights, every mode holds 12.5 % ± 4 % of
//! the samples (by nearest mean) and at least 90 % of the samples lie within 3 std of a
//! mode. With 4096 samples a share's sampling s.e. is 0.5 %, so ± 4 % is a statement
//! about the model, not the sampling noise; the exact score gives 99.7 % within 3 std
//! (radius 1.5 around each mean, d = 2: 1 − e^{−4.5} = 98.9 %).

use candle_core::{DType, Device};
use sbdm_runtime::data::{eight_gaussians, Dataset, Toy};
use sbdm_runtime::model::mixture::rows_f64;
use sbdm_runtime::model::net::{ModelConfig, NetModel};
use sbdm_runtime::model::prediction::Prediction;
use sbdm_runtime::nn::{EmbedConfig, MlpConfig, NetConfig};
use sbdm_runtime::report::metrics;
use sbdm_runtime::sampling::noise::Noise;
use sbdm_runtime::sampling::{Sampler, TimeGrid};
use sbdm_runtime::sde::builtin::VpSde;
use sbdm_runtime::train::{Dsm, LrSchedule, TrainConfig, Trainer, Weighting};
use sbdm_runtime::GaussianKernel;

/// Trains the CI-sized model and returns (shares, fraction within 3 std, E|x|²).
fn train_and_sample(
    prediction: Prediction,
    precondition: bool,
    weighting: Weighting,
    steps: u64,
) -> (Vec<f64>, f64, f64) {
    let dev = Device::Cpu;
    let sde = VpSde::default();
    let mixture = eight_gaussians();
    let cfg = ModelConfig {
        net: NetConfig::Mlp(MlpConfig {
            dim: 2,
            width: 128,
            depth: 3,
            embed: EmbedConfig::Fourier {
                dim: 32,
                scale: 16.0,
            },
            num_classes: 0,
        }),
        prediction,
        precondition,
        sigma_data: (mixture.second_moment() / 2.0).sqrt(),
    };
    let train = TrainConfig {
        steps,
        batch: 256,
        lr: 3e-3,
        warmup: 50,
        schedule: LrSchedule::Cosine,
        ema_decay: 0.995,
        weighting,
        seed: 1,
        ..Default::default()
    };
    let model = NetModel::new(sde, cfg, train.seed, &dev).unwrap();
    let mut tr = Trainer::new(
        Dsm::new(model),
        Dataset::Toy(Toy::EightGaussians),
        "8gaussians",
        train,
    )
    .unwrap();
    for _ in 0..steps {
        tr.step().unwrap();
    }
    let model = tr.ema_model().unwrap();
    let n = 4096;
    let mut noise = Noise::new(3, 0, n, &[2], &dev);
    let x_t = noise
        .draw()
        .unwrap()
        .affine(sde.prior_std(), 0.0)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap();
    let x = Sampler::Ddim { eta: 0.0 }
        .sample(&sde, &model, &x_t, &TimeGrid::uniform(50), &mut noise)
        .unwrap()
        .x
        .to_dtype(DType::F64)
        .unwrap();
    let nearest = mixture.nearest_component(&x).unwrap();
    let shares = metrics::shares(&nearest, 8);
    let rows = rows_f64(&x, 2).unwrap();
    let within = rows
        .iter()
        .zip(&nearest)
        .filter(|(r, &k)| {
            let m = &mixture.means()[k];
            ((r[0] - m[0]).powi(2) + (r[1] - m[1]).powi(2)).sqrt() <= 3.0 * 0.5
        })
        .count() as f64
        / n as f64;
    let (m2, _) = metrics::second_moment(&x).unwrap();
    (shares, within, m2)
}

fn check(label: &str, (shares, within, m2): (Vec<f64>, f64, f64)) {
    eprintln!("{label}: shares {shares:.3?}, within 3 std {within:.3}, E|x|² {m2:.3}");
    for (k, s) in shares.iter().enumerate() {
        assert!(
            (s - 0.125).abs() <= 0.04,
            "{label}: mode {k} holds {s:.3} of the samples"
        );
    }
    assert!(
        within >= 0.9,
        "{label}: only {within:.3} of samples within 3 std of a mode"
    );
}

#[test]
fn short_training_on_8_gaussians_covers_every_mode() {
    check(
        "eps, preconditioned, uniform",
        train_and_sample(Prediction::Eps, true, Weighting::Uniform, 3000),
    );
}

#[test]
fn short_training_without_preconditioning_covers_every_mode() {
    check(
        "v, min-snr",
        train_and_sample(Prediction::V, false, Weighting::MinSnr { gamma: 5.0 }, 3000),
    );
}

#[test]
fn an_untrained_model_fails_the_bar() {
    // The test can fail: a few steps are far from enough.
    let (shares, within, _) = train_and_sample(Prediction::Eps, true, Weighting::Uniform, 5);
    let ok = shares.iter().all(|s| (s - 0.125).abs() <= 0.04) && within >= 0.9;
    assert!(!ok, "5 steps passed the bar: {shares:?} {within}");
}
