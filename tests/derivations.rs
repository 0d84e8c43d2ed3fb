//! Snapshots of every built-in's derivation (text and LaTeX), and the shape of the
//! closed forms that matter.

use sbdm::prelude::*;
use sbdm::symbolic::sde::Method;
use sbdm::symbolic::Expr;

#[test]
fn snapshots_text_and_latex() {
    for (name, _) in sbdm::builtin::NAMES {
        let d = sbdm::builtin::derivation(name).unwrap();
        insta::assert_snapshot!(format!("{name}_text"), d.to_string());
        insta::assert_snapshot!(format!("{name}_latex"), d.latex());
    }
}

#[test]
fn vp_and_ve_derive_in_closed_form() {
    for d in [VpSde::derivation(), VeSde::derivation()] {
        assert!(d.is_closed_form(), "{d}");
        assert!(d.numeric_parts().is_empty());
        for key in ["a", "b2", "log_snr", "t_of_log_snr"] {
            let e = d.entry(key).or_else(|| d.entry("std")).unwrap();
            assert_ne!(e.method, Method::Numeric, "{key}");
        }
    }
}

/// VP's b(t)^2 prints as 1 - exp(-∫_0^t β), with ∫β built independently here.
#[test]
fn vp_variance_is_one_minus_exp_of_minus_integrated_beta() {
    let d = VpSde::derivation();
    let b2_text = &d.entry("b2").unwrap().text;
    let t = Expr::sym("t");
    let (bmin, bmax) = (Expr::sym("beta_min"), Expr::sym("beta_max"));
    let int_beta = (&bmin * &t + 0.5 * (&bmax - &bmin) * Expr::powi(t.clone(), 2)).expand();
    let want = (1.0 - (-int_beta).exp()).expand();
    // Printed in textbook form (like terms in t collected).
    assert_eq!(want.textbook("t", &["t"]).to_string(), *b2_text);
    assert_eq!(b2_text, "1 - exp((beta_min - beta_max)*t^2/2 - beta_min*t)");
}

#[test]
fn numeric_fallback_is_marked() {
    sde! {
        struct NoClosedForm {
            time = [1e-3, 1.0];
            drift = -0.5 * (1.0 + (t * t).exp()) * x;
            diffusion = (1.0 + (t * t).exp()).sqrt();
        }
    }
    let d = NoClosedForm::derivation();
    assert!(!d.is_closed_form());
    assert_eq!(d.entry("a").unwrap().method, Method::Numeric);
    assert_eq!(d.entry("b2").unwrap().method, Method::Numeric);
    assert!(d.to_string().contains("quadrature"));
    // And the numbers are still right: a(t) = exp(-0.5 ∫(1 + e^{s^2})) by Simpson here.
    let sde = NoClosedForm;
    let t = 0.7;
    let n = 2000;
    let h = t / n as f64;
    let f = |s: f64| -0.5 * (1.0 + (s * s).exp());
    let mut acc = f(0.0) + f(t);
    for i in 1..n {
        acc += f(i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 };
    }
    let a = (acc * h / 3.0).exp();
    assert!((sde.mean_coef(t) - a).abs() < 1e-10 * a);
}

#[test]
fn params_stay_symbolic() {
    let vp = VpSde {
        beta_max: 10.0,
        ..Default::default()
    };
    // a(t) = exp(-(β_min t + (β_max - β_min) t²/2)/2) with β_max = 10.
    let t: f64 = 0.3;
    let want = (-0.5 * (0.1 * t + 0.5 * 9.9 * t * t)).exp();
    assert!((vp.mean_coef(t) - want).abs() < 1e-15);
    assert_eq!(vp.beta_min, 0.1);
}
