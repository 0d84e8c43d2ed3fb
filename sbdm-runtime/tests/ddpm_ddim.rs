//! DDPM and DDIM on the discrete `linear` schedule against the papers' closed forms; the
//! samplers' determinism: seeds, batch = single, DDIM(0) without noise, and a NaN
//! stopping sampling with the step and time that produced it; and the prediction
//! conversions the samplers fold into their fused steps.
//!
//! The closed forms are written out here from the papers, in their `ᾱ` notation, with
//! `ᾱ` recomputed from the β table; for one step from index `t` to an earlier `s`:
//!
//! - DDPM (Ho et al. 2020): `α_t = ᾱ_t/ᾱ_s`, `β_t = 1 − α_t` (the table's β for
//!   consecutive indices); eq. 7: `μ̃ = √ᾱ_s·β_t/(1 − ᾱ_t)·x_0 + √α_t·(1 − ᾱ_s)/(1 − ᾱ_t)·x_t`,
//!   `β̃_t = (1 − ᾱ_s)/(1 − ᾱ_t)·β_t`; Algorithm 2: `x_s = (x_t − β_t/√(1 − ᾱ_t)·ε)/√α_t + σ·z`.
//! - DDIM (Song et al. 2021) eq. 12 and 16:
//!   `x_s = √ᾱ_s·(x_t − √(1 − ᾱ_t)·ε)/√ᾱ_t + √(1 − ᾱ_s − σ²)·ε + σ·z`,
//!   `σ = η·√((1 − ᾱ_s)/(1 − ᾱ_t))·√(1 − ᾱ_t/ᾱ_s)`.
//!
//! The continuous-time samplers are probed at the knots `t_i = (i + 1)/N` with a model
//! that returns a fixed output: from `x = (1, 0)` and output `(0, 1)`, one step returns
//! its two coefficients (plus `σ·z`, with `z` redrawn here from the same seed).

use candle_core::{DType, Device, Tensor};
use sbdm_runtime::error::{Error, Result};
use sbdm_runtime::model::mixture::GaussianMixture;
use sbdm_runtime::model::prediction::{convert, linear_coefficients, KernelAt, Prediction};
use sbdm_runtime::model::{Condition, ScoreModel};
use sbdm_runtime::sampling::noise::Noise;
use sbdm_runtime::sampling::{
    ddim_coefficients, ddpm_coefficients, DdpmVariance, Sampler, TimeGrid,
};
use sbdm_runtime::sde::builtin::VpSde;
use sbdm_runtime::sde::discrete::{BetaSchedule, DiscreteSchedule};
use sbdm_runtime::sde::GaussianKernel;

#[path = "common/orders.rs"]
#[allow(dead_code)] // `order` is not used here.
mod orders;

const N: usize = 1000;

/// DDPM's linear table recomputed: `β_i = 1e-4 + (0.02 − 1e-4)·i/999`.
fn betas() -> Vec<f64> {
    (0..N)
        .map(|i| 1e-4 + (0.02 - 1e-4) * i as f64 / (N - 1) as f64)
        .collect()
}

/// `ᾱ_i = Π_{j≤i}(1 − β_j)`.
fn alpha_bars() -> Vec<f64> {
    betas()
        .iter()
        .scan(1.0, |p, b| {
            *p *= 1.0 - b;
            Some(*p)
        })
        .collect()
}

fn schedule() -> DiscreteSchedule {
    DiscreteSchedule::new(BetaSchedule::linear(), N).unwrap()
}

fn close(got: f64, want: f64, what: &str) {
    let tol = 1e-10 * want.abs().max(1e-2);
    assert!(
        (got - want).abs() <= tol,
        "{what}: got {got:e}, want {want:e} (diff {:e})",
        got - want
    );
}

/// Index pairs `(t, s)`, `s < t`: consecutive (a full DDPM chain) and strided (DDIM).
const PAIRS: [(usize, usize); 8] = [
    (1, 0),
    (10, 9),
    (500, 499),
    (999, 998),
    (999, 979),
    (520, 500),
    (40, 0),
    (999, 0),
];

#[test]
fn alpha_bar_is_the_cumulative_product() {
    let s = schedule();
    let (b, ab) = (betas(), alpha_bars());
    for i in 0..N {
        close(s.betas()[i], b[i], "beta");
        close(s.alpha_bar(i), ab[i], "alpha_bar");
        // The continuous embedding: a(t_i)² = ᾱ_i, b(t_i)² = 1 − ᾱ_i.
        let t = s.timestep_to_t(i);
        close(s.mean_coef(t).powi(2), ab[i], "a(t_i)^2");
        close(s.variance(t), 1.0 - ab[i], "b(t_i)^2");
    }
}

#[test]
fn ddpm_coefficients_are_the_papers() {
    let (b, ab) = (betas(), alpha_bars());
    for (t, s) in PAIRS {
        let (abt, abs) = (ab[t], ab[s]);
        // Consecutive indices use the table's β itself; strided ones the ratio.
        let beta = if t == s + 1 { b[t] } else { 1.0 - abt / abs };
        let alpha = 1.0 - beta;
        let beta_tilde = (1.0 - abs) / (1.0 - abt) * beta;
        for (var, sigma) in [
            (DdpmVariance::Beta, beta.sqrt()),
            (DdpmVariance::BetaTilde, beta_tilde.sqrt()),
        ] {
            let c = ddpm_coefficients(abt, abs, var);
            let what = format!("DDPM {t}->{s} {var:?}");
            // Eq. 7, the posterior mean.
            close(
                c.c_x0,
                abs.sqrt() * beta / (1.0 - abt),
                &format!("{what} c_x0"),
            );
            close(
                c.c_x,
                alpha.sqrt() * (1.0 - abs) / (1.0 - abt),
                &format!("{what} c_x"),
            );
            close(c.sigma, sigma, &format!("{what} sigma"));
            // Algorithm 2, with x_0 = (x_t − √(1 − ᾱ_t)·ε)/√ᾱ_t substituted.
            close(
                c.c_x + c.c_x0 / abt.sqrt(),
                1.0 / alpha.sqrt(),
                &format!("{what} eps-form c_x"),
            );
            close(
                -c.c_x0 * (1.0 - abt).sqrt() / abt.sqrt(),
                -beta / (alpha.sqrt() * (1.0 - abt).sqrt()),
                &format!("{what} eps-form c_eps"),
            );
        }
    }
}

/// DDIM's σ (Song, Meng, Ermon 2021, eq. 16): η·sqrt((1−ᾱ_s)/(1−ᾱ_t))·sqrt(1−ᾱ_t/ᾱ_s).
fn paper_ddim_sigma(abt: f64, abs: f64, eta: f64) -> f64 {
    eta * ((1.0 - abs) / (1.0 - abt)).sqrt() * (1.0 - abt / abs).sqrt()
}

#[test]
fn ddim_coefficients_are_the_papers() {
    let ab = alpha_bars();
    for (t, s) in PAIRS {
        let (abt, abs) = (ab[t], ab[s]);
        for eta in [0.0, 0.5, 1.0] {
            let c = ddim_coefficients(abt, abs, eta);
            let what = format!("DDIM {t}->{s} eta {eta}");
            let sigma = paper_ddim_sigma(abt, abs, eta);
            close(c.sigma, sigma, &format!("{what} sigma"));
            close(c.c_x, abs.sqrt() / abt.sqrt(), &format!("{what} c_x"));
            close(
                c.c_eps,
                (1.0 - abs - sigma * sigma).sqrt() - abs.sqrt() * (1.0 - abt).sqrt() / abt.sqrt(),
                &format!("{what} c_eps"),
            );
        }
        // η = 1 is DDPM with σ² = β̃ (DDIM §4.1): same σ, same mean in eps form.
        let (d, p) = (
            ddim_coefficients(abt, abs, 1.0),
            ddpm_coefficients(abt, abs, DdpmVariance::BetaTilde),
        );
        close(d.sigma, p.sigma, "eta=1 sigma");
        close(d.c_x, p.c_x + p.c_x0 / abt.sqrt(), "eta=1 c_x");
        close(
            d.c_eps,
            -p.c_x0 * (1.0 - abt).sqrt() / abt.sqrt(),
            "eta=1 c_eps",
        );
    }
}

/// A model whose output is a fixed tensor, whatever `x` and `t`.
struct Probe {
    prediction: Prediction,
    out: Tensor,
}

impl ScoreModel for Probe {
    fn prediction(&self) -> Prediction {
        self.prediction
    }
    fn forward(&self, _x: &Tensor, _t: &Tensor, _c: &Condition) -> Result<Tensor> {
        Ok(self.out.clone())
    }
}

const SEED: u64 = 42;

/// Runs `sampler` with `steps` uniform steps from knot `t` to knot `s` on a probe model
/// predicting `out` from `x`; returns the result and the first noise draw of `SEED`.
fn probe(
    sampler: Sampler,
    steps: usize,
    prediction: Prediction,
    (t, s): (usize, usize),
    x: [f64; 2],
    out: [f64; 2],
) -> ([f64; 2], [f64; 2]) {
    let (sched, dev) = (schedule(), Device::Cpu);
    let model = Probe {
        prediction,
        out: Tensor::new(&[out], &dev).unwrap(),
    };
    let grid = TimeGrid::uniform(steps).between(sched.timestep_to_t(t), sched.timestep_to_t(s));
    let x = Tensor::new(&[x], &dev).unwrap();
    let mut noise = Noise::new(SEED, 0, 1, &[2], &dev);
    let got = sampler
        .sample(&sched, &model, &x, &grid, &mut noise)
        .unwrap();
    let z = Noise::new(SEED, 0, 1, &[2], &dev)
        .next_as(DType::F64)
        .unwrap();
    let row = |v: &Tensor| {
        let r = v.to_vec2::<f64>().unwrap();
        [r[0][0], r[0][1]]
    };
    (row(&got.x), row(&z))
}

#[test]
fn continuous_ddpm_at_knots_is_the_papers() {
    let ab = alpha_bars();
    for (t, s) in PAIRS {
        let (abt, abs) = (ab[t], ab[s]);
        let (alpha, beta) = (abt / abs, 1.0 - abt / abs);
        let ddpm = Sampler::Ddpm {
            variance: DdpmVariance::Beta,
        };
        // One step is the last step: the posterior mean, no noise.
        let (x0_form, _) = probe(ddpm, 1, Prediction::X0, (t, s), [1.0, 0.0], [0.0, 1.0]);
        close(
            x0_form[0],
            alpha.sqrt() * (1.0 - abs) / (1.0 - abt),
            "DDPM c_x",
        );
        close(x0_form[1], abs.sqrt() * beta / (1.0 - abt), "DDPM c_x0");
        let (eps_form, _) = probe(ddpm, 1, Prediction::Eps, (t, s), [1.0, 0.0], [0.0, 1.0]);
        close(eps_form[0], 1.0 / alpha.sqrt(), "DDPM Algorithm 2 c_x");
        close(
            eps_form[1],
            -beta / (alpha.sqrt() * (1.0 - abt).sqrt()),
            "DDPM Algorithm 2 c_eps",
        );
    }
}

#[test]
fn continuous_ddpm_noise_at_knots_is_the_papers() {
    // Two steps t → m → s from x = 0 with x̂_0 = 0: the first step leaves σ(t→m)·z, the
    // last (the mean) multiplies it by c_x(m→s).
    let ab = alpha_bars();
    for (t, m, s) in [(2, 1, 0), (999, 989, 979), (600, 550, 500)] {
        let c_x = (ab[m] / ab[s]).sqrt() * (1.0 - ab[s]) / (1.0 - ab[m]);
        let beta = 1.0 - ab[t] / ab[m];
        for (var, sigma) in [
            (DdpmVariance::Beta, beta.sqrt()),
            (
                DdpmVariance::BetaTilde,
                ((1.0 - ab[m]) / (1.0 - ab[t]) * beta).sqrt(),
            ),
        ] {
            let (got, z) = probe(
                Sampler::Ddpm { variance: var },
                2,
                Prediction::X0,
                (t, s),
                [0.0; 2],
                [0.0; 2],
            );
            for k in 0..2 {
                close(
                    got[k],
                    c_x * sigma * z[k],
                    &format!("DDPM {t}->{m}->{s} {var:?}"),
                );
            }
        }
    }
}

#[test]
fn continuous_ddim_at_knots_is_the_papers() {
    let ab = alpha_bars();
    for (t, s) in PAIRS {
        let (abt, abs) = (ab[t], ab[s]);
        for eta in [0.0, 0.5, 1.0] {
            let sigma = paper_ddim_sigma(abt, abs, eta);
            let c_x = abs.sqrt() / abt.sqrt();
            let c_eps =
                (1.0 - abs - sigma * sigma).sqrt() - abs.sqrt() * (1.0 - abt).sqrt() / abt.sqrt();
            let (got, z) = probe(
                Sampler::Ddim { eta },
                1,
                Prediction::Eps,
                (t, s),
                [1.0, 0.0],
                [0.0, 1.0],
            );
            let what = format!("DDIM {t}->{s} eta {eta}");
            close(got[0], c_x + sigma * z[0], &format!("{what} c_x"));
            close(got[1], c_eps + sigma * z[1], &format!("{what} c_eps"));
        }
    }
}

#[test]
fn continuous_ancestral_at_knots_is_the_posterior() {
    // Ancestral = DDPM with σ² = β̃ and noise on the last step too.
    let ab = alpha_bars();
    for (t, s) in PAIRS {
        let (abt, abs) = (ab[t], ab[s]);
        let c = ddpm_coefficients(abt, abs, DdpmVariance::BetaTilde);
        let beta = 1.0 - abt / abs;
        let sigma = ((1.0 - abs) / (1.0 - abt) * beta).sqrt();
        let (got, z) = probe(
            Sampler::Ancestral,
            1,
            Prediction::X0,
            (t, s),
            [1.0, 0.0],
            [0.0, 1.0],
        );
        close(got[0], c.c_x + sigma * z[0], "ancestral c_x");
        close(got[1], c.c_x0 + sigma * z[1], "ancestral c_x0");
    }
}

/// The stochastic samplers with the settings the determinism tests use.
fn stochastic() -> Vec<Sampler> {
    let by_name = |s: &str| s.parse::<Sampler>().unwrap();
    [
        "em",
        "reverse-diffusion",
        "ancestral",
        "pc",
        "ddpm",
        "ddpm(variance=beta-tilde)",
        "ddim(eta=0.5)",
    ]
    .map(by_name)
    .into()
}

/// The grid of the determinism tests.
fn twenty() -> TimeGrid {
    TimeGrid::uniform(20)
}

fn mixture() -> GaussianMixture {
    GaussianMixture::new(
        vec![0.5, 0.3, 0.2],
        vec![vec![1.0, 0.5], vec![-1.0, 0.0], vec![0.0, -1.5]],
        vec![0.3, 0.5, 0.4],
    )
    .unwrap()
}

/// `n` samples drawn from streams `offset..offset + n` of `seed`: `x_T` is the first draw
/// (times the prior std), the sampler's noise the following ones.
fn draw<S: GaussianKernel>(sde: &S, sampler: Sampler, seed: u64, offset: u64, n: usize) -> Tensor {
    let gmm = mixture();
    let dev = Device::Cpu;
    let mut noise = Noise::new(seed, offset, n, &[2], &dev);
    let x_t = noise.draw().unwrap().affine(sde.prior_std(), 0.0).unwrap();
    sampler
        .sample(sde, &gmm.model(sde), &x_t, &twenty(), &mut noise)
        .unwrap()
        .x
}

fn rows(x: &Tensor) -> Vec<Vec<f32>> {
    x.to_vec2().unwrap()
}

#[test]
fn seeds_reproduce() {
    let sde = schedule();
    for kind in stochastic() {
        let a = rows(&draw(&sde, kind, 7, 0, 8));
        assert_eq!(a, rows(&draw(&sde, kind, 7, 0, 8)), "{kind:?}");
        assert_ne!(a, rows(&draw(&sde, kind, 8, 0, 8)), "{kind:?}");
        assert!(a.iter().flatten().all(|v| v.is_finite()));
    }
}

#[test]
fn batch_equals_single() {
    // Predictor–corrector is the exception: its Langevin step size uses norms averaged
    // over the batch (as in score_sde), so a sample's path depends on its batch.
    let (vp, ddpm) = (VpSde::default(), schedule());
    for kind in stochastic()
        .into_iter()
        .filter(|k| !matches!(k, Sampler::Pc { .. }))
    {
        for (name, batch, single) in [
            ("vp", draw(&vp, kind, 9, 0, 8), draw(&vp, kind, 9, 3, 1)),
            (
                "ddpm",
                draw(&ddpm, kind, 9, 0, 8),
                draw(&ddpm, kind, 9, 3, 1),
            ),
        ] {
            assert_eq!(rows(&batch)[3], rows(&single)[0], "{kind:?} on {name}");
        }
    }
}

#[test]
fn ddim_eta_0_is_deterministic_and_draws_no_noise() {
    let (sde, gmm, dev) = (schedule(), mixture(), Device::Cpu);
    let x_t = Noise::new(1, 0, 8, &[2], &dev).draw().unwrap();
    let run = |seed: u64| {
        let mut noise = Noise::new(seed, 0, 8, &[2], &dev);
        let x = Sampler::Ddim { eta: 0.0 }
            .sample(&sde, &gmm.model(&sde), &x_t, &twenty(), &mut noise)
            .unwrap()
            .x;
        // The sampler drew nothing: the stream is where a fresh one starts.
        let fresh = Noise::new(seed, 0, 8, &[2], &dev).draw().unwrap();
        assert_eq!(rows(&noise.draw().unwrap()), rows(&fresh));
        rows(&x)
    };
    assert_eq!(run(2), run(3));
    // η > 0 does draw noise: the same two seeds then disagree.
    let run = |seed: u64| {
        let mut noise = Noise::new(seed, 0, 8, &[2], &dev);
        rows(
            &Sampler::Ddim { eta: 1.0 }
                .sample(&sde, &gmm.model(&sde), &x_t, &twenty(), &mut noise)
                .unwrap()
                .x,
        )
    };
    assert_ne!(run(2), run(3));
}

#[test]
fn negative_eta_is_rejected() {
    let (sde, gmm, dev) = (schedule(), mixture(), Device::Cpu);
    let x_t = Tensor::zeros((2, 2), DType::F32, &dev).unwrap();
    let mut noise = Noise::new(0, 0, 2, &[2], &dev);
    let err = Sampler::Ddim { eta: -0.5 }
        .sample(
            &sde,
            &gmm.model(&sde),
            &x_t,
            &TimeGrid::uniform(100),
            &mut noise,
        )
        .unwrap_err();
    assert!(matches!(err, Error::Invalid(_)), "{err}");
}

/// The exact score, except NaN at times below `t_bad`.
struct NanBelow<M> {
    inner: M,
    t_bad: f64,
}

impl<M: ScoreModel> ScoreModel for NanBelow<M> {
    fn prediction(&self) -> Prediction {
        self.inner.prediction()
    }
    fn forward(&self, x: &Tensor, t: &Tensor, c: &Condition) -> Result<Tensor> {
        let out = self.inner.forward(x, t, c)?;
        let t0 = t.to_dtype(DType::F64)?.to_vec1::<f64>()?[0];
        Ok(if t0 < self.t_bad {
            out.affine(f64::NAN, 0.0)?
        } else {
            out
        })
    }
}

#[test]
fn a_nan_stops_sampling_naming_the_step_and_time() {
    let (sde, gmm, dev) = (VpSde::default(), mixture(), Device::Cpu);
    let model = NanBelow {
        inner: gmm.model(&sde),
        t_bad: 0.45,
    };
    let grid = TimeGrid::uniform(10);
    // The uniform grid 1, 0.9001, …: ts[6] = 0.4006 is the first time below 0.45.
    let ts: Vec<f64> = (0..=10)
        .map(|i| 1.0 + i as f64 / 10.0 * (1e-3 - 1.0))
        .collect();
    let mut kinds = stochastic();
    kinds.push(Sampler::Ddim { eta: 0.0 });
    for kind in kinds {
        let x_t = Noise::new(5, 0, 4, &[2], &dev).draw().unwrap();
        let mut noise = Noise::new(5, 0, 4, &[2], &dev);
        let err = kind
            .sample(&sde, &model, &x_t, &grid, &mut noise)
            .unwrap_err();
        // Predictor–corrector first meets t = ts[6] in the corrector of step 5.
        let want_step = if matches!(kind, Sampler::Pc { .. }) {
            5
        } else {
            6
        };
        match err {
            Error::NonFinite { step, t, .. } => {
                assert_eq!(step, want_step, "{kind:?}");
                assert!((t - ts[6]).abs() < 1e-12, "{kind:?}: t = {t}");
            }
            e => panic!("{kind:?}: expected NonFinite, got {e}"),
        }
    }
}

/// The samplers fold a model's prediction into their step as `want = c_x·x + c_out·out`
/// ([`linear_coefficients`]); that must equal the tensor conversion for every pair.
#[test]
fn folded_conversions_equal_convert() {
    let dev = Device::Cpu;
    let x = Tensor::new(&[[0.3f64, -1.2], [2.0, 0.5]], &dev).unwrap();
    let out = Tensor::new(&[[-0.7f64, 0.4], [1.1, -2.5]], &dev).unwrap();
    for (a, b) in [(0.8, 0.6), (1.0, 3.0), (0.05, 0.9987)] {
        let k = KernelAt {
            a,
            b,
            da: -0.4,
            db: 0.7,
        };
        for (from, _) in Prediction::ALL {
            for (to, _) in Prediction::ALL {
                let want = convert(&out, from, to, &x, k).unwrap();
                let (c_x, c_out) = linear_coefficients(from, to, k);
                let got = (x.affine(c_x, 0.0).unwrap() + out.affine(c_out, 0.0).unwrap()).unwrap();
                let diff = (got - &want).unwrap().abs().unwrap().max_all().unwrap();
                let diff = diff.to_scalar::<f64>().unwrap();
                assert!(diff < 1e-12, "{from:?} -> {to:?} at a={a}, b={b}: {diff:e}");
            }
        }
    }
}

/// The flow velocity `u = ȧ·x_0 + ḃ·ε` converts to and from every other prediction
/// exactly, given `x = a·x_0 + b·ε`; where `a = 0` (rectified flow at `t = 1`: `a = 0`,
/// `b = 1`, `ȧ = −1`, `ḃ = 1`) the conversions between velocity, data and noise stay
/// finite, while those through the score or noise into data cannot be (they divide by `a`).
#[test]
fn flow_velocity_converts_exactly_and_stays_finite_at_pure_noise() {
    let dev = Device::Cpu;
    let x0 = Tensor::new(&[[0.3f64, -1.2], [2.0, 0.5]], &dev).unwrap();
    let eps = Tensor::new(&[[-0.7f64, 0.4], [1.1, -2.5]], &dev).unwrap();
    let close = orders::max_abs;
    let points = [
        KernelAt {
            a: 0.8,
            b: 0.6,
            da: -0.4,
            db: 0.7,
        },
        KernelAt {
            a: 0.5,
            b: 0.5,
            da: -1.0,
            db: 1.0,
        },
        KernelAt {
            a: 0.0,
            b: 1.0,
            da: -1.0,
            db: 1.0,
        },
    ];
    for k in points {
        let x = ((&x0 * k.a).unwrap() + (&eps * k.b).unwrap()).unwrap();
        let u = ((&x0 * k.da).unwrap() + (&eps * k.db).unwrap()).unwrap();
        let score = (&eps * (-1.0 / k.b)).unwrap();
        let v = ((&eps * k.a).unwrap() - (&x0 * k.b).unwrap()).unwrap();
        let of = |t: &Tensor, from, to| convert(t, from, to, &x, k).unwrap();
        assert!(
            close(&of(&u, Prediction::Flow, Prediction::X0), &x0) < 1e-12,
            "{k:?}"
        );
        assert!(
            close(&of(&u, Prediction::Flow, Prediction::Eps), &eps) < 1e-12,
            "{k:?}"
        );
        assert!(close(&of(&u, Prediction::Flow, Prediction::Score), &score) < 1e-12);
        assert!(
            close(&of(&x0, Prediction::X0, Prediction::Flow), &u) < 1e-12,
            "{k:?}"
        );
        assert!(
            close(&of(&v, Prediction::V, Prediction::Flow), &u) < 1e-12,
            "{k:?}"
        );
        if k.a > 0.0 {
            assert!(close(&of(&eps, Prediction::Eps, Prediction::Flow), &u) < 1e-12);
            assert!(close(&of(&score, Prediction::Score, Prediction::Flow), &u) < 1e-12);
        } else {
            // Noise or score carry nothing about x_0 where a = 0.
            let (c_x, _) = linear_coefficients(Prediction::Eps, Prediction::Flow, k);
            assert!(!c_x.is_finite());
        }
    }
}

/// The discrete spacings of the DDIM/diffusers schedulers (1000 training steps).
#[test]
fn discrete_spacings() {
    use sbdm_runtime::sampling::grid::{discrete_times, discrete_timesteps, Spacing};
    // leading, 10 steps: 0, 100, ..., 900 (decreasing).
    let l = discrete_timesteps(1000, 10, Spacing::Leading).unwrap();
    assert_eq!(l, (0..10).rev().map(|i| i * 100).collect::<Vec<_>>());
    // trailing, 10 steps: 999, 899, ..., 99.
    let t = discrete_timesteps(1000, 10, Spacing::Trailing).unwrap();
    assert_eq!(t, (0..10).rev().map(|i| i * 100 + 99).collect::<Vec<_>>());
    // linspace, 10 steps: round(linspace(0, 999, 10)).
    let s = discrete_timesteps(1000, 10, Spacing::Linspace).unwrap();
    let want: Vec<usize> = (0..10)
        .rev()
        .map(|i| (i as f64 * 999.0 / 9.0).round() as usize)
        .collect();
    assert_eq!(s, want);
    // Times: (i + 1)/N, ending at timestep 0.
    let ts = discrete_times(1000, 10, Spacing::Trailing).unwrap();
    assert_eq!(ts.first(), Some(&1.0));
    assert_eq!(ts.last(), Some(&0.001));
    assert_eq!(ts.len(), 11);
    assert!(discrete_timesteps(1000, 0, Spacing::Leading).is_err());
    assert!(discrete_timesteps(1000, 1001, Spacing::Leading).is_err());
}
