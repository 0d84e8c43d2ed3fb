//! Every built-in and several SDEs declared here: the derived kernel a(t), b(t) must
//! agree with a numerical integration of the moment ODEs
//!     m' = F m,  v' = 2 F v + g^2,  m(0) = 1, v(0) = b(0)^2
//! to rel 1e-9 at >= 50 times; kernel-form SDEs' derived F and g^2 must agree with
//! central finite differences of ln a and b^2.

use sbdm::prelude::*;

sde! {
    /// Quadratic beta: beta(t) = b0 + b2 t^2.
    pub struct QuadBeta {
        params { b0: f64 = 0.1, b2: f64 = 15.0 }
        time = [1e-3, 1.0];
        let beta = b0 + b2 * t.powi(2);
        drift = -0.5 * beta * x;
        diffusion = beta.sqrt();
    }
}

sde! {
    /// Exponential beta: beta(t) = c e^{k t}.
    pub struct ExpBeta {
        params { c: f64 = 0.5, k: f64 = 3.0 }
        time = [1e-3, 1.0];
        let beta = c * (k * t).exp();
        drift = -0.5 * beta * x;
        diffusion = beta.sqrt();
    }
}

sde! {
    /// Constant beta.
    pub struct ConstBeta {
        params { beta: f64 = 4.0 }
        time = [1e-3, 1.0];
        drift = -0.5 * beta * x;
        diffusion = beta.sqrt();
    }
}

sde! {
    /// A tanh schedule: beta(t) = b0 + b1 tanh(k t).
    pub struct TanhBeta {
        params { b0: f64 = 0.2, b1: f64 = 10.0, k: f64 = 4.0 }
        time = [1e-3, 1.0];
        let beta = b0 + b1 * (k * t).tanh();
        drift = -0.5 * beta * x;
        diffusion = beta.sqrt();
    }
}

sde! {
    /// Linear interpolation (rectified-flow kernel): a = 1 - t, b = t.
    pub struct LinearKernel {
        time = [1e-3, 0.999];
        mean = 1.0 - t;
        std = t;
    }
}

sde! {
    /// A VP kernel with a Gaussian-shaped alpha_bar: a = exp(-k t^2), b = sqrt(1 - a^2).
    pub struct GaussKernel {
        params { k: f64 = 3.0 }
        time = [1e-3, 1.0];
        let a = (-k * t * t).exp();
        mean = a;
        std = (1.0 - a * a).sqrt();
    }
}

sde! {
    /// No closed form: beta(t) = b0 + exp(t^2) needs quadrature.
    pub struct ErfBeta {
        params { b0: f64 = 0.5 }
        time = [1e-3, 1.0];
        let beta = b0 + (t * t).exp();
        drift = -0.5 * beta * x;
        diffusion = beta.sqrt();
    }
}

/// Integrates the moment ODEs with classic RK4 on a fine uniform grid from 0 to T and
/// compares at 64 times in [t_min, T]. Returns the worst relative errors of (a, b).
fn moment_errors(sde: &dyn GaussianKernel, v0: f64) -> (f64, f64) {
    let (t_min, t_max) = sde.time_range();
    let n = 200_000usize;
    let h = t_max / n as f64;
    let rhs = |t: f64, m: f64, v: f64| {
        let f = sde.drift_coef(t);
        (f * m, 2.0 * f * v + sde.diffusion_sq(t))
    };
    let checks: Vec<usize> = (0..64)
        .map(|i| {
            let t = t_min + (t_max - t_min) * i as f64 / 63.0;
            ((t / h).round() as usize).clamp(1, n)
        })
        .collect();
    let (mut m, mut v) = (1.0, v0);
    let (mut ea, mut eb) = (0.0f64, 0.0f64);
    for k in 0..n {
        let t = k as f64 * h;
        let (m1, v1) = rhs(t, m, v);
        let (m2, v2) = rhs(t + h / 2.0, m + h / 2.0 * m1, v + h / 2.0 * v1);
        let (m3, v3) = rhs(t + h / 2.0, m + h / 2.0 * m2, v + h / 2.0 * v2);
        let (m4, v4) = rhs(t + h, m + h * m3, v + h * v3);
        m += h / 6.0 * (m1 + 2.0 * m2 + 2.0 * m3 + m4);
        v += h / 6.0 * (v1 + 2.0 * v2 + 2.0 * v3 + v4);
        if checks.contains(&(k + 1)) {
            let t = (k + 1) as f64 * h;
            ea = ea.max(((sde.mean_coef(t) - m) / m).abs());
            eb = eb.max(((sde.std(t) - v.sqrt()) / v.sqrt()).abs());
        }
    }
    (ea, eb)
}

fn assert_moments(sde: &dyn GaussianKernel, v0: f64) {
    let (ea, eb) = moment_errors(sde, v0);
    assert!(
        ea < 1e-9 && eb < 1e-9,
        "{}: a rel err {ea:e}, b rel err {eb:e}",
        sde.name()
    );
}

#[test]
fn vp_moments() {
    assert_moments(&VpSde::default(), 0.0);
    assert_moments(
        &VpSde {
            beta_max: 10.0,
            ..Default::default()
        },
        0.0,
    );
}

#[test]
fn subvp_moments() {
    assert_moments(&SubVpSde::default(), 0.0);
}

#[test]
fn ve_moments() {
    // score_sde's VE kernel keeps the data smoothing at sigma_min: b(0) = sigma_min.
    let ve = VeSde::default();
    assert_moments(&ve, ve.sigma_min * ve.sigma_min);
}

#[test]
fn edm_moments() {
    assert_moments(&EdmSde::default(), 0.0);
}

#[test]
fn cosine_moments() {
    assert_moments(&CosineSde::default(), 0.0);
}

#[test]
fn declared_sde_moments() {
    assert_moments(&QuadBeta::default(), 0.0);
    assert_moments(&ExpBeta::default(), 0.0);
    assert_moments(&ConstBeta::default(), 0.0);
    assert_moments(&TanhBeta::default(), 0.0);
    assert_moments(&LinearKernel, 0.0);
    assert_moments(&GaussKernel::default(), 0.0);
    assert_moments(&ErfBeta::default(), 0.0);
}

#[test]
fn non_default_params_stay_symbolic() {
    assert_moments(&QuadBeta { b0: 0.3, b2: 5.0 }, 0.0);
    assert_moments(
        &TanhBeta {
            k: 1.5,
            ..Default::default()
        },
        0.0,
    );
    assert_moments(&GaussKernel { k: 1.0 }, 0.0);
}

/// F = d ln a/dt and g^2 = d(b^2)/dt - 2 F b^2 by central differences.
fn assert_kernel_coefs_match_fd(sde: &dyn GaussianKernel) {
    let (t0, t1) = sde.time_range();
    let h = 1e-5 * (t1 - t0);
    for i in 1..50 {
        let t = t0 + (t1 - t0) * i as f64 / 50.0;
        let f_fd = (sde.mean_coef(t + h).ln() - sde.mean_coef(t - h).ln()) / (2.0 * h);
        let db2 = (sde.variance(t + h) - sde.variance(t - h)) / (2.0 * h);
        let g2_fd = db2 - 2.0 * f_fd * sde.variance(t);
        let (f, g2) = (sde.drift_coef(t), sde.diffusion_sq(t));
        assert!(
            (f - f_fd).abs() <= 1e-6 * f.abs().max(1.0),
            "{} F at {t}: {f} vs {f_fd}",
            sde.name()
        );
        assert!(
            (g2 - g2_fd).abs() <= 1e-6 * g2.abs().max(1.0),
            "{} g^2 at {t}: {g2} vs {g2_fd}",
            sde.name()
        );
    }
}

#[test]
fn kernel_forms_match_finite_differences() {
    assert_kernel_coefs_match_fd(&CosineSde::default());
    assert_kernel_coefs_match_fd(&EdmSde::default());
    assert_kernel_coefs_match_fd(&LinearKernel);
    assert_kernel_coefs_match_fd(&GaussKernel::default());
    assert_kernel_coefs_match_fd(&VeSde::default());
}

/// log_snr, its derivative and its inverse are consistent on every SDE.
fn assert_log_snr(sde: &dyn GaussianKernel) {
    let (t0, t1) = sde.time_range();
    for i in 0..=50 {
        let t = t0 + (t1 - t0) * i as f64 / 50.0;
        let lam = sde.log_snr(t);
        let expect = (sde.mean_coef(t) / sde.std(t)).ln();
        assert!(
            (lam - expect).abs() <= 1e-10 * expect.abs().max(1.0),
            "{} λ at {t}",
            sde.name()
        );
        let back = sde.t_of_log_snr(lam);
        assert!(
            (back - t).abs() <= 1e-9 * t.max(1.0),
            "{} t(λ(t)) = {back} at t = {t}",
            sde.name()
        );
        if i > 0 && i < 50 {
            let h = 1e-6 * (t1 - t0);
            let fd = (sde.log_snr(t + h) - sde.log_snr(t - h)) / (2.0 * h);
            let d = sde.dlog_snr_dt(t);
            assert!(
                (d - fd).abs() <= 1e-5 * d.abs().max(1.0),
                "{} dλ/dt at {t}: {d} vs {fd}",
                sde.name()
            );
        }
    }
}

#[test]
fn log_snr_and_inverse() {
    let all: [&dyn GaussianKernel; 12] = [
        &VpSde::default(),
        &SubVpSde::default(),
        &VeSde::default(),
        &EdmSde::default(),
        &CosineSde::default(),
        &QuadBeta::default(),
        &ExpBeta::default(),
        &ConstBeta::default(),
        &TanhBeta::default(),
        &LinearKernel,
        &GaussKernel::default(),
        &ErfBeta::default(),
    ];
    for sde in all {
        assert_log_snr(sde);
    }
}

#[test]
fn closed_forms_where_expected() {
    for d in [
        VpSde::derivation(),
        VeSde::derivation(),
        EdmSde::derivation(),
        ConstBeta::derivation(),
    ] {
        assert!(d.is_closed_form(), "{d}");
    }
    assert!(!ErfBeta::derivation().is_closed_form());
    // A cubic ∫β has a closed-form kernel, but t(λ) needs the bracketed solve.
    assert_eq!(QuadBeta::derivation().numeric_parts(), ["t_of_log_snr"]);
    assert_eq!(VpSde::CLOSED_FORM, VpSde::derivation().is_closed_form());
    let d = ErfBeta::derivation();
    assert!(d.numeric_parts().contains(&"a"), "{d}");
    assert!(d.to_string().contains("[numeric]"));
}
