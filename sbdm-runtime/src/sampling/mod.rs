//! Sampling: every standard diffusion sampler, generic over any declared linear SDE (and
//! so monomorphised per SDE with its closed forms inlined) and any score model.
//!
//! - [`Sampler`]: the samplers as values with their settings; one entry point,
//!   [`Sampler::sample`], and one place of every check, [`Sampler::validate`].
//! - [`TimeGrid`]: the times they step through.
//! - [`Guide`] / [`Guided`]: what they follow — a model under a
//!   [`Condition`](crate::model::Condition), plus [`ScoreTerm`]s and a [`Constraint`].
//! - [`step`]: the step algebra; every step is a short linear combination of tensors
//!   assigned in fused passes over memory ([`fused`]).
//! - [`Noise`]: seeded per-sample noise streams.
//!
//! Each algorithm is a short file in `samplers/` reading like its paper; the dynamics it
//! integrates (reverse SDE, probability-flow ODE, the kernel between two times) come from
//! the SDE ([`crate::sde`](mod@crate::sde)).
//!
//! # Encoding
//!
//! The probability-flow ODE is a deterministic, invertible map between data and noise,
//! so a deterministic sampler run up the same grid encodes data: [`Sampler::encode`]
//! takes `x_0` as the state at the grid's low end `t_min` (where sampling ends) and
//! integrates to `T` over the grid reversed; [`Sampler::sample`] from the result over the
//! same grid decodes it. Each step is the sampler's own formula with `t` and `s` swapped:
//! for DDIM (η = 0) this is the inversion of Song, Meng & Ermon (2021), §4.3,
//! `x_s = (a_s/a_t)·x + (b_s − a_s·b_t/a_t)·ε̂(x, t)` for `s > t`; for DPM-Solver and
//! DPM-Solver++ (Lu et al. 2022a, b) the log-SNR step `h = λ_s − λ_t` turns negative and
//! the formulas hold as they are; the Euler and Heun steps run forward in `t`; RK45
//! integrates upward with the same adaptive controller. Stochastic samplers (and Heun's
//! churn, DDIM with η > 0) have no inverse and are refused, as are a guide's constraint
//! and RePaint's resampling; a condition and score terms are allowed.
//!
//! The inverse of a step is not the exact inverse of the sampling step: an encoding step
//! evaluates the model at the step's start (the low time), the sampling step back at its
//! start (the high time). So `decode(encode(x))` is not `x` but differs from it by the
//! method's discretisation error: `O(1/N)` for DDIM in `N` steps; for a second-order
//! method the leading local errors of a step and of its reverse cancel, and
//! DPM-Solver++(2M)'s round trip falls nearly as `1/N³` (`tests/encode.rs` measures
//! both); for RK45, its tolerance.

#[cfg(feature = "cuda")]
mod cuda_module;
mod denoiser;
pub mod fused;
#[cfg(feature = "cuda")]
mod fused_cuda;
pub mod fused_kernel;
pub mod grid;
mod guidance;
pub mod kernel_cache;
pub mod noise;
pub mod philox;
#[cfg(feature = "cuda")]
mod philox_cuda;
pub mod philox_kernel;
mod run;
mod sampler;
mod samplers;
pub mod step;

pub use denoiser::Denoiser;
pub use grid::{GridKind, Spacing, TimeGrid};
pub use guidance::{Constraint, Guide, Guided, ScoreTerm};
pub use noise::{GeneratedNoise, Noise, NoiseDraw, NoiseKind};
pub use sampler::{DdpmVariance, Sampled, Sampler};
pub use samplers::ddim::{ddim_coefficients, DdimCoefficients};
pub use samplers::ddpm::{ddpm_coefficients, DdpmCoefficients};
