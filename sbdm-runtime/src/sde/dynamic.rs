//! SDEs declared at run time: the `sde!` language read from text (a `.sde` file, CLI
//! flags, a checkpoint's stored declaration), derived by the same symbolic core and
//! evaluated through compiled expressions that perform the macro's generated
//! operations in the same order.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use sbdm_symbolic::sde::{Bound, Derivation, Derived};

use super::{GaussianKernel, Sde, SdeSource};
use crate::error::{invalid, Result};

/// A forward SDE derived at run time from its declaration.
///
/// ```
/// use sbdm_runtime::sde::{builtin::VpSde, DynSde, GaussianKernel, Sde};
/// let vp = DynSde::parse(
///     "struct MyVp {
///          params { beta_min: f64 = 0.1, beta_max: f64 = 20.0 }
///          time = [1e-3, 1.0];
///          let beta = beta_min + t * (beta_max - beta_min);
///          drift = -0.5 * beta * x;
///          diffusion = beta.sqrt();
///      }",
/// )?;
/// assert_eq!(vp.name(), "MyVp");
/// assert_eq!(vp.std(0.5), VpSde::default().std(0.5));
/// let half = vp.with_params(&[("beta_max".into(), 10.0)])?;
/// assert_eq!(half.std(0.5), VpSde { beta_max: 10.0, ..Default::default() }.std(0.5));
/// # Ok::<(), sbdm_runtime::error::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct DynSde {
    name: &'static str,
    derived: Arc<Derived>,
    bound: Arc<Bound>,
    text: Arc<str>,
}

/// Declared names live as long as the program (`Sde::name` is `&'static str`); each
/// distinct name is stored once.
fn intern(name: &str) -> &'static str {
    static NAMES: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);
    let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    let names = names.get_or_insert_with(HashSet::new);
    match names.get(name) {
        Some(n) => n,
        None => {
            let leaked: &'static str = Box::leak(name.to_string().into_boxed_str());
            names.insert(leaked);
            leaked
        }
    }
}

/// Runs `f`, a panic in it (a bug of the symbolic core) becoming an error.
fn guarded(f: impl FnOnce() -> Result<DynSde>) -> Result<DynSde> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(invalid!(
            "internal error in the symbolic core on this declaration (a bug; please report it)"
        ))
    })
}

impl DynSde {
    /// Parses and derives a declaration: exactly what goes between the braces of
    /// `sde! { .. }`. Every problem is reported, as `LINE:COL: message` with the
    /// macro's messages.
    /// A panic in the parser or the symbolic core (a bug) is an error too.
    pub fn parse(text: &str) -> Result<DynSde> {
        guarded(|| {
            let derived = sbdm_syntax::derive_source(text).map_err(|e| invalid!("{e}"))?;
            Ok(DynSde::new(derived, text))
        })
    }

    /// The SDE of a derived declaration whose source text is `text`.
    pub fn new(derived: Derived, text: &str) -> DynSde {
        let bound = derived.bind(&[]);
        DynSde {
            name: intern(&derived.name),
            derived: Arc::new(derived),
            bound: Arc::new(bound),
            text: Arc::from(text),
        }
    }

    /// The SDE a stored [`SdeSource`] declares, with its parameter values.
    pub fn from_source(source: &SdeSource) -> Result<DynSde> {
        DynSde::parse(&source.text)?.with_params(&source.params)
    }

    /// The SDE declared by `source`, shifted in time by `s > 0`:
    /// `t → s·t/(1 + (s − 1)·t)` on `[0, 1]` (SD3's shift), written as a new declaration
    /// with the parameter `shift = s` ([`sbdm_syntax::time_shifted`]) and derived again.
    pub fn time_shifted(source: &SdeSource, s: f64) -> Result<DynSde> {
        let text = sbdm_syntax::time_shifted(&source.text, s).map_err(|e| invalid!("{e}"))?;
        let mut params = source.params.clone();
        params.push(("shift".to_string(), s));
        DynSde::parse(&text)?.with_params(&params)
    }

    /// The same SDE with other parameter values (the rest keep theirs); an unknown
    /// name or a non-finite value is an error.
    pub fn with_params(&self, values: &[(String, f64)]) -> Result<DynSde> {
        guarded(|| self.with_params_unguarded(values))
    }

    fn with_params_unguarded(&self, values: &[(String, f64)]) -> Result<DynSde> {
        let mut all = self.params();
        for (name, v) in values {
            let Some(slot) = all.iter_mut().find(|(n, _)| n == name) else {
                let names: Vec<&str> = self
                    .derived
                    .params
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect();
                return Err(invalid!(
                    "{} has no parameter `{name}`; its parameters: {}",
                    self.name,
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                ));
            };
            if !v.is_finite() {
                return Err(invalid!(
                    "parameter `{name}` of {} must be finite, got {v}",
                    self.name
                ));
            }
            slot.1 = *v;
        }
        let sde = DynSde {
            bound: Arc::new(self.derived.bind(&all)),
            ..self.clone()
        };
        sde.check_values(values)?;
        Ok(sde)
    }

    /// The derivation checked its coefficients at the default parameters; other values
    /// are checked here: a valid time range, and `a(t) > 0`, `b(t) > 0`, `g(t)² ≥ 0`
    /// finite at 33 times across it (at `T`, pure noise `a(T) = 0` is allowed).
    fn check_values(&self, values: &[(String, f64)]) -> Result<()> {
        if values.is_empty() {
            return Ok(());
        }
        let with = || {
            values
                .iter()
                .map(|(n, v)| format!("{n} = {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let (t0, t1) = self.time_range();
        if !(t0.is_finite() && t1.is_finite() && 0.0 <= t0 && t0 < t1) {
            return Err(invalid!(
                "{} with {}: the time range [{t0}, {t1}] is not valid",
                self.name,
                with()
            ));
        }
        for i in 0..=32 {
            let t = t0 + (t1 - t0) * f64::from(i) / 32.0;
            // A pure-noise end (a(T) = 0) is legal; F and g² diverge there.
            if i == 32 && self.is_pure_noise(t) && self.std(t) > 0.0 {
                continue;
            }
            let (a, b, g2) = (self.mean_coef(t), self.std(t), self.diffusion_sq(t));
            let bad = [
                (!(a.is_finite() && a > 0.0), "a(t)", a),
                (!(b.is_finite() && b > 0.0), "b(t)", b),
                (!(g2.is_finite() && g2 >= 0.0), "g(t)²", g2),
            ];
            if let Some((_, what, v)) = bad.into_iter().find(|(bad, _, _)| *bad) {
                return Err(invalid!(
                    "{} with {}: {what} = {v} at t = {t} (it must be finite and positive)",
                    self.name,
                    with()
                ));
            }
        }
        Ok(())
    }

    /// Every parameter with its current value, in declaration order.
    pub fn params(&self) -> Vec<(String, f64)> {
        self.derived
            .params
            .iter()
            .map(|(n, _)| n.clone())
            .zip(self.bound.params().iter().copied())
            .collect()
    }

    /// The derivation, printable as text (`Display`) and LaTeX.
    pub fn derivation(&self) -> &Derivation {
        &self.derived.derivation
    }
}

impl Sde for DynSde {
    fn name(&self) -> &'static str {
        self.name
    }
    fn source(&self) -> Option<SdeSource> {
        Some(SdeSource {
            text: self.text.to_string().into(),
            params: self.params(),
        })
    }
    fn time_range(&self) -> (f64, f64) {
        self.bound.time_range()
    }
    fn drift_coef(&self, t: f64) -> f64 {
        self.bound.drift_coef(t)
    }
    fn diffusion(&self, t: f64) -> f64 {
        self.bound.diffusion(t)
    }
    fn diffusion_sq(&self, t: f64) -> f64 {
        self.bound.diffusion_sq(t)
    }
}

impl GaussianKernel for DynSde {
    fn mean_coef(&self, t: f64) -> f64 {
        self.bound.mean_coef(t)
    }
    fn std(&self, t: f64) -> f64 {
        self.bound.std(t)
    }
    fn variance(&self, t: f64) -> f64 {
        self.bound.variance(t)
    }
    fn log_snr(&self, t: f64) -> f64 {
        self.bound.log_snr(t)
    }
    fn dlog_snr_dt(&self, t: f64) -> f64 {
        self.bound.dlog_snr_dt(t)
    }
    fn mean_coef_dt(&self, t: f64) -> f64 {
        self.bound.mean_coef_dt(t)
    }
    fn std_dt(&self, t: f64) -> f64 {
        self.bound.std_dt(t)
    }
    fn t_of_log_snr(&self, lambda: f64) -> f64 {
        self.bound.t_of_log_snr(lambda)
    }
}
