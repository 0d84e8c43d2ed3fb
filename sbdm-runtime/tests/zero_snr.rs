//! Zero-terminal-SNR discrete tables (Lin et al. 2023, "Common Diffusion Noise Schedules
//! and Sample Steps are Flawed"): the rescaling, the embedding of its last segment (linear
//! in `a = √ᾱ`, pure noise at `t = 1`), and the samplers from pure noise on trailing grids.

use candle_core::Device;
use sbdm_runtime::sampling::noise::Noise;
use sbdm_runtime::sampling::{Sampler, Spacing, TimeGrid};
use sbdm_runtime::sde::discrete::{rescale_zero_terminal_snr, BetaSchedule, DiscreteSchedule};
use sbdm_runtime::sde::{named, GaussianKernel, Sde};

#[path = "common/orders.rs"]
mod orders;
use orders::{max_abs, order, three_components as mixture};

const N: usize = 1000;

fn kinds() -> [BetaSchedule; 3] {
    [
        BetaSchedule::linear(),
        BetaSchedule::scaled_linear(),
        BetaSchedule::squaredcos_cap_v2(),
    ]
}

fn zsnr(kind: BetaSchedule) -> DiscreteSchedule {
    DiscreteSchedule::zero_terminal_snr(kind, N).unwrap()
}

fn rel_err(got: f64, want: f64) -> f64 {
    (got - want).abs() / want.abs()
}

/// `steps` of the `N` training timesteps, trailing: the grid starts at timestep `N − 1`,
/// `t = 1`, pure noise.
fn trailing(steps: usize) -> TimeGrid {
    TimeGrid::Discrete {
        num_train: N,
        steps,
        spacing: Spacing::Trailing,
    }
}

#[test]
fn rescale_follows_lin_et_al_algorithm_1() {
    // ᾱ = 0.81, 0.64, 0.36, 0.25, so √ᾱ = 0.9, 0.8, 0.6, 0.5. Shifted by the last and
    // scaled to keep the first: 0.9·(√ᾱ − 0.5)/0.4 = 0.9, 0.675, 0.225, 0; squared
    // 0.81, 0.455625, 0.050625, 0; ratios 0.5625 = 0.75² and 1/9 = (1/3)²: β' below.
    let alpha_bar = [0.81, 0.64, 0.36, 0.25];
    let betas = [
        1.0 - alpha_bar[0],
        1.0 - alpha_bar[1] / alpha_bar[0],
        1.0 - alpha_bar[2] / alpha_bar[1],
        1.0 - alpha_bar[3] / alpha_bar[2],
    ];
    let got = rescale_zero_terminal_snr(&betas);
    let want = [0.19, 0.4375, 8.0 / 9.0, 1.0];
    for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
        assert!((g - w).abs() < 1e-14, "beta'[{i}] = {g}, want {w}");
    }
    assert_eq!(got[3], 1.0);
    assert_eq!(rescale_zero_terminal_snr(&[]), Vec::<f64>::new());
    assert_eq!(rescale_zero_terminal_snr(&[0.3]), vec![1.0]);
    // A table that already ends at pure noise is left as it is.
    let again = rescale_zero_terminal_snr(&got);
    assert!(again.iter().zip(&got).all(|(a, b)| (a - b).abs() < 1e-14));

    // The 1000-step tables against the algorithm computed another way: √ᾱ from the sum
    // of ln(1 − β), shifted and scaled in that order, β' from the ratios of √ᾱ'.
    for kind in kinds() {
        let betas = kind.betas(N);
        let mut log_sum = 0.0;
        let s: Vec<f64> = betas
            .iter()
            .map(|b: &f64| {
                log_sum += (1.0 - b).ln();
                (0.5 * log_sum).exp()
            })
            .collect();
        let (s0, st) = (s[0], s[N - 1]);
        let scaled: Vec<f64> = s.iter().map(|v| (v - st) * s0 / (s0 - st)).collect();
        let got = rescale_zero_terminal_snr(&betas);
        assert!((got[0] - (1.0 - scaled[0] * scaled[0])).abs() < 1e-15);
        for i in 1..N - 1 {
            let want = 1.0 - (scaled[i] / scaled[i - 1]).powi(2);
            assert!(rel_err(got[i], want) < 1e-9, "{kind:?} beta'[{i}]");
        }
        assert_eq!(got[N - 1], 1.0);
        assert!(got[..N - 1].iter().all(|&b| b > 0.0 && b < 1.0));
    }
}

#[test]
fn zero_snr_tables_reach_pure_noise_and_keep_their_knots() {
    for kind in kinds() {
        let s = zsnr(kind);
        let plain = DiscreteSchedule::new(kind, N).unwrap();
        assert_eq!(s.kind(), Some(kind));
        assert!(s.is_zero_terminal_snr() && s.ends_at_pure_noise());
        assert!(!plain.is_zero_terminal_snr() && !plain.ends_at_pure_noise());
        assert_eq!(
            s.betas(),
            rescale_zero_terminal_snr(plain.betas()).as_slice()
        );
        assert_eq!(s.betas()[N - 1], 1.0);
        assert_eq!(s.alpha_bar(N - 1), 0.0);
        assert_eq!(s.time_range(), (1.0 / N as f64, 1.0));
        // √ᾱ_0 unchanged.
        assert!(rel_err(s.alpha_bar(0).sqrt(), plain.alpha_bar(0).sqrt()) < 1e-15);
        // The knots reproduce the rescaled table, the last one included.
        for i in 0..N - 1 {
            let t = s.timestep_to_t(i);
            let a = s.mean_coef(t);
            assert!(rel_err(a * a, s.alpha_bar(i)) < 1e-12, "{kind:?} i={i}");
            assert!(rel_err(s.variance(t), 1.0 - s.alpha_bar(i)) < 1e-12);
        }
        // Pure noise at t = 1, exactly.
        assert_eq!(
            (s.mean_coef(1.0), s.std(1.0), s.variance(1.0)),
            (0.0, 1.0, 1.0)
        );
        assert_eq!(s.prior_std(), 1.0);
        assert_eq!(s.log_snr(1.0), f64::NEG_INFINITY);
        assert_eq!(s.log_alpha_bar_at(1.0), f64::NEG_INFINITY);
        assert_eq!(s.sigma(1.0), f64::INFINITY);
        assert!(s.is_pure_noise(1.0));
        assert!(!s.is_pure_noise(s.timestep_to_t(N - 2)));
        assert!(!plain.is_pure_noise(1.0));
    }
    // The named tables are these.
    for (name, kind) in [
        "ddpm-linear-zsnr",
        "ddpm-scaled-linear-zsnr",
        "ddpm-cosine-zsnr",
    ]
    .into_iter()
    .zip(kinds())
    {
        let (named, s) = (named::by_name(name).unwrap(), zsnr(kind));
        assert_eq!(named::entry(name).unwrap().num_train, Some(N));
        for t in [0.001, 0.3, 0.9991, 0.9995, 1.0] {
            assert_eq!(named.mean_coef(t), s.mean_coef(t), "{name} t={t}");
            assert_eq!(named.std(t), s.std(t), "{name} t={t}");
        }
    }
}

#[test]
fn the_last_segment_is_linear_in_a() {
    let n = N as f64;
    for kind in kinds() {
        let s = zsnr(kind);
        let t0 = s.timestep_to_t(N - 2);
        let a_left = s.alpha_bar(N - 2).sqrt();
        // ȧ: one constant on the segment, −N·a(t_{N−2}).
        let da = s.mean_coef_dt(1.0);
        assert!(rel_err(da, -n * a_left) < 1e-12, "{kind:?}");
        assert!(rel_err(s.mean_coef(t0), a_left) < 1e-12);
        // Continuous at t_{N−2}: the line starts where the ln ᾱ interpolant ends.
        for d in [1e-15, 1e-12, 1e-9] {
            let right = s.mean_coef(t0 + d);
            assert!(
                (right - s.mean_coef(t0)).abs() <= 2.0 * da.abs() * d,
                "{kind:?} d={d}"
            );
        }
        // A line from a(t_{N−2}) to 0: its midpoint, its constant slope.
        assert!(rel_err(s.mean_coef(t0 + 0.5 / n), 0.5 * s.mean_coef(t0)) < 1e-12);
        for k in 1..=8 {
            let t = t0 + f64::from(k) / (8.0 * n);
            assert_eq!(s.mean_coef_dt(t), da, "{kind:?} k={k}");
            // Rates, F, g² and dλ/dt against central differences strictly inside.
            if k < 8 {
                let h = 1e-4 / n;
                let fd = |f: &dyn Fn(f64) -> f64| (f(t + h) - f(t - h)) / (2.0 * h);
                assert!(rel_err(s.mean_coef_dt(t), fd(&|u| s.mean_coef(u))) < 1e-8);
                // b = √(1 − a²) ≈ 1 − 2e-9 here: its differences cancel unless the step
                // is wide (b is smooth on the whole segment, so a wide one is fine).
                let wide = 1.0 / (16.0 * n);
                let fd_b = (s.std(t + wide) - s.std(t - wide)) / (2.0 * wide);
                assert!(rel_err(s.std_dt(t), fd_b) < 1e-5, "{kind:?} k={k}");
                let dlna = fd(&|u| s.mean_coef(u).ln());
                assert!(rel_err(s.drift_coef(t), dlna) < 1e-6, "{kind:?} k={k}");
                let g2 = fd(&|u| s.variance(u)) - 2.0 * s.drift_coef(t) * s.variance(t);
                assert!(rel_err(s.diffusion_sq(t), g2) < 1e-6, "{kind:?} k={k}");
                assert!(rel_err(s.diffusion(t).powi(2), s.diffusion_sq(t)) < 1e-14);
                let dlam = fd(&|u| s.log_snr(u));
                assert!(rel_err(s.dlog_snr_dt(t), dlam) < 1e-6, "{kind:?} k={k}");
                let want = -s.diffusion_sq(t) / (2.0 * s.variance(t));
                assert!(rel_err(s.dlog_snr_dt(t), want) < 1e-13, "{kind:?} k={k}");
            }
        }
        // At t = 1: F, g², dλ/dt diverge; ȧ and ḃ = −a·ȧ/b = 0 do not.
        assert!(da.is_finite() && da < 0.0);
        assert_eq!(s.std_dt(1.0), 0.0);
        assert_eq!(s.drift_coef(1.0), f64::NEG_INFINITY);
        assert_eq!(s.diffusion_sq(1.0), f64::INFINITY);
        assert_eq!(s.dlog_snr_dt(1.0), f64::NEG_INFINITY);
        // The segment before keeps the ln ᾱ interpolant: F = ½N·ln(1 − β_{N−2}).
        let f = 0.5 * n * (-s.betas()[N - 2]).ln_1p();
        assert!(rel_err(s.drift_coef(t0), f) < 1e-9);
        assert!(rel_err(s.drift_coef(t0 - 0.5 / n), f) < 1e-9);
        // λ strictly decreasing on the last segment down to −∞, inverted to 1e-12.
        let grid: Vec<f64> = (0..=1000)
            .map(|j| t0 + f64::from(j) / (1000.0 * n))
            .collect();
        let lam: Vec<f64> = grid.iter().map(|&t| s.log_snr(t)).collect();
        assert!(lam.windows(2).all(|w| w[0] > w[1]), "{kind:?}");
        for (&t, &l) in grid.iter().zip(&lam) {
            let back = s.t_of_log_snr(l);
            assert!((back - t).abs() <= 1e-12, "{kind:?} t={t}: {back}");
        }
        assert_eq!(s.t_of_log_snr(f64::NEG_INFINITY), 1.0);
        // Very negative λ: a = e^λ to first order, a time just below 1 (a spacing of f64
        // near 1 is 1.1e-16, so λ(t) comes back to ~1e-7 at λ = −20).
        for lambda in [-12.0, -16.0, -20.0] {
            let t = s.t_of_log_snr(lambda);
            assert!(t > t0 && t < 1.0, "{kind:?} λ={lambda}: t = {t}");
            assert!((s.log_snr(t) - lambda).abs() < 1e-6, "{kind:?} λ={lambda}");
        }
        assert_eq!(s.t_of_log_snr(-1e3), 1.0);
        // And everywhere else, crossing every knot (as for the plain tables).
        let grid: Vec<f64> = (1..=4 * N).map(|j| j as f64 / (4 * N) as f64).collect();
        let lam: Vec<f64> = grid.iter().map(|&t| s.log_snr(t)).collect();
        assert!(lam.windows(2).all(|w| w[0] > w[1]), "{kind:?}");
        for (&t, &l) in grid.iter().zip(&lam) {
            assert!((s.t_of_log_snr(l) - t).abs() <= 1e-10, "{kind:?} t={t}");
        }
    }
}

#[test]
fn rates_off_the_pure_noise_segment_are_the_trait_defaults_bit_for_bit() {
    // Tables that do not end at pure noise (and the other segments of those that do) keep
    // ȧ = F·a and ḃ = (g² + 2F·b²)/(2b), to the bit.
    let plain = kinds().map(|k| DiscreteSchedule::new(k, N).unwrap());
    let rescaled = kinds().map(zsnr);
    for s in plain.iter().chain(&rescaled) {
        let end = if s.ends_at_pure_noise() { 0.998 } else { 1.0 };
        for j in 1..=997 {
            let t = end * f64::from(j) / 997.0;
            let b2 = s.variance(t);
            let db = (s.diffusion_sq(t) + 2.0 * s.drift_coef(t) * b2) / (2.0 * b2.sqrt());
            assert_eq!(s.mean_coef_dt(t), s.drift_coef(t) * s.mean_coef(t), "t={t}");
            assert_eq!(s.std_dt(t), db, "t={t}");
        }
    }
}

#[path = "common/from_pure_noise.rs"]
mod from_pure_noise;
use from_pure_noise::{
    eps_prediction_is_refused, every_sampler_reaches_the_exact_second_moment, start,
};

#[test]
fn every_sampler_starts_at_pure_noise_on_trailing_timesteps() {
    // Lin et al.'s setting: the scaled-linear table rescaled to zero terminal SNR, 200
    // trailing timesteps from t = 1 (pure noise) down to timestep 0, x_T = b(T)·ε with
    // b(T) = 1, the exact posterior-mean oracle (it predicts x̂_0 there). Every sampler
    // stays finite and reaches the exact E|x|² within 5 standard errors plus 2 %.
    let sde = named::by_name("ddpm-scaled-linear-zsnr").unwrap();
    let grid = trailing(200);
    let ts = grid.times(&sde).unwrap();
    assert_eq!((ts[0], ts[ts.len() - 1]), (1.0, 1.0 / N as f64));
    assert!(sde.is_pure_noise(ts[0]));
    every_sampler_reaches_the_exact_second_moment(
        "ddpm-scaled-linear-zsnr",
        &sde,
        &mixture(),
        &grid,
        4000,
    );
}

#[test]
fn eps_prediction_is_refused_at_the_pure_noise_end() {
    // x̂_0 = (x − b·ε̂)/a has no value at a(T) = 0: Lin et al. sample such tables with v
    // (or x0) prediction. An ε-model is refused in one line, not run into NaNs.
    let sde = named::by_name("ddpm-scaled-linear-zsnr").unwrap();
    eps_prediction_is_refused(&sde, &trailing(10));
}

/// Convergence orders from pure noise on `ddpm-linear-zsnr`, x_T = b(T)·ε, the exact
/// oracle, max error over 64 trajectories against an adaptive reference.
///
/// The reference is RK45 at rtol = atol = 1e-12, not 1e-10 as on smooth kernels: the
/// embedding has a kink at each of the 1000 knots (F piecewise constant), which RK45 in `t`
/// crosses with a local error its estimate misses; at 1e-10 it is off by ~4e-5 (measured
/// 3.7e-5 here, as large as DPM-Solver-2's error at 800 steps). At 1e-12 it agrees with
/// DPM-Solver++(3M) at 10⁴ uniform steps (a method in λ, blind to the kinks) to ~1e-7,
/// which is checked.
///
/// Measured (orders: least-squares slope over the four step counts):
///
/// | grid                      | Euler | DDIM | DPM-1 | Heun  | DPM-2 | ++2M | ++3M |
/// |---------------------------|-------|------|-------|-------|-------|------|------|
/// | trailing 125/250/500/1000 | 0.99  | 1.03 | 1.03  | 0.03  | 1.91  | 1.99 | 2.75 |
/// | uniform 200/400/800/1600  | 1.07  | 1.07 | 1.07  | 1.84  | 1.97  | 2.03 | 2.86 |
///
/// DDIM and the DPM-Solvers step in λ and see the kernel only through `a`, `b` at the grid
/// times: the PF-ODE's solution as a function of λ is smooth, so the kinks in λ(t) do not
/// touch them. Heun integrates the ODE in `t`, whose right-hand side jumps at every knot:
/// on trailing grids every grid time is a knot and Heun's corrector takes the slope at the
/// step's lower end from the segment below it, outside the step, an O(1/N_train) bias
/// that no step count removes (its error stays at 4.8e-3 from 125 to 1000 steps, as on
/// the plain `ddpm-linear` table); on uniform grids the knots fall inside steps and it
/// measures 1.84 here, but 1.45 (scaled-linear) and 1.36 (cosine) on the other rescaled
/// tables. So Heun is held to its error (below 1e-2) on trailing grids and to at least
/// first order on uniform grids, not to 2. (Fewer trailing steps, 25–200, are still
/// pre-asymptotic for the first-order methods: DDIM 0.54 there.)
#[test]
fn deterministic_samplers_converge_at_their_orders_on_a_zero_snr_table() {
    let mix = mixture();
    let sde = named::by_name("ddpm-linear-zsnr").unwrap();
    let model = mix.model(&sde);
    let x_t = start(&sde, 64);
    let run = |sampler: Sampler, grid: &TimeGrid| {
        let mut noise = Noise::new(1, 0, 64, &[2], &Device::Cpu);
        sampler
            .sample(&sde, &model, &x_t, grid, &mut noise)
            .unwrap()
            .x
    };
    let rk45 = |tol: f64| Sampler::Rk45 {
        rtol: tol,
        atol: tol,
    };
    let reference = run(rk45(1e-12), &TimeGrid::uniform(100));
    let check = max_abs(
        &run(Sampler::DpmPp3m, &TimeGrid::uniform(10_000)),
        &reference,
    );
    println!("reference vs DPM-Solver++(3M) at 10^4 steps: {check:.2e}");
    assert!(check < 1e-6, "the reference is off by {check}");

    let heun = Sampler::by_name("heun").unwrap();
    let cases = [
        (Sampler::OdeEuler, 1.0),
        (Sampler::Ddim { eta: 0.0 }, 1.0),
        (Sampler::Dpm1, 1.0),
        (heun, 2.0),
        (Sampler::Dpm2, 2.0),
        (Sampler::DpmPp2m, 2.0),
        (Sampler::DpmPp3m, 3.0),
    ];
    type Grid = fn(usize) -> TimeGrid;
    let grids: [(&str, [usize; 4], Grid); 2] = [
        ("trailing", [125, 250, 500, 1000], trailing),
        ("uniform", [200, 400, 800, 1600], TimeGrid::uniform),
    ];
    for (grid_name, steps, grid) in grids {
        for (sampler, want) in cases {
            let errs: Vec<f64> = steps
                .iter()
                .map(|&n| max_abs(&run(sampler, &grid(n)), &reference))
                .collect();
            let got = order(&steps, &errs);
            let shown: Vec<String> = errs.iter().map(|e| format!("{e:.2e}")).collect();
            println!("{grid_name} {sampler}: {} order {got:.2}", shown.join(" "));
            if sampler != heun {
                assert!(
                    (got - want).abs() <= 0.3,
                    "{grid_name} {sampler}: order {got:.2}, want {want}"
                );
            } else if grid_name == "trailing" {
                assert!(
                    errs.iter().all(|&e| e < 1e-2),
                    "trailing heun: errors {errs:?}"
                );
            } else {
                assert!(got >= 0.7, "uniform heun: order {got:.2}");
            }
        }
    }
}
