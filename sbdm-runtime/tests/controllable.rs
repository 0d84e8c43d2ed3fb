//! Controllable generation against exact answers: the Gaussian-mixture oracle's classes
//! are its components, its classifier the exact posterior, its conditionals closed-form.
//! Every method runs unchanged on VP, VE and an SDE declared here.

// `sde!` names `::sbdm`, which is this crate for a test of the runtime.
extern crate sbdm_runtime as sbdm;

use candle_core::{DType, Device, Tensor, Var};
use sbdm_runtime::guide::{
    noised, ClassifierFree, ClassifierGuidance, Egsde, Features, Ilvr, Inpainting, LowPass,
};
use sbdm_runtime::model::classifier::ClassifierModel;
use sbdm_runtime::model::mixture::GaussianMixture;
use sbdm_runtime::model::Condition;
use sbdm_runtime::nn::{ClassifierConfig, MlpConfig, NetConfig};
use sbdm_runtime::report::metrics::second_moment;
use sbdm_runtime::sampling::{GridKind, Guide, Guided, Noise, Sampled, Sampler, TimeGrid};
use sbdm_runtime::sde::builtin::{VeSde, VpSde};
use sbdm_runtime::sde::{GaussianKernel, Sde};

#[path = "common/normal_cdf.rs"]
mod normal_cdf;
use normal_cdf::erf;
#[path = "common/exact.rs"]
mod exact;
use exact::{means, w2_ratio};

sbdm_runtime::sde! {
    /// A VP-type SDE with a quadratic β, declared here.
    pub struct QuadVp {
        params { b0: f64 = 0.2, b1: f64 = 12.0 }
        time = [1e-3, 1.0];
        let beta = b0 + b1 * t * t;
        drift = -0.5 * beta * x;
        diffusion = beta.sqrt();
    }
}

/// The three SDEs every method runs on, with their prior std.
fn sdes() -> Vec<(&'static str, Box<dyn GaussianKernel>)> {
    vec![
        ("VP", Box::new(VpSde::default())),
        ("VE", Box::new(VeSde::default())),
        ("QuadVp", Box::new(QuadVp::default())),
    ]
}

fn mixture() -> GaussianMixture {
    GaussianMixture::new(
        vec![0.3, 0.5, 0.2],
        vec![vec![-1.5, 0.5], vec![1.0, 1.0], vec![0.5, -1.5]],
        vec![0.3, 0.5, 0.4],
    )
    .unwrap()
}

/// `n` draws of the prior `N(0, b(T)²·I)` in f64, and the streams that continue them.
fn prior(sde: &dyn GaussianKernel, n: usize, d: usize, seed: u64) -> (Tensor, Noise) {
    let mut noise = Noise::new(seed, 0, n, &[d], &Device::Cpu);
    let x = noise
        .next_as(DType::F64)
        .unwrap()
        .affine(sde.prior_std(), 0.0)
        .unwrap();
    (x, noise)
}

fn run<G: Guide + ?Sized>(
    sde: &dyn GaussianKernel,
    sampler: &str,
    model: &G,
    grid: &TimeGrid,
    n: usize,
    seed: u64,
) -> Sampled {
    let (x, mut noise) = prior(sde, n, 2, seed);
    let sampler: Sampler = sampler.parse().unwrap();
    sampler.sample(&sde, model, &x, grid, &mut noise).unwrap()
}

fn values(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    values(a)
        .iter()
        .zip(values(b))
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

fn labels(k: u32, n: usize) -> Tensor {
    Tensor::new(vec![k; n].as_slice(), &Device::Cpu).unwrap()
}

#[test]
fn exact_classifier_guidance_at_scale_1_is_the_conditional_sampler() {
    let mix = mixture();
    for (name, sde) in sdes() {
        let sde = sde.as_ref();
        let exact = mix.model(&sde);
        let grid = TimeGrid::new(GridKind::LogSnr, 30);
        let n = 64;
        // s = 1 with the exact ∇log p_t(y|x): the score of component 1, to rounding.
        let guided = Guided::new(&exact)
            .with_term(ClassifierGuidance::new(&exact, &labels(1, n), 1.0).unwrap());
        let conditional =
            Guided::new(&exact).with_condition(Condition::classes(&[1; 64], &Device::Cpu).unwrap());
        for sampler in ["dpmpp2m", "ancestral"] {
            let a = run(sde, sampler, &guided, &grid, n, 4);
            let b = run(sde, sampler, &conditional, &grid, n, 4);
            let scale = values(&b.x).iter().fold(1.0f64, |m, v| m.max(v.abs()));
            let d = max_diff(&a.x, &b.x);
            assert!(
                d < 1e-8 * scale,
                "{name} {sampler}: guided vs conditional {d:e}"
            );
        }
        // s = 0 is the unconditional sampler, bit for bit.
        let none = Guided::new(&exact)
            .with_term(ClassifierGuidance::new(&exact, &labels(1, n), 0.0).unwrap());
        let a = run(sde, "dpmpp2m", &none, &grid, n, 4);
        let b = run(sde, "dpmpp2m", &exact, &grid, n, 4);
        assert!(
            values(&a.x) == values(&b.x),
            "{name}: s = 0 changed the samples"
        );
    }
}

#[test]
fn exact_classifier_guidance_samples_the_component() {
    let sde = VpSde::default();
    let mix = mixture();
    let exact = mix.model(&sde);
    let (n, k) = (4000, 1usize);
    let guided = Guided::new(&exact)
        .with_term(ClassifierGuidance::new(&exact, &labels(k as u32, n), 1.0).unwrap());
    let x = run(
        &sde,
        "ancestral",
        &guided,
        &TimeGrid::new(GridKind::LogSnr, 300),
        n,
        8,
    )
    .x;
    let t_min = sde.time_range().0;
    let component = mix.component(k).unwrap();
    let ratio = w2_ratio(&component, &sde, t_min, &x);
    assert!(ratio < 1.5, "sliced-W2 ratio {ratio}");
    let a = sde.mean_coef(t_min);
    for (j, (m, se)) in means(&x).into_iter().enumerate() {
        let want = a * mix.means()[k][j];
        assert!(
            (m - want).abs() < 3.0 * se,
            "mean[{j}] {m} vs {want} (s.e. {se})"
        );
    }
    let (m2, se) = second_moment(&x).unwrap();
    let s = mix.stds()[k];
    let mu2: f64 = mix.means()[k].iter().map(|v| v * v).sum();
    let b2 = sde.variance(t_min);
    let want = a * a * (mu2 + 2.0 * s * s) + 2.0 * b2;
    assert!(
        (m2 - want).abs() < 3.0 * se,
        "E|x|² {m2} vs {want} (s.e. {se})"
    );
    // Unguided, the samples are far from the component: the test can fail.
    let free = run(
        &sde,
        "ancestral",
        &exact,
        &TimeGrid::new(GridKind::LogSnr, 300),
        n,
        8,
    )
    .x;
    assert!(w2_ratio(&component, &sde, t_min, &free) > 3.0);
}

#[test]
fn classifier_free_guidance_with_exact_scores() {
    let mix = mixture();
    let n = 64;
    for (name, sde) in sdes() {
        let sde = sde.as_ref();
        let exact = mix.model(&sde);
        let grid = TimeGrid::new(GridKind::LogSnr, 25);
        let class = || Condition::classes(&[2; 64], &Device::Cpu).unwrap();
        let conditional = Guided::new(&exact).with_condition(class());
        let cond = run(sde, "dpmpp2m", &conditional, &grid, n, 5);
        let uncond = run(sde, "dpmpp2m", &exact, &grid, n, 5);
        let cfg = |w: f64| ClassifierFree::new(&sde, &exact, w).unwrap();
        let with = |m: &ClassifierFree<'_, _, _>| {
            run(
                sde,
                "dpmpp2m",
                &Guided::new(m).with_condition(class()),
                &grid,
                n,
                5,
            )
        };
        // w = 1: the conditional sampler; w = 0: the unconditional one; same numbers.
        assert!(
            values(&with(&cfg(1.0)).x) == values(&cond.x),
            "{name}: w = 1"
        );
        assert!(
            values(&with(&cfg(0.0)).x) == values(&uncond.x),
            "{name}: w = 0"
        );
        // An empty guidance interval is no guidance (the conditional model) ...
        let empty = cfg(4.0).with_interval(1e6, 2e6).unwrap();
        assert!(
            values(&with(&empty).x) == values(&cond.x),
            "{name}: empty interval"
        );
        // ... one covering every σ is guidance everywhere, which moves the samples.
        let all = with(&cfg(4.0).with_interval(0.0, 1e9).unwrap());
        let plain = with(&cfg(4.0));
        assert!(values(&all.x) == values(&plain.x), "{name}: full interval");
        assert!(
            max_diff(&plain.x, &cond.x) > 1e-2,
            "{name}: w = 4 did nothing"
        );
        assert_eq!(plain.nfe, cond.nfe, "{name}: one evaluation per step");
    }
}

#[test]
fn cfg_rescale_matches_the_conditional_x0_std() {
    use sbdm_runtime::model::ScoreModel;
    let sde = VpSde::default();
    let mix = mixture();
    let exact = mix.model(&sde);
    let (x, _) = prior(&sde, 16, 2, 3);
    let x = x.affine(0.6, 0.0).unwrap();
    let t0 = 0.4;
    let t = Tensor::full(t0, 16, &Device::Cpu).unwrap();
    let y = Condition::classes(&[0; 16], &Device::Cpu).unwrap();
    let (a, b) = (sde.mean_coef(t0), sde.std(t0));
    // Score-model outputs: x̂₀ = (x + b²·score)/a.
    let x0 = |score: &Tensor| {
        (x.clone() + score.affine(b * b, 0.0).unwrap())
            .unwrap()
            .affine(1.0 / a, 0.0)
            .unwrap()
    };
    let std = |v: &Tensor| -> Vec<f64> {
        v.to_vec2::<f64>()
            .unwrap()
            .iter()
            .map(|r| {
                let m = r.iter().sum::<f64>() / r.len() as f64;
                (r.iter().map(|v| (v - m).powi(2)).sum::<f64>() / r.len() as f64).sqrt()
            })
            .collect()
    };
    let cond = exact.forward(&x, &t, &y).unwrap();
    let rescaled = ClassifierFree::new(&sde, &exact, 5.0)
        .unwrap()
        .with_rescale(1.0)
        .unwrap()
        .forward(&x, &t, &y)
        .unwrap();
    for (s, c) in std(&x0(&rescaled)).iter().zip(std(&x0(&cond))) {
        assert!(
            (s - c).abs() < 1e-9 * c.max(1e-9),
            "std {s} vs conditional {c}"
        );
    }
    let plain = ClassifierFree::new(&sde, &exact, 5.0)
        .unwrap()
        .forward(&x, &t, &y)
        .unwrap();
    assert!(
        std(&x0(&plain)) != std(&x0(&cond)),
        "w = 5 leaves the std alone?"
    );
    // Bad settings are refused.
    assert!(ClassifierFree::new(&sde, &exact, 2.0)
        .unwrap()
        .with_rescale(1.5)
        .is_err());
    assert!(ClassifierFree::new(&sde, &exact, 2.0)
        .unwrap()
        .with_interval(2.0, 1.0)
        .is_err());
}

/// Two well-separated components: knowing x₁ nearly decides the component, and
/// `p(x₂ | x₁)` is a reweighted mixture of the components' x₂ laws.
fn pair() -> GaussianMixture {
    GaussianMixture::new(
        vec![0.5, 0.5],
        vec![vec![-2.0, -2.0], vec![2.0, 2.0]],
        vec![0.6, 0.6],
    )
    .unwrap()
}

/// `n` exact samples of `x₂` given `x₁ = v` under [`pair`].
fn exact_conditional(v: f64, n: usize) -> Vec<f64> {
    let mix = pair();
    let logw: Vec<f64> = (0..2)
        .map(|k| {
            let (m, s) = (mix.means()[k][0], mix.stds()[k]);
            mix.weights()[k].ln() - 0.5 * ((v - m) / s).powi(2) - s.ln()
        })
        .collect();
    let top = logw.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let w: Vec<f64> = logw.iter().map(|l| (l - top).exp()).collect();
    let p0 = w[0] / (w[0] + w[1]);
    let mut noise = Noise::new(77, 0, n, &[2], &Device::Cpu);
    let z = noise.next_as(DType::F64).unwrap().to_vec2::<f64>().unwrap();
    z.iter()
        .map(|r| {
            // r[0] picks the component through its normal CDF rank, r[1] the value.
            let u = 0.5 * (1.0 + erf(r[0] / 2f64.sqrt()));
            let k = usize::from(u >= p0);
            mix.means()[k][1] + mix.stds()[k] * r[1]
        })
        .collect()
}

/// The 1-D Wasserstein-2 distance between two equal-size samples.
fn w2_1d(a: &[f64], b: &[f64]) -> f64 {
    let (mut a, mut b) = (a.to_vec(), b.to_vec());
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    (a.iter().zip(&b).map(|(x, y)| (x - y).powi(2)).sum::<f64>() / a.len() as f64).sqrt()
}

#[test]
fn inpainting_keeps_the_known_part_and_resampling_harmonises() {
    let mix = pair();
    let n = 2000;
    let v = 0.4; // x₁: closer to the second component, but both matter
    let known = Tensor::from_vec(
        (0..n).flat_map(|_| [v, 0.0]).collect::<Vec<f64>>(),
        (n, 2),
        &Device::Cpu,
    )
    .unwrap();
    let mask = Tensor::new(&[1f64, 0.0], &Device::Cpu).unwrap();
    let sde = VpSde::default();
    let exact = mix.model(&sde);
    let grid = TimeGrid::uniform(100);
    let sampler: Sampler = "ancestral".parse().unwrap();
    let draw = |r: usize| {
        let (x, mut noise) = prior(&sde, n, 2, 21);
        Inpainting::new(&known, &mask)
            .unwrap()
            .with_resampling(r)
            .sample(&sampler, &sde, &exact, &x, &grid, &mut noise)
            .unwrap()
    };
    let target = exact_conditional(v, n);
    let floor = w2_1d(
        &target,
        &exact_conditional(v, n)
            .iter()
            .rev()
            .cloned()
            .collect::<Vec<_>>(),
    );
    let mut found = Vec::new();
    for r in [1, 5] {
        let out = draw(r);
        let x = out.x.to_vec2::<f64>().unwrap();
        assert!(
            x.iter().all(|row| row[0] == v),
            "r = {r}: the known part moved"
        );
        assert_eq!(out.nfe, 100 * r, "r = {r}: NFE");
        let x2: Vec<f64> = x.iter().map(|row| row[1]).collect();
        found.push(w2_1d(&x2, &target));
    }
    eprintln!(
        "inpainting p(x2 | x1 = {v}): W2 to exact samples, replacement {:.4}, RePaint r = 5 {:.4}",
        found[0], found[1]
    );
    let _ = floor;
    assert!(
        found[1] < found[0],
        "RePaint (W2 {}) is not closer than replacement (W2 {})",
        found[1],
        found[0]
    );
    // Every SDE, and the bad masks.
    for (name, sde) in sdes() {
        let sde = sde.as_ref();
        let (x, mut noise) = prior(sde, 8, 2, 1);
        let known = known.narrow(0, 0, 8).unwrap();
        let out = Inpainting::new(&known, &mask)
            .unwrap()
            .sample(
                &sampler,
                &sde,
                &mix.model(&sde),
                &x,
                &TimeGrid::uniform(20),
                &mut noise,
            )
            .unwrap();
        assert!(
            out.x.to_vec2::<f64>().unwrap().iter().all(|r| r[0] == v),
            "{name}"
        );
    }
    let e = Inpainting::new(
        &known,
        &Tensor::new(&[1f64, 0.0, 1.0], &Device::Cpu).unwrap(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("mask has shape [3]"), "{e}");
    let e = Inpainting::new(&known, &Tensor::new(&[0.5f64, 0.0], &Device::Cpu).unwrap())
        .unwrap_err()
        .to_string();
    assert!(e.contains("0 (to sample) and 1 (known)"), "{e}");
    // Resampling needs a single-step sampler.
    let (x, mut noise) = prior(&sde, n, 2, 21);
    let e = Inpainting::new(&known, &mask)
        .unwrap()
        .with_resampling(3)
        .sample(&Sampler::DpmPp2m, &sde, &exact, &x, &grid, &mut noise)
        .unwrap_err()
        .to_string();
    assert!(e.contains("resampling (r = 3) repeats single steps"), "{e}");
}

/// A 4-D mixture for the ILVR analogue: φ averages coordinate pairs.
fn quad() -> GaussianMixture {
    GaussianMixture::new(
        vec![0.4, 0.6],
        vec![vec![-1.0, -1.5, 1.0, 0.5], vec![1.5, 1.0, -0.5, -1.0]],
        vec![0.4, 0.3],
    )
    .unwrap()
}

#[test]
fn ilvr_matches_the_reference_low_frequencies_with_samples_of_the_model() {
    let mix = quad();
    let phi = LowPass::new(2).unwrap();
    let n = 500;
    for (name, sde) in sdes() {
        let sde = sde.as_ref();
        let exact = mix.model(&sde);
        let (lo, hi) = sde.time_range();
        // References: exact samples of p_0, one per output.
        let y = mix
            .sample(n, 9, &Device::Cpu)
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap();
        let ilvr = Ilvr::new(&sde, &y, phi, lo).unwrap();
        let guided = Guided::new(&exact).with_constraint(ilvr);
        let mut noise = Noise::new(4, 0, n, &[4], &Device::Cpu);
        let x_t = noise
            .next_as(DType::F64)
            .unwrap()
            .affine(sde.prior_std(), 0.0)
            .unwrap();
        let x = Sampler::Ancestral
            .sample(
                &sde,
                &guided,
                &x_t,
                &TimeGrid::new(GridKind::LogSnr, 100),
                &mut noise,
            )
            .unwrap()
            .x;
        // The last refinement at t_min sets φ(x) = φ(y_{t_min}) = φ(a·y + b·z), so
        // ‖φ(x) − φ(y)‖ ≤ (1 − a)·‖φ(y)‖ + b·‖φ(z)‖, and ‖φ(z)‖² ~ χ²₂ (< 25 but for 4e-6).
        let (a, b) = (sde.mean_coef(lo), sde.std(lo));
        let (px, py) = (phi.apply(&x).unwrap(), phi.apply(&y).unwrap());
        let (px, py) = (px.to_vec2::<f64>().unwrap(), py.to_vec2::<f64>().unwrap());
        for (i, (u, v)) in px.iter().zip(&py).enumerate() {
            let dist = u
                .iter()
                .zip(v)
                .map(|(p, q)| (p - q).powi(2))
                .sum::<f64>()
                .sqrt();
            let norm = v.iter().map(|q| q * q).sum::<f64>().sqrt();
            let tol = (1.0 - a) * norm + 5.0 * b;
            assert!(
                dist <= tol,
                "{name}: sample {i}: |φx − φy| = {dist} > {tol}"
            );
        }
        // The outputs are samples of the model: ≥ 95 % where exact samples of p_{t_min} lie.
        let exact_set = mix.sample_at(&sde, lo, 4000, 13, &Device::Cpu).unwrap();
        let mut reference = mix.log_prob(&sde, &exact_set, lo).unwrap();
        reference.sort_by(f64::total_cmp);
        let p1 = reference[reference.len() / 100];
        let got = mix.log_prob(&sde, &x, lo).unwrap();
        let inside = got.iter().filter(|l| **l >= p1).count() as f64 / n as f64;
        assert!(
            inside >= 0.95,
            "{name}: {inside} of ILVR outputs in the high-density region"
        );
        // Without ILVR the outputs do not follow the references.
        let free = Sampler::Ancestral
            .sample(
                &sde,
                &exact,
                &x_t,
                &TimeGrid::new(GridKind::LogSnr, 100),
                &mut Noise::new(4, 1, n, &[4], &Device::Cpu),
            )
            .unwrap()
            .x;
        let far = phi.apply(&free).unwrap().to_vec2::<f64>().unwrap();
        let off = far
            .iter()
            .zip(&py)
            .filter(|(u, v)| {
                u.iter()
                    .zip(v.iter())
                    .map(|(p, q)| (p - q).powi(2))
                    .sum::<f64>()
                    .sqrt()
                    > 0.1
            })
            .count();
        assert!(
            off > n / 2,
            "{name}: unguided samples match the references too ({off})"
        );
        let _ = hi;
    }
    // Bad settings.
    let sde = VpSde::default();
    let y = Tensor::zeros((2, 4), DType::F64, &Device::Cpu).unwrap();
    assert!(LowPass::new(3).is_err());
    let e = Ilvr::new(&sde, &y, LowPass::new(8).unwrap(), 0.5)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("does not divide the dimension 4"), "{e}");
    let e = Ilvr::new(&sde, &y, phi, 2.0).err().unwrap().to_string();
    assert!(e.contains("outside the SDE's time range"), "{e}");
}

/// A small MLP classifier on 4-D data: its features are EGSDE's domain features.
fn classifier() -> ClassifierModel<VpSde> {
    let cfg = ClassifierConfig {
        net: NetConfig::Mlp(MlpConfig {
            dim: 4,
            width: 16,
            depth: 2,
            ..Default::default()
        }),
        num_classes: 2,
    };
    ClassifierModel::new(VpSde::default(), cfg, 1.0, 3, &Device::Cpu).unwrap()
}

#[test]
fn egsde_energy_gradients_are_right() {
    let sde = VpSde::default();
    let clf = classifier();
    let phi = LowPass::new(2).unwrap();
    let source = quad().sample(3, 5, &Device::Cpu).unwrap();
    let egsde = Egsde::new(&sde, &source, &clf, phi, (1.0, 1.0), 9).unwrap();
    let t = 0.3;
    let y_t = egsde.noised_source(t).unwrap();
    let x = quad().sample(3, 6, &Device::Cpu).unwrap();
    // E_i: autograd against the analytic gradient 2·(φ(x) − φ(y_t)).
    let xv = Var::from_tensor(&x).unwrap();
    let e = egsde.energies(xv.as_tensor(), &y_t, t).unwrap();
    let g = e.faithful.sum_all().unwrap().backward().unwrap();
    let got = g.get(xv.as_tensor()).unwrap();
    let want = (phi.apply(&x).unwrap() - phi.apply(&y_t).unwrap())
        .unwrap()
        .affine(2.0, 0.0)
        .unwrap();
    assert!(max_diff(got, &want) < 1e-5, "E_i gradient");
    // E_s: autograd against central finite differences (f32 network: h = 1e-2).
    let xv = Var::from_tensor(&x).unwrap();
    let e = egsde.energies(xv.as_tensor(), &y_t, t).unwrap();
    let g = e.realistic.sum_all().unwrap().backward().unwrap();
    let got = values(g.get(xv.as_tensor()).unwrap());
    let base = values(&x);
    let energy = |v: &[f64]| -> f64 {
        let xt = Tensor::from_vec(
            v.iter().map(|&f| f as f32).collect::<Vec<f32>>(),
            (3, 4),
            &Device::Cpu,
        )
        .unwrap();
        values(&egsde.energies(&xt, &y_t, t).unwrap().realistic)
            .iter()
            .sum()
    };
    let h = 1e-2;
    for i in 0..base.len() {
        let (mut up, mut down) = (base.clone(), base.clone());
        up[i] += h;
        down[i] -= h;
        let fd = (energy(&up) - energy(&down)) / (2.0 * h);
        assert!(
            (fd - got[i]).abs() < 2e-3 + 2e-2 * fd.abs(),
            "E_s gradient [{i}]: autograd {} vs finite difference {fd}",
            got[i]
        );
    }
    // The term is minus the weighted gradient, and the features are the classifier's.
    let f = clf.features(&x, &[t; 3]).unwrap();
    assert_eq!(f.dims(), [3, 16]);
    assert!(Egsde::new(&sde, &source, &clf, phi, (-1.0, 1.0), 0).is_err());
}

#[test]
fn egsde_and_sdedit_run_on_every_sde() {
    let mix = quad();
    let clf = classifier();
    let phi = LowPass::new(2).unwrap();
    let n = 200;
    let source = mix
        .sample(n, 2, &Device::Cpu)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap();
    for (name, sde) in sdes() {
        let sde = sde.as_ref();
        let exact = mix.model(&sde);
        let (lo, hi) = sde.time_range();
        let t0 = lo + 0.5 * (hi - lo);
        let grid = TimeGrid::uniform(60).between(t0, lo);
        let start = |seed| {
            let mut noise = Noise::new(seed, 0, n, &[4], &Device::Cpu);
            let x = noised(&sde, &source, t0, &mut noise).unwrap();
            (x, noise)
        };
        // SDEdit: the noised source, then the reverse SDE.
        let (x, mut noise) = start(1);
        let sdedit = Sampler::Em
            .sample(&sde, &exact, &x, &grid, &mut noise)
            .unwrap()
            .x;
        // EGSDE with only the faithful expert pulls the outputs' low frequencies to the source's.
        let egsde = Egsde::new(&sde, &source, &clf, phi, (0.0, 20.0), 5).unwrap();
        let guided = Guided::new(&exact).with_term(egsde);
        let (x, mut noise) = start(1);
        let out = Sampler::Em
            .sample(&sde, &guided, &x, &grid, &mut noise)
            .unwrap()
            .x;
        let dist = |v: &Tensor| {
            let d = (phi.apply(v).unwrap() - phi.apply(&source).unwrap()).unwrap();
            d.sqr()
                .unwrap()
                .mean_all()
                .unwrap()
                .to_scalar::<f64>()
                .unwrap()
        };
        assert!(
            dist(&out) < 0.8 * dist(&sdedit),
            "{name}: EGSDE's faithful expert did not bring φ(x) closer: {} vs SDEdit {}",
            dist(&out),
            dist(&sdedit)
        );
        assert!(values(&out).iter().all(|v| v.is_finite()), "{name}");
    }
    // t₀ outside the time range.
    let sde = VpSde::default();
    let e = noised(
        &sde,
        &source,
        1.5,
        &mut Noise::new(0, 0, n, &[4], &Device::Cpu),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("t = 1.5 is outside the SDE's time range"), "{e}");
    let _: &dyn Features = &clf;
}
