//! Stochastic samplers against the exact Gaussian-mixture oracle.
//!
//! Each sampler runs 1000 steps from exact samples of `p_T` with the exact score of a
//! 2-D mixture, and its `N` samples of `p_{t_min}` must pass:
//!
//! - **sliced-W2** to exact samples of `p_{t_min}` within 1.5× the sliced-W2 between two
//!   independent exact sample sets of the same size;
//! - **moments**: `E|x|²` and each component's share (labels by `nearest_component`)
//!   within 3 standard errors of their exact values.
//!
//! Sliced-W2 of a multimodal sample is dominated by the multinomial noise in how many
//! samples land in each mode: over 60 independent exact sets of 2000 (64 projections),
//! the ratio of two exact-vs-exact distances exceeded 1.5 in 13% of draws (5% even with
//! both sides averaged over 4 reference sets). So each reference set here is exact
//! samples *with the same number in each nearest-component class* as the set it is
//! compared with (taken from a larger exact pool), both sides averaged over 4 reference
//! sets; the shares themselves are the share test's job. Under the null this ratio
//! stayed within 0.78–1.23 over 40 draws.
//!
//! Why both: at a few thousand samples sliced-W2 is a noisy statistic that a 10% error
//! in the score moves by about its own spread, while `E|x|²` moves by several standard
//! errors (`mis_scaled_score_fails_the_moment_test` is the negative control).

use candle_core::{Device, Tensor};
use sbdm_runtime::error::Result;
use sbdm_runtime::model::mixture::GaussianMixture;
use sbdm_runtime::model::prediction::Prediction;
use sbdm_runtime::model::{Condition, ScoreModel};
use sbdm_runtime::report::metrics::{second_moment, shares, sliced_w2};
use sbdm_runtime::sampling::noise::Noise;
use sbdm_runtime::sampling::{Sampler, TimeGrid};
use sbdm_runtime::sde::builtin::{CosineSde, RectifiedFlow, TrigFlow, VeSde, VpSde};

use sbdm_runtime::sde::{GaussianKernel, Sde};

#[path = "common/scaled.rs"]
mod scaled;
use scaled::Scaled;

/// Samples per run.
const N: usize = 2000;
/// Exact samples behind the reference component shares.
const N_REF: usize = 200_000;
const STEPS: usize = 1000;
/// Reference sets each sliced-W2 is averaged over.
const REFS: u64 = 4;
const PROJECTIONS: usize = 32;

/// Four components, unequal weights and stds, overlapping enough that labels are not
/// trivially the generating components.
fn mixture() -> GaussianMixture {
    GaussianMixture::new(
        vec![0.4, 0.3, 0.2, 0.1],
        vec![
            vec![1.5, 0.0],
            vec![-1.2, 1.0],
            vec![-0.5, -1.6],
            vec![1.0, 1.8],
        ],
        vec![0.4, 0.5, 0.3, 0.6],
    )
    .unwrap()
}

/// What one run measured.
#[derive(Debug)]
struct Report {
    /// Class-matched sliced-W2(samples, exact) / sliced-W2(exact, exact), the tested one.
    w2_ratio: f64,
    /// (E|x|² − exact) / SE.
    m2_z: f64,
    /// (share_k − exact_k) / SE_k for each component.
    share_z: Vec<f64>,
}

impl Report {
    fn passes(&self) -> bool {
        self.w2_ratio < 1.5 && self.m2_z.abs() < 3.0 && self.share_z.iter().all(|z| z.abs() < 3.0)
    }
}

/// Exact samples of `p_t` with as many in each nearest-component class as `like` has:
/// the first ones of each class from an exact pool of `4·len(like)`.
fn class_matched<S: GaussianKernel>(
    gmm: &GaussianMixture,
    sde: &S,
    t: f64,
    like: &Tensor,
    seed: u64,
) -> Result<Tensor> {
    let n = like.dim(0)?;
    let mut need = vec![0usize; gmm.len()];
    for k in gmm.nearest_component(like)? {
        need[k] += 1;
    }
    let pool = gmm.sample_at(sde, t, 4 * n, seed, like.device())?;
    let mut rows = Vec::with_capacity(n);
    for (i, k) in gmm.nearest_component(&pool)?.into_iter().enumerate() {
        if need[k] > 0 {
            need[k] -= 1;
            rows.push(i as u32);
        }
    }
    assert!(need.iter().all(|&c| c == 0), "pool too small for {need:?}");
    Ok(pool.index_select(&Tensor::new(rows.as_slice(), like.device())?, 0)?)
}

/// Runs `kind` on `sde` with `model` and measures its samples against `p_{t_min}`.
fn run<S: GaussianKernel, M: ScoreModel>(
    sde: &S,
    model: &M,
    kind: Sampler,
    seed: u64,
) -> Result<Report> {
    let dev = Device::Cpu;
    let gmm = mixture();
    let (t_min, t_max) = sde.time_range();
    let x_t = gmm.sample_at(sde, t_max, N, seed, &dev)?;
    let mut noise = Noise::new(seed, 0, N, &[gmm.dim()], &dev);
    let out = kind.sample(sde, model, &x_t, &TimeGrid::uniform(STEPS), &mut noise)?;
    let x = &out.x;
    assert_eq!(x.dims(), &[N, 2]);
    let per_step = match kind {
        Sampler::Pc {
            corrector_steps, ..
        } => 1 + corrector_steps,
        Sampler::Heun { .. } => 2,
        _ => 1,
    };
    assert_eq!(out.nfe, STEPS * per_step);

    // Sliced-W2, both sides averaged over REFS independent exact reference sets.
    let seed = |k: u64| seed.wrapping_mul(1000).wrapping_add(k);
    let exact = |k: u64| gmm.sample_at(sde, t_min, N, seed(k), &dev);
    let w2 = |a: &Tensor, b: &Tensor| sliced_w2(a, b, PROJECTIONS, 7);
    let (mut num, mut den) = (0.0, 0.0);
    for r in 0..REFS {
        let e = exact(10 + r)?;
        num += w2(x, &class_matched(&gmm, sde, t_min, x, seed(20 + r))?)?;
        den += w2(&e, &class_matched(&gmm, sde, t_min, &e, seed(30 + r))?)?;
    }

    // E|x|² at t_min: a²·E|x_0|² + D·b².
    let (a, b) = (sde.mean_coef(t_min), sde.std(t_min));
    let m2_exact = a * a * gmm.second_moment() + gmm.dim() as f64 * b * b;
    let (m2, m2_se) = second_moment(x)?;

    // Shares of nearest-component labels, against a large exact reference sample
    // (its own sampling error enters the standard error).
    let k = gmm.len();
    let got = shares(&gmm.nearest_component(x)?, k);
    let reference = gmm.sample_at(sde, t_min, N_REF, seed(60), &dev)?;
    let want = shares(&gmm.nearest_component(&reference)?, k);
    let share_z = got
        .iter()
        .zip(&want)
        .map(|(g, w)| {
            let se = (w * (1.0 - w) * (1.0 / N as f64 + 1.0 / N_REF as f64)).sqrt();
            (g - w) / se
        })
        .collect();
    Ok(Report {
        w2_ratio: num / den,
        m2_z: (m2 - m2_exact) / m2_se,
        share_z,
    })
}

fn check<S: GaussianKernel>(sde: &S, kind: &str, seed: u64) {
    let gmm = mixture();
    let model = gmm.model(sde);
    let start = std::time::Instant::now();
    let kind: Sampler = kind.parse().unwrap();
    let r = run(sde, &model, kind, seed).unwrap();
    let name = kind.to_string();
    let secs = start.elapsed().as_secs_f64();
    eprintln!("{name} on {}: {r:?} ({secs:.1} s)", sde.name());
    assert!(r.passes(), "{name} on {}: {r:?}", sde.name());
}

#[test]
fn em_vp() {
    check(&VpSde::default(), "em", 11);
}

#[test]
fn reverse_diffusion_vp() {
    check(&VpSde::default(), "reverse-diffusion", 12);
}

#[test]
fn ancestral_vp() {
    check(&VpSde::default(), "ancestral", 13);
}

#[test]
fn pc_vp() {
    check(&VpSde::default(), "pc", 14);
}

#[test]
fn ddpm_vp() {
    check(&VpSde::default(), "ddpm", 15);
}

#[test]
fn ddpm_beta_tilde_vp() {
    check(&VpSde::default(), "ddpm(variance=beta-tilde)", 16);
}

#[test]
fn ddim_eta_1_vp() {
    check(&VpSde::default(), "ddim(eta=1)", 17);
}

#[test]
fn heun_churn_vp() {
    // EDM's stochastic Heun (Karras et al. 2022, Alg. 2): γ = S_churn/N re-noising on the
    // whole σ range, at S_churn = 40 and 1000 steps. The same statistics as every
    // stochastic sampler (beyond convergence.rs's 4×-E|x|² bound). Shown able to fail:
    // with the churn noise scaled by 1.5 in `heun.rs`, E|x|² moved by 15 standard errors
    // and the sliced-W2 ratio rose to 5 (VP and VE alike).
    check(&VpSde::default(), "heun(churn=40)", 18);
}

#[test]
fn heun_churn_ve() {
    check(&VeSde::default(), "heun(churn=40)", 24);
}

#[test]
fn em_ve() {
    check(&VeSde::default(), "em", 21);
}

#[test]
fn pc_ve() {
    check(&VeSde::default(), "pc", 22);
}

#[test]
fn ddim_eta_1_ve() {
    check(&VeSde::default(), "ddim(eta=1)", 23);
}

#[test]
fn ancestral_cosine() {
    check(&CosineSde::default(), "ancestral", 31);
}

#[test]
fn reverse_diffusion_cosine() {
    check(&CosineSde::default(), "reverse-diffusion", 32);
}

// Kernels that reach pure noise at T (a(T) = 0): every run starts exactly there, from
// x_T = b(T)·ε, with the exact posterior-mean oracle (`GaussianMixture::model` predicts
// x̂_0 on them); the first step is taken in its finite form.

#[test]
fn em_rf() {
    // Seed 41 drew one share 3.5 standard errors off; seeds 100–107 stayed within 2.2
    // on every statistic (no bias: the first step is the exact posterior draw).
    check(&RectifiedFlow, "em", 101);
}

#[test]
fn ancestral_rf() {
    check(&RectifiedFlow, "ancestral", 42);
}

#[test]
fn ddim_eta_1_rf() {
    check(&RectifiedFlow, "ddim(eta=1)", 43);
}

#[test]
fn ddpm_rf() {
    check(&RectifiedFlow, "ddpm", 44);
}

#[test]
fn pc_trigflow() {
    check(&TrigFlow, "pc", 51);
}

#[test]
fn reverse_diffusion_trigflow() {
    check(&TrigFlow, "reverse-diffusion", 52);
}

#[test]
fn ancestral_shifted_rf() {
    let rf = sbdm_runtime::sde::DynSde::time_shifted(&RectifiedFlow.source().unwrap(), 3.0);
    check(&rf.unwrap(), "ancestral", 53);
}

#[test]
fn em_zero_snr_table() {
    let table = sbdm_runtime::sde::named::by_name("ddpm-linear-zsnr").unwrap();
    check(&table, "em", 54);
}

#[test]
fn ddpm_zero_snr_table() {
    let table = sbdm_runtime::sde::named::by_name("ddpm-scaled-linear-zsnr").unwrap();
    check(&table, "ddpm", 55);
}

/// The negative control: the exact score scaled by 1.1 (a 10% model error) must fail
/// the moment test, which shows the test can fail. Measured: E|x|² 7 SE low, while the
/// sliced-W2 ratio (1.54) is only just over its threshold.
#[test]
fn mis_scaled_score_fails_the_moment_test() {
    let sde = VpSde::default();
    let gmm = mixture();
    let model = Scaled {
        inner: gmm.model(&sde),
        factor: 1.1,
    };
    // The seed of `em_vp`, which passes with the exact score.
    let r = run(&sde, &model, Sampler::Em, 11).unwrap();
    eprintln!("em on VpSde, score × 1.1: {r:?}");
    assert!(r.m2_z < -3.0, "score × 1.1 passed the moment test: {r:?}");
    assert!(!r.passes());
}

/// A model whose output is a fixed tensor, whatever `x` and `t`.
struct Probe(Tensor);

impl ScoreModel for Probe {
    fn prediction(&self) -> Prediction {
        Prediction::Score
    }
    fn forward(&self, _x: &Tensor, _t: &Tensor, _c: &Condition) -> Result<Tensor> {
        Ok(self.0.clone())
    }
}

/// One step of Euler–Maruyama, reverse diffusion and predictor–corrector from `t` to `s`
/// on VP, with a constant score `(0, 1)` from `x = (1, 0)`, against their algorithm
/// boxes written out with VP's closed forms: `β(t) = 0.1 + 19.9·t`, `F = −β/2`,
/// `g² = β`, `a_{t|s} = exp(−½∫_s^t β)`, `b_{t|s}² = 1 − a_{t|s}²`.
#[test]
fn one_step_is_the_algorithm_box() {
    let (sde, dev) = (VpSde::default(), Device::Cpu);
    let (t, s): (f64, f64) = (0.6, 0.55);
    let beta = 0.1 + 19.9 * t;
    let delta = t - s;
    let a = (-0.5 * (0.1 * (t - s) + 9.95 * (t * t - s * s))).exp();
    let b2 = 1.0 - a * a;
    let run = |kind: &str| {
        let kind: Sampler = kind.parse().unwrap();
        let grid = TimeGrid::uniform(1).between(t, s);
        let model = Probe(Tensor::new(&[[0f64, 1.0]], &dev).unwrap());
        let x = Tensor::new(&[[1f64, 0.0]], &dev).unwrap();
        let mut noise = Noise::new(3, 0, 1, &[2], &dev);
        let out = kind.sample(&sde, &model, &x, &grid, &mut noise).unwrap();
        out.x.to_vec2::<f64>().unwrap()[0].clone()
    };
    let mut noise = Noise::new(3, 0, 1, &[2], &dev);
    let z1 = noise
        .next_as(candle_core::DType::F64)
        .unwrap()
        .to_vec2::<f64>()
        .unwrap()[0]
        .clone();
    let z2 = noise
        .next_as(candle_core::DType::F64)
        .unwrap()
        .to_vec2::<f64>()
        .unwrap()[0]
        .clone();
    let close = |got: &[f64], want: [f64; 2], what: &str| {
        for k in 0..2 {
            assert!(
                (got[k] - want[k]).abs() < 1e-12,
                "{what}: {got:?} vs {want:?}"
            );
        }
    };
    // x_s = (1 − Δ·F)·x + Δ·g²·score + g·√Δ·z.
    let g = (beta * delta).sqrt();
    close(
        &run("em"),
        [
            1.0 + 0.5 * beta * delta + g * z1[0],
            beta * delta + g * z1[1],
        ],
        "em",
    );
    // x_s = (2 − a_{t|s})·x + b_{t|s}²·score + b_{t|s}·z.
    let rd = [2.0 - a + b2.sqrt() * z1[0], b2 + b2.sqrt() * z1[1]];
    close(&run("reverse-diffusion"), rd, "reverse-diffusion");
    // Then the corrector at s: ε = 2·a_{t|s}²·(snr·‖z‖/‖score‖)², ‖score‖ = 1.
    let eps = 2.0 * a * a * (0.16f64 * (z2[0] * z2[0] + z2[1] * z2[1]).sqrt()).powi(2);
    let pc = [
        rd[0] + (2.0 * eps).sqrt() * z2[0],
        rd[1] + eps + (2.0 * eps).sqrt() * z2[1],
    ];
    close(&run("pc"), pc, "pc");
}
