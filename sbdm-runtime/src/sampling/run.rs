//! The loop every fixed-grid sampler shares: one state, a guide evaluated through the
//! SDE, the noise streams, and a step iterator that attaches `(step, t)` to every error
//! and applies the guide's constraint after each step. A sampler supplies only its step.

use candle_core::Tensor;

use super::denoiser::Denoiser;
use super::fused;
use super::guidance::Guide;
use super::noise::Noise;
use super::step::{Buffer, LinComb};
use crate::error::{Error, Result};
use crate::model::prediction::Prediction;
use crate::sde::{Dynamics, GaussianKernel, Transition};

/// One step of a grid: from `t` to `s`, down (`s < t`) when sampling, up (`s > t`) when
/// encoding.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Step {
    /// The step's index (0-based).
    pub index: usize,
    /// The number of steps in the grid.
    pub count: usize,
    /// The time the step starts at.
    pub t: f64,
    /// The time it ends at: `s < t` when sampling, `s > t` when encoding.
    pub s: f64,
}

impl Step {
    /// Whether this is the grid's last step.
    pub fn is_last(&self) -> bool {
        self.index + 1 == self.count
    }
}

/// A sampler's state and what it integrates.
pub(crate) struct Run<'a, S: ?Sized, G: ?Sized> {
    /// The SDE.
    pub sde: &'a S,
    /// The guide, evaluated through the SDE.
    pub model: Denoiser<'a, S, G>,
    /// The state, updated in place.
    pub x: Buffer,
    /// The time errors are reported at: the current step's start, set by
    /// [`steps`](Self::steps) (a sub-step at another time, like a corrector, sets its own).
    pub at: f64,
    noise: &'a mut Noise,
    guide: &'a G,
}

impl<'a, S: GaussianKernel + ?Sized, G: Guide + ?Sized> Run<'a, S, G> {
    /// A run from the state `x` (the sampler's own buffer: it is overwritten).
    pub fn new(sde: &'a S, guide: &'a G, x: Buffer, noise: &'a mut Noise) -> Result<Self> {
        Ok(Run {
            sde,
            model: Denoiser::new(sde, guide),
            x,
            at: f64::NAN,
            noise,
            guide,
        })
    }

    /// Runs `step` over every step of the grid `ts` (decreasing when sampling, increasing
    /// when encoding; the direction is the caller's): errors name the step and its start
    /// time (or the time a sub-step set in [`at`](Self::at)), and the guide's constraint is
    /// applied after each step, at the time it reached. With the guide's resampling
    /// `r > 1` (sampling only), each step is taken `r` times, the state jumping back from
    /// `s` to `t` by the forward kernel in between (RePaint).
    pub fn steps(
        &mut self,
        ts: &[f64],
        mut step: impl FnMut(&mut Self, Step) -> Result<()>,
    ) -> Result<()> {
        let count = ts.len().saturating_sub(1);
        let tries = self.guide.resampling();
        for (index, w) in ts.windows(2).enumerate() {
            let (t, s) = (w[0], w[1]);
            let this = Step { index, count, t, s };
            for attempt in 0..tries {
                if attempt > 0 {
                    self.renoise(s, t).map_err(|e| at_step(e, index, s))?;
                }
                self.at = t;
                step(self, this).map_err(|e| at_step(e, index, self.at))?;
                let x = self.x.clone();
                self.constrain(&x, s).map_err(|e| at_step(e, index, s))?;
            }
        }
        Ok(())
    }

    /// Moves the state from `s` forward to `t > s` by the kernel:
    /// `x ← a_{t|s}·x + b_{t|s}·z`.
    fn renoise(&mut self, s: f64, t: f64) -> Result<()> {
        let k = Transition::between(self.sde, s, t);
        let z = self.noise()?;
        self.x.assign(k.a_ts * &self.x + k.std_ts() * &z)
    }

    /// Applies the guide's constraint, in place, to `y`, a state at time `t`.
    pub fn constrain(&mut self, y: &Buffer, t: f64) -> Result<()> {
        if let Some(c) = self.guide.constraint() {
            let constrained = c.apply(y, t, self.noise)?;
            if constrained.id() != y.id() {
                y.assign(LinComb::term(1.0, &constrained))?;
            }
        }
        Ok(())
    }

    /// The next standard-normal draw of the state's shape and dtype.
    pub fn noise(&mut self) -> Result<Buffer> {
        Buffer::new(self.noise.next_as(self.x.dtype())?)
    }

    /// A zero buffer of the state's shape and dtype (a stage of a multi-stage step).
    pub fn buffer(&self) -> Result<Buffer> {
        Buffer::zeros_like(&self.x)
    }

    /// The guided prediction `want` at `(y, t)`, linear in the model's raw output.
    pub fn predict(&self, y: &Tensor, t: f64, want: Prediction) -> Result<LinComb> {
        self.model.predict_linear(y, t, want)
    }

    /// `h·f(y, t)` for the dynamics `f = X·y + S·score(y, t)` at `t` (`h` folded into the
    /// coefficients before they meet the model's conversion).
    pub fn drift(&self, dynamics: Dynamics, y: &Buffer, t: f64, h: f64) -> Result<LinComb> {
        let score = self.predict(y, t, Prediction::Score)?;
        Ok((h * dynamics.x) * y + (h * dynamics.score) * score)
    }

    /// Whether `t` is a pure-noise time of the kernel
    /// ([`GaussianKernel::is_pure_noise`]: rectified flow's `T`): there `x_t` says nothing
    /// about `x_0`, `F` and `g²` diverge, and a step uses a form that stays finite
    /// ([`pf_ode_drift`](Self::pf_ode_drift),
    /// [`step_from_pure_noise`](Self::step_from_pure_noise)).
    pub fn is_pure_noise(&self, t: f64) -> bool {
        self.sde.is_pure_noise(t)
    }

    /// `h·f(y, t)` for the probability-flow ODE: the score form
    /// [`drift`](Self::drift)`(pf_ode(t))`, or at a pure-noise time the same drift as the
    /// flow velocity `E[ȧ·x_0 + ḃ·ε | y]`, which is finite there.
    pub fn pf_ode_drift(&self, y: &Buffer, t: f64, h: f64) -> Result<LinComb> {
        if self.is_pure_noise(t) {
            return Ok(h * self.predict(y, t, Prediction::Flow)?);
        }
        self.drift(self.sde.pf_ode(t), y, t, h)
    }

    /// DDIM(η) from a pure-noise time `t` down to `s`, in data-prediction form: with
    /// `a_t = 0`, `ε̂ = x/b_t` and `σ = η·b_s`,
    /// `x_s = a_s·x̂_0 + √(b_s² − σ²)·ε̂ + σ·z`. At `η = 1` this is the exact posterior
    /// `q(x_s | x_t, x̂_0) = N(a_s·x̂_0, b_s²I)` (`x_t` is independent of `x_0`), the first
    /// step of a stochastic sampler; at `η = 0` the first-order ODE step, the first step
    /// of a solver whose own formula divides by `a_t`.
    pub fn step_from_pure_noise(&mut self, t: f64, s: f64, eta: f64) -> Result<()> {
        let (b_t, a_s, b_s) = (self.sde.std(t), self.sde.mean_coef(s), self.sde.std(s));
        let x0 = self.predict(&self.x, t, Prediction::X0)?;
        let deterministic = (b_s * (1.0 - eta * eta).sqrt() / b_t) * &self.x + a_s * x0;
        if eta == 0.0 {
            return self.x.assign(deterministic);
        }
        let z = self.noise()?;
        self.x.assign(deterministic + (eta * b_s) * &z)
    }
}

/// `e` as the error of step `index` at time `t`: a non-finite write becomes
/// [`Error::NonFinite`]; anything else is wrapped in [`Error::Step`].
pub(crate) fn at_step(e: Error, index: usize, t: f64) -> Error {
    match e {
        e if fused::is_non_finite(&e) => Error::NonFinite {
            step: index,
            t,
            what: "the state x",
        },
        e @ (Error::NonFinite { .. } | Error::Step { .. }) => e,
        e => Error::Step {
            step: index,
            t,
            source: Box::new(e),
        },
    }
}
