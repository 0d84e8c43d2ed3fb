//! The validation pass: every part of a declaration parsed, lowered and checked, every
//! problem collected, before anything is derived ([`Cx::check`]).

use super::check::{divisors, find_ident, lower_quiet, top_terms};
use super::derive::{fmt_num, simplest, Cx, Given, GRID};
use super::spec::{Diagnostic, Part, SdeSpec};
use crate::parse::{parse, Ast, Scope};
use crate::Expr;

/// Names a parameter or `let` may not take.
const RESERVED: &[&str] = &["t", "x", "lambda", "PI", "E", "self", "Self"];

/// A declaration that passed the validation pass: everything the derivation reads.
pub(super) struct Checked {
    /// Parameter names and default values.
    pub(super) params: Vec<(String, f64)>,
    /// `t_min` and `T` as expressions in the params.
    pub(super) t_min: Expr,
    pub(super) t_max: Expr,
    /// Their values at the defaults.
    pub(super) range: (f64, f64),
    /// The time grid the checks evaluate on.
    pub(super) grid: Vec<f64>,
    /// The `let`s, each expanded.
    pub(super) lets: Vec<(String, Expr)>,
    /// `F(t)` of a drift `F(t)·x`, when the SDE form is given.
    pub(super) drift_coef: Option<Expr>,
    /// The given forms.
    pub(super) given: Given,
}

/// A parsed and lowered expression with its source.
struct Lowered {
    part: Part,
    ast: Ast,
    expr: Expr,
}

fn is_ident(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(ch) if ch.is_ascii_alphabetic() || ch == '_')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
        && s != "_"
}

/// Why `t` or `x` may not appear in `part` (where they are not in scope).
fn out_of_place(part: Part, name: &str) -> String {
    match part {
        Part::ParamDefault(_) => {
            format!("`{name}` may not appear in a parameter's default: it must be a constant")
        }
        Part::TimeStart | Part::TimeEnd => format!(
            "`{name}` may not appear in the time range: its bounds are constants (they may use the params)"
        ),
        _ => format!(
            "`{name}` may not appear in {}: only the drift depends on the state; write the `x` factor in the drift itself",
            part.describe()
        ),
    }
}

fn not_linear_message(e: &Expr) -> String {
    let c = e.diff("x");
    if c.contains("x") {
        format!("the drift must be linear in x, f(x, t) = F(t)·x; `{e}` is not")
    } else {
        format!("the drift must be F(t)·x with no term free of x; `{e}` does not vanish at x = 0")
    }
}

impl Cx {
    /// The validation pass: parses and lowers every part of the declaration and checks
    /// names, the time range, which forms are given, `x` only in a drift linear in it,
    /// and divisors on the time grid, collecting every problem. Nothing is derived here.
    pub(super) fn check(&mut self, spec: &SdeSpec) -> Option<Checked> {
        // 1. Params: names and default values.
        let mut seen = Vec::new();
        let mut params: Vec<(String, f64)> = Vec::new();
        // Params whose default is missing or wrong: still in scope, so that their uses
        // do not cascade into "unknown name" errors.
        let mut broken: Vec<String> = Vec::new();
        let consts = Scope::new();
        for (i, p) in spec.params.iter().enumerate() {
            let name_ok = self.check_name(Part::ParamName(i), &p.name, &mut seen);
            let Some(src) = &p.default else {
                self.err(Diagnostic::new(
                    Part::ParamName(i),
                    format!(
                        "parameter `{}` has no default value: write `{}: f64 = <value>`",
                        p.name, p.name
                    ),
                ));
                broken.extend(name_ok.then(|| p.name.clone()));
                continue;
            };
            let Some(l) = self.lower(Part::ParamDefault(i), src, &consts) else {
                broken.extend(name_ok.then(|| p.name.clone()));
                continue;
            };
            match l.expr.eval(&|_| None) {
                Ok(v) if name_ok => params.push((p.name.clone(), v)),
                Ok(_) => {}
                Err(_) => {
                    self.err(Diagnostic::new(
                        Part::ParamDefault(i),
                        format!(
                            "the default of `{}` must be a finite constant (no `t`, `x` or other parameters)",
                            p.name
                        ),
                    ));
                    broken.extend(name_ok.then(|| p.name.clone()));
                }
            }
        }
        let env = |name: &str| params.iter().find(|(n, _)| n == name).map(|(_, v)| *v);

        let mut scope = Scope::new();
        for n in params.iter().map(|(n, _)| n).chain(&broken) {
            scope.insert(n, Expr::sym(n));
        }

        // 2. Time range: constant expressions in the params.
        let mut range = None;
        match &spec.time {
            None => self.err(Diagnostic::new(
                Part::Decl,
                "missing `time = [t_min, T];` (e.g. `time = [1e-3, 1.0];`)",
            )),
            Some((lo, hi)) => {
                let lo = self.lower(Part::TimeStart, lo, &scope);
                let hi = self.lower(Part::TimeEnd, hi, &scope);
                if let (Some(lo), Some(hi)) = (lo, hi) {
                    let lv = lo.expr.eval(&env);
                    let hv = hi.expr.eval(&env);
                    match (lv, hv) {
                        (Ok(l), Ok(h)) => {
                            if l < 0.0 {
                                self.err(Diagnostic::new(
                                    Part::TimeStart,
                                    format!("invalid time range: t_min = {l} is negative"),
                                ));
                            } else if l >= h {
                                self.err(Diagnostic::new(
                                    Part::TimeEnd,
                                    format!("invalid time range: T = {h} must be greater than t_min = {l}"),
                                ));
                            } else {
                                range = Some((lo.expr, hi.expr, l, h));
                            }
                        }
                        (Err(_), _) => self.err(Diagnostic::new(
                            Part::TimeStart,
                            "invalid time range: t_min must be a finite constant (it may use the params, not `t` or `x`)",
                        )),
                        (_, Err(_)) => self.err(Diagnostic::new(
                            Part::TimeEnd,
                            "invalid time range: T must be a finite constant (it may use the params, not `t` or `x`)",
                        )),
                    }
                }
            }
        }

        // 3. Lets, in order; `t` is in scope, `x` only in the drift.
        scope.insert("t", Expr::sym("t"));
        let mut lets_shown: Vec<(String, Expr)> = Vec::new();
        for (i, (name, src)) in spec.lets.iter().enumerate() {
            let ok = self.check_name(Part::LetName(i), name, &mut seen);
            if let Some(l) = self.lower(Part::Let(i), src, &scope) {
                if ok {
                    lets_shown.push((name.clone(), l.expr.clone()));
                    scope.insert(name, l.expr);
                }
            } else if ok {
                // Keep later uses from cascading into "unknown name" errors.
                scope.insert(name, Expr::sym(name));
            }
        }
        let mut with_x = scope.clone();
        with_x.insert("x", Expr::sym("x"));

        // 4. The four forms.
        let drift = spec
            .drift
            .as_ref()
            .and_then(|s| self.lower(Part::Drift, s, &with_x));
        let mut diffusion = None;
        let mut mean = None;
        let mut std = None;
        for (part, src, slot) in [
            (Part::Diffusion, &spec.diffusion, &mut diffusion),
            (Part::Mean, &spec.mean, &mut mean),
            (Part::Std, &spec.std, &mut std),
        ] {
            let Some(src) = src else { continue };
            // Lower with `x` known so that its use gets the precise message below.
            if let Some(l) = self.lower(part, src, &with_x) {
                if let Some(r) = find_ident(&l.ast, "x") {
                    self.err(Diagnostic::at(
                        part,
                        r,
                        format!(
                            "`x` may not appear in {}: only the drift depends on the state",
                            part.describe()
                        ),
                    ));
                } else {
                    *slot = Some(l);
                }
            }
        }
        let has_sde = spec.drift.is_some() || spec.diffusion.is_some();
        let has_kernel = spec.mean.is_some() || spec.std.is_some();
        if !has_sde && !has_kernel {
            self.err(Diagnostic::new(
                Part::Decl,
                "declare the SDE: `drift = ...; diffusion = ...;` or its kernel `mean = ...; std = ...;`",
            ));
        }
        for (given, missing, other) in [
            (
                spec.drift.is_some() && spec.diffusion.is_none(),
                "diffusion",
                "drift",
            ),
            (
                spec.diffusion.is_some() && spec.drift.is_none(),
                "drift",
                "diffusion",
            ),
            (spec.mean.is_some() && spec.std.is_none(), "std", "mean"),
            (spec.std.is_some() && spec.mean.is_none(), "mean", "std"),
        ] {
            if given {
                self.err(Diagnostic::new(
                    Part::Decl,
                    format!("missing `{missing} = ...;`: `{other}` needs it"),
                ));
            }
        }

        // 5. Division by zero on the grid at the default params.
        let (t_min_e, t_max_e, t0, t1) = range?;
        let grid: Vec<f64> = (0..GRID)
            .map(|i| t0 + (t1 - t0) * i as f64 / (GRID - 1) as f64)
            .collect();
        for l in [&drift, &diffusion, &mean, &std].into_iter().flatten() {
            self.check_divisors(l, &with_x, &grid, &env);
        }
        if !self.errors.is_empty() {
            return None;
        }

        // 6. The drift is linear in x: F(t).
        let drift_coef = match (&drift, &diffusion) {
            (Some(d), Some(_)) => Some(self.linear_coef(d, &with_x, &grid, &env)?),
            _ => None,
        };
        if !self.errors.is_empty() {
            return None;
        }
        Some(Checked {
            params,
            t_min: t_min_e,
            t_max: t_max_e,
            range: (t0, t1),
            grid,
            lets: lets_shown,
            drift_coef,
            given: Given {
                drift: drift.map(|d| d.expr),
                diffusion: diffusion.map(|d| d.expr),
                mean: mean.map(|d| d.expr),
                std: std.map(|d| d.expr),
            },
        })
    }

    fn lower(&mut self, part: Part, src: &str, scope: &Scope) -> Option<Lowered> {
        let ast = match parse(src) {
            Ok(ast) => ast,
            Err(e) => {
                self.err(Diagnostic::at(part, e.range, e.message));
                return None;
            }
        };
        match ast.lower(scope) {
            Ok(expr) => Some(Lowered { part, ast, expr }),
            Err(es) => {
                for e in es {
                    let message = match src.get(e.range.start..e.range.end) {
                        Some(n @ ("t" | "x"))
                            if !scope.contains(n) && e.message.starts_with("unknown name") =>
                        {
                            out_of_place(part, n)
                        }
                        _ => e.message,
                    };
                    self.err(Diagnostic::at(part, e.range, message));
                }
                None
            }
        }
    }

    fn check_name(&mut self, part: Part, name: &str, seen: &mut Vec<String>) -> bool {
        if !is_ident(name) {
            self.err(Diagnostic::new(
                part,
                format!("`{name}` is not a valid name: use letters, digits and `_`"),
            ));
            return false;
        }
        if RESERVED.contains(&name) || crate::Func::from_name(name).is_some() {
            self.err(Diagnostic::new(
                part,
                format!("`{name}` is reserved: choose another name"),
            ));
            return false;
        }
        if seen.iter().any(|s| s == name) {
            self.err(Diagnostic::new(part, format!("`{name}` is declared twice")));
            return false;
        }
        seen.push(name.to_string());
        true
    }

    fn check_divisors(
        &mut self,
        l: &Lowered,
        scope: &Scope,
        grid: &[f64],
        env: &dyn Fn(&str) -> Option<f64>,
    ) {
        for d in divisors(&l.ast) {
            let Some(e) = lower_quiet(d, scope) else {
                continue;
            };
            let at = |t: f64, x: f64| {
                e.eval(&|n| match n {
                    "t" => Some(t),
                    "x" => Some(x),
                    _ => env(n),
                })
            };
            let zero = grid.iter().find(|&&t| {
                [0.7, -1.3]
                    .iter()
                    .any(|&x| matches!(at(t, x), Ok(v) if v == 0.0))
            });
            let msg = if let Some(t) = zero {
                if e.contains("t") {
                    Some(format!(
                        "division by zero: this divisor is 0 at t = {} (with the default params)",
                        fmt_num(*t)
                    ))
                } else {
                    Some(
                        "division by zero: this divisor is 0 (with the default params)".to_string(),
                    )
                }
            } else {
                // A continuous divisor that changes sign between grid points passes through 0.
                grid.windows(2).find_map(|w| match (at(w[0], 0.7), at(w[1], 0.7)) {
                    (Ok(u), Ok(v)) if u * v < 0.0 => Some(format!(
                        "division by zero: this divisor changes sign between t = {} and t = {} (with the default params)",
                        fmt_num(w[0]),
                        fmt_num(w[1])
                    )),
                    _ => None,
                })
            };
            if let Some(msg) = msg {
                self.err(Diagnostic::at(l.part, d.range, msg));
            }
        }
    }

    /// `F(t)` of a drift `f = F(t)·x`, or an error at the term that is not of that form.
    fn linear_coef(
        &mut self,
        drift: &Lowered,
        scope: &Scope,
        grid: &[f64],
        env: &dyn Fn(&str) -> Option<f64>,
    ) -> Option<Expr> {
        let f = &drift.expr;
        let coef = f.diff("x");
        let linear = |e: &Expr| -> bool {
            let c = e.diff("x");
            let rest = e - &c * Expr::sym("x");
            grid.iter().step_by(8).all(|&t| {
                [-1.7, 0.3, 2.9].iter().all(|&x| {
                    let at = |n: &str| match n {
                        "t" => Some(t),
                        "x" => Some(x),
                        _ => env(n),
                    };
                    match (rest.eval(&at), e.eval(&at), c.eval(&at)) {
                        (Ok(r), Ok(v), Ok(cv)) => {
                            r.abs() <= 1e-9 * (v.abs() + (cv * x).abs() + 1e-300)
                        }
                        _ => true,
                    }
                })
            }) && !c.contains("x")
                || rest.expand().is_zero() && !c.expand().contains("x")
        };
        if linear(f) {
            return Some(simplest(coef));
        }
        let mut pointed = false;
        for term in top_terms(&drift.ast) {
            if let Some(e) = lower_quiet(term, scope) {
                if !linear(&e) {
                    pointed = true;
                    self.err(Diagnostic::at(
                        Part::Drift,
                        term.range,
                        not_linear_message(&e),
                    ));
                }
            }
        }
        if !pointed {
            self.err(Diagnostic::new(Part::Drift, not_linear_message(f)));
        }
        None
    }
}
