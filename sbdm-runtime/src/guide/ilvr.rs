//! ILVR, iterative latent variable refinement (Choi et al. 2021, Algorithm 1): after every
//! step while the time reached is above a cut-off, the state's low frequencies are replaced
//! by those of the reference `y` noised to that time,
//! `x ← x − φ_N(x) + φ_N(y_t)`, `y_t ~ q(y_t | y)` a fresh draw of the derived kernel. The
//! output is a sample of the model whose low-pass image matches the reference's; `N`
//! sets how much of the reference is kept (small `N`: more). Pass it to
//! [`Guided::with_constraint`](crate::sampling::Guided::with_constraint).

use candle_core::Tensor;

use super::{check_time, noised, LowPass};
use crate::error::{invalid, Result};
use crate::sampling::{Constraint, Noise};
use crate::sde::GaussianKernel;

/// The ILVR constraint for a reference batch.
pub struct Ilvr<'a, S: ?Sized> {
    sde: &'a S,
    reference: Tensor,
    lowpass: LowPass,
    cutoff: f64,
}

impl<'a, S: GaussianKernel + ?Sized> Ilvr<'a, S> {
    /// Refinement towards `reference` (`[B, ...]`, one per sample) with the filter
    /// `lowpass`, applied while the time reached is above `cutoff` (in the SDE's time
    /// range; its `t_min` refines every step).
    pub fn new(sde: &'a S, reference: &Tensor, lowpass: LowPass, cutoff: f64) -> Result<Self> {
        check_time(sde, cutoff, "the ILVR cut-off")?;
        lowpass.check(&reference.dims()[1..])?;
        Ok(Ilvr {
            sde,
            reference: reference.clone(),
            lowpass,
            cutoff,
        })
    }
}

impl<S: GaussianKernel + ?Sized> Constraint for Ilvr<'_, S> {
    fn apply(&self, x: &Tensor, t: f64, noise: &mut Noise) -> Result<Tensor> {
        if x.dims() != self.reference.dims() {
            return Err(invalid!(
                "ILVR: the state has shape {:?} but the reference {:?}",
                x.dims(),
                self.reference.dims()
            ));
        }
        if t < self.cutoff {
            return Ok(x.clone());
        }
        let y_t = noised(self.sde, &self.reference.to_dtype(x.dtype())?, t, noise)?;
        let phi = |v: &Tensor| self.lowpass.apply(v);
        Ok(((x - phi(x)?)? + phi(&y_t)?)?)
    }
}
