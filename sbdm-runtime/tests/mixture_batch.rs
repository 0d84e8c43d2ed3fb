//! The mixture oracle's batched, vectorised, multi-threaded kernel against the
//! straightforward point-wise formulas it replaced (`score_at`, `log_prob_at`,
//! `class_posterior_at`, `component_score_at`): to 1e-12 relative in f64, on several
//! SDEs, dimensions, component counts and times from near 0 to T, with batches long
//! enough to be split over threads, short blocks, points far in the tails, per-row times
//! and f32 states.

use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use sbdm_runtime::model::mixture::GaussianMixture;
use sbdm_runtime::model::{Condition, ScoreModel};
use sbdm_runtime::sde::builtin::{EdmSde, VeSde, VpSde};
use sbdm_runtime::GaussianKernel;

/// A mixture of `k` components in `d` dimensions with unequal weights and stds.
fn mixture(d: usize, k: usize, seed: u64) -> GaussianMixture {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let raw: Vec<f64> = (0..k).map(|i| 1.0 + i as f64).collect();
    let total: f64 = raw.iter().sum();
    let means = (0..k)
        .map(|_| (0..d).map(|_| rng.random_range(-5.0..5.0)).collect())
        .collect();
    let stds = (0..k).map(|_| rng.random_range(0.05..1.5)).collect();
    GaussianMixture::new(raw.iter().map(|w| w / total).collect(), means, stds).unwrap()
}

/// `n` rows: most near the data, some far in the tails (up to 60 units away), where the
/// log-terms differ by thousands and only a stable log-sum-exp survives.
fn points(n: usize, d: usize, seed: u64) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n * d)
        .map(|i| {
            let z: f64 = rng.sample(StandardNormal);
            if (i / d) % 17 == 3 {
                60.0 * z.signum() + z
            } else {
                4.0 * z
            }
        })
        .collect()
}

fn tensor(v: &[f64], d: usize) -> Tensor {
    Tensor::from_vec(v.to_vec(), (v.len() / d, d), &Device::Cpu).unwrap()
}

/// `|got − want| ≤ tol·scale` for each pair, with a message naming the quantity.
fn assert_close(what: &str, got: &[f64], want: &[f64], scale: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, ((g, w), s)) in got.iter().zip(want).zip(scale).enumerate() {
        assert!(
            (g - w).abs() <= tol * s,
            "{what}[{i}]: batched {g:e} vs point-wise {w:e} (scale {s:e})"
        );
    }
}

/// The size of the largest term of a row's score sum, `max_k |x − a μ_k|∞ / v_k`, plus
/// the score itself: the scale against which its rounding is judged.
fn score_scale(m: &GaussianMixture, row: &[f64], a: f64, b: f64, score: &[f64]) -> f64 {
    let term = (0..m.len())
        .map(|k| {
            let v = a * a * m.stds()[k] * m.stds()[k] + b * b;
            row.iter()
                .zip(&m.means()[k])
                .map(|(x, mu)| (x - a * mu).abs() / v)
                .fold(0.0, f64::max)
        })
        .fold(0.0, f64::max);
    term + score.iter().map(|s| s.abs()).fold(0.0, f64::max)
}

fn check(sde: &dyn GaussianKernel, d: usize, k: usize, n: usize, seed: u64) {
    let m = mixture(d, k, seed);
    let xs = points(n, d, seed + 1);
    let x = tensor(&xs, d);
    let (t_min, t_max) = sde.time_range();
    for t in [t_min, 0.02 * t_max, 0.3 * t_max, t_max] {
        let (a, b) = (sde.mean_coef(t), sde.std(t));
        let rows: Vec<&[f64]> = xs.chunks(d).collect();
        let what = |q: &str| format!("{q} of {}, d {d}, k {k}, t {t}", sde.name());

        // Score, through the batch function and through the model.
        let mut want = Vec::new();
        let mut scale = Vec::new();
        for r in &rows {
            let mut s = vec![0.0; d];
            m.score_at(r, a, b, &mut s);
            let sc = score_scale(&m, r, a, b, &s);
            scale.extend(std::iter::repeat_n(sc, d));
            want.extend(s);
        }
        let got: Vec<f64> = m
            .score(sde, &x, t)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_close(&what("score"), &got, &want, &scale, 1e-12);
        let ts = Tensor::full(t, n, &Device::Cpu).unwrap();
        let model = m.model(sde);
        let got: Vec<f64> = model
            .forward(&x, &ts, &Condition::None)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_close(&what("model score"), &got, &want, &scale, 1e-12);

        // log p_t(x), relative to |log p| + 1.
        let want: Vec<f64> = rows.iter().map(|r| m.log_prob_at(r, a, b)).collect();
        let scale: Vec<f64> = want.iter().map(|l| l.abs() + 1.0).collect();
        let got = m.log_prob(sde, &x, t).unwrap();
        assert_close(&what("log density"), &got, &want, &scale, 1e-12);

        // Class posteriors, probabilities in [0, 1].
        let want: Vec<f64> = rows
            .iter()
            .flat_map(|r| m.class_posterior_at(r, a, b))
            .collect();
        let got: Vec<f64> = m
            .class_posterior(sde, &x, t)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_close(
            &what("posterior"),
            &got,
            &want,
            &vec![1.0; want.len()],
            1e-12,
        );

        // Component scores and the classifier gradient, each row its own class.
        let classes: Vec<u32> = (0..n).map(|i| ((i * 7 + 3) % k) as u32).collect();
        let mut own = Vec::new();
        let mut grad = Vec::new();
        let mut scale = Vec::new();
        for (r, &c) in rows.iter().zip(&classes) {
            let (mut s, mut joint) = (vec![0.0; d], vec![0.0; d]);
            m.component_score_at(c as usize, r, a, b, &mut s);
            m.score_at(r, a, b, &mut joint);
            let sc = score_scale(&m, r, a, b, &joint);
            scale.extend(std::iter::repeat_n(sc, d));
            grad.extend(s.iter().zip(&joint).map(|(c, j)| c - j));
            own.extend(s);
        }
        let y = Condition::classes(&classes, &Device::Cpu).unwrap();
        let got: Vec<f64> = model
            .forward(&x, &ts, &y)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_close(&what("component score"), &got, &own, &scale, 1e-12);
        let got: Vec<f64> = model
            .class_log_prob_grad(&x, t, &classes)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_close(&what("class gradient"), &got, &grad, &scale, 1e-12);
    }
}

/// Long batches (split over threads, with a short last block) and short ones (one
/// thread, one partial block), on VP, VE and EDM.
#[test]
fn batched_oracle_matches_point_wise() {
    let vp = VpSde::default();
    let ve = VeSde::default();
    let edm = EdmSde::default();
    check(&vp, 2, 8, 10_007, 1);
    check(&vp, 1, 1, 5, 2);
    check(&ve, 5, 3, 4_133, 3);
    check(&edm, 3, 6, 37, 4);
    check(&edm, 16, 4, 6_001, 5);
}

/// Rows at different times (the model evaluated at per-row times, as in training):
/// runs of equal times and times changing every row.
#[test]
fn per_row_times_match_point_wise() {
    let sde = VpSde::default();
    let (d, k, n) = (2, 5, 9_001);
    let m = mixture(d, k, 11);
    let xs = points(n, d, 12);
    let times: Vec<f64> = (0..n)
        .map(|i| {
            if i < 5_000 {
                0.1 + 0.8 * ((i / 100) % 7) as f64 / 7.0
            } else {
                1e-3 + (i % 13) as f64 / 13.0
            }
        })
        .collect();
    let got: Vec<f64> = m
        .model(&sde)
        .forward(
            &tensor(&xs, d),
            &Tensor::new(times.as_slice(), &Device::Cpu).unwrap(),
            &Condition::None,
        )
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let mut want = Vec::new();
    let mut scale = Vec::new();
    for (r, &t) in xs.chunks(d).zip(&times) {
        let (a, b) = (sde.mean_coef(t), sde.std(t));
        let mut s = vec![0.0; d];
        m.score_at(r, a, b, &mut s);
        scale.extend(std::iter::repeat_n(score_scale(&m, r, a, b, &s), d));
        want.extend(s);
    }
    assert_close("per-row score", &got, &want, &scale, 1e-12);
}

/// f32 states: computed in f64 from the f32 values, then rounded once to f32.
#[test]
fn f32_states_round_once() {
    let sde = VpSde::default();
    let (d, k, n, t) = (2, 8, 5_000, 0.05);
    let m = mixture(d, k, 21);
    let xs: Vec<f64> = points(n, d, 22)
        .iter()
        .map(|v| f64::from(*v as f32))
        .collect();
    let x32 = tensor(&xs, d).to_dtype(DType::F32).unwrap();
    let got = m.score(&sde, &x32, t).unwrap();
    assert_eq!(got.dtype(), DType::F32);
    let got: Vec<f32> = got.flatten_all().unwrap().to_vec1().unwrap();
    let want: Vec<f64> = m
        .score(&sde, &tensor(&xs, d), t)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(*g, *w as f32);
    }
}

/// The batch must be `[N, D]`: a clear error, not a panic.
#[test]
fn wrong_shapes_are_refused() {
    let sde = VpSde::default();
    let m = mixture(2, 3, 31);
    let x = Tensor::zeros((4, 3), DType::F32, &Device::Cpu).unwrap();
    let e = m.score(&sde, &x, 0.5).unwrap_err().to_string();
    assert!(e.contains("[N, 2]"), "{e}");
    let x = Tensor::zeros(4, DType::F32, &Device::Cpu).unwrap();
    assert!(m.log_prob(&sde, &x, 0.5).is_err());
    let x = Tensor::zeros((0, 2), DType::F32, &Device::Cpu).unwrap();
    assert_eq!(m.score(&sde, &x, 0.5).unwrap().dims(), &[0, 2]);
}
