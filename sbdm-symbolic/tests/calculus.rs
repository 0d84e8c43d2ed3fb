//! d/dt and ∫dt through the public API: one test per rule, the diffusion SDEs'
//! integrals, integrands that must be refused, and property tests against finite
//! differences.

use proptest::prelude::*;
use sbdm_symbolic::{Expr, Func, Node};

fn t() -> Expr {
    Expr::sym("t")
}
fn sym(name: &str) -> Expr {
    Expr::sym(name)
}
fn num(v: f64) -> Expr {
    Expr::num(v)
}

/// Evaluates with `t` and the given parameter values.
fn at(e: &Expr, tv: f64, env: &[(&str, f64)]) -> f64 {
    let mut b = env.to_vec();
    b.push(("t", tv));
    e.eval_at(&b)
        .unwrap_or_else(|err| panic!("{e:?} at t = {tv}: {err}"))
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs()).max(1.0)
}

/// Central difference with Richardson extrapolation: (estimate, error estimate).
fn fd(f: &dyn Fn(f64) -> Option<f64>, x: f64) -> Option<(f64, f64)> {
    let h = 1e-3 * (1.0 + x.abs());
    let d = |h: f64| Some((f(x + h)? - f(x - h)?) / (2.0 * h));
    let (d1, d2) = (d(h)?, d(h / 2.0)?);
    Some(((4.0 * d2 - d1) / 3.0, (d1 - d2).abs()))
}

/// Composite Simpson's rule on `n` (even) intervals.
fn simpson(f: &dyn Fn(f64) -> f64, a: f64, b: f64, n: usize) -> f64 {
    let h = (b - a) / n as f64;
    let mut s = f(a) + f(b);
    for i in 1..n {
        let w = if i % 2 == 1 { 4.0 } else { 2.0 };
        s += w * f(a + i as f64 * h);
    }
    s * h / 3.0
}

/// `∫ integrand` exists and differentiates back to it (symbolically and by finite
/// differences) at the sample points.
fn check_integral(integrand: &Expr, env: &[(&str, f64)], points: &[f64]) -> Expr {
    let big_f = integrand
        .integrate("t")
        .unwrap_or_else(|e| panic!("{integrand:?}: {e}"));
    let back = big_f.diff("t");
    for &x in points {
        let want = at(integrand, x, env);
        let got = at(&back, x, env);
        assert!(
            close(got, want, 1e-9),
            "d/dt ∫ at {x}: {got} vs {want}\nF = {big_f:?}"
        );
        let f = |y: f64| Some(at(&big_f, y, env));
        let (est, err) = fd(&f, x).unwrap();
        assert!(
            close(est, want, 1e-6) || (est - want).abs() < 10.0 * err,
            "FD of ∫ at {x}: {est} vs {want}"
        );
    }
    big_f
}

/// The definite integral over [lo, hi] matches Simpson's rule.
fn check_definite(integrand: &Expr, env: &[(&str, f64)], lo: f64, hi: f64) {
    let def = integrand
        .integrate_definite("t", &num(lo), &num(hi))
        .unwrap();
    let got = def.eval_at(env).unwrap();
    let want = simpson(&|x| at(integrand, x, env), lo, hi, 20_000);
    assert!(close(got, want, 1e-9), "∫_{lo}^{hi}: {got} vs {want}");
}

const POINTS: [f64; 4] = [0.1, 0.35, 0.7, 0.95];

// ---------------------------------------------------------------- differentiation

#[test]
fn diff_sum_and_product() {
    let e = 3.0 * t() * sym("p") + Expr::powi(t(), 2);
    assert_eq!(e.diff("t"), 3.0 * sym("p") + 2.0 * t());
}

#[test]
fn diff_general_power() {
    // d/dt t^t = t^t (ln t + 1)
    let e = Expr::pow(t(), t());
    for x in [0.3f64, 1.0, 2.5] {
        let want = x.powf(x) * (x.ln() + 1.0);
        assert!(close(at(&e.diff("t"), x, &[]), want, 1e-12));
    }
}

#[test]
fn diff_quotient() {
    let e = t().sin() / (1.0 + Expr::powi(t(), 2));
    let x: f64 = 0.8;
    let want = x.cos() / (1.0 + x * x) - 2.0 * x * x.sin() / (1.0 + x * x).powi(2);
    assert!(close(at(&e.diff("t"), x, &[]), want, 1e-12));
}

#[test]
fn diff_every_function_by_the_chain_rule() {
    // f(0.5 t + 0.1) at t = 0.6 (argument 0.4), acosh at argument 1.4.
    for f in Func::ALL {
        let shift = if f == Func::Acosh { 1.1 } else { 0.1 };
        let e = Expr::func(f, 0.5 * t() + shift);
        let g = |x: f64| Some(f.apply(0.5 * x + shift));
        let (est, err) = fd(&g, 0.6).unwrap();
        let got = at(&e.diff("t"), 0.6, &[]);
        assert!(
            close(got, est, 1e-8) || (got - est).abs() < 10.0 * err,
            "{}: {got} vs {est}",
            f.name()
        );
    }
}

#[test]
fn diff_tan_and_tanh_forms() {
    assert_eq!(t().tan().diff("t"), 1.0 + Expr::powi(t().tan(), 2));
    assert_eq!(t().tanh().diff("t"), 1.0 - Expr::powi(t().tanh(), 2));
}

#[test]
fn diff_cosine_schedule() {
    // a(t) = cos((t + s)/(1 + s) π/2) / cos(s/(1 + s) π/2) (Nichol & Dhariwal)
    let s = sym("s");
    let phase = |x: Expr| (x + &s) / (1.0 + &s) * Expr::pi() * 0.5;
    let a = phase(t()).cos() / phase(num(0.0)).cos();
    let env = [("s", 0.008)];
    let da = a.diff("t");
    for x in POINTS {
        let f = |y: f64| Some(at(&a, y, &env));
        let (est, err) = fd(&f, x).unwrap();
        assert!(close(at(&da, x, &env), est, 1e-8) || (at(&da, x, &env) - est).abs() < 10.0 * err);
    }
    // F = d/dt ln a = -(π/2)/(1+s) tan(phase)
    let big_f = a.ln().diff("t");
    let x = 0.4;
    let want = -(std::f64::consts::FRAC_PI_2 / 1.008)
        * ((x + 0.008) / 1.008 * std::f64::consts::FRAC_PI_2).tan();
    assert!(close(at(&big_f, x, &env), want, 1e-12));
}

// ------------------------------------------------------------------ integration

#[test]
fn integrate_constant() {
    assert_eq!(sym("p").integrate("t").unwrap(), sym("p") * t());
}

#[test]
fn integrate_polynomial() {
    let e = 3.0 * Expr::powi(t(), 2) + 2.0 * sym("p") * t() + 1.0;
    assert_eq!(
        e.integrate("t").unwrap(),
        Expr::powi(t(), 3) + sym("p") * Expr::powi(t(), 2) + t()
    );
}

#[test]
fn integrate_reciprocal_is_ln() {
    assert_eq!(t().recip().integrate("t").unwrap(), t().ln());
}

#[test]
fn integrate_negative_and_fractional_powers() {
    assert_eq!(
        Expr::powi(t(), -2).integrate("t").unwrap(),
        -Expr::powi(t(), -1)
    );
    check_integral(&t().sqrt(), &[], &POINTS);
}

#[test]
fn integrate_exp_of_linear() {
    let e = (2.0 * t() + 1.0).exp();
    assert_eq!(e.integrate("t").unwrap(), 0.5 * e);
}

#[test]
fn integrate_constant_times_exp_of_symbolic_rate() {
    let e = sym("beta") * (sym("c") * t()).exp();
    check_integral(&e, &[("beta", 1.3), ("c", -0.7)], &POINTS);
}

#[test]
fn integrate_constant_base_power() {
    let e = Expr::pow(num(2.0), 3.0 * t());
    check_integral(&e, &[], &POINTS);
    let e = Expr::pow(sym("r"), sym("k") * t());
    check_integral(&e, &[("r", 5.0), ("k", 0.3)], &POINTS);
}

#[test]
fn integrate_polynomial_times_exp_by_parts() {
    let e = Expr::powi(t(), 2) * (-3.0 * t()).exp();
    check_integral(&e, &[], &POINTS);
    check_definite(&e, &[], 0.0, 2.0);
}

#[test]
fn integrate_polynomial_times_trig_by_parts() {
    check_integral(&(t() * t().cos()), &[], &POINTS);
    check_integral(&(Expr::powi(t(), 3) * (2.0 * t()).sin()), &[], &POINTS);
    check_integral(&(t() * t().sinh()), &[], &POINTS);
}

#[test]
fn integrate_cos_of_linear() {
    assert_eq!(
        (2.0 * t()).cos().integrate("t").unwrap(),
        0.5 * (2.0 * t()).sin()
    );
}

#[test]
fn integrate_derivative_divides_cos() {
    let e = 2.0 * t() * Expr::powi(t(), 2).cos();
    assert_eq!(e.integrate("t").unwrap(), Expr::powi(t(), 2).sin());
}

#[test]
fn integrate_derivative_divides_reciprocal() {
    assert_eq!(
        (1.0 + t()).recip().integrate("t").unwrap(),
        (1.0 + t()).ln()
    );
    check_integral(&(2.0 * t() / (Expr::powi(t(), 2) + 1.0)), &[], &POINTS);
}

#[test]
fn integrate_derivative_divides_power() {
    // ∫ 3 t^2 (t^3 + 1)^0.5 = (t^3 + 1)^1.5 / 1.5
    let e = 3.0 * Expr::powi(t(), 2) * (Expr::powi(t(), 3) + 1.0).sqrt();
    check_integral(&e, &[], &POINTS);
}

#[test]
fn integrate_derivative_divides_non_polynomial_inner() {
    check_integral(&(t().cos() * t().sin().exp()), &[], &POINTS);
    check_integral(&(t().sin() * t().cos()), &[], &POINTS);
    check_integral(&(t().ln() / t()), &[], &POINTS);
}

#[test]
fn integrate_function_table() {
    for f in [
        Func::Ln,
        Func::Tan,
        Func::Tanh,
        Func::Sinh,
        Func::Cosh,
        Func::Asin,
        Func::Acos,
        Func::Atan,
        Func::Asinh,
        Func::Atanh,
    ] {
        check_integral(&Expr::func(f, 0.5 * t()), &[], &POINTS);
    }
    check_integral(&Expr::func(Func::Acosh, t() + 1.5), &[], &POINTS);
}

#[test]
fn integrate_definite_substitutes_bounds() {
    let d = (2.0 * t())
        .integrate_definite("t", &num(1.0), &sym("x"))
        .unwrap();
    assert_eq!(d, Expr::powi(sym("x"), 2) - 1.0);
}

// ---------------------------------------------------------------- diffusion SDEs

fn vp_beta() -> Expr {
    sym("bmin") + t() * (sym("bmax") - sym("bmin"))
}
const VP_ENV: [(&str, f64); 2] = [("bmin", 0.1), ("bmax", 20.0)];

/// u(t) = ∫_0^t β(s) ds
fn vp_u() -> Expr {
    vp_beta().integrate_definite("t", &num(0.0), &t()).unwrap()
}

#[test]
fn vp_drift_integral() {
    let big_f = -0.5 * vp_beta();
    let log_a = big_f.integrate_definite("t", &num(0.0), &t()).unwrap();
    let want = -0.5 * (&sym("bmin") * t() + 0.5 * (sym("bmax") - sym("bmin")) * Expr::powi(t(), 2));
    assert_eq!(log_a.expand(), want.expand());
    check_integral(&big_f, &VP_ENV, &POINTS);
}

#[test]
fn vp_variance_integral() {
    // ∫_0^t β(s) exp(u(s)) ds = exp(u(t)) - 1
    let u = vp_u();
    let integrand = vp_beta() * u.exp();
    let def = integrand.integrate_definite("t", &num(0.0), &t()).unwrap();
    assert_eq!(def.expand(), (u.exp() - 1.0).expand());
    check_integral(&integrand, &VP_ENV, &POINTS);
    check_definite(&integrand, &VP_ENV, 0.0, 1.0);
    check_definite(&integrand, &VP_ENV, 1e-3, 0.5);
}

#[test]
fn sub_vp_variance_integral() {
    // ∫ β exp(u) (1 - exp(-2u)) = exp(u) + exp(-u)
    let u = vp_u();
    let integrand = vp_beta() * u.exp() * (1.0 - (-2.0 * &u).exp());
    let big_f = check_integral(&integrand, &VP_ENV, &POINTS);
    let want = u.exp() + (-&u).exp();
    for x in POINTS {
        assert!(close(at(&big_f, x, &VP_ENV), at(&want, x, &VP_ENV), 1e-12));
    }
    check_definite(&integrand, &VP_ENV, 0.0, 1.0);
}

#[test]
fn ve_variance_integral() {
    // g^2 = smin^2 r^(2t) 2 ln r with r = smax/smin; ∫ = smin^2 r^(2t)
    let r = sym("smax") / sym("smin");
    let integrand = Expr::powi(sym("smin"), 2) * Expr::pow(r.clone(), 2.0 * t()) * 2.0 * r.ln();
    let env = [("smin", 0.01), ("smax", 50.0)];
    let big_f = check_integral(&integrand, &env, &POINTS);
    assert_eq!(big_f, Expr::powi(sym("smin"), 2) * Expr::pow(r, 2.0 * t()));
    check_definite(&integrand, &env, 0.0, 1.0);
}

#[test]
fn edm_variance_integral() {
    assert_eq!((2.0 * t()).integrate("t").unwrap(), Expr::powi(t(), 2));
}

// -------------------------------------------------------------------- refusals

#[test]
fn refuses_non_elementary_integrands() {
    let refused = [
        Expr::powi(t(), 2).exp(),
        t().sin() / t(),
        t().ln() * Expr::powi(t(), 2).exp(),
        (1.0 + Expr::powi(t(), 2)).recip(),
        t().exp() / t(),
        (sym("bmin") * t() + Expr::powi(t(), 2)).exp(),
        t() * (1.0 + t()).recip(),
        // c not proportional to u' = 1 + 2t
        (1.0 + t()) * (t() + Expr::powi(t(), 2)).exp(),
        // c has a t term where u' = 1 + t^2 has none
        (1.0 + t() + Expr::powi(t(), 2)) * (t() + Expr::powi(t(), 3) / 3.0).exp(),
    ];
    for e in refused {
        let r = e.integrate("t");
        assert!(r.is_err(), "{e:?} gave {r:?}");
        assert!(!r.unwrap_err().term.is_empty());
    }
}

#[test]
fn refusal_names_the_term_and_is_an_error() {
    let err = (t() + Expr::powi(t(), 2).exp()).integrate("t").unwrap_err();
    let _: &dyn std::error::Error = &err;
    assert!(err.to_string().contains(&err.term));
}

// -------------------------------------------------------------- property tests

fn leaf() -> impl Strategy<Value = Expr> {
    prop_oneof![
        3 => Just(t()),
        1 => Just(sym("p")),
        2 => (-3i32..=3).prop_map(|n| num(n as f64)),
        1 => (0.1f64..3.0).prop_map(num),
    ]
}

fn tree() -> impl Strategy<Value = Expr> {
    leaf().prop_recursive(4, 24, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| a + b),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| a - b),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| a * b),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| a / b),
            inner.clone().prop_map(|a| a.exp()),
            inner.clone().prop_map(|a| a.ln()),
            inner.clone().prop_map(|a| a.sin()),
            inner.clone().prop_map(|a| a.cos()),
            inner.clone().prop_map(|a| a.sqrt()),
            (inner, -3i32..=3).prop_map(|(a, n)| Expr::powi(a, n)),
        ]
    })
}

/// A polynomial in t of degree <= 3 with small coefficients, some of them `p`.
fn poly() -> impl Strategy<Value = Expr> {
    prop::collection::vec(
        prop_oneof![
            (-3i32..=3).prop_map(|n| num(n as f64)),
            Just(sym("p")),
            Just(-sym("p"))
        ],
        1..=4,
    )
    .prop_map(|cs| {
        Expr::add(
            cs.into_iter()
                .enumerate()
                .map(|(j, c)| c * Expr::powi(t(), j as i32)),
        )
    })
}

const P: f64 = 0.8;
const SAMPLES: [f64; 3] = [0.3, 0.7, 1.3];

fn eval_ok(e: &Expr, x: f64) -> Option<f64> {
    e.eval_at(&[("t", x), ("p", P)])
        .ok()
        .filter(|v| v.abs() < 1e6)
}

/// `d/dt e` agrees with a finite difference wherever `e` is finite and smooth.
fn diff_agrees_with_fd(e: &Expr) -> Result<(), TestCaseError> {
    let d = e.diff("t");
    for x in SAMPLES {
        let (Some(_), Some(exact)) = (eval_ok(e, x), eval_ok(&d, x)) else {
            continue;
        };
        let Some((est, err)) = fd(&|y| eval_ok(e, y), x) else {
            continue;
        };
        let scale = exact.abs().max(1.0);
        if err > 1e-3 * scale {
            continue; // not smooth enough here for the difference to mean anything
        }
        prop_assert!(
            (exact - est).abs() <= 1e-6 * scale + 10.0 * err,
            "d/dt {:?} at {}: {} vs FD {}",
            e,
            x,
            exact,
            est
        );
    }
    Ok(())
}

/// If `∫ e` is found, it differentiates back to `e`.
fn integral_differentiates_back(e: &Expr) -> Result<bool, TestCaseError> {
    let Ok(big_f) = e.integrate("t") else {
        return Ok(false);
    };
    let back = big_f.diff("t");
    for x in SAMPLES {
        let (Some(want), Some(_)) = (eval_ok(e, x), eval_ok(&big_f, x)) else {
            continue;
        };
        if let Some(got) = eval_ok(&back, x) {
            prop_assert!(
                close(got, want, 1e-6),
                "d/dt ∫ {:?} at {}: {} vs {}\n∫ = {:?}",
                e,
                x,
                got,
                want,
                big_f
            );
        }
        if let Some((est, err)) = fd(&|y| eval_ok(&big_f, y), x) {
            if err < 1e-3 * want.abs().max(1.0) {
                prop_assert!(
                    close(est, want, 1e-6) || (est - want).abs() <= 10.0 * err,
                    "FD of ∫ {:?} at {}: {} vs {}",
                    e,
                    x,
                    est,
                    want
                );
            }
        }
    }
    Ok(true)
}

fn sample_h(u: &Expr, which: u8) -> Expr {
    match which {
        0 => u.exp(),
        1 => u.sin(),
        2 => u.cos(),
        3 => u.sinh(),
        4 => u.cosh(),
        5 => u.recip(),
        6 => Expr::powi(u.clone(), 2),
        _ => u.sqrt(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn prop_diff_matches_finite_difference(e in tree()) {
        diff_agrees_with_fd(&e)?;
    }

    #[test]
    fn prop_integral_differentiates_back(e in tree()) {
        integral_differentiates_back(&e)?;
    }

    #[test]
    fn prop_derivative_divides_is_found(u in poly(), k in 1i32..=3, which in 0u8..8) {
        prop_assume!(u.contains("t"));
        // Keep u small on the samples so exp/sinh/cosh stay moderate.
        let u = &u / 4.0;
        let e = f64::from(k) * u.diff("t") * sample_h(&u, which);
        prop_assert!(integral_differentiates_back(&e)?, "∫ {:?} not found", e);
    }

    #[test]
    fn prop_polynomial_times_function_of_polynomial(c in poly(), u in poly(), which in 0u8..8) {
        let e = c * sample_h(&(&u / 4.0), which);
        integral_differentiates_back(&e)?;
    }

    #[test]
    fn prop_polynomial_times_exp_is_found(c in poly(), a in prop_oneof![Just(sym("p")), (-2i32..=2).prop_filter("non-zero", |a| *a != 0).prop_map(|a| num(a.into()))], which in 0u8..5) {
        let u = &a * t() + 0.5;
        let e = c * sample_h(&u, which);
        prop_assert!(integral_differentiates_back(&e)?, "∫ {:?} not found", e);
    }
}

#[test]
fn integrals_come_back_canonical() {
    // No stray x * x^-1 left in results.
    let f = (sym("a") * (sym("a") * t()).cos()).integrate("t").unwrap();
    assert_eq!(f, (sym("a") * t()).sin());
    assert!(!matches!(f.node(), Node::Mul(_)));
}
