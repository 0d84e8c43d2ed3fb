//! The score-model trait samplers, training and guidance are written against.

use candle_core::Tensor;

pub mod mixture;
pub mod net;
pub mod prediction;

use crate::error::Result;
use crate::sde::GaussianKernel;
use prediction::Prediction;

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
        match self.mean_to_x0(t) {
            Some((px, po)) => {
                let x0 = (x.affine(px, 0.0)? + out.affine(po, 0.0)?)?;
                prediction::convert(&x0, Prediction::X0, want, x, a, b)
            }
            None => prediction::convert(&out, self.model.prediction(), want, x, a, b),
        }
    }

    /// For a posterior-mean model, `x_0 = p_x·x + p_out·μ` at `t` (inverting
    /// `μ = c_x·x + c_0·x_0` of the step `t → s = t − 1/N`); `None` for other models.
    fn mean_to_x0(&self, t: f64) -> Option<(f64, f64)> {
        let Prediction::PosteriorMean { num_train } = self.model.prediction() else {
            return None;
        };
        let s = (t - 1.0 / f64::from(num_train.max(1))).max(0.0);
        let (at, bt) = (self.sde.mean_coef(t), self.sde.std(t));
        let (as_, bs) = (self.sde.mean_coef(s), self.sde.std(s));
        let ats = at / as_;
        let bts2 = bt * bt - ats * ats * bs * bs;
        let c_x = ats * bs * bs / (bt * bt);
        let c_0 = as_ * bts2 / (bt * bt);
        Some((-c_x / c_0, 1.0 / c_0))
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
        let (c_x, c_out) = match self.mean_to_x0(t) {
            // want = e_x·x + e_0·x_0 with x_0 = p_x·x + p_out·μ.
            Some((px, po)) => {
                let (ex, e0) = prediction::linear_coefficients(Prediction::X0, want, a, b);
                (ex + e0 * px, e0 * po)
            }
            None => prediction::linear_coefficients(self.model.prediction(), want, a, b),
        };
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
