//! Accuracy of the numeric fallbacks against closed forms.

use sbdm_symbolic::numeric::{
    integrate, integrate_with_error, integrate_with_tol, invert_monotone,
};

fn rel_err(got: f64, want: f64) -> f64 {
    (got - want).abs() / want.abs().max(f64::MIN_POSITIVE)
}

#[test]
fn gaussian_integrand_matches_erf() {
    // ∫_0^1 exp(−s²) ds = (√π/2)·erf(1) = 0.74682413281242702539946743613185…
    // (mpmath: quad(lambda s: exp(-s**2), [0, 1]) with mp.dps = 30).
    let got = integrate(|s: f64| (-s * s).exp(), 0.0, 1.0);
    assert!(rel_err(got, 0.746_824_132_812_427) < 1e-14, "{got}");
}

#[test]
fn vp_integrands_match_closed_forms() {
    // VP with linear β(s) = β0 + (β1 − β0)s, B(t) = ∫_0^t β = β0 t + ½(β1 − β0)t².
    let (b0, b1) = (0.1, 20.0);
    let beta = |s: f64| b0 + (b1 - b0) * s;
    let big_b = |t: f64| b0 * t + 0.5 * (b1 - b0) * t * t;
    for &t in &[1e-3, 0.1, 0.5, 1.0] {
        // ∫_0^t β(s)·exp(B(s)) ds = exp(B(t)) − 1.
        let got = integrate(|s| beta(s) * big_b(s).exp(), 0.0, t);
        assert!(rel_err(got, big_b(t).exp_m1()) < 1e-12, "t={t}: {got}");
        // The kernel variance b(t)² = a(t)²∫_0^t g²/a² ds = 1 − exp(−B(t)).
        let a2 = (-big_b(t)).exp();
        let got = a2 * integrate(|s| beta(s) * big_b(s).exp(), 0.0, t);
        assert!(rel_err(got, -(-big_b(t)).exp_m1()) < 1e-12, "t={t}: {got}");
        // a(t) = exp(∫_0^t F), F = −½β.
        let got = integrate(|s| -0.5 * beta(s), 0.0, t);
        assert!(rel_err(got, -0.5 * big_b(t)) < 1e-13, "t={t}: {got}");
    }
}

#[test]
fn ve_integrand_matches_closed_form() {
    // VE: σ(t) = σmin·r^t, r = σmax/σmin; ∫_0^1 σmin²·r^{2s} ds = σmin²(r² − 1)/(2 ln r).
    let (smin, smax) = (0.01_f64, 50.0_f64);
    let r = smax / smin;
    let got = integrate(|s| smin * smin * r.powf(2.0 * s), 0.0, 1.0);
    let want = smin * smin * (r * r - 1.0) / (2.0 * r.ln());
    assert!(rel_err(got, want) < 1e-13, "{got} vs {want}");
}

#[test]
fn polynomials_are_exact() {
    // ∫_0^2 (3s⁵ − 2s² + 1) ds = 32 − 16/3 + 2.
    let got = integrate(|s: f64| 3.0 * s.powi(5) - 2.0 * s * s + 1.0, 0.0, 2.0);
    assert!(rel_err(got, 32.0 - 16.0 / 3.0 + 2.0) < 1e-15, "{got}");
    // K15 integrates degree ≤ 22 exactly: ∫_{-1}^{3} s²⁰ ds = (3²¹ + 1)/21.
    let got = integrate(|s: f64| s.powi(20), -1.0, 3.0);
    assert!(rel_err(got, (3f64.powi(21) + 1.0) / 21.0) < 1e-14, "{got}");
}

#[test]
fn hard_integrands() {
    // A narrow peak: ∫_0^1 exp(−10⁴(s − 0.3)²) ds = √π/100 (tails below 1e-300).
    let got = integrate(|s: f64| (-1e4 * (s - 0.3) * (s - 0.3)).exp(), 0.0, 1.0);
    assert!(
        rel_err(got, std::f64::consts::PI.sqrt() / 100.0) < 1e-12,
        "{got}"
    );
    // Oscillatory with an exact zero: ∫_0^π sin(50s) ds = 0.
    let got = integrate(|s: f64| (50.0 * s).sin(), 0.0, std::f64::consts::PI);
    assert!(got.abs() < 1e-13, "{got}");
    // An endpoint singularity in the derivative: ∫_0^1 √s ds = 2/3.
    let got = integrate(|s: f64| s.sqrt(), 0.0, 1.0);
    assert!(rel_err(got, 2.0 / 3.0) < 1e-12, "{got}");
    // Cosine-schedule style: ∫_0^{0.99} tan(sπ/2) ds = −(2/π) ln cos(0.99π/2).
    let h = std::f64::consts::FRAC_PI_2;
    let got = integrate(|s: f64| (s * h).tan(), 0.0, 0.99);
    assert!(rel_err(got, -(0.99 * h).cos().ln() / h) < 1e-12, "{got}");
}

#[test]
fn limits_and_failures() {
    assert_eq!(integrate(|s: f64| s.exp(), 0.7, 0.7), 0.0);
    let fwd = integrate(|s: f64| s.exp(), 0.0, 1.0);
    let back = integrate(|s: f64| s.exp(), 1.0, 0.0);
    assert_eq!(back, -fwd);
    assert!(rel_err(fwd, 1f64.exp_m1()) < 1e-15);
    // A non-finite integrand value anywhere it is sampled gives NaN.
    assert!(integrate(|s: f64| 1.0 / s, -1.0, 1.0).is_nan());
    assert!(integrate(|s: f64| (s - 0.5).ln(), 0.0, 1.0).is_nan());
    assert!(integrate(|_| f64::NAN, 0.0, 1.0).is_nan());
    assert!(integrate(|s| s, 0.0, f64::INFINITY).is_nan());
    // A divergent integral gives NaN; its raw estimate says how bad it is.
    assert!(integrate(|s: f64| 1.0 / s, 0.0, 1.0).is_nan());
    let (value, error) = integrate_with_error(|s: f64| 1.0 / s, 0.0, 1.0, 1e-13, 0.0);
    assert!(value > 30.0 && error > 1e-3, "{value} ± {error}");
    // An integrable singularity converges well enough: ∫_0^1 s^{-1/2} ds = 2.
    let got = integrate(|s: f64| 1.0 / s.sqrt(), 0.0, 1.0);
    assert!(rel_err(got, 2.0) < 1e-6, "{got}");
    // A loose tolerance still gives a good answer, and costs fewer evaluations.
    let count = std::cell::Cell::new(0);
    let got = integrate_with_tol(
        |s: f64| {
            count.set(count.get() + 1);
            (-s * s).exp()
        },
        0.0,
        5.0,
        1e-6,
        0.0,
    );
    assert!(rel_err(got, 0.886_226_925_452_758) < 1e-6, "{got}");
    assert!(count.get() <= 15 * 8, "{} evaluations", count.get());
}

#[test]
fn inverts_increasing_functions() {
    for &y in &[1e-6, 0.3, 1.0, 8.0, 124.0] {
        let t = invert_monotone(|t: f64| t * t * t, y, 0.0, 5.0);
        assert!((t - y.cbrt()).abs() <= 1e-12 * t.max(1.0), "y={y}: {t}");
    }
    // Small roots come out to full relative precision: ln t = −100.
    let t = invert_monotone(|t: f64| t.ln(), -100.0, 1e-60, 2.0);
    assert!(rel_err(t, (-100f64).exp()) < 1e-14, "{t}");
}

#[test]
fn inverts_decreasing_functions() {
    // The VP half log-SNR λ(t) = ln(a/b) = −½ ln(exp(B(t)) − 1) is decreasing.
    let big_b = |t: f64| 0.1 * t + 9.95 * t * t;
    let lambda = |t: f64| -0.5 * big_b(t).exp_m1().ln();
    for &t0 in &[1e-3, 0.01, 0.2, 0.5, 0.999] {
        let t = invert_monotone(lambda, lambda(t0), 1e-3, 1.0);
        assert!((t - t0).abs() <= 1e-12 * t0.max(1.0), "t0={t0}: {t}");
        assert!(rel_err(t, t0) < 1e-12, "t0={t0}: {t}");
    }
    // Swapped bounds are accepted.
    let t = invert_monotone(|t: f64| (-t).exp(), 0.25, 3.0, 0.0);
    assert!((t - 4f64.ln()).abs() < 1e-15, "{t}");
}

#[test]
fn expands_the_bracket() {
    // Below lo: halve towards zero. exp(t) = 1.001 at t ≈ 1e-3, bracket [0.5, 1].
    let t = invert_monotone(|t: f64| t.exp(), 1.001, 0.5, 1.0);
    assert!(rel_err(t, 1.001f64.ln()) < 1e-14, "{t}");
    // Above hi: double. t² = 1e4 at t = 100, bracket [0, 1].
    let t = invert_monotone(|t: f64| t * t, 1e4, 0.0, 1.0);
    assert!(rel_err(t, 100.0) < 1e-15, "{t}");
    // Decreasing, root below lo.
    let t = invert_monotone(|t: f64| 1.0 / t, 1e5, 0.5, 2.0);
    assert!(rel_err(t, 1e-5) < 1e-14, "{t}");
}

#[test]
fn clamps_unreachable_targets() {
    // Above the range even after expanding to 1e6·hi: the upper endpoint reached.
    assert_eq!(invert_monotone(|t: f64| t.tanh(), 2.0, 0.0, 1.0), 1e6);
    assert_eq!(invert_monotone(|t: f64| -t.tanh(), -2.0, 0.0, 1.0), 1e6);
    // Below the range after expanding down to 0: zero.
    assert_eq!(invert_monotone(|t: f64| t + 1.0, 0.0, 0.5, 1.0), 0.0);
    // lo ≤ 0 is never expanded downwards.
    assert_eq!(invert_monotone(|t: f64| t, -5.0, -1.0, 1.0), -1.0);
    assert_eq!(invert_monotone(|t: f64| t, -5.0, 0.0, 1.0), 0.0);
    // Expansion stops at NaN and keeps the last good endpoint: 0.5 → 1 → 2 (√ of a
    // negative) stops at 1.
    assert_eq!(
        invert_monotone(|t: f64| (1.0 - t).sqrt(), -1.0, 0.0, 0.5),
        1.0
    );
}

#[test]
fn degenerate_inputs_never_panic() {
    assert_eq!(invert_monotone(|t: f64| t, 0.3, 0.7, 0.7), 0.7);
    assert_eq!(invert_monotone(|_| 1.0, 0.3, 0.0, 1.0), 0.0);
    assert!(invert_monotone(|t: f64| t, f64::NAN, 0.0, 1.0).is_nan());
    assert!(invert_monotone(|_| f64::NAN, 0.5, 0.0, 1.0).is_nan());
    // Exact hits at endpoints.
    assert_eq!(invert_monotone(|t: f64| t * t, 4.0, 2.0, 3.0), 2.0);
    assert_eq!(invert_monotone(|t: f64| t * t, 9.0, 2.0, 3.0), 3.0);
    // Infinite values at an endpoint (λ → ∞ as t → 0) are fine.
    let t = invert_monotone(|t: f64| -t.ln(), 3.0, 0.0, 1.0);
    assert!(rel_err(t, (-3f64).exp()) < 1e-14, "{t}");
}

/// The kernel integrals against closed forms: VP (quadratic I) and a drift whose
/// integral needs the ODE pass, checked against nested quadrature.
#[test]
fn kernel_integrals_match_closed_forms_and_nested_quadrature() {
    use sbdm_symbolic::numeric::{integrate, kernel_integrals};
    let (bmin, bmax) = (0.1, 20.0);
    let beta = |s: f64| bmin + s * (bmax - bmin);
    let ts: Vec<f64> = (1..=20).map(|i| i as f64 / 20.0).collect();
    let v = kernel_integrals(|s| -0.5 * beta(s), beta, &ts);
    for (t, (i, k)) in ts.iter().zip(&v) {
        let ii = -0.5 * (bmin * t + 0.5 * (bmax - bmin) * t * t);
        assert!((i - ii).abs() <= 1e-11 * ii.abs().max(1.0), "I({t})");
        let b2 = (2.0 * i).exp() * k;
        let want = 1.0 - (2.0 * ii).exp();
        assert!((b2 - want).abs() <= 1e-10 * want, "b2({t}): {b2} vs {want}");
    }
    // F = -(1 + e^{s^2}) has no elementary integral.
    let f = |s: f64| -(1.0 + (s * s).exp());
    let g2 = |s: f64| 1.0 + s.sin().powi(2);
    let v = kernel_integrals(f, g2, &[0.3, 0.9]);
    for (t, (i, k)) in [0.3, 0.9].iter().zip(&v) {
        let ii = integrate(f, 0.0, *t);
        let kk = integrate(|s| g2(s) * (-2.0 * integrate(f, 0.0, s)).exp(), 0.0, *t);
        assert!((i - ii).abs() <= 1e-11 * ii.abs(), "I");
        assert!((k - kk).abs() <= 1e-10 * kk.abs(), "K: {k} vs {kk}");
    }
    // Bad input: NaN, not a panic.
    assert!(kernel_integrals(|_| f64::NAN, |_| 1.0, &[1.0])[0]
        .0
        .is_nan());
    assert!(kernel_integrals(|_| 1.0, |_| 1.0, &[-1.0])[0].0.is_nan());
}
