//! A score model's score times a constant (included with
//! `#[path = "common/scaled.rs"] mod scaled;` by the sampler tests that use it).

use candle_core::Tensor;
use sbdm_runtime::error::Result;
use sbdm_runtime::model::prediction::Prediction;
use sbdm_runtime::model::{Condition, ScoreModel};

/// A score model's score times a constant (unconditional, whatever the inner model takes).
pub struct Scaled<M> {
    /// A model predicting the score.
    pub inner: M,
    /// The factor.
    pub factor: f64,
}

impl<M: ScoreModel> ScoreModel for Scaled<M> {
    fn prediction(&self) -> Prediction {
        Prediction::Score
    }
    fn forward(&self, x: &Tensor, t: &Tensor, c: &Condition) -> Result<Tensor> {
        assert_eq!(self.inner.prediction(), Prediction::Score);
        Ok(self.inner.forward(x, t, c)?.affine(self.factor, 0.0)?)
    }
}
