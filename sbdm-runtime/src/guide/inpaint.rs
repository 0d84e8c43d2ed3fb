//! Inpainting / imputation with a mask (Song et al. 2021, App. I.2): after every step the
//! known part of the state is replaced by a fresh draw of the derived kernel
//! `q(x_t | x_0) = N(a(t)·x_0, b(t)²·I)` of the known values, so the unknown part is
//! sampled from the model conditioned on it; RePaint's resampling (Lugmayr et al. 2022)
//! takes every step `r` times, jumping back by the forward kernel in between, to
//! harmonise the two parts. At the end the known part is set to the known values.
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use sbdm_runtime::guide::Inpainting;
//! use sbdm_runtime::model::mixture::GaussianMixture;
//! use sbdm_runtime::sampling::{Noise, Sampler, TimeGrid};
//! use sbdm_runtime::sde::builtin::VpSde;
//! # fn main() -> sbdm_runtime::error::Result<()> {
//! let (sde, dev) = (VpSde::default(), Device::Cpu);
//! let mix = GaussianMixture::ring(4, 2.0, 0.3)?;
//! let known = Tensor::new(&[[2f32, 0.0]; 6], &dev)?;   // x₁ = 2 is known, x₂ is not
//! let mask = Tensor::new(&[1f32, 0.0], &dev)?;         // one mask for every sample
//! let job = Inpainting::new(&known, &mask)?.with_resampling(5);
//! let mut noise = Noise::new(1, 0, 6, &[2], &dev);
//! let x_t = noise.draw()?;
//! let out = job.sample(&Sampler::Ancestral, &sde, &mix.model(&sde), &x_t, &TimeGrid::uniform(50), &mut noise)?;
//! let x = out.x.to_vec2::<f32>()?;
//! assert!(x.iter().all(|r| r[0] == 2.0));              // the known part, exactly
//! # Ok(()) }
//! ```

use candle_core::{DType, Tensor};

use super::noised;
use crate::error::{invalid, Result};
use crate::model::ScoreModel;
use crate::sampling::{Constraint, Guided, Noise, Sampled, Sampler, TimeGrid};
use crate::sde::GaussianKernel;

/// A mask and the values it marks as known.
#[derive(Clone, Debug)]
pub struct Inpainting {
    known: Tensor,
    mask: Tensor,
    resampling: usize,
}

impl Inpainting {
    /// `known` `[N, ...]` holds the known values (anything where the mask is 0); `mask` is
    /// 1 where a value is known and 0 where it is to be sampled, either one mask of a
    /// sample's shape `[...]` for every sample or one per sample `[N, ...]`.
    pub fn new(known: &Tensor, mask: &Tensor) -> Result<Inpainting> {
        let sample = &known.dims()[1..];
        let mask = if mask.dims() == sample {
            mask.unsqueeze(0)?
                .broadcast_as(known.shape())?
                .contiguous()?
        } else if mask.dims() == known.dims() {
            mask.clone()
        } else {
            return Err(invalid!(
                "the mask has shape {:?}; it must be a sample's shape {sample:?} or the \
                 batch's {:?}",
                mask.dims(),
                known.dims()
            ));
        };
        let values: Vec<f64> = mask.flatten_all()?.to_dtype(DType::F64)?.to_vec1()?;
        if let Some(v) = values.iter().find(|v| **v != 0.0 && **v != 1.0) {
            return Err(invalid!(
                "the mask must hold 0 (to sample) and 1 (known), found {v}"
            ));
        }
        let known_values: Vec<f64> = known.flatten_all()?.to_dtype(DType::F64)?.to_vec1()?;
        if let Some(i) = known_values
            .iter()
            .zip(&values)
            .position(|(k, m)| *m == 1.0 && !k.is_finite())
        {
            return Err(invalid!("known value {i} is {}", known_values[i]));
        }
        Ok(Inpainting {
            known: known.clone(),
            mask: mask.to_dtype(known.dtype())?,
            resampling: 1,
        })
    }

    /// Takes every step `r` times (RePaint; `r = 1`: plain replacement).
    pub fn with_resampling(mut self, r: usize) -> Inpainting {
        self.resampling = r;
        self
    }

    /// Samples the unknown part with `sampler` from `x_t` over `grid`, the known part
    /// replaced after every step and set exactly at the end.
    pub fn sample<S: GaussianKernel + ?Sized, M: ScoreModel + ?Sized>(
        &self,
        sampler: &Sampler,
        sde: &S,
        model: &M,
        x_t: &Tensor,
        grid: &TimeGrid,
        noise: &mut Noise,
    ) -> Result<Sampled> {
        if x_t.dims() != self.known.dims() {
            return Err(invalid!(
                "x_T has shape {:?} but the known values {:?}",
                x_t.dims(),
                self.known.dims()
            ));
        }
        let replace = Replace {
            sde,
            known: self.known.to_dtype(x_t.dtype())?,
            mask: self.mask.to_dtype(x_t.dtype())?,
        };
        let guided = Guided::new(model)
            .with_constraint(&replace)
            .with_resampling(self.resampling);
        let out = sampler.sample(sde, &guided, x_t, grid, noise)?;
        let x = replace.paste(&out.x, &replace.known)?;
        Ok(Sampled { x, ..out })
    }
}

/// The constraint: the known part replaced by a draw of `q(x_t | known)`.
pub struct Replace<'a, S: ?Sized> {
    sde: &'a S,
    known: Tensor,
    mask: Tensor,
}

impl<S: GaussianKernel + ?Sized> Replace<'_, S> {
    /// `x` with the masked part taken from `values`: `mask·values + (1 − mask)·x`.
    fn paste(&self, x: &Tensor, values: &Tensor) -> Result<Tensor> {
        let keep = self.mask.affine(-1.0, 1.0)?;
        Ok(((values.to_dtype(x.dtype())? * &self.mask)? + (x * keep)?)?)
    }
}

impl<S: GaussianKernel + ?Sized> Constraint for &Replace<'_, S> {
    fn apply(&self, x: &Tensor, t: f64, noise: &mut Noise) -> Result<Tensor> {
        let y_t = noised(self.sde, &self.known, t, noise)?;
        self.paste(x, &y_t)
    }
}
