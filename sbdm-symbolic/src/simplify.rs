//! Textbook forms: rewrites that make a derived expression read as a paper writes it.
//!
//! The canonical form ([`Expr::add`], [`Expr::mul`]) folds constants and merges powers
//! but never chooses between equal forms. [`Expr::textbook`] does, bottom-up, keeping a
//! rewrite only when it has fewer operations ([`Expr::ops`]):
//!
//! - `ln(u^k · v^m)` → `k·ln(u) + m·ln(v)` when `u`, `v` are positive on the time range
//!   (symbols the caller names, positive numbers);
//! - a sum of logarithms with one coefficient up to sign → one logarithm of a quotient:
//!   `ln(1 - t) - ln(t)` → `ln((1 - t)/t)`;
//! - a sum with denominators over its common denominator, the numerator expanded:
//!   `2t + 2t²/(1 - t)` → `2t/(1 - t)`;
//! - terms collected by their dependence on `t`, a common coefficient taken out:
//!   `β₀t²/4 - β₁t²/4` → `t²(β₀ - β₁)/4`;
//! - a quotient whose numerator is `e^u`: numerator and denominator times `e^-u`,
//!   `e^-λ/(1 + e^-λ)` → `1/(1 + e^λ)`;
//! - Pythagoras: two terms `X·sin(u)²` and `X·cos(u)²` of a sum → `X`, wherever the
//!   squares sit (`sin³/cos + sin·cos` → `sin/cos`, which prints as `tan`).
//!
//! Every rewrite is an identity where the expression is defined (the logarithm rules on
//! the positivity the caller asserts: symbols, and whole subexpressions such as a
//! kernel's `a(t)` and `b(t)`), so a textbook form evaluates to the same values.

use crate::expr::{Expr, Func, Node};

impl Expr {
    /// The number of operations: each `+`/`-` between terms, each `*`/`/` between
    /// factors (a coefficient of `-1` counts as a negation), each power and function.
    pub fn ops(&self) -> usize {
        let own = match self.node() {
            Node::Num(_) | Node::Const(_) | Node::Sym(_) => 0,
            Node::Add(v) | Node::Mul(v) => v.len() - 1,
            Node::Pow(_, x) => usize::from(x.as_num() != Some(-1.0)),
            Node::Func(..) => 1,
        };
        own + self.children().iter().map(Expr::ops).sum::<usize>()
    }

    /// Every occurrence of the subtree `from` replaced by `to`, re-canonicalising.
    /// A product (sum) that holds every factor (term) of a product (sum) `from` has
    /// them replaced by `to`.
    pub fn replace(&self, from: &Expr, to: &Expr) -> Expr {
        if self == from {
            return to.clone();
        }
        let within = |mine: Vec<Expr>, theirs: Vec<Expr>| -> Option<Vec<Expr>> {
            let mut left = mine;
            for f in theirs {
                let i = left.iter().position(|m| *m == f)?;
                left.remove(i);
            }
            Some(left)
        };
        match (self.node(), from.node()) {
            (Node::Mul(_), Node::Mul(_)) => {
                if let Some(mut left) = within(self.factors(), from.factors()) {
                    left.push(to.clone());
                    return Expr::mul(left);
                }
            }
            (Node::Add(_), Node::Add(_)) => {
                if let Some(mut left) = within(self.terms(), from.terms()) {
                    left.push(to.clone());
                    return Expr::add(left);
                }
            }
            _ => {}
        }
        let children = self.children();
        if children.is_empty() {
            return self.clone();
        }
        self.with_children(children.iter().map(|c| c.replace(from, to)).collect())
    }

    /// The textbook form of this expression in the variable `var`, with the symbols
    /// `positive` known to be positive (see the module documentation).
    pub fn textbook(&self, var: &str, positive: &[&str]) -> Expr {
        self.textbook_with(var, positive, &[])
    }

    /// [`Expr::textbook`] knowing also that the subexpressions `positive_exprs` are
    /// positive (a kernel's `a(t)`, `b(t)` on its time range: `ln(sin(u)²)/2` is
    /// `ln(sin(u))` when `sin(u)` is one of them).
    pub fn textbook_with(&self, var: &str, positive: &[&str], positive_exprs: &[Expr]) -> Expr {
        let rules = Rules {
            var,
            positive,
            positive_exprs,
        };
        rules.simplify(self)
    }
}

struct Rules<'a> {
    var: &'a str,
    positive: &'a [&'a str],
    positive_exprs: &'a [Expr],
}

/// The largest node (in operations) the rules rewrite.
const LARGEST: usize = 120;

/// The one of `candidates` with the fewest operations, `current` on ties.
fn fewest(current: Expr, candidates: impl IntoIterator<Item = Option<Expr>>) -> Expr {
    let mut best = current;
    for c in candidates.into_iter().flatten() {
        if c.ops() < best.ops() {
            best = c;
        }
    }
    best
}

/// `c·a + c·b + ...` → `c·(a + b + ...)`: the coefficient magnitude and the factors
/// every term shares (`π·s + π·t` → `π·(s + t)`), and the sign when every term is
/// negative (`-1 - e^λ` → `-(1 + e^λ)`).
fn common_factor(sum: &Expr) -> Option<Expr> {
    let terms = sum.terms();
    let first = terms.first()?;
    let c = first.split_coeff().0.abs();
    let sign = if terms.iter().all(|t| t.split_coeff().0 < 0.0) {
        -1.0
    } else {
        1.0
    };
    let c = if terms.iter().all(|t| t.split_coeff().0.abs() == c) && c != 0.0 {
        c * sign
    } else {
        sign
    };
    let mut shared: Vec<Expr> = first
        .split_coeff()
        .1
        .factors()
        .into_iter()
        .filter(|f| f.as_num().is_none())
        .collect();
    for t in &terms[1..] {
        let mut theirs = t.split_coeff().1.factors();
        shared.retain(|f| match theirs.iter().position(|g| g == f) {
            Some(i) => {
                theirs.remove(i);
                true
            }
            None => false,
        });
    }
    if c == 1.0 && shared.is_empty() {
        return None;
    }
    let common = c * Expr::mul(shared);
    Some(&common * Expr::add(terms.iter().map(|t| t / &common)))
}

/// `X·sin(u)² + X·cos(u)² + rest` → `X + rest` for the first such pair of terms (the
/// squares may be folded into other powers of `sin(u)`, `cos(u)` in `X`).
fn pythagoras(sum: &Expr) -> Option<Expr> {
    let terms = sum.terms();
    for (i, term) in terms.iter().enumerate() {
        for f in term.factors() {
            let base = match f.node() {
                Node::Pow(b, _) => b,
                _ => &f,
            };
            let Node::Func(Func::Sin, u) = base.node() else {
                continue;
            };
            let (sin2, cos2) = (Expr::powi(u.sin(), 2), Expr::powi(u.cos(), 2));
            let rest = term / &sin2;
            let twin = &rest * &cos2;
            if let Some(j) = terms.iter().position(|other| *other == twin) {
                let mut out: Vec<Expr> = terms
                    .iter()
                    .enumerate()
                    .filter(|(k, _)| *k != i && *k != j)
                    .map(|(_, t)| t.clone())
                    .collect();
                out.push(rest);
                return Some(Expr::add(out));
            }
        }
    }
    None
}

impl Rules<'_> {
    fn simplify(&self, e: &Expr) -> Expr {
        let children = e.children();
        let e = if children.is_empty() {
            e.clone()
        } else {
            e.with_children(children.iter().map(|c| self.simplify(c)).collect())
        };
        self.rewrite(e)
    }

    /// The node-level rules, on a node whose children are simplified. Nodes larger than
    /// [`LARGEST`] operations are left as they are: the rules expand products, and a
    /// declaration's compile time must stay bounded.
    fn rewrite(&self, e: Expr) -> Expr {
        if e.ops() > LARGEST {
            return e;
        }
        match e.node() {
            // Split on ties too: `2·ln(t)` reads better than `ln(t^2)`, and lets the
            // parent fold coefficients and join logarithms. The split is a sum: its own
            // rules apply to it.
            Node::Func(Func::Ln, u) => match self.split_log(u) {
                Some(split) if split.ops() <= e.ops() => self.rewrite(split),
                _ => e,
            },
            Node::Add(_) => {
                // Pythagoras first: its result is simplified again, and the other
                // rules see the shorter sum.
                let e = match pythagoras(&e) {
                    Some(p) if p.ops() < e.ops() => return self.simplify(&p),
                    _ => e,
                };
                let logs = self.join_logs(&e);
                let together = self.together(&e);
                let collected = self.collect(&e);
                let e = fewest(e.clone(), [logs, together, collected]);
                // On ties too: the parent folds the coefficient (`4·(β₁/2 - β₀/2)`).
                match common_factor(&e) {
                    Some(c) if matches!(e.node(), Node::Add(_)) && c.ops() <= e.ops() => c,
                    _ => e,
                }
            }
            Node::Mul(_) => {
                // `c·ln(u·v)` → `c·ln(u) + c·ln(v)` on ties too (the coefficient folds).
                let split = match e.split_coeff() {
                    (c, r) if c != 1.0 => match r.node() {
                        Node::Func(Func::Ln, u) => self
                            .split_log(u)
                            .map(|s| Expr::add(s.terms().into_iter().map(|t| c * t)))
                            .filter(|s| s.ops() <= e.ops()),
                        _ => None,
                    },
                    _ => None,
                };
                let e = split.unwrap_or(e);
                fewest(e.clone(), [self.clear_exp(&e), self.absorb_into_sqrt(&e)])
            }
            _ => e,
        }
    }

    fn is_positive(&self, e: &Expr) -> bool {
        if self.positive_exprs.contains(e) {
            return true;
        }
        match e.node() {
            Node::Num(n) => n.get() > 0.0,
            Node::Const(_) => true,
            Node::Sym(s) => self.positive.contains(&&**s),
            Node::Func(Func::Exp, _) => true,
            Node::Pow(b, _) => self.is_positive(b),
            Node::Mul(v) => v.iter().all(|f| self.is_positive(f)),
            _ => false,
        }
    }

    /// `ln(Π uᵢ^kᵢ)` → `Σ kᵢ·ln(uᵢ)` for positive bases.
    fn split_log(&self, u: &Expr) -> Option<Expr> {
        let factors = u.factors();
        if factors.len() == 1 && !matches!(u.node(), Node::Pow(..)) {
            return None;
        }
        let mut terms = Vec::new();
        for f in &factors {
            let (base, k) = match f.node() {
                Node::Pow(b, x) => (b.clone(), x.clone()),
                _ => (f.clone(), Expr::one()),
            };
            if !self.is_positive(&base) {
                return None;
            }
            terms.push(k * base.ln());
        }
        Some(Expr::add(terms))
    }

    /// `c·ln(u) - c·ln(v) + ...` → `c·ln(u/v·...)` when every logarithm's coefficient is
    /// `±c` (the other terms are kept).
    fn join_logs(&self, sum: &Expr) -> Option<Expr> {
        let mut logs = Vec::new();
        let mut rest = Vec::new();
        for term in sum.terms() {
            let (c, r) = term.split_coeff();
            match r.node() {
                Node::Func(Func::Ln, u) => logs.push((c, u.clone())),
                _ => rest.push(term),
            }
        }
        if logs.len() < 2 {
            return None;
        }
        // The positive magnitude: `ln((1 - t)/t)`, not `-ln(t/(1 - t))`.
        let c = logs[0].0.abs();
        if logs.iter().any(|(k, _)| k.abs() != c) {
            return None;
        }
        let arg = Expr::mul(
            logs.into_iter()
                .map(|(k, u)| Expr::powi(u, if k == c { 1 } else { -1 })),
        );
        rest.push(c * arg.ln());
        Some(Expr::add(rest))
    }

    /// A sum over its common denominator: `Σ nᵢ/dᵢ` → `(Σ nᵢ·D/dᵢ)/D`, the numerator
    /// expanded, where the denominators are the factors with negative integer exponents.
    fn together(&self, sum: &Expr) -> Option<Expr> {
        let terms = sum.terms();
        // The common denominator: each base at its largest (negative) power.
        let mut common: Vec<(Expr, f64)> = Vec::new();
        for term in &terms {
            for f in term.factors() {
                if let Node::Pow(b, x) = f.node() {
                    if let Some(k) = x.as_num() {
                        if k < 0.0 && k.fract() == 0.0 && b.contains(self.var) {
                            match common.iter_mut().find(|(base, _)| base == b) {
                                Some((_, m)) => *m = m.max(-k),
                                None => common.push((b.clone(), -k)),
                            }
                        }
                    }
                }
            }
        }
        if common.is_empty() {
            return None;
        }
        let denominator = Expr::mul(common.iter().map(|(b, k)| Expr::powf(b.clone(), *k)));
        let numerator = Expr::add(terms.iter().map(|t| (t * &denominator).expand())).expand();
        let candidate = self.simplify(&numerator) / denominator;
        Some(candidate)
    }

    /// Terms with the same dependence on the variable collected:
    /// `Σ cᵢ·pᵢ·T` → `T·Σ cᵢ·pᵢ`, with a coefficient common to all `cᵢ` taken out.
    fn collect(&self, sum: &Expr) -> Option<Expr> {
        let mut groups: Vec<(Expr, Vec<Expr>)> = Vec::new();
        for term in sum.terms() {
            let (dep, free): (Vec<Expr>, Vec<Expr>) = term
                .factors()
                .into_iter()
                .partition(|f| f.contains(self.var));
            let dep = Expr::mul(dep);
            let free = Expr::mul(free);
            match groups.iter_mut().find(|(d, _)| *d == dep) {
                Some((_, fs)) => fs.push(free),
                None => groups.push((dep, vec![free])),
            }
        }
        if groups.iter().all(|(_, fs)| fs.len() < 2) {
            return None;
        }
        let terms = groups.into_iter().map(|(dep, free)| {
            if free.len() < 2 {
                return dep * Expr::mul(free);
            }
            // A coefficient all the free parts share in magnitude comes out of the sum.
            let c = free[0].split_coeff().0.abs();
            let common = free.iter().all(|f| f.split_coeff().0.abs() == c);
            if common && c != 1.0 && c != 0.0 {
                let inner = Expr::add(free.iter().map(|f| f / c));
                Expr::mul([Expr::num(c), dep, inner])
            } else {
                dep * Expr::add(free)
            }
        });
        Some(Expr::add(terms))
    }

    /// `sqrt(X) · P · rest` → `sqrt(X·P²) · rest` for positive factors `P`, `X·P²`
    /// expanded: `sqrt(1 - e^{2u})·e^{-u}` → `sqrt(e^{-2u} - 1)`.
    fn absorb_into_sqrt(&self, product: &Expr) -> Option<Expr> {
        let factors = product.factors();
        let root = factors
            .iter()
            .position(|f| matches!(f.node(), Node::Pow(_, x) if x.as_num() == Some(0.5)))?;
        let Node::Pow(x, _) = factors[root].node() else {
            return None;
        };
        let (positive, rest): (Vec<Expr>, Vec<Expr>) = factors
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != root)
            .map(|(_, f)| f.clone())
            .partition(|f| self.is_positive(f) && f.contains(self.var));
        if positive.is_empty() {
            return None;
        }
        let inside = (x * Expr::mul(positive.iter().map(|p| Expr::powi(p.clone(), 2)))).expand();
        Some(Expr::mul(rest) * self.simplify(&inside).sqrt())
    }

    /// `e^u · A^-1 · rest` → `(A·e^-u)^-1 · rest`, `A·e^-u` expanded: a quotient whose
    /// numerator is an exponential, as `1/(1 + e^λ)` rather than `e^-λ/(1 + e^-λ)`.
    fn clear_exp(&self, product: &Expr) -> Option<Expr> {
        let factors = product.factors();
        let u = factors.iter().find_map(|f| match f.node() {
            Node::Func(Func::Exp, u) => Some(u.clone()),
            _ => None,
        })?;
        let (den, rest): (Vec<Expr>, Vec<Expr>) = factors
            .into_iter()
            .filter(|f| !matches!(f.node(), Node::Func(Func::Exp, _)))
            .partition(|f| matches!(f.node(), Node::Pow(b, x) if x.as_num() == Some(-1.0) && matches!(b.node(), Node::Add(_))));
        let [den] = <[Expr; 1]>::try_from(den).ok()?;
        let Node::Pow(a, _) = den.node() else {
            return None;
        };
        let cleared = (a * (-u).exp()).expand();
        Some(Expr::mul(rest) / cleared)
    }
}
