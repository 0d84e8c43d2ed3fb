//! Classifier guidance (Dhariwal & Nichol 2021; Song et al. 2021, eq. 14): the score of
//! `p_t(x | y) ∝ p_t(x)·p_t(y | x)^s` is `∇log p_t(x) + s·∇ₓ log p_t(y | x_t)`, a score term
//! every sampler folds into its step. The classifier is any [`TimeClassifier`]: a trained
//! [`ClassifierModel`] (candle autograd through the network and its input scaling), or the
//! exact posterior of the Gaussian-mixture oracle (its components are its classes).
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use sbdm_runtime::guide::ClassifierGuidance;
//! use sbdm_runtime::model::mixture::GaussianMixture;
//! use sbdm_runtime::sampling::{Guided, Noise, Sampler, TimeGrid};
//! use sbdm_runtime::sde::builtin::VeSde;
//! # fn main() -> sbdm_runtime::error::Result<()> {
//! let sde = VeSde::default();
//! let mix = GaussianMixture::ring(4, 2.0, 0.3)?;
//! let unconditional = mix.model(&sde);
//! let y = Tensor::new(&[1u32; 8], &Device::Cpu)?;              // class 1 for 8 samples
//! let guidance = ClassifierGuidance::new(&unconditional, &y, 2.0)?; // the exact classifier, s = 2
//! let guided = Guided::new(&unconditional).with_term(guidance);
//! let mut noise = Noise::new(3, 0, 8, &[2], &Device::Cpu);
//! let x_t = noise.draw()?.affine(50.0, 0.0)?;                  // VE's prior N(0, 50² I)
//! Sampler::Em.sample(&sde, &guided, &x_t, &TimeGrid::uniform(100), &mut noise)?;
//! # Ok(()) }
//! ```

use candle_core::Tensor;

use crate::error::{invalid, Result};
use crate::model::classifier::ClassifierModel;
use crate::model::mixture::MixtureScore;
use crate::model::{Condition, Conditioning};
use crate::sampling::ScoreTerm;
use crate::sde::GaussianKernel;

/// A time-dependent classifier `p_t(y | x_t)`: what classifier guidance needs of it.
pub trait TimeClassifier {
    /// The number of classes.
    fn num_classes(&self) -> usize;

    /// `∇ₓ log p_t(y | x)` at time `t` for each row's label `y` (u32 `[N]`), of `x`'s
    /// shape and dtype.
    fn grad_log_prob(&self, x: &Tensor, t: f64, y: &Tensor) -> Result<Tensor>;
}

impl<S: GaussianKernel> TimeClassifier for ClassifierModel<S> {
    fn num_classes(&self) -> usize {
        ClassifierModel::num_classes(self)
    }

    fn grad_log_prob(&self, x: &Tensor, t: f64, y: &Tensor) -> Result<Tensor> {
        let times = vec![t; x.dim(0)?];
        ClassifierModel::grad_log_prob(self, x, &times, y)
    }
}

/// The mixture's exact posterior over its components.
impl<S: GaussianKernel + ?Sized> TimeClassifier for MixtureScore<'_, S> {
    fn num_classes(&self) -> usize {
        self.mixture().len()
    }

    fn grad_log_prob(&self, x: &Tensor, t: f64, y: &Tensor) -> Result<Tensor> {
        self.class_log_prob_grad(x, t, &y.to_vec1::<u32>()?)
    }
}

/// The score term `s·∇ₓ log p_t(y | x_t)` for fixed target labels `y`.
pub struct ClassifierGuidance<'a, C: ?Sized> {
    classifier: &'a C,
    labels: Tensor,
    scale: f64,
}

impl<'a, C: TimeClassifier + ?Sized> ClassifierGuidance<'a, C> {
    /// Guidance towards `labels` (u32 `[N]`, one per sample, each below the classifier's
    /// class count) with scale `s` (finite; 0 is no guidance, 1 the Bayes posterior).
    pub fn new(classifier: &'a C, labels: &Tensor, scale: f64) -> Result<Self> {
        if !scale.is_finite() {
            return Err(invalid!("the guidance scale must be finite, got {scale}"));
        }
        let n = labels.elem_count();
        Condition::Classes(labels.clone())
            .check(Conditioning::Classes(classifier.num_classes()), n)?;
        Ok(ClassifierGuidance {
            classifier,
            labels: labels.clone(),
            scale,
        })
    }
}

impl<C: TimeClassifier + ?Sized> ScoreTerm for ClassifierGuidance<'_, C> {
    fn score(&self, x: &Tensor, t: f64, _condition: &Condition) -> Result<Tensor> {
        let n = x.dim(0)?;
        if n != self.labels.dim(0)? {
            return Err(invalid!(
                "classifier guidance: {} target labels for {n} samples",
                self.labels.dim(0)?
            ));
        }
        if self.scale == 0.0 {
            return Ok(x.zeros_like()?);
        }
        let g = self.classifier.grad_log_prob(x, t, &self.labels)?;
        Ok(g.to_dtype(x.dtype())?.affine(self.scale, 0.0)?)
    }
}
