//! Score models: the trait samplers, guidance and training are written against, what a
//! model's output means ([`prediction`]), the conditions it takes ([`Condition`]), and the
//! models themselves — the exact Gaussian-mixture oracle ([`mixture`]), neural score
//! models ([`net`]) and time-dependent classifiers ([`classifier`]).

use candle_core::{DType, Device, Tensor};

pub mod classifier;
pub mod mixture;
pub mod net;
pub mod prediction;
mod weights;

pub use weights::{Trainable, Weights};

use crate::error::{invalid, Result};
use prediction::Prediction;

/// A time-conditioned network (or an exact oracle) predicting a [`Prediction`].
///
/// `forward` takes a batch `x` of shape `[N, ...]`, times `t` of shape `[N]` (in `x`'s
/// float dtype, in the SDE's continuous time) and a [`Condition`]. It is a plain tensor
/// function, so a score can be differentiated through (wrap `x` in a `candle_core::Var`
/// for `∇_x`).
pub trait ScoreModel {
    /// What the output means.
    fn prediction(&self) -> Prediction;

    /// The conditions the model accepts (default: none).
    fn conditioning(&self) -> Conditioning {
        Conditioning::None
    }

    /// The model output at `x`, `t` under `condition` (checked against
    /// [`conditioning`](Self::conditioning) by the caller, see [`Condition::check`]).
    fn forward(&self, x: &Tensor, t: &Tensor, condition: &Condition) -> Result<Tensor>;

    /// The model output with every row at the same time `t` — what a sampler asks for
    /// at each step: [`forward`](Self::forward) with `t` repeated in `x`'s dtype (an f32
    /// state sees the f32-rounded time, see [`time_in_dtype`]). Models that can use the
    /// one time directly (the exact mixture, networks) override it and skip building and
    /// reading back a tensor of times, with the same result.
    fn forward_at(&self, x: &Tensor, t: f64, condition: &Condition) -> Result<Tensor> {
        let n = x.dims().first().copied().unwrap_or(1);
        let times = Tensor::full(t, n, x.device())?.to_dtype(x.dtype())?;
        self.forward(x, &times, condition)
    }
}

/// `t` as a model sees it in a batch of dtype `dtype`: rounded to that dtype and read
/// back as f64 (exact for f64).
pub fn time_in_dtype(t: f64, dtype: candle_core::DType) -> Result<f64> {
    Ok(match dtype {
        candle_core::DType::F64 => t,
        candle_core::DType::F32 => f64::from(t as f32),
        _ => Tensor::new(&[t], &candle_core::Device::Cpu)?
            .to_dtype(dtype)?
            .to_dtype(candle_core::DType::F64)?
            .to_vec1::<f64>()?[0],
    })
}

/// Forwards every method, defaults included, so overrides survive the indirection.
macro_rules! forward_impls {
    ($($ptr:ty),*) => {$(
        impl<M: ScoreModel + ?Sized> ScoreModel for $ptr {
            fn prediction(&self) -> Prediction {
                (**self).prediction()
            }
            fn conditioning(&self) -> Conditioning {
                (**self).conditioning()
            }
            fn forward(&self, x: &Tensor, t: &Tensor, condition: &Condition) -> Result<Tensor> {
                (**self).forward(x, t, condition)
            }
            fn forward_at(&self, x: &Tensor, t: f64, condition: &Condition) -> Result<Tensor> {
                (**self).forward_at(x, t, condition)
            }
        }
    )*};
}

forward_impls!(&M, Box<M>);

/// What a model is conditioned on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Conditioning {
    /// Nothing: an unconditional model.
    #[default]
    None,
    /// A class label in `0..K` per sample (a model trained with label dropout also
    /// samples unconditionally, given [`Condition::None`]).
    Classes(usize),
}

/// The condition a sampler passes to the model with every evaluation.
///
/// ```
/// use candle_core::Device;
/// use sbdm_runtime::model::{Condition, Conditioning};
/// # fn main() -> sbdm_runtime::error::Result<()> {
/// let c = Condition::class(3, 4, &Device::Cpu)?;           // class 3 for 4 samples
/// assert_eq!(c.labels().unwrap().to_vec1::<u32>()?, [3, 3, 3, 3]);
/// c.check(Conditioning::Classes(8), 4)?;                     // 8 classes: fine
/// assert!(c.check(Conditioning::Classes(3), 4).is_err());    // class 3 of 3: refused
/// assert!(c.check(Conditioning::None, 4).is_err());          // an unconditional model
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, Default)]
pub enum Condition {
    /// No condition: unconditional sampling.
    #[default]
    None,
    /// One class label per sample, u32 `[N]`.
    Classes(Tensor),
}

/// The condition of unconditional sampling, for references that must outlive a call.
pub static UNCONDITIONAL: Condition = Condition::None;

impl Condition {
    /// Class `k` for each of `n` samples.
    pub fn class(k: u32, n: usize, device: &Device) -> Result<Condition> {
        Condition::classes(&vec![k; n], device)
    }

    /// One class label per sample.
    pub fn classes(labels: &[u32], device: &Device) -> Result<Condition> {
        Ok(Condition::Classes(Tensor::from_slice(
            labels,
            labels.len(),
            device,
        )?))
    }

    /// The class labels, u32 `[N]`, if any.
    pub fn labels(&self) -> Option<&Tensor> {
        match self {
            Condition::None => None,
            Condition::Classes(y) => Some(y),
        }
    }

    /// The condition of rows `start..start + len` of the batch.
    pub fn rows(&self, start: usize, len: usize) -> Result<Condition> {
        Ok(match self {
            Condition::None => Condition::None,
            Condition::Classes(y) => Condition::Classes(y.narrow(0, start, len)?),
        })
    }

    /// Checks that a model conditioned on `accepts` can take this condition for a batch
    /// of `n` samples: the one place where conditions are validated, for the library and
    /// the CLI alike.
    pub fn check(&self, accepts: Conditioning, n: usize) -> Result<()> {
        let Condition::Classes(y) = self else {
            return Ok(());
        };
        let Conditioning::Classes(k) = accepts else {
            return Err(invalid!(
                "a class condition was given, but the model is unconditional"
            ));
        };
        if y.dtype() != DType::U32 || y.rank() != 1 {
            return Err(invalid!(
                "class labels must be u32 of shape [N], got {:?} of shape {:?}",
                y.dtype(),
                y.dims()
            ));
        }
        if y.dim(0)? != n {
            return Err(invalid!(
                "{} class labels for {n} samples: give one per sample",
                y.dim(0)?
            ));
        }
        if let Some((i, bad)) = y
            .to_vec1::<u32>()?
            .into_iter()
            .enumerate()
            .find(|(_, v)| *v as usize >= k)
        {
            return Err(invalid!(
                "class {bad} (sample {i}) is out of range: the model has {k} classes, 0..={}",
                k.saturating_sub(1)
            ));
        }
        Ok(())
    }
}
