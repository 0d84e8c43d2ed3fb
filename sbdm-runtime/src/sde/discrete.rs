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
//! ## Zero terminal SNR
//!
//! Lin et al. (2023), "Common Diffusion Noise Schedules and Sample Steps are Flawed",
//! rescale a table so that its last `ᾱ` is exactly 0 ([`rescale_zero_terminal_snr`],
//! [`DiscreteSchedule::zero_terminal_snr`]): `β_{N−1} = 1`, the only β allowed to be 1.
//! Then `ln ᾱ_{N−1} = −∞`, and the last segment `(t_{N−2}, 1]` is interpolated linearly
//! in `a = √ᾱ` instead, from `a_L = √ᾱ_{N−2}` down to exactly `0` at `t = 1`:
//!
//! - `a(t) = a_L·(1 − w)`, `w = (t − t_{N−2})·N`, `b = √(1 − a²)`: continuous at
//!   `t_{N−2}`, pure noise (`a = 0`, `b = 1`) at `t = 1`;
//! - `ȧ = −N·a_L` (constant), `ḃ = −a·ȧ/b`: finite at `t = 1`, where the samplers take
//!   their first step ([`GaussianKernel::is_pure_noise`]);
//! - `F = ȧ/a` and `g² = d(b²)/dt − 2F·b² = −2a·ȧ − 2(ȧ/a)(1 − a²) = −2ȧ/a`, both
//!   diverging at `t = 1`;
//! - `λ = ln(a/b)`, `dλ/dt = ȧ/a + a·ȧ/b² = ȧ/(a·b²) = −g²/(2b²)`, `λ(1) = −∞`; the
//!   inverse is exact here too (`a² = sigmoid(2λ)`, then the line), `t(−∞) = 1`.
//!
//! Every other segment, and every table whose last β is below 1, keeps the `ln ᾱ`
//! interpolation above. Beyond `t = 1` the last segment continues as a line in `a`
//! (`a < 0`, `λ` NaN): nothing lies past pure noise.
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
    /// A β is not in the open interval (0, 1) (or is NaN); only the last may be 1
    /// (a zero-terminal-SNR table).
    #[error("beta[{index}] = {beta} is outside (0, 1){}", only_last_may_be_one(.beta))]
    BetaOutOfRange {
        /// Its index in the table.
        index: usize,
        /// Its value.
        beta: f64,
    },
}

/// The note a β of exactly 1 before the last entry gets.
fn only_last_may_be_one(beta: &f64) -> &'static str {
    if *beta == 1.0 {
        "; only the last beta may be 1 (zero terminal SNR)"
    } else {
        ""
    }
}

/// Lin et al. (2023), Algorithm 1: the table rescaled to zero terminal SNR.
///
/// With `s_i = √ᾱ_i` of `betas`, the new `√ᾱ'_i = s_0·(s_i − s_{N−1})/(s_0 − s_{N−1})`:
/// shifted so the last is `0` and scaled so the first is unchanged (both exactly, as
/// written); then `β'_0 = 1 − ᾱ'_0` and `β'_i = 1 − ᾱ'_i/ᾱ'_{i−1}`, so `β'_{N−1} = 1`
/// exactly. Unchecked, like [`BetaSchedule::betas`]: pass the result to
/// [`DiscreteSchedule::from_betas`] (or use [`DiscreteSchedule::zero_terminal_snr`]). A
/// single-entry table becomes `[1]` (its only `ᾱ` must be 0; nothing is left to keep).
///
/// ```
/// use sbdm_runtime::sde::discrete::{rescale_zero_terminal_snr, DiscreteSchedule};
/// let betas = rescale_zero_terminal_snr(&[0.1, 0.2, 0.3]);
/// assert_eq!(betas[2], 1.0);
/// assert!((betas[0] - 0.1).abs() < 1e-15);
/// let s = DiscreteSchedule::from_betas(betas)?;
/// assert_eq!(s.alpha_bar(2), 0.0);
/// # Ok::<(), sbdm_runtime::sde::discrete::ScheduleError>(())
/// ```
pub fn rescale_zero_terminal_snr(betas: &[f64]) -> Vec<f64> {
    if betas.len() <= 1 {
        return vec![1.0; betas.len()];
    }
    let mut prod = 1.0_f64;
    let sqrt_alpha_bar: Vec<f64> = betas
        .iter()
        .map(|&beta| {
            prod *= 1.0 - beta;
            prod.sqrt()
        })
        .collect();
    let (first, last) = (sqrt_alpha_bar[0], sqrt_alpha_bar[betas.len() - 1]);
    // s_0·((s_i − s_T)/(s_0 − s_T)): exactly s_0 at i = 0 and exactly 0 at i = N − 1.
    let alpha_bar: Vec<f64> = sqrt_alpha_bar
        .iter()
        .map(|&s| {
            let r = first * ((s - last) / (first - last));
            r * r
        })
        .collect();
    let mut rescaled = Vec::with_capacity(betas.len());
    rescaled.push(1.0 - alpha_bar[0]);
    rescaled.extend(alpha_bar.windows(2).map(|w| 1.0 - w[1] / w[0]));
    rescaled
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
/// and everything stays finite and monotone for `t > 1` (unless the table ends at pure
/// noise, `β_{N−1} = 1`: see [zero terminal SNR](self#zero-terminal-snr)).
#[derive(Debug, Clone, PartialEq)]
pub struct DiscreteSchedule {
    kind: Option<BetaSchedule>,
    /// Whether the table of `kind` was rescaled to zero terminal SNR.
    rescaled: bool,
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
    /// if the parameters give a β outside (0, 1), e.g. `beta_start = 0` (the last may be
    /// 1: the cosine schedule uncapped, `max_beta = 1`, ends at pure noise).
    pub fn new(kind: BetaSchedule, num_train_timesteps: usize) -> Result<Self, ScheduleError> {
        let mut schedule = Self::from_betas(kind.betas(num_train_timesteps))?;
        schedule.kind = Some(kind);
        Ok(schedule)
    }

    /// The table of `kind` rescaled to zero terminal SNR ([`rescale_zero_terminal_snr`]):
    /// `ᾱ_{N−1} = 0`, pure noise at `t = 1` (see [the embedding](self#zero-terminal-snr)).
    ///
    /// ```
    /// use sbdm_runtime::sde::discrete::{BetaSchedule, DiscreteSchedule};
    /// use sbdm_runtime::sde::GaussianKernel;
    /// let s = DiscreteSchedule::zero_terminal_snr(BetaSchedule::scaled_linear(), 1000)?;
    /// assert!(s.is_zero_terminal_snr() && s.ends_at_pure_noise());
    /// assert_eq!((s.mean_coef(1.0), s.std(1.0)), (0.0, 1.0));
    /// assert!(s.is_pure_noise(1.0) && s.mean_coef_dt(1.0).is_finite());
    /// # Ok::<(), sbdm_runtime::sde::discrete::ScheduleError>(())
    /// ```
    ///
    /// # Errors
    /// As [`new`](Self::new), for the table before rescaling (or, should rounding make
    /// two `ᾱ` equal, for the rescaled one).
    pub fn zero_terminal_snr(
        kind: BetaSchedule,
        num_train_timesteps: usize,
    ) -> Result<Self, ScheduleError> {
        let table = Self::new(kind, num_train_timesteps)?;
        let mut schedule = Self::from_betas(rescale_zero_terminal_snr(table.betas()))?;
        schedule.kind = Some(kind);
        schedule.rescaled = true;
        Ok(schedule)
    }

    /// A schedule from an explicit β table (as shipped in a pretrained model's config).
    ///
    /// The last β may be exactly 1 (zero terminal SNR: `ᾱ_{N−1} = 0`, pure noise at
    /// `t = 1`); no other may.
    ///
    /// # Errors
    /// [`ScheduleError::NoTimesteps`] for an empty table; [`ScheduleError::BetaOutOfRange`]
    /// for the first β that is not in (0, 1) (or, for the last, in (0, 1]).
    pub fn from_betas(betas: Vec<f64>) -> Result<Self, ScheduleError> {
        if betas.is_empty() {
            return Err(ScheduleError::NoTimesteps);
        }
        let last = betas.len() - 1;
        if let Some((index, &beta)) = betas
            .iter()
            .enumerate()
            .find(|&(i, &b)| !(b > 0.0 && (b < 1.0 || (i == last && b == 1.0))))
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
            rescaled: false,
            betas,
            alphas_cumprod,
            log_alphas_cumprod,
        })
    }

    /// The generator of the table, or `None` for [`from_betas`](Self::from_betas).
    pub fn kind(&self) -> Option<BetaSchedule> {
        self.kind
    }

    /// Whether the table of [`kind`](Self::kind) was rescaled to zero terminal SNR
    /// ([`zero_terminal_snr`](Self::zero_terminal_snr)).
    pub fn is_zero_terminal_snr(&self) -> bool {
        self.rescaled
    }

    /// Whether the table ends at pure noise: `β_{N−1} = 1`, so `ᾱ_{N−1} = 0` and
    /// `a(1) = 0` (a rescaled table, an uncapped cosine table, or such a table given to
    /// [`from_betas`](Self::from_betas)).
    pub fn ends_at_pure_noise(&self) -> bool {
        self.betas[self.betas.len() - 1] == 1.0
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

    /// `ln ᾱ(t)`: the piecewise-linear interpolant through `(0, 0)` and `(t_i, ln ᾱ_i)`;
    /// on the last segment of a table that ends at pure noise, `2·ln a(t)` (`−∞` at 1).
    pub fn log_alpha_bar_at(&self, t: f64) -> f64 {
        if let Some((a, _)) = self.pure_noise_segment(t) {
            return 2.0 * a.ln();
        }
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

    /// On the last segment `(t_{N−2}, 1]` (and beyond) of a table that ends at pure
    /// noise: `(a(t), ȧ)`, with `a` linear from `a_L = exp(½·ln ᾱ_{N−2})` at `t_{N−2}`
    /// (the value the segment before ends on) to exactly `0` at `t = 1`. `None` elsewhere
    /// and on every other table, whose formulas are the `ln ᾱ` interpolant's.
    fn pure_noise_segment(&self, t: f64) -> Option<(f64, f64)> {
        let k = self.num_steps() - 1;
        if !self.ends_at_pure_noise() || self.segment(t) != k {
            return None;
        }
        let (t0, t1) = (self.left_knot(k), self.timestep_to_t(k));
        let a_left = (0.5 * self.left_log(k)).exp();
        // w = 1 exactly at t = t1 = 1, so a(1) = 0 exactly.
        let w = (t - t0) / (t1 - t0);
        Some((a_left * (1.0 - w), -a_left / (t1 - t0)))
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

    /// `F(t) = ½·dℓ/dt`, so that `a = exp(∫F) = exp(ℓ/2)`; `ȧ/a` on a pure-noise last
    /// segment (`−∞` at `t = 1`).
    fn drift_coef(&self, t: f64) -> f64 {
        if let Some((a, da)) = self.pure_noise_segment(t) {
            return da / a;
        }
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
    ///
    /// On a pure-noise last segment, `b² = 1 − a²` and `F = ȧ/a` give
    /// `g² = −2a·ȧ − 2(ȧ/a)(1 − a²) = −2ȧ/a` (`+∞` at `t = 1`).
    fn diffusion_sq(&self, t: f64) -> f64 {
        if let Some((a, da)) = self.pure_noise_segment(t) {
            return -2.0 * da / a;
        }
        -self.slope(self.segment(t))
    }
}

impl GaussianKernel for DiscreteSchedule {
    /// `a(t) = exp(ℓ(t)/2)` (linear on a pure-noise last segment, `0` at `t = 1`).
    fn mean_coef(&self, t: f64) -> f64 {
        if let Some((a, _)) = self.pure_noise_segment(t) {
            return a;
        }
        (0.5 * self.log_alpha_bar_at(t)).exp()
    }

    /// `b(t) = √(1 − e^ℓ)`, via `expm1` for accuracy near `t = 0`.
    fn std(&self, t: f64) -> f64 {
        self.variance(t).sqrt()
    }

    /// `b(t)² = −expm1(ℓ(t))` (`(1 − a)(1 + a)` on a pure-noise last segment).
    fn variance(&self, t: f64) -> f64 {
        if let Some((a, _)) = self.pure_noise_segment(t) {
            return (1.0 - a) * (1.0 + a);
        }
        -self.log_alpha_bar_at(t).exp_m1()
    }

    /// `b/a = √(e^{−ℓ} − 1)` (`∞` at a pure-noise end).
    fn sigma(&self, t: f64) -> f64 {
        if let Some((a, _)) = self.pure_noise_segment(t) {
            return self.variance(t).sqrt() / a;
        }
        (-self.log_alpha_bar_at(t)).exp_m1().sqrt()
    }

    /// `λ(t) = ½ℓ − ½·ln(−expm1(ℓ))` (`ln a − ½·ln b²` on a pure-noise last segment,
    /// `−∞` at `t = 1`).
    fn log_snr(&self, t: f64) -> f64 {
        if let Some((a, _)) = self.pure_noise_segment(t) {
            return a.ln() - 0.5 * self.variance(t).ln();
        }
        let l = self.log_alpha_bar_at(t);
        0.5 * l - 0.5 * (-l.exp_m1()).ln()
    }

    /// `dλ/dt = ℓ'/(2·(1 − e^ℓ)) = −g²/(2b²)`, exact on each segment (`ȧ/(a·b²)` on a
    /// pure-noise last segment).
    fn dlog_snr_dt(&self, t: f64) -> f64 {
        if let Some((a, da)) = self.pure_noise_segment(t) {
            return da / (a * self.variance(t));
        }
        let k = self.segment(t);
        self.slope(k) / (2.0 * self.variance(t))
    }

    /// `λ⁻¹`, exact: `ℓ = ln ᾱ = −ln(1 + e^{−2λ})`, then the linear segment through it
    /// (on a pure-noise last segment, the line in `a = e^{ℓ/2}`).
    ///
    /// `λ → +∞` gives `0`; `λ < λ(1)` extends the last segment past `t = 1` (on a table
    /// that ends at pure noise, `λ(1) = −∞` and `t(−∞) = 1`).
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
        if k == n - 1 && self.ends_at_pure_noise() {
            // a = a_L·(1 − w): w = 1 − a/a_L, exactly 1 (t = 1) at a = 0 (λ = −∞).
            let ratio = (0.5 * (target - self.left_log(k))).exp();
            return t0 + (1.0 - ratio) * (t1 - t0);
        }
        let (l0, l1) = (self.left_log(k), self.log_alphas_cumprod[k]);
        if l1 == l0 {
            // A flat segment (β below rounding): every t in it has this λ.
            return t1;
        }
        let w = (l0 - target) / (l0 - l1);
        t0 + w * (t1 - t0)
    }

    /// `ȧ = F·a` (the trait's default), or on a pure-noise last segment the constant
    /// slope `−N·a_L`, finite at `t = 1` where `F` is not.
    fn mean_coef_dt(&self, t: f64) -> f64 {
        if let Some((_, da)) = self.pure_noise_segment(t) {
            return da;
        }
        super::mean_rate_from_drift(self, t)
    }

    /// `ḃ = (g² + 2F·b²)/(2b)` (the trait's default), or on a pure-noise last segment
    /// `−a·ȧ/b` (from `b² = 1 − a²`), `0` at `t = 1`.
    fn std_dt(&self, t: f64) -> f64 {
        if let Some((a, da)) = self.pure_noise_segment(t) {
            return -a * da / self.variance(t).sqrt();
        }
        super::std_rate_from_variance(self, t)
    }
}
