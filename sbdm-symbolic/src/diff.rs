//! Exact differentiation with the full chain rule.
//!
//! One rule per node kind; the derivative of each elementary function is a line of
//! [`func_derivative`]. Results are built through the canonical constructors, so
//! they come back in canonical form (numbers folded, like terms collected).

use crate::expr::{Expr, Func, Node};

impl Expr {
    /// The exact derivative `d/d var` of this expression.
    ///
    /// Every node kind is handled: numbers and constants give 0, a sum is
    /// differentiated term by term, a product by the product rule over all its
    /// factors, a power `u^v` by the general rule (with the cheaper forms when the
    /// base or the exponent is free of `var`), and every [`Func`] by the chain rule.
    ///
    /// ```
    /// use sbdm_symbolic::Expr;
    /// let t = Expr::sym("t");
    /// let d = (Expr::powi(t.clone(), 3) + t.sin()).diff("t");
    /// assert_eq!(d, 3.0 * Expr::powi(t.clone(), 2) + t.cos());
    /// ```
    pub fn diff(&self, var: &str) -> Expr {
        if !self.contains(var) {
            return Expr::zero();
        }
        match self.node() {
            Node::Num(_) | Node::Const(_) => Expr::zero(),
            Node::Sym(s) => {
                if &**s == var {
                    Expr::one()
                } else {
                    Expr::zero()
                }
            }
            Node::Add(terms) => Expr::add(terms.iter().map(|t| t.diff(var))),
            Node::Mul(factors) => product_rule(factors, var),
            Node::Pow(u, v) => pow_rule(u, v, var),
            Node::Func(f, u) => Expr::mul([func_derivative(*f, u), u.diff(var)]),
        }
    }
}

/// `(f1 f2 ... fn)' = Σ_i f1 ... fi' ... fn`, skipping factors free of `var`.
fn product_rule(factors: &[Expr], var: &str) -> Expr {
    let mut terms = Vec::new();
    for (i, f) in factors.iter().enumerate() {
        if !f.contains(var) {
            continue;
        }
        let mut prod: Vec<Expr> = Vec::with_capacity(factors.len());
        prod.extend(factors[..i].iter().cloned());
        prod.push(f.diff(var));
        prod.extend(factors[i + 1..].iter().cloned());
        terms.push(Expr::mul(prod));
    }
    Expr::add(terms)
}

/// `(u^v)'`: `v u^(v-1) u'` when `v` is free of `var`, `u^v ln(u) v'` when `u` is,
/// else `u^v (v' ln u + v u'/u)`.
fn pow_rule(u: &Expr, v: &Expr, var: &str) -> Expr {
    let u_dep = u.contains(var);
    let v_dep = v.contains(var);
    let power = || Expr::pow(u.clone(), v.clone());
    match (u_dep, v_dep) {
        (false, false) => Expr::zero(),
        (true, false) => Expr::mul([
            v.clone(),
            Expr::pow(u.clone(), Expr::add([v.clone(), Expr::num(-1.0)])),
            u.diff(var),
        ]),
        (false, true) => Expr::mul([power(), u.ln(), v.diff(var)]),
        (true, true) => Expr::mul([
            power(),
            Expr::add([
                Expr::mul([v.diff(var), u.ln()]),
                Expr::mul([v.clone(), u.diff(var), u.recip()]),
            ]),
        ]),
    }
}

/// `f'(u)` for each elementary function (the chain factor `u'` is applied by the caller).
fn func_derivative(f: Func, u: &Expr) -> Expr {
    let one = Expr::one;
    let sq = |e: &Expr| Expr::powi(e.clone(), 2);
    match f {
        Func::Exp => u.exp(),
        Func::Ln => u.recip(),
        Func::Sin => u.cos(),
        Func::Cos => -u.sin(),
        Func::Tan => one() + sq(&u.tan()),
        Func::Sinh => u.cosh(),
        Func::Cosh => u.sinh(),
        Func::Tanh => one() - sq(&u.tanh()),
        Func::Asin => Expr::powf(one() - sq(u), -0.5),
        Func::Acos => -Expr::powf(one() - sq(u), -0.5),
        Func::Atan => (one() + sq(u)).recip(),
        Func::Asinh => Expr::powf(sq(u) + 1.0, -0.5),
        Func::Acosh => Expr::powf(sq(u) - 1.0, -0.5),
        Func::Atanh => (one() - sq(u)).recip(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> Expr {
        Expr::sym("t")
    }

    #[test]
    fn constants_and_other_symbols_have_zero_derivative() {
        assert_eq!(Expr::num(3.0).diff("t"), Expr::zero());
        assert_eq!(Expr::pi().diff("t"), Expr::zero());
        assert_eq!(Expr::sym("p").diff("t"), Expr::zero());
        assert_eq!(t().diff("t"), Expr::one());
    }

    #[test]
    fn power_rule_with_constant_exponent() {
        assert_eq!(Expr::powi(t(), 3).diff("t"), 3.0 * Expr::powi(t(), 2));
    }

    #[test]
    fn power_rule_with_constant_base() {
        let p = Expr::sym("p");
        let e = Expr::pow(p.clone(), 2.0 * t());
        assert_eq!(e.diff("t"), 2.0 * &e * p.ln());
    }

    #[test]
    fn product_rule_over_three_factors() {
        let e = t() * t().sin() * t().exp();
        let d = e.diff("t");
        let v = d.eval_at(&[("t", 0.7)]).unwrap();
        let x: f64 = 0.7;
        let want = x.sin() * x.exp() + x * x.cos() * x.exp() + x * x.sin() * x.exp();
        assert!((v - want).abs() < 1e-12);
    }
}
