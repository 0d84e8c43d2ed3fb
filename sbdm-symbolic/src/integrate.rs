//! Table-driven integration in one variable.
//!
//! The integrand is expanded and its terms are grouped by their non-polynomial
//! ("transcendental") part: `Σ_k c_k(t)·h_k(t)` with `c_k` a polynomial in the
//! variable and `h_k` the product of the remaining factors (exponentials and constant
//! powers merged into one exponential). Each group is then integrated by the first
//! rule that applies:
//!
//! | rule | integrand | antiderivative |
//! |------|-----------|----------------|
//! | `poly` | `Σ c_j t^j` | `Σ c_j t^(j+1)/(j+1)` |
//! | `derivative-divides` | `κ·u'(t)·h(u(t))`, κ free of `t` | `κ·H(u)` with `H` from [`primitive`] |
//! | `by-parts` | `c(t)·f(a t + b)`, `c` polynomial, `f` ∈ {exp, b^u, sin, cos, sinh, cosh} | `Σ_k (-1)^k c^(k)(t) F_(k+1)(u) / a^(k+1)` |
//!
//! No rule guesses: a group that none of them covers makes the whole integral
//! [`NotIntegrable`], naming that group.

use std::collections::BTreeMap;
use std::fmt;

use crate::expr::{Constant, Expr, Func, Node};

/// The integrand has no antiderivative the table knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotIntegrable {
    /// The term that could not be integrated, printed as text.
    pub term: String,
}

impl NotIntegrable {
    fn new(term: &Expr) -> Self {
        NotIntegrable {
            term: format!("{term}"),
        }
    }
}

impl fmt::Display for NotIntegrable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no closed-form antiderivative known for `{}`", self.term)
    }
}

impl std::error::Error for NotIntegrable {}

impl Expr {
    /// An antiderivative with respect to `var` (no constant of integration added).
    ///
    /// Table-driven: linearity, polynomials (`t^-1` gives `ln(t)`), the
    /// derivative-divides rule `∫ κ u'(t) h(u(t)) dt = κ H(u)` for `h` among exp, ln,
    /// sin, cos, tan, sinh, cosh, tanh, the inverse functions, `u^n` (`u^-1` gives
    /// `ln(u)`) and `b^u`, and integration by parts for a polynomial times exp, `b^t`,
    /// sin, cos, sinh or cosh of a linear function. Anything else is
    /// [`NotIntegrable`] — it never returns a wrong antiderivative.
    ///
    /// ```
    /// use sbdm_symbolic::Expr;
    /// let t = Expr::sym("t");
    /// let f = (2.0 * &t * Expr::powi(t.clone(), 2).cos()).integrate("t").unwrap();
    /// assert_eq!(f, Expr::powi(t.clone(), 2).sin());
    /// assert!(Expr::powi(t.clone(), 2).exp().integrate("t").is_err());
    /// ```
    pub fn integrate(&self, var: &str) -> Result<Expr, NotIntegrable> {
        if !self.contains(var) {
            return Ok(Expr::mul([self.clone(), Expr::sym(var)]));
        }
        // The whole product first: `(1 + sin t)·exp(t - cos t)` is `u'·exp(u)`, which
        // expanding would split into two groups that are not integrable on their own.
        // (Not for polynomials: there the term-by-term rule gives the plain form, where
        // reading a sum as `u^1` would divide by its derivative's parameters.)
        if matches!(self.node(), Node::Mul(_)) && self.poly_coeffs(var).is_none() {
            if let Some(f) = derivative_divides(&Expr::one(), self, var) {
                return Ok(f);
            }
        }
        let mut groups: BTreeMap<Expr, Vec<Expr>> = BTreeMap::new();
        for term in self.expand().terms() {
            let (c, h) = split_term(&term, var);
            groups.entry(h).or_default().push(c);
        }
        let mut out = Vec::with_capacity(groups.len());
        for (h, cs) in groups {
            let c = Expr::add(cs);
            if c.is_zero() {
                continue;
            }
            match integrate_group(&c, &h, var) {
                Some(f) => out.push(f),
                None => return Err(NotIntegrable::new(&Expr::mul([c, h]))),
            }
        }
        Ok(Expr::add(out))
    }

    /// The definite integral `F(hi) - F(lo)` with `F` = [`Expr::integrate`].
    pub fn integrate_definite(
        &self,
        var: &str,
        lo: &Expr,
        hi: &Expr,
    ) -> Result<Expr, NotIntegrable> {
        let f = self.integrate(var)?;
        Ok(f.subs(var, hi) - f.subs(var, lo))
    }
}

/// Whether `e` is `var` or `var^n` for a positive integer `n`.
fn is_var_power(e: &Expr, var: &str) -> bool {
    let is_var = |e: &Expr| matches!(e.node(), Node::Sym(s) if &**s == var);
    match e.node() {
        Node::Pow(b, n) => is_var(b) && n.as_num().is_some_and(|n| n >= 1.0 && n.fract() == 0.0),
        _ => is_var(e),
    }
}

/// Splits an expanded term into its polynomial part (factors free of `var` and
/// powers of `var`) and the rest. Exponentials and powers with a constant base are
/// merged into a single exponential when there is more than one of them, so that
/// equal transcendental parts group together.
fn split_term(term: &Expr, var: &str) -> (Expr, Expr) {
    let mut poly = Vec::new();
    let mut exp_args = Vec::new();
    let mut const_pows: Vec<(Expr, Expr)> = Vec::new();
    let mut rest = Vec::new();
    for f in term.factors() {
        if !f.contains(var) || is_var_power(&f, var) {
            poly.push(f);
            continue;
        }
        match f.node() {
            Node::Func(Func::Exp, a) => exp_args.push(a.clone()),
            Node::Pow(b, e) if !b.contains(var) => const_pows.push((b.clone(), e.clone())),
            _ => rest.push(f),
        }
    }
    let merged = if const_pows.len() == 1 && exp_args.is_empty() {
        let (b, e) = const_pows.pop().expect("one power");
        Some(Expr::pow(b, e.expand()))
    } else if !const_pows.is_empty() || !exp_args.is_empty() {
        let logs = const_pows.into_iter().map(|(b, e)| Expr::mul([e, b.ln()]));
        Some(Expr::add(exp_args.into_iter().chain(logs)).expand().exp())
    } else {
        None
    };
    if let Some(m) = merged {
        if m.contains(var) {
            rest.push(m);
        } else {
            poly.push(m);
        }
    }
    (Expr::mul(poly), Expr::mul(rest))
}

/// Integrates `c(t)·h(t)` with `c` a polynomial in `var`.
fn integrate_group(c: &Expr, h: &Expr, var: &str) -> Option<Expr> {
    let coeffs = c.poly_coeffs(var)?;
    if h.is_one() {
        return Some(poly_integral(&coeffs, var));
    }
    derivative_divides(c, h, var).or_else(|| by_parts(c, h, var))
}

/// `∫ Σ c_j t^j dt = Σ c_j t^(j+1)/(j+1)`, the number folded into a sum's content
/// (`0.5*(bmax - bmin)*t^2`, not `0.5*(0.5*bmax - 0.5*bmin)*t^2`).
fn poly_integral(coeffs: &[Expr], var: &str) -> Expr {
    let t = Expr::sym(var);
    Expr::add(coeffs.iter().enumerate().map(|(j, c)| {
        let n = j as f64 + 1.0;
        let (k, factors) = content(c);
        Expr::mul(
            [Expr::num(k / n), Expr::powf(t.clone(), n)]
                .into_iter()
                .chain(factors),
        )
    }))
}

/// The derivative-divides rule: for some factor `g` of `h` with `g = f(u)` and a
/// known `H` with `H' = f`, `c·(h/g) = κ u'` with κ free of `var` gives `κ H(u)`.
fn derivative_divides(c: &Expr, h: &Expr, var: &str) -> Option<Expr> {
    let factors = h.factors();
    for (i, g) in factors.iter().enumerate() {
        let others = factors
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != i)
            .map(|(_, f)| f.clone());
        let num = Expr::mul(std::iter::once(c.clone()).chain(others));
        for (u, big_h) in primitives(g, var) {
            let du = u.diff(var);
            if du.is_zero() {
                continue;
            }
            if let Some(k) = quotient_free_of(&num, &du, var) {
                return Some(Expr::mul([k, big_h]));
            }
        }
        if let Some(f) = split_exponential(&num, g, var) {
            return Some(f);
        }
    }
    None
}

/// `exp(w)` with `w = u + r` read as `exp(r)·exp(u)`: for every split of the terms of `w`
/// (at most 6 terms), `∫ num·exp(r)·exp(u) = κ exp(u)` when `num·exp(r) = κ u'`.
/// This finds `∫ c e^{kt} exp((c/k) e^{kt}) dt`, whose exponents the canonical form merges.
fn split_exponential(num: &Expr, g: &Expr, var: &str) -> Option<Expr> {
    let Node::Func(Func::Exp, w) = g.node() else {
        return None;
    };
    let terms = w.terms();
    let n = terms.len();
    if !(2..=6).contains(&n) {
        return None;
    }
    for mask in 1..(1u32 << n) - 1 {
        let (mut u, mut r) = (Vec::new(), Vec::new());
        for (i, term) in terms.iter().enumerate() {
            if mask & (1 << i) != 0 {
                u.push(term.clone());
            } else {
                r.push(term.clone());
            }
        }
        let u = Expr::add(u);
        let du = u.diff(var);
        if du.is_zero() {
            continue;
        }
        let num2 = Expr::mul([num.clone(), Expr::add(r).exp()]);
        if let Some(k) = quotient_free_of(&num2, &du, var) {
            return Some(Expr::mul([k, u.exp()]));
        }
    }
    None
}

/// The ways of reading `g` as `f(u)` with a known primitive `H(u)` (`H' = f`), as
/// `(u, H(u))` pairs: the function table, `u^n`, `b^u`, and `g` itself as `u^1`.
fn primitives(g: &Expr, var: &str) -> Vec<(Expr, Expr)> {
    let mut out = Vec::new();
    match g.node() {
        Node::Func(f, u) => {
            if let Some(h) = primitive(*f, u) {
                out.push((u.clone(), h));
            }
        }
        Node::Pow(u, n) if u.contains(var) && !n.contains(var) => {
            if let Some(n) = n.as_num() {
                let h = if n == -1.0 {
                    u.ln()
                } else {
                    Expr::mul([Expr::powf(u.clone(), n + 1.0), Expr::num(1.0 / (n + 1.0))])
                };
                out.push((u.clone(), h));
            }
        }
        Node::Pow(b, u) if !b.contains(var) => out.push((u.clone(), const_base_primitive(b, u, 1))),
        _ => {}
    }
    out.push((
        g.clone(),
        Expr::mul([Expr::powi(g.clone(), 2), Expr::num(0.5)]),
    ));
    out
}

/// `H(u)` with `H'(u) = f(u)`, one line per function; `None` where the table has none.
fn primitive(f: Func, u: &Expr) -> Option<Expr> {
    let one = Expr::one;
    let sq = |e: &Expr| Expr::powi(e.clone(), 2);
    Some(match f {
        Func::Exp => u.exp(),
        Func::Ln => u * u.ln() - u,
        Func::Sin => -u.cos(),
        Func::Cos => u.sin(),
        Func::Tan => -u.cos().ln(),
        Func::Sinh => u.cosh(),
        Func::Cosh => u.sinh(),
        Func::Tanh => u.cosh().ln(),
        Func::Asin => u * Expr::func(Func::Asin, u.clone()) + (one() - sq(u)).sqrt(),
        Func::Acos => u * Expr::func(Func::Acos, u.clone()) - (one() - sq(u)).sqrt(),
        Func::Atan => u * Expr::func(Func::Atan, u.clone()) - 0.5 * (one() + sq(u)).ln(),
        Func::Asinh => u * Expr::func(Func::Asinh, u.clone()) - (sq(u) + 1.0).sqrt(),
        Func::Acosh => u * Expr::func(Func::Acosh, u.clone()) - (sq(u) - 1.0).sqrt(),
        Func::Atanh => u * Expr::func(Func::Atanh, u.clone()) + 0.5 * (one() - sq(u)).ln(),
    })
}

/// The `k`-th iterated primitive of `b^u` in `u`: `b^u / ln(b)^k`.
fn const_base_primitive(b: &Expr, u: &Expr, k: i32) -> Expr {
    if matches!(b.node(), Node::Const(Constant::E)) {
        return u.exp();
    }
    Expr::mul([Expr::pow(b.clone(), u.clone()), Expr::powi(b.ln(), -k)])
}

/// `num / den` when it is free of `var`, `None` otherwise (or when it cannot tell).
///
/// Polynomials in `var` are compared coefficient by coefficient; anything else is
/// divided factor by factor, cancelling equal bases.
fn quotient_free_of(num: &Expr, den: &Expr, var: &str) -> Option<Expr> {
    if let (Some(mut nc), Some(mut dc)) = (num.poly_coeffs(var), den.poly_coeffs(var)) {
        trim(&mut nc);
        trim(&mut dc);
        if nc.len() != dc.len() {
            return None;
        }
        let mut k: Option<Expr> = None;
        for (n, d) in nc.iter().zip(&dc) {
            if d.is_zero() {
                if !n.is_zero() {
                    return None;
                }
                continue;
            }
            let r = divide(n, d);
            match &k {
                None => k = Some(r),
                Some(k0) if *k0 == r => {}
                Some(_) => return None,
            }
        }
        return k;
    }
    let q = divide(num, den);
    (!q.contains(var)).then_some(q)
}

fn trim(c: &mut Vec<Expr>) {
    while c.last().is_some_and(Expr::is_zero) {
        c.pop();
    }
}

/// `a / b`, cancelling common factors. Sums are first written as a number times a
/// sum whose first term has coefficient 1, so `0.5*p - 0.5*q` cancels against `p - q`.
fn divide(a: &Expr, b: &Expr) -> Expr {
    let (ka, fa) = content(a);
    let (kb, fb) = content(b);
    let inv = fb.into_iter().map(|f| f.recip());
    Expr::mul(std::iter::once(Expr::num(ka / kb)).chain(fa).chain(inv))
}

/// The numeric content and the primitive factors of a product.
fn content(e: &Expr) -> (f64, Vec<Expr>) {
    let mut k = 1.0;
    let mut out = Vec::new();
    for f in e.factors() {
        match f.node() {
            Node::Num(n) => k *= n.get(),
            Node::Add(_) => {
                let (c, p) = primitive_sum(&f);
                k *= c;
                out.push(p);
            }
            Node::Pow(b, n) if matches!(b.node(), Node::Add(_)) => {
                match n.as_num().filter(|n| n.fract() == 0.0 && n.abs() <= 64.0) {
                    Some(n) => {
                        let (c, p) = primitive_sum(b);
                        k *= c.powi(n as i32);
                        out.push(Expr::powf(p, n));
                    }
                    None => out.push(f),
                }
            }
            _ => out.push(f),
        }
    }
    (k, out)
}

/// `s = c · p` where the first term of `p` has coefficient 1.
fn primitive_sum(s: &Expr) -> (f64, Expr) {
    let terms = s.terms();
    let (c, _) = terms[0].split_coeff();
    if c == 0.0 || c == 1.0 {
        return (1.0, s.clone());
    }
    (
        c,
        Expr::add(
            terms
                .into_iter()
                .map(|t| Expr::mul([t, Expr::num(1.0 / c)])),
        ),
    )
}

/// Tabular integration by parts: `∫ c(t) f(a t + b) dt = Σ_k (-1)^k c^(k)(t) F_(k+1)(u) / a^(k+1)`
/// for a polynomial `c` and `F_k` the `k`-th iterated primitive of `f`.
fn by_parts(c: &Expr, h: &Expr, var: &str) -> Option<Expr> {
    let (u, kind) = match h.node() {
        Node::Func(f @ (Func::Exp | Func::Sin | Func::Cos | Func::Sinh | Func::Cosh), u) => {
            (u.clone(), Periodic::Func(*f))
        }
        Node::Pow(b, u) if !b.contains(var) => (u.clone(), Periodic::ConstBase(b.clone())),
        _ => return None,
    };
    let mut uc = u.poly_coeffs(var)?;
    trim(&mut uc);
    if uc.len() != 2 {
        return None;
    }
    let a = uc[1].clone();
    let degree = c.poly_coeffs(var)?.len();
    if degree > 64 {
        return None;
    }
    // Terms grouped by their function part: `exp(u)·(...)`, `sin(u)·(...) + cos(u)·(...)`.
    let mut groups: BTreeMap<Expr, Vec<Expr>> = BTreeMap::new();
    let mut ck = c.clone();
    let mut k = 0i32;
    while !ck.is_zero() {
        let sign = if k % 2 == 0 { 1.0 } else { -1.0 };
        let (coef, func) = kind.iterated_primitive(&u, k + 1);
        groups.entry(func).or_default().push(Expr::mul([
            Expr::num(sign),
            ck.clone(),
            coef,
            Expr::powi(a.clone(), -(k + 1)),
        ]));
        ck = ck.diff(var);
        k += 1;
    }
    Some(Expr::add(
        groups
            .into_iter()
            .map(|(func, coefs)| Expr::mul([func, Expr::add(coefs)])),
    ))
}

/// The outer functions integration by parts repeats through.
enum Periodic {
    Func(Func),
    ConstBase(Expr),
}

impl Periodic {
    /// The `k`-th iterated primitive (`k >= 1`) in `u`, as `(coefficient, function)`.
    fn iterated_primitive(&self, u: &Expr, k: i32) -> (Expr, Expr) {
        let f = match self {
            Periodic::ConstBase(b) if !matches!(b.node(), Node::Const(Constant::E)) => {
                return (Expr::powi(b.ln(), -k), Expr::pow(b.clone(), u.clone()));
            }
            Periodic::ConstBase(_) => Func::Exp,
            Periodic::Func(f) => *f,
        };
        use Func::{Cos, Cosh, Sin, Sinh};
        let k = k.rem_euclid(4) as usize;
        let (sign, g) = match f {
            Func::Exp => (1.0, Func::Exp),
            Sin => [(1.0, Sin), (-1.0, Cos), (-1.0, Sin), (1.0, Cos)][k],
            Cos => [(1.0, Cos), (1.0, Sin), (-1.0, Cos), (-1.0, Sin)][k],
            Sinh => [(1.0, Sinh), (1.0, Cosh)][k % 2],
            Cosh => [(1.0, Cosh), (1.0, Sinh)][k % 2],
            _ => unreachable!("by_parts only builds exp, sin, cos, sinh, cosh"),
        };
        (Expr::num(sign), Expr::func(g, u.clone()))
    }
}
