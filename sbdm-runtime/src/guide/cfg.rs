//! Classifier-free guidance (Ho & Salimans 2021) for a class-conditional model trained
//! with label dropout: in the model's own prediction space,
//! `out = out_∅ + w·(out_y − out_∅)` (for ε: `ε̂ = ε̂_∅ + w·(ε̂_y − ε̂_∅)`), with
//!
//! - **rescaling** (Lin et al. 2023, "Common Diffusion Noise Schedules and Sample Steps are
//!   Flawed", §3.4): the guided `x̂₀`'s per-sample standard deviation is matched to the
//!   conditional one, `x̂₀' = x̂₀·std(x̂₀_y)/std(x̂₀)`, and blended, `φ·x̂₀' + (1 − φ)·x̂₀`,
//!   `φ ∈ [0, 1]`;
//! - a **guidance interval** (Kynkäänniemi et al. 2024): guidance only where
//!   `σ(t) = b/a ∈ [σ_lo, σ_hi]`; elsewhere the conditional output itself.
//!
//! `w = 1` is the conditional model (one evaluation), `w = 0` the unconditional one; a
//! [`Condition::None`] passes through unguided. The wrapper is itself a [`ScoreModel`], so
//! every sampler takes it; its evaluations count as one model evaluation each (two
//! network evaluations when guiding).

use candle_core::{DType, Tensor};

use crate::error::{invalid, Result};
use crate::model::net::row_tensor;
use crate::model::prediction::{linear_coefficients, KernelAt, Prediction};
use crate::model::{Condition, Conditioning, ScoreModel};
use crate::sde::GaussianKernel;

/// A class-conditional model under classifier-free guidance (see the module docs).
pub struct ClassifierFree<'a, S: ?Sized, M: ?Sized> {
    sde: &'a S,
    model: &'a M,
    scale: f64,
    rescale: f64,
    interval: Option<(f64, f64)>,
}

impl<'a, S: GaussianKernel + ?Sized, M: ScoreModel + ?Sized> ClassifierFree<'a, S, M> {
    /// Guidance of scale `w` (finite) on `model`, which must be class-conditional.
    pub fn new(sde: &'a S, model: &'a M, scale: f64) -> Result<Self> {
        if !matches!(model.conditioning(), Conditioning::Classes(_)) {
            return Err(invalid!(
                "classifier-free guidance needs a class-conditional model (trained with \
                 --conditional); this one is unconditional"
            ));
        }
        if let Prediction::PosteriorMean { .. } = model.prediction() {
            return Err(invalid!(
                "classifier-free guidance needs a score, eps, x0 or v model"
            ));
        }
        if !scale.is_finite() {
            return Err(invalid!("the guidance scale must be finite, got {scale}"));
        }
        Ok(ClassifierFree {
            sde,
            model,
            scale,
            rescale: 0.0,
            interval: None,
        })
    }

    /// Rescales the guided `x̂₀` with weight `phi ∈ [0, 1]` (0: off).
    pub fn with_rescale(mut self, phi: f64) -> Result<Self> {
        if !(0.0..=1.0).contains(&phi) {
            return Err(invalid!("the CFG rescale phi must be in [0, 1], got {phi}"));
        }
        self.rescale = phi;
        Ok(self)
    }

    /// Guides only where `σ(t) = b/a` lies in `[lo, hi]`.
    pub fn with_interval(mut self, lo: f64, hi: f64) -> Result<Self> {
        if !(lo >= 0.0 && hi >= lo) || lo.is_nan() || hi.is_nan() {
            return Err(invalid!(
                "the guidance interval must be 0 <= lo <= hi, got [{lo}, {hi}]"
            ));
        }
        self.interval = Some((lo, hi));
        Ok(self)
    }

    /// Whether guidance applies at time `t`.
    fn guides_at(&self, t: f64) -> bool {
        match self.interval {
            None => true,
            Some((lo, hi)) => {
                let sigma = self.sde.sigma(t);
                lo <= sigma && sigma <= hi
            }
        }
    }

    /// The per-row coefficients `(c_x, c_out)` of `x̂₀ = c_x·x + c_out·out` at times `ts`.
    fn x0_coefficients(&self, ts: &[f64]) -> (Vec<f64>, Vec<f64>) {
        ts.iter()
            .map(|&t| {
                let from = self.model.prediction();
                let k = KernelAt::for_conversion(&self.sde, t, from, Prediction::X0);
                linear_coefficients(from, Prediction::X0, k)
            })
            .unzip()
    }

    /// Lin et al.'s rescaling of the guided output `guided` against the conditional one.
    fn rescaled(&self, x: &Tensor, ts: &[f64], cond: &Tensor, guided: &Tensor) -> Result<Tensor> {
        let (cx, cout) = self.x0_coefficients(ts);
        let (cx, cout) = (row_tensor(&cx, x)?, row_tensor(&cout, x)?);
        let x0 = |out: &Tensor| -> Result<Tensor> {
            Ok((x.broadcast_mul(&cx)? + out.broadcast_mul(&cout)?)?)
        };
        let (x0_cond, x0_cfg) = (x0(cond)?, x0(guided)?);
        let std = |v: &Tensor| -> Result<Tensor> {
            let flat = v.flatten_from(1)?;
            let centred = flat.broadcast_sub(&flat.mean_keepdim(1)?)?;
            Ok(centred.sqr()?.mean_keepdim(1)?.sqrt()?)
        };
        let ratio = (std(&x0_cond)? / std(&x0_cfg)?.affine(1.0, 1e-12)?)?;
        let mut shape = vec![x.dim(0)?];
        shape.extend(std::iter::repeat_n(1, x.rank() - 1));
        let ratio = ratio.reshape(shape)?;
        let phi = self.rescale;
        let x0_new =
            (x0_cfg.broadcast_mul(&ratio)?.affine(phi, 0.0)? + x0_cfg.affine(1.0 - phi, 0.0)?)?;
        // Back to the model's space: out = (x̂₀ − c_x·x)/c_out.
        Ok((x0_new - x.broadcast_mul(&cx)?)?.broadcast_div(&cout)?)
    }
}

impl<S: GaussianKernel + ?Sized, M: ScoreModel + ?Sized> ScoreModel for ClassifierFree<'_, S, M> {
    fn prediction(&self) -> Prediction {
        self.model.prediction()
    }

    fn conditioning(&self) -> Conditioning {
        self.model.conditioning()
    }

    fn forward(&self, x: &Tensor, t: &Tensor, condition: &Condition) -> Result<Tensor> {
        let w = self.scale;
        let ts: Vec<f64> = t.to_dtype(DType::F64)?.to_vec1()?;
        let all_guided = ts.iter().all(|&t| self.guides_at(t));
        let none_guided = !ts.iter().any(|&t| self.guides_at(t));
        if matches!(condition, Condition::None) || w == 1.0 || none_guided {
            return self.model.forward(x, t, condition);
        }
        if w == 0.0 && all_guided {
            return self.model.forward(x, t, &Condition::None);
        }
        let cond = self.model.forward(x, t, condition)?;
        let uncond = self.model.forward(x, t, &Condition::None)?;
        let mut guided = (uncond.affine(1.0 - w, 0.0)? + cond.affine(w, 0.0)?)?;
        if self.rescale > 0.0 {
            guided = self.rescaled(x, &ts, &cond, &guided)?;
        }
        if all_guided {
            return Ok(guided);
        }
        // Rows outside the interval keep the conditional output.
        let inside: Vec<f64> = ts
            .iter()
            .map(|&t| if self.guides_at(t) { 1.0 } else { 0.0 })
            .collect();
        let mask = row_tensor(&inside, x)?;
        Ok((guided.broadcast_mul(&mask)? + cond.broadcast_mul(&mask.affine(-1.0, 1.0)?)?)?)
    }
}
