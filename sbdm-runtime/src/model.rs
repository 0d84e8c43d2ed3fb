//! The score-model trait samplers, training and guidance are written against.

use candle_core::Tensor;

use crate::error::Result;
use crate::prediction::{self, Prediction};
use crate::sde::GaussianKernel;

/// A time-conditioned network (or an exact oracle) predicting a [`Prediction`].
///
/// `forward` takes a batch `x` of shape `[N, ...]` and times `t` of shape `[N]` (f32,
/// in the SDE's continuous time). It is a plain tensor function, so a score can be
/// differentiated through (wrap `x` in a `candle_core::Var` for `∇_x`).
pub trait ScoreModel {
    /// What the output means.
    fn prediction(&self) -> Prediction;
    /// The model output at `x`, `t`.
    fn forward(&self, x: &Tensor, t: &Tensor) -> Result<Tensor>;
}

impl<M: ScoreModel + ?Sized> ScoreModel for &M {
    fn prediction(&self) -> Prediction {
        (**self).prediction()
    }
    fn forward(&self, x: &Tensor, t: &Tensor) -> Result<Tensor> {
        (**self).forward(x, t)
    }
}

impl<M: ScoreModel + ?Sized> ScoreModel for Box<M> {
    fn prediction(&self) -> Prediction {
        (**self).prediction()
    }
    fn forward(&self, x: &Tensor, t: &Tensor) -> Result<Tensor> {
        (**self).forward(x, t)
    }
}

/// A model evaluated for samplers: every call counts one function evaluation (NFE) and
/// returns the prediction the sampler asks for, converted through the SDE's `a(t), b(t)`.
pub struct Denoiser<'a, S: ?Sized, M: ?Sized> {
    sde: &'a S,
    model: &'a M,
    nfe: std::cell::Cell<usize>,
}

impl<'a, S: GaussianKernel + ?Sized, M: ScoreModel + ?Sized> Denoiser<'a, S, M> {
    /// Wraps a model for an SDE.
    pub fn new(sde: &'a S, model: &'a M) -> Self {
        Denoiser {
            sde,
            model,
            nfe: std::cell::Cell::new(0),
        }
    }

    /// The SDE.
    pub fn sde(&self) -> &'a S {
        self.sde
    }

    /// Function evaluations so far.
    pub fn nfe(&self) -> usize {
        self.nfe.get()
    }

    /// The model's prediction at `(x, t)` converted to `want`.
    pub fn predict(&self, x: &Tensor, t: f64, want: Prediction) -> Result<Tensor> {
        let n = x.dim(0)?;
        // Times in the state's dtype: f64 states get f64-exact times.
        let tt = Tensor::full(t, n, x.device())?.to_dtype(x.dtype())?;
        let out = self.model.forward(x, &tt)?;
        self.nfe.set(self.nfe.get() + 1);
        let (a, b) = (self.sde.mean_coef(t), self.sde.std(t));
        prediction::convert(&out, self.model.prediction(), want, x, a, b)
    }

    /// `eps(x, t)`.
    pub fn eps(&self, x: &Tensor, t: f64) -> Result<Tensor> {
        self.predict(x, t, Prediction::Eps)
    }

    /// `x_0(x, t)`.
    pub fn x0(&self, x: &Tensor, t: f64) -> Result<Tensor> {
        self.predict(x, t, Prediction::X0)
    }

    /// `∇ log p_t(x)`.
    pub fn score(&self, x: &Tensor, t: f64) -> Result<Tensor> {
        self.predict(x, t, Prediction::Score)
    }

    /// The model's own output at `(x, t)` with the coefficients that turn it into
    /// `want`: `want = c_x·x + c_out·out` ([`prediction::linear_coefficients`]). A sampler
    /// folds `c_x, c_out` into its fused step, so no converted tensor is materialised.
    pub fn predict_linear(&self, x: &Tensor, t: f64, want: Prediction) -> Result<LinearPrediction> {
        let n = x.dim(0)?;
        let tt = Tensor::full(t, n, x.device())?.to_dtype(x.dtype())?;
        let out = self.model.forward(x, &tt)?;
        self.nfe.set(self.nfe.get() + 1);
        let (a, b) = (self.sde.mean_coef(t), self.sde.std(t));
        let (c_x, c_out) = prediction::linear_coefficients(self.model.prediction(), want, a, b);
        Ok(LinearPrediction { out, c_x, c_out })
    }
}

/// A prediction kept as the model's raw output: `want = c_x·x + c_out·out`
/// (see [`Denoiser::predict_linear`]).
#[derive(Clone, Debug)]
pub struct LinearPrediction {
    /// The model output, in the model's own [`Prediction`].
    pub out: Tensor,
    /// The coefficient of the state `x`.
    pub c_x: f64,
    /// The coefficient of `out`.
    pub c_out: f64,
}
