//! # sbdm — score-based diffusion models, derived at compile time
//!
//! Declare a forward SDE in a few lines; the [`sde!`] macro derives its transition
//! kernel, log-SNR, reverse-time SDE, probability-flow ODE and prior in closed form
//! (or by quadrature, said so) and implements the runtime's [`Sde`] and
//! [`GaussianKernel`] traits with the closed forms inlined.
//!
//! ```
//! use sbdm::prelude::*;
//!
//! sde! {
//!     /// Variance-preserving SDE with a linear schedule.
//!     pub struct MyVp {
//!         params { beta_min: f64 = 0.1, beta_max: f64 = 20.0 }
//!         time = [1e-3, 1.0];
//!         let beta = beta_min + t * (beta_max - beta_min);
//!         drift = -0.5 * beta * x;
//!         diffusion = beta.sqrt();
//!     }
//! }
//!
//! let sde = MyVp::default();
//! let (a, b) = (sde.mean_coef(0.5), sde.std(0.5));
//! assert!((a * a + b * b - 1.0).abs() < 1e-12);            // variance preserving
//! assert!((sde.t_of_log_snr(sde.log_snr(0.5)) - 0.5).abs() < 1e-9);
//! let half = MyVp { beta_max: 10.0, ..Default::default() };  // params stay symbolic
//! assert!(half.std(0.5) < b);
//! println!("{}", MyVp::derivation());                       // every derived equation
//! println!("{}", MyVp::derivation().latex());
//! ```

pub use sbdm_macros::sde;
pub use sbdm_runtime::sde::{builtin, discrete};
pub use sbdm_runtime::{Derivation, Entry, GaussianKernel, Method, Sde};
pub use sbdm_symbolic as symbolic;

/// The usual imports: the macro, the SDE traits and the built-in SDEs.
pub mod prelude {
    pub use sbdm_runtime::prelude::*;
}

/// Paths the `sde!` macro's generated code names. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use sbdm_runtime::__private::*;
}
