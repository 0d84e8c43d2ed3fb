//! What a sampler follows: a score model under a condition, plus any number of score
//! terms, plus an optional constraint applied after each step.
//!
//! The score integrated is `∇log p_t(x) ≈ model(x, t | condition) + Σ_k term_k(x, t)`, in
//! score units, whatever the model predicts (each sampler converts the sum to the
//! prediction its algorithm uses). Classifier guidance, energies and test terms are
//! [`ScoreTerm`]s; inpainting-style replacements are [`Constraint`]s. Every sampler takes
//! any [`Guide`]: a plain [`ScoreModel`] is one (no condition, no terms), and [`Guided`]
//! bundles a model with a condition, terms and a constraint.
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use sbdm_runtime::model::mixture::GaussianMixture;
//! use sbdm_runtime::model::Condition;
//! use sbdm_runtime::sampling::{Guided, Noise, Sampler, ScoreTerm, TimeGrid};
//! use sbdm_runtime::sde::builtin::VpSde;
//! # fn main() -> sbdm_runtime::error::Result<()> {
//! /// A term that pulls every sample towards the origin: `−0.1·x`.
//! struct Pull;
//! impl ScoreTerm for Pull {
//!     fn score(&self, x: &Tensor, _t: f64, _c: &Condition) -> sbdm_runtime::error::Result<Tensor> {
//!         Ok(x.affine(-0.1, 0.0)?)
//!     }
//! }
//! let (sde, dev) = (VpSde::default(), Device::Cpu);
//! let mix = GaussianMixture::ring(4, 2.0, 0.3)?;
//! let exact = mix.model(&sde);
//! let guided = Guided::new(&exact)
//!     .with_condition(Condition::class(1, 8, &dev)?)  // component 1 for all 8 samples
//!     .with_term(Pull);
//! let mut noise = Noise::new(0, 0, 8, &[2], &dev);
//! let x_t = noise.draw()?;                            // the VP prior N(0, I)
//! let out = Sampler::Ddim { eta: 0.0 }.sample(&sde, &guided, &x_t, &TimeGrid::uniform(20), &mut noise)?;
//! assert_eq!(out.x.dims(), [8, 2]);
//! # Ok(()) }
//! ```

use candle_core::Tensor;

use super::noise::Noise;
use crate::error::Result;
use crate::model::{Condition, ScoreModel, UNCONDITIONAL};

/// A term added to the model's score: `(x, t, condition) → tensor of x's shape, in score
/// units` (`∇_x` of a log-density or minus an energy). It may use autograd.
pub trait ScoreTerm {
    /// The term at the batch `x` (`[N, ...]`, f32 or f64), time `t`, under `condition`.
    fn score(&self, x: &Tensor, t: f64, condition: &Condition) -> Result<Tensor>;
}

/// A map applied to the state after every sampler step: `(x, t) → x`, `t` the time the
/// step reached. It may draw noise (e.g. a fresh draw of `q(x_t | x_0)`) from the
/// sampler's per-sample streams.
pub trait Constraint {
    /// The constrained state at time `t` (of `x`'s shape and dtype).
    fn apply(&self, x: &Tensor, t: f64, noise: &mut Noise) -> Result<Tensor>;
}

/// What a sampler follows: a model, a condition, score terms and a constraint.
/// Implemented by every [`ScoreModel`] (no condition, no terms, no constraint) and by
/// [`Guided`].
pub trait Guide {
    /// The score model.
    type Model: ScoreModel + ?Sized;
    /// The model.
    fn model(&self) -> &Self::Model;
    /// The condition passed to the model with every evaluation.
    fn condition(&self) -> &Condition;
    /// The terms added to the model's score.
    fn terms(&self) -> &[Box<dyn ScoreTerm + '_>];
    /// The constraint applied after each step.
    fn constraint(&self) -> Option<&dyn Constraint>;
    /// How many times each step is taken (RePaint's resampling, Lugmayr et al. 2022):
    /// after each try but the last, the state jumps back from `s` to `t` by the forward
    /// kernel and the step is taken again. 1 (the default) takes each step once.
    fn resampling(&self) -> usize {
        1
    }
}

impl<M: ScoreModel + ?Sized> Guide for M {
    type Model = M;
    fn model(&self) -> &M {
        self
    }
    fn condition(&self) -> &Condition {
        &UNCONDITIONAL
    }
    fn terms(&self) -> &[Box<dyn ScoreTerm + '_>] {
        &[]
    }
    fn constraint(&self) -> Option<&dyn Constraint> {
        None
    }
}

/// A model with a condition, score terms and a constraint (see the module example).
pub struct Guided<'a, M: ?Sized> {
    model: &'a M,
    condition: Condition,
    terms: Vec<Box<dyn ScoreTerm + 'a>>,
    constraint: Option<Box<dyn Constraint + 'a>>,
    resampling: usize,
}

impl<'a, M: ScoreModel + ?Sized> Guided<'a, M> {
    /// `model` alone: unconditional, no terms, no constraint.
    pub fn new(model: &'a M) -> Self {
        Guided {
            model,
            condition: Condition::None,
            terms: Vec::new(),
            constraint: None,
            resampling: 1,
        }
    }

    /// Samples under `condition` (checked against the model when sampling starts).
    pub fn with_condition(mut self, condition: Condition) -> Self {
        self.condition = condition;
        self
    }

    /// Adds `term` to the score.
    pub fn with_term(mut self, term: impl ScoreTerm + 'a) -> Self {
        self.terms.push(Box::new(term));
        self
    }

    /// Applies `constraint` after every step (replacing any earlier one).
    pub fn with_constraint(mut self, constraint: impl Constraint + 'a) -> Self {
        self.constraint = Some(Box::new(constraint));
        self
    }

    /// Takes every step `r` times, jumping back by the forward kernel in between
    /// (RePaint's resampling; see [`Guide::resampling`]). Single-step samplers only.
    pub fn with_resampling(mut self, r: usize) -> Self {
        self.resampling = r;
        self
    }
}

impl<M: ScoreModel + ?Sized> Guide for Guided<'_, M> {
    type Model = M;
    fn model(&self) -> &M {
        self.model
    }
    fn condition(&self) -> &Condition {
        &self.condition
    }
    fn terms(&self) -> &[Box<dyn ScoreTerm + '_>] {
        &self.terms
    }
    fn constraint(&self) -> Option<&dyn Constraint> {
        self.constraint.as_deref().map(|c| c as &dyn Constraint)
    }
    fn resampling(&self) -> usize {
        self.resampling
    }
}
