//! Time grids for samplers: decreasing from `T` to `t_min`, `steps + 1` points.

use crate::error::{invalid, Result};
use crate::sde::GaussianKernel;

/// How the `steps + 1` times between `T` and `t_min` are spaced.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Grid {
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

impl Grid {
    /// Every grid with its CLI name.
    pub const NAMES: [&'static str; 4] = ["uniform", "quadratic", "logsnr", "karras"];

    /// Looks a grid up by CLI name (`karras` has ρ = 7).
    pub fn from_name(name: &str) -> Option<Grid> {
        Some(match name {
            "uniform" => Grid::Uniform,
            "quadratic" => Grid::Quadratic,
            "logsnr" => Grid::LogSnr,
            "karras" => Grid::Karras { rho: 7.0 },
            _ => return None,
        })
    }
}

/// `steps + 1` times from `t_max` down to `t_min` on `grid`.
pub fn time_grid<S: GaussianKernel + ?Sized>(
    sde: &S,
    grid: Grid,
    steps: usize,
    t_min: f64,
    t_max: f64,
) -> Result<Vec<f64>> {
    if steps == 0 {
        return Err(invalid!("steps must be at least 1"));
    }
    let (lo, hi) = sde.time_range();
    if !(t_min >= lo - 1e-12 && t_max <= hi + 1e-12 && t_min < t_max) {
        return Err(invalid!(
            "time range [{t_min}, {t_max}] is not inside the SDE's [{lo}, {hi}]"
        ));
    }
    let n = steps as f64;
    let frac = |i: usize| i as f64 / n;
    let ts: Vec<f64> = match grid {
        Grid::Uniform => (0..=steps)
            .map(|i| t_max + frac(i) * (t_min - t_max))
            .collect(),
        Grid::Quadratic => {
            let (a, b) = (t_max.sqrt(), t_min.sqrt());
            (0..=steps)
                .map(|i| {
                    let s = a + frac(i) * (b - a);
                    s * s
                })
                .collect()
        }
        Grid::LogSnr => {
            let (l0, l1) = (sde.log_snr(t_max), sde.log_snr(t_min));
            (0..=steps)
                .map(|i| sde.t_of_log_snr(l0 + frac(i) * (l1 - l0)))
                .collect()
        }
        Grid::Karras { rho } => {
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
    let mut ts = ts;
    // Pin the ends exactly (inversions are accurate to ~1e-12, not to the bit).
    ts[0] = t_max;
    ts[steps] = t_min;
    if ts.iter().any(|t| !t.is_finite()) || ts.windows(2).any(|w| w[1] >= w[0]) {
        return Err(invalid!(
            "the {grid:?} grid with {steps} steps is not strictly decreasing on [{t_min}, {t_max}]"
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
    /// Every spacing with its CLI name.
    pub const NAMES: [&'static str; 3] = ["leading", "trailing", "linspace"];

    /// Looks a spacing up by CLI name.
    pub fn from_name(name: &str) -> Option<Spacing> {
        Some(match name {
            "leading" => Spacing::Leading,
            "trailing" => Spacing::Trailing,
            "linspace" => Spacing::Linspace,
            _ => return None,
        })
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
