//! The `sde!` proc macro of sbdm: declare a forward SDE (or its Gaussian kernel) in a
//! few lines; every derived coefficient is computed at compile time by
//! `sbdm-symbolic` and inlined into impls of the runtime's SDE traits.
//!
//! Use it through the facade crate, `sbdm::sde!`; the generated code names only
//! `::sbdm::__private` paths. See the `sbdm` crate for the language and examples.

mod expand;
mod fallback;
#[cfg(test)]
mod fuzz_tests;

use proc_macro::TokenStream;

/// Declares a forward SDE and derives everything a diffusion model needs from it.
///
/// ```text
/// sbdm::sde! {
///     /// Variance-preserving SDE with a linear schedule.
///     pub struct VpSde {
///         params { beta_min: f64 = 0.1, beta_max: f64 = 20.0 }
///         time = [1e-3, 1.0];
///         let beta = beta_min + t * (beta_max - beta_min);
///         drift = -0.5 * beta * x;
///         diffusion = beta.sqrt();
///     }
/// }
/// ```
///
/// Mistakes are compile errors under the offending tokens, all reported at once.
#[proc_macro]
pub fn sde(input: TokenStream) -> TokenStream {
    expand::expand(input.into()).into()
}
