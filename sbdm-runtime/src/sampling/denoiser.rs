//! A [`Guide`] evaluated for a sampler: every call counts one function evaluation (NFE)
//! and returns the prediction the sampler asks for, converted through the SDE's
//! `a(t), b(t)`, with the guide's score terms added.

use std::cell::Cell;

use candle_core::Tensor;

use super::guidance::Guide;
use super::step::LinComb;
use crate::error::{invalid, Result};
use crate::model::prediction::{self, KernelAt, Prediction};
use crate::model::ScoreModel;
use crate::sde::{GaussianKernel, Transition};

/// A guide wrapped for a sampler on `sde`.
pub struct Denoiser<'a, S: ?Sized, G: ?Sized> {
    sde: &'a S,
    guide: &'a G,
    nfe: Cell<usize>,
}

impl<'a, S: GaussianKernel + ?Sized, G: Guide + ?Sized> Denoiser<'a, S, G> {
    /// Wraps `guide` for `sde`.
    pub fn new(sde: &'a S, guide: &'a G) -> Self {
        Denoiser {
            sde,
            guide,
            nfe: Cell::new(0),
        }
    }

    /// The SDE.
    pub fn sde(&self) -> &'a S {
        self.sde
    }

    /// Model evaluations so far.
    pub fn nfe(&self) -> usize {
        self.nfe.get()
    }

    /// The model's raw output at `(x, t)` under the guide's condition, and the sum of
    /// the guide's score terms (`None` without terms).
    fn evaluate(&self, x: &Tensor, t: f64) -> Result<(Tensor, Option<Tensor>)> {
        let condition = self.guide.condition();
        let out = self.guide.model().forward_at(x, t, condition)?;
        self.nfe.set(self.nfe.get() + 1);
        let mut sum: Option<Tensor> = None;
        for term in self.guide.terms() {
            let v = term.score(x, t, condition)?.to_dtype(x.dtype())?;
            sum = Some(match sum {
                None => v,
                Some(s) => (s + v)?,
            });
        }
        Ok((out, sum))
    }

    /// The coefficient `e_s` with which a score-units term enters `want`:
    /// `want(score + term) = want(score) + e_s·term`.
    fn term_coefficient(&self, t: f64, want: Prediction) -> f64 {
        let k = KernelAt::for_conversion(self.sde, t, Prediction::Score, want);
        prediction::linear_coefficients(Prediction::Score, want, k).1
    }

    /// The guided prediction at `(x, t)` converted to `want`, as a new tensor.
    pub fn predict(&self, x: &Tensor, t: f64, want: Prediction) -> Result<Tensor> {
        let (out, terms) = self.evaluate(x, t)?;
        let from = self.guide.model().prediction();
        self.check_defined(t, from, want)?;
        let k = KernelAt::for_conversion(self.sde, t, from, want);
        let converted = match self.mean_to_x0(t) {
            Some((px, po)) => {
                let x0 = (x.affine(px, 0.0)? + out.affine(po, 0.0)?)?;
                prediction::convert(&x0, Prediction::X0, want, x, k)?
            }
            None => prediction::convert(&out, from, want, x, k)?,
        };
        Ok(match terms {
            None => converted,
            Some(s) => (converted + s.affine(self.term_coefficient(t, want), 0.0)?)?,
        })
    }

    /// For a posterior-mean model, `x_0 = p_x·x + p_out·μ` at `t` (inverting
    /// `μ = mean_x·x + mean_x0·x_0` of the step `t → s = t − 1/N`); `None` for other models.
    fn mean_to_x0(&self, t: f64) -> Option<(f64, f64)> {
        let Prediction::PosteriorMean { num_train } = self.guide.model().prediction() else {
            return None;
        };
        let s = (t - 1.0 / f64::from(num_train.max(1))).max(0.0);
        let q = Transition::between(self.sde, s, t);
        Some((-q.mean_x / q.mean_x0, 1.0 / q.mean_x0))
    }

    /// Refuses a conversion that divides by `a(t)` where the kernel is pure noise: an ε
    /// or score model has no `x̂_0` there.
    fn check_defined(&self, t: f64, from: Prediction, want: Prediction) -> Result<()> {
        let divides_by_a = matches!(from, Prediction::Eps | Prediction::Score)
            && matches!(want, Prediction::X0 | Prediction::V | Prediction::Flow);
        if divides_by_a && self.sde.is_pure_noise(t) {
            return Err(invalid!(
                "at t = {t} the kernel is pure noise (a(t) = {}): a model predicting {} cannot \
                 give {} there (it would divide by a(t)); use one that predicts x0, v or flow \
                 (sbdm train --param), or end the time range before t = {t}",
                self.sde.mean_coef(t),
                from.name(),
                want.name()
            ));
        }
        Ok(())
    }

    /// Refuses, in one line, a prediction the model cannot be converted to at `t`: `x̂_0`,
    /// `v` or the flow velocity from an ε or score model where the kernel is pure noise.
    pub fn check_prediction(&self, t: f64, want: Prediction) -> Result<()> {
        self.check_defined(t, self.guide.model().prediction(), want)
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

    /// The guided prediction at `(x, t)` as `want = c_x·x + c_out·out (+ e_s·Σ terms)`
    /// with `out` the model's own output ([`prediction::linear_coefficients`]): a sampler
    /// folds it into its fused step, so no converted tensor is materialised.
    pub fn predict_linear(&self, x: &Tensor, t: f64, want: Prediction) -> Result<LinComb> {
        let (out, terms) = self.evaluate(x, t)?;
        let from = self.guide.model().prediction();
        let k = KernelAt::for_conversion(self.sde, t, from, want);
        let (c_x, c_out) = match self.mean_to_x0(t) {
            // want = e_x·x + e_0·x_0 with x_0 = p_x·x + p_out·μ.
            Some((px, po)) => {
                let (ex, e0) = prediction::linear_coefficients(Prediction::X0, want, k);
                (ex + e0 * px, e0 * po)
            }
            None => prediction::linear_coefficients(from, want, k),
        };
        self.check_defined(t, from, want)?;
        let value = LinComb::term(c_x, x) + LinComb::term(c_out, &out);
        Ok(match terms {
            None => value,
            Some(s) => value + LinComb::term(self.term_coefficient(t, want), &s),
        })
    }
}
