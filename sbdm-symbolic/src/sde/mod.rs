//! Derivation of everything a diffusion model needs from a declared forward SDE.
//!
//! A declaration ([`SdeSpec`]) gives either the forward SDE `dx = f(x,t) dt + g(t) dw`
//! with a drift linear in `x`, or its Gaussian kernel `x_t = a(t) x_0 + b(t) eps`, or
//! both. [`derive`] checks it and derives, in closed form where the core finds one
//! and by quadrature otherwise:
//!
//! - `F(t) = ∂f/∂x`, `g(t)^2`;
//! - `a(t) = exp(∫_0^t F)`, `b(t)^2 = a(t)^2 (b(0)^2 + ∫_0^t g^2/a^2)`, or from
//!   `(a, b)`: `F = d ln a/dt`, `g^2 = d(b^2)/dt − 2 F b^2`;
//! - `σ(t) = b/a`, the half log-SNR `λ(t) = ln(a/b)`, `dλ/dt = −g^2/(2 b^2)`, and `t(λ)`;
//! - the kernel score, Anderson's reverse-time SDE, the probability-flow ODE and the prior.
//!
//! The `sde!` macro and the `sbdm derive` CLI both call [`derive`], so they print the
//! same [`Derivation`].

mod bound;
mod check;
mod derivation;
mod derive;
mod describe;
pub mod recipe;
mod spec;
mod validate;

pub use bound::Bound;
pub use derivation::{Derivation, Entry, Method};
pub use derive::{derive, Coefs, Derived};
pub use recipe::{Plan, Recipe};
pub use spec::{Diagnostic, Param, Part, SdeSpec};
