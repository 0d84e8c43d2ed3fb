//! A score model re-expressed as another prediction (included with
//! `#[path = "common/reparam.rs"] mod reparam;` by the sampler tests that use it).

use candle_core::{DType, Tensor};
use sbdm_runtime::error::Result;
use sbdm_runtime::model::prediction::{self, Prediction};
use sbdm_runtime::model::{Condition, ScoreModel};
use sbdm_runtime::sde::GaussianKernel;

/// A score model re-expressed as another prediction, so the samplers' folding of the
/// conversion coefficients (and DPM-Solver++'s use of a native x_0) is exercised.
pub struct Reparam<'a, M> {
    /// The model re-expressed.
    pub inner: M,
    /// The SDE whose `a(t), b(t)` convert it.
    pub sde: &'a dyn GaussianKernel,
    /// The prediction it is expressed as.
    pub as_: Prediction,
}

impl<M: ScoreModel> ScoreModel for Reparam<'_, M> {
    fn prediction(&self) -> Prediction {
        self.as_
    }
    fn forward(&self, x: &Tensor, t: &Tensor, c: &Condition) -> Result<Tensor> {
        let t0 = t.to_dtype(DType::F64)?.to_vec1::<f64>()?[0];
        let k = prediction::KernelAt::with_rates(&self.sde, t0);
        let out = self.inner.forward(x, t, c)?;
        prediction::convert(&out, self.inner.prediction(), self.as_, x, k)
    }
}
