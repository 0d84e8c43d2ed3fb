//! Time-dependent classifiers: against the exact class posterior of 8gaussians, their
//! input gradients, resume, and refusals.

mod common;

use std::sync::OnceLock;

use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use sbdm_runtime::data::{eight_gaussians, Dataset, Toy};
use sbdm_runtime::error::Error;
use sbdm_runtime::model::classifier::ClassifierModel;
use sbdm_runtime::model::net::{ModelConfig, NetModel};
use sbdm_runtime::model::Trainable;
use sbdm_runtime::nn::{ClassifierConfig, EmbedConfig, MlpConfig, NetConfig};
use sbdm_runtime::sde::builtin::VpSde;
use sbdm_runtime::train::{self, Dsm, LrSchedule, TrainConfig, Trainer};
use sbdm_runtime::train::{load_classifier, CrossEntropy};
use sbdm_runtime::GaussianKernel;

use common::{half_then_resume, tensors};

/// `σ_d` of 8gaussians: `√(E|x|²/2) = √(16.5/2) ≈ 2.87`.
const SIGMA_DATA: f64 = 2.87;

fn mlp(width: usize, depth: usize) -> ClassifierConfig {
    ClassifierConfig {
        net: NetConfig::Mlp(MlpConfig {
            dim: 2,
            width,
            depth,
            embed: EmbedConfig::Fourier {
                dim: 16,
                scale: 4.0,
            },
            num_classes: 0,
        }),
        num_classes: 8,
    }
}

fn train_cfg(steps: u64, batch: usize) -> TrainConfig {
    TrainConfig {
        steps,
        batch,
        lr: 3e-3,
        warmup: 20,
        schedule: LrSchedule::Cosine,
        ema_decay: 0.99,
        seed: 11,
        ..Default::default()
    }
}

fn trainer(cfg: ClassifierConfig, t: TrainConfig) -> Trainer<CrossEntropy<VpSde>> {
    let model =
        ClassifierModel::new(VpSde::default(), cfg, SIGMA_DATA, t.seed, &Device::Cpu).unwrap();
    Trainer::new(
        CrossEntropy::new(model),
        Dataset::Toy(Toy::EightGaussians),
        "8gaussians",
        t,
    )
    .unwrap()
}

const STEPS: u64 = 1000;

/// The classifier of the oracle test, trained once and shared by the tests that need a
/// trained one.
fn trained() -> &'static ClassifierModel<VpSde> {
    static MODEL: OnceLock<ClassifierModel<VpSde>> = OnceLock::new();
    MODEL.get_or_init(|| {
        let start = std::time::Instant::now();
        let mut tr = trainer(mlp(64, 3), train_cfg(STEPS, 256));
        let mut last = 0.0;
        for _ in 0..STEPS {
            last = tr.step().unwrap().loss;
        }
        eprintln!(
            "trained {STEPS} steps in {:.1} s, last loss {last:.4}",
            start.elapsed().as_secs_f64()
        );
        tr.ema_model().unwrap()
    })
}

/// Fresh noised 8gaussians samples at `t` with their true components: `x_0` and `ε`
/// from streams training never uses.
fn noised(sde: &VpSde, t: f64, n: usize, seed: u64) -> (Vec<[f64; 2]>, Vec<u32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut x0 = vec![0f32; 2 * n];
    let mut labels = vec![0u32; n];
    Toy::EightGaussians.fill(&mut rng, &mut x0, Some(&mut labels));
    let (a, b) = (sde.mean_coef(t), sde.std(t));
    let xt = x0
        .chunks_exact(2)
        .map(|p| {
            let e0: f64 = rng.sample(StandardNormal);
            let e1: f64 = rng.sample(StandardNormal);
            [a * f64::from(p[0]) + b * e0, a * f64::from(p[1]) + b * e1]
        })
        .collect();
    (xt, labels)
}

fn tensor(x: &[[f64; 2]]) -> Tensor {
    let flat: Vec<f32> = x.iter().flat_map(|p| [p[0] as f32, p[1] as f32]).collect();
    Tensor::from_vec(flat, (x.len(), 2), &Device::Cpu).unwrap()
}

fn argmax(p: &[f64]) -> usize {
    (0..p.len()).max_by(|&i, &j| p[i].total_cmp(&p[j])).unwrap()
}

/// Mean total-variation distance between the classifier's softmax and the exact
/// posterior, the classifier's accuracy and the Bayes (oracle argmax) accuracy.
fn compare(clf: &ClassifierModel<VpSde>, t: f64, n: usize) -> (f64, f64, f64) {
    let sde = VpSde::default();
    let (x, labels) = noised(&sde, t, n, 1000 + (t * 100.0) as u64);
    let logits = clf.logits(&tensor(&x), &vec![t; n]).unwrap();
    let p = candle_nn::ops::softmax(&logits, 1)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec2::<f64>()
        .unwrap();
    let mix = eight_gaussians();
    let (a, b) = (sde.mean_coef(t), sde.std(t));
    let (mut tv, mut acc, mut bayes) = (0.0, 0.0, 0.0);
    for ((xi, pi), &y) in x.iter().zip(&p).zip(&labels) {
        let q = mix.class_posterior_at(xi, a, b);
        tv += 0.5 * pi.iter().zip(&q).map(|(u, v)| (u - v).abs()).sum::<f64>();
        acc += f64::from(u8::from(argmax(pi) == y as usize));
        bayes += f64::from(u8::from(argmax(&q) == y as usize));
    }
    let n = n as f64;
    (tv / n, acc / n, bayes / n)
}

/// After 1000 steps (batch 256) the mean TV distance measured 0.013, 0.021 and 0.027 at
/// t = 0.05, 0.3, 0.6, and the accuracy was within 0.002 of Bayes; 300 steps gave
/// 0.047, 0.031, 0.051. The bound 0.05 is about twice the trained value; the untrained
/// classifier is at 0.86, 0.75, 0.29. The Monte Carlo error of a mean over 4000 points
/// is ~0.001 for the TV and ≤ 0.005 for the paired accuracy difference (≤ 10% of the
/// rows disagree), so the 0.02 accuracy margin is ≥ 4 standard errors.
#[test]
fn softmax_matches_the_exact_posterior() {
    let clf = trained();
    let untrained =
        ClassifierModel::new(VpSde::default(), mlp(64, 3), SIGMA_DATA, 11, &Device::Cpu).unwrap();
    for t in [0.05, 0.3, 0.6] {
        let bound = 0.05;
        let (tv, acc, bayes) = compare(clf, t, 4000);
        let (tv0, acc0, _) = compare(&untrained, t, 4000);
        eprintln!(
            "t = {t}: TV {tv:.4} (untrained {tv0:.4}), accuracy {acc:.4} vs Bayes {bayes:.4} (untrained {acc0:.4})"
        );
        assert!(tv <= bound, "t = {t}: mean TV {tv} > {bound}");
        assert!(
            tv0 > bound,
            "t = {t}: the untrained classifier passes too ({tv0})"
        );
        assert!(
            (acc - bayes).abs() <= 0.02,
            "t = {t}: accuracy {acc} vs Bayes {bayes}"
        );
    }
}

/// `∇_x log p(y | x_t)` of the exact mixture posterior:
/// `−(x − a·μ_y)/(a²s² + b²) − ∇_x log p_t(x)`.
fn exact_grad(x: &[f64; 2], y: usize, t: f64) -> [f64; 2] {
    let sde = VpSde::default();
    let mix = eight_gaussians();
    let (a, b) = (sde.mean_coef(t), sde.std(t));
    let mut score = [0.0; 2];
    mix.score_at(x, a, b, &mut score);
    let (mu, s) = (&mix.means()[y], mix.stds()[y]);
    let var = a * a * s * s + b * b;
    [
        -(x[0] - a * mu[0]) / var - score[0],
        -(x[1] - a * mu[1]) / var - score[1],
    ]
}

#[test]
fn grad_log_prob_matches_finite_differences_and_the_exact_gradient() {
    let clf = trained();
    let t = 0.3;
    let n = 64;
    let (x, labels) = noised(&VpSde::default(), t, n, 77);
    let xs = tensor(&x);
    let ts = vec![t; n];
    let y = Tensor::from_vec(labels.clone(), n, &Device::Cpu).unwrap();
    let g = clf.grad_log_prob(&xs, &ts, &y).unwrap();
    assert_eq!(g.dims(), &[n, 2]);
    let g = g.to_vec2::<f32>().unwrap();
    // Central differences in f32: h = 0.02 against |x| ~ 2.5; the rounding error of
    // log p (~1e-6) over 2h is ~5e-5, the truncation error h²/6·|∂³ log p| ~1e-4.
    // Measured worst: 2.3e-3 relative. A gradient that missed the input scaling
    // (c_in ≈ 0.5 at t = 0.3) would be off by ~100%.
    let h = 0.02f32;
    let mut worst = 0f32;
    for j in 0..2 {
        let bump = |s: f32| {
            let shifted: Vec<[f64; 2]> = x
                .iter()
                .map(|p| {
                    let mut q = *p;
                    q[j] += f64::from(s);
                    q
                })
                .collect();
            clf.log_prob(&tensor(&shifted), &ts, &y)
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        };
        let (up, down) = (bump(h), bump(-h));
        for i in 0..n {
            let fd = (up[i] - down[i]) / (2.0 * h);
            let err = (g[i][j] - fd).abs() / (1e-3 + fd.abs());
            worst = worst.max(err);
        }
    }
    eprintln!("worst relative FD error {worst:.2e}");
    assert!(worst < 2e-2, "finite differences disagree: {worst}");

    // Where the exact posterior of the true class is ambiguous, the classifier's
    // gradient points the way the exact one does; an untrained one's does not.
    let (cos, count) = mean_cosine(&g, &x, &labels, t);
    let untrained =
        ClassifierModel::new(VpSde::default(), mlp(64, 3), SIGMA_DATA, 11, &Device::Cpu).unwrap();
    let g0 = untrained.grad_log_prob(&xs, &ts, &y).unwrap();
    let (cos0, _) = mean_cosine(&g0.to_vec2::<f32>().unwrap(), &x, &labels, t);
    eprintln!(
        "mean cosine to the exact gradient over {count} ambiguous points: {cos:.4} \
         (untrained {cos0:.4})"
    );
    assert!(count >= 10 && cos > 0.9, "cosine {cos} over {count} points");
    assert!(cos0 < 0.9, "the untrained classifier passes too ({cos0})");
}

/// The mean cosine between `g` and the exact `∇_x log p(y | x_t)` over the rows whose
/// exact posterior of their label lies in [0.1, 0.9], and how many there are.
fn mean_cosine(g: &[Vec<f32>], x: &[[f64; 2]], labels: &[u32], t: f64) -> (f64, u32) {
    let mix = eight_gaussians();
    let sde = VpSde::default();
    let (a, b) = (sde.mean_coef(t), sde.std(t));
    let (mut sum, mut count) = (0.0, 0);
    for ((gi, xi), &yi) in g.iter().zip(x).zip(labels) {
        let p = mix.class_posterior_at(xi, a, b)[yi as usize];
        if !(0.1..=0.9).contains(&p) {
            continue;
        }
        let e = exact_grad(xi, yi as usize, t);
        let m = [f64::from(gi[0]), f64::from(gi[1])];
        sum += (e[0] * m[0] + e[1] * m[1]) / (e[0].hypot(e[1]) * m[0].hypot(m[1]));
        count += 1;
    }
    (sum / f64::from(count.max(1)), count)
}

#[test]
fn resume_continues_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = train_cfg(12, 64);
    cfg.warmup = 3;
    let small = || mlp(32, 2);

    let straight = dir.path().join("straight.safetensors");
    let mut a = trainer(small(), cfg.clone());
    for _ in 0..12 {
        a.step().unwrap();
    }
    a.save(&straight).unwrap();

    let (half, resumed) = half_then_resume(dir.path(), || trainer(small(), cfg.clone()));
    // Weights, EMA and optimiser moments all bit-identical; and training moved them.
    let (s, r, h) = (tensors(&straight), tensors(&resumed), tensors(&half));
    assert!(s == r, "the resumed run differs");
    assert!(s != h, "training did not change the weights");

    // The checkpoint loads for guidance: its EMA classifier is the trainer's.
    let (loaded, info) = load_classifier(&straight, VpSde::default(), true, &Device::Cpu).unwrap();
    assert_eq!((info.step, loaded.num_classes()), (12, 8));
    assert_eq!(
        info.kind,
        train::ModelKind::Classifier { num_classes: 8 },
        "the kind is typed"
    );
    assert_eq!(info.data.as_deref(), Some("8gaussians"));
    let (x, _) = noised(&VpSde::default(), 0.2, 9, 5);
    let ts: Vec<f64> = (0..9).map(|i| 0.05 + 0.1 * f64::from(i)).collect();
    let direct = a.ema_model().unwrap().logits(&tensor(&x), &ts).unwrap();
    let read = loaded.logits(&tensor(&x), &ts).unwrap();
    assert_eq!(
        direct.to_vec2::<f32>().unwrap(),
        read.to_vec2::<f32>().unwrap()
    );

    // Another classifier configuration is refused.
    let mut other = trainer(mlp(16, 2), cfg.clone());
    let e = other.restore(&half).unwrap_err().to_string();
    assert!(e.contains("model configuration differs"), "{e}");

    // Score-model and classifier checkpoints do not load as each other.
    let score = dir.path().join("score.safetensors");
    let model = ModelConfig {
        net: mlp(32, 2).net,
        sigma_data: SIGMA_DATA,
        ..Default::default()
    };
    let net = NetModel::new(VpSde::default(), model, cfg.seed, &Device::Cpu).unwrap();
    let dsm = Trainer::new(
        Dsm::new(net),
        Dataset::Toy(Toy::EightGaussians),
        "8gaussians",
        cfg,
    )
    .unwrap();
    dsm.save(&score).unwrap();
    let e = trainer(small(), train_cfg(12, 64))
        .restore(&score)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a classifier checkpoint"), "{e}");
    let e = load_classifier(&score, VpSde::default(), true, &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("not a classifier checkpoint"), "{e}");
    let e = train::load_model(&straight, VpSde::default(), true, &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("do not fit"), "{e}");
}

#[test]
fn unlabelled_data_and_bad_labels_are_refused() {
    let dev = Device::Cpu;
    let model = || ClassifierModel::new(VpSde::default(), mlp(16, 1), SIGMA_DATA, 0, &dev).unwrap();
    let cfg = train_cfg(4, 8);

    let e = Trainer::new(
        CrossEntropy::new(model()),
        Dataset::Toy(Toy::Moons),
        "moons",
        cfg.clone(),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("`moons` is unlabelled"), "{e}");

    // Labels up to 8 make 9 classes; the classifier has 8.
    let x = Tensor::zeros((3, 2), DType::F32, &dev).unwrap();
    let data = Dataset::from_tensor(x.clone(), Some(vec![0, 8, 2])).unwrap();
    let e = Trainer::new(CrossEntropy::new(model()), data, "mine", cfg.clone())
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("has 9 classes") && e.contains("classifier has 8"),
        "{e}"
    );

    // Out-of-range, mistyped and misshapen labels at evaluation.
    let ts = [0.1, 0.2, 0.3];
    let bad = Tensor::new(&[0u32, 8, 1], &dev).unwrap();
    let e = model().log_prob(&x, &ts, &bad).unwrap_err().to_string();
    assert!(e.contains("class 8 (sample 1) is out of range"), "{e}");
    let e = model()
        .grad_log_prob(&x, &ts, &bad)
        .unwrap_err()
        .to_string();
    assert!(e.contains("out of range"), "{e}");
    let float = Tensor::new(&[0f32, 1.0, 1.0], &dev).unwrap();
    assert!(model().log_prob(&x, &ts, &float).is_err());
    let short = Tensor::new(&[0u32, 1], &dev).unwrap();
    assert!(model().log_prob(&x, &ts, &short).is_err());
    assert!(model().logits(&x, &ts[..2]).is_err());

    // Non-finite data: the step fails, naming it, before touching the weights.
    let nan = Tensor::new(&[[f32::NAN, 0.0], [1.0, f32::NAN]], &dev).unwrap();
    let data = Dataset::from_tensor(nan, Some(vec![0, 7])).unwrap();
    let mut tr = Trainer::new(CrossEntropy::new(model()), data, "nan", cfg).unwrap();
    let before = weights(tr.model());
    match tr.step() {
        Err(Error::Training { step: 1, message }) => assert!(message.contains("NaN"), "{message}"),
        other => panic!(
            "expected a training error at step 1, got {:?}",
            other.map(|s| s.loss)
        ),
    }
    assert_eq!(tr.steps_done(), 0);
    assert!(weights(tr.model()) == before, "the weights changed");
}

fn weights(m: &ClassifierModel<VpSde>) -> Vec<Vec<f32>> {
    m.weights()
        .vars()
        .iter()
        .map(|(_, v)| {
            v.as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        })
        .collect()
}
