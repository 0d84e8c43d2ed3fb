//! The SDE traits every declared forward SDE implements.
//!
//! A linear forward SDE `dx = F(t)·x dt + g(t) dw` on `t ∈ [t_min, T]` is described by
//! [`Sde`]; its Gaussian transition kernel `x_t = a(t)·x_0 + b(t)·ε`, `ε ~ N(0, I)`, by
//! [`GaussianKernel`]. Coefficients are scalar `f64` functions of time; samplers
//! multiply tensors by them. Both traits are object safe, so `Box<dyn GaussianKernel>`
//! works, and they are implemented for `&S`, `Box<S>` and `Arc<S>` of any implementor.
//!
//! ```
//! use sbdm_runtime::sde::{GaussianKernel, Sde};
//!
//! /// Brownian motion x_t = x_0 + √t·ε, written out by hand.
//! struct Brownian;
//! impl Sde for Brownian {
//!     fn name(&self) -> &'static str { "Brownian" }
//!     fn time_range(&self) -> (f64, f64) { (1e-3, 1.0) }
//!     fn drift_coef(&self, _t: f64) -> f64 { 0.0 }
//!     fn diffusion(&self, _t: f64) -> f64 { 1.0 }
//! }
//! impl GaussianKernel for Brownian {
//!     fn mean_coef(&self, _t: f64) -> f64 { 1.0 }
//!     fn std(&self, t: f64) -> f64 { t.sqrt() }
//!     fn dlog_snr_dt(&self, t: f64) -> f64 { -0.5 / t }
//!     fn t_of_log_snr(&self, lambda: f64) -> f64 { (-2.0 * lambda).exp() }
//! }
//!
//! let sde: Box<dyn GaussianKernel> = Box::new(Brownian);
//! assert_eq!(sde.prior_std(), 1.0);
//! assert_eq!(sde.kernel_score(1.5, 1.0, 0.25), -2.0); // −(1.5 − 1)/0.25
//! assert!((sde.t_of_log_snr(sde.log_snr(0.3)) - 0.3).abs() < 1e-15);
//! ```

use std::sync::Arc;

pub mod builtin;
pub mod discrete;
mod dynamic;
pub mod named;
pub mod resolution_shift;
mod transition;

pub use dynamic::DynSde;
pub use transition::Transition;

/// A declared SDE's source: the declaration text (what goes between the braces of
/// `sde! { .. }`) and the values of its parameters.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SdeSource {
    /// The declaration, as [`SdeSpec::to_source`](sbdm_symbolic::sde::SdeSpec::to_source) prints it.
    pub text: std::borrow::Cow<'static, str>,
    /// Every parameter's value, in declaration order.
    pub params: Vec<(String, f64)>,
}

/// A forward SDE `dx = f(x,t) dt + g(t) dw` with linear drift `f(x,t) = F(t)·x`.
///
/// Required: [`name`](Sde::name), [`time_range`](Sde::time_range),
/// [`drift_coef`](Sde::drift_coef), [`diffusion`](Sde::diffusion); the rest have
/// defaults that implementors may override with closed forms.
pub trait Sde {
    /// The declared struct name, e.g. `"VpSde"`.
    fn name(&self) -> &'static str;

    /// The declaration this SDE was made from, as source text with its parameter
    /// values ([`SdeSource`]): what a checkpoint stores so that the SDE can be derived
    /// again at run time ([`DynSde`]). `sde!` types and [`DynSde`] have one; SDEs
    /// written by hand or tabulated do not.
    fn source(&self) -> Option<SdeSource> {
        None
    }

    /// `[t_min, T]`: the time interval the SDE is declared on.
    fn time_range(&self) -> (f64, f64);

    /// `F(t)`, the drift coefficient: `f(x, t) = F(t)·x`.
    fn drift_coef(&self, t: f64) -> f64;

    /// `g(t)`, the diffusion coefficient.
    fn diffusion(&self, t: f64) -> f64;

    /// `g(t)²`.
    fn diffusion_sq(&self, t: f64) -> f64 {
        let g = self.diffusion(t);
        g * g
    }

    /// `f(x, t) = F(t)·x`.
    fn drift(&self, x: f64, t: f64) -> f64 {
        self.drift_coef(t) * x
    }

    /// Anderson's reverse-time SDE at `t`,
    /// `dx = [F(t)·x − g(t)²·∇log p_t(x)] dt + g(t) dw̄` (integrated backwards in time),
    /// as the coefficients the samplers combine.
    fn reverse_sde(&self, t: f64) -> Dynamics {
        let g2 = self.diffusion_sq(t);
        Dynamics {
            x: self.drift_coef(t),
            score: -g2,
            noise_variance: g2,
        }
    }

    /// The probability-flow ODE at `t`, `dx/dt = F(t)·x − ½·g(t)²·∇log p_t(x)`: the
    /// deterministic dynamics with the same marginals as the reverse SDE.
    fn pf_ode(&self, t: f64) -> Dynamics {
        Dynamics {
            x: self.drift_coef(t),
            score: -0.5 * self.diffusion_sq(t),
            noise_variance: 0.0,
        }
    }

    /// Anderson's reverse-time drift `f(x,t) − g(t)²·∇log p_t(x)` (integrated backwards).
    fn reverse_drift(&self, x: f64, score: f64, t: f64) -> f64 {
        self.reverse_sde(t).drift(x, score)
    }

    /// Probability-flow ODE drift `f(x,t) − ½·g(t)²·∇log p_t(x)`.
    fn pf_ode_drift(&self, x: f64, score: f64, t: f64) -> f64 {
        self.pf_ode(t).drift(x, score)
    }
}

/// The reverse-time dynamics at one time, linear in the state and the score:
/// `dx = [x·X + score·S] dt + √(noise_variance) dw̄` with `X = self.x`, `S = self.score`.
///
/// [`Sde::reverse_sde`] gives `X = F(t)`, `S = −g(t)²`, `noise_variance = g(t)²`;
/// [`Sde::pf_ode`] gives `X = F(t)`, `S = −½·g(t)²` and no noise. Samplers integrate
/// these, so a new SDE needs no sampler change.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dynamics {
    /// The drift's coefficient of the state `x`.
    pub x: f64,
    /// The drift's coefficient of the score `∇log p_t(x)`.
    pub score: f64,
    /// The squared diffusion coefficient of the noise (0 for an ODE).
    pub noise_variance: f64,
}

impl Dynamics {
    /// The drift at a scalar state and score: `X·x + S·score`.
    pub fn drift(&self, x: f64, score: f64) -> f64 {
        self.x * x + self.score * score
    }
}

/// `ȧ = F·a` (from `a = exp ∫F`): [`GaussianKernel::mean_coef_dt`]'s default, for
/// kernels that override it on part of their range only.
pub fn mean_rate_from_drift<K: GaussianKernel + ?Sized>(kernel: &K, t: f64) -> f64 {
    kernel.drift_coef(t) * kernel.mean_coef(t)
}

/// `ḃ = (g² + 2F·b²)/(2b)` (from `g² = d(b²)/dt − 2F·b²`): [`GaussianKernel::std_dt`]'s
/// default, for kernels that override it on part of their range only.
pub fn std_rate_from_variance<K: GaussianKernel + ?Sized>(kernel: &K, t: f64) -> f64 {
    let b2 = kernel.variance(t);
    (kernel.diffusion_sq(t) + 2.0 * kernel.drift_coef(t) * b2) / (2.0 * b2.sqrt())
}

/// The Gaussian transition kernel `x_t = a(t)·x_0 + b(t)·ε` of a linear SDE.
///
/// With `a(t) = exp(∫_0^t F)` and `b(t)² = a(t)²·∫_0^t g²/a² ds`; conversely
/// `F = d ln a/dt` and `g² = d(b²)/dt − 2F·b²`.
pub trait GaussianKernel: Sde {
    /// `a(t)`, the mean coefficient: `E[x_t | x_0] = a(t)·x_0`.
    fn mean_coef(&self, t: f64) -> f64;

    /// `b(t)`, the kernel standard deviation.
    fn std(&self, t: f64) -> f64;

    /// `b(t)²`, the kernel variance.
    fn variance(&self, t: f64) -> f64 {
        let b = self.std(t);
        b * b
    }

    /// `σ(t) = b(t)/a(t)`, the noise-to-signal ratio (EDM's σ).
    fn sigma(&self, t: f64) -> f64 {
        self.std(t) / self.mean_coef(t)
    }

    /// `λ(t) = ln(a(t)/b(t))`, the half log-SNR; decreasing in `t`.
    fn log_snr(&self, t: f64) -> f64 {
        (self.mean_coef(t) / self.std(t)).ln()
    }

    /// `dλ/dt = F − (b²)'/(2b²) = −g²/(2b²)`.
    fn dlog_snr_dt(&self, t: f64) -> f64;

    /// `λ⁻¹`: the time at which the half log-SNR equals `lambda`.
    fn t_of_log_snr(&self, lambda: f64) -> f64;

    /// `ȧ(t) = da/dt`. Declared SDEs give its closed form where one exists (finite where
    /// `F = ȧ/a` is not, at `a = 0`); the default is `F(t)·a(t)`.
    fn mean_coef_dt(&self, t: f64) -> f64 {
        mean_rate_from_drift(self, t)
    }

    /// `ḃ(t) = db/dt`. Declared SDEs give its closed form where one exists; the default
    /// is `(g(t)² + 2F(t)·b(t)²)/(2b(t))`, from `g² = d(b²)/dt − 2F·b²`.
    fn std_dt(&self, t: f64) -> f64 {
        std_rate_from_variance(self, t)
    }

    /// Whether the kernel is pure noise at `t`: `|a(t)| ≤ 1e-12·b(t)`, so `x_t` carries
    /// no trace of `x_0` at f64's resolution (`a(T) = 0` exactly for rectified flow;
    /// `cos(π/2) ≈ 6e-17` for TrigFlow). There `λ = −∞` (or beyond any useful value), `F`
    /// and `g²` diverge, and samplers start in a form that stays finite.
    fn is_pure_noise(&self, t: f64) -> bool {
        self.mean_coef(t).abs() <= 1e-12 * self.std(t)
    }

    /// `∇_{x_t} log p_{0t}(x_t | x_0) = −(x_t − a(t)·x_0)/b(t)²`.
    fn kernel_score(&self, x_t: f64, x_0: f64, t: f64) -> f64 {
        -(x_t - self.mean_coef(t) * x_0) / self.variance(t)
    }

    /// `b(T)`: the prior at `T` is taken to be `N(0, b(T)²·I)`.
    fn prior_std(&self) -> f64 {
        self.std(self.time_range().1)
    }

    /// `log N(x; 0, b(T)²·I) = −½·Σx_i²/b(T)² − (n/2)·ln(2π·b(T)²)`.
    fn prior_log_prob(&self, x: &[f64]) -> f64 {
        let s = self.prior_std();
        let var = s * s;
        let sq: f64 = x.iter().map(|v| v * v).sum();
        -0.5 * sq / var - 0.5 * x.len() as f64 * (2.0 * std::f64::consts::PI * var).ln()
    }
}

/// Forwards every method, defaults included, so overrides survive the indirection.
macro_rules! forward_impls {
    ($($ptr:ty),*) => {$(
        impl<S: Sde + ?Sized> Sde for $ptr {
            fn name(&self) -> &'static str { (**self).name() }
            fn source(&self) -> Option<SdeSource> { (**self).source() }
            fn time_range(&self) -> (f64, f64) { (**self).time_range() }
            fn drift_coef(&self, t: f64) -> f64 { (**self).drift_coef(t) }
            fn diffusion(&self, t: f64) -> f64 { (**self).diffusion(t) }
            fn diffusion_sq(&self, t: f64) -> f64 { (**self).diffusion_sq(t) }
            fn drift(&self, x: f64, t: f64) -> f64 { (**self).drift(x, t) }
            fn reverse_sde(&self, t: f64) -> Dynamics { (**self).reverse_sde(t) }
            fn pf_ode(&self, t: f64) -> Dynamics { (**self).pf_ode(t) }
            fn reverse_drift(&self, x: f64, score: f64, t: f64) -> f64 {
                (**self).reverse_drift(x, score, t)
            }
            fn pf_ode_drift(&self, x: f64, score: f64, t: f64) -> f64 {
                (**self).pf_ode_drift(x, score, t)
            }
        }

        impl<S: GaussianKernel + ?Sized> GaussianKernel for $ptr {
            fn mean_coef(&self, t: f64) -> f64 { (**self).mean_coef(t) }
            fn std(&self, t: f64) -> f64 { (**self).std(t) }
            fn variance(&self, t: f64) -> f64 { (**self).variance(t) }
            fn sigma(&self, t: f64) -> f64 { (**self).sigma(t) }
            fn log_snr(&self, t: f64) -> f64 { (**self).log_snr(t) }
            fn dlog_snr_dt(&self, t: f64) -> f64 { (**self).dlog_snr_dt(t) }
            fn t_of_log_snr(&self, lambda: f64) -> f64 { (**self).t_of_log_snr(lambda) }
            fn mean_coef_dt(&self, t: f64) -> f64 { (**self).mean_coef_dt(t) }
            fn std_dt(&self, t: f64) -> f64 { (**self).std_dt(t) }
            fn is_pure_noise(&self, t: f64) -> bool { (**self).is_pure_noise(t) }
            fn kernel_score(&self, x_t: f64, x_0: f64, t: f64) -> f64 {
                (**self).kernel_score(x_t, x_0, t)
            }
            fn prior_std(&self) -> f64 { (**self).prior_std() }
            fn prior_log_prob(&self, x: &[f64]) -> f64 { (**self).prior_log_prob(x) }
        }
    )*};
}

forward_impls!(&S, Box<S>, Arc<S>);
