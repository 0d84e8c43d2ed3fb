//! The discrete DDPM β-table schedules that pretrained DDPM/DDIM models use, embedded in
//! continuous time so the same samplers run on them.
//!
//! A table `β_0 … β_{N−1}` gives `ᾱ_i = Π_{j≤i}(1 − β_j)`. Index `i` (0-based) sits at
//! time `t_i = (i + 1)/N`; `ln ᾱ` is interpolated piecewise linearly in `t` through
//! `(0, 0)` and the knots `(t_i, ln ᾱ_i)`. Writing `ℓ(t)` for that interpolant:
//!
//! - `a(t) = exp(ℓ/2)`, `b(t) = √(1 − e^ℓ)`, so `a(t_i)² = ᾱ_i` at every knot;
//! - `F(t) = ℓ'/2` and `g(t)² = −ℓ'`, constant on each segment `(t_{i−1}, t_i]`;
//! - `λ(t) = ln(a/b) = ½ℓ − ½ln(1 − e^ℓ)`, strictly decreasing, inverted exactly.
//!
//! ```
//! use sbdm_runtime::sde::discrete::{BetaSchedule, DiscreteSchedule};
//! use sbdm_runtime::sde::{GaussianKernel, Sde};
//!
//! let ddpm = DiscreteSchedule::new(BetaSchedule::linear(), 1000)?;
//! assert_eq!(ddpm.num_steps(), 1000);
//! assert_eq!(ddpm.time_range(), (1e-3, 1.0));
//! // At the knot of index 499, a(t)² is ᾱ_499.
//! let t = ddpm.timestep_to_t(499);
//! assert!((ddpm.mean_coef(t).powi(2) / ddpm.alpha_bar(499) - 1.0).abs() < 1e-12);
//! assert!((ddpm.t_of_log_snr(ddpm.log_snr(t)) - t).abs() < 1e-12);
//! # Ok::<(), sbdm_runtime::sde::discrete::ScheduleError>(())
//! ```

use crate::sde::{GaussianKernel, Sde};

/// Why a β table was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScheduleError {
    /// The table is empty (`num_train_timesteps == 0`).
    #[error("a discrete schedule needs at least one timestep")]
    NoTimesteps,
    /// A β is not in the open interval (0, 1) (or is NaN).
    #[error("beta[{index}] = {beta} is outside (0, 1)")]
    BetaOutOfRange {
        /// Its index in the table.
        index: usize,
        /// Its value.
        beta: f64,
    },
}

/// How a β table is generated (the names and defaults of the `diffusers` schedulers).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BetaSchedule {
    /// `β_i = linspace(beta_start, beta_end, N)_i` (DDPM: 1e-4 … 0.02).
    Linear {
        /// `β_0`.
        beta_start: f64,
        /// `β_{N−1}`.
        beta_end: f64,
    },
    /// `β_i = linspace(√beta_start, √beta_end, N)_i²` (Stable Diffusion: 0.00085 … 0.012).
    ScaledLinear {
        /// `β_0`.
        beta_start: f64,
        /// `β_{N−1}`.
        beta_end: f64,
    },
    /// Nichol & Dhariwal's cosine schedule: with `ᾱ(t) = cos((t + s)/(1 + s)·π/2)²`,
    /// `β_i = min(1 − ᾱ((i+1)/N)/ᾱ(i/N), max_beta)` (defaults `s = 0.008`, `0.999`).
    SquaredCosCapV2 {
        /// The offset `s` that keeps `β_0` from vanishing.
        s: f64,
        /// The cap on each β (the last would otherwise be 1).
        max_beta: f64,
    },
}

impl BetaSchedule {
    /// DDPM's linear schedule, `β` from `1e-4` to `0.02`.
    pub fn linear() -> Self {
        Self::Linear {
            beta_start: 1e-4,
            beta_end: 0.02,
        }
    }

    /// The scaled-linear schedule of latent diffusion, `√β` from `√0.00085` to `√0.012`.
    pub fn scaled_linear() -> Self {
        Self::ScaledLinear {
            beta_start: 0.00085,
            beta_end: 0.012,
        }
    }

    /// The cosine schedule with `s = 0.008` and `max_beta = 0.999`.
    pub fn squaredcos_cap_v2() -> Self {
        Self::SquaredCosCapV2 {
            s: 0.008,
            max_beta: 0.999,
        }
    }

    /// The table `β_0 … β_{n−1}`, in f64, unchecked (see [`DiscreteSchedule::new`]).
    pub fn betas(&self, n: usize) -> Vec<f64> {
        match *self {
            Self::Linear {
                beta_start,
                beta_end,
            } => linspace(beta_start, beta_end, n),
            Self::ScaledLinear {
                beta_start,
                beta_end,
            } => linspace(beta_start.sqrt(), beta_end.sqrt(), n)
                .into_iter()
                .map(|r| r * r)
                .collect(),
            Self::SquaredCosCapV2 { s, max_beta } => {
                let alpha_bar = |t: f64| {
                    let c = ((t + s) / (1.0 + s) * std::f64::consts::FRAC_PI_2).cos();
                    c * c
                };
                // Float division throughout: (i + 1)/N as integers would be 0.
                let nf = n as f64;
                (0..n)
                    .map(|i| {
                        let (t1, t2) = (i as f64 / nf, (i + 1) as f64 / nf);
                        (1.0 - alpha_bar(t2) / alpha_bar(t1)).min(max_beta)
                    })
                    .collect()
            }
        }
    }
}

impl Default for BetaSchedule {
    /// [`BetaSchedule::linear`].
    fn default() -> Self {
        Self::linear()
    }
}

/// NumPy's `linspace(start, end, n)`: endpoints included, `[start]` for `n = 1`.
fn linspace(start: f64, end: f64, n: usize) -> Vec<f64> {
    match n {
        0 => Vec::new(),
        1 => vec![start],
        _ => {
            let last = (n - 1) as f64;
            let mut v: Vec<f64> = (0..n)
                .map(|i| start + (end - start) * (i as f64 / last))
                .collect();
            v[n - 1] = end;
            v
        }
    }
}

/// A discrete β table with its cumulative products, embedded in continuous time.
///
/// Implements [`Sde`] and [`GaussianKernel`] with the piecewise-linear `ln ᾱ(t)`
/// embedding described in the [module docs](self), on `time_range() = (1/N, 1)`.
/// Outside `[0, 1]` the end segments are extended linearly: `b` is `NaN` for `t < 0`,
/// and everything stays finite and monotone for `t > 1`.
#[derive(Debug, Clone, PartialEq)]
pub struct DiscreteSchedule {
    kind: Option<BetaSchedule>,
    betas: Vec<f64>,
    /// `ᾱ_i = Π_{j≤i}(1 − β_j)`, a running product in f64.
    alphas_cumprod: Vec<f64>,
    /// `ln ᾱ_i = Σ_{j≤i} ln(1 − β_j)`, which cannot underflow.
    log_alphas_cumprod: Vec<f64>,
}

impl DiscreteSchedule {
    /// The table of `kind` with `num_train_timesteps` entries.
    ///
    /// # Errors
    /// [`ScheduleError::NoTimesteps`] for `0` steps; [`ScheduleError::BetaOutOfRange`]
    /// if the parameters give a β outside (0, 1), e.g. `beta_start = 0`.
    pub fn new(kind: BetaSchedule, num_train_timesteps: usize) -> Result<Self, ScheduleError> {
        let mut schedule = Self::from_betas(kind.betas(num_train_timesteps))?;
        schedule.kind = Some(kind);
        Ok(schedule)
    }

    /// A schedule from an explicit β table (as shipped in a pretrained model's config).
    ///
    /// # Errors
    /// [`ScheduleError::NoTimesteps`] for an empty table; [`ScheduleError::BetaOutOfRange`]
    /// for the first β that is not in (0, 1).
    pub fn from_betas(betas: Vec<f64>) -> Result<Self, ScheduleError> {
        if betas.is_empty() {
            return Err(ScheduleError::NoTimesteps);
        }
        if let Some((index, &beta)) = betas
            .iter()
            .enumerate()
            .find(|(_, &b)| !(b > 0.0 && b < 1.0))
        {
            return Err(ScheduleError::BetaOutOfRange { index, beta });
        }
        let mut alphas_cumprod = Vec::with_capacity(betas.len());
        let mut log_alphas_cumprod = Vec::with_capacity(betas.len());
        let (mut prod, mut log_sum) = (1.0_f64, 0.0_f64);
        for &beta in &betas {
            prod *= 1.0 - beta;
            log_sum += (-beta).ln_1p();
            alphas_cumprod.push(prod);
            log_alphas_cumprod.push(log_sum);
        }
        Ok(Self {
            kind: None,
            betas,
            alphas_cumprod,
            log_alphas_cumprod,
        })
    }

    /// The generator of the table, or `None` for [`from_betas`](Self::from_betas).
    pub fn kind(&self) -> Option<BetaSchedule> {
        self.kind
    }

    /// `β_0 … β_{N−1}`.
    pub fn betas(&self) -> &[f64] {
        &self.betas
    }

    /// `ᾱ_0 … ᾱ_{N−1}`, `ᾱ_i = Π_{j≤i}(1 − β_j)`.
    pub fn alphas_cumprod(&self) -> &[f64] {
        &self.alphas_cumprod
    }

    /// `ᾱ_i`.
    ///
    /// # Panics
    /// If `i >= num_steps()`, like slice indexing.
    pub fn alpha_bar(&self, i: usize) -> f64 {
        self.alphas_cumprod[i]
    }

    /// `N`, the number of training timesteps.
    pub fn num_steps(&self) -> usize {
        self.betas.len()
    }

    /// `t_i = (i + 1)/N`: the continuous time of index `i` (any `i`, no bounds check).
    pub fn timestep_to_t(&self, i: usize) -> f64 {
        (i + 1) as f64 / self.num_steps() as f64
    }

    /// The index whose time is nearest `t`: `round(t·N) − 1`, clamped to `0 … N−1`
    /// (`0` for `NaN`). Inverts [`timestep_to_t`](Self::timestep_to_t) exactly.
    pub fn t_to_timestep(&self, t: f64) -> usize {
        let n = self.num_steps();
        let k = (t * n as f64).round();
        if k >= n as f64 {
            n - 1
        } else if k >= 1.0 {
            k as usize - 1
        } else {
            0
        }
    }

    /// `ln ᾱ(t)`: the piecewise-linear interpolant through `(0, 0)` and `(t_i, ln ᾱ_i)`.
    pub fn log_alpha_bar_at(&self, t: f64) -> f64 {
        let k = self.segment(t);
        let (t0, t1) = (self.left_knot(k), self.timestep_to_t(k));
        let (l0, l1) = (self.left_log(k), self.log_alphas_cumprod[k]);
        let w = (t - t0) / (t1 - t0);
        // Exact at both knots: w = 0 gives l0, w = 1 gives l1.
        (1.0 - w) * l0 + w * l1
    }

    /// The segment `(t_{k−1}, t_k]` holding `t` (a knot belongs to the segment on its
    /// left); `0` for `t ≤ t_0` or `NaN`, `N − 1` for `t > 1`.
    fn segment(&self, t: f64) -> usize {
        let n = self.num_steps();
        if t.is_nan() || t <= self.timestep_to_t(0) {
            return 0;
        }
        if t > self.timestep_to_t(n - 1) {
            return n - 1;
        }
        // A guess from t·N, corrected against the knots as they are computed.
        let mut k = ((t * n as f64).ceil() as usize)
            .saturating_sub(1)
            .min(n - 1);
        while k > 0 && t <= self.timestep_to_t(k - 1) {
            k -= 1;
        }
        while t > self.timestep_to_t(k) {
            k += 1;
        }
        k
    }

    /// `t_{k−1} = k/N` (with `t_{−1} = 0`).
    fn left_knot(&self, k: usize) -> f64 {
        k as f64 / self.num_steps() as f64
    }

    /// `ln ᾱ_{k−1}` (with `ln ᾱ_{−1} = 0`).
    fn left_log(&self, k: usize) -> f64 {
        if k == 0 {
            0.0
        } else {
            self.log_alphas_cumprod[k - 1]
        }
    }

    /// `dℓ/dt` on segment `k`: `(ln ᾱ_k − ln ᾱ_{k−1})·N ≈ N·ln(1 − β_k) < 0`.
    fn slope(&self, k: usize) -> f64 {
        let (t0, t1) = (self.left_knot(k), self.timestep_to_t(k));
        (self.log_alphas_cumprod[k] - self.left_log(k)) / (t1 - t0)
    }
}

impl Default for DiscreteSchedule {
    /// DDPM's linear schedule with 1000 steps.
    fn default() -> Self {
        Self::new(BetaSchedule::linear(), 1000).expect("the DDPM defaults are valid")
    }
}

impl Sde for DiscreteSchedule {
    /// `"DiscreteSchedule"` (see [`DiscreteSchedule::kind`] for the generator).
    fn name(&self) -> &'static str {
        "DiscreteSchedule"
    }

    /// `(1/N, 1)`: from the first knot to the last.
    fn time_range(&self) -> (f64, f64) {
        (self.timestep_to_t(0), 1.0)
    }

    /// `F(t) = ½·dℓ/dt`, so that `a = exp(∫F) = exp(ℓ/2)`.
    fn drift_coef(&self, t: f64) -> f64 {
        0.5 * self.slope(self.segment(t))
    }

    /// `g(t) = √(−dℓ/dt)`.
    fn diffusion(&self, t: f64) -> f64 {
        self.diffusion_sq(t).sqrt()
    }

    /// `g(t)² = −dℓ/dt`.
    ///
    /// From `g² = d(b²)/dt − 2F·b²` with `b² = 1 − e^ℓ` and `F = ℓ'/2`:
    /// `d(b²)/dt = −e^ℓ·ℓ'` and `2F·b² = ℓ'·(1 − e^ℓ)`, so
    /// `g² = −e^ℓ·ℓ' − ℓ' + e^ℓ·ℓ' = −ℓ'`, positive since `ℓ' = N·ln(1 − β) < 0`.
    fn diffusion_sq(&self, t: f64) -> f64 {
        -self.slope(self.segment(t))
    }
}

impl GaussianKernel for DiscreteSchedule {
    /// `a(t) = exp(ℓ(t)/2)`.
    fn mean_coef(&self, t: f64) -> f64 {
        (0.5 * self.log_alpha_bar_at(t)).exp()
    }

    /// `b(t) = √(1 − e^ℓ)`, via `expm1` for accuracy near `t = 0`.
    fn std(&self, t: f64) -> f64 {
        self.variance(t).sqrt()
    }

    /// `b(t)² = −expm1(ℓ(t))`.
    fn variance(&self, t: f64) -> f64 {
        -self.log_alpha_bar_at(t).exp_m1()
    }

    /// `b/a = √(e^{−ℓ} − 1)`.
    fn sigma(&self, t: f64) -> f64 {
        (-self.log_alpha_bar_at(t)).exp_m1().sqrt()
    }

    /// `λ(t) = ½ℓ − ½·ln(−expm1(ℓ))`.
    fn log_snr(&self, t: f64) -> f64 {
        let l = self.log_alpha_bar_at(t);
        0.5 * l - 0.5 * (-l.exp_m1()).ln()
    }

    /// `dλ/dt = ℓ'/(2·(1 − e^ℓ)) = −g²/(2b²)`, exact on each segment.
    fn dlog_snr_dt(&self, t: f64) -> f64 {
        let k = self.segment(t);
        self.slope(k) / (2.0 * self.variance(t))
    }

    /// `λ⁻¹`, exact: `ℓ = ln ᾱ = −ln(1 + e^{−2λ})`, then the linear segment through it.
    ///
    /// `λ → +∞` gives `0`; `λ < λ(1)` extends the last segment past `t = 1`.
    fn t_of_log_snr(&self, lambda: f64) -> f64 {
        if lambda.is_nan() {
            return f64::NAN;
        }
        // ᾱ = sigmoid(2λ), in a form that neither overflows nor cancels.
        let target = if lambda >= 0.0 {
            -(-2.0 * lambda).exp().ln_1p()
        } else {
            2.0 * lambda - (2.0 * lambda).exp().ln_1p()
        };
        if target >= 0.0 {
            return 0.0;
        }
        let n = self.num_steps();
        // ln ᾱ_k is non-increasing: the first knot at or below the target.
        let k = self
            .log_alphas_cumprod
            .partition_point(|&l| l > target)
            .min(n - 1);
        let (t0, t1) = (self.left_knot(k), self.timestep_to_t(k));
        let (l0, l1) = (self.left_log(k), self.log_alphas_cumprod[k]);
        if l1 == l0 {
            // A flat segment (β below rounding): every t in it has this λ.
            return t1;
        }
        let w = (l0 - target) / (l0 - l1);
        t0 + w * (t1 - t0)
    }
}
