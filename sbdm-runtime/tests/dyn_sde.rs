//! SDEs declared at run time ([`DynSde`]) against the `sde!` macro's generated code:
//! every coefficient to 1e-14 relative, on the built-ins and on declarations with no
//! closed form; the stored source round-trips; bad text and parameters are refused.

// Generated code names `::sbdm::__private`.
extern crate sbdm_runtime as sbdm;

use sbdm_runtime::sde;
use sbdm_runtime::sde::{builtin, DynSde, GaussianKernel, Sde};

#[path = "common/declared.rs"]
mod declared;
use declared::QuadBeta;

sde! {
    /// ∫F has no closed form: a(t) by quadrature, b(t)² by the kernel ODE.
    pub struct ExpSquare {
        time = [1e-3, 1.0];
        drift = -(t * t).exp() * x;
        diffusion = (2.0 * (t * t).exp()).sqrt();
    }
}

sde! {
    /// Oscillating β: closed a(t), b(t)² by quadrature of g²/a².
    pub struct Wobble {
        params { k: f64 = 7.0 }
        time = [1e-3, 1.0];
        let beta = 1.0 + 0.5 * (k * t).sin() + 5.0 * t;
        drift = -0.5 * beta * x;
        diffusion = (beta * (1.0 + t)).sqrt();
    }
}

/// One coefficient of a kernel, as a function of time.
type Coefficient = fn(&dyn GaussianKernel, f64) -> f64;

fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-14 * a.abs().max(b.abs())
}

/// Every coefficient of `dynamic` equals `compiled`'s on a grid of times and log-SNRs.
fn assert_same(compiled: &dyn GaussianKernel, dynamic: &DynSde) {
    let name = compiled.name();
    assert_eq!(dynamic.name(), name);
    assert_eq!(
        dynamic.time_range(),
        compiled.time_range(),
        "{name}: time range"
    );
    let (t0, t1) = compiled.time_range();
    let coefs: [(&str, Coefficient); 9] = [
        ("F", |s, t| s.drift_coef(t)),
        ("g", |s, t| s.diffusion(t)),
        ("g2", |s, t| s.diffusion_sq(t)),
        ("a", |s, t| s.mean_coef(t)),
        ("b", |s, t| s.std(t)),
        ("b2", |s, t| s.variance(t)),
        ("lambda", |s, t| s.log_snr(t)),
        ("dlambda", |s, t| s.dlog_snr_dt(t)),
        ("sigma", |s, t| s.sigma(t)),
    ];
    for i in 0..=16 {
        let t = t0 + (t1 - t0) * f64::from(i) / 16.0;
        for (what, f) in &coefs {
            let (want, got) = (f(compiled, t), f(dynamic, t));
            assert!(
                close(want, got),
                "{name}: {what}({t}) = {got}, macro {want}"
            );
        }
        let lambda = compiled.log_snr(t);
        let (want, got) = (compiled.t_of_log_snr(lambda), dynamic.t_of_log_snr(lambda));
        assert!(
            close(want, got),
            "{name}: t(λ = {lambda}) = {got}, macro {want}"
        );
    }
}

fn from_source(s: &dyn GaussianKernel) -> DynSde {
    let source = s.source().expect("sde! types carry their source");
    DynSde::from_source(&source).unwrap()
}

#[test]
fn built_ins_equal_their_macro_code() {
    for (name, _) in builtin::NAMES {
        let sde = builtin::by_name(name).unwrap();
        assert_same(sde.as_ref(), &from_source(sde.as_ref()));
    }
}

#[test]
fn declarations_without_closed_forms_equal_the_macro_code() {
    const { assert!(!ExpSquare::CLOSED_FORM && !Wobble::CLOSED_FORM) };
    for sde in [
        &QuadBeta::default() as &dyn GaussianKernel,
        &ExpSquare,
        &Wobble::default(),
    ] {
        assert_same(sde, &from_source(sde));
    }
}

#[test]
fn parameters_travel_with_the_source() {
    let changed = QuadBeta { b0: 0.3, b2: 12.0 };
    let dynamic = from_source(&changed);
    assert_eq!(
        dynamic.params(),
        vec![("b0".into(), 0.3), ("b2".into(), 12.0)]
    );
    assert_same(&changed, &dynamic);
    let wobble = Wobble { k: 3.0 };
    assert_same(&wobble, &from_source(&wobble));
    // The source of a run-time SDE is its own text and values.
    let again = DynSde::from_source(&dynamic.source().unwrap()).unwrap();
    assert_same(&changed, &again);
}

#[test]
fn bad_declarations_are_refused_with_line_and_column() {
    let text = "struct Bad {\n    time = [1e-3, 1.0];\n    drift = -0.5 * ;\n    diffusion = ;\n}";
    let err = DynSde::parse(text).unwrap_err().to_string();
    // Every problem at once, in the order of the text.
    let (a, b) = (
        err.find("3:18: expected an expression").unwrap(),
        err.find("4:5: `diffusion =` needs an expression").unwrap(),
    );
    assert!(a < b, "{err}");
    // `diffusion =` was written: it is empty, not missing.
    assert!(!err.contains("missing"), "{err}");
    let text = "struct Bad {\n    time = [1e-3, 1.0];\n    drift = -0.5 * gamma * x;\n    diffusion = 1.0;\n}";
    let err = DynSde::parse(text).unwrap_err().to_string();
    assert!(err.starts_with("3:20:") && err.contains("gamma"), "{err}");
    for text in [
        "",
        "struct",
        "struct A { mean = 1.0; std = t; } trailing",
        "\"open",
    ] {
        assert!(DynSde::parse(text).is_err(), "{text:?} parsed");
    }
}

#[test]
fn bad_parameters_are_refused() {
    let vp = from_source(&builtin::VpSde::default());
    let err = vp
        .with_params(&[("gamma".into(), 1.0)])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no parameter `gamma`") && err.contains("beta_min"),
        "{err}"
    );
    let err = vp
        .with_params(&[("beta_max".into(), f64::NAN)])
        .unwrap_err()
        .to_string();
    assert!(err.contains("must be finite"), "{err}");
    let err = vp
        .with_params(&[("beta_max".into(), -100.0)])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("beta_max = -100") && err.contains("at t ="),
        "{err}"
    );
}

/// Damaged declaration text (characters dropped, repeated, swapped for syntax) is refused
/// with positioned messages or derives; it never panics, and whatever derives is finite on
/// its time range.
#[test]
fn damaged_text_never_panics() {
    let base = builtin::VpSde::default().source().unwrap().text.to_string();
    let pieces = [
        "", ";", "(", ")", "[", "]", "{", "}", ",", "=", "*", "-", ".", "x", "t", "1e308", "\"",
        "/*", "'", "let", "mean", "0.0", "powi(", "ln()", "///",
    ];
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    let mut derived = 0;
    for _ in 0..1500 {
        let mut text: Vec<char> = base.chars().collect();
        for _ in 0..1 + next(3) {
            let at = next(text.len());
            let cut = next(4).min(text.len() - at);
            let piece: Vec<char> = pieces[next(pieces.len())].chars().collect();
            text.splice(at..at + cut, piece);
        }
        let text: String = text.into_iter().collect();
        match DynSde::parse(&text) {
            Ok(sde) => {
                derived += 1;
                let (t0, t1) = sde.time_range();
                for t in [t0, 0.5 * (t0 + t1), t1] {
                    assert!(sde.std(t).is_finite(), "{text}\nstd({t}) not finite");
                }
            }
            Err(e) => {
                let e = e.to_string();
                assert!(!e.is_empty() && !e.contains('\n'), "{text}\n{e}");
            }
        }
    }
    assert!(derived > 0, "some damage is harmless");
}
