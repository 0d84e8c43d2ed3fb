//! Samplers: every standard diffusion sampler, generic over any declared linear SDE
//! (and so monomorphised per SDE with its closed forms inlined) and any score model.
//!
//! Each sampler is a short file reading like its paper's algorithm; every step's tensor
//! update is one fused pass over memory ([`crate::sampling::fused`]), in place in `x`.

pub mod fused;
pub mod grid;
pub mod noise;
mod samplers;

pub use samplers::ddim::{ddim_coefficients, DdimCoefficients};
pub use samplers::ddpm::{ddpm_coefficients, DdpmCoefficients, DdpmVariance};
use samplers::*;

use candle_core::Tensor;

use crate::error::{invalid, Error, Result};
use crate::model::{Denoiser, ScoreModel};
use crate::sampling::grid::{time_grid, Grid};
use crate::sampling::noise::Noise;
use crate::sde::GaussianKernel;

/// The samplers, by CLI name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SamplerKind {
    /// Reverse-SDE Euler–Maruyama.
    Em,
    /// Song et al.'s reverse-diffusion predictor (the forward SDE's exact discretisation, reversed).
    ReverseDiffusion,
    /// Ancestral sampling: the exact Gaussian posterior `q(x_s | x_t, x_0)` with predicted `x_0`.
    Ancestral,
    /// Predictor–corrector: a predictor step then Langevin corrector steps.
    Pc,
    /// Probability-flow ODE, Euler.
    OdeEuler,
    /// Probability-flow ODE, Heun (EDM's 2nd order, optional churn).
    Heun,
    /// Probability-flow ODE, adaptive Dormand–Prince RK45.
    Rk45,
    /// DDPM ancestral sampling.
    Ddpm,
    /// DDIM(η).
    Ddim,
    /// DPM-Solver, order 1.
    Dpm1,
    /// DPM-Solver-2 (singlestep).
    Dpm2,
    /// DPM-Solver++(2M).
    DpmPp2m,
    /// DPM-Solver++(3M).
    DpmPp3m,
}

impl SamplerKind {
    /// Every sampler with its CLI name and a one-line description.
    pub const ALL: [(SamplerKind, &'static str, &'static str); 13] = [
        (
            SamplerKind::Em,
            "em",
            "reverse-SDE Euler-Maruyama (stochastic, order 1 weak)",
        ),
        (
            SamplerKind::ReverseDiffusion,
            "reverse-diffusion",
            "reverse-diffusion predictor (stochastic)",
        ),
        (
            SamplerKind::Ancestral,
            "ancestral",
            "ancestral sampling from the exact posterior (stochastic)",
        ),
        (
            SamplerKind::Pc,
            "pc",
            "predictor-corrector: reverse diffusion + Langevin (--snr, --corrector-steps)",
        ),
        (
            SamplerKind::OdeEuler,
            "ode-euler",
            "probability-flow ODE, Euler (order 1)",
        ),
        (
            SamplerKind::Heun,
            "heun",
            "probability-flow ODE, Heun (order 2; --churn for EDM's stochastic variant)",
        ),
        (
            SamplerKind::Rk45,
            "rk45",
            "probability-flow ODE, adaptive Dormand-Prince (--rtol, --atol)",
        ),
        (
            SamplerKind::Ddpm,
            "ddpm",
            "DDPM ancestral (sigma^2 = beta; last step the mean)",
        ),
        (
            SamplerKind::Ddim,
            "ddim",
            "DDIM(eta) (--eta; deterministic at 0, order 1)",
        ),
        (SamplerKind::Dpm1, "dpm1", "DPM-Solver-1 (= DDIM(0))"),
        (
            SamplerKind::Dpm2,
            "dpm2",
            "DPM-Solver-2, singlestep (order 2)",
        ),
        (
            SamplerKind::DpmPp2m,
            "dpmpp2m",
            "DPM-Solver++(2M), multistep (order 2)",
        ),
        (
            SamplerKind::DpmPp3m,
            "dpmpp3m",
            "DPM-Solver++(3M), multistep (order 3)",
        ),
    ];

    /// Looks a sampler up by CLI name.
    pub fn from_name(name: &str) -> Option<SamplerKind> {
        SamplerKind::ALL
            .iter()
            .find(|(_, n, _)| *n == name)
            .map(|(k, _, _)| *k)
    }

    /// The CLI name.
    pub fn name(self) -> &'static str {
        SamplerKind::ALL
            .iter()
            .find(|(k, _, _)| *k == self)
            .map(|(_, n, _)| *n)
            .unwrap_or("?")
    }

    /// Whether the sampler draws noise during sampling.
    pub fn is_stochastic(self, cfg: &SamplerConfig) -> bool {
        match self {
            SamplerKind::Em
            | SamplerKind::ReverseDiffusion
            | SamplerKind::Ancestral
            | SamplerKind::Pc
            | SamplerKind::Ddpm => true,
            SamplerKind::Ddim => cfg.eta > 0.0,
            SamplerKind::Heun => cfg.churn > 0.0,
            _ => false,
        }
    }
}

/// Settings shared by the samplers; each reads the ones it needs.
#[derive(Clone, Debug, PartialEq)]
pub struct SamplerConfig {
    /// Number of steps (for RK45: the initial step count guess).
    pub steps: usize,
    /// The time grid.
    pub grid: Grid,
    /// Integrate from `t_max` (default: the SDE's `T`).
    pub t_max: Option<f64>,
    /// Integrate down to `t_min` (default: the SDE's `t_min`).
    pub t_min: Option<f64>,
    /// DDIM's η (0: deterministic, 1: DDPM-like).
    pub eta: f64,
    /// Langevin corrector signal-to-noise ratio.
    pub snr: f64,
    /// Langevin corrector steps per predictor step.
    pub corrector_steps: usize,
    /// Heun's churn `S_churn` (0: deterministic).
    pub churn: f64,
    /// RK45 relative tolerance.
    pub rtol: f64,
    /// RK45 absolute tolerance.
    pub atol: f64,
    /// DDPM's variance choice.
    pub ddpm_variance: DdpmVariance,
    /// Replace the final state by the model's `x_0` prediction (Tweedie's denoising step).
    pub denoise: bool,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        SamplerConfig {
            steps: 100,
            grid: Grid::Uniform,
            t_max: None,
            t_min: None,
            eta: 0.0,
            snr: 0.16,
            corrector_steps: 1,
            churn: 0.0,
            rtol: 1e-5,
            atol: 1e-5,
            ddpm_variance: DdpmVariance::Beta,
            denoise: false,
        }
    }
}

/// The result of sampling.
#[derive(Clone, Debug)]
pub struct Sampled {
    /// The samples, same shape as the initial state.
    pub x: Tensor,
    /// Model evaluations used.
    pub nfe: usize,
}

/// Maps a fused step's non-finite failure to an error naming the step and time.
pub(crate) fn at_step(step: usize, t: f64) -> impl Fn(Error) -> Error {
    move |e| {
        if crate::sampling::fused::is_non_finite(&e) {
            Error::NonFinite {
                step,
                t,
                what: "the state x",
            }
        } else {
            e
        }
    }
}

/// Samples from `x_T` (which is not modified) with `kind`, integrating the model's
/// reverse dynamics over the configured time grid.
pub fn sample<S: GaussianKernel + ?Sized, M: ScoreModel + ?Sized>(
    kind: SamplerKind,
    sde: &S,
    model: &M,
    x_t: &Tensor,
    cfg: &SamplerConfig,
    noise: &mut Noise,
) -> Result<Sampled> {
    if cfg.steps == 0 {
        return Err(invalid!("steps must be at least 1"));
    }
    let (lo, hi) = sde.time_range();
    let t_min = cfg.t_min.unwrap_or(lo);
    let t_max = cfg.t_max.unwrap_or(hi);
    let ts = time_grid(sde, cfg.grid, cfg.steps, t_min, t_max)?;
    sample_on(kind, sde, model, x_t, &ts, cfg, noise)
}

/// Samples on an explicit decreasing time grid `ts` (e.g. a discrete schedule's
/// [`crate::sampling::grid::discrete_times`]); `cfg.steps`, `cfg.grid`, `cfg.t_min` and `cfg.t_max`
/// are ignored (RK45 integrates from `ts[0]` to the last time).
pub fn sample_on<S: GaussianKernel + ?Sized, M: ScoreModel + ?Sized>(
    kind: SamplerKind,
    sde: &S,
    model: &M,
    x_t: &Tensor,
    ts: &[f64],
    cfg: &SamplerConfig,
    noise: &mut Noise,
) -> Result<Sampled> {
    if !(cfg.eta >= 0.0 && cfg.eta.is_finite()) {
        return Err(invalid!("eta must be >= 0, got {}", cfg.eta));
    }
    if ts.len() < 2 || ts.iter().any(|t| !t.is_finite()) || ts.windows(2).any(|w| w[1] >= w[0]) {
        return Err(invalid!(
            "the time grid must be at least two finite, strictly decreasing times"
        ));
    }
    let (lo, hi) = sde.time_range();
    let (t_max, t_min) = (ts[0], ts[ts.len() - 1]);
    if t_min < lo - 1e-12 || t_max > hi + 1e-12 {
        return Err(invalid!(
            "time range [{t_min}, {t_max}] is not inside the SDE's [{lo}, {hi}]"
        ));
    }
    let ts = ts.to_vec();
    let den = Denoiser::new(sde, model);
    // A fresh contiguous buffer the samplers update in place.
    let x = x_t.contiguous()?.copy()?;
    match kind {
        SamplerKind::Em => em::run(&den, &x, &ts, noise)?,
        SamplerKind::ReverseDiffusion => reverse_diffusion::run(&den, &x, &ts, noise)?,
        SamplerKind::Ancestral => ancestral::run(&den, &x, &ts, noise)?,
        SamplerKind::Pc => langevin::run_pc(&den, &x, &ts, cfg, noise)?,
        SamplerKind::OdeEuler => ode_euler::run(&den, &x, &ts)?,
        SamplerKind::Heun => heun::run(&den, &x, &ts, cfg, noise)?,
        SamplerKind::Rk45 => rk45::run(&den, &x, t_max, t_min, cfg)?,
        SamplerKind::Ddpm => ddpm::run(&den, &x, &ts, cfg, noise)?,
        SamplerKind::Ddim => ddim::run(&den, &x, &ts, cfg, noise)?,
        SamplerKind::Dpm1 => dpm_solver::run_1(&den, &x, &ts)?,
        SamplerKind::Dpm2 => dpm_solver::run_2(&den, &x, &ts)?,
        SamplerKind::DpmPp2m => dpmpp::run_2m(&den, &x, &ts)?,
        SamplerKind::DpmPp3m => dpmpp::run_3m(&den, &x, &ts)?,
    }
    let x = if cfg.denoise { den.x0(&x, t_min)? } else { x };
    Ok(Sampled { x, nfe: den.nfe() })
}
