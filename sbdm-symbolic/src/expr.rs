//! Immutable expressions in canonical form.
//!
//! An [`Expr`] is a cheap-to-clone handle (`Arc`) on a [`Node`]. Every constructor
//! returns the canonical form, so structural equality is the equality the rest of
//! the crate relies on:
//!
//! - sums and products are flattened, their operands sorted, with at most one numeric
//!   part (the constant term of a sum, the coefficient of a product, kept first);
//! - like terms of a sum are collected (`2*u + 3*u = 5*u`), like bases of a product
//!   are merged (`u^a * u^b = u^(a+b)`) — for numeric exponents only where that is
//!   true for every value of `u` (integers, or both exponents of one sign family
//!   that keeps the domain), and `exp(a)*exp(b) = exp(a+b)`;
//! - subtraction is `a + (-1)*b`, division is `a * b^(-1)`, `sqrt(u)` is `u^(1/2)`;
//! - numeric sub-expressions are folded to a single number (rounding as f64 does).
//!
//! No rewrite that could change the value for some value of a symbol is applied:
//! `u/u` stays `u * u^(-1)` unless `u` is a non-zero number.

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

/// A finite `f64` with a total order, used as a numeric leaf. `-0.0` is stored as `0.0`.
#[derive(Clone, Copy, Debug)]
pub struct Num(f64);

impl Num {
    /// Wraps a value; `-0.0` becomes `0.0`.
    pub fn new(v: f64) -> Self {
        Num(if v == 0.0 { 0.0 } else { v })
    }
    /// The value.
    pub fn get(self) -> f64 {
        self.0
    }
}
impl PartialEq for Num {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Num {}
impl PartialOrd for Num {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Num {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}
impl std::hash::Hash for Num {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.to_bits().hash(state)
    }
}

/// A named mathematical constant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Constant {
    /// π
    Pi,
    /// Euler's number e
    E,
}

impl Constant {
    /// Its value.
    pub fn value(self) -> f64 {
        match self {
            Constant::Pi => std::f64::consts::PI,
            Constant::E => std::f64::consts::E,
        }
    }
    /// The name used in source (`PI`, `E`).
    pub fn name(self) -> &'static str {
        match self {
            Constant::Pi => "PI",
            Constant::E => "E",
        }
    }
}

/// A one-argument elementary function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Func {
    /// e^u
    Exp,
    /// natural logarithm
    Ln,
    /// sine
    Sin,
    /// cosine
    Cos,
    /// tangent
    Tan,
    /// hyperbolic sine
    Sinh,
    /// hyperbolic cosine
    Cosh,
    /// hyperbolic tangent
    Tanh,
    /// inverse sine
    Asin,
    /// inverse cosine
    Acos,
    /// inverse tangent
    Atan,
    /// inverse hyperbolic sine
    Asinh,
    /// inverse hyperbolic cosine
    Acosh,
    /// inverse hyperbolic tangent
    Atanh,
}

impl Func {
    /// Every function, in a fixed order.
    pub const ALL: [Func; 14] = [
        Func::Exp,
        Func::Ln,
        Func::Sin,
        Func::Cos,
        Func::Tan,
        Func::Sinh,
        Func::Cosh,
        Func::Tanh,
        Func::Asin,
        Func::Acos,
        Func::Atan,
        Func::Asinh,
        Func::Acosh,
        Func::Atanh,
    ];
    /// The Rust method name (`exp`, `ln`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Func::Exp => "exp",
            Func::Ln => "ln",
            Func::Sin => "sin",
            Func::Cos => "cos",
            Func::Tan => "tan",
            Func::Sinh => "sinh",
            Func::Cosh => "cosh",
            Func::Tanh => "tanh",
            Func::Asin => "asin",
            Func::Acos => "acos",
            Func::Atan => "atan",
            Func::Asinh => "asinh",
            Func::Acosh => "acosh",
            Func::Atanh => "atanh",
        }
    }
    /// Looks a function up by its Rust method name.
    pub fn from_name(name: &str) -> Option<Func> {
        Func::ALL.into_iter().find(|f| f.name() == name)
    }
    /// Applies it to a number.
    pub fn apply(self, v: f64) -> f64 {
        match self {
            Func::Exp => v.exp(),
            Func::Ln => v.ln(),
            Func::Sin => v.sin(),
            Func::Cos => v.cos(),
            Func::Tan => v.tan(),
            Func::Sinh => v.sinh(),
            Func::Cosh => v.cosh(),
            Func::Tanh => v.tanh(),
            Func::Asin => v.asin(),
            Func::Acos => v.acos(),
            Func::Atan => v.atan(),
            Func::Asinh => v.asinh(),
            Func::Acosh => v.acosh(),
            Func::Atanh => v.atanh(),
        }
    }
}

/// The node behind an [`Expr`]. Construct through [`Expr`]'s constructors, which
/// keep the canonical form; match on it to inspect an expression.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Node {
    /// A finite number.
    Num(Num),
    /// π or e.
    Const(Constant),
    /// A named symbol: `t`, `x`, a parameter.
    Sym(Arc<str>),
    /// A sum of at least two terms; a numeric term, if any, comes first.
    Add(Vec<Expr>),
    /// A product of at least two factors; a numeric coefficient, if any, comes first.
    Mul(Vec<Expr>),
    /// `base ^ exponent`.
    Pow(Expr, Expr),
    /// `f(arg)`.
    Func(Func, Expr),
}

/// An immutable expression in canonical form. Cloning is cheap.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Expr(Arc<Node>);

impl PartialOrd for Expr {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Expr {
    fn cmp(&self, other: &Self) -> Ordering {
        if Arc::ptr_eq(&self.0, &other.0) {
            return Ordering::Equal;
        }
        self.0.cmp(&other.0)
    }
}

impl fmt::Debug for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

/// Why an expression could not be evaluated to a number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EvalError {
    /// A symbol had no value bound.
    UnknownSymbol(String),
    /// The value (or an intermediate value) is NaN or infinite.
    NonFinite,
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EvalError::UnknownSymbol(s) => write!(f, "no value for `{s}`"),
            EvalError::NonFinite => write!(f, "the value is not finite"),
        }
    }
}

impl std::error::Error for EvalError {}

fn is_int(v: f64) -> bool {
    v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15
}

fn is_even_int(v: f64) -> bool {
    is_int(v) && (v / 2.0).fract() == 0.0
}

/// Numeric folding of a power, only where the result is finite and real.
///
/// Non-integer powers fold only when exact (a square root of a perfect square, say):
/// `sqrt(2)` stays symbolic so that `sqrt(2)^2` is exactly 2.
fn fold_pow(b: f64, e: f64) -> Option<f64> {
    if b < 0.0 && !is_int(e) {
        return None;
    }
    let v = if is_int(e) && e.abs() <= i32::MAX as f64 {
        b.powi(e as i32)
    } else if e == 0.5 {
        let r = b.sqrt();
        if r * r != b {
            return None;
        }
        r
    } else if e == -0.5 {
        let r = b.sqrt();
        if r * r != b {
            return None;
        }
        1.0 / r
    } else {
        return None;
    };
    v.is_finite().then_some(v)
}

impl Expr {
    fn from_node(n: Node) -> Expr {
        Expr(Arc::new(n))
    }

    /// The node behind this expression.
    pub fn node(&self) -> &Node {
        &self.0
    }

    /// A number. Non-finite values are kept as they are (evaluation reports them).
    pub fn num(v: f64) -> Expr {
        Expr::from_node(Node::Num(Num::new(v)))
    }

    /// The number 0.
    pub fn zero() -> Expr {
        Expr::num(0.0)
    }

    /// The number 1.
    pub fn one() -> Expr {
        Expr::num(1.0)
    }

    /// A named symbol.
    pub fn sym(name: &str) -> Expr {
        Expr::from_node(Node::Sym(Arc::from(name)))
    }

    /// π or e.
    pub fn constant(c: Constant) -> Expr {
        Expr::from_node(Node::Const(c))
    }

    /// π.
    pub fn pi() -> Expr {
        Expr::constant(Constant::Pi)
    }

    /// Euler's number.
    pub fn e() -> Expr {
        Expr::constant(Constant::E)
    }

    /// The value, if this is a number.
    pub fn as_num(&self) -> Option<f64> {
        match self.node() {
            Node::Num(n) => Some(n.get()),
            _ => None,
        }
    }

    /// Whether this is the number 0.
    pub fn is_zero(&self) -> bool {
        self.as_num() == Some(0.0)
    }

    /// Whether this is the number 1.
    pub fn is_one(&self) -> bool {
        self.as_num() == Some(1.0)
    }

    /// The direct sub-expressions.
    pub fn children(&self) -> Vec<Expr> {
        match self.node() {
            Node::Num(_) | Node::Const(_) | Node::Sym(_) => Vec::new(),
            Node::Add(v) | Node::Mul(v) => v.clone(),
            Node::Pow(b, e) => vec![b.clone(), e.clone()],
            Node::Func(_, a) => vec![a.clone()],
        }
    }

    /// Rebuilds this node from new children (same arity), canonicalising.
    pub fn with_children(&self, children: Vec<Expr>) -> Expr {
        match self.node() {
            Node::Num(_) | Node::Const(_) | Node::Sym(_) => self.clone(),
            Node::Add(_) => Expr::add(children),
            Node::Mul(_) => Expr::mul(children),
            Node::Pow(_, _) => {
                let mut it = children.into_iter();
                let b = it.next().expect("pow has two children");
                let e = it.next().expect("pow has two children");
                Expr::pow(b, e)
            }
            Node::Func(f, _) => Expr::func(*f, children.into_iter().next().expect("one child")),
        }
    }

    /// Whether the symbol `name` occurs.
    pub fn contains(&self, name: &str) -> bool {
        match self.node() {
            Node::Sym(s) => &**s == name,
            Node::Num(_) | Node::Const(_) => false,
            Node::Add(v) | Node::Mul(v) => v.iter().any(|c| c.contains(name)),
            Node::Pow(b, e) => b.contains(name) || e.contains(name),
            Node::Func(_, a) => a.contains(name),
        }
    }

    /// The symbols that occur.
    pub fn symbols(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        self.collect_symbols(&mut out);
        out
    }

    fn collect_symbols(&self, out: &mut BTreeSet<String>) {
        if let Node::Sym(s) = self.node() {
            out.insert(s.to_string());
        }
        for c in self.children() {
            c.collect_symbols(out);
        }
    }

    /// Substitutes `value` for the symbol `name`, re-canonicalising.
    pub fn subs(&self, name: &str, value: &Expr) -> Expr {
        if !self.contains(name) {
            return self.clone();
        }
        match self.node() {
            Node::Sym(s) if &**s == name => value.clone(),
            _ => self.with_children(
                self.children()
                    .iter()
                    .map(|c| c.subs(name, value))
                    .collect(),
            ),
        }
    }

    /// The operands of a sum, or the expression itself.
    pub fn terms(&self) -> Vec<Expr> {
        match self.node() {
            Node::Add(v) => v.clone(),
            _ => vec![self.clone()],
        }
    }

    /// The operands of a product, or the expression itself.
    pub fn factors(&self) -> Vec<Expr> {
        match self.node() {
            Node::Mul(v) => v.clone(),
            _ => vec![self.clone()],
        }
    }

    /// The numeric coefficient and the rest: `3*t*u` gives `(3, t*u)`, `5` gives `(5, 1)`.
    pub fn split_coeff(&self) -> (f64, Expr) {
        match self.node() {
            Node::Num(n) => (n.get(), Expr::one()),
            Node::Mul(v) => match v[0].as_num() {
                Some(c) => {
                    let rest = &v[1..];
                    let rest = if rest.len() == 1 {
                        rest[0].clone()
                    } else {
                        Expr::from_node(Node::Mul(rest.to_vec()))
                    };
                    (c, rest)
                }
                None => (1.0, self.clone()),
            },
            _ => (1.0, self.clone()),
        }
    }

    /// The canonical sum of `terms`.
    pub fn add<I: IntoIterator<Item = Expr>>(terms: I) -> Expr {
        let mut constant = 0.0;
        let mut coeffs: std::collections::BTreeMap<Expr, f64> = std::collections::BTreeMap::new();
        let mut stack: Vec<Expr> = terms.into_iter().collect();
        stack.reverse();
        while let Some(term) = stack.pop() {
            match term.node() {
                Node::Num(n) => constant += n.get(),
                Node::Add(v) => stack.extend(v.iter().rev().cloned()),
                _ => {
                    let (c, rest) = term.split_coeff();
                    *coeffs.entry(rest).or_insert(0.0) += c;
                }
            }
        }
        let mut out: Vec<Expr> = Vec::with_capacity(coeffs.len() + 1);
        for (rest, c) in coeffs {
            if c == 0.0 {
                continue;
            }
            out.push(Expr::scale(c, rest));
        }
        out.sort();
        if constant != 0.0 || out.is_empty() {
            out.insert(0, Expr::num(constant));
        }
        if out.len() == 1 {
            out.pop().expect("one term")
        } else {
            Expr::from_node(Node::Add(out))
        }
    }

    /// `c * rest` where `rest` is already canonical and has no numeric coefficient.
    fn scale(c: f64, rest: Expr) -> Expr {
        if c == 1.0 {
            return rest;
        }
        if c == 0.0 {
            return Expr::zero();
        }
        if rest.is_one() {
            return Expr::num(c);
        }
        let mut v = vec![Expr::num(c)];
        match rest.node() {
            Node::Mul(f) => v.extend(f.iter().cloned()),
            _ => v.push(rest),
        }
        Expr::from_node(Node::Mul(v))
    }

    /// The canonical product of `factors`.
    pub fn mul<I: IntoIterator<Item = Expr>>(factors: I) -> Expr {
        let mut coeff = 1.0;
        // base -> numeric exponent sum (merged) ; other factors kept as they are.
        let mut num_pows: Vec<(Expr, f64)> = Vec::new();
        // base -> symbolic exponents: u^a * u^b = u^(a+b) wherever both sides are defined.
        let mut sym_pows: Vec<(Expr, Vec<Expr>)> = Vec::new();
        let mut exp_args: Vec<Expr> = Vec::new();
        let mut stack: Vec<Expr> = factors.into_iter().collect();
        stack.reverse();
        while let Some(f) = stack.pop() {
            match f.node() {
                Node::Num(n) => coeff *= n.get(),
                Node::Mul(v) => stack.extend(v.iter().rev().cloned()),
                Node::Func(Func::Exp, a) => exp_args.push(a.clone()),
                Node::Pow(b, e) => match e.as_num() {
                    Some(p) => push_pow(&mut num_pows, b.clone(), p),
                    None => match sym_pows.iter_mut().find(|(base, _)| base == b) {
                        Some((_, es)) => es.push(e.clone()),
                        None => sym_pows.push((b.clone(), vec![e.clone()])),
                    },
                },
                _ => push_pow(&mut num_pows, f.clone(), 1.0),
            }
        }
        merge_tanh(&mut num_pows);
        let mut out: Vec<Expr> = Vec::new();
        let mut again = false;
        for (b, p) in num_pows {
            let f = Expr::pow(b, Expr::num(p));
            match f.node() {
                Node::Num(n) => coeff *= n.get(),
                Node::Mul(_) | Node::Func(Func::Exp, _) => {
                    again = true;
                    out.push(f);
                }
                _ => out.push(f),
            }
        }
        for (b, es) in sym_pows {
            let f = Expr::pow(b, Expr::add(es));
            match f.node() {
                Node::Num(n) => coeff *= n.get(),
                Node::Mul(_) | Node::Func(Func::Exp, _) => {
                    again = true;
                    out.push(f);
                }
                _ => out.push(f),
            }
        }
        if !exp_args.is_empty() {
            let e = Expr::func(Func::Exp, Expr::add(exp_args));
            match e.node() {
                Node::Num(n) => coeff *= n.get(),
                Node::Mul(_) | Node::Pow(..) => {
                    again = true;
                    out.push(e);
                }
                _ => out.push(e),
            }
        }
        if coeff == 0.0 {
            return Expr::zero();
        }
        if again {
            out.push(Expr::num(coeff));
            return Expr::mul(out);
        }
        out.sort();
        match out.len() {
            0 => Expr::num(coeff),
            1 if coeff == 1.0 => out.pop().expect("one factor"),
            _ => {
                if coeff != 1.0 {
                    out.insert(0, Expr::num(coeff));
                }
                Expr::from_node(Node::Mul(out))
            }
        }
    }

    /// The canonical power `base ^ exp`.
    pub fn pow(base: Expr, exp: Expr) -> Expr {
        if let Some(p) = exp.as_num() {
            if p == 0.0 {
                return Expr::one();
            }
            if p == 1.0 {
                return base;
            }
            match base.node() {
                Node::Num(b) => {
                    let b = b.get();
                    if b == 1.0 {
                        return Expr::one();
                    }
                    if let Some(v) = fold_pow(b, p) {
                        return Expr::num(v);
                    }
                }
                Node::Pow(u, a) => {
                    if let Some(a) = a.as_num() {
                        if is_int(p) || !is_even_int(a) {
                            return Expr::pow(u.clone(), Expr::num(a * p));
                        }
                    } else if is_int(p) {
                        return Expr::pow(u.clone(), Expr::mul([a.clone(), exp.clone()]));
                    }
                }
                Node::Func(Func::Exp, a) => {
                    return Expr::func(Func::Exp, Expr::mul([a.clone(), exp.clone()]));
                }
                Node::Mul(v) => {
                    if is_int(p) {
                        return Expr::mul(v.iter().map(|f| Expr::pow(f.clone(), exp.clone())));
                    }
                    // Non-integer power: only a positive numeric coefficient may be split off.
                    if let Some(c) = v[0].as_num() {
                        if c > 0.0 {
                            let rest = Expr::mul(v[1..].iter().cloned());
                            return Expr::mul([
                                Expr::pow(Expr::num(c), exp.clone()),
                                Expr::pow(rest, exp),
                            ]);
                        }
                    }
                }
                _ => {}
            }
            return Expr::from_node(Node::Pow(base, exp));
        }
        match base.node() {
            Node::Num(b) if b.get() == 1.0 => Expr::one(),
            Node::Const(Constant::E) => Expr::func(Func::Exp, exp),
            Node::Func(Func::Exp, a) => Expr::func(Func::Exp, Expr::mul([a.clone(), exp])),
            _ => Expr::from_node(Node::Pow(base, exp)),
        }
    }

    /// `base ^ n` for an integer `n`.
    pub fn powi(base: Expr, n: i32) -> Expr {
        Expr::pow(base, Expr::num(n as f64))
    }

    /// `base ^ p` for a number `p`.
    pub fn powf(base: Expr, p: f64) -> Expr {
        Expr::pow(base, Expr::num(p))
    }

    /// The canonical `f(arg)`.
    pub fn func(f: Func, arg: Expr) -> Expr {
        if let Some(v) = arg.as_num() {
            let r = f.apply(v);
            if r.is_finite() {
                return Expr::num(r);
            }
        }
        // tan is a quotient: one form, so that tan(u)·cos(u)^2 meets sin(u)·cos(u). (tanh
        // stays a function: sinh/cosh overflows to inf/inf where tanh is ±1; products
        // sinh(u)·cosh(u)^-1 are merged into tanh(u) instead, see `Expr::mul`.)
        if f == Func::Tan {
            return Expr::mul([arg.sin(), Expr::powi(arg.cos(), -1)]);
        }
        if f == Func::Exp {
            // exp(c·ln(u) + rest) = u^c · exp(rest) for a number c (where ln u is defined).
            let log_term = |term: &Expr| {
                let (c, r) = term.split_coeff();
                match r.node() {
                    Node::Func(Func::Ln, u) => Some(Expr::powf(u.clone(), c)),
                    _ => None,
                }
            };
            let terms = arg.terms();
            let powers: Vec<Expr> = terms.iter().filter_map(log_term).collect();
            if !powers.is_empty() {
                let rest: Vec<Expr> = terms
                    .into_iter()
                    .filter(|t| log_term(t).is_none())
                    .collect();
                let mut factors = powers;
                if !rest.is_empty() {
                    factors.push(Expr::func(Func::Exp, Expr::add(rest)));
                }
                return Expr::mul(factors);
            }
        }
        match (f, arg.node()) {
            (Func::Ln, Node::Func(Func::Exp, u)) => return u.clone(),
            (Func::Exp, Node::Func(Func::Ln, u)) => return u.clone(),
            (Func::Ln, Node::Const(Constant::E)) => return Expr::one(),
            (Func::Ln, Node::Pow(b, e)) => {
                if let Some(c) = b.as_num() {
                    if c > 0.0 {
                        return Expr::mul([e.clone(), Expr::num(c.ln())]);
                    }
                }
                if matches!(b.node(), Node::Const(Constant::E)) {
                    return e.clone();
                }
            }
            _ => {}
        }
        Expr::from_node(Node::Func(f, arg))
    }

    /// `sqrt(self)` as `self ^ 0.5`.
    pub fn sqrt(&self) -> Expr {
        Expr::powf(self.clone(), 0.5)
    }
    /// `e ^ self`.
    pub fn exp(&self) -> Expr {
        Expr::func(Func::Exp, self.clone())
    }
    /// Natural logarithm.
    pub fn ln(&self) -> Expr {
        Expr::func(Func::Ln, self.clone())
    }
    /// Sine.
    pub fn sin(&self) -> Expr {
        Expr::func(Func::Sin, self.clone())
    }
    /// Cosine.
    pub fn cos(&self) -> Expr {
        Expr::func(Func::Cos, self.clone())
    }
    /// Tangent.
    pub fn tan(&self) -> Expr {
        Expr::func(Func::Tan, self.clone())
    }
    /// Hyperbolic sine.
    pub fn sinh(&self) -> Expr {
        Expr::func(Func::Sinh, self.clone())
    }
    /// Hyperbolic cosine.
    pub fn cosh(&self) -> Expr {
        Expr::func(Func::Cosh, self.clone())
    }
    /// Hyperbolic tangent.
    pub fn tanh(&self) -> Expr {
        Expr::func(Func::Tanh, self.clone())
    }
    /// `1 / self`.
    pub fn recip(&self) -> Expr {
        Expr::powi(self.clone(), -1)
    }

    /// Distributes products over sums and multiplies out small positive integer powers
    /// of sums, everywhere (function arguments included).
    pub fn expand(&self) -> Expr {
        match self.node() {
            Node::Num(_) | Node::Const(_) | Node::Sym(_) => self.clone(),
            Node::Add(v) => Expr::add(v.iter().map(Expr::expand)),
            Node::Func(f, a) => Expr::func(*f, a.expand()),
            Node::Pow(b, e) => {
                let b = b.expand();
                let e = e.expand();
                if let (Node::Add(_), Some(p)) = (b.node(), e.as_num()) {
                    if is_int(p) && (2.0..=8.0).contains(&p) {
                        let mut acc = b.clone();
                        for _ in 1..(p as i32) {
                            acc = distribute(&acc, &b);
                        }
                        return acc;
                    }
                }
                let r = Expr::pow(b, e);
                if matches!(r.node(), Node::Mul(_)) {
                    r.expand()
                } else {
                    r
                }
            }
            Node::Mul(v) => {
                let mut acc = Expr::one();
                for f in v {
                    acc = distribute(&acc, &f.expand());
                }
                acc
            }
        }
    }

    /// Evaluates with symbol values from `env`.
    pub fn eval(&self, env: &dyn Fn(&str) -> Option<f64>) -> Result<f64, EvalError> {
        let v = match self.node() {
            Node::Num(n) => n.get(),
            Node::Const(c) => c.value(),
            Node::Sym(s) => env(s).ok_or_else(|| EvalError::UnknownSymbol(s.to_string()))?,
            Node::Add(v) => {
                let mut acc = 0.0;
                for c in v {
                    acc += c.eval(env)?;
                }
                acc
            }
            Node::Mul(v) => {
                let mut acc = 1.0;
                for c in v {
                    acc *= c.eval(env)?;
                }
                acc
            }
            Node::Pow(b, e) => {
                let bv = b.eval(env)?;
                match e.as_num() {
                    Some(p) if is_int(p) && p.abs() <= i32::MAX as f64 => bv.powi(p as i32),
                    Some(0.5) => bv.sqrt(),
                    _ => bv.powf(e.eval(env)?),
                }
            }
            Node::Func(f, a) => f.apply(a.eval(env)?),
        };
        if v.is_finite() {
            Ok(v)
        } else {
            Err(EvalError::NonFinite)
        }
    }

    /// Evaluates with the given symbol values.
    pub fn eval_at(&self, bindings: &[(&str, f64)]) -> Result<f64, EvalError> {
        self.eval(&|name| bindings.iter().find(|(n, _)| *n == name).map(|(_, v)| *v))
    }

    /// The coefficients of this expression as a polynomial in `var` (after expanding),
    /// index = degree; `None` if it is not a polynomial in `var`.
    pub fn poly_coeffs(&self, var: &str) -> Option<Vec<Expr>> {
        let e = self.expand();
        let mut coeffs: Vec<Vec<Expr>> = Vec::new();
        for term in e.terms() {
            let mut degree = 0usize;
            let mut rest = Vec::new();
            for f in term.factors() {
                match f.node() {
                    Node::Sym(s) if &**s == var => degree += 1,
                    Node::Pow(b, p) if matches!(b.node(), Node::Sym(s) if &**s == var) => {
                        let p = p.as_num()?;
                        if !is_int(p) || !(0.0..=64.0).contains(&p) {
                            return None;
                        }
                        degree += p as usize;
                    }
                    _ => {
                        if f.contains(var) {
                            return None;
                        }
                        rest.push(f);
                    }
                }
            }
            if coeffs.len() <= degree {
                coeffs.resize(degree + 1, Vec::new());
            }
            coeffs[degree].push(Expr::mul(rest));
        }
        if coeffs.is_empty() {
            coeffs.push(Vec::new());
        }
        Some(coeffs.into_iter().map(Expr::add).collect())
    }
}

/// `sinh(u)^p · cosh(u)^-p = tanh(u)^p` (true wherever the left side is defined, and
/// finite where the left side overflows to inf/inf).
fn merge_tanh(pows: &mut Vec<(Expr, f64)>) {
    let mut i = 0;
    while i < pows.len() {
        let found = match pows[i].0.node() {
            Node::Func(Func::Sinh, u) => {
                let (p, target) = (pows[i].1, Expr::func(Func::Cosh, u.clone()));
                pows.iter()
                    .position(|(b, q)| *b == target && *q == -p)
                    .map(|j| (j, Expr::func(Func::Tanh, u.clone()), p))
            }
            _ => None,
        };
        match found {
            Some((j, tanh, p)) => {
                pows[i] = (tanh, p);
                pows.remove(j);
                if j < i {
                    i -= 1;
                }
            }
            None => i += 1,
        }
    }
}

fn push_pow(pows: &mut Vec<(Expr, f64)>, base: Expr, p: f64) {
    if let Some((_, q)) = pows.iter_mut().find(|(b, _)| *b == base) {
        *q += p;
    } else {
        pows.push((base, p));
    }
}

/// Multiplies two expanded expressions, distributing over their terms.
fn distribute(a: &Expr, b: &Expr) -> Expr {
    let mut terms = Vec::new();
    for x in a.terms() {
        for y in b.terms() {
            terms.push(Expr::mul([x.clone(), y.clone()]));
        }
    }
    // Merging like bases can bring a sum back (sqrt(u)*sqrt(u) = u), and products of
    // exponentials merge their arguments: both may need expanding again.
    Expr::add(terms.into_iter().map(|t| match t.node() {
        Node::Add(_) => t.expand(),
        Node::Mul(v) if v.iter().any(|f| matches!(f.node(), Node::Add(_))) => t.expand(),
        Node::Mul(_) | Node::Func(Func::Exp, _) => expand_exp_args(&t),
        _ => t,
    }))
}

fn expand_exp_args(t: &Expr) -> Expr {
    match t.node() {
        Node::Func(Func::Exp, a) => Expr::func(Func::Exp, a.expand()),
        Node::Mul(v) => Expr::mul(v.iter().map(expand_exp_args)),
        _ => t.clone(),
    }
}

macro_rules! binop {
    ($tr:ident, $m:ident, $f:expr) => {
        impl std::ops::$tr<Expr> for Expr {
            type Output = Expr;
            fn $m(self, rhs: Expr) -> Expr {
                $f(self, rhs)
            }
        }
        impl std::ops::$tr<&Expr> for Expr {
            type Output = Expr;
            fn $m(self, rhs: &Expr) -> Expr {
                $f(self, rhs.clone())
            }
        }
        impl std::ops::$tr<Expr> for &Expr {
            type Output = Expr;
            fn $m(self, rhs: Expr) -> Expr {
                $f(self.clone(), rhs)
            }
        }
        impl std::ops::$tr<&Expr> for &Expr {
            type Output = Expr;
            fn $m(self, rhs: &Expr) -> Expr {
                $f(self.clone(), rhs.clone())
            }
        }
        impl std::ops::$tr<f64> for Expr {
            type Output = Expr;
            fn $m(self, rhs: f64) -> Expr {
                $f(self, Expr::num(rhs))
            }
        }
        impl std::ops::$tr<f64> for &Expr {
            type Output = Expr;
            fn $m(self, rhs: f64) -> Expr {
                $f(self.clone(), Expr::num(rhs))
            }
        }
        impl std::ops::$tr<Expr> for f64 {
            type Output = Expr;
            fn $m(self, rhs: Expr) -> Expr {
                $f(Expr::num(self), rhs)
            }
        }
        impl std::ops::$tr<&Expr> for f64 {
            type Output = Expr;
            fn $m(self, rhs: &Expr) -> Expr {
                $f(Expr::num(self), rhs.clone())
            }
        }
    };
}

binop!(Add, add, |a: Expr, b: Expr| Expr::add([a, b]));
binop!(Sub, sub, |a: Expr, b: Expr| Expr::add([
    a,
    Expr::mul([Expr::num(-1.0), b])
]));
binop!(Mul, mul, |a: Expr, b: Expr| Expr::mul([a, b]));
binop!(Div, div, |a: Expr, b: Expr| Expr::mul([a, b.recip()]));

impl std::ops::Neg for Expr {
    type Output = Expr;
    fn neg(self) -> Expr {
        Expr::mul([Expr::num(-1.0), self])
    }
}
impl std::ops::Neg for &Expr {
    type Output = Expr;
    fn neg(self) -> Expr {
        Expr::mul([Expr::num(-1.0), self.clone()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> Expr {
        Expr::sym("t")
    }

    #[test]
    fn like_terms_collect() {
        assert_eq!(&t() + &t(), 2.0 * t());
        assert_eq!(&t() - &t(), Expr::zero());
    }

    #[test]
    fn like_bases_merge() {
        assert_eq!(&t() * &t(), Expr::powi(t(), 2));
        assert_eq!(&t() / &t(), Expr::one());
    }

    #[test]
    fn exp_products_merge() {
        assert_eq!(t().exp() * (-t()).exp(), Expr::one());
    }

    #[test]
    fn sqrt_of_square_is_not_simplified() {
        let e = Expr::powi(t(), 2).sqrt();
        assert!(matches!(e.node(), Node::Pow(_, _)));
        assert_ne!(e, t());
    }

    #[test]
    fn square_of_sqrt_simplifies() {
        assert_eq!(Expr::powi(t().sqrt(), 2), t());
    }

    #[test]
    fn expand_vp_variance() {
        // exp(-u) * (exp(u) - 1) = 1 - exp(-u)
        let u = 0.1 * t() + 9.95 * Expr::powi(t(), 2);
        let e = ((-&u).exp() * (u.exp() - 1.0)).expand();
        assert_eq!(e, (1.0 - (-u).exp()).expand());
    }

    #[test]
    fn poly_coeffs_of_quadratic() {
        let p = Expr::sym("p");
        let e = (&t() + &p) * (&t() - 1.0);
        let c = e.poly_coeffs("t").unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!(c[2], Expr::one());
        assert_eq!(c[0], -p.clone());
        assert!(t().exp().poly_coeffs("t").is_none());
    }

    #[test]
    fn tanh_stays_finite_and_absorbs_sinh_over_cosh() {
        let u = 3.0 * t();
        assert_eq!(u.tanh().eval_at(&[("t", 1000.0)]), Ok(1.0));
        assert_eq!(u.sinh() / u.cosh(), u.tanh());
        assert_eq!((u.sinh() / u.cosh()).eval_at(&[("t", 1000.0)]), Ok(1.0));
    }

    #[test]
    fn eval_binds_symbols() {
        let e = t().exp() + Expr::sym("p");
        assert!((e.eval_at(&[("t", 0.0), ("p", 2.0)]).unwrap() - 3.0).abs() < 1e-15);
        assert_eq!(
            e.eval_at(&[("t", 0.0)]),
            Err(EvalError::UnknownSymbol("p".into()))
        );
    }
}
