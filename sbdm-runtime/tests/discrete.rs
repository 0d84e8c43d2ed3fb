//! The discrete DDPM β tables and their continuous-time embedding.

use sbdm_runtime::sde::discrete::{BetaSchedule, DiscreteSchedule, ScheduleError};
use sbdm_runtime::sde::{GaussianKernel, Sde};

const N: usize = 1000;

fn rel_err(got: f64, want: f64) -> f64 {
    (got - want).abs() / want.abs()
}

fn all_kinds() -> Vec<DiscreteSchedule> {
    [
        BetaSchedule::linear(),
        BetaSchedule::scaled_linear(),
        BetaSchedule::squaredcos_cap_v2(),
    ]
    .into_iter()
    .map(|kind| DiscreteSchedule::new(kind, N).unwrap())
    .chain([
        DiscreteSchedule::new(BetaSchedule::linear(), 1).unwrap(),
        DiscreteSchedule::new(BetaSchedule::squaredcos_cap_v2(), 7).unwrap(),
    ])
    .collect()
}

#[test]
fn linear_table_matches_the_product_formula() {
    let s = DiscreteSchedule::new(BetaSchedule::linear(), N).unwrap();
    assert_eq!(s.num_steps(), N);
    assert_eq!(s.kind(), Some(BetaSchedule::linear()));
    assert_eq!(s.betas()[0], 1e-4);
    assert_eq!(s.betas()[N - 1], 0.02);
    assert!(rel_err(s.betas()[500], 1e-4 + 500.0 * (0.02 - 1e-4) / 999.0) < 1e-15);
    // An independent loop over β_i = 1e-4 + (0.02 − 1e-4)·i/999.
    let mut prod = 1.0;
    for i in 0..N {
        prod *= 1.0 - (1e-4 + (0.02 - 1e-4) * i as f64 / 999.0);
        assert!(rel_err(s.alpha_bar(i), prod) < 1e-13, "i={i}");
    }
    // ᾱ_999: Python `math.prod(1 - (1e-4 + (0.02 - 1e-4)*i/999) for i in range(1000))`
    // = 4.0358297653756754e-05; diffusers (float32 betas) prints tensor(4.0358e-05).
    assert!(rel_err(s.alpha_bar(N - 1), 4.035_829_765_375_675_4e-5) < 1e-12);
    assert!(rel_err(s.alpha_bar(N - 1), 4.0358e-5) < 1e-4);
    assert_eq!(s.alphas_cumprod().len(), N);
}

#[test]
fn scaled_linear_table_is_squared_linspace() {
    let s = DiscreteSchedule::new(BetaSchedule::scaled_linear(), 3).unwrap();
    let mid = 0.5 * (0.00085f64.sqrt() + 0.012f64.sqrt());
    assert!(rel_err(s.betas()[0], 0.00085) < 1e-15);
    assert!(rel_err(s.betas()[1], mid * mid) < 1e-15);
    assert!(rel_err(s.betas()[2], 0.012) < 1e-15);
    // Python: s0, s1 = 0.00085**.5, 0.012**.5;
    // math.prod(1 - (s0 + (s1 - s0)*i/999)**2 for i in range(1000)) = 0.004660098513077234
    let s = DiscreteSchedule::new(BetaSchedule::scaled_linear(), N).unwrap();
    assert!(rel_err(s.alpha_bar(N - 1), 0.004_660_098_513_077_234) < 1e-12);
}

#[test]
fn cosine_table_uses_float_division() {
    let s = DiscreteSchedule::new(BetaSchedule::squaredcos_cap_v2(), N).unwrap();
    let alpha_bar = |t: f64| {
        ((t + 0.008) / 1.008 * std::f64::consts::FRAC_PI_2)
            .cos()
            .powi(2)
    };
    // Integer division (i + 1)/N would give β = 0 for all but the last entry.
    assert!(s.betas().iter().all(|&b| b > 0.0));
    for &i in &[0, 1, 2, 10, 250, 500, 900, 998] {
        let want = 1.0 - alpha_bar((i + 1) as f64 / N as f64) / alpha_bar(i as f64 / N as f64);
        assert!(rel_err(s.betas()[i], want) < 1e-14, "i={i}");
    }
    // Python with the same formula: β_0 = 4.128422482196914e-05,
    // β_500 = 0.003155691441585007, β_998 = 0.7499993929011166.
    assert!(rel_err(s.betas()[0], 4.128_422_482_196_914e-5) < 1e-10);
    assert!(rel_err(s.betas()[500], 0.003_155_691_441_585_007) < 1e-12);
    assert!(rel_err(s.betas()[998], 0.749_999_392_901_116_6) < 1e-12);
    // Only the last is clipped at max_beta (1 − ᾱ(1)/ᾱ(1 − 1/N) ≈ 1).
    assert_eq!(s.betas()[N - 1], 0.999);
    assert_eq!(s.betas().iter().filter(|&&b| b >= 0.999).count(), 1);
    assert!(s.betas().windows(2).all(|w| w[0] < w[1]));
    // ᾱ_i = ᾱ(t_i)/ᾱ(0) up to the clipped last step.
    for &i in &[0, 10, 500, 998] {
        let want = alpha_bar((i + 1) as f64 / N as f64) / alpha_bar(0.0);
        assert!(rel_err(s.alpha_bar(i), want) < 1e-12, "i={i}");
    }
    // A custom cap applies too.
    let capped = BetaSchedule::SquaredCosCapV2 {
        s: 0.008,
        max_beta: 0.5,
    };
    let s = DiscreteSchedule::new(capped, N).unwrap();
    assert!(s.betas().iter().all(|&b| b <= 0.5));
    assert_eq!(s.betas()[N - 1], 0.5);
}

#[test]
fn bad_input_errors() {
    assert_eq!(
        DiscreteSchedule::new(BetaSchedule::linear(), 0),
        Err(ScheduleError::NoTimesteps)
    );
    assert_eq!(
        DiscreteSchedule::from_betas(vec![]),
        Err(ScheduleError::NoTimesteps)
    );
    let zero_start = BetaSchedule::Linear {
        beta_start: 0.0,
        beta_end: 0.02,
    };
    assert_eq!(
        DiscreteSchedule::new(zero_start, 10),
        Err(ScheduleError::BetaOutOfRange {
            index: 0,
            beta: 0.0
        })
    );
    assert_eq!(
        DiscreteSchedule::from_betas(vec![0.1, 0.5, 1.0, 2.0]),
        Err(ScheduleError::BetaOutOfRange {
            index: 2,
            beta: 1.0
        })
    );
    assert!(matches!(
        DiscreteSchedule::from_betas(vec![0.1, f64::NAN]),
        Err(ScheduleError::BetaOutOfRange { index: 1, .. })
    ));
    // β = 1 is allowed for the last entry only (zero terminal SNR); above 1 never.
    let msg = DiscreteSchedule::from_betas(vec![0.1, 1.0, 0.5])
        .unwrap_err()
        .to_string();
    assert_eq!(
        msg,
        "beta[1] = 1 is outside (0, 1); only the last beta may be 1 (zero terminal SNR)"
    );
    assert_eq!(msg.lines().count(), 1);
    assert_eq!(
        DiscreteSchedule::from_betas(vec![1.0, 1.0]),
        Err(ScheduleError::BetaOutOfRange {
            index: 0,
            beta: 1.0
        })
    );
    assert_eq!(
        DiscreteSchedule::from_betas(vec![0.1, 1.0 + 1e-12]),
        Err(ScheduleError::BetaOutOfRange {
            index: 1,
            beta: 1.0 + 1e-12
        })
    );
    assert!(DiscreteSchedule::from_betas(vec![0.1, 0.5, 1.0]).is_ok());
    assert!(DiscreteSchedule::from_betas(vec![1.0]).is_ok());
    // The cosine schedule uncapped: its last β is 1 − ᾱ(1)/ᾱ(1 − 1/N) = 1 in f64 (ᾱ(1)
    // ≈ 4e-33), a table that ends at pure noise, accepted; a cap above 1 is not.
    let uncapped = BetaSchedule::SquaredCosCapV2 {
        s: 0.008,
        max_beta: 1.0,
    };
    let s = DiscreteSchedule::new(uncapped, N).unwrap();
    assert_eq!(s.betas()[N - 1], 1.0);
    assert!(s.ends_at_pure_noise() && !s.is_zero_terminal_snr());
    assert_eq!(s.alpha_bar(N - 1), 0.0);
    let msg = DiscreteSchedule::from_betas(vec![-0.5])
        .unwrap_err()
        .to_string();
    assert_eq!(msg, "beta[0] = -0.5 is outside (0, 1)");
}

#[test]
fn from_betas_keeps_the_table() {
    let s = DiscreteSchedule::from_betas(vec![0.1, 0.2, 0.5]).unwrap();
    assert_eq!(s.kind(), None);
    assert_eq!(s.betas(), &[0.1, 0.2, 0.5]);
    assert_eq!(s.alphas_cumprod(), &[0.9, 0.9 * 0.8, 0.9 * 0.8 * 0.5]);
    assert_eq!(s.time_range(), (1.0 / 3.0, 1.0));
    assert_eq!(s.name(), "DiscreteSchedule");
}

#[test]
fn timesteps_and_times_round_trip() {
    for s in all_kinds() {
        let n = s.num_steps();
        assert_eq!(s.time_range(), (1.0 / n as f64, 1.0));
        for i in 0..n {
            assert_eq!(s.timestep_to_t(i), (i + 1) as f64 / n as f64);
            assert_eq!(s.t_to_timestep(s.timestep_to_t(i)), i);
        }
        assert_eq!(s.t_to_timestep(0.0), 0);
        assert_eq!(s.t_to_timestep(-3.0), 0);
        assert_eq!(s.t_to_timestep(7.0), n - 1);
        assert_eq!(s.t_to_timestep(f64::NAN), 0);
    }
}

#[test]
fn knots_reproduce_the_table() {
    for s in all_kinds() {
        for i in 0..s.num_steps() {
            let t = s.timestep_to_t(i);
            let a = s.mean_coef(t);
            assert!(rel_err(a * a, s.alpha_bar(i)) < 1e-12, "i={i}");
            assert!(
                rel_err(s.variance(t), 1.0 - s.alpha_bar(i)) < 1e-12,
                "i={i}"
            );
            assert!(rel_err(s.std(t).powi(2), s.variance(t)) < 1e-15);
            assert!(rel_err(s.sigma(t), s.std(t) / a) < 1e-13);
            assert!(rel_err(s.log_snr(t), (a / s.std(t)).ln()) < 1e-12);
        }
        // t = 0: the data itself.
        assert_eq!(s.mean_coef(0.0), 1.0);
        assert_eq!(s.std(0.0), 0.0);
        assert_eq!(s.log_snr(0.0), f64::INFINITY);
    }
}

#[test]
fn coefficients_are_constant_on_left_closed_segments() {
    let s = DiscreteSchedule::new(BetaSchedule::linear(), N).unwrap();
    let n = N as f64;
    for &i in &[0, 1, 499, 998] {
        let t = s.timestep_to_t(i);
        // At the knot t_i: the segment (t_{i−1}, t_i], slope N·ln(1 − β_i).
        let want = -n * (-s.betas()[i]).ln_1p();
        assert!(rel_err(s.diffusion_sq(t), want) < 1e-9, "i={i}");
        assert!(rel_err(s.drift_coef(t), -0.5 * want) < 1e-9, "i={i}");
        assert!(rel_err(s.diffusion(t), want.sqrt()) < 1e-9, "i={i}");
        // Just after it: the next segment.
        let next = -n * (-s.betas()[i + 1]).ln_1p();
        let after = t + 1e-6 / n;
        assert!(rel_err(s.diffusion_sq(after), next) < 1e-9, "i={i}");
    }
}

#[test]
fn diffusion_matches_the_kernel_inside_segments() {
    // g² = d(b²)/dt − 2F·b² and F = d ln a/dt, by central differences inside segments.
    for s in all_kinds() {
        let n = s.num_steps() as f64;
        let h = 1e-4 / n;
        for i in (0..s.num_steps()).step_by(37) {
            let t = (i as f64 + 0.5) / n;
            let db2 = (s.variance(t + h) - s.variance(t - h)) / (2.0 * h);
            let g2 = db2 - 2.0 * s.drift_coef(t) * s.variance(t);
            assert!(rel_err(s.diffusion_sq(t), g2) < 1e-6, "i={i}");
            let dlna = (s.mean_coef(t + h).ln() - s.mean_coef(t - h).ln()) / (2.0 * h);
            assert!(rel_err(s.drift_coef(t), dlna) < 1e-6, "i={i}");
            let dlam = (s.log_snr(t + h) - s.log_snr(t - h)) / (2.0 * h);
            assert!(rel_err(s.dlog_snr_dt(t), dlam) < 1e-6, "i={i}");
            // dλ/dt = −g²/(2b²).
            let want = -s.diffusion_sq(t) / (2.0 * s.variance(t));
            assert!(rel_err(s.dlog_snr_dt(t), want) < 1e-14, "i={i}");
        }
    }
}

#[test]
fn log_snr_decreases_and_inverts() {
    for s in all_kinds() {
        let n = s.num_steps();
        // A fine grid crossing every knot, past t = 1.
        let grid: Vec<f64> = (1..=4 * n + 8).map(|j| j as f64 / (4 * n) as f64).collect();
        let lam: Vec<f64> = grid.iter().map(|&t| s.log_snr(t)).collect();
        assert!(lam.windows(2).all(|w| w[0] > w[1]));
        for (&t, &l) in grid.iter().zip(&lam) {
            let back = s.t_of_log_snr(l);
            assert!((back - t).abs() <= 1e-10 * t.max(1.0), "t={t}: {back}");
        }
        for i in 0..n {
            let t = s.timestep_to_t(i);
            assert!((s.t_of_log_snr(s.log_snr(t)) - t).abs() <= 1e-12);
        }
        // Tiny times, and the limits of λ.
        for &t in &[1e-9, 1e-6, 0.3 / n as f64] {
            let back = s.t_of_log_snr(s.log_snr(t));
            assert!(rel_err(back, t) < 1e-8, "t={t}: {back}");
        }
        assert_eq!(s.t_of_log_snr(f64::INFINITY), 0.0);
        assert_eq!(s.t_of_log_snr(1e6), 0.0);
        assert!(s.t_of_log_snr(f64::NAN).is_nan());
        assert!(s.t_of_log_snr(-50.0) > 1.0);
        assert!(s.t_of_log_snr(-50.0).is_finite());
    }
}

#[test]
fn trait_defaults_and_objects() {
    let s = DiscreteSchedule::default();
    assert_eq!(s.kind(), Some(BetaSchedule::linear()));
    let boxed: Box<dyn GaussianKernel> = Box::new(s.clone());
    let by_ref: &dyn GaussianKernel = &s;
    let last = s.alpha_bar(N - 1);
    assert!(rel_err(boxed.prior_std(), (1.0 - last).sqrt()) < 1e-12);
    assert_eq!(boxed.name(), "DiscreteSchedule");
    assert_eq!(by_ref.prior_std(), boxed.prior_std());
    // log N(x; 0, σ²I) = −½Σx²/σ² − (n/2)ln(2πσ²).
    let x = [0.3, -1.2, 2.0];
    let var = 1.0 - last;
    let want = -0.5 * (0.09 + 1.44 + 4.0) / var - 1.5 * (2.0 * std::f64::consts::PI * var).ln();
    assert!(rel_err(boxed.prior_log_prob(&x), want) < 1e-12);
    assert_eq!(boxed.prior_log_prob(&[]), 0.0);
    // Drifts: f = F·x, reverse f − g²·score, PF-ODE f − ½g²·score.
    let (t, x, score) = (0.37, 0.8, -1.5);
    let (f, g2) = (s.drift_coef(t), s.diffusion_sq(t));
    assert_eq!(boxed.drift(x, t), f * x);
    assert!(rel_err(boxed.reverse_drift(x, score, t), f * x - g2 * score) < 1e-15);
    assert!(rel_err(boxed.pf_ode_drift(x, score, t), f * x - 0.5 * g2 * score) < 1e-15);
    // Kernel score −(x_t − a·x_0)/b² = −ε/b.
    let (x0, eps) = (0.5, 0.7);
    let x_t = s.mean_coef(t) * x0 + s.std(t) * eps;
    assert!(rel_err(boxed.kernel_score(x_t, x0, t), -eps / s.std(t)) < 1e-12);
    // Generic code sees the same numbers through &S and Box<S>.
    fn prior<K: GaussianKernel>(k: K) -> f64 {
        k.prior_std()
    }
    assert_eq!(prior(&s), prior(Box::new(s.clone())));
}
