//! Reverse-time SDE, Euler–Maruyama.
//!
//! Song et al. (2021), "Score-Based Generative Modeling through Stochastic Differential
//! Equations", eq. 6 and App. D: Anderson's reverse SDE
//! `dx = [F(t)·x − g(t)²·∇log p_t(x)] dt + g(t) dw̄`, integrated backwards in time.
//! One step from `t` down to `s < t`, `Δ = t − s`:
//!
//! ```text
//! z   ~ N(0, I)
//! x_s = x − Δ·(F_t·x − g_t²·score(x, t)) + g_t·√Δ·z
//!     = (1 − Δ·F_t)·x + (Δ·g_t²)·score(x, t) + (g_t·√Δ)·z
//! ```
//!
//! One model evaluation and one fused pass per step; weak order 1.

use crate::error::Result;
use crate::model::prediction::Prediction;
use crate::sampling::guidance::Guide;
use crate::sampling::run::Run;
use crate::sde::GaussianKernel;

/// Integrates the state over the decreasing grid `ts`.
pub(crate) fn sample<S: GaussianKernel + ?Sized, G: Guide + ?Sized>(
    run: &mut Run<'_, S, G>,
    ts: &[f64],
) -> Result<()> {
    run.steps(ts, |run, step| {
        let (t, delta) = (step.t, step.t - step.s);
        if run.is_pure_noise(t) {
            // The reverse SDE's coefficients diverge here; its exact transition from pure
            // noise given x̂_0 is the posterior N(a_s·x̂_0, b_s²I).
            return run.step_from_pure_noise(t, step.s, 1.0);
        }
        let sde = run.sde.reverse_sde(t); // dx = [X·x + S·score] dt + g dw̄, backwards
        let score = run.predict(&run.x, t, Prediction::Score)?;
        let z = run.noise()?;
        run.x.assign(
            1.0 * &run.x
                + (-delta * sde.x) * &run.x
                + (-delta * sde.score) * score
                + (sde.noise_variance * delta).sqrt() * &z,
        )
    })
}
