//! Printing as plain text, LaTeX and Rust source.
//!
//! The three printers share one reading of the canonical form: a sum is a list of
//! signed terms (a term with a negative coefficient is printed after ` - `), a product
//! is a sign, a numeric coefficient, numerator factors and denominator factors (the
//! powers with a negative numeric exponent). Each printer returns its text with the
//! precedence of its outermost operator, and a parent adds parentheses only where
//! that precedence is too low.
//!
//! [`Expr::to_rust`] output reads back through [`crate::parse`] and
//! [`crate::Ast::lower`] to an equal expression.

use std::fmt;

use crate::expr::{Constant, Expr, Func, Node};

/// How tightly a printed expression binds (higher binds tighter).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Prec {
    /// `a + b`, `a - b`
    Sum,
    /// `-a`
    Neg,
    /// `a*b`, `a/b`
    Product,
    /// `a^b`
    Power,
    /// names, non-negative numbers, calls, parenthesised text
    Atom,
}

/// A printed sub-expression and its precedence.
type Out = (String, Prec);

/// A term of a sum (or any expression read as a product): `-2*a*b^-1` is
/// `{neg: true, coeff: 2, factors: [a, b^-1]}`.
struct Term<'a> {
    neg: bool,
    coeff: f64,
    factors: &'a [Expr],
}

impl<'a> Term<'a> {
    fn of(e: &'a Expr) -> Term<'a> {
        match e.node() {
            Node::Num(n) => Term {
                neg: n.get() < 0.0,
                coeff: n.get().abs(),
                factors: &[],
            },
            Node::Mul(fs) => match fs[0].node() {
                Node::Num(n) => Term {
                    neg: n.get() < 0.0,
                    coeff: n.get().abs(),
                    factors: &fs[1..],
                },
                _ => Term {
                    neg: false,
                    coeff: 1.0,
                    factors: fs,
                },
            },
            _ => Term {
                neg: false,
                coeff: 1.0,
                factors: std::slice::from_ref(e),
            },
        }
    }
}

/// The terms of a sum in printing order: canonical order, except that a sum whose
/// first term is negative starts with its first positive term (`t - 1`, not `-1 + t`).
fn sum_terms(terms: &[Expr]) -> Vec<Term<'_>> {
    let mut out: Vec<Term<'_>> = terms.iter().map(Term::of).collect();
    if out.first().is_some_and(|t| t.neg) {
        if let Some(i) = out.iter().position(|t| !t.neg) {
            let t = out.remove(i);
            out.insert(0, t);
        }
    }
    out
}

/// A negative numeric exponent, as its magnitude.
fn neg_exponent(e: &Expr) -> Option<(&Expr, f64)> {
    match e.node() {
        Node::Pow(b, x) => match x.node() {
            Node::Num(n) if n.get() < 0.0 => Some((b, -n.get())),
            _ => None,
        },
        _ => None,
    }
}

/// A factor of a printed product: itself, or `tan(u)^k` standing for a pair
/// `sin(u)^k·cos(u)^-k` of the canonical form (which writes tan as a quotient); `k`
/// negative for `cos(u)^k·sin(u)^-k`. Text and LaTeX print the pair as one tangent;
/// the Rust printer keeps the quotient, so generated code is unchanged.
enum Factor<'a> {
    Plain(&'a Expr),
    Tan(&'a Expr, f64),
}

/// The base and numeric exponent of a factor (`u` is `u^1`).
fn base_power(f: &Expr) -> (&Expr, Option<f64>) {
    match f.node() {
        Node::Pow(b, x) => (b, x.as_num()),
        _ => (f, Some(1.0)),
    }
}

/// `factors` with each `sin(u)^k`, `cos(u)^-k` pair as one [`Factor::Tan`], in the
/// position of the sine.
fn printed_factors(factors: &[Expr]) -> Vec<Factor<'_>> {
    fn trig(f: &Expr, which: Func) -> Option<(&Expr, f64)> {
        match base_power(f) {
            (b, Some(k)) => match b.node() {
                Node::Func(g, u) if *g == which => Some((u, k)),
                _ => None,
            },
            _ => None,
        }
    }
    // partner[i] = the cosine paired with the sine at i; paired[j]: j is such a cosine.
    let mut partner: Vec<Option<(usize, &Expr, f64)>> = vec![None; factors.len()];
    let mut paired = vec![false; factors.len()];
    for (i, f) in factors.iter().enumerate() {
        let Some((u, k)) = trig(f, Func::Sin) else {
            continue;
        };
        let j = (0..factors.len())
            .find(|&j| !paired[j] && trig(&factors[j], Func::Cos) == Some((u, -k)));
        if let Some(j) = j {
            paired[j] = true;
            partner[i] = Some((j, u, k));
        }
    }
    factors
        .iter()
        .enumerate()
        .filter(|(i, _)| !paired[*i])
        .map(|(i, f)| match partner[i] {
            Some((_, u, k)) => Factor::Tan(u, k),
            None => Factor::Plain(f),
        })
        .collect()
}

/// Readable digits: Rust's shortest round-trip `{}`, switching to `{:e}` for very
/// small and very large magnitudes.
fn digits(v: f64) -> String {
    let a = v.abs();
    if a != 0.0 && !(1e-4..1e15).contains(&a) {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

/// A positive `v` that is exactly (as an f64) a fraction `p/q` with a small denominator
/// `q ≥ 2`, in lowest terms: `0.16666666666666666` is `1/6`. Text and LaTeX print such
/// constants as fractions, the way papers write them.
fn small_fraction(v: f64, coefficient: bool) -> Option<(u64, u64)> {
    if !(v.is_finite() && v > 0.0) {
        return None;
    }
    // As a term's coefficient: halves, thirds, quarters, sixths, eighths and twelfths as
    // papers write them (`-beta*x/2`); other denominators, and bare numbers, only where
    // the decimal is long (0.1 stays 0.1, 1/7 is not 0.142857…).
    let long = format!("{v}").len() > 8;
    (2..=64u64).find_map(|q| {
        let p = (v * q as f64).round();
        let usual = coefficient && matches!(q, 2 | 3 | 4 | 6 | 8 | 12);
        ((usual || long) && (1.0..=1e6).contains(&p) && p / q as f64 == v && p % q as f64 != 0.0)
            .then_some((p as u64, q))
    })
}

fn wrap(out: Out, min: Prec, open: &str, close: &str) -> String {
    if out.1 >= min {
        out.0
    } else {
        format!("{open}{}{close}", out.0)
    }
}

// ---------------------------------------------------------------------------
// Plain text

impl fmt::Display for Expr {
    /// Readable text: minimal parentheses, `^` for powers, `sqrt(u)`, `a/b`,
    /// `a - b`, `exp(u)`, `PI` and `E`, e.g. `1 - exp(-(0.1*t + 9.95*t^2))`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&text(self).0)
    }
}

fn text(e: &Expr) -> Out {
    match e.node() {
        Node::Num(n) => {
            let v = n.get();
            if let Some((p, q)) = small_fraction(v.abs(), false) {
                let sign = if v < 0.0 { "-" } else { "" };
                let prec = if v < 0.0 { Prec::Neg } else { Prec::Product };
                return (format!("{sign}{p}/{q}"), prec);
            }
            let s = digits(v);
            let p = if v < 0.0 {
                Prec::Neg
            } else if s.contains('e') {
                Prec::Power
            } else {
                Prec::Atom
            };
            (s, p)
        }
        Node::Const(c) => (c.name().to_string(), Prec::Atom),
        Node::Sym(s) => (s.to_string(), Prec::Atom),
        Node::Add(terms) => {
            let mut s = String::new();
            for (i, t) in sum_terms(terms).into_iter().enumerate() {
                if i == 0 {
                    s.push_str(&text_term(&t).0);
                } else {
                    s.push_str(if t.neg { " - " } else { " + " });
                    let mag = Term { neg: false, ..t };
                    s.push_str(&wrap(text_term(&mag), Prec::Neg, "(", ")"));
                }
            }
            (s, Prec::Sum)
        }
        Node::Mul(_) => text_term(&Term::of(e)),
        Node::Pow(b, x) => match x.as_num() {
            Some(0.5) => (format!("sqrt({})", text(b).0), Prec::Atom),
            Some(n) if n < 0.0 => text_term(&Term::of(e)),
            _ => {
                let base = wrap(text(b), Prec::Atom, "(", ")");
                let exp = wrap(text(x), Prec::Atom, "(", ")");
                (format!("{base}^{exp}"), Prec::Power)
            }
        },
        Node::Func(f, a) => (format!("{}({})", f.name(), text(a).0), Prec::Atom),
    }
}

/// `b^k` for a positive `k`, as text.
fn text_power(b: &Expr, k: f64) -> Out {
    if k == 1.0 {
        text(b)
    } else if k == 0.5 {
        (format!("sqrt({})", text(b).0), Prec::Atom)
    } else {
        let base = wrap(text(b), Prec::Atom, "(", ")");
        let exp = wrap(text(&Expr::num(k)), Prec::Atom, "(", ")");
        (format!("{base}^{exp}"), Prec::Power)
    }
}

/// `tan(u)^k` for a positive `k`, as text.
fn text_tan(u: &Expr, k: f64) -> Out {
    let tan = (format!("tan({})", text(u).0), Prec::Atom);
    if k == 1.0 {
        tan
    } else {
        let exp = wrap(text(&Expr::num(k)), Prec::Atom, "(", ")");
        (format!("{}^{exp}", tan.0), Prec::Power)
    }
}

fn text_term(t: &Term<'_>) -> Out {
    let mut num: Vec<Out> = Vec::new();
    let mut den: Vec<Out> = Vec::new();
    match small_fraction(t.coeff, true) {
        Some((p, q)) => {
            if p != 1 || t.factors.iter().all(|f| neg_exponent(f).is_some()) {
                num.push((p.to_string(), Prec::Atom));
            }
            den.push((q.to_string(), Prec::Atom));
        }
        None if t.coeff != 1.0 || t.factors.is_empty() => {
            num.push(text(&Expr::num(t.coeff)));
        }
        None => {}
    }
    for f in printed_factors(t.factors) {
        match f {
            Factor::Tan(u, k) if k < 0.0 => den.push(text_tan(u, -k)),
            Factor::Tan(u, k) => num.push(text_tan(u, k)),
            Factor::Plain(f) => match neg_exponent(f) {
                Some((b, k)) => den.push(text_power(b, k)),
                None => num.push(text(f)),
            },
        }
    }
    let sign = if t.neg { "-" } else { "" };
    if den.is_empty() && num.len() == 1 {
        let (s, p) = num.pop().expect("one factor");
        return if t.neg {
            (
                format!("-{}", wrap((s, p), Prec::Product, "(", ")")),
                Prec::Neg,
            )
        } else {
            (s, p)
        };
    }
    let numerator = if num.is_empty() {
        "1".to_string()
    } else {
        let parts: Vec<String> = num
            .into_iter()
            .map(|o| wrap(o, Prec::Power, "(", ")"))
            .collect();
        parts.join("*")
    };
    let mut s = format!("{sign}{numerator}");
    if !den.is_empty() {
        s.push('/');
        if den.len() == 1 {
            s.push_str(&wrap(den.pop().expect("one"), Prec::Power, "(", ")"));
        } else {
            let parts: Vec<String> = den
                .into_iter()
                .map(|o| wrap(o, Prec::Power, "(", ")"))
                .collect();
            s.push_str(&format!("({})", parts.join("*")));
        }
    }
    (s, if t.neg { Prec::Neg } else { Prec::Product })
}

// ---------------------------------------------------------------------------
// LaTeX

const GREEK: [&str; 35] = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "varepsilon",
    "zeta",
    "eta",
    "theta",
    "vartheta",
    "iota",
    "kappa",
    "lambda",
    "mu",
    "nu",
    "xi",
    "pi",
    "rho",
    "sigma",
    "tau",
    "upsilon",
    "phi",
    "varphi",
    "chi",
    "psi",
    "omega",
    "Gamma",
    "Delta",
    "Theta",
    "Lambda",
    "Xi",
    "Pi",
    "Sigma",
    "Phi",
    "Omega",
];

/// A name part as LaTeX: a Greek letter, a single character, digits (in a
/// subscript), or upright text.
fn latex_word(w: &str, subscript: bool) -> String {
    if GREEK.contains(&w) || w == "Psi" || w == "Upsilon" {
        format!("\\{w}")
    } else if w.chars().count() == 1 || (subscript && w.bytes().all(|b| b.is_ascii_digit())) {
        w.to_string()
    } else {
        format!("\\mathrm{{{}}}", w.replace('_', "\\_"))
    }
}

/// A symbol as LaTeX: `beta` → `\beta`, `sigma_max` → `\sigma_{\mathrm{max}}`,
/// `x0` → `x_{0}`, `drift` → `\mathrm{drift}`.
fn latex_symbol(name: &str) -> String {
    let (head, tail) = match name.split_once('_') {
        Some((h, t)) if !h.is_empty() && !t.is_empty() => (h, Some(t)),
        _ => {
            let cut = name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
            if cut > 0 && cut < name.len() {
                (&name[..cut], Some(&name[cut..]))
            } else {
                (name, None)
            }
        }
    };
    let head = latex_word(head, false);
    match tail {
        Some(t) => format!("{head}_{{{}}}", latex_word(t, true)),
        None => head,
    }
}

fn latex_num(v: f64) -> Out {
    let sign = if v < 0.0 { "-" } else { "" };
    if let Some((p, q)) = small_fraction(v.abs(), false) {
        let prec = if v < 0.0 { Prec::Neg } else { Prec::Atom };
        return (format!("{sign}\\frac{{{p}}}{{{q}}}"), prec);
    }
    let s = digits(v.abs());
    match s.split_once('e') {
        Some((m, x)) => {
            let s = if m == "1" {
                format!("{sign}10^{{{x}}}")
            } else {
                format!("{sign}{m} \\times 10^{{{x}}}")
            };
            (s, if v < 0.0 { Prec::Neg } else { Prec::Product })
        }
        None => (
            format!("{sign}{s}"),
            if v < 0.0 { Prec::Neg } else { Prec::Atom },
        ),
    }
}

fn lparen(out: Out, min: Prec) -> String {
    wrap(out, min, "\\left(", "\\right)")
}

fn latex_func(f: Func) -> &'static str {
    match f {
        Func::Exp => "\\exp",
        Func::Ln => "\\ln",
        Func::Sin => "\\sin",
        Func::Cos => "\\cos",
        Func::Tan => "\\tan",
        Func::Sinh => "\\sinh",
        Func::Cosh => "\\cosh",
        Func::Tanh => "\\tanh",
        Func::Asin => "\\arcsin",
        Func::Acos => "\\arccos",
        Func::Atan => "\\arctan",
        Func::Asinh => "\\operatorname{arsinh}",
        Func::Acosh => "\\operatorname{arcosh}",
        Func::Atanh => "\\operatorname{artanh}",
    }
}

fn latex(e: &Expr) -> Out {
    match e.node() {
        Node::Num(n) => latex_num(n.get()),
        Node::Const(Constant::Pi) => ("\\pi".to_string(), Prec::Atom),
        Node::Const(Constant::E) => ("e".to_string(), Prec::Atom),
        Node::Sym(s) => (latex_symbol(s), Prec::Atom),
        Node::Add(terms) => {
            let mut s = String::new();
            for (i, t) in sum_terms(terms).into_iter().enumerate() {
                if i == 0 {
                    s.push_str(&latex_term(&t).0);
                } else {
                    s.push_str(if t.neg { " - " } else { " + " });
                    let mag = Term { neg: false, ..t };
                    s.push_str(&lparen(latex_term(&mag), Prec::Neg));
                }
            }
            (s, Prec::Sum)
        }
        Node::Mul(_) => latex_term(&Term::of(e)),
        Node::Pow(b, x) => match x.as_num() {
            Some(n) if n < 0.0 => latex_term(&Term::of(e)),
            Some(n) => latex_power(b, n),
            None => {
                let base = lparen(latex(b), Prec::Atom);
                (format!("{base}^{{{}}}", latex(x).0), Prec::Power)
            }
        },
        Node::Func(Func::Exp, a) => {
            let arg = latex(a).0;
            if arg.len() <= 16 && !arg.contains("\\frac") {
                (format!("e^{{{arg}}}"), Prec::Power)
            } else {
                (format!("\\exp\\left({arg}\\right)"), Prec::Atom)
            }
        }
        Node::Func(f, a) => (
            format!("{}\\left({}\\right)", latex_func(*f), latex(a).0),
            Prec::Atom,
        ),
    }
}

/// `b^k` for a numeric `k >= 0`, as LaTeX.
fn latex_power(b: &Expr, k: f64) -> Out {
    if k == 1.0 {
        latex(b)
    } else if k == 0.5 {
        (format!("\\sqrt{{{}}}", latex(b).0), Prec::Atom)
    } else if k == 1.0 / 3.0 {
        (format!("\\sqrt[3]{{{}}}", latex(b).0), Prec::Atom)
    } else {
        let base = lparen(latex(b), Prec::Atom);
        (format!("{base}^{{{}}}", latex_num(k).0), Prec::Power)
    }
}

/// Juxtaposes factors, with `\cdot` before one that starts with a digit.
fn juxtapose(parts: Vec<String>) -> String {
    let mut s = String::new();
    for (i, p) in parts.into_iter().enumerate() {
        if i > 0 {
            let digit = p.starts_with(|c: char| c.is_ascii_digit());
            s.push_str(if digit { " \\cdot " } else { " " });
        }
        s.push_str(&p);
    }
    s
}

/// `tan(u)^k` for a positive `k`, as LaTeX (`\tan^{2}\left(u\right)`).
fn latex_tan(u: &Expr, k: f64) -> Out {
    let power = if k == 1.0 {
        String::new()
    } else {
        format!("^{{{}}}", latex_num(k).0)
    };
    (
        format!("\\tan{power}\\left({}\\right)", latex(u).0),
        Prec::Atom,
    )
}

fn latex_term(t: &Term<'_>) -> Out {
    let mut num: Vec<Out> = Vec::new();
    let mut den: Vec<Out> = Vec::new();
    match small_fraction(t.coeff, true) {
        Some((p, q)) => {
            if p != 1 || t.factors.iter().all(|f| neg_exponent(f).is_some()) {
                num.push((p.to_string(), Prec::Atom));
            }
            den.push((q.to_string(), Prec::Atom));
        }
        None if t.coeff != 1.0 || t.factors.is_empty() => num.push(latex_num(t.coeff)),
        None => {}
    }
    for f in printed_factors(t.factors) {
        match f {
            Factor::Tan(u, k) if k < 0.0 => den.push(latex_tan(u, -k)),
            Factor::Tan(u, k) => num.push(latex_tan(u, k)),
            Factor::Plain(f) => match neg_exponent(f) {
                Some((b, k)) => den.push(latex_power(b, k)),
                None => num.push(latex(f)),
            },
        }
    }
    let sign = if t.neg { "-" } else { "" };
    if den.is_empty() && num.len() == 1 {
        let out = num.pop().expect("one factor");
        return if t.neg {
            (format!("-{}", lparen(out, Prec::Product)), Prec::Neg)
        } else {
            out
        };
    }
    let side = |mut parts: Vec<Out>| {
        if parts.len() == 1 {
            parts.pop().expect("one").0
        } else {
            juxtapose(
                parts
                    .into_iter()
                    .map(|o| lparen(o, Prec::Product))
                    .collect(),
            )
        }
    };
    let body = if den.is_empty() {
        juxtapose(num.into_iter().map(|o| lparen(o, Prec::Product)).collect())
    } else {
        let n = if num.is_empty() {
            "1".to_string()
        } else {
            side(num)
        };
        format!("\\frac{{{n}}}{{{}}}", side(den))
    };
    (
        format!("{sign}{body}"),
        if t.neg { Prec::Neg } else { Prec::Product },
    )
}

// ---------------------------------------------------------------------------
// Rust source

/// A non-negative literal that Rust reads as this exact f64: `0.5_f64`, `20_f64`,
/// `1e-5_f64`.
///
/// Non-finite values (only from folding absurd magnitudes) print as `f64::INFINITY` /
/// `f64::NAN`, which `parse` reads back.
fn rust_lit(v: f64) -> String {
    if v.is_nan() {
        "f64::NAN".to_string()
    } else if v.is_infinite() {
        "f64::INFINITY".to_string()
    } else {
        format!("{}_f64", digits(v))
    }
}

/// How a power is written in Rust's method form.
pub(crate) enum RustPower<O> {
    /// `u.sqrt()` (exponent ½).
    Sqrt,
    /// `u.recip()` (exponent −1).
    Recip,
    /// `u.powi(n)` (an integer exponent).
    Powi(i32),
    /// `u.powf(p)`.
    Powf(O),
}

/// What the Rust-form walker ([`rust_form`]) builds: text ([`RustText`]) or a compiled
/// evaluator (`compile.rs`). The walker fixes the operations and their order, so a
/// compiled expression computes what the generated Rust computes, operation for
/// operation.
pub(crate) trait RustForm {
    /// A built sub-expression.
    type Out;
    /// A non-negative literal.
    fn literal(&mut self, v: f64) -> Self::Out;
    /// `PI` or `E`.
    fn constant(&mut self, c: Constant) -> Self::Out;
    /// A symbol.
    fn symbol(&mut self, name: &str) -> Self::Out;
    /// `-u`.
    fn negate(&mut self, u: Self::Out) -> Self::Out;
    /// `first ± rest[0] ± ...`, left to right (`true`: subtract).
    fn sum(&mut self, first: Self::Out, rest: Vec<(bool, Self::Out)>) -> Self::Out;
    /// `±num[0] * num[1] * ... / den[0] / ...`, left to right; at least one numerator.
    fn product(&mut self, neg: bool, num: Vec<Self::Out>, den: Vec<Self::Out>) -> Self::Out;
    /// `base.sqrt()`, `base.recip()`, `base.powi(n)`, `base.powf(p)`.
    fn power(&mut self, base: Self::Out, power: RustPower<Self::Out>) -> Self::Out;
    /// `arg.f()`.
    fn call(&mut self, f: Func, arg: Self::Out) -> Self::Out;
}

/// Walks `e` in Rust's method form: sums in printing order with subtractions, products
/// as a sign, a coefficient, numerator factors and divisions by the powers of exponent
/// exactly −1 (so that the text lowers back to the same powers).
pub(crate) fn rust_form<B: RustForm>(b: &mut B, e: &Expr) -> B::Out {
    match e.node() {
        Node::Num(n) => {
            let v = n.get();
            if v < 0.0 {
                let magnitude = b.literal(-v);
                b.negate(magnitude)
            } else {
                b.literal(v)
            }
        }
        Node::Const(c) => b.constant(*c),
        Node::Sym(s) => b.symbol(s),
        Node::Add(terms) => {
            let mut terms = sum_terms(terms).into_iter();
            let first = terms.next().expect("a sum has terms");
            let first = rust_term(b, &first);
            let rest = terms
                .map(|t| (t.neg, rust_term(b, &Term { neg: false, ..t })))
                .collect();
            b.sum(first, rest)
        }
        Node::Mul(_) => rust_term(b, &Term::of(e)),
        Node::Pow(base, x) => {
            let recv = rust_form(b, base);
            let power = match x.as_num() {
                Some(0.5) => RustPower::Sqrt,
                Some(-1.0) => RustPower::Recip,
                Some(n) if n.fract() == 0.0 && n.abs() <= f64::from(i32::MAX) => {
                    RustPower::Powi(n as i32)
                }
                _ => RustPower::Powf(rust_form(b, x)),
            };
            b.power(recv, power)
        }
        Node::Func(f, a) => {
            let arg = rust_form(b, a);
            b.call(*f, arg)
        }
    }
}

fn rust_term<B: RustForm>(b: &mut B, t: &Term<'_>) -> B::Out {
    let mut num = Vec::new();
    let mut den = Vec::new();
    if t.coeff != 1.0 {
        num.push(b.literal(t.coeff));
    }
    for f in t.factors {
        match neg_exponent(f) {
            Some((base, 1.0)) => den.push(rust_form(b, base)),
            _ => num.push(rust_form(b, f)),
        }
    }
    if num.is_empty() {
        num.push(b.literal(1.0));
    }
    b.product(t.neg, num, den)
}

/// Rust source text. Precedences here: `Sum` for `a + b`, `Product` for `a * b`
/// (including a leading unary minus such as `-a * b`), `Neg` for `-a`, `Atom` for
/// names, non-negative literals and method calls.
struct RustText<'a> {
    name: &'a dyn Fn(&str) -> String,
}

impl RustForm for RustText<'_> {
    type Out = Out;

    fn literal(&mut self, v: f64) -> Out {
        (rust_lit(v), Prec::Atom)
    }

    fn constant(&mut self, c: Constant) -> Out {
        (c.name().to_string(), Prec::Atom)
    }

    fn symbol(&mut self, name: &str) -> Out {
        ((self.name)(name), Prec::Atom)
    }

    fn negate(&mut self, u: Out) -> Out {
        (format!("-{}", wrap(u, Prec::Atom, "(", ")")), Prec::Neg)
    }

    fn sum(&mut self, first: Out, rest: Vec<(bool, Out)>) -> Out {
        let mut s = first.0;
        for (neg, t) in rest {
            s.push_str(if neg { " - " } else { " + " });
            s.push_str(&wrap(t, Prec::Product, "(", ")"));
        }
        (s, Prec::Sum)
    }

    fn product(&mut self, neg: bool, mut num: Vec<Out>, den: Vec<Out>) -> Out {
        if den.is_empty() && num.len() == 1 {
            let out = num.pop().expect("one factor");
            return if neg { self.negate(out) } else { out };
        }
        let parts: Vec<String> = num
            .into_iter()
            .map(|o| wrap(o, Prec::Atom, "(", ")"))
            .collect();
        let mut s = format!("{}{}", if neg { "-" } else { "" }, parts.join(" * "));
        for d in den {
            s.push_str(" / ");
            s.push_str(&wrap(d, Prec::Atom, "(", ")"));
        }
        (s, Prec::Product)
    }

    fn power(&mut self, base: Out, power: RustPower<Out>) -> Out {
        let call = match power {
            RustPower::Sqrt => "sqrt()".to_string(),
            RustPower::Recip => "recip()".to_string(),
            RustPower::Powi(n) => format!("powi({n})"),
            RustPower::Powf(p) => format!("powf({})", p.0),
        };
        (
            format!("{}.{call}", wrap(base, Prec::Atom, "(", ")")),
            Prec::Atom,
        )
    }

    fn call(&mut self, f: Func, arg: Out) -> Out {
        (
            format!("{}.{}()", wrap(arg, Prec::Atom, "(", ")"), f.name()),
            Prec::Atom,
        )
    }
}

impl Expr {
    /// LaTeX: `\frac{..}{..}` for quotients, `\sqrt{..}`, `e^{..}` (or
    /// `\exp\left(..\right)` for long arguments), `\ln`, `\sin`, ..., `\pi`, and symbols
    /// with Greek letters and subscripts (`beta_min` → `\beta_{\mathrm{min}}`).
    ///
    /// ```
    /// use sbdm_symbolic::Expr;
    /// let (t, beta) = (Expr::sym("t"), Expr::sym("beta"));
    /// assert_eq!((beta.sqrt() / t).to_latex(), r"\frac{\sqrt{\beta}}{t}");
    /// ```
    pub fn to_latex(&self) -> String {
        latex(self).0
    }

    /// A Rust `f64` expression: method form (`(1_f64 + t).ln()`, `u.powi(3)`,
    /// `u.powf(p)`, `u.sqrt()`, `u.recip()`), every literal suffixed `_f64`, each
    /// symbol printed as `name(symbol)` — which must be a name, a field access or
    /// another postfix expression — and the constants as `PI` and `E`, which the
    /// surrounding code must bind.
    ///
    /// ```
    /// use sbdm_symbolic::Expr;
    /// let (t, beta) = (Expr::sym("t"), Expr::sym("beta"));
    /// let e = -0.5 * beta.sqrt() / t;
    /// assert_eq!(e.to_rust(&|s| format!("self.{s}")), "-0.5_f64 * self.beta.sqrt() / self.t");
    /// ```
    pub fn to_rust(&self, name: &dyn Fn(&str) -> String) -> String {
        rust_form(&mut RustText { name }, self).0
    }

    /// [`Expr::to_rust`] with symbols as they are: what [`crate::parse`] and
    /// [`crate::Ast::lower`] read back to an equal expression.
    pub fn to_source(&self) -> String {
        self.to_rust(&|s| s.to_string())
    }
}
