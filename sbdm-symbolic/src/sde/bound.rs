//! The run-time form of a derivation: coefficients bound to parameter values and
//! compiled, each computed by its [`Plan`](super::Plan).

use super::derive::Derived;
use super::recipe;
use crate::{numeric, Compiled, Expr};

impl Derived {
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
            da: opt(&c.da, "t"),
            db: opt(&c.db, "t"),
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
    da: Option<Compiled>,
    db: Option<Compiled>,
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
    /// `ȧ(t) = da/dt`.
    pub fn mean_coef_dt(&self, t: f64) -> f64 {
        match &self.da {
            Some(d) => d.eval(t, &self.params),
            None => recipe::mean_rate_from_drift(self.drift_coef(t), self.mean_coef(t)),
        }
    }
    /// `ḃ(t) = db/dt`.
    pub fn std_dt(&self, t: f64) -> f64 {
        match &self.db {
            Some(d) => d.eval(t, &self.params),
            None => recipe::std_rate_from_variance(
                self.diffusion_sq(t),
                self.drift_coef(t),
                self.variance(t),
            ),
        }
    }
}
