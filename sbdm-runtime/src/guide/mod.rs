//! Controllable generation and image-to-image translation, each an addition to the
//! sampling core ([`crate::sampling`]) and usable with every sampler on every declared SDE,
//! its weights taken from the SDE's own `a(t)`, `b(t)` and `g(t)²`:
//!
//! | method | what it is | where |
//! |---|---|---|
//! | classifier guidance | a score term `s·∇ₓ log p_t(y | x_t)` from a [`TimeClassifier`] | [`classifier`] |
//! | classifier-free guidance | a model wrapper `ε̂_∅ + w·(ε̂_y − ε̂_∅)`, with rescaling and a guidance interval | [`cfg`] |
//! | inpainting | a constraint replacing the known part by a draw of `q(x_t | x_0)`, and RePaint's resampling | [`inpaint`] |
//! | SDEdit | a source noised to `t₀` by the kernel ([`noised`]), then any sampler from `t₀` | here |
//! | ILVR | a constraint `x ← x − φ_N(x) + φ_N(y_t)` above a cut-off | [`ilvr`], [`lowpass`] |
//! | EGSDE | a score term `−∇ₓ(λ_s·E_s + λ_i·E_i)` of two energy experts | [`egsde`] |
//!
//! ```
//! use candle_core::Device;
//! use sbdm_runtime::guide::{classifier::ClassifierGuidance, noised};
//! use sbdm_runtime::model::mixture::GaussianMixture;
//! use sbdm_runtime::sampling::{Guided, Noise, Sampler, TimeGrid};
//! use sbdm_runtime::sde::builtin::VpSde;
//! # fn main() -> sbdm_runtime::error::Result<()> {
//! let (sde, dev) = (VpSde::default(), Device::Cpu);
//! let mix = GaussianMixture::ring(4, 2.0, 0.3)?;
//! let exact = mix.model(&sde); // the exact score, and its exact classifier
//! let labels = candle_core::Tensor::new(&[2u32; 16], &dev)?;
//! let guided = Guided::new(&exact).with_term(ClassifierGuidance::new(&exact, &labels, 1.0)?);
//! let mut noise = Noise::new(0, 0, 16, &[2], &dev);
//! let x_t = noise.draw()?;
//! let out = Sampler::DpmPp2m.sample(&sde, &guided, &x_t, &TimeGrid::uniform(20), &mut noise)?;
//! // SDEdit: the samples noised back to t₀ = 0.5, then sampled down again.
//! let x_t0 = noised(&sde, &out.x, 0.5, &mut noise)?;
//! let grid = TimeGrid::uniform(10).between(0.5, 1e-3);
//! let edited = Sampler::Dpm1.sample(&sde, &exact, &x_t0, &grid, &mut noise)?;
//! assert_eq!(edited.x.dims(), [16, 2]);
//! # Ok(()) }
//! ```

use candle_core::Tensor;

use crate::error::{invalid, Result};
use crate::sampling::step::LinComb;
use crate::sampling::Noise;
use crate::sde::GaussianKernel;

pub mod cfg;
pub mod classifier;
pub mod egsde;
pub mod ilvr;
pub mod inpaint;
pub mod lowpass;

pub use cfg::ClassifierFree;
pub use classifier::{ClassifierGuidance, TimeClassifier};
pub use egsde::{Egsde, Features};
pub use ilvr::Ilvr;
pub use inpaint::{Inpainting, Replace};
pub use lowpass::LowPass;

/// A draw of the forward kernel `q(x_t | x_0) = N(a(t)·x_0, b(t)²·I)`: `x_0` noised to time
/// `t` with the next draw of `noise` (SDEdit's start, and the known part of inpainting,
/// ILVR and EGSDE). `t` must lie in the SDE's time range.
pub fn noised<S: GaussianKernel + ?Sized>(
    sde: &S,
    x0: &Tensor,
    t: f64,
    noise: &mut Noise,
) -> Result<Tensor> {
    check_time(sde, t, "t")?;
    let z = noise.next_draw(x0.dtype())?;
    if z.dims() != x0.dims() {
        return Err(invalid!(
            "the noise streams draw shape {:?} but x_0 has shape {:?}",
            z.dims(),
            x0.dims()
        ));
    }
    (LinComb::term(sde.mean_coef(t), x0) + sde.std(t) * &z).evaluate(x0)
}

/// Refuses a time outside the SDE's range, naming it `what`.
pub fn check_time<S: GaussianKernel + ?Sized>(sde: &S, t: f64, what: &str) -> Result<()> {
    let (lo, hi) = sde.time_range();
    if !(t.is_finite() && t >= lo && t <= hi) {
        return Err(invalid!(
            "{what} = {t} is outside the SDE's time range [{lo}, {hi}]"
        ));
    }
    Ok(())
}
