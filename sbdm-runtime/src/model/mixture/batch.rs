//! The mixture's batched evaluation: every row of a batch at once, over contiguous
//! memory, on all cores.
//!
//! At one time the diffused mixture `p_t = Σ w_k N(a μ_k, v_k I)`, `v_k = a² s_k² + b²`,
//! is a handful of constants ([`Diffused`]: the scaled means `a μ_k`, `1/v_k` and the
//! log-normalisers `ln w_k − (D/2) ln(2π v_k)`), computed once per distinct time instead
//! of once per row. Rows are then taken [`BLOCK`] at a time, transposed into columns, so
//! that every inner loop runs over the block's rows with unit stride: the squared
//! distances, the log-terms, their running maximum, the exponentials ([`crate::simd::exp`])
//! and the posterior-weighted sums all compile to SIMD instructions (AVX2 when the CPU has
//! it, chosen at run time; the same results bit for bit without it). Parts of the batch
//! run on parallel threads ([`crate::parallel`]).
//!
//! The point-wise functions of [`GaussianMixture`] (`score_at`, `log_prob_at`,
//! `class_posterior_at`) are the straightforward form these are tested against.

use super::GaussianMixture;
use crate::error::Result;
use crate::parallel;
use crate::simd::exp;

/// Rows per block: the width of the columns the inner loops run over.
const BLOCK: usize = 32;
/// Rows below which a part is not worth a thread of its own.
const MIN_ROWS_PER_THREAD: usize = 2048;

/// A float type the kernel reads and writes (computing in f64).
pub(super) trait Real: Copy + Default + Send + Sync + 'static {
    fn to_f64(self) -> f64;
    fn from_f64(v: f64) -> Self;
}

impl Real for f32 {
    #[inline(always)]
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v as f32
    }
}

impl Real for f64 {
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v
    }
}

/// What to evaluate at every row.
#[derive(Clone, Copy, Debug)]
pub(super) enum Quantity<'a> {
    /// `∇ log p_t(x)`: D values per row.
    Score,
    /// The score of row `i`'s component `classes[i]`, `−(x − a μ_k)/v_k`: D values.
    ComponentScore(&'a [u32]),
    /// `∇ log p_t(k | x)` = the component's score − the mixture's: D values.
    ClassLogProbGrad(&'a [u32]),
    /// `log p_t(x)`: 1 value.
    LogDensity,
    /// `p_t(k | x)` for every component: K values.
    Posterior,
    /// The posterior mean `E[x_0 | x_t = x]`: D values (finite where `a = 0`, where it is
    /// the data mean).
    PosteriorMean,
    /// Row `i`'s component `classes[i]`'s posterior mean `μ_k + gain_k·(x − a μ_k)`: D values.
    ComponentPosteriorMean(&'a [u32]),
}

impl Quantity<'_> {
    /// Values per row.
    pub(super) fn width(&self, dim: usize, components: usize) -> usize {
        match self {
            Quantity::Score
            | Quantity::ComponentScore(_)
            | Quantity::ClassLogProbGrad(_)
            | Quantity::PosteriorMean
            | Quantity::ComponentPosteriorMean(_) => dim,
            Quantity::LogDensity => 1,
            Quantity::Posterior => components,
        }
    }
}

/// The kernel `(a, b)` of every row's time: one for the whole batch, or one per row.
#[derive(Clone, Copy, Debug)]
pub(super) enum Kernels<'a> {
    /// Every row at this kernel.
    Same((f64, f64)),
    /// Row `i` at `kernels[i]`.
    PerRow(&'a [(f64, f64)]),
}

impl Kernels<'_> {
    fn at(&self, row: usize) -> (f64, f64) {
        match self {
            Kernels::Same(ab) => *ab,
            Kernels::PerRow(ab) => ab[row],
        }
    }
}

/// The diffused mixture's constants at one kernel `(a, b)`.
pub(super) struct Diffused {
    /// `a μ_k`, row-major `[K, D]`.
    scaled_means: Vec<f64>,
    /// `1 / v_k`.
    inv_var: Vec<f64>,
    /// `1 / (2 v_k)`.
    half_inv_var: Vec<f64>,
    /// `ln w_k − (D/2) ln(2π v_k)`.
    log_norm: Vec<f64>,
    /// `μ_k`, row-major `[K, D]`.
    means: Vec<f64>,
    /// `a σ_k² / v_k`: the gain of component `k`'s posterior mean,
    /// `E[x_0 | x, k] = μ_k + gain_k·(x − a μ_k)`.
    gain: Vec<f64>,
}

impl Diffused {
    pub(super) fn new(m: &GaussianMixture, a: f64, b: f64) -> Self {
        let d = m.dim() as f64;
        let components: Vec<_> = (0..m.len()).map(|k| m.component_at(k, a, b)).collect();
        let var: Vec<f64> = components.iter().map(|c| c.var).collect();
        Diffused {
            scaled_means: m.means.iter().flatten().map(|mu| a * mu).collect(),
            inv_var: var.iter().map(|v| 1.0 / v).collect(),
            half_inv_var: var.iter().map(|v| 0.5 / v).collect(),
            log_norm: m
                .weights
                .iter()
                .zip(&var)
                .map(|(w, v)| w.ln() - 0.5 * d * (2.0 * std::f64::consts::PI * v).ln())
                .collect(),
            means: m.means.iter().flatten().copied().collect(),
            gain: components.iter().map(|c| c.gain).collect(),
        }
    }
}

/// Evaluates `quantity` of `mixture` at the rows of `x` (row-major `[N, D]`), each row
/// diffused by its kernel in `kernels`, into `out`
/// (row-major, [`Quantity::width`] values per row). Parts of the batch run on parallel
/// threads.
pub(super) fn evaluate<T: Real, U: Real>(
    mixture: &GaussianMixture,
    x: &[T],
    kernels: Kernels,
    quantity: Quantity,
    out: &mut [U],
) -> Result<()> {
    let (d, k) = (mixture.dim(), mixture.len());
    let rows = x.len() / d;
    let width = quantity.width(d, k);
    debug_assert_eq!(out.len(), rows * width);
    let parts = parallel::parts_for(rows, MIN_ROWS_PER_THREAD);
    parallel::fill_rows(out, width, parts, "mixture", |first, out_part| {
        let n = out_part.len() / width;
        let part = Part {
            mixture,
            x: &x[first * d..(first + n) * d],
            first,
            kernels,
            quantity,
        };
        part.run(out_part);
    })
}

/// One contiguous part of a batch.
struct Part<'a, T> {
    mixture: &'a GaussianMixture,
    /// The part's rows.
    x: &'a [T],
    /// The index of its first row in the batch.
    first: usize,
    kernels: Kernels<'a>,
    quantity: Quantity<'a>,
}

impl<T: Real> Part<'_, T> {
    /// Runs the part, compiled for AVX2 where the CPU has it.
    fn run<U: Real>(&self, out: &mut [U]) {
        crate::simd::vectorised(
            #[inline(always)]
            || self.run_blocks(out),
        );
    }

    /// Runs of rows at one time, each in blocks.
    #[inline(always)]
    fn run_blocks<U: Real>(&self, out: &mut [U]) {
        let m = self.mixture;
        let (d, k) = (m.dim(), m.len());
        let width = self.quantity.width(d, k);
        let rows = self.x.len() / d;
        let mut columns = vec![0.0; d * BLOCK];
        let mut terms = vec![0.0; k * BLOCK];
        let mut current: Option<((f64, f64), Diffused)> = None;
        let mut start = 0;
        while start < rows {
            let ab = self.kernels.at(self.first + start);
            let mut end = start + 1;
            while end < rows && end - start < BLOCK && self.kernels.at(self.first + end) == ab {
                end += 1;
            }
            if current.as_ref().is_none_or(|(c, _)| *c != ab) {
                current = Some((ab, Diffused::new(m, ab.0, ab.1)));
            }
            let diffused = &current.as_ref().expect("set above").1;
            let block = Block {
                diffused,
                dim: d,
                components: k,
                first: self.first + start,
            };
            block.evaluate(
                &self.x[start * d..end * d],
                self.quantity,
                &mut out[start * width..end * width],
                &mut columns,
                &mut terms,
            );
            start = end;
        }
    }
}

/// Up to [`BLOCK`] rows at one time.
struct Block<'a> {
    diffused: &'a Diffused,
    dim: usize,
    components: usize,
    /// The index of the block's first row in the batch (for per-row classes).
    first: usize,
}

/// Column `i` of a `[_, BLOCK]` scratch buffer.
#[inline(always)]
fn column(buf: &[f64], i: usize) -> &[f64; BLOCK] {
    buf[i * BLOCK..(i + 1) * BLOCK]
        .try_into()
        .expect("a column is BLOCK long")
}

#[inline(always)]
fn column_mut(buf: &mut [f64], i: usize) -> &mut [f64; BLOCK] {
    (&mut buf[i * BLOCK..(i + 1) * BLOCK])
        .try_into()
        .expect("a column is BLOCK long")
}

impl Block<'_> {
    /// Evaluates the block's rows `x` (`n ≤ BLOCK` rows) into `out`; `columns` and
    /// `terms` are scratch of `D·BLOCK` and `K·BLOCK` values.
    #[inline(always)]
    fn evaluate<T: Real, U: Real>(
        &self,
        x: &[T],
        quantity: Quantity,
        out: &mut [U],
        columns: &mut [f64],
        terms: &mut [f64],
    ) {
        let (d, k) = (self.dim, self.components);
        let n = x.len() / d;
        let p = self.diffused;
        // Transpose the rows into columns; the unused tail of a short block is zero.
        for i in 0..d {
            let col = column_mut(columns, i);
            for (r, c) in col.iter_mut().enumerate().take(n) {
                *c = x[r * d + i].to_f64();
            }
            col[n..].fill(0.0);
        }
        let component_score = |r: usize, i: usize, class: u32| -> f64 {
            let c = class as usize;
            -(column(columns, i)[r] - p.scaled_means[c * d + i]) * p.inv_var[c]
        };
        if let Quantity::ComponentScore(classes) = quantity {
            for r in 0..n {
                let class = classes[self.first + r];
                for i in 0..d {
                    out[r * d + i] = U::from_f64(component_score(r, i, class));
                }
            }
            return;
        }
        if let Quantity::ComponentPosteriorMean(classes) = quantity {
            for r in 0..n {
                let c = classes[self.first + r] as usize;
                for i in 0..d {
                    let (mu, smu) = (p.means[c * d + i], p.scaled_means[c * d + i]);
                    let xv = column(columns, i)[r];
                    out[r * d + i] = U::from_f64(mu + p.gain[c] * (xv - smu));
                }
            }
            return;
        }
        // Log-terms ln w_k + ln N(x; a μ_k, v_k I), their maximum over k, then
        // exp(term − max) in place and the sum over k.
        let mut max = [f64::NEG_INFINITY; BLOCK];
        for c in 0..k {
            let mut r2 = [0.0; BLOCK];
            for i in 0..d {
                let (col, mu) = (column(columns, i), p.scaled_means[c * d + i]);
                for (s, xv) in r2.iter_mut().zip(col) {
                    let u = xv - mu;
                    *s += u * u;
                }
            }
            let (norm, h) = (p.log_norm[c], p.half_inv_var[c]);
            let row = column_mut(terms, c);
            for ((l, s), mx) in row.iter_mut().zip(&r2).zip(max.iter_mut()) {
                *l = norm - h * s;
                *mx = if *l > *mx { *l } else { *mx };
            }
        }
        let mut sum = [0.0; BLOCK];
        for c in 0..k {
            let row = column_mut(terms, c);
            for ((l, s), mx) in row.iter_mut().zip(sum.iter_mut()).zip(&max) {
                let e = exp(*l - mx);
                *l = e;
                *s += e;
            }
        }
        if let Quantity::LogDensity = quantity {
            for r in 0..n {
                out[r] = U::from_f64(max[r] + sum[r].ln());
            }
            return;
        }
        // Posteriors r_k = e_k / Σ e, in place.
        let mut inv_sum = [0.0; BLOCK];
        for (i, s) in inv_sum.iter_mut().zip(&sum) {
            *i = 1.0 / s;
        }
        for c in 0..k {
            for (l, is) in column_mut(terms, c).iter_mut().zip(&inv_sum) {
                *l *= is;
            }
        }
        match quantity {
            Quantity::Posterior => {
                for c in 0..k {
                    let row = column(terms, c);
                    for r in 0..n {
                        out[r * k + c] = U::from_f64(row[r]);
                    }
                }
            }
            Quantity::Score | Quantity::ClassLogProbGrad(_) => {
                // ∇ log p_t(x) = −Σ_k r_k (x − a μ_k) / v_k, one coordinate at a time.
                let mut score = [0.0; BLOCK];
                for i in 0..d {
                    score.fill(0.0);
                    let col = column(columns, i);
                    for c in 0..k {
                        let (mu, iv) = (p.scaled_means[c * d + i], p.inv_var[c]);
                        for ((s, rk), xv) in score.iter_mut().zip(column(terms, c)).zip(col) {
                            *s -= rk * (xv - mu) * iv;
                        }
                    }
                    match quantity {
                        Quantity::ClassLogProbGrad(classes) => {
                            for r in 0..n {
                                let own = component_score(r, i, classes[self.first + r]);
                                out[r * d + i] = U::from_f64(own - score[r]);
                            }
                        }
                        _ => {
                            for r in 0..n {
                                out[r * d + i] = U::from_f64(score[r]);
                            }
                        }
                    }
                }
            }
            Quantity::PosteriorMean => {
                // E[x_0 | x] = Σ_k r_k (μ_k + gain_k (x − a μ_k)), one coordinate at a time.
                let mut mean = [0.0; BLOCK];
                for i in 0..d {
                    mean.fill(0.0);
                    let col = column(columns, i);
                    for c in 0..k {
                        let (mu, smu, g) =
                            (p.means[c * d + i], p.scaled_means[c * d + i], p.gain[c]);
                        for ((m, rk), xv) in mean.iter_mut().zip(column(terms, c)).zip(col) {
                            *m += rk * (mu + g * (xv - smu));
                        }
                    }
                    for r in 0..n {
                        out[r * d + i] = U::from_f64(mean[r]);
                    }
                }
            }
            Quantity::ComponentScore(_)
            | Quantity::ComponentPosteriorMean(_)
            | Quantity::LogDensity => unreachable!("returned above"),
        }
    }
}
