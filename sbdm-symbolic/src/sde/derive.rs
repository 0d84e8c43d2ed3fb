//! The derivation pipeline: parse → lower → check → derive → verify → describe.

use std::borrow::Cow;

use super::derivation::Derivation;
use super::describe::{describe, header};
use super::recipe::{Plan, Recipe};
use super::spec::{Diagnostic, Part, SdeSpec};
use super::validate::Checked;
use crate::{numeric, solve, Expr};

/// Points of the time grid the compile-time checks evaluate on.
pub(super) const GRID: usize = 129;

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
    /// `ȧ(t) = da/dt`; `None`: `F·a` from the numeric `a`.
    pub da: Option<Expr>,
    /// `ḃ(t) = db/dt`; `None`: `(g² + 2F·b²)/(2b)` from the numeric `b`.
    pub db: Option<Expr>,
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
    /// How `ȧ(t)` is computed.
    pub fn da_plan(&self) -> Plan<'_> {
        plan(&self.da, Recipe::MeanRateFromDrift)
    }
    /// How `ḃ(t)` is computed.
    pub fn db_plan(&self) -> Plan<'_> {
        plan(&self.db, Recipe::StdRateFromVariance)
    }
}

fn plan(e: &Option<Expr>, recipe: Recipe) -> Plan<'_> {
    match e {
        Some(e) => Plan::Closed(e),
        None => Plan::Numeric(recipe),
    }
}

/// The forms a declaration gave, lowered (`diffusion` is `g(t)`).
pub(super) struct Given {
    pub drift: Option<Expr>,
    pub diffusion: Option<Expr>,
    pub mean: Option<Expr>,
    pub std: Option<Expr>,
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

/// Checks a declaration and derives everything from it; on failure, every problem
/// found, each pointing at its part of the declaration.
pub fn derive(spec: &SdeSpec) -> Result<Derived, Vec<Diagnostic>> {
    let mut cx = Cx::default();
    let out = cx
        .check(spec)
        .and_then(|checked| cx.derive_checked(spec, checked));
    if cx.errors.is_empty() {
        out.ok_or_else(|| vec![Diagnostic::new(Part::Decl, "derivation failed")])
    } else {
        Err(cx.errors)
    }
}

#[derive(Default)]
pub(super) struct Cx {
    pub(super) errors: Vec<Diagnostic>,
}

impl Cx {
    pub(super) fn err(&mut self, d: Diagnostic) {
        self.errors.push(d);
    }

    /// The derivation pass, on a checked declaration: the coefficients (checking the
    /// two forms against each other where both are given), λ and its inverse, the values
    /// on the time grid, and the printable derivation.
    fn derive_checked(&mut self, spec: &SdeSpec, checked: Checked) -> Option<Derived> {
        let Checked {
            params,
            t_min: t_min_e,
            t_max: t_max_e,
            range: (t0, t1),
            grid,
            lets: lets_shown,
            drift_coef,
            given,
        } = checked;
        let env = |name: &str| params.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
        let sde_form = drift_coef.zip(given.diffusion.clone());
        let kernel_form = given.mean.clone().zip(given.std.clone());
        let t = "t";
        let coefs = match (sde_form, kernel_form) {
            (Some((f, g)), kernel) => {
                let g2 = Expr::powi(g.clone(), 2);
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
                            da: None,
                            db: None,
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
                            da: None,
                            db: None,
                        };
                        verify_integrals(&mut c, &grid, &env);
                        c.b = c.b2.as_ref().map(|b2| b2.sqrt());
                        c
                    }
                }
            }
            (None, Some((a, b))) => {
                self.check_mean_at_zero(&a, &env);
                let b2 = Expr::powi(b.clone(), 2);
                let f = simplest(a.diff(t) / &a);
                let g2 = simplest(b2.diff(t) - 2.0 * &f * &b2);
                let g = g2.sqrt();
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
                    da: None,
                    db: None,
                }
            }
            (None, None) => return None,
        };
        if !self.errors.is_empty() {
            return None;
        }
        let mut coefs = coefs;
        let given_kernel = given.mean.is_some();

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
        // ȧ, ḃ: the kernel's rates, finite where F and g² are not (a(T) = 0, as in
        // rectified flow, where F = ȧ/a and g² = 2bḃ − 2F·b² diverge).
        coefs.da = coefs.a.as_ref().map(|a| simplest(a.diff(t)));
        coefs.db = coefs.b.as_ref().map(|b| simplest(b.diff(t)));

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
        self.check_grid(&derived, &grid, given_kernel, given.drift.is_none());
        if !self.errors.is_empty() {
            return None;
        }

        // 9. The printable derivation.
        let mut derived = derived;
        derived.derivation.header = header(&lets_shown, &params, t0, t1);
        derived.derivation.entries = describe(&derived, &given, t1);
        Some(derived)
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
        // A declared kernel may reach pure noise at the end, a(T) = 0 (rectified flow,
        // zero terminal SNR): λ(T) = −∞ and F, g² diverge there, so T alone is exempt
        // from a > 0 and from finite F, g². Everywhere before T the usual checks hold.
        let t_end = grid.last().copied().unwrap_or(f64::NAN);
        let pure_noise_end = kernel_given && at(t_end).0 == 0.0;
        let exempt = |t: f64| pure_noise_end && t == t_end;
        let a_at = |t: f64| -> Option<Diagnostic> {
            let a = at(t).0;
            if exempt(t) {
                return None;
            }
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
            if exempt(t) {
                return None;
            }
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

/// The shorter (as printed) of an expression and its expansion.
pub(super) fn simplest(e: Expr) -> Expr {
    let x = e.expand();
    if x.to_string().len() < e.to_string().len() {
        x
    } else {
        e
    }
}

/// A number for a message: short, exact enough to act on.
pub(super) fn fmt_num(v: f64) -> String {
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
    let points = spread(grid, 17);
    // λ = −∞ at a pure-noise end (a(T) = 0) is not a point to check the inverse at.
    let last = points.last().copied();
    points.iter().all(|&t| {
        let lam = match l.eval(&|n| if n == "t" { Some(t) } else { env(n) }) {
            Ok(v) if v.is_finite() => v,
            Ok(_) | Err(_) if Some(t) == last && c.a.is_some() => return true,
            _ => return false,
        };
        match cand.eval(&|n| if n == "lambda" { Some(lam) } else { env(n) }) {
            Ok(t2) => (t2 - t).abs() <= 1e-9 * t.abs().max(1.0),
            Err(_) => false,
        }
    })
}
