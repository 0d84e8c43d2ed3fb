//! Samplers as values: each variant carries its own settings, validates itself in one
//! place, and samples through one entry point; [`Sampler::encode`] runs a deterministic one
//! up the grid to invert it.
//!
//! ```
//! use candle_core::Device;
//! use sbdm_runtime::model::mixture::GaussianMixture;
//! use sbdm_runtime::sampling::{GridKind, Noise, Sampler, TimeGrid};
//! use sbdm_runtime::sde::builtin::VpSde;
//! # fn main() -> sbdm_runtime::error::Result<()> {
//! let sde = VpSde::default();
//! let mix = GaussianMixture::ring(8, 4.0, 0.5)?;
//! let sampler: Sampler = "ddim(eta=0.5)".parse()?;          // or Sampler::Ddim { eta: 0.5 }
//! assert_eq!(sampler, Sampler::Ddim { eta: 0.5 });
//! assert_eq!(sampler.to_string(), "ddim(eta=0.5)");
//! let grid = TimeGrid::new(GridKind::LogSnr, 25);
//! sampler.validate(&sde, &grid)?;                            // what sample() checks first
//! let mut noise = Noise::new(7, 0, 100, &[2], &Device::Cpu);
//! let x_t = noise.draw()?;                                   // N(0, I), the VP prior
//! let out = sampler.sample(&sde, &mix.model(&sde), &x_t, &grid, &mut noise)?;
//! assert_eq!((out.x.dims(), out.nfe), (&[100, 2][..], 25));
//! assert!(Sampler::Ddim { eta: -1.0 }.validate(&sde, &grid).is_err());
//! # Ok(()) }
//! ```

use std::fmt;
use std::str::FromStr;

use candle_core::Tensor;

use super::grid::TimeGrid;
use super::guidance::Guide;
use super::noise::Noise;
use super::run::Run;
use super::samplers::{
    ancestral, ddim, ddpm, dpm_solver, dpmpp, em, heun, langevin, ode_euler, reverse_diffusion,
    rk45,
};
use super::step::Buffer;
use super::Denoiser;
use crate::error::{invalid, Error, Result};
use crate::model::ScoreModel;
use crate::sde::{GaussianKernel, Transition};

pub use super::samplers::ddpm::DdpmVariance;

/// A sampler with its settings. [`Sampler::ALL`] lists every one with its defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Sampler {
    /// Reverse-SDE Euler–Maruyama (Song et al. 2021).
    Em,
    /// Song et al.'s reverse-diffusion predictor.
    ReverseDiffusion,
    /// Ancestral sampling from the exact posterior `q(x_s | x_t, x_0)` with predicted `x_0`.
    Ancestral,
    /// Predictor–corrector: a reverse-diffusion step then Langevin corrector steps.
    Pc {
        /// The corrector's signal-to-noise ratio `r` (0.16 in Song et al.).
        snr: f64,
        /// Langevin steps after each predictor step.
        corrector_steps: usize,
    },
    /// Probability-flow ODE, explicit Euler.
    OdeEuler,
    /// Probability-flow ODE, Heun's second-order method with EDM's optional churn
    /// (Karras et al. 2022, Algorithm 2).
    Heun {
        /// `S_churn` (0: deterministic); `γ = min(S_churn/N, √2 − 1)`.
        churn: f64,
        /// `S_tmin`: churn only where `σ = b/a ≥ S_tmin`.
        s_tmin: f64,
        /// `S_tmax`: churn only where `σ ≤ S_tmax`.
        s_tmax: f64,
        /// `S_noise`: the churn noise's scale.
        s_noise: f64,
    },
    /// Probability-flow ODE, adaptive Dormand–Prince 5(4).
    Rk45 {
        /// Relative tolerance.
        rtol: f64,
        /// Absolute tolerance.
        atol: f64,
    },
    /// DDPM ancestral sampling (Ho et al. 2020), the last step the posterior mean.
    Ddpm {
        /// `σ² = β` or the posterior variance `β̃`.
        variance: DdpmVariance,
    },
    /// DDIM(η) (Song, Meng & Ermon 2021).
    Ddim {
        /// η: 0 is deterministic, 1 has DDPM's posterior variance.
        eta: f64,
    },
    /// DPM-Solver-1 (= DDIM(0)).
    Dpm1,
    /// DPM-Solver-2, singlestep.
    Dpm2,
    /// DPM-Solver++(2M), multistep.
    DpmPp2m,
    /// DPM-Solver++(3M), multistep.
    DpmPp3m,
}

impl Sampler {
    /// Every sampler with its default settings.
    pub const ALL: [Sampler; 13] = [
        Sampler::Em,
        Sampler::ReverseDiffusion,
        Sampler::Ancestral,
        Sampler::Pc {
            snr: 0.16,
            corrector_steps: 1,
        },
        Sampler::OdeEuler,
        Sampler::Heun {
            churn: 0.0,
            s_tmin: 0.0,
            s_tmax: f64::INFINITY,
            s_noise: 1.0,
        },
        Sampler::Rk45 {
            rtol: 1e-5,
            atol: 1e-5,
        },
        Sampler::Ddpm {
            variance: DdpmVariance::Beta,
        },
        Sampler::Ddim { eta: 0.0 },
        Sampler::Dpm1,
        Sampler::Dpm2,
        Sampler::DpmPp2m,
        Sampler::DpmPp3m,
    ];

    /// The sampler's name (`ddim`, `dpmpp2m`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Sampler::Em => "em",
            Sampler::ReverseDiffusion => "reverse-diffusion",
            Sampler::Ancestral => "ancestral",
            Sampler::Pc { .. } => "pc",
            Sampler::OdeEuler => "ode-euler",
            Sampler::Heun { .. } => "heun",
            Sampler::Rk45 { .. } => "rk45",
            Sampler::Ddpm { .. } => "ddpm",
            Sampler::Ddim { .. } => "ddim",
            Sampler::Dpm1 => "dpm1",
            Sampler::Dpm2 => "dpm2",
            Sampler::DpmPp2m => "dpmpp2m",
            Sampler::DpmPp3m => "dpmpp3m",
        }
    }

    /// A one-line description, naming the settings.
    pub fn description(&self) -> &'static str {
        match self {
            Sampler::Em => "reverse-SDE Euler-Maruyama (stochastic, order 1 weak)",
            Sampler::ReverseDiffusion => "reverse-diffusion predictor (stochastic)",
            Sampler::Ancestral => "ancestral sampling from the exact posterior (stochastic)",
            Sampler::Pc { .. } => {
                "predictor-corrector: reverse diffusion + Langevin (snr, corrector_steps)"
            }
            Sampler::OdeEuler => "probability-flow ODE, Euler (order 1)",
            Sampler::Heun { .. } => {
                "probability-flow ODE, Heun (order 2; churn, s_tmin, s_tmax, s_noise for EDM's stochastic variant)"
            }
            Sampler::Rk45 { .. } => "probability-flow ODE, adaptive Dormand-Prince (rtol, atol)",
            Sampler::Ddpm { .. } => "DDPM ancestral (variance beta or beta-tilde; last step the mean)",
            Sampler::Ddim { .. } => "DDIM(eta) (deterministic at eta = 0, order 1)",
            Sampler::Dpm1 => "DPM-Solver-1 (= DDIM(0))",
            Sampler::Dpm2 => "DPM-Solver-2, singlestep (order 2)",
            Sampler::DpmPp2m => "DPM-Solver++(2M), multistep (order 2)",
            Sampler::DpmPp3m => "DPM-Solver++(3M), multistep (order 3)",
        }
    }

    /// The sampler named `name`, with its default settings.
    pub fn by_name(name: &str) -> Result<Sampler> {
        Sampler::ALL
            .iter()
            .find(|s| s.name() == name)
            .copied()
            .ok_or_else(|| {
                let names: Vec<&str> = Sampler::ALL.iter().map(Sampler::name).collect();
                invalid!("unknown sampler `{name}`; valid: {}", names.join(", "))
            })
    }

    /// Whether the sampler draws noise while sampling.
    pub fn is_stochastic(&self) -> bool {
        match *self {
            Sampler::Em
            | Sampler::ReverseDiffusion
            | Sampler::Ancestral
            | Sampler::Pc { .. }
            | Sampler::Ddpm { .. } => true,
            Sampler::Ddim { eta } => eta > 0.0,
            Sampler::Heun { churn, .. } => churn > 0.0,
            Sampler::OdeEuler
            | Sampler::Rk45 { .. }
            | Sampler::Dpm1
            | Sampler::Dpm2
            | Sampler::DpmPp2m
            | Sampler::DpmPp3m => false,
        }
    }

    /// Whether each step depends only on the state at its start (not on earlier steps'
    /// model outputs, nor an adaptive step size): what RePaint's resampling needs.
    pub fn is_single_step(&self) -> bool {
        !matches!(
            self,
            Sampler::DpmPp2m | Sampler::DpmPp3m | Sampler::Rk45 { .. }
        )
    }

    /// Checks RePaint's resampling count `r` (see
    /// [`Guide::resampling`](super::Guide::resampling)) for this sampler: at least 1, and
    /// above 1 only for a [single-step](Self::is_single_step) sampler.
    pub fn validate_resampling(&self, r: usize) -> Result<()> {
        match r {
            0 => Err(invalid!("resampling must be at least 1, got 0")),
            1 => Ok(()),
            r if !self.is_single_step() => Err(invalid!(
                "{}: resampling (r = {r}) repeats single steps; use a single-step sampler \
                 (ancestral, ddpm, ddim, em, ...), not a multistep or adaptive one",
                self.name()
            )),
            _ => Ok(()),
        }
    }

    /// The settings as `(name, value)`, in declaration order.
    pub fn settings(&self) -> Vec<(&'static str, String)> {
        match *self {
            Sampler::Pc {
                snr,
                corrector_steps,
            } => vec![
                ("snr", snr.to_string()),
                ("corrector_steps", corrector_steps.to_string()),
            ],
            Sampler::Heun {
                churn,
                s_tmin,
                s_tmax,
                s_noise,
            } => vec![
                ("churn", churn.to_string()),
                ("s_tmin", s_tmin.to_string()),
                ("s_tmax", s_tmax.to_string()),
                ("s_noise", s_noise.to_string()),
            ],
            Sampler::Rk45 { rtol, atol } => {
                vec![("rtol", rtol.to_string()), ("atol", atol.to_string())]
            }
            Sampler::Ddpm { variance } => vec![("variance", variance.name().to_string())],
            Sampler::Ddim { eta } => vec![("eta", eta.to_string())],
            _ => Vec::new(),
        }
    }

    /// Sets the setting `key` from its text (as [`settings`](Self::settings) writes it);
    /// ranges are checked by [`validate`](Self::validate).
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        let name = self.name();
        let number = || -> Result<f64> {
            value
                .trim()
                .parse::<f64>()
                .map_err(|_| invalid!("{name}: {key} must be a number, got `{value}`"))
        };
        match (self, key) {
            (Sampler::Pc { snr, .. }, "snr") => *snr = number()?,
            (
                Sampler::Pc {
                    corrector_steps, ..
                },
                "corrector_steps",
            ) => {
                *corrector_steps = value.trim().parse().map_err(|_| {
                    invalid!("{name}: corrector_steps must be a whole number >= 0, got `{value}`")
                })?
            }
            (Sampler::Heun { churn, .. }, "churn") => *churn = number()?,
            (Sampler::Heun { s_tmin, .. }, "s_tmin") => *s_tmin = number()?,
            (Sampler::Heun { s_tmax, .. }, "s_tmax") => *s_tmax = number()?,
            (Sampler::Heun { s_noise, .. }, "s_noise") => *s_noise = number()?,
            (Sampler::Rk45 { rtol, .. }, "rtol") => *rtol = number()?,
            (Sampler::Rk45 { atol, .. }, "atol") => *atol = number()?,
            (Sampler::Ddpm { variance }, "variance") => *variance = value.trim().parse()?,
            (Sampler::Ddim { eta }, "eta") => *eta = number()?,
            (s, _) => {
                let keys: Vec<&str> = s.settings().iter().map(|(k, _)| *k).collect();
                return Err(if keys.is_empty() {
                    invalid!("{name} has no settings (`{key}` was given)")
                } else {
                    invalid!(
                        "{name} has no setting `{key}`; its settings: {}",
                        keys.join(", ")
                    )
                });
            }
        }
        Ok(())
    }

    /// Checks the settings, the grid on `sde`, and the two together: the one place where
    /// a sampler is validated, before any work (the library and the CLI both call it).
    pub fn validate<S: GaussianKernel + ?Sized>(&self, sde: &S, grid: &TimeGrid) -> Result<()> {
        self.plan(sde, grid).map(|_| ())
    }

    /// [`validate`](Self::validate), returning what the sampler integrates over.
    fn plan<S: GaussianKernel + ?Sized>(&self, sde: &S, grid: &TimeGrid) -> Result<Plan> {
        let name = self.name();
        let at_least = |key: &str, v: f64, min: f64, strict: bool| -> Result<()> {
            let ok = v.is_finite() && if strict { v > min } else { v >= min };
            if ok {
                Ok(())
            } else {
                let op = if strict { ">" } else { ">=" };
                Err(invalid!(
                    "{name}: {key} must be finite and {op} {min}, got {v}"
                ))
            }
        };
        match *self {
            Sampler::Pc { snr, .. } => at_least("snr", snr, 0.0, true)?,
            Sampler::Heun {
                churn,
                s_tmin,
                s_tmax,
                s_noise,
            } => {
                at_least("churn", churn, 0.0, false)?;
                at_least("s_tmin", s_tmin, 0.0, false)?;
                at_least("s_noise", s_noise, 0.0, false)?;
                if s_tmax.is_nan() || s_tmax < s_tmin {
                    return Err(invalid!(
                        "{name}: s_tmax must be >= s_tmin = {s_tmin}, got {s_tmax}"
                    ));
                }
            }
            Sampler::Rk45 { rtol, atol } => {
                at_least("rtol", rtol, 0.0, true)?;
                at_least("atol", atol, 0.0, false)?;
            }
            Sampler::Ddim { eta } => at_least("eta", eta, 0.0, false)?,
            _ => {}
        }
        if let Sampler::Rk45 { .. } = self {
            let (t_max, t_min) = grid.span(sde)?;
            return Ok(Plan::Span {
                from: t_max,
                to: t_min,
                steps: grid.steps(),
            });
        }
        let ts = grid.times(sde)?;
        if let Sampler::Ddim { eta } = *self {
            // σ = η·(b_s/b_t)·b_{t|s} must not exceed b_s: (1 − η²) + η²·e^{2(λ_t − λ_s)} ≥ 0.
            for (i, w) in ts.windows(2).enumerate() {
                let keep = Transition::between(sde, w[1], w[0]).keep;
                if (1.0 - eta * eta) + eta * eta * keep < 0.0 {
                    return Err(invalid!(
                        "{name}: eta = {eta} is too large at step {i} (t = {}): sigma exceeds b(s)",
                        w[0]
                    ));
                }
            }
        }
        Ok(Plan::Times(ts))
    }

    /// Samples from `x_t` (not modified) by integrating the reverse dynamics of `sde`
    /// under `model` — a [`ScoreModel`](crate::model::ScoreModel), or a [`Guided`](super::Guided) one with a condition,
    /// score terms and a constraint — over `grid`, drawing noise from `noise`.
    /// Everything is validated before the first step ([`validate`](Self::validate),
    /// [`Condition::check`](crate::model::Condition::check)).
    pub fn sample<S: GaussianKernel + ?Sized, G: Guide + ?Sized>(
        &self,
        sde: &S,
        model: &G,
        x_t: &Tensor,
        grid: &TimeGrid,
        noise: &mut Noise,
    ) -> Result<Sampled> {
        self.sample_from(sde, model, x_t, Buffer::copy_of, grid, noise)
    }

    /// [`sample`](Self::sample), integrating in `x_t`'s own storage instead of a copy of
    /// it: one batch less in memory, for a caller that has no further use for `x_T`
    /// (`sbdm sample` with its prior draw). Other handles to the same storage (clones
    /// of `x_t`) see it overwritten; a strided `x_t` is made contiguous (a copy) first.
    /// The samples are the same as [`sample`](Self::sample)'s.
    pub fn sample_in_place<S: GaussianKernel + ?Sized, G: Guide + ?Sized>(
        &self,
        sde: &S,
        model: &G,
        x_t: Tensor,
        grid: &TimeGrid,
        noise: &mut Noise,
    ) -> Result<Sampled> {
        self.sample_from(sde, model, &x_t, |x| Buffer::new(x.clone()), grid, noise)
    }

    /// [`sample`](Self::sample) with the state made from `x_t` by `state`.
    fn sample_from<S: GaussianKernel + ?Sized, G: Guide + ?Sized>(
        &self,
        sde: &S,
        model: &G,
        x_t: &Tensor,
        state: impl FnOnce(&Tensor) -> Result<Buffer>,
        grid: &TimeGrid,
        noise: &mut Noise,
    ) -> Result<Sampled> {
        let plan = self.plan(sde, grid)?;
        let n = x_t.dim(0)?;
        model.condition().check(model.model().conditioning(), n)?;
        self.validate_resampling(model.resampling())?;
        if noise.shape() != x_t.dims() {
            return Err(invalid!(
                "the noise streams draw shape {:?} but x_T has shape {:?}",
                noise.shape(),
                x_t.dims()
            ));
        }
        let mut run = Run::new(sde, model, state(x_t)?, noise)?;
        self.integrate(&mut run, &plan)?;
        Ok(Sampled {
            nfe: run.model.nfe(),
            x: run.x.into_tensor(),
            t: plan.end(),
        })
    }

    /// Checks that this sampler can [`encode`](Self::encode) over `grid` on `sde`:
    /// [`validate`](Self::validate), and a deterministic sampler (a probability-flow ODE
    /// solver; a stochastic one has no inverse). What `encode` checks first.
    pub fn validate_encode<S: GaussianKernel + ?Sized>(
        &self,
        sde: &S,
        grid: &TimeGrid,
    ) -> Result<()> {
        self.encode_plan(sde, grid).map(|_| ())
    }

    /// [`validate_encode`](Self::validate_encode), returning the plan reversed.
    fn encode_plan<S: GaussianKernel + ?Sized>(&self, sde: &S, grid: &TimeGrid) -> Result<Plan> {
        if self.is_stochastic() {
            let deterministic: Vec<&str> = Sampler::ALL
                .iter()
                .filter(|s| !s.is_stochastic())
                .map(Sampler::name)
                .collect();
            return Err(invalid!(
                "{self}: cannot encode with a stochastic sampler; use a deterministic one: {}",
                deterministic.join(", ")
            ));
        }
        Ok(self.plan(sde, grid)?.reversed())
    }

    /// Encodes data `x_0` (not modified), taken as the state at the grid's last time
    /// `t_min`, to the grid's first time `T` along the probability-flow ODE of `sde` under
    /// `model`, with this (deterministic) sampler run over the same grid reversed. Sampling
    /// from the result over the same grid decodes it (see the
    /// [module docs](crate::sampling#encoding) for how close the round trip is).
    ///
    /// The guide may carry a condition and score terms (conditional inversion), but not a
    /// constraint nor RePaint's resampling, which have no inverse.
    ///
    /// ```
    /// use candle_core::{DType, Device};
    /// use sbdm_runtime::model::mixture::GaussianMixture;
    /// use sbdm_runtime::sampling::{Noise, Sampler, TimeGrid};
    /// use sbdm_runtime::sde::builtin::VpSde;
    /// # fn main() -> sbdm_runtime::error::Result<()> {
    /// let sde = VpSde::default();
    /// let mix = GaussianMixture::ring(8, 4.0, 0.5)?;
    /// let model = mix.model(&sde);
    /// let x_0 = mix.sample(64, 3, &Device::Cpu)?.to_dtype(DType::F64)?;   // [64, 2] data
    /// let (ddim, grid) = (Sampler::Ddim { eta: 0.0 }, TimeGrid::uniform(200));
    /// let enc = ddim.encode(&sde, &model, &x_0, &grid)?;                  // x_0 → x_T
    /// assert_eq!((enc.x.dims(), enc.nfe, enc.t), (&[64, 2][..], 200, 1.0));
    /// let mut noise = Noise::new(0, 0, 64, &[2], &Device::Cpu);           // never drawn
    /// let dec = ddim.sample(&sde, &model, &enc.x, &grid, &mut noise)?;     // x_T → x_0
    /// let err = (dec.x - &x_0)?.abs()?.max_all()?.to_scalar::<f64>()?;
    /// assert!(err < 0.05, "round trip off by {err}");                     // DDIM's O(1/N)
    /// assert!(Sampler::Em.encode(&sde, &model, &x_0, &grid).is_err());    // stochastic
    /// # Ok(()) }
    /// ```
    pub fn encode<S: GaussianKernel + ?Sized, G: Guide + ?Sized>(
        &self,
        sde: &S,
        model: &G,
        x_0: &Tensor,
        grid: &TimeGrid,
    ) -> Result<Sampled> {
        let plan = self.encode_plan(sde, grid)?;
        let n = x_0.dim(0)?;
        model.condition().check(model.model().conditioning(), n)?;
        if model.constraint().is_some() {
            return Err(invalid!(
                "{self}: cannot encode under a constraint (it is applied after each sampling \
                 step and has no inverse); encode with the model alone"
            ));
        }
        if model.resampling() != 1 {
            return Err(invalid!(
                "{self}: cannot encode with resampling r = {} (RePaint's jumps are \
                 stochastic); encode with r = 1",
                model.resampling()
            ));
        }
        // A deterministic sampler draws nothing; the run needs streams all the same.
        let mut noise = Noise::new(0, 0, n, &x_0.dims()[1..], x_0.device());
        let mut run = Run::new(sde, model, Buffer::copy_of(x_0)?, &mut noise)?;
        self.integrate(&mut run, &plan)?;
        Ok(Sampled {
            nfe: run.model.nfe(),
            x: run.x.into_tensor(),
            t: plan.end(),
        })
    }

    /// Runs the algorithm over `plan`, in the direction it goes.
    fn integrate<S: GaussianKernel + ?Sized, G: Guide + ?Sized>(
        &self,
        run: &mut Run<'_, S, G>,
        plan: &Plan,
    ) -> Result<()> {
        match (*self, plan) {
            (Sampler::Rk45 { rtol, atol }, &Plan::Span { from, to, steps }) => {
                rk45::integrate(run, from, to, steps, rtol, atol)
            }
            (_, Plan::Span { .. }) => unreachable!("only rk45 plans a span"),
            (sampler, Plan::Times(ts)) => match sampler {
                Sampler::Em => em::sample(run, ts),
                Sampler::ReverseDiffusion => reverse_diffusion::sample(run, ts),
                Sampler::Ancestral => ancestral::sample(run, ts),
                Sampler::Pc {
                    snr,
                    corrector_steps,
                } => langevin::sample_pc(run, ts, snr, corrector_steps),
                Sampler::OdeEuler => ode_euler::sample(run, ts),
                Sampler::Heun {
                    churn,
                    s_tmin,
                    s_tmax,
                    s_noise,
                } => heun::sample(run, ts, churn, (s_tmin, s_tmax), s_noise),
                Sampler::Ddpm { variance } => ddpm::sample(run, ts, variance),
                Sampler::Ddim { eta } => ddim::sample(run, ts, eta),
                Sampler::Dpm1 => dpm_solver::sample_1(run, ts),
                Sampler::Dpm2 => dpm_solver::sample_2(run, ts),
                Sampler::DpmPp2m => dpmpp::sample(run, ts, 2),
                Sampler::DpmPp3m => dpmpp::sample(run, ts, 3),
                Sampler::Rk45 { .. } => unreachable!("rk45 plans a span"),
            },
        }
    }
}

/// What a sampler integrates over: a fixed grid, or (adaptive solvers) the span and the
/// initial step count; decreasing when sampling, increasing when encoding.
enum Plan {
    Times(Vec<f64>),
    Span { from: f64, to: f64, steps: usize },
}

impl Plan {
    /// The same times in the other direction.
    fn reversed(self) -> Plan {
        match self {
            Plan::Times(mut ts) => {
                ts.reverse();
                Plan::Times(ts)
            }
            Plan::Span { from, to, steps } => Plan::Span {
                from: to,
                to: from,
                steps,
            },
        }
    }

    /// The time the integration ends at.
    fn end(&self) -> f64 {
        match self {
            Plan::Times(ts) => ts[ts.len() - 1],
            Plan::Span { to, .. } => *to,
        }
    }
}

impl fmt::Display for Sampler {
    /// The name, then any setting that differs from the default in parentheses:
    /// `ddim(eta=0.5)`; [`FromStr`] reads it back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let default = Sampler::by_name(self.name()).map_err(|_| fmt::Error)?;
        let defaults = default.settings();
        let changed: Vec<String> = self
            .settings()
            .into_iter()
            .zip(defaults)
            .filter(|(mine, theirs)| mine != theirs)
            .map(|((k, v), _)| format!("{k}={v}"))
            .collect();
        f.write_str(self.name())?;
        if !changed.is_empty() {
            write!(f, "({})", changed.join(", "))?;
        }
        Ok(())
    }
}

impl FromStr for Sampler {
    type Err = Error;

    /// `name` or `name(key=value, ...)`, e.g. `heun(churn=40, s_noise=1.003)`.
    fn from_str(text: &str) -> Result<Sampler> {
        let text = text.trim();
        let (name, args) = match text.split_once('(') {
            Some((name, rest)) => {
                let args = rest
                    .strip_suffix(')')
                    .ok_or_else(|| invalid!("sampler `{text}`: settings must end with `)`"))?;
                (name.trim(), Some(args))
            }
            None => (text, None),
        };
        let mut sampler = Sampler::by_name(name)?;
        for item in args.into_iter().flat_map(|a| a.split(',')) {
            if item.trim().is_empty() {
                continue;
            }
            let (k, v) = item
                .split_once('=')
                .ok_or_else(|| invalid!("sampler `{text}`: `{}` is not key=value", item.trim()))?;
            sampler.set(k.trim(), v)?;
        }
        Ok(sampler)
    }
}

/// The result of sampling (or of [encoding](Sampler::encode)).
#[derive(Clone, Debug)]
pub struct Sampled {
    /// The samples, same shape as the initial state.
    pub x: Tensor,
    /// Model evaluations used.
    pub nfe: usize,
    /// The time the samples are at: the grid's last time (its first, `T`, after encoding;
    /// 0 after [`denoise`](Self::denoise)).
    pub t: f64,
}

impl Sampled {
    /// Replaces the samples by the model's `x_0` prediction at their time (Tweedie's
    /// denoising step, one more evaluation), under the same guide.
    pub fn denoise<S: GaussianKernel + ?Sized, G: Guide + ?Sized>(
        self,
        sde: &S,
        model: &G,
    ) -> Result<Sampled> {
        model
            .condition()
            .check(model.model().conditioning(), self.x.dim(0)?)?;
        let den = Denoiser::new(sde, model);
        Ok(Sampled {
            x: den.x0(&self.x, self.t)?,
            nfe: self.nfe + den.nfe(),
            t: 0.0,
        })
    }
}
