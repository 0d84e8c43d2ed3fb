//! Kernels that reach pure noise, a(T) = 0 (rectified flow, TrigFlow): every sampler
//! starts exactly at T from x_T = b(T)·ε with the exact posterior-mean oracle and stays
//! finite; the deterministic ones converge at their orders.

// Generated code names `::sbdm::__private`.
extern crate sbdm_runtime as sbdm;

use candle_core::Device;
use sbdm_runtime::model::prediction::Prediction;
use sbdm_runtime::model::{Condition, ScoreModel};
use sbdm_runtime::sampling::noise::Noise;
use sbdm_runtime::sampling::{Sampler, TimeGrid};
use sbdm_runtime::sde::builtin::{RectifiedFlow, TrigFlow};
use sbdm_runtime::sde::{DynSde, GaussianKernel, Sde};

sbdm_runtime::sde! {
    /// Rectified flow on [1e-3, 1]: pure noise at t = 1.
    pub struct Rf {
        time = [1e-3, 1.0];
        mean = 1.0 - t;
        std = t;
    }
}

sbdm_runtime::sde! {
    /// TrigFlow written so that a(1) = 0 exactly: a = sin(π(1 − t)/2).
    pub struct ExactTrig {
        time = [1e-3, 1.0];
        mean = (0.5 * PI * (1.0 - t)).sin();
        std = (0.5 * PI * t).sin();
    }
}

#[path = "common/from_pure_noise.rs"]
mod from_pure_noise;
use from_pure_noise::{
    eps_prediction_is_refused, every_sampler_reaches_the_exact_second_moment, start,
};

#[test]
fn every_sampler_starts_at_pure_noise() {
    // From x_T = b(T)·ε exactly at T, with the exact posterior-mean oracle: every sampler
    // stays finite and, at 200 steps, reaches the data's E|x|² within 5 standard errors of
    // the sample plus 2 % (the discretisation bias allowed; the deterministic samplers'
    // errors at 200 steps are below 1e-2, see the order test).
    // The built-in TrigFlow's a(1) = cos(π/2) is 6e-17, not 0: pure noise all the same.
    for (name, sde) in [
        ("rf", &Rf as &dyn GaussianKernel),
        ("trigflow", &TrigFlow),
        ("trig with a(1) = 0", &ExactTrig),
    ] {
        assert!(sde.is_pure_noise(sde.time_range().1), "{name}");
        every_sampler_reaches_the_exact_second_moment(
            name,
            sde,
            &mixture(),
            &TimeGrid::uniform(200),
            4000,
        );
    }
}

#[test]
fn eps_prediction_is_refused_where_it_would_divide_by_a() {
    // An ε-model's x_0 = (x − b·ε)/a has no value at a(T) = 0: one clear error, not a
    // non-finite state; the same model is fine on a kernel that ends before pure noise.
    eps_prediction_is_refused(&Rf, &TimeGrid::uniform(10));
}

#[path = "common/orders.rs"]
mod orders;
use orders::{max_abs, order, three_components as mixture};

/// Measured convergence orders from pure noise (uniform grid, 50–400 steps, max error
/// against RK45 at rtol 1e-10 from the same x_T) within ±0.3 of each method's order: the
/// first step from a(T) = 0 in its finite form (velocity or data prediction) keeps them.
#[test]
fn deterministic_samplers_converge_at_their_orders_from_pure_noise() {
    let mix = mixture();
    let steps = [50usize, 100, 200, 400];
    let shifted = shifted_rf(3.0);
    for (name, sde) in [
        ("rf", &Rf as &dyn GaussianKernel),
        ("trigflow", &TrigFlow),
        ("rf shifted by 3", &shifted),
    ] {
        let model = mix.model(sde); // x̂_0 where a(T) = 0
        let x_t = start(&sde, 64);
        let run = |sampler: Sampler, n: usize| {
            let mut noise = Noise::new(1, 0, 64, &[2], &Device::Cpu);
            sampler
                .sample(&sde, &model, &x_t, &TimeGrid::uniform(n), &mut noise)
                .unwrap()
                .x
        };
        let reference = run(
            Sampler::Rk45 {
                rtol: 1e-10,
                atol: 1e-10,
            },
            100,
        );
        if name == "rf" {
            // On rectified flow DDIM(η = 0) is the flow-matching Euler step
            // x ← x + (t_next − t)·v: the same numbers as the PF-ODE's Euler.
            let gap = max_abs(
                &run(Sampler::Ddim { eta: 0.0 }, 50),
                &run(Sampler::OdeEuler, 50),
            );
            assert!(gap < 1e-12, "DDIM vs flow Euler on rf: {gap}");
        }
        let heun = Sampler::by_name("heun").unwrap();
        for (sampler, want) in [
            (Sampler::OdeEuler, 1.0),
            (Sampler::Ddim { eta: 0.0 }, 1.0),
            (Sampler::Dpm1, 1.0),
            (heun, 2.0),
            (Sampler::Dpm2, 2.0),
            (Sampler::DpmPp2m, 2.0),
            (Sampler::DpmPp3m, 3.0),
        ] {
            let errs: Vec<f64> = steps
                .iter()
                .map(|&n| max_abs(&run(sampler, n), &reference))
                .collect();
            let got = order(&steps, &errs);
            println!("{name} {sampler}: {errs:?} order {got:.2}");
            assert!(
                (got - want).abs() <= 0.3,
                "{name} {sampler}: order {got:.2}, want {want}"
            );
        }
    }
}

#[test]
fn the_posterior_mean_oracle_is_tweedie_of_the_score() {
    // Where a > 0, E[x_0 | x_t] = (x + b²·∇log p_t(x))/a (Tweedie), unconditionally and
    // per component; at a = 0 it is the data mean (per component, μ_k).
    use sbdm_runtime::sde::builtin::VpSde;
    let mix = mixture();
    let vp = VpSde::default();
    let x = start(&vp, 16);
    let labels: Vec<u32> = (0..16).map(|i| i % 3).collect();
    for cond in [
        Condition::None,
        Condition::classes(&labels, &Device::Cpu).unwrap(),
    ] {
        for t in [0.05, 0.5, 0.9] {
            let (a, b) = (vp.mean_coef(t), vp.std(t));
            let s = mix.model(&vp).forward_at(&x, t, &cond).unwrap();
            let tweedie = ((&x + (s * (b * b)).unwrap()).unwrap() / a).unwrap();
            let x0 = mix
                .model(&vp)
                .predicting_x0()
                .forward_at(&x, t, &cond)
                .unwrap();
            assert!(max_abs(&x0, &tweedie) < 1e-10, "t = {t}");
        }
    }
    let x0 = mix
        .model(&Rf)
        .forward_at(&x, 1.0, &Condition::None)
        .unwrap();
    let mean: Vec<f64> = (0..2)
        .map(|i| (0..3).map(|k| mix.weights()[k] * mix.means()[k][i]).sum())
        .collect();
    for row in x0.to_vec2::<f64>().unwrap() {
        assert!((row[0] - mean[0]).abs() < 1e-12 && (row[1] - mean[1]).abs() < 1e-12);
    }
}

/// The built-in rectified flow shifted by `s` (a declaration derived at run time).
fn shifted_rf(s: f64) -> DynSde {
    DynSde::time_shifted(&RectifiedFlow.source().unwrap(), s).unwrap()
}

#[test]
fn a_shifted_sde_is_its_numeric_composition() {
    // τ(t) = s·t/(1 + (s − 1)·t), τ' = s/(1 + (s − 1)·t)²: the shifted declaration's
    // derivation equals the composition a(τ), b(τ), F(τ)·τ', g²(τ)·τ', λ(τ), ȧ(τ)·τ' and
    // τ⁻¹(t(λ)) to 1e-12 (rectified flow: closed forms throughout), and for VP (its
    // shifted kernel by quadrature) to 1e-9; σ' = s·σ, so λ' = λ − ln s on RF.
    use sbdm_runtime::sde::builtin::VpSde;
    let s = 3.0;
    let tau = |t: f64| s * t / (1.0 + (s - 1.0) * t);
    let dtau = |t: f64| s / (1.0 + (s - 1.0) * t).powi(2);
    let vp = VpSde::default();
    let shifted_vp = DynSde::time_shifted(&vp.source().unwrap(), s).unwrap();
    let shifted = shifted_rf(s);
    let cases: [(&dyn GaussianKernel, &dyn GaussianKernel, f64); 2] =
        [(&RectifiedFlow, &shifted, 1e-12), (&vp, &shifted_vp, 1e-9)];
    for (base, shifted, tol) in cases {
        let close = |u: f64, v: f64, what: &str, t: f64| {
            assert!(
                (u - v).abs() <= tol * v.abs().max(1.0),
                "{} {what} at t = {t}: {u} vs {v}",
                base.name()
            )
        };
        let (t0, t1) = shifted.time_range();
        assert!((tau(t0) - base.time_range().0).abs() < 1e-15 && t1 == 1.0);
        for i in 0..50 {
            let t = t0 + (0.999 - t0) * f64::from(i) / 49.0;
            let u = tau(t);
            close(shifted.mean_coef(t), base.mean_coef(u), "a", t);
            close(shifted.std(t), base.std(u), "b", t);
            close(shifted.drift_coef(t), base.drift_coef(u) * dtau(t), "F", t);
            close(
                shifted.diffusion_sq(t),
                base.diffusion_sq(u) * dtau(t),
                "g²",
                t,
            );
            close(shifted.log_snr(t), base.log_snr(u), "λ", t);
            close(
                shifted.mean_coef_dt(t),
                base.mean_coef_dt(u) * dtau(t),
                "ȧ",
                t,
            );
            close(shifted.std_dt(t), base.std_dt(u) * dtau(t), "ḃ", t);
            let lambda = shifted.log_snr(t);
            close(shifted.t_of_log_snr(lambda), t, "t(λ)", t);
        }
    }
    let t = 0.4;
    assert!((shifted.log_snr(t) - (RectifiedFlow.log_snr(t) - s.ln())).abs() < 1e-12);
}

#[test]
fn bad_shifts_are_refused() {
    use sbdm_runtime::sde::builtin::EdmSde;
    let rf = RectifiedFlow.source().unwrap();
    for s in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let err = DynSde::time_shifted(&rf, s).unwrap_err().to_string();
        assert!(err.contains("must be finite and > 0"), "{s}: {err}");
    }
    let err = DynSde::time_shifted(&EdmSde::default().source().unwrap(), 3.0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("ends at T"), "{err}");
}

#[test]
fn denoising_at_the_end_is_the_flow_samplers_last_step_to_zero() {
    // Flow samplers end with an Euler step of the velocity to t = 0: x − t·u. On rectified
    // flow that is exactly x̂_0 (u = ε̂ − x̂_0, x = (1 − t)·x̂_0 + t·ε̂), which is what
    // `Sampled::denoise` (`sbdm sample --denoise`) returns: the same numbers to 1e-12.
    use sbdm_runtime::model::prediction::{convert, KernelAt};
    use sbdm_runtime::sampling::Sampled;
    let mix = mixture();
    let model = mix.model(&Rf);
    let x_t = start(&Rf, 64);
    let mut noise = Noise::new(1, 0, 64, &[2], &Device::Cpu);
    let sampled = Sampler::OdeEuler
        .sample(&Rf, &model, &x_t, &TimeGrid::uniform(50), &mut noise)
        .unwrap();
    let (x, t) = (sampled.x.clone(), sampled.t);
    let denoised: Sampled = sampled.denoise(&Rf, &model).unwrap();
    assert_eq!(denoised.t, 0.0);
    let x0 = mix
        .model(&Rf)
        .predicting_x0()
        .forward_at(&x, t, &Condition::None)
        .unwrap();
    let k = KernelAt::with_rates(&Rf, t);
    let u = convert(&x0, Prediction::X0, Prediction::Flow, &x, k).unwrap();
    let euler_to_zero = (&x - (u * t).unwrap()).unwrap();
    assert!(max_abs(&denoised.x, &euler_to_zero) < 1e-12);
}
