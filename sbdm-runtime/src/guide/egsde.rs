//! EGSDE, energy-guided SDE translation (Zhao et al. 2022): from `x_{t₀} ~ q(· | y)` for a
//! source `y`, sample the reverse dynamics of `p_t(x)·e^{−E(x, y, t)}`, i.e. the score
//! `∇log p_t(x) − ∇ₓE` with `E = λ_s·E_s + λ_i·E_i`, both experts minimised:
//!
//! - the **realistic expert** `E_s(x, y, t) = cos(f(x, t), f(y_t, t))`, the cosine
//!   similarity of a time-dependent domain classifier's features of `x` and of
//!   `y_t ~ q(y_t | y)`: minimising it discards the features specific to the source domain;
//! - the **faithful expert** `E_i(x, y, t) = ‖φ_N(x) − φ_N(y_t)‖²`: it keeps the
//!   domain-independent low frequencies.
//!
//! `−∇ₓE` is a score term, so the energy enters the reverse SDE through the declared SDE's
//! own `g(t)²` (`dx = [F·x − g²·(∇log p_t − ∇E)] dt + g dw̄`): VP, VE and any declared SDE
//! work, with any sampler. `y_t` is a fresh draw at every evaluation, from the term's own
//! seeded noise streams.

use std::cell::RefCell;

use candle_core::{DType, Tensor, Var, D};

use super::{noised, LowPass};
use crate::error::{invalid, Result};
use crate::model::classifier::ClassifierModel;
use crate::model::Condition;
use crate::sampling::{Noise, ScoreTerm};
use crate::sde::GaussianKernel;

/// A time-dependent feature map `f(x, t)` `[N, F]`, differentiable in `x`.
pub trait Features {
    /// The features of `x` at times `t` (one per row).
    fn features(&self, x: &Tensor, t: &[f64]) -> Result<Tensor>;
}

impl<S: GaussianKernel> Features for ClassifierModel<S> {
    fn features(&self, x: &Tensor, t: &[f64]) -> Result<Tensor> {
        ClassifierModel::features(self, x, t)
    }
}

/// The EGSDE energy term for a source batch (see the module docs).
pub struct Egsde<'a, S: ?Sized, F: ?Sized> {
    sde: &'a S,
    source: Tensor,
    features: &'a F,
    lowpass: LowPass,
    lambda_s: f64,
    lambda_i: f64,
    noise: RefCell<Noise>,
}

/// The two experts' energies of each sample, f32 `[N]`.
pub struct Energies {
    /// `E_s`, the cosine similarity of the domain features.
    pub realistic: Tensor,
    /// `E_i`, the squared distance of the low-pass images.
    pub faithful: Tensor,
}

impl<'a, S: GaussianKernel + ?Sized, F: Features + ?Sized> Egsde<'a, S, F> {
    /// The energy of weights `λ_s` (realistic) and `λ_i` (faithful) towards `source`
    /// (`[B, ...]`, one per sample), with the domain features `features` and the filter
    /// `lowpass`; `y_t` is drawn from streams of `seed`.
    pub fn new(
        sde: &'a S,
        source: &Tensor,
        features: &'a F,
        lowpass: LowPass,
        (lambda_s, lambda_i): (f64, f64),
        seed: u64,
    ) -> Result<Self> {
        if !(lambda_s.is_finite() && lambda_i.is_finite() && lambda_s >= 0.0 && lambda_i >= 0.0) {
            return Err(invalid!(
                "the EGSDE weights must be finite and >= 0, got lambda_s = {lambda_s}, lambda_i = {lambda_i}"
            ));
        }
        let dims = source.dims();
        lowpass.check(&dims[1..])?;
        let noise = Noise::new(seed, 0, dims[0], &dims[1..], source.device());
        Ok(Egsde {
            sde,
            source: source.clone(),
            features,
            lowpass,
            lambda_s,
            lambda_i,
            noise: RefCell::new(noise),
        })
    }

    /// `E_s` and `E_i` of `x` against the noised source `y_t` at time `t`, differentiable
    /// in `x` (f32).
    pub fn energies(&self, x: &Tensor, y_t: &Tensor, t: f64) -> Result<Energies> {
        let ts = vec![t; x.dim(0)?];
        let fx = self.features.features(x, &ts)?;
        let fy = self.features.features(y_t, &ts)?;
        let dot = (&fx * &fy)?.sum(D::Minus1)?;
        let norms = (fx.sqr()?.sum(D::Minus1)?.sqrt()? * fy.sqr()?.sum(D::Minus1)?.sqrt()?)?;
        let realistic = (dot / norms.affine(1.0, 1e-12)?)?;
        let diff = (self.lowpass.apply(x)? - self.lowpass.apply(y_t)?)?;
        let faithful = diff.sqr()?.flatten_from(1)?.sum(1)?;
        Ok(Energies {
            realistic,
            faithful,
        })
    }

    /// `y_t ~ q(y_t | y)`: the source noised to `t` with the term's next draw.
    pub fn noised_source(&self, t: f64) -> Result<Tensor> {
        noised(self.sde, &self.source, t, &mut self.noise.borrow_mut())
    }
}

impl<S: GaussianKernel + ?Sized, F: Features + ?Sized> ScoreTerm for Egsde<'_, S, F> {
    fn score(&self, x: &Tensor, t: f64, _condition: &Condition) -> Result<Tensor> {
        if x.dims() != self.source.dims() {
            return Err(invalid!(
                "EGSDE: the state has shape {:?} but the source {:?}",
                x.dims(),
                self.source.dims()
            ));
        }
        let y_t = self.noised_source(t)?.to_dtype(DType::F32)?;
        let xv = Var::from_tensor(&x.to_dtype(DType::F32)?.detach())?;
        let e = self.energies(xv.as_tensor(), &y_t, t)?;
        let energy =
            (e.realistic.affine(self.lambda_s, 0.0)? + e.faithful.affine(self.lambda_i, 0.0)?)?;
        let grads = energy.sum_all()?.backward()?;
        let g = grads
            .get(xv.as_tensor())
            .ok_or_else(|| invalid!("EGSDE: the energy does not depend on x"))?;
        Ok(g.affine(-1.0, 0.0)?.to_dtype(x.dtype())?)
    }
}
