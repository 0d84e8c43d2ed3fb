//! The derivation pipeline: parse → lower → check → derive → verify → describe.

use std::borrow::Cow;

use super::check::{divisors, find_ident, lower_quiet, top_terms};
use super::derivation::{Derivation, Entry, Method};
use super::recipe::{self, Plan, Recipe};
use super::spec::{Diagnostic, Part, SdeSpec};
use crate::parse::{parse, Ast, Scope};
use crate::{numeric, solve, Compiled, Expr};

/// Names a parameter or `let` may not take.
const RESERVED: &[&str] = &["t", "x", "lambda", "PI", "E", "self", "Self"];

/// Points of the time grid the compile-time checks evaluate on.
const GRID: usize = 129;

/// Relative tolerance of numeric verification and consistency checks.
const REL_TOL: f64 = 1e-9;

/// The derived coefficients, as expressions in `t` and the params (`lambda` for
/// `t_of_log_snr`). `None` means "no closed form": the coefficient's [`Plan`] (the
/// `*_plan` methods) names the numeric [`Recipe`] that computes it.
#[derive(Clone, Debug, PartialEq)]
pub struct Coefs {
    /// `F(t)`, with drift `f(x, t) = F(t)·x`.
    pub f: Expr,
    /// `g(t)`.
    pub g: Expr,
    /// `g(t)^2`.
    pub g2: Expr,
    /// `∫_0^t F(s) ds`; `None`: quadrature of `F`.
    pub int_f: Option<Expr>,
    /// `a(t)`; `None`: `exp(quad(F, 0, t))`.
    pub a: Option<Expr>,
    /// `b(t)^2`; `None`: `a(t)^2 · quad(g^2 / a^2, 0, t)`.
    pub b2: Option<Expr>,
    /// `b(t)`; `None`: `sqrt(b2)`.
    pub b: Option<Expr>,
    /// `λ(t) = ln(a/b)`; `None`: from `a` and `b` numerically.
    pub log_snr: Option<Expr>,
    /// `dλ/dt = −g^2/(2 b^2)`; `None`: from `g2` and `b2` numerically.
    pub dlog_snr: Option<Expr>,
    /// `t(λ)` in the symbol `lambda`; `None`: bracketed monotone solve of `λ(t) = lambda`.
    pub t_of_log_snr: Option<Expr>,
}

impl Coefs {
    /// How `∫_0^t F` is computed.
    pub fn int_f_plan(&self) -> Plan<'_> {
        plan(&self.int_f, Recipe::IntegralOfDrift)
    }
    /// How `a(t)` is computed.
    pub fn a_plan(&self) -> Plan<'_> {
        plan(&self.a, Recipe::MeanByQuadrature)
    }
    /// How `b(t)²` is computed: by quadrature for a closed `a`, else by the kernel ODE.
    pub fn b2_plan(&self) -> Plan<'_> {
        let recipe = match self.a {
            Some(_) => Recipe::VarianceByQuadrature,
            None => Recipe::VarianceByKernelOde,
        };
        plan(&self.b2, recipe)
    }
    /// How `b(t)` is computed.
    pub fn b_plan(&self) -> Plan<'_> {
        plan(&self.b, Recipe::StdFromVariance)
    }
    /// How `λ(t)` is computed.
    pub fn log_snr_plan(&self) -> Plan<'_> {
        plan(&self.log_snr, Recipe::LogSnrFromKernel)
    }
    /// How `dλ/dt` is computed.
    pub fn dlog_snr_plan(&self) -> Plan<'_> {
        plan(&self.dlog_snr, Recipe::DlogSnrFromVariance)
    }
    /// How `t(λ)` is computed.
    pub fn t_of_log_snr_plan(&self) -> Plan<'_> {
        plan(&self.t_of_log_snr, Recipe::TimeBySolve)
    }
}

fn plan(e: &Option<Expr>, recipe: Recipe) -> Plan<'_> {
    match e {
        Some(e) => Plan::Closed(e),
        None => Plan::Numeric(recipe),
    }
}

/// A declaration after checking and derivation.
#[derive(Clone, Debug, PartialEq)]
pub struct Derived {
    /// The type name.
    pub name: String,
    /// Parameter names and default values, in declaration order.
    pub params: Vec<(String, f64)>,
    /// `t_min` as an expression in the params.
    pub t_min: Expr,
    /// `T` as an expression in the params.
    pub t_max: Expr,
    /// The coefficients.
    pub coefs: Coefs,
    /// The `let` bindings, each with its value in `t` and the params (earlier lets
    /// substituted): the derivation prints in their names.
    pub lets: Vec<(String, Expr)>,
    /// The printable derivation.
    pub derivation: Derivation,
}

impl Derived {
    /// The closed-form coefficients as the derivation prints them: in textbook form and
    /// in the `let` names (see [`Expr::textbook`]), by key (`F`, `g2`, `int_F`, `a`,
    /// `b2`, `b`, `sigma`, `log_snr`, `dlog_snr`, `t_of_log_snr`).
    pub fn textbook_forms(&self) -> Vec<(&'static str, Expr)> {
        let show = Show::of(self);
        let c = &self.coefs;
        let sigma = match (&c.a, &c.b) {
            (Some(a), Some(b)) => Some(b / a),
            _ => None,
        };
        [
            ("F", Some(&c.f)),
            ("g2", Some(&c.g2)),
            ("int_F", c.int_f.as_ref()),
            ("a", c.a.as_ref()),
            ("b2", c.b2.as_ref()),
            ("b", c.b.as_ref()),
            ("sigma", sigma.as_ref()),
            ("log_snr", c.log_snr.as_ref()),
            ("dlog_snr", c.dlog_snr.as_ref()),
            ("t_of_log_snr", c.t_of_log_snr.as_ref()),
        ]
        .into_iter()
        .filter_map(|(k, e)| e.map(|e| (k, show.form(e))))
        .collect()
    }

    /// The coefficients bound to parameter values (the defaults where `values` is
    /// silent), compiled ([`Expr::compile`]) and ready to evaluate: what the `sde!`
    /// macro's generated code computes, operation for operation.
    pub fn bind(&self, values: &[(String, f64)]) -> Bound {
        let values: Vec<f64> = self
            .params
            .iter()
            .map(|(n, d)| values.iter().find(|(m, _)| m == n).map_or(*d, |(_, v)| *v))
            .collect();
        let names: Vec<&str> = self.params.iter().map(|(n, _)| n.as_str()).collect();
        // Derivation leaves no other symbol; one that slipped through evaluates to NaN.
        let compile = |e: &Expr, var: &str| {
            e.compile(var, &names)
                .unwrap_or_else(|_| Expr::num(f64::NAN).compile(var, &[]).expect("no symbols"))
        };
        let c = &self.coefs;
        let t_range = (
            compile(&self.t_min, "t").eval(0.0, &values),
            compile(&self.t_max, "t").eval(0.0, &values),
        );
        let opt = |e: &Option<Expr>, var: &str| e.as_ref().map(|e| compile(e, var));
        Bound {
            f: compile(&c.f, "t"),
            g: compile(&c.g, "t"),
            g2: compile(&c.g2, "t"),
            a: opt(&c.a, "t"),
            b2: opt(&c.b2, "t"),
            b: opt(&c.b, "t"),
            log_snr: opt(&c.log_snr, "t"),
            dlog_snr: opt(&c.dlog_snr, "t"),
            t_of_log_snr: opt(&c.t_of_log_snr, "lambda"),
            t_range,
            params: values,
        }
    }
}

/// Coefficients bound to parameter values and compiled: the run-time form of a
/// derivation. Where a coefficient has no closed form, the same numeric recipe as the
/// macro's generated code (documented on [`Coefs`]). Values are not checked: they are
/// not finite only outside what the derivation's checks cover (other params, other times).
#[derive(Debug)]
pub struct Bound {
    f: Compiled,
    g: Compiled,
    g2: Compiled,
    a: Option<Compiled>,
    b2: Option<Compiled>,
    b: Option<Compiled>,
    log_snr: Option<Compiled>,
    dlog_snr: Option<Compiled>,
    t_of_log_snr: Option<Compiled>,
    t_range: (f64, f64),
    params: Vec<f64>,
}

impl Bound {
    /// The parameter values, in declaration order.
    pub fn params(&self) -> &[f64] {
        &self.params
    }

    /// `[t_min, T]`.
    pub fn time_range(&self) -> (f64, f64) {
        self.t_range
    }
    /// `F(t)`.
    pub fn drift_coef(&self, t: f64) -> f64 {
        self.f.eval(t, &self.params)
    }
    /// `g(t)`.
    pub fn diffusion(&self, t: f64) -> f64 {
        self.g.eval(t, &self.params)
    }
    /// `g(t)^2`.
    pub fn diffusion_sq(&self, t: f64) -> f64 {
        self.g2.eval(t, &self.params)
    }
    /// `a(t)`.
    pub fn mean_coef(&self, t: f64) -> f64 {
        match &self.a {
            Some(a) => a.eval(t, &self.params),
            None => recipe::mean_by_quadrature(|s| self.drift_coef(s), t),
        }
    }
    /// `b(t)^2`.
    pub fn variance(&self, t: f64) -> f64 {
        match (&self.b2, &self.a) {
            (Some(b2), _) => b2.eval(t, &self.params),
            (None, Some(_)) => {
                recipe::variance_by_quadrature(|s| self.mean_coef(s), |s| self.diffusion_sq(s), t)
            }
            (None, None) => {
                recipe::variance_by_kernel_ode(|s| self.drift_coef(s), |s| self.diffusion_sq(s), t)
            }
        }
    }

    /// `(a(t), b(t)^2)` at increasing times `ts`: closed forms where derived; where `b^2`
    /// is numeric, one pass over the grid (quadrature of `g^2/a^2` for a closed `a`,
    /// [`numeric::kernel_integrals`] for a numeric one) rather than one per time.
    pub fn kernel_on(&self, ts: &[f64]) -> Vec<(f64, f64)> {
        match (&self.a, &self.b2) {
            (_, Some(b2)) => ts
                .iter()
                .map(|&t| (self.mean_coef(t), b2.eval(t, &self.params)))
                .collect(),
            (Some(_), None) => {
                let mut acc = 0.0;
                let mut prev = 0.0;
                ts.iter()
                    .map(|&t| {
                        acc += numeric::integrate(
                            |s| {
                                let a = self.mean_coef(s);
                                self.diffusion_sq(s) / (a * a)
                            },
                            prev,
                            t,
                        );
                        prev = t;
                        let a = self.mean_coef(t);
                        (a, a * a * acc)
                    })
                    .collect()
            }
            (None, None) => {
                numeric::kernel_integrals(|s| self.drift_coef(s), |s| self.diffusion_sq(s), ts)
                    .into_iter()
                    .map(|(i, k)| (i.exp(), recipe::variance_from_integrals(i, k)))
                    .collect()
            }
        }
    }
    /// `b(t)`.
    pub fn std(&self, t: f64) -> f64 {
        match &self.b {
            Some(b) => b.eval(t, &self.params),
            None => recipe::std_from_variance(self.variance(t)),
        }
    }
    /// `λ(t) = ln(a/b)`.
    pub fn log_snr(&self, t: f64) -> f64 {
        match &self.log_snr {
            Some(l) => l.eval(t, &self.params),
            None => recipe::log_snr_from_kernel(self.mean_coef(t), self.variance(t)),
        }
    }
    /// `dλ/dt = −g^2 / (2 b^2)`.
    pub fn dlog_snr_dt(&self, t: f64) -> f64 {
        match &self.dlog_snr {
            Some(d) => d.eval(t, &self.params),
            None => recipe::dlog_snr_from_variance(self.diffusion_sq(t), self.variance(t)),
        }
    }
    /// `t(λ)`.
    pub fn t_of_log_snr(&self, lambda: f64) -> f64 {
        match &self.t_of_log_snr {
            Some(e) => e.eval(lambda, &self.params),
            None => {
                let (lo, hi) = self.time_range();
                recipe::time_by_solve(|t| self.log_snr(t), lambda, lo, hi)
            }
        }
    }
}

/// Checks a declaration and derives everything from it; on failure, every problem
/// found, each pointing at its part of the declaration.
pub fn derive(spec: &SdeSpec) -> Result<Derived, Vec<Diagnostic>> {
    let mut cx = Cx::default();
    let out = cx.run(spec);
    if cx.errors.is_empty() {
        out.ok_or_else(|| vec![Diagnostic::new(Part::Decl, "derivation failed")])
    } else {
        Err(cx.errors)
    }
}

#[derive(Default)]
struct Cx {
    errors: Vec<Diagnostic>,
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

impl Cx {
    fn err(&mut self, d: Diagnostic) {
        self.errors.push(d);
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

    fn run(&mut self, spec: &SdeSpec) -> Option<Derived> {
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
        let show = Show::new(&lets_shown, &params);
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

        // 6. The SDE form: F and g.
        let sde_form = match (&drift, &diffusion) {
            (Some(d), Some(g)) => {
                Some((self.linear_coef(d, &with_x, &grid, &env)?, g.expr.clone()))
            }
            _ => None,
        };
        let kernel_form = match (&mean, &std) {
            (Some(m), Some(s)) => Some((m.expr.clone(), s.expr.clone())),
            _ => None,
        };
        if !self.errors.is_empty() {
            return None;
        }

        let t = "t";
        let mut entries: Vec<Entry> = Vec::new();
        let coefs = match (sde_form, kernel_form) {
            (Some((f, g)), kernel) => {
                let g2 = Expr::powi(g.clone(), 2);
                entries.push(given("drift", "f(x, t)", &drift.as_ref()?.expr, &show));
                entries.push(given("diffusion", "g(t)", &g, &show));
                if let Some((a, b)) = &kernel {
                    entries.push(given("mean", "a(t)", a, &show));
                    entries.push(given("std", "b(t)", b, &show));
                }
                entries.push(closed("F", "F(t) = ∂f/∂x", "F(t)", &f, &show));
                entries.push(closed("g2", "g(t)^2", "g(t)^2", &g2, &show));
                match kernel {
                    Some((a, b)) => {
                        // Both forms: check F = d ln a/dt and g^2 = d(b^2)/dt - 2 F b^2.
                        let b2 = Expr::powi(b.clone(), 2);
                        let f_k = simplest(a.diff(t) / &a);
                        let g2_k = simplest(b2.diff(t) - 2.0 * &f_k * &b2);
                        self.consistent(Part::Mean, "F(t) = d ln a/dt", &f, &f_k, &grid, &env);
                        self.consistent(
                            Part::Std,
                            "g(t)^2 = d(b^2)/dt - 2 F b^2",
                            &g2,
                            &g2_k,
                            &grid,
                            &env,
                        );
                        self.check_mean_at_zero(&a, &env);
                        Coefs {
                            f,
                            g,
                            g2,
                            int_f: None,
                            a: Some(a),
                            b2: Some(b2),
                            b: Some(b),
                            log_snr: None,
                            dlog_snr: None,
                            t_of_log_snr: None,
                        }
                    }
                    None => {
                        let int_f = f
                            .integrate_definite(t, &Expr::zero(), &Expr::sym(t))
                            .ok()
                            .map(|e| e.expand());
                        let a = int_f.as_ref().map(|i| i.exp());
                        let b2 = a.as_ref().and_then(|a| {
                            let a2 = Expr::powi(a.clone(), 2);
                            let integrand = &g2 / &a2;
                            let k = integrand
                                .integrate_definite(t, &Expr::zero(), &Expr::sym(t))
                                .ok()?;
                            Some(simplest(a2 * k))
                        });
                        let mut c = Coefs {
                            f,
                            g,
                            g2,
                            int_f,
                            a,
                            b2,
                            b: None,
                            log_snr: None,
                            dlog_snr: None,
                            t_of_log_snr: None,
                        };
                        verify_integrals(&mut c, &grid, &env);
                        c.b = c.b2.as_ref().map(|b2| b2.sqrt());
                        c
                    }
                }
            }
            (None, Some((a, b))) => {
                entries.push(given("mean", "a(t)", &a, &show));
                entries.push(given("std", "b(t)", &b, &show));
                self.check_mean_at_zero(&a, &env);
                let b2 = Expr::powi(b.clone(), 2);
                let f = simplest(a.diff(t) / &a);
                let g2 = simplest(b2.diff(t) - 2.0 * &f * &b2);
                let g = g2.sqrt();
                entries.push(closed("F", "F(t) = d ln a/dt", "F(t)", &f, &show));
                entries.push(closed(
                    "g2",
                    "g(t)^2 = d(b^2)/dt - 2 F b^2",
                    "g(t)^2",
                    &g2,
                    &show,
                ));
                Coefs {
                    f,
                    g,
                    g2,
                    int_f: None,
                    a: Some(a),
                    b2: Some(b2),
                    b: Some(b),
                    log_snr: None,
                    dlog_snr: None,
                    t_of_log_snr: None,
                }
            }
            (None, None) => return None,
        };
        if !self.errors.is_empty() {
            return None;
        }
        let mut coefs = coefs;
        let given_kernel = mean.is_some();

        // 7. λ, dλ/dt, t(λ).
        if let (Some(a), Some(b2)) = (&coefs.a, &coefs.b2) {
            coefs.log_snr = Some(Expr::add([a.ln(), -0.5 * b2.ln()]));
            coefs.dlog_snr = Some(simplest(-0.5 * &coefs.g2 / b2));
            let sigma2 = (b2 / Expr::powi(a.clone(), 2)).expand();
            let rhs = (-2.0 * Expr::sym("lambda")).exp();
            // In textbook form: also the numerically stable one (`1/(1 + e^λ)` stays
            // finite where `e^-λ/(1 + e^-λ)` overflows).
            coefs.t_of_log_snr = solve::solve_for_all(&sigma2, t, &rhs)
                .into_iter()
                .map(|cand| cand.textbook("lambda", &[]))
                .find(|cand| inverse_ok(cand, &coefs, &grid, &env));
        } else if coefs.b2.is_some() {
            coefs.dlog_snr = coefs.b2.as_ref().map(|b2| -0.5 * &coefs.g2 / b2);
        }

        // 8. Values on the grid at the default params.
        let derived = Derived {
            name: spec.name.clone(),
            params: params.clone(),
            t_min: t_min_e,
            t_max: t_max_e,
            coefs,
            lets: lets_shown.clone(),
            derivation: Derivation {
                name: Cow::Owned(spec.name.clone()),
                doc: spec.doc.clone().map(Cow::Owned),
                header: Vec::new(),
                entries: Vec::new(),
            },
        };
        self.check_grid(&derived, &grid, given_kernel, drift.is_none());
        if !self.errors.is_empty() {
            return None;
        }

        // 9. The printable derivation.
        let mut derived = derived;
        derived.derivation.header = header(&lets_shown, &params, t0, t1);
        describe(&derived, &mut entries, t1, &show);
        derived.derivation.entries = entries;
        Some(derived)
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

    fn consistent(
        &mut self,
        part: Part,
        what: &str,
        given: &Expr,
        derived: &Expr,
        grid: &[f64],
        env: &dyn Fn(&str) -> Option<f64>,
    ) {
        if given.expand() == derived.expand() {
            return;
        }
        let pts = spread(grid, 64);
        for t in pts {
            let at = |n: &str| if n == "t" { Some(t) } else { env(n) };
            let (u, v) = (given.eval(&at), derived.eval(&at));
            let ok = match (&u, &v) {
                (Ok(u), Ok(v)) => (u - v).abs() <= REL_TOL * u.abs().max(v.abs()).max(1e-300),
                _ => false,
            };
            if !ok {
                self.err(Diagnostic::new(
                    part,
                    format!(
                        "inconsistent forms: {what} fails at t = {}: from drift/diffusion {}, from mean/std {}",
                        fmt_num(t),
                        fmt_val(&u),
                        fmt_val(&v)
                    ),
                ));
                return;
            }
        }
    }

    fn check_mean_at_zero(&mut self, a: &Expr, env: &dyn Fn(&str) -> Option<f64>) {
        match a.eval(&|n| if n == "t" { Some(0.0) } else { env(n) }) {
            Ok(v) if (v - 1.0).abs() <= 1e-12 => {}
            Ok(v) => self.err(Diagnostic::new(
                Part::Mean,
                format!("the mean must satisfy a(0) = 1 (x_0 is the data), but a(0) = {v}"),
            )),
            Err(_) => self.err(Diagnostic::new(
                Part::Mean,
                "the mean must satisfy a(0) = 1, but a(0) is not finite",
            )),
        }
    }

    /// Values on the grid at the default params: F, g^2, a, b finite, g^2 > 0, a > 0, b > 0.
    /// `kernel_given`: the kernel (a, b) was declared, so a bad a or b points at it;
    /// `g_derived`: g^2 was derived from the kernel, so a bad g^2 points at the std.
    fn check_grid(&mut self, d: &Derived, grid: &[f64], kernel_given: bool, g_derived: bool) {
        let b = d.bind(&[]);
        // In the SDE form a bad a(t) = exp(∫F) comes from the drift, a bad b(t) from the diffusion.
        let kernel_part = |p: Part| match (kernel_given, p) {
            (true, p) => p,
            (false, Part::Mean) => Part::Drift,
            (false, _) => Part::Diffusion,
        };
        // a and b on the whole grid in one pass (they may be numeric).
        let kernel = b.kernel_on(grid);
        let at = |t: f64| {
            let i = grid.iter().position(|&g| g == t).unwrap_or(0);
            kernel[i]
        };
        let a_at = |t: f64| -> Option<Diagnostic> {
            let a = at(t).0;
            (!(a.is_finite() && a > 0.0)).then(|| {
                Diagnostic::new(
                    kernel_part(Part::Mean),
                    format!(
                        "{} at t = {} (with the default params){}",
                        finite_positive("a(t)", a),
                        fmt_num(t),
                        if kernel_given {
                            ""
                        } else {
                            ": a(t) = exp(∫_0^t F(s) ds) needs F integrable from 0"
                        }
                    ),
                )
            })
        };
        let b_at = |t: f64| -> Option<Diagnostic> {
            let sd = match &d.coefs.b {
                Some(_) => b.std(t),
                None => at(t).1.sqrt(),
            };
            (!(sd.is_finite() && sd > 0.0)).then(|| {
                Diagnostic::new(
                    kernel_part(Part::Std),
                    format!(
                        "{} at t = {} (with the default params)",
                        finite_positive("b(t)", sd),
                        fmt_num(t)
                    ),
                )
            })
        };
        let f_g2_at = |t: f64| -> Option<Diagnostic> {
            let f = b.drift_coef(t);
            if !f.is_finite() {
                let part = if g_derived { Part::Mean } else { Part::Drift };
                return Some(Diagnostic::new(
                    part,
                    format!(
                        "F(t) is not finite at t = {} (with the default params)",
                        fmt_num(t)
                    ),
                ));
            }
            let g2 = b.diffusion_sq(t);
            if g2.is_finite() && g2 > 0.0 {
                return None;
            }
            let (part, what) = if g_derived {
                (Part::Std, "the derived g(t)^2 = d(b^2)/dt - 2 F b^2")
            } else {
                (Part::Diffusion, "g(t)^2")
            };
            let why = if g2.is_finite() {
                format!(
                    "{what} = {} must be > 0 at t = {} (with the default params)",
                    fmt_num(g2),
                    fmt_num(t)
                )
            } else {
                format!(
                    "{what} is not finite at t = {} (with the default params)",
                    fmt_num(t)
                )
            };
            Some(Diagnostic::new(part, why))
        };
        // One pass per check over the whole grid, the first error only. A declared kernel's
        // own a, b go before the F, g^2 derived from them; otherwise the closed-form F, g^2
        // go before a, b, which may need (nested) quadrature, slow on a bad F.
        let passes: [&dyn Fn(f64) -> Option<Diagnostic>; 3] = if kernel_given {
            [&a_at, &b_at, &f_g2_at]
        } else {
            [&f_g2_at, &a_at, &b_at]
        };
        for pass in passes {
            if let Some(d) = grid.iter().find_map(|&t| pass(t)) {
                self.err(d);
                return;
            }
        }
    }
}

/// `what` is not finite, or `what = v` must be > 0.
fn finite_positive(what: &str, v: f64) -> String {
    if v.is_finite() {
        format!("{what} = {} must be > 0", fmt_num(v))
    } else {
        format!("{what} is not finite")
    }
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

/// The shorter (as printed) of an expression and its expansion.
fn simplest(e: Expr) -> Expr {
    let x = e.expand();
    if x.to_string().len() < e.to_string().len() {
        x
    } else {
        e
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

/// A number for a message: short, exact enough to act on.
fn fmt_num(v: f64) -> String {
    if v != 0.0 && (v.abs() < 1e-3 || v.abs() >= 1e6) {
        format!("{v:.4e}")
    } else {
        let s = format!("{v:.6}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        if s == "-0" {
            "0".into()
        } else {
            s.into()
        }
    }
}

fn fmt_val(v: &Result<f64, crate::EvalError>) -> String {
    match v {
        Ok(v) => fmt_num(*v),
        Err(e) => e.to_string(),
    }
}

/// `n` points spread over the grid (all of it if it is smaller).
fn spread(grid: &[f64], n: usize) -> Vec<f64> {
    if grid.len() <= n {
        return grid.to_vec();
    }
    (0..n)
        .map(|i| grid[i * (grid.len() - 1) / (n - 1)])
        .collect()
}

/// Checks closed forms of `∫F`, `a`, `b^2` against quadrature at the default params and
/// drops any that disagree (they then fall back to quadrature): wrong code is never
/// emitted silently.
fn verify_integrals(c: &mut Coefs, grid: &[f64], env: &dyn Fn(&str) -> Option<f64>) {
    let ev = |e: &Expr, t: f64| e.eval(&|n| if n == "t" { Some(t) } else { env(n) });
    let close = |u: f64, v: f64| (u - v).abs() <= 1e-8 * u.abs().max(v.abs()).max(1e-12);
    let pts = spread(grid, 12);
    if let Some(i) = &c.int_f {
        let ok = pts.iter().all(|&t| {
            let q = numeric::integrate(|s| ev(&c.f, s).unwrap_or(f64::NAN), 0.0, t);
            matches!(ev(i, t), Ok(v) if close(v, q))
        });
        if !ok {
            c.int_f = None;
            c.a = None;
            c.b2 = None;
        }
    }
    if let (Some(a), Some(b2)) = (&c.a, &c.b2) {
        let ok = pts.iter().all(|&t| {
            let q = numeric::integrate(
                |s| match (ev(&c.g2, s), ev(a, s)) {
                    (Ok(g2), Ok(a)) => g2 / (a * a),
                    _ => f64::NAN,
                },
                0.0,
                t,
            );
            match (ev(a, t), ev(b2, t)) {
                (Ok(av), Ok(bv)) => close(bv, av * av * q),
                _ => false,
            }
        });
        if !ok {
            c.b2 = None;
        }
    }
}

/// Whether a candidate `t(λ)` inverts `λ(t)` on the grid at the default params.
fn inverse_ok(cand: &Expr, c: &Coefs, grid: &[f64], env: &dyn Fn(&str) -> Option<f64>) -> bool {
    let Some(l) = &c.log_snr else { return false };
    spread(grid, 17).iter().all(|&t| {
        let lam = match l.eval(&|n| if n == "t" { Some(t) } else { env(n) }) {
            Ok(v) => v,
            Err(_) => return false,
        };
        match cand.eval(&|n| if n == "lambda" { Some(lam) } else { env(n) }) {
            Ok(t2) => (t2 - t).abs() <= 1e-9 * t.abs().max(1.0),
            Err(_) => false,
        }
    })
}

fn given(key: &'static str, label: &'static str, e: &Expr, show: &Show) -> Entry {
    let e = &show.form(e);
    Entry {
        key: Cow::Borrowed(key),
        label: Cow::Borrowed(label),
        text: Cow::Owned(e.to_string()),
        latex: Cow::Owned(format!("{} &= {}", latex_label(label), e.to_latex())),
        method: Method::Given,
    }
}

/// How derived expressions are shown: in textbook form ([`Expr::textbook`], `t > 0` on
/// a valid time range) and in terms of the declared `let` names where their expansions
/// occur (`β(t)`, not `beta_min + t*(beta_max - beta_min)`). For printing only: the
/// generated code evaluates the verified coefficients themselves.
struct Show {
    lets: Vec<(String, Expr)>,
    /// `t` and the params whose default values are positive (a display assumption:
    /// the derivation's checks run at the defaults).
    positive: Vec<String>,
}

impl Show {
    /// How `d`'s expressions are shown.
    fn of(d: &Derived) -> Show {
        Show::new(&d.lets, &d.params)
    }

    fn new(lets: &[(String, Expr)], params: &[(String, f64)]) -> Show {
        Show {
            lets: lets.to_vec(),
            positive: std::iter::once("t".to_string())
                .chain(
                    params
                        .iter()
                        .filter(|(_, v)| *v > 0.0)
                        .map(|(n, _)| n.clone()),
                )
                .collect(),
        }
    }

    fn form(&self, e: &Expr) -> Expr {
        let positive: Vec<&str> = self.positive.iter().map(String::as_str).collect();
        let mut out = e.textbook("t", &positive);
        // Later lets may contain earlier ones: replace the later ones first.
        for (name, value) in self.lets.iter().rev() {
            // Composite values only: a `let c = 2.0` must not rename every 2.
            if !matches!(
                value.node(),
                crate::Node::Num(_) | crate::Node::Sym(_) | crate::Node::Const(_)
            ) {
                let name = Expr::sym(name);
                let shown = value.textbook("t", &positive);
                for (v, n) in [
                    (Expr::powi(value.clone(), 2), Expr::powi(name.clone(), 2)),
                    (value.clone(), name.clone()),
                    (shown, name.clone()),
                ] {
                    out = out.replace(&v, &n);
                }
                out = multiples_of(&out, value, &name);
            }
        }
        out
    }
}

/// Every subexpression of `e` that is a numeric multiple of `value` (equal after
/// expanding), as that multiple of `name`: `-(β₀t + (β₁-β₀)t²/2)/2` is `-int_beta/2`.
fn multiples_of(e: &Expr, value: &Expr, name: &Expr) -> Expr {
    let target = value.expand();
    let multiple = |x: &Expr| -> Option<f64> {
        if !matches!(x.node(), crate::Node::Add(_) | crate::Node::Mul(_)) {
            return None;
        }
        let mine = x.expand();
        if mine.terms().len() != target.terms().len() {
            return None;
        }
        // The ratio of the coefficients of one monomial (terms sort by coefficient too).
        let (c_mine, rest) = mine.terms()[0].split_coeff();
        let c_target = target
            .terms()
            .iter()
            .map(Expr::split_coeff)
            .find(|(_, r)| *r == rest)?
            .0;
        let c = c_mine / c_target;
        (c.is_finite() && c != 0.0 && (mine - c * &target).expand().is_zero()).then_some(c)
    };
    fn walk(e: &Expr, multiple: &dyn Fn(&Expr) -> Option<f64>, name: &Expr) -> Expr {
        if let Some(c) = multiple(e) {
            return c * name;
        }
        let children = e.children();
        if children.is_empty() {
            return e.clone();
        }
        e.with_children(children.iter().map(|c| walk(c, multiple, name)).collect())
    }
    walk(e, &multiple, name)
}

fn closed(key: &'static str, label: &'static str, latex_lhs: &str, e: &Expr, show: &Show) -> Entry {
    let e = &show.form(e);
    Entry {
        key: Cow::Borrowed(key),
        label: Cow::Borrowed(label),
        text: Cow::Owned(e.to_string()),
        latex: Cow::Owned(format!("{} &= {}", latex_label(latex_lhs), e.to_latex())),
        method: Method::ClosedForm,
    }
}

fn numeric_entry(key: &'static str, label: &'static str, latex_lhs: &str, recipe: Recipe) -> Entry {
    Entry {
        key: Cow::Borrowed(key),
        label: Cow::Borrowed(label),
        text: Cow::Borrowed(recipe.text()),
        latex: Cow::Owned(format!("{latex_lhs} &= {}", recipe.latex())),
        method: Method::Numeric,
    }
}

fn latex_label(label: &str) -> String {
    label
        .replace("∂f/∂x", "\\partial f / \\partial x")
        .replace("d ln a/dt", "\\frac{d \\ln a}{dt}")
        .replace("σ", "\\sigma")
        .replace("λ", "\\lambda")
}

fn header(
    lets: &[(String, Expr)],
    params: &[(String, f64)],
    t0: f64,
    t1: f64,
) -> Vec<Cow<'static, str>> {
    let mut h = Vec::new();
    if !params.is_empty() {
        let ps: Vec<String> = params.iter().map(|(n, v)| format!("{n} = {v}")).collect();
        h.push(Cow::Owned(format!("params: {}", ps.join(", "))));
    }
    h.push(Cow::Owned(format!("time:   t in [{t0}, {t1}]")));
    for (n, e) in lets {
        h.push(Cow::Owned(format!("let {n} = {e}")));
    }
    h
}

fn describe(d: &Derived, entries: &mut Vec<Entry>, t1: f64, show: &Show) {
    let c = &d.coefs;
    let b = d.bind(&[]);
    match c.int_f_plan() {
        Plan::Closed(i) => entries.push(closed(
            "int_F",
            "∫_0^t F(s) ds",
            "\\int_0^t F(s)\\,ds",
            i,
            show,
        )),
        Plan::Numeric(r) if c.a.is_none() => entries.push(numeric_entry(
            "int_F",
            "∫_0^t F(s) ds",
            "\\int_0^t F(s)\\,ds",
            r,
        )),
        Plan::Numeric(_) => {}
    }
    match c.a_plan() {
        Plan::Closed(a) => {
            if c.int_f.is_some() {
                entries.push(closed("a", "a(t) = exp(∫F)", "a(t)", a, show));
            }
        }
        Plan::Numeric(r) => entries.push(numeric_entry("a", "a(t) = exp(∫F)", "a(t)", r)),
    }
    match c.b2_plan() {
        Plan::Closed(b2) => entries.push(closed("b2", "b(t)^2", "b(t)^2", b2, show)),
        Plan::Numeric(r) => entries.push(numeric_entry("b2", "b(t)^2", "b(t)^2", r)),
    }
    if let (Some(a), Some(bb)) = (&c.a, &c.b) {
        if c.int_f.is_some() || !entries.iter().any(|e| e.key == "std") {
            entries.push(closed("b", "b(t)", "b(t)", bb, show));
        }
        entries.push(closed("sigma", "σ(t) = b/a", "σ(t) = b/a", &(bb / a), show));
    }
    let rest = [
        (
            "log_snr",
            "λ(t) = ln(a/b)",
            "λ(t)",
            "\\lambda(t)",
            c.log_snr_plan(),
        ),
        (
            "dlog_snr",
            "dλ/dt = -g^2/(2 b^2)",
            "dλ/dt",
            "\\frac{d\\lambda}{dt}",
            c.dlog_snr_plan(),
        ),
        (
            "t_of_log_snr",
            "t(λ)",
            "t(λ)",
            "t(\\lambda)",
            c.t_of_log_snr_plan(),
        ),
    ];
    for (key, label, closed_lhs, numeric_lhs, plan) in rest {
        entries.push(match plan {
            Plan::Closed(e) => closed(key, label, closed_lhs, e, show),
            Plan::Numeric(r) => numeric_entry(key, label, numeric_lhs, r),
        });
    }
    entries.push(Entry {
        key: Cow::Borrowed("score"),
        label: Cow::Borrowed("∇ log p_0t(x_t | x_0)"),
        text: Cow::Borrowed("-(x_t - a(t)*x_0) / b(t)^2 = -eps / b(t)"),
        latex: Cow::Borrowed(
            "\\nabla_{x_t} \\log p_{0t}(x_t \\mid x_0) &= -\\frac{x_t - a(t)\\,x_0}{b(t)^2} = -\\frac{\\epsilon}{b(t)}",
        ),
        method: Method::ClosedForm,
    });
    // The drifts as expressions in x and a stand-in for the score, so that their
    // coefficients fold (−½·(2t) is −t) and print in textbook form.
    let (score_text, score_latex) = ("∇log p_t(x)", "\\nabla_x \\log p_t(x)");
    // A stand-in symbol that sorts after every name, so the score prints last.
    let stand_in = "~score";
    let score = Expr::sym(stand_in);
    let drift = |score_coef: Expr| {
        let e = Expr::add([
            show.form(&c.f) * Expr::sym("x"),
            show.form(&score_coef) * &score,
        ]);
        (
            e.to_string().replace(stand_in, score_text),
            e.to_latex().replace(&score.to_latex(), score_latex),
        )
    };
    let (reverse, reverse_latex) = drift(-&c.g2);
    entries.push(Entry {
        key: Cow::Borrowed("reverse_sde"),
        label: Cow::Borrowed("reverse SDE"),
        text: Cow::Owned(format!("dx = [{reverse}] dt + g(t) dw̄")),
        latex: Cow::Owned(format!(
            "dx &= \\left[{reverse_latex}\\right] dt + g(t)\\, d\\bar w"
        )),
        method: Method::ClosedForm,
    });
    let (pf, pf_latex) = drift(-0.5 * &c.g2);
    entries.push(Entry {
        key: Cow::Borrowed("pf_ode"),
        label: Cow::Borrowed("probability-flow ODE"),
        text: Cow::Owned(format!("dx/dt = {pf}")),
        latex: Cow::Owned(format!("\\frac{{dx}}{{dt}} &= {pf_latex}")),
        method: Method::ClosedForm,
    });
    let bt = b.std(t1);
    entries.push(Entry {
        key: Cow::Borrowed("prior"),
        label: Cow::Borrowed("prior p_T"),
        text: Cow::Owned(format!(
            "N(0, b(T)^2 I), b(T) = {} at the default params; log p_T(x) = -|x|^2/(2 b(T)^2) - (d/2) ln(2π b(T)^2)",
            fmt_short(bt)
        )),
        latex: Cow::Owned(format!(
            "p_T &= \\mathcal{{N}}(0, b(T)^2 I),\\quad b(T) = {} \\text{{ at the default params}}",
            fmt_short(bt)
        )),
        method: if c.b.is_some() {
            Method::ClosedForm
        } else {
            Method::Numeric
        },
    });
}

fn fmt_short(v: f64) -> String {
    let s = format!("{v:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    if s.is_empty() || s == "-" {
        "0".into()
    } else {
        s
    }
}
