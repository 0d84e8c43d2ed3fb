//! Text, LaTeX and Rust source of canonical expressions. Each expected string was
//! checked by eye for readability and for meaning the same as the expression.

use proptest::prelude::*;
use sbdm_symbolic::Expr;

fn s(name: &str) -> Expr {
    Expr::sym(name)
}

/// The VP drift coefficient `-0.5*(beta_min + t*(beta_max - beta_min))`.
fn vp_drift_coeff() -> Expr {
    let (t, b0, b1) = (s("t"), s("beta_min"), s("beta_max"));
    -0.5 * (&b0 + &t * (&b1 - &b0))
}

/// Asserts text, LaTeX and Rust source at once.
fn prints(e: &Expr, text: &str, latex: &str, source: &str) {
    assert_eq!(e.to_string(), text, "text");
    assert_eq!(e.to_latex(), latex, "latex of {text}");
    assert_eq!(e.to_source(), source, "source of {text}");
}

#[test]
fn vp_drift_coefficient() {
    prints(
        &vp_drift_coeff(),
        "-(beta_min + t*(beta_max - beta_min))/2",
        r"-\frac{\beta_{\mathrm{min}} + t \left(\beta_{\mathrm{max}} - \beta_{\mathrm{min}}\right)}{2}",
        "-0.5_f64 * (beta_min + t * (beta_max - beta_min))",
    );
    assert_eq!(
        vp_drift_coeff().to_rust(&|n| format!("self.{n}")),
        "-0.5_f64 * (self.beta_min + self.t * (self.beta_max - self.beta_min))"
    );
}

#[test]
fn one_minus_exp() {
    let u = s("u");
    prints(
        &(1.0 - (-&u).exp()),
        "1 - exp(-u)",
        "1 - e^{-u}",
        "1_f64 - (-u).exp()",
    );
    // the VP marginal's variance, with a long exponent
    let t = s("t");
    let e = 1.0 - (-(0.1 * &t + 9.95 * Expr::powi(t.clone(), 2))).exp();
    prints(
        &e,
        "1 - exp(-(0.1*t + 9.95*t^2))",
        r"1 - \exp\left(-\left(0.1 t + 9.95 t^{2}\right)\right)",
        "1_f64 - (-(0.1_f64 * t + 9.95_f64 * t.powi(2))).exp()",
    );
    prints(
        &e.sqrt(),
        "sqrt(1 - exp(-(0.1*t + 9.95*t^2)))",
        r"\sqrt{1 - \exp\left(-\left(0.1 t + 9.95 t^{2}\right)\right)}",
        "(1_f64 - (-(0.1_f64 * t + 9.95_f64 * t.powi(2))).exp()).sqrt()",
    );
}

#[test]
fn quotients() {
    let (a, b, c, t) = (s("a"), s("b"), s("c"), s("t"));
    prints(&(&a / &b), "a/b", r"\frac{a}{b}", "a / b");
    prints(&(&a / (&b * &c)), "a/(b*c)", r"\frac{a}{b c}", "a / b / c");
    prints(&(2.0 / &t), "2/t", r"\frac{2}{t}", "2_f64 / t");
    prints(&(-1.0 / &t), "-1/t", r"-\frac{1}{t}", "-1_f64 / t");
    prints(&t.recip(), "1/t", r"\frac{1}{t}", "t.recip()");
    prints(
        &Expr::powi(t.clone(), -2),
        "1/t^2",
        r"\frac{1}{t^{2}}",
        "t.powi(-2)",
    );
    prints(
        &t.sqrt().recip(),
        "1/sqrt(t)",
        r"\frac{1}{\sqrt{t}}",
        "t.powf(-0.5_f64)",
    );
    prints(
        &(&a * Expr::powf(t.clone(), -1.5)),
        "a/t^1.5",
        r"\frac{a}{t^{1.5}}",
        "a * t.powf(-1.5_f64)",
    );
    prints(
        &(a.sqrt() / &b),
        "sqrt(a)/b",
        r"\frac{\sqrt{a}}{b}",
        "a.sqrt() / b",
    );
    prints(
        &(&a / (&b + &c)),
        "a/(b + c)",
        r"\frac{a}{b + c}",
        "a / (b + c)",
    );
}

#[test]
fn sums_and_signs() {
    let (a, b, c, t) = (s("a"), s("b"), s("c"), s("t"));
    prints(&(&t - 1.0), "t - 1", "t - 1", "t - 1_f64");
    prints(&(1.0 - &t), "1 - t", "1 - t", "1_f64 - t");
    prints(&(-&t - 1.0), "-1 - t", "-1 - t", "-1_f64 - t");
    prints(
        &(&a - (&b + &c) * 2.0),
        "a - 2*(b + c)",
        r"a - 2 \left(b + c\right)",
        "a - 2_f64 * (b + c)",
    );
    prints(&-(&a + &b), "-(a + b)", r"-\left(a + b\right)", "-(a + b)");
    prints(
        &(-2.0 * t.exp()),
        "-2*exp(t)",
        "-2 e^{t}",
        "-2_f64 * t.exp()",
    );
}

#[test]
fn powers_and_functions() {
    let (a, b, t) = (s("a"), s("b"), s("t"));
    let (smin, smax) = (s("sigma_min"), s("sigma_max"));
    prints(
        &(&smin * Expr::pow(&smax / &smin, t.clone())),
        "sigma_min*(sigma_max/sigma_min)^t",
        r"\sigma_{\mathrm{min}} \left(\frac{\sigma_{\mathrm{max}}}{\sigma_{\mathrm{min}}}\right)^{t}",
        "sigma_min * (sigma_max / sigma_min).powf(t)",
    );
    prints(
        &Expr::pow(Expr::num(2.0), t.clone()),
        "2^t",
        "2^{t}",
        "2_f64.powf(t)",
    );
    prints(
        &Expr::pow(Expr::num(-2.0), t.clone()),
        "(-2)^t",
        r"\left(-2\right)^{t}",
        "(-2_f64).powf(t)",
    );
    prints(
        &Expr::pow(t.clone(), &a + &b),
        "t^(a + b)",
        "t^{a + b}",
        "t.powf(a + b)",
    );
    prints(&Expr::pow(t.clone(), -&a), "t^(-a)", "t^{-a}", "t.powf(-a)");
    prints(
        &Expr::powi(t.sin(), 2),
        "sin(t)^2",
        r"\sin\left(t\right)^{2}",
        "t.sin().powi(2)",
    );
    prints(
        &Expr::powf(t.clone(), 1.0 / 3.0),
        "t^(1/3)",
        r"\sqrt[3]{t}",
        "t.powf(0.3333333333333333_f64)",
    );
    prints(
        &(t.ln() * 2.0).cos(),
        "cos(2*ln(t))",
        r"\cos\left(2 \ln\left(t\right)\right)",
        "(2_f64 * t.ln()).cos()",
    );
    prints(
        &(Expr::func(sbdm_symbolic::Func::Asinh, t.clone())
            + Expr::func(sbdm_symbolic::Func::Atan, t.clone())),
        "atan(t) + asinh(t)",
        r"\arctan\left(t\right) + \operatorname{arsinh}\left(t\right)",
        "t.atan() + t.asinh()",
    );
    prints(&(Expr::pi() * &t), "PI*t", r"\pi t", "PI * t");
    prints(
        &Expr::pow(Expr::e(), -&t),
        "exp(-t)",
        "e^{-t}",
        "(-t).exp()",
    );
}

#[test]
fn tangents() {
    // The canonical form writes tan(u) as sin(u)/cos(u); text and LaTeX print the pair
    // as a tangent (in any factor order), Rust source keeps the quotient.
    let (t, u) = (s("t"), 0.5 * Expr::pi() * s("t"));
    prints(
        &(-0.5 * Expr::pi() * u.tan()),
        "-PI*tan(PI*t/2)/2",
        r"-\frac{\pi \tan\left(\frac{\pi t}{2}\right)}{2}",
        "-0.5_f64 * PI * (0.5_f64 * PI * t).sin() / (0.5_f64 * PI * t).cos()",
    );
    prints(
        &Expr::powi(t.tan(), -1),
        "1/tan(t)",
        r"\frac{1}{\tan\left(t\right)}",
        "t.cos() / t.sin()",
    );
    prints(
        &Expr::powi(t.tan(), 2),
        "tan(t)^2",
        r"\tan^{2}\left(t\right)",
        "t.sin().powi(2) * t.cos().powi(-2)",
    );
    // Unequal powers stay a quotient.
    prints(
        &(Expr::powi(t.sin(), 3) / t.cos()),
        "sin(t)^3/cos(t)",
        r"\frac{\sin\left(t\right)^{3}}{\cos\left(t\right)}",
        "t.sin().powi(3) / t.cos()",
    );
}

#[test]
fn numbers() {
    let t = s("t");
    prints(&Expr::num(0.1), "0.1", "0.1", "0.1_f64");
    prints(&Expr::num(20.0), "20", "20", "20_f64");
    prints(&Expr::num(-0.5), "-0.5", "-0.5", "-0.5_f64");
    prints(&Expr::num(0.0001), "0.0001", "0.0001", "0.0001_f64");
    prints(&(1e-5 * &t), "1e-5*t", "10^{-5} t", "1e-5_f64 * t");
    prints(
        &(2.5e17 + &t),
        "2.5e17 + t",
        r"2.5 \times 10^{17} + t",
        "2.5e17_f64 + t",
    );
}

#[test]
fn latex_symbols() {
    for (name, latex) in [
        ("t", "t"),
        ("x", "x"),
        ("beta", r"\beta"),
        ("beta_min", r"\beta_{\mathrm{min}}"),
        ("sigma_max", r"\sigma_{\mathrm{max}}"),
        ("Sigma", r"\Sigma"),
        ("sigma_t", r"\sigma_{t}"),
        ("sigma_2", r"\sigma_{2}"),
        ("x0", "x_{0}"),
        ("drift", r"\mathrm{drift}"),
        ("beta_min_2", r"\beta_{\mathrm{min\_2}}"),
        ("alpha_beta", r"\alpha_{\beta}"),
    ] {
        assert_eq!(s(name).to_latex(), latex, "{name}");
    }
}

fn arb_expr() -> impl Strategy<Value = Expr> {
    let leaf = prop_oneof![
        Just(s("t")),
        Just(s("beta_min")),
        (-3i32..=5).prop_map(|n| Expr::num(f64::from(n))),
        (-1e3f64..1e3).prop_map(Expr::num),
    ];
    leaf.prop_recursive(4, 24, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| a + b),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| a - b),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| a * b),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| a / b),
            inner.clone().prop_map(|a| a.exp()),
            inner.clone().prop_map(|a| a.sqrt()),
            (inner, -3i32..=3).prop_map(|(a, n)| Expr::powi(a, n)),
        ]
    })
}

/// Whether some `^{..}` group is directly followed by another `^` (a LaTeX error).
fn double_superscript(latex: &str) -> bool {
    let b = latex.as_bytes();
    (0..b.len().saturating_sub(1))
        .filter(|&i| b[i] == b'^' && b[i + 1] == b'{')
        .any(|i| {
            let mut depth = 0;
            for (j, &c) in b.iter().enumerate().skip(i + 1) {
                match c {
                    b'{' => depth += 1,
                    b'}' => {
                        depth -= 1;
                        if depth == 0 {
                            return b.get(j + 1) == Some(&b'^');
                        }
                    }
                    _ => {}
                }
            }
            false
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Text and LaTeX are balanced, one line, and never show `+ -` or `--`.
    #[test]
    fn printed_forms_are_tidy(e in arb_expr()) {
        let text = e.to_string();
        let latex = e.to_latex();
        for out in [&text, &latex] {
            prop_assert!(!out.contains('\n'));
            prop_assert!(!out.contains("+ -") && !out.contains("--") && !out.contains("- -"), "{out}");
        }
        prop_assert_eq!(text.matches('(').count(), text.matches(')').count());
        prop_assert_eq!(latex.matches('{').count(), latex.matches('}').count());
        prop_assert_eq!(latex.matches(r"\left(").count(), latex.matches(r"\right)").count());
        prop_assert!(!double_superscript(&latex), "{latex}");
    }
}
