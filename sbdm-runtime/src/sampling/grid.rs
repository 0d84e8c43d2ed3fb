//! Time grids for samplers: decreasing from `T` to `t_min`.
//!
//! A [`TimeGrid`] is a value: a spacing ([`GridKind`]) with a step count and an optional
//! time range, a discrete schedule's subsampled training timesteps ([`Spacing`]), or
//! explicit times (as diffusers' custom `timesteps`/`sigmas`). [`TimeGrid::times`] turns it
//! into the times for an SDE and is the one place a grid is checked.
//!
//! ```
//! use sbdm_runtime::sampling::{GridKind, TimeGrid};
//! use sbdm_runtime::sde::builtin::VpSde;
//! # fn main() -> sbdm_runtime::error::Result<()> {
//! let sde = VpSde::default();
//! let ts = TimeGrid::new(GridKind::LogSnr, 10).times(&sde)?;
//! assert_eq!((ts.len(), ts[0], ts[10]), (11, 1.0, 1e-3));
//! let part = TimeGrid::uniform(4).between(0.5, 0.1).times(&sde)?;   // 0.5, 0.4, ..., 0.1
//! assert!((part[1] - 0.4).abs() < 1e-15);
//! let given = TimeGrid::Times(vec![1.0, 0.5, 0.01]);
//! assert_eq!(given.times(&sde)?, [1.0, 0.5, 0.01]);
//! assert!(TimeGrid::Times(vec![1.0, 1.5]).times(&sde).is_err());     // not decreasing
//! # Ok(()) }
//! ```

use std::fmt;

use crate::error::{invalid, Result};
use crate::sde::GaussianKernel;

/// How the `steps + 1` times between `T` and `t_min` are spaced.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum GridKind {
    /// Uniform in `t`.
    Uniform,
    /// Uniform in `sqrt(t)` (denser near `t_min`), as DDIM's quadratic schedule.
    Quadratic,
    /// Uniform in the half log-SNR `λ = ln(a/b)` (DPM-Solver's choice).
    LogSnr,
    /// Karras et al.'s σ grid, `σ_i = (σ_max^(1/ρ) + i/N (σ_min^(1/ρ) − σ_max^(1/ρ)))^ρ`
    /// with `σ = b/a = exp(−λ)`, mapped back to `t`.
    Karras {
        /// ρ, 7 in the paper.
        rho: f64,
    },
}

impl GridKind {
    /// Every kind with its name and a description (Karras with ρ = 7).
    pub const ALL: [(GridKind, &'static str, &'static str); 4] = [
        (GridKind::Uniform, "uniform", "uniform in t"),
        (
            GridKind::Quadratic,
            "quadratic",
            "uniform in sqrt(t), denser near t_min (DDIM's quadratic)",
        ),
        (
            GridKind::LogSnr,
            "logsnr",
            "uniform in the half log-SNR (DPM-Solver's choice)",
        ),
        (
            GridKind::Karras { rho: 7.0 },
            "karras",
            "Karras et al.'s sigma grid, rho = 7 (EDM)",
        ),
    ];

    /// The name (`uniform`, `quadratic`, `logsnr`, `karras`).
    pub fn name(self) -> &'static str {
        match self {
            GridKind::Uniform => "uniform",
            GridKind::Quadratic => "quadratic",
            GridKind::LogSnr => "logsnr",
            GridKind::Karras { .. } => "karras",
        }
    }

    /// The kind named `name` (`karras` has ρ = 7).
    pub fn from_name(name: &str) -> Option<GridKind> {
        GridKind::ALL
            .iter()
            .find(|(_, n, _)| *n == name)
            .map(|(k, _, _)| *k)
    }

    /// The grid a sampler uses on `sde` unless told otherwise: Karras (ρ = 7) where the
    /// time is EDM's `σ` itself (`a ≡ 1`, `b(t) = t`: uniform steps in `t` waste the
    /// small-σ end), uniform otherwise.
    pub fn default_for<S: GaussianKernel + ?Sized>(sde: &S) -> GridKind {
        let (lo, hi) = sde.time_range();
        let sigma_is_t = [lo, 0.5 * (lo + hi), hi]
            .iter()
            .all(|&t| sde.mean_coef(t) == 1.0 && (sde.std(t) - t).abs() <= 1e-12 * t);
        if sigma_is_t {
            GridKind::Karras { rho: 7.0 }
        } else {
            GridKind::Uniform
        }
    }
}

/// The times a sampler steps through (see the module docs).
#[derive(Clone, Debug, PartialEq)]
pub enum TimeGrid {
    /// `steps` steps spaced by `kind` from `t_max` down to `t_min` (each defaulting to the
    /// end of the SDE's time range).
    Spaced {
        /// The spacing.
        kind: GridKind,
        /// The number of steps (for RK45: the initial step is the span over `steps`).
        steps: usize,
        /// The first time (default: the SDE's `T`).
        t_max: Option<f64>,
        /// The last time (default: the SDE's `t_min`).
        t_min: Option<f64>,
    },
    /// `steps` of a discrete schedule's `num_train` training timesteps, subsampled with
    /// `spacing` (timestep `i` at `t = (i + 1)/num_train`).
    Discrete {
        /// The schedule's number of training timesteps.
        num_train: usize,
        /// The number of sampling steps.
        steps: usize,
        /// How the timesteps are chosen.
        spacing: Spacing,
    },
    /// Explicit times, strictly decreasing.
    Times(Vec<f64>),
}

impl TimeGrid {
    /// `steps` steps of `kind` over the SDE's whole time range.
    pub fn new(kind: GridKind, steps: usize) -> TimeGrid {
        TimeGrid::Spaced {
            kind,
            steps,
            t_max: None,
            t_min: None,
        }
    }

    /// `steps` steps uniform in `t` over the SDE's whole time range.
    pub fn uniform(steps: usize) -> TimeGrid {
        TimeGrid::new(GridKind::Uniform, steps)
    }

    /// The same spacing from `t_max` down to `t_min` (explicit and discrete grids are
    /// returned unchanged).
    pub fn between(self, t_max: f64, t_min: f64) -> TimeGrid {
        match self {
            TimeGrid::Spaced { kind, steps, .. } => TimeGrid::Spaced {
                kind,
                steps,
                t_max: Some(t_max),
                t_min: Some(t_min),
            },
            other => other,
        }
    }

    /// The number of steps.
    pub fn steps(&self) -> usize {
        match self {
            TimeGrid::Spaced { steps, .. } | TimeGrid::Discrete { steps, .. } => *steps,
            TimeGrid::Times(ts) => ts.len().saturating_sub(1),
        }
    }

    /// The first and last times on `sde` without building the grid (what an adaptive
    /// solver needs), checked to lie inside the SDE's time range.
    pub fn span<S: GaussianKernel + ?Sized>(&self, sde: &S) -> Result<(f64, f64)> {
        let (t_max, t_min) = match self {
            TimeGrid::Spaced { t_max, t_min, .. } => {
                let (lo, hi) = sde.time_range();
                (t_max.unwrap_or(hi), t_min.unwrap_or(lo))
            }
            _ => {
                let ts = self.times(sde)?;
                (ts[0], ts[ts.len() - 1])
            }
        };
        check_range(sde, t_max, t_min)?;
        if self.steps() == 0 {
            return Err(invalid!("the time grid needs at least 1 step, got 0"));
        }
        Ok((t_max, t_min))
    }

    /// The times on `sde`, decreasing, `steps + 1` of them: the one place a grid is
    /// checked (at least one step, finite, strictly decreasing, inside the SDE's range).
    pub fn times<S: GaussianKernel + ?Sized>(&self, sde: &S) -> Result<Vec<f64>> {
        let ts = match self {
            TimeGrid::Spaced {
                kind,
                steps,
                t_max,
                t_min,
            } => {
                let (lo, hi) = sde.time_range();
                spaced(sde, *kind, *steps, t_min.unwrap_or(lo), t_max.unwrap_or(hi))?
            }
            TimeGrid::Discrete {
                num_train,
                steps,
                spacing,
            } => discrete_times(*num_train, *steps, *spacing)?,
            TimeGrid::Times(ts) => ts.clone(),
        };
        if ts.len() < 2 {
            return Err(invalid!("the time grid needs at least 1 step, got 0"));
        }
        if let Some(t) = ts.iter().find(|t| !t.is_finite()) {
            return Err(invalid!("the time grid holds the non-finite time {t}"));
        }
        if let Some(w) = ts.windows(2).find(|w| w[1] >= w[0]) {
            return Err(invalid!(
                "the time grid must be strictly decreasing: {} is followed by {}",
                w[0],
                w[1]
            ));
        }
        check_range(sde, ts[0], ts[ts.len() - 1])?;
        Ok(ts)
    }
}

impl fmt::Display for TimeGrid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TimeGrid::Spaced { kind, steps, .. } => match kind {
                GridKind::Uniform => write!(f, "uniform grid, {steps} steps"),
                GridKind::Quadratic => write!(f, "quadratic grid, {steps} steps"),
                GridKind::LogSnr => write!(f, "log-SNR grid, {steps} steps"),
                GridKind::Karras { rho } => write!(f, "Karras grid (rho = {rho}), {steps} steps"),
            },
            TimeGrid::Discrete {
                num_train,
                steps,
                spacing,
            } => write!(
                f,
                "{} spacing of {num_train} timesteps, {steps} steps",
                spacing.name()
            ),
            TimeGrid::Times(ts) => write!(f, "{} given times", ts.len()),
        }
    }
}

/// Refuses a range `[t_min, t_max]` that is empty or not inside the SDE's time range.
fn check_range<S: GaussianKernel + ?Sized>(sde: &S, t_max: f64, t_min: f64) -> Result<()> {
    let (lo, hi) = sde.time_range();
    if !(t_min >= lo - 1e-12 && t_max <= hi + 1e-12 && t_min < t_max) {
        return Err(invalid!(
            "time range [{t_min}, {t_max}] is not inside the SDE's [{lo}, {hi}]"
        ));
    }
    Ok(())
}

/// `steps + 1` times from `t_max` down to `t_min` spaced by `kind`.
fn spaced<S: GaussianKernel + ?Sized>(
    sde: &S,
    kind: GridKind,
    steps: usize,
    t_min: f64,
    t_max: f64,
) -> Result<Vec<f64>> {
    if steps == 0 {
        return Err(invalid!("the time grid needs at least 1 step, got 0"));
    }
    check_range(sde, t_max, t_min)?;
    crate::limits::check(
        format_args!("a time grid of {steps} steps"),
        crate::limits::grid_bytes(steps),
    )?;
    let n = steps as f64;
    let frac = |i: usize| i as f64 / n;
    let mut ts: Vec<f64> = match kind {
        GridKind::Uniform => (0..=steps)
            .map(|i| t_max + frac(i) * (t_min - t_max))
            .collect(),
        GridKind::Quadratic => {
            let (a, b) = (t_max.sqrt(), t_min.sqrt());
            (0..=steps)
                .map(|i| {
                    let s = a + frac(i) * (b - a);
                    s * s
                })
                .collect()
        }
        GridKind::LogSnr => {
            let (l0, l1) = (sde.log_snr(t_max), sde.log_snr(t_min));
            (0..=steps)
                .map(|i| sde.t_of_log_snr(l0 + frac(i) * (l1 - l0)))
                .collect()
        }
        GridKind::Karras { rho } => {
            if rho.is_nan() || rho <= 0.0 {
                return Err(invalid!("karras grid: rho must be > 0, got {rho}"));
            }
            let (s0, s1) = (sde.sigma(t_max), sde.sigma(t_min));
            let (a, b) = (s0.powf(1.0 / rho), s1.powf(1.0 / rho));
            (0..=steps)
                .map(|i| {
                    let sigma = (a + frac(i) * (b - a)).powf(rho);
                    sde.t_of_log_snr(-sigma.ln())
                })
                .collect()
        }
    };
    // Pin the ends exactly (inversions are accurate to ~1e-12, not to the bit).
    ts[0] = t_max;
    ts[steps] = t_min;
    if ts.iter().any(|t| !t.is_finite()) || ts.windows(2).any(|w| w[1] >= w[0]) {
        return Err(invalid!(
            "the {} grid with {steps} steps is not strictly decreasing on [{t_min}, {t_max}]",
            kind.name()
        ));
    }
    Ok(ts)
}

/// How a discrete schedule's `num_train` timesteps are subsampled to `steps`
/// (the conventions of the DDIM/diffusers schedulers); returned decreasing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spacing {
    /// `[0, k, 2k, ...] + offset`, `k = num_train / steps`.
    Leading,
    /// `num_train − 1, num_train − 1 − k, ...` (rounded), ending near 0.
    Trailing,
    /// `round(linspace(0, num_train − 1, steps))`.
    Linspace,
}

impl Spacing {
    /// Every spacing with its name and a description.
    pub const ALL: [(Spacing, &'static str, &'static str); 3] = [
        (
            Spacing::Leading,
            "leading",
            "0, k, 2k, ... with k = num_train/steps (DDIM, diffusers' default)",
        ),
        (
            Spacing::Trailing,
            "trailing",
            "num_train - 1 down in steps of num_train/steps (Lin et al. 2023)",
        ),
        (
            Spacing::Linspace,
            "linspace",
            "round(linspace(0, num_train - 1, steps))",
        ),
    ];

    /// The name.
    pub fn name(self) -> &'static str {
        match self {
            Spacing::Leading => "leading",
            Spacing::Trailing => "trailing",
            Spacing::Linspace => "linspace",
        }
    }

    /// The spacing named `name`.
    pub fn from_name(name: &str) -> Option<Spacing> {
        Spacing::ALL
            .iter()
            .find(|(_, n, _)| *n == name)
            .map(|(s, _, _)| *s)
    }
}

/// `steps` timestep indices of a `num_train`-step schedule, decreasing.
pub fn discrete_timesteps(num_train: usize, steps: usize, spacing: Spacing) -> Result<Vec<usize>> {
    if steps == 0 || steps > num_train {
        return Err(invalid!(
            "steps must be in 1..={num_train} for a {num_train}-step schedule, got {steps}"
        ));
    }
    let mut ts: Vec<usize> = match spacing {
        Spacing::Leading => {
            let k = num_train / steps;
            (0..steps).map(|i| i * k).collect()
        }
        Spacing::Trailing => {
            let k = num_train as f64 / steps as f64;
            (0..steps)
                .map(|i| (num_train as f64 - i as f64 * k).round() as usize - 1)
                .collect()
        }
        Spacing::Linspace => (0..steps)
            .map(|i| {
                if steps == 1 {
                    0
                } else {
                    (i as f64 * (num_train - 1) as f64 / (steps - 1) as f64).round() as usize
                }
            })
            .collect(),
    };
    ts.sort_unstable_by(|a, b| b.cmp(a));
    ts.dedup();
    Ok(ts)
}

/// The sampling times of a discrete schedule subsampled to `steps` with `spacing`:
/// timestep `i` sits at `t = (i + 1)/N` (see [`crate::sde::discrete::DiscreteSchedule`]), and
/// the grid ends at timestep 0 (`t = 1/N`), where DDIM's last step lands.
pub fn discrete_times(num_train: usize, steps: usize, spacing: Spacing) -> Result<Vec<f64>> {
    let idx = discrete_timesteps(num_train, steps, spacing)?;
    let n = num_train as f64;
    let mut ts: Vec<f64> = idx.iter().map(|&i| (i + 1) as f64 / n).collect();
    if idx.last() != Some(&0) {
        ts.push(1.0 / n);
    }
    if ts.len() < 2 {
        return Err(invalid!(
            "{steps} step(s) with {spacing:?} spacing leave nothing to integrate"
        ));
    }
    Ok(ts)
}
