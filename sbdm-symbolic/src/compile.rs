//! Expressions compiled for fast repeated evaluation at run time.
//!
//! [`Expr::compile`] turns an expression into a tree of closures over one variable and
//! a slice of parameter values: no symbol lookup by name, no matching on nodes, no
//! allocation per call. It is built by the same walker as [`Expr::to_rust`], so it
//! performs the generated Rust's operations in the generated Rust's order: an SDE
//! declared at run time evaluates what the `sde!` macro's code evaluates.

use std::fmt;

use crate::expr::{Constant, Expr, Func};
use crate::print::{rust_form, RustForm, RustPower};

type Code = Box<dyn Fn(f64, &[f64]) -> f64 + Send + Sync>;

/// An expression compiled over one variable (`t`, or `lambda`) and parameter values.
///
/// ```
/// use sbdm_symbolic::parse::{parse, Scope};
/// let mut scope = Scope::new();
/// for s in ["t", "beta_min", "beta_max"] {
///     scope.insert_symbol(s);
/// }
/// let e = parse("beta_min + t * (beta_max - beta_min)").unwrap().lower(&scope).unwrap();
/// let beta = e.compile("t", &["beta_min", "beta_max"]).unwrap();
/// assert_eq!(beta.eval(0.5, &[0.1, 20.0]), 0.1 + 0.5 * (20.0 - 0.1));
/// ```
pub struct Compiled {
    code: Code,
}

impl Compiled {
    /// The value at `var` with the parameters in the order given to [`Expr::compile`].
    /// Not finite where the expression is not (no check on the hot path).
    #[inline]
    pub fn eval(&self, var: f64, params: &[f64]) -> f64 {
        (self.code)(var, params)
    }
}

impl fmt::Debug for Compiled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Compiled(..)")
    }
}

/// A symbol that is neither the variable nor a parameter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnboundSymbol(pub String);

impl fmt::Display for UnboundSymbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` is neither the variable nor a parameter", self.0)
    }
}

impl std::error::Error for UnboundSymbol {}

impl Expr {
    /// Compiles the expression over the variable `var` and the parameters `params`
    /// (values are passed to [`Compiled::eval`] in this order); any other symbol is an
    /// error.
    pub fn compile(&self, var: &str, params: &[&str]) -> Result<Compiled, UnboundSymbol> {
        let mut builder = Builder {
            var,
            params,
            unbound: None,
        };
        let code = rust_form(&mut builder, self);
        match builder.unbound {
            Some(name) => Err(UnboundSymbol(name)),
            None => Ok(Compiled { code }),
        }
    }
}

struct Builder<'a> {
    var: &'a str,
    params: &'a [&'a str],
    unbound: Option<String>,
}

impl RustForm for Builder<'_> {
    type Out = Code;

    fn literal(&mut self, v: f64) -> Code {
        Box::new(move |_, _| v)
    }

    fn constant(&mut self, c: Constant) -> Code {
        let v = c.value();
        Box::new(move |_, _| v)
    }

    fn symbol(&mut self, name: &str) -> Code {
        if name == self.var {
            return Box::new(|x, _| x);
        }
        match self.params.iter().position(|p| *p == name) {
            Some(i) => Box::new(move |_, p| p[i]),
            None => {
                self.unbound.get_or_insert_with(|| name.to_string());
                Box::new(|_, _| f64::NAN)
            }
        }
    }

    fn negate(&mut self, u: Code) -> Code {
        Box::new(move |x, p| -u(x, p))
    }

    fn sum(&mut self, first: Code, rest: Vec<(bool, Code)>) -> Code {
        // Small sums unrolled; longer ones loop (same order either way).
        match <[(bool, Code); 1]>::try_from(rest) {
            Ok([(neg, b)]) => {
                if neg {
                    Box::new(move |x, p| first(x, p) - b(x, p))
                } else {
                    Box::new(move |x, p| first(x, p) + b(x, p))
                }
            }
            Err(rest) => Box::new(move |x, p| {
                let mut acc = first(x, p);
                for (neg, t) in &rest {
                    if *neg {
                        acc -= t(x, p);
                    } else {
                        acc += t(x, p);
                    }
                }
                acc
            }),
        }
    }

    fn product(&mut self, neg: bool, num: Vec<Code>, den: Vec<Code>) -> Code {
        // The sign is applied to the first factor in the text; IEEE products and
        // quotients are sign-symmetric, so negating the result is the same value.
        let body: Code = match (<[Code; 1]>::try_from(num), den.is_empty()) {
            (Ok([a]), true) => a,
            (Ok([a]), false) => Box::new(move |x, p| {
                let mut acc = a(x, p);
                for d in &den {
                    acc /= d(x, p);
                }
                acc
            }),
            (Err(num), _) => match <[Code; 2]>::try_from(num) {
                Ok([a, b]) if den.is_empty() => Box::new(move |x, p| a(x, p) * b(x, p)),
                Ok([a, b]) => Box::new(move |x, p| {
                    let mut acc = a(x, p) * b(x, p);
                    for d in &den {
                        acc /= d(x, p);
                    }
                    acc
                }),
                Err(num) => Box::new(move |x, p| {
                    let mut acc = num[0](x, p);
                    for f in &num[1..] {
                        acc *= f(x, p);
                    }
                    for d in &den {
                        acc /= d(x, p);
                    }
                    acc
                }),
            },
        };
        if neg {
            Box::new(move |x, p| -body(x, p))
        } else {
            body
        }
    }

    fn power(&mut self, base: Code, power: RustPower<Code>) -> Code {
        match power {
            RustPower::Sqrt => Box::new(move |x, p| base(x, p).sqrt()),
            RustPower::Recip => Box::new(move |x, p| base(x, p).recip()),
            RustPower::Powi(n) => Box::new(move |x, p| base(x, p).powi(n)),
            RustPower::Powf(e) => Box::new(move |x, p| base(x, p).powf(e(x, p))),
        }
    }

    fn call(&mut self, f: Func, arg: Code) -> Code {
        Box::new(move |x, p| f.apply(arg(x, p)))
    }
}

#[cfg(test)]
mod tests {
    use crate::parse::{parse, Scope};

    fn lower(src: &str) -> crate::Expr {
        let mut scope = Scope::new();
        for s in ["t", "beta_min", "beta_max", "gamma"] {
            scope.insert_symbol(s);
        }
        parse(src).unwrap().lower(&scope).unwrap()
    }

    #[test]
    fn agrees_with_tree_evaluation() {
        let cases = [
            "-0.5 * (beta_min + t * (beta_max - beta_min)) * 2.0",
            "(1.0 - (-(beta_min * t + 0.5 * (beta_max - beta_min) * t * t)).exp()).sqrt()",
            "((t + 0.008) / 1.008 * PI / 2.0).cos() / (0.008 / 1.008 * PI / 2.0).cos()",
            "t.powi(3) / (1.0 + t) - t.powf(beta_min) + (t * t).ln() * E",
            "1.0 / (1.0 - t) - t.tanh().asinh()",
        ];
        for src in cases {
            let e = lower(src);
            let c = e.compile("t", &["beta_min", "beta_max"]).unwrap();
            for &t in &[1e-3, 0.25, 0.5, 0.9] {
                let want = e
                    .eval_at(&[("t", t), ("beta_min", 0.1), ("beta_max", 20.0)])
                    .unwrap();
                let got = c.eval(t, &[0.1, 20.0]);
                assert!(
                    (got - want).abs() <= 1e-14 * want.abs(),
                    "{src} at t = {t}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn unbound_symbols_are_errors() {
        let e = lower("t * gamma");
        let err = e.compile("t", &["beta"]).unwrap_err();
        assert_eq!(err.0, "gamma");
    }
}
