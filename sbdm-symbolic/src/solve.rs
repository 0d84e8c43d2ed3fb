//! Solving `f(t) = y` for `t` by peeling invertible operations.
//!
//! The left-hand side is unwrapped from the outside in, each step moving one
//! invertible operation to the right-hand side:
//!
//! | lhs | becomes |
//! |-----|---------|
//! | `u + rest` (only `u` depends on `t`) | `u = y - rest` |
//! | `u · rest` (only `u` depends on `t`) | `u = y / rest` |
//! | `u^c` (`c` free of `t`) | `u = y^(1/c)` (and `-y^(1/c)` for even `c`) |
//! | `c^u` (`c` free of `t`) | `u = ln(y) / ln(c)` |
//! | `f(u)` | `u = f⁻¹(y)` (other branches of sin, cos, cosh as extra candidates) |
//! | a polynomial of degree 1 or 2 in `t` | its roots, in the cancellation-free form |
//!
//! Anything else (the variable in two operands of a node that is not a polynomial)
//! has no solution here. Branches are only candidates: the caller checks numerically
//! which one inverts the function on its range.

use crate::expr::{Expr, Func, Node};

/// Solves `lhs(var) = rhs` for `var` (`rhs` free of `var`): the principal branch,
/// or `None` when the peeling rules do not reach `var`.
#[allow(
    dead_code,
    reason = "the principal-branch entry point; the SDE derivation checks every branch"
)]
pub(crate) fn solve_for(lhs: &Expr, var: &str, rhs: &Expr) -> Option<Expr> {
    solve_for_all(lhs, var, rhs).into_iter().next()
}

/// Every candidate solution of `lhs(var) = rhs`, the principal branch first: both
/// roots of a quadratic, `±` for even powers, the second branch of `sin`, `cos`
/// and `cosh`. Empty when the peeling rules do not reach `var`.
pub(crate) fn solve_for_all(lhs: &Expr, var: &str, rhs: &Expr) -> Vec<Expr> {
    if rhs.contains(var) || !lhs.contains(var) {
        return Vec::new();
    }
    let mut out: Vec<Expr> = Vec::new();
    for s in peel(lhs, var, rhs) {
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

/// Reads a product whose `var`-dependent factors are `sin(u)^k·cos(u)^-k` (or
/// `sinh(u)^k·cosh(u)^-k`) as `tan(u)^k` (`tanh(u)^k`) times the rest: the function,
/// `u`, `k` and the rest. `tan`/`tanh` below stand for atan/atanh inversion.
fn as_tangent(factors: &[Expr], var: &str) -> Option<(Func, Expr, f64, Vec<Expr>)> {
    let (dep, rest): (Vec<&Expr>, Vec<&Expr>) = factors.iter().partition(|f| f.contains(var));
    if dep.len() != 2 {
        return None;
    }
    let power = |e: &Expr| -> Option<(Expr, f64)> {
        match e.node() {
            Node::Pow(b, p) => Some((b.clone(), p.as_num()?)),
            _ => Some((e.clone(), 1.0)),
        }
    };
    for (num, den, quot) in [
        (Func::Sin, Func::Cos, Func::Tan),
        (Func::Sinh, Func::Cosh, Func::Tanh),
    ] {
        for (a, b) in [(dep[0], dep[1]), (dep[1], dep[0])] {
            let (Some((a, k)), Some((c, p))) = (power(a), power(b)) else {
                continue;
            };
            if let Node::Func(f, u) = a.node() {
                if *f == num && k > 0.0 && p == -k && c == Expr::func(den, u.clone()) {
                    let rest = rest.into_iter().cloned().collect();
                    return Some((quot, u.clone(), k, rest));
                }
            }
        }
    }
    None
}

/// One peeling step (recursive); `lhs` contains `var`.
fn peel(lhs: &Expr, var: &str, rhs: &Expr) -> Vec<Expr> {
    match lhs.node() {
        Node::Sym(_) => vec![rhs.clone()],
        Node::Add(terms) => match split_dependent(terms, var) {
            Some((u, rest)) => peel(&u, var, &Expr::add([rhs.clone(), -Expr::add(rest)])),
            None => polynomial_roots(lhs, var, rhs),
        },
        Node::Mul(factors) => match split_dependent(factors, var) {
            Some((u, rest)) => peel(&u, var, &Expr::mul([rhs.clone(), Expr::mul(rest).recip()])),
            None => match as_tangent(factors, var) {
                // The canonical form writes tan(u)^k as sin(u)^k/cos(u)^k: the k-th
                // root (both signs for even k), then the inverse tangent.
                Some((f, u, k, rest)) => {
                    let y = Expr::mul([rhs.clone(), Expr::mul(rest).recip()]);
                    let root = Expr::powf(y, 1.0 / k);
                    let mut roots = vec![root.clone()];
                    if k % 2.0 == 0.0 {
                        roots.push(-root);
                    }
                    roots
                        .iter()
                        .flat_map(|r| inverse(f, r))
                        .flat_map(|r| peel(&u, var, &r))
                        .collect()
                }
                None => match mobius_power(factors, var, rhs) {
                    Some(roots) => roots,
                    None => polynomial_roots(lhs, var, rhs),
                },
            },
        },
        Node::Pow(u, c) if !c.contains(var) => {
            let root = Expr::pow(rhs.clone(), c.recip());
            let mut branches = vec![root.clone()];
            if let Some(n) = c.as_num().filter(|n| n.fract() == 0.0) {
                if n % 2.0 == 0.0 {
                    branches.push(-root);
                } else if n.abs() >= 3.0 {
                    // The real odd root of a negative number.
                    branches.push(-Expr::pow(-rhs, c.recip()));
                }
            }
            branches.iter().flat_map(|r| peel(u, var, r)).collect()
        }
        Node::Pow(b, u) if !b.contains(var) => peel(u, var, &(rhs.ln() / b.ln())),
        Node::Pow(_, _) => polynomial_roots(lhs, var, rhs),
        Node::Func(f, u) => inverse(*f, rhs)
            .iter()
            .flat_map(|r| peel(u, var, r))
            .collect(),
        Node::Num(_) | Node::Const(_) => Vec::new(),
    }
}

/// `rest · Π uᵢ^(±k) = y` with every `uᵢ` of degree ≤ 1 in `var`: a power of a
/// linear-fractional function, `((a·t + b)/(c·t + d))^k = y/rest`, solved as
/// `t = (b - d·w)/(c·w - a)` for each `k`-th root `w` (both signs for even `k`).
/// The logistic family: `(t/(1 - t))^2 = e^(-2λ)` gives `t = 1/(1 + e^λ)`.
fn mobius_power(factors: &[Expr], var: &str, rhs: &Expr) -> Option<Vec<Expr>> {
    let (dep, rest): (Vec<&Expr>, Vec<&Expr>) = factors.iter().partition(|f| f.contains(var));
    let mut k = None;
    let (mut num, mut den) = (Vec::new(), Vec::new());
    for f in dep {
        let (base, p) = match f.node() {
            Node::Pow(b, x) => (b.clone(), x.as_num()?),
            _ => (f.clone(), 1.0),
        };
        if *k.get_or_insert(p.abs()) != p.abs() {
            return None;
        }
        if p > 0.0 {
            num.push(base);
        } else {
            den.push(base);
        }
    }
    let k = k?;
    let linear = |fs: Vec<Expr>| -> Option<(Expr, Expr)> {
        let c = Expr::mul(fs).poly_coeffs(var)?;
        (c.len() <= 2).then(|| {
            let at = |i: usize| c.get(i).cloned().unwrap_or_else(Expr::zero);
            (at(1), at(0))
        })
    };
    let ((a, b), (c, d)) = (linear(num)?, linear(den)?);
    let y = Expr::mul([rhs.clone(), Expr::mul(rest.into_iter().cloned()).recip()]);
    let root = Expr::powf(y, 1.0 / k);
    let mut roots = vec![root.clone()];
    if k.fract() == 0.0 && k % 2.0 == 0.0 {
        roots.push(-root);
    }
    Some(
        roots
            .into_iter()
            .map(|w| (b.clone() - &d * &w) / (&c * &w - a.clone()))
            .collect(),
    )
}

/// The single operand that depends on `var` and the others, or `None` when more
/// than one does.
fn split_dependent(ops: &[Expr], var: &str) -> Option<(Expr, Vec<Expr>)> {
    let (dep, rest): (Vec<Expr>, Vec<Expr>) = ops.iter().cloned().partition(|o| o.contains(var));
    match <[Expr; 1]>::try_from(dep) {
        Ok([u]) => Some((u, rest)),
        Err(_) => None,
    }
}

/// `f⁻¹(y)`, principal branch first, one line per function.
fn inverse(f: Func, y: &Expr) -> Vec<Expr> {
    let g = |f: Func| Expr::func(f, y.clone());
    match f {
        Func::Exp => vec![y.ln()],
        Func::Ln => vec![y.exp()],
        Func::Sin => vec![g(Func::Asin), Expr::pi() - g(Func::Asin)],
        Func::Cos => vec![g(Func::Acos), -g(Func::Acos)],
        Func::Tan => vec![g(Func::Atan)],
        Func::Sinh => vec![g(Func::Asinh)],
        Func::Cosh => vec![g(Func::Acosh), -g(Func::Acosh)],
        Func::Tanh => vec![g(Func::Atanh)],
        Func::Asin => vec![y.sin()],
        Func::Acos => vec![y.cos()],
        Func::Atan => vec![y.tan()],
        Func::Asinh => vec![y.sinh()],
        Func::Acosh => vec![y.cosh()],
        Func::Atanh => vec![y.tanh()],
    }
}

/// Roots of `lhs - rhs` when it is a polynomial of degree 1 or 2 in `var`.
///
/// For `a t² + b t + c = 0` the `+` root `(-b + √D)/(2a)` is written as
/// `-2c / (b + √D)` unless `b` is a negative number, and the `-` root
/// `(-b - √D)/(2a)` as `-2c / (b - √D)` when `b` is a negative number: each form
/// avoids cancellation for the sign of `b` it is used with, and the first stays
/// finite as `a → 0` (e.g. a VP schedule with `β_max = β_min`).
fn polynomial_roots(lhs: &Expr, var: &str, rhs: &Expr) -> Vec<Expr> {
    let Some(mut c) = (lhs - rhs).poly_coeffs(var) else {
        return Vec::new();
    };
    while c.last().is_some_and(Expr::is_zero) {
        c.pop();
    }
    match c.len() {
        2 => vec![-&c[0] / &c[1]],
        3 => {
            let (a, b, c) = (&c[2], &c[1], &c[0]);
            let sqrt_d = (Expr::powi(b.clone(), 2) - 4.0 * a * c).sqrt();
            let b_negative = b.as_num().is_some_and(|b| b < 0.0);
            let plus_textbook = (-b + &sqrt_d) / (2.0 * a);
            let plus_stable = -2.0 * c / (b + &sqrt_d);
            let minus_textbook = (-b - &sqrt_d) / (2.0 * a);
            let minus_stable = -2.0 * c / (b - &sqrt_d);
            if b_negative {
                vec![plus_textbook, minus_stable]
            } else {
                vec![plus_stable, minus_textbook]
            }
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> Expr {
        Expr::sym("t")
    }
    fn p() -> Expr {
        Expr::sym("p")
    }

    /// `lhs(t0) = y`, then the solution evaluated at `y` must give back `t0`.
    fn inverts(lhs: &Expr, t0: f64, env: &[(&str, f64)]) -> bool {
        let mut at = env.to_vec();
        at.push(("t", t0));
        let y = lhs.eval_at(&at).unwrap();
        let sol = solve_for(lhs, "t", &Expr::sym("y")).expect("solvable");
        let mut at = env.to_vec();
        at.push(("y", y));
        let t1 = sol.eval_at(&at).unwrap();
        (t1 - t0).abs() <= 1e-9 * t0.abs().max(1.0)
    }

    /// Some candidate of `solve_for_all` gives back `t0`.
    fn some_branch_inverts(lhs: &Expr, t0: f64) -> bool {
        let y = lhs.eval_at(&[("t", t0)]).unwrap();
        solve_for_all(lhs, "t", &Expr::sym("y"))
            .iter()
            .filter_map(|s| s.eval_at(&[("y", y)]).ok())
            .any(|t1| (t1 - t0).abs() <= 1e-9 * t0.abs().max(1.0))
    }

    #[test]
    fn symbol_alone() {
        assert_eq!(solve_for(&t(), "t", &p()), Some(p()));
    }

    #[test]
    fn add_subtracts_the_other_terms() {
        assert_eq!(
            solve_for(&(t() + p()), "t", &Expr::sym("y")),
            Some(Expr::sym("y") - p())
        );
    }

    #[test]
    fn mul_divides_by_the_other_factors() {
        assert!(inverts(&(3.0 * p() * t()), 0.7, &[("p", 1.5)]));
    }

    #[test]
    fn powers_of_a_tangent() {
        // σ² = tan²(πt/2) (TrigFlow): the square root's branches, then atan.
        let tan2 = Expr::powi((0.5 * Expr::pi() * t()).tan(), 2);
        assert!(some_branch_inverts(&tan2, 0.3));
        assert!(some_branch_inverts(&(3.0 * tan2), 0.8));
        assert!(inverts(&(0.5 * Expr::pi() * t()).tan(), 0.4, &[]));
    }

    #[test]
    fn power_with_constant_exponent() {
        assert!(inverts(&Expr::powf(t() + 1.0, 0.5), 0.3, &[]));
        assert!(inverts(&Expr::powi(t(), 3), 1.7, &[]));
        assert!(some_branch_inverts(&Expr::powi(t(), 3), -1.7));
    }

    #[test]
    fn even_power_has_both_signs() {
        let lhs = Expr::powi(t(), 2);
        assert!(inverts(&lhs, 2.0, &[]));
        assert!(some_branch_inverts(&lhs, -2.0));
        assert_eq!(solve_for_all(&lhs, "t", &Expr::sym("y")).len(), 2);
    }

    #[test]
    fn power_with_constant_base() {
        // VE: sigma(t) = smin * (smax/smin)^t
        let r = Expr::sym("smax") / Expr::sym("smin");
        let lhs = Expr::sym("smin") * Expr::pow(r, t());
        assert!(inverts(&lhs, 0.4, &[("smin", 0.01), ("smax", 50.0)]));
    }

    #[test]
    fn exp_and_ln() {
        assert!(inverts(&(2.0 * t() + 1.0).exp(), 0.3, &[]));
        assert!(inverts(&(2.0 * t() + 1.0).ln(), 0.3, &[]));
    }

    #[test]
    fn trigonometric_and_hyperbolic() {
        assert!(inverts(&t().sin(), 0.3, &[]));
        assert!(some_branch_inverts(&t().sin(), 2.5));
        assert!(inverts(&t().cos(), 0.3, &[]));
        assert!(some_branch_inverts(&t().cos(), -0.3));
        assert!(inverts(&t().tan(), 0.3, &[]));
        assert!(inverts(&t().sinh(), 0.3, &[]));
        assert!(inverts(&t().cosh(), 0.3, &[]));
        assert!(some_branch_inverts(&t().cosh(), -0.3));
        assert!(inverts(&t().tanh(), 0.3, &[]));
        assert!(inverts(&Expr::func(Func::Atan, t()), 0.3, &[]));
    }

    #[test]
    fn cosine_schedule_mean() {
        // a(t) = cos((t + s)/(1 + s) * pi/2)
        let s = Expr::sym("s");
        let lhs = ((t() + &s) / (1.0 + &s) * Expr::pi() * 0.5).cos();
        assert!(inverts(&lhs, 0.6, &[("s", 0.008)]));
    }

    #[test]
    fn linear_polynomial() {
        // t in two operands, but linear: 2t + p t = y
        let lhs = 2.0 * t() + p() * t();
        assert!(inverts(&lhs, 0.6, &[("p", 0.25)]));
    }

    #[test]
    fn vp_quadratic_is_stable_and_survives_a_zero_slope() {
        // ln a(t) = -(bmin t + 0.5 (bmax - bmin) t^2) / 2
        let (bmin, bmax) = (Expr::sym("bmin"), Expr::sym("bmax"));
        let u = &bmin * t() + 0.5 * (&bmax - &bmin) * Expr::powi(t(), 2);
        let lhs = (-0.5 * u).exp();
        assert!(inverts(&lhs, 0.37, &[("bmin", 0.1), ("bmax", 20.0)]));
        assert!(inverts(&lhs, 0.37, &[("bmin", 0.1), ("bmax", 0.1)]));
        // Tiny t: the stable form keeps full precision.
        assert!(inverts(&lhs, 1e-7, &[("bmin", 0.1), ("bmax", 20.0)]));
    }

    #[test]
    fn quadratic_has_both_roots() {
        let lhs = Expr::powi(t(), 2) - 3.0 * t();
        assert_eq!(solve_for_all(&lhs, "t", &Expr::sym("y")).len(), 2);
        assert!(some_branch_inverts(&lhs, 0.5));
        assert!(some_branch_inverts(&lhs, 2.5));
        assert!(inverts(&lhs, 2.5, &[]));
    }

    #[test]
    fn var_in_two_operands_is_not_solved() {
        assert_eq!(solve_for(&(t() * t().exp()), "t", &Expr::sym("y")), None);
        assert_eq!(solve_for(&(t() + t().sin()), "t", &Expr::sym("y")), None);
        assert_eq!(solve_for(&Expr::pow(t(), t()), "t", &Expr::sym("y")), None);
        assert_eq!(
            solve_for(&(Expr::powi(t(), 3) + t()), "t", &Expr::sym("y")),
            None
        );
    }

    #[test]
    fn rhs_with_var_or_lhs_without_is_not_solved() {
        assert_eq!(solve_for(&t(), "t", &t()), None);
        assert_eq!(solve_for(&p(), "t", &Expr::sym("y")), None);
    }
}
