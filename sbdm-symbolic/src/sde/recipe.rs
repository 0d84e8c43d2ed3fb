//! How a coefficient is computed when the derivation finds no closed form: each numeric
//! recipe written once, here, as the function that evaluates it and the text that
//! describes it. The run-time evaluator ([`Bound`](super::Bound)), the `sde!` macro's
//! generated code (which calls these functions through `::sbdm::__private`) and the
//! printed derivation all read a coefficient's [`Plan`].

use crate::numeric;
use crate::Expr;

/// How one derived coefficient is computed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Plan<'a> {
    /// A closed form, in `t` and the params (`lambda` for `t(λ)`).
    Closed(&'a Expr),
    /// A numeric recipe.
    Numeric(Recipe),
}

/// A numeric recipe for a coefficient without a closed form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recipe {
    /// `∫_0^t F(s) ds` by adaptive Gauss–Kronrod quadrature ([`numeric::integrate`]).
    IntegralOfDrift,
    /// `a(t) = exp(∫_0^t F)`, the integral by quadrature.
    MeanByQuadrature,
    /// `b(t)² = a(t)²·∫_0^t g²/a² ds` for a closed `a`, by quadrature.
    VarianceByQuadrature,
    /// `b(t)² = e^{2∫F}·∫_0^t g²/a² ds` with `a` numeric too: both integrals in one ODE
    /// pass ([`numeric::kernel_integrals`]).
    VarianceByKernelOde,
    /// `b(t) = sqrt(b(t)²)`.
    StdFromVariance,
    /// `λ(t) = ln a(t) − ln(b(t)²)/2` from the numeric kernel.
    LogSnrFromKernel,
    /// `dλ/dt = −g(t)²/(2·b(t)²)` from the numeric variance.
    DlogSnrFromVariance,
    /// `t(λ)` by a bracketed monotone solve of `λ(t) = lambda` on the time range, to
    /// 1e-12 ([`numeric::invert_monotone`]).
    TimeBySolve,
    /// `ȧ(t) = F(t)·a(t)` from the numeric `a`.
    MeanRateFromDrift,
    /// `ḃ(t) = (g(t)² + 2F(t)·b(t)²)/(2b(t))` from the numeric `b`.
    StdRateFromVariance,
}

impl Recipe {
    /// One line for the printed derivation.
    pub fn text(self) -> &'static str {
        match self {
            Recipe::IntegralOfDrift => "adaptive Gauss-Kronrod quadrature of F over [0, t]",
            Recipe::MeanByQuadrature => "exp(quadrature of ∫_0^t F(s) ds)",
            Recipe::VarianceByQuadrature => "a(t)^2 * quadrature of ∫_0^t g(s)^2/a(s)^2 ds",
            Recipe::VarianceByKernelOde => {
                "exp(2∫_0^t F) * ∫_0^t g(s)^2/a(s)^2 ds, both integrals in one ODE pass"
            }
            Recipe::StdFromVariance => "sqrt(b(t)^2) from the numeric b^2",
            Recipe::LogSnrFromKernel => "ln(a(t)) - ln(b(t)^2)/2 from the numeric a, b",
            Recipe::DlogSnrFromVariance => "-g(t)^2 / (2 b(t)^2) from the numeric b",
            Recipe::TimeBySolve => {
                "bracketed monotone solve of λ(t) = lambda on the time range (to 1e-12)"
            }
            Recipe::MeanRateFromDrift => "F(t) * a(t) from the numeric a",
            Recipe::StdRateFromVariance => "(g(t)^2 + 2 F(t) b(t)^2) / (2 b(t)) from the numeric b",
        }
    }

    /// The right-hand side in LaTeX (after `&=`).
    pub fn latex(self) -> &'static str {
        match self {
            Recipe::IntegralOfDrift => "\\text{quadrature}",
            Recipe::MeanByQuadrature => "\\exp\\left(\\int_0^t F(s)\\,ds\\right)",
            Recipe::VarianceByQuadrature | Recipe::VarianceByKernelOde => {
                "a(t)^2 \\int_0^t \\frac{g(s)^2}{a(s)^2}\\,ds"
            }
            Recipe::StdFromVariance => "\\sqrt{b(t)^2}",
            Recipe::LogSnrFromKernel => "\\ln\\frac{a(t)}{b(t)}",
            Recipe::DlogSnrFromVariance => "-\\frac{g(t)^2}{2 b(t)^2}",
            Recipe::TimeBySolve => "\\lambda^{-1}(\\lambda) \\text{ by a bracketed solve}",
            Recipe::MeanRateFromDrift => "F(t)\\,a(t)",
            Recipe::StdRateFromVariance => "\\frac{g(t)^2 + 2F(t)\\,b(t)^2}{2b(t)}",
        }
    }
}

/// [`Recipe::MeanByQuadrature`]: `a(t)` from the drift coefficient `f`.
pub fn mean_by_quadrature(f: impl Fn(f64) -> f64, t: f64) -> f64 {
    numeric::integrate(f, 0.0, t).exp()
}

/// [`Recipe::VarianceByQuadrature`]: `b(t)²` from `a` (closed) and `g²`.
pub fn variance_by_quadrature(a: impl Fn(f64) -> f64, g2: impl Fn(f64) -> f64, t: f64) -> f64 {
    let at = a(t);
    at * at
        * numeric::integrate(
            |s| {
                let a = a(s);
                g2(s) / (a * a)
            },
            0.0,
            t,
        )
}

/// [`Recipe::VarianceByKernelOde`] from `∫_0^t F` and `∫_0^t g²/a²` (one pass of
/// [`numeric::kernel_integrals`] gives both).
pub fn variance_from_integrals(int_f: f64, int_g2_over_a2: f64) -> f64 {
    (2.0 * int_f).exp() * int_g2_over_a2
}

/// [`Recipe::VarianceByKernelOde`]: `b(t)²` from `F` and `g²`.
pub fn variance_by_kernel_ode(f: impl Fn(f64) -> f64, g2: impl Fn(f64) -> f64, t: f64) -> f64 {
    let (i, k) = numeric::kernel_integrals(f, g2, &[t])[0];
    variance_from_integrals(i, k)
}

/// [`Recipe::StdFromVariance`].
pub fn std_from_variance(b2: f64) -> f64 {
    b2.sqrt()
}

/// [`Recipe::LogSnrFromKernel`].
pub fn log_snr_from_kernel(a: f64, b2: f64) -> f64 {
    a.ln() - 0.5 * b2.ln()
}

/// [`Recipe::DlogSnrFromVariance`].
pub fn dlog_snr_from_variance(g2: f64, b2: f64) -> f64 {
    -g2 / (2.0 * b2)
}

/// [`Recipe::MeanRateFromDrift`]: `ȧ = F·a`.
pub fn mean_rate_from_drift(f: f64, a: f64) -> f64 {
    f * a
}

/// [`Recipe::StdRateFromVariance`]: `ḃ = (g² + 2F·b²)/(2b)` (from `g² = d(b²)/dt − 2F·b²`).
pub fn std_rate_from_variance(g2: f64, f: f64, b2: f64) -> f64 {
    (g2 + 2.0 * f * b2) / (2.0 * b2.sqrt())
}

/// [`Recipe::TimeBySolve`]: the time in `[lo, hi]` where `log_snr` equals `lambda`.
pub fn time_by_solve(log_snr: impl Fn(f64) -> f64, lambda: f64, lo: f64, hi: f64) -> f64 {
    numeric::invert_monotone(log_snr, lambda, lo, hi)
}
