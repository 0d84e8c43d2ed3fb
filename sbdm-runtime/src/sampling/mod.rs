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

mod denoiser;
pub mod fused;
pub mod grid;
mod guidance;
pub mod noise;
mod run;
mod sampler;
mod samplers;
pub mod step;

pub use denoiser::Denoiser;
pub use grid::{GridKind, Spacing, TimeGrid};
pub use guidance::{Constraint, Guide, Guided, ScoreTerm};
pub use noise::Noise;
pub use sampler::{DdpmVariance, Sampled, Sampler};
pub use samplers::ddim::{ddim_coefficients, DdimCoefficients};
pub use samplers::ddpm::{ddpm_coefficients, DdpmCoefficients};
