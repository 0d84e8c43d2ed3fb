//! The runtime of sbdm: the SDE traits every `sde!` declaration implements, the
//! built-in SDEs (each declared with the macro itself) and the discrete DDPM schedules.
//!
//! Samplers, score models, training, guidance and likelihoods build on these traits.

// Generated code names `::sbdm::__private`; inside this crate that is this crate.
extern crate self as sbdm;

pub mod data;
pub mod device;
pub mod error;
pub mod guide;
pub mod host;
pub mod io;
pub mod likelihood;
pub mod limits;
pub mod model;
pub mod nn;
pub mod parallel;
pub mod report;
pub mod sampling;
pub mod sde;
pub mod simd;
pub mod train;

pub use sbdm_macros::sde;
pub use sbdm_symbolic::sde::{Derivation, Entry, Method};
pub use sde::{GaussianKernel, Sde};

/// Everything a user of the runtime usually needs.
pub mod prelude {
    pub use crate::sde::builtin::{
        CosineSde, EdmSde, RectifiedFlow, SubVpSde, TrigFlow, VeSde, VpSde,
    };
    pub use crate::sde::discrete::{BetaSchedule, DiscreteSchedule};
    pub use crate::sde::{GaussianKernel, Sde, SdeSource};
    pub use sbdm_macros::sde;
}

/// Paths the `sde!` macro's generated code names. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::sde::{GaussianKernel, Sde, SdeSource};
    pub use sbdm_symbolic::numeric;
    pub use sbdm_symbolic::sde::recipe;
    pub use sbdm_symbolic::sde::{Derivation, Entry, Method};
    pub use std::borrow::Cow;
}
