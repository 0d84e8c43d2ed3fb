//! Samplers and time grids as values: names and settings round-trip through text, every
//! setting is checked in one place, and settings do what they say.

use candle_core::{DType, Device, Tensor};
use sbdm_runtime::error::Error;
use sbdm_runtime::model::mixture::GaussianMixture;
use sbdm_runtime::sampling::{DdpmVariance, GridKind, Noise, Sampler, Spacing, TimeGrid};
use sbdm_runtime::sde::builtin::{EdmSde, VeSde, VpSde};
use sbdm_runtime::sde::discrete::{BetaSchedule, DiscreteSchedule};
use sbdm_runtime::sde::{GaussianKernel, Sde};

#[test]
fn names_and_settings_round_trip_through_text() {
    for s in Sampler::ALL {
        assert_eq!(s.to_string(), s.name(), "defaults print as the bare name");
        assert_eq!(s.to_string().parse::<Sampler>().unwrap(), s);
        assert_eq!(Sampler::by_name(s.name()).unwrap(), s);
    }
    for (text, want) in [
        ("ddim(eta=0.5)", Sampler::Ddim { eta: 0.5 }),
        (
            "pc(snr=0.05, corrector_steps=3)",
            Sampler::Pc {
                snr: 0.05,
                corrector_steps: 3,
            },
        ),
        (
            "rk45(rtol=1e-8)",
            Sampler::Rk45 {
                rtol: 1e-8,
                atol: 1e-5,
            },
        ),
        (
            "ddpm(variance=beta-tilde)",
            Sampler::Ddpm {
                variance: DdpmVariance::BetaTilde,
            },
        ),
        (
            "heun(churn=40, s_tmin=0.05, s_tmax=50, s_noise=1.003)",
            Sampler::Heun {
                churn: 40.0,
                s_tmin: 0.05,
                s_tmax: 50.0,
                s_noise: 1.003,
            },
        ),
    ] {
        let s: Sampler = text.parse().unwrap();
        assert_eq!(s, want, "{text}");
        assert_eq!(s.to_string().parse::<Sampler>().unwrap(), s, "{text}");
    }
    assert_eq!(
        Sampler::Ddim { eta: 0.25 }.to_string(),
        "ddim(eta=0.25)",
        "a changed setting is shown"
    );
}

#[test]
fn bad_names_and_settings_say_what_is_valid() {
    let err = |text: &str| text.parse::<Sampler>().unwrap_err().to_string();
    let e = err("dpmpp4m");
    assert!(
        e.contains("unknown sampler `dpmpp4m`") && e.contains("dpmpp3m"),
        "{e}"
    );
    let e = err("ddim(snr=1)");
    assert!(
        e.contains("ddim has no setting `snr`; its settings: eta"),
        "{e}"
    );
    let e = err("dpm2(eta=1)");
    assert!(e.contains("dpm2 has no settings"), "{e}");
    let e = err("ddim(eta=fast)");
    assert!(e.contains("eta must be a number"), "{e}");
    let e = err("ddim(eta=1");
    assert!(e.contains("must end with `)`"), "{e}");
    let e = err("ddpm(variance=sigma)");
    assert!(e.contains("beta, beta-tilde"), "{e}");
}

/// `sampler.validate(&VpSde, grid)`'s error.
fn invalid(sampler: &str, grid: TimeGrid) -> String {
    let s: Sampler = sampler.parse().unwrap();
    match s.validate(&VpSde::default(), &grid) {
        Err(Error::Invalid(m)) => m,
        other => panic!("{sampler}: expected Error::Invalid, got {other:?}"),
    }
}

#[test]
fn every_setting_is_checked_by_validate() {
    let g = || TimeGrid::uniform(10);
    for (sampler, want) in [
        (
            "ddim(eta=-0.5)",
            "ddim: eta must be finite and >= 0, got -0.5",
        ),
        (
            "ddim(eta=NaN)",
            "ddim: eta must be finite and >= 0, got NaN",
        ),
        ("pc(snr=0)", "pc: snr must be finite and > 0, got 0"),
        (
            "heun(churn=-1)",
            "heun: churn must be finite and >= 0, got -1",
        ),
        (
            "heun(s_noise=inf)",
            "heun: s_noise must be finite and >= 0, got inf",
        ),
        (
            "heun(s_tmin=2, s_tmax=1)",
            "heun: s_tmax must be >= s_tmin = 2, got 1",
        ),
        ("rk45(rtol=0)", "rk45: rtol must be finite and > 0, got 0"),
        (
            "rk45(atol=-1)",
            "rk45: atol must be finite and >= 0, got -1",
        ),
    ] {
        assert_eq!(invalid(sampler, g()), want);
    }
    // η > 1 is allowed while σ ≤ b(s); on the 10-step VP grid η = 2 exceeds it.
    assert!(invalid("ddim(eta=2)", g()).contains("sigma exceeds b(s)"));
    assert!(Sampler::Ddim { eta: 1.0 }
        .validate(&VpSde::default(), &g())
        .is_ok());
    // The grid: no steps, outside the time range, not decreasing, not finite.
    for sampler in ["ddim", "rk45"] {
        assert_eq!(
            invalid(sampler, TimeGrid::uniform(0)),
            "the time grid needs at least 1 step, got 0"
        );
        assert_eq!(
            invalid(sampler, TimeGrid::uniform(10).between(1.0, 0.0)),
            "time range [0, 1] is not inside the SDE's [0.001, 1]"
        );
        assert_eq!(
            invalid(sampler, TimeGrid::uniform(10).between(0.5, 0.6)),
            "time range [0.6, 0.5] is not inside the SDE's [0.001, 1]"
        );
        assert!(invalid(sampler, TimeGrid::Times(vec![1.0, 0.5, 0.7]))
            .contains("strictly decreasing: 0.5 is followed by 0.7"));
        assert!(
            invalid(sampler, TimeGrid::Times(vec![1.0, f64::NAN])).contains("non-finite time NaN")
        );
        assert!(invalid(sampler, TimeGrid::Times(vec![0.5])).contains("at least 1 step"));
    }
    assert!(invalid(
        "ddim",
        TimeGrid::Discrete {
            num_train: 1000,
            steps: 2000,
            spacing: Spacing::Leading
        }
    )
    .contains("steps must be in 1..=1000"));
}

fn mixture() -> GaussianMixture {
    GaussianMixture::ring(4, 2.0, 0.3).unwrap()
}

fn sample_with<S: GaussianKernel>(sde: &S, sampler: Sampler, seed: u64) -> (Vec<f64>, Tensor) {
    let mix = mixture();
    let x = mix
        .sample_at(sde, sde.time_range().1, 16, 1, &Device::Cpu)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap();
    let mut noise = Noise::new(seed, 0, 16, &[2], &Device::Cpu);
    let out = sampler
        .sample(
            sde,
            &mix.model(sde),
            &x,
            &TimeGrid::new(GridKind::Karras { rho: 7.0 }, 20),
            &mut noise,
        )
        .unwrap();
    let next = noise.draw().unwrap();
    (out.x.flatten_all().unwrap().to_vec1().unwrap(), next)
}

#[test]
fn heun_churns_only_inside_its_sigma_range() {
    let sde = EdmSde::default();
    let deterministic = sample_with(&sde, "heun".parse().unwrap(), 3);
    // σ = t on [0.002, 80]: a range above every σ of the grid leaves Heun deterministic
    // (bit-identical, and no noise drawn) ...
    let outside: Sampler = "heun(churn=40, s_tmin=100, s_tmax=200)".parse().unwrap();
    let o = sample_with(&sde, outside, 3);
    assert!(o.0 == deterministic.0);
    let fresh = Noise::new(3, 0, 16, &[2], &Device::Cpu).draw().unwrap();
    let same = |a: &Tensor, b: &Tensor| a.to_vec2::<f32>().unwrap() == b.to_vec2::<f32>().unwrap();
    assert!(
        same(&o.1, &fresh),
        "noise was drawn outside the churn range"
    );
    // ... while a range covering some steps churns them, with S_noise scaling the noise.
    let inside: Sampler = "heun(churn=40, s_tmin=0.05, s_tmax=50)".parse().unwrap();
    let i = sample_with(&sde, inside, 3);
    assert!(i.0 != deterministic.0 && !same(&i.1, &fresh));
    let quiet: Sampler = "heun(churn=40, s_tmin=0.05, s_tmax=50, s_noise=0)"
        .parse()
        .unwrap();
    assert!(sample_with(&sde, quiet, 3).0 != i.0);
}

#[test]
fn stochastic_samplers_say_so() {
    for s in Sampler::ALL {
        let want = matches!(
            s,
            Sampler::Em
                | Sampler::ReverseDiffusion
                | Sampler::Ancestral
                | Sampler::Pc { .. }
                | Sampler::Ddpm { .. }
        );
        assert_eq!(s.is_stochastic(), want, "{s}");
    }
    assert!(Sampler::Ddim { eta: 0.1 }.is_stochastic());
    assert!("heun(churn=1)".parse::<Sampler>().unwrap().is_stochastic());
}

#[test]
fn grids_are_values() {
    let vp = VpSde::default();
    let ts = TimeGrid::uniform(4).times(&vp).unwrap();
    assert_eq!(ts.len(), 5);
    assert_eq!((ts[0], ts[4]), (1.0, 1e-3));
    // Explicit times are used as given.
    let given = vec![0.9, 0.5, 0.2, 0.01];
    assert_eq!(TimeGrid::Times(given.clone()).times(&vp).unwrap(), given);
    assert_eq!(TimeGrid::Times(given.clone()).steps(), 3);
    assert_eq!(TimeGrid::Times(given).span(&vp).unwrap(), (0.9, 0.01));
    // A discrete schedule's timesteps, at t = (i + 1)/N.
    let table = DiscreteSchedule::new(BetaSchedule::linear(), 1000).unwrap();
    let grid = TimeGrid::Discrete {
        num_train: 1000,
        steps: 10,
        spacing: Spacing::Trailing,
    };
    let ts = grid.times(&table).unwrap();
    assert_eq!((ts[0], *ts.last().unwrap(), ts.len()), (1.0, 0.001, 11));
    assert_eq!(
        grid.to_string(),
        "trailing spacing of 1000 timesteps, 10 steps"
    );
    assert_eq!(
        TimeGrid::new(GridKind::Karras { rho: 7.0 }, 20).to_string(),
        "Karras grid (rho = 7), 20 steps"
    );
    // `between` narrows a spaced grid only.
    let part = TimeGrid::new(GridKind::LogSnr, 8).between(0.5, 0.01);
    let ts = part.times(&vp).unwrap();
    assert_eq!((ts[0], ts[8]), (0.5, 0.01));
    // The default grid: Karras where t is EDM's σ, uniform otherwise.
    assert_eq!(
        GridKind::default_for(&EdmSde::default()),
        GridKind::Karras { rho: 7.0 }
    );
    assert_eq!(GridKind::default_for(&vp), GridKind::Uniform);
    assert_eq!(GridKind::default_for(&VeSde::default()), GridKind::Uniform);
    for (k, name, _) in GridKind::ALL {
        assert_eq!(GridKind::from_name(name), Some(k));
        assert_eq!(k.name(), name);
    }
}

#[test]
fn spaced_grids_are_their_closed_forms() {
    // Quadratic: uniform in √t, t_i = (√T + (i/N)(√t_min − √T))²; log-SNR: λ uniform,
    // t_i = t(λ(T) + (i/N)(λ(t_min) − λ(T))). Each to 1e-14
    // relative (a few ulp) against the formula written out here (the ends are pinned).
    let vp = VpSde::default();
    let (t_max, t_min) = (1.0_f64, 1e-3_f64);
    let n = 7;
    let close = |got: &[f64], want: &dyn Fn(usize) -> f64, what: &str| {
        assert_eq!(got.len(), n + 1, "{what}");
        for (i, g) in got.iter().enumerate() {
            let w = want(i);
            assert!((g - w).abs() <= 1e-14 * w.abs(), "{what} t_{i}: {g} vs {w}");
        }
    };
    let quadratic = TimeGrid::new(GridKind::Quadratic, n).times(&vp).unwrap();
    close(
        &quadratic,
        &|i| {
            let s = t_max.sqrt() + (i as f64 / n as f64) * (t_min.sqrt() - t_max.sqrt());
            s * s
        },
        "quadratic",
    );
    // A wrong variant (uniform in t) is far from it: the test can fail.
    let uniform = TimeGrid::uniform(n).times(&vp).unwrap();
    assert!((uniform[3] - quadratic[3]).abs() > 0.1);
    let logsnr = TimeGrid::new(GridKind::LogSnr, n).times(&vp).unwrap();
    let (l0, l1) = (vp.log_snr(t_max), vp.log_snr(t_min));
    close(
        &logsnr,
        &|i| {
            if i == 0 || i == n {
                return [t_max, t_min][i / n];
            }
            vp.t_of_log_snr(l0 + (i as f64 / n as f64) * (l1 - l0))
        },
        "logsnr",
    );
    for t in &logsnr[1..n] {
        let i = logsnr.iter().position(|u| u == t).unwrap();
        let want = l0 + (i as f64 / n as f64) * (l1 - l0);
        assert!((vp.log_snr(*t) - want).abs() < 1e-9, "λ uniform at {i}");
    }
}

#[test]
fn the_noise_streams_must_fit_x_t() {
    let vp = VpSde::default();
    let mix = mixture();
    let x = Tensor::zeros((4, 2), DType::F32, &Device::Cpu).unwrap();
    let mut noise = Noise::new(0, 0, 5, &[2], &Device::Cpu);
    let e = Sampler::Em
        .sample(&vp, &mix.model(&vp), &x, &TimeGrid::uniform(3), &mut noise)
        .unwrap_err()
        .to_string();
    assert!(e.contains("noise streams draw shape [5, 2]"), "{e}");
    // The SDE's drift is the derivation's: F x + S·score with S = −g² (reverse SDE) and
    // −g²/2 (PF-ODE).
    let (r, p) = (vp.reverse_sde(0.3), vp.pf_ode(0.3));
    assert_eq!((r.x, p.x), (vp.drift_coef(0.3), vp.drift_coef(0.3)));
    assert_eq!(r.score, -vp.diffusion_sq(0.3));
    assert_eq!(p.score, 0.5 * r.score);
    assert_eq!(
        (r.noise_variance, p.noise_variance),
        (vp.diffusion_sq(0.3), 0.0)
    );
}
