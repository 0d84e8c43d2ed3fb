//! Sample-quality metrics: sliced Wasserstein-2, moments, mode coverage.

use candle_core::Tensor;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::error::{invalid, Result};
use crate::host::{with_host_values, HostValues};

/// Rows of a `[N, D]` tensor as f64.
fn rows(x: &Tensor) -> Result<Vec<Vec<f64>>> {
    if x.rank() != 2 {
        return Err(invalid!(
            "expected samples of shape [N, D], got {:?}",
            x.dims()
        ));
    }
    Ok(x.to_dtype(candle_core::DType::F64)?.to_vec2()?)
}

/// The 1-D W2² between two empirical distributions given by their sorted samples, via
/// their quantile functions (sizes may differ: each is evaluated at the other's
/// mid-quantiles).
fn w2_sq_sorted(u: &[f64], v: &[f64]) -> f64 {
    let m = u.len().max(v.len());
    let q = |s: &[f64], p: f64| s[((p * s.len() as f64) as usize).min(s.len() - 1)];
    (0..m)
        .map(|i| {
            let p = (i as f64 + 0.5) / m as f64;
            let d = q(u, p) - q(v, p);
            d * d
        })
        .sum::<f64>()
        / m as f64
}

/// `projections` random unit directions in `d` dimensions, seeded.
fn directions(d: usize, projections: usize, seed: u64) -> Vec<Vec<f64>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..projections)
        .map(|_| {
            let mut dir: Vec<f64> = (0..d).map(|_| StandardNormal.sample(&mut rng)).collect();
            let n = dir.iter().map(|v| v * v).sum::<f64>().sqrt();
            dir.iter_mut().for_each(|v| *v /= n);
            dir
        })
        .collect()
}

/// A sample set projected on the random directions of a sliced W2 and sorted along each:
/// prepared once, it is compared with any number of other sets at the cost of a pass
/// per direction, not a sort ([`SlicedProjections::w2`]).
pub struct SlicedProjections {
    dim: usize,
    seed: u64,
    /// One sorted projection per direction.
    sorted: Vec<Vec<f64>>,
}

impl SlicedProjections {
    /// Projects the rows of `x` (`[N, D]`, N ≥ 1) on `projections` random unit directions
    /// drawn from `seed` (the same directions for every set of the same `D` and seed) and
    /// sorts each projection; directions are spread over threads.
    pub fn new(x: &Tensor, projections: usize, seed: u64) -> Result<Self> {
        let r = rows(x)?;
        if r.is_empty() {
            return Err(invalid!("sliced W2 needs non-empty sample sets"));
        }
        let dim = r[0].len();
        let dirs = directions(dim, projections, seed);
        let parts = crate::parallel::parts_for(projections, 1);
        let sorted = crate::parallel::run_parts(parts, "metrics", |i| {
            let (s, e) = crate::parallel::part_range(i, parts, projections);
            Ok(dirs[s..e]
                .iter()
                .map(|dir| {
                    let mut p: Vec<f64> = r
                        .iter()
                        .map(|row| row.iter().zip(dir).map(|(a, b)| a * b).sum::<f64>())
                        .collect();
                    p.sort_by(f64::total_cmp);
                    p
                })
                .collect::<Vec<_>>())
        })?
        .into_iter()
        .flatten()
        .collect();
        Ok(SlicedProjections { dim, seed, sorted })
    }

    /// The sliced W2 distance between the two prepared sets:
    /// `sqrt(mean over directions of W2²)`. Both must use the same directions.
    pub fn w2(&self, other: &SlicedProjections) -> Result<f64> {
        if self.dim != other.dim {
            return Err(invalid!(
                "sliced W2: dimensions {} and {} differ",
                self.dim,
                other.dim
            ));
        }
        if self.seed != other.seed || self.sorted.len() != other.sorted.len() {
            return Err(invalid!(
                "sliced W2: the two sets were projected on different directions"
            ));
        }
        let acc: f64 = self
            .sorted
            .iter()
            .zip(&other.sorted)
            .map(|(u, v)| w2_sq_sorted(u, v))
            .sum();
        Ok((acc / self.sorted.len() as f64).sqrt())
    }
}

/// Sliced Wasserstein-2 distance between two sample sets `[N, D]` and `[M, D]`:
/// `sqrt(mean over `projections` random unit directions of W2²)`, seeded.
pub fn sliced_w2(x: &Tensor, y: &Tensor, projections: usize, seed: u64) -> Result<f64> {
    SlicedProjections::new(x, projections, seed)?.w2(&SlicedProjections::new(y, projections, seed)?)
}

/// The mean of `|x|²` over the rows and its standard error.
pub fn second_moment(x: &Tensor) -> Result<(f64, f64)> {
    if x.rank() != 2 {
        return Err(invalid!(
            "expected samples of shape [N, D], got {:?}",
            x.dims()
        ));
    }
    let d = x.dim(1)?.max(1);
    // Two passes over the rows where they lie (no copy of the batch): the mean, then
    // the spread about it; the same sums in the same order as `mean_and_se`.
    fn squared_norms<T: Copy + Into<f64>>(v: &[T], d: usize) -> impl Iterator<Item = f64> + '_ {
        v.chunks_exact(d)
            .map(|row| row.iter().map(|&a| a.into() * a.into()).sum())
    }
    fn moments<T: Copy + Into<f64>>(v: &[T], d: usize) -> (f64, f64) {
        let n = (v.len() / d) as f64;
        let m = squared_norms(v, d).sum::<f64>() / n;
        let var = squared_norms(v, d).map(|a| (a - m) * (a - m)).sum::<f64>() / (n - 1.0).max(1.0);
        (m, (var / n).sqrt())
    }
    with_host_values(x, |values| {
        Ok(match values {
            HostValues::F32(v) => moments(v, d),
            HostValues::F64(v) => moments(v, d),
        })
    })
}

/// Mean and standard error of a sample.
pub fn mean_and_se(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|a| (a - m) * (a - m)).sum::<f64>() / (n - 1.0).max(1.0);
    (m, (var / n).sqrt())
}

/// The share of each label among `labels` (`k` classes).
pub fn shares(labels: &[usize], k: usize) -> Vec<f64> {
    let mut c = vec![0.0; k];
    for &l in labels {
        if l < k {
            c[l] += 1.0;
        }
    }
    let n = labels.len().max(1) as f64;
    c.iter().map(|v| v / n).collect()
}

/// Samples as flat f64 rows.
type Rows = Vec<Vec<f64>>;

/// Per-sample pairs of a batch `[N, ...]` as f64 rows (both of the same shape).
fn paired_rows(a: &Tensor, b: &Tensor) -> Result<(Rows, Rows)> {
    if a.dims() != b.dims() || a.rank() < 2 {
        return Err(invalid!(
            "expected two batches of the same shape [N, ...], got {:?} and {:?}",
            a.dims(),
            b.dims()
        ));
    }
    let flat = |t: &Tensor| -> Result<Rows> {
        Ok(t.flatten_from(1)?
            .to_dtype(candle_core::DType::F64)?
            .to_vec2()?)
    };
    Ok((flat(a)?, flat(b)?))
}

/// The mean over samples of the peak signal-to-noise ratio (dB) between `a` and `b`
/// (`[N, ...]`), `10·log10(range²/MSE)` per sample for values spanning `range` (2 for
/// images in `[−1, 1]`); identical samples count as 100 dB.
pub fn psnr(a: &Tensor, b: &Tensor, range: f64) -> Result<f64> {
    let (ra, rb) = paired_rows(a, b)?;
    let per: Vec<f64> = ra
        .iter()
        .zip(&rb)
        .map(|(u, v)| {
            let mse = u.iter().zip(v).map(|(x, y)| (x - y).powi(2)).sum::<f64>() / u.len() as f64;
            if mse == 0.0 {
                100.0
            } else {
                10.0 * (range * range / mse).log10()
            }
        })
        .collect();
    Ok(per.iter().sum::<f64>() / per.len() as f64)
}

/// The mean over samples of the structural similarity of `a` and `b` (`[N, ...]`), each
/// sample one window (global SSIM, Wang et al. 2004, eq. 13) with
/// `C1 = (0.01·range)²`, `C2 = (0.03·range)²`: in `[−1, 1]`, 1 for identical samples.
pub fn ssim(a: &Tensor, b: &Tensor, range: f64) -> Result<f64> {
    let (ra, rb) = paired_rows(a, b)?;
    let (c1, c2) = ((0.01 * range).powi(2), (0.03 * range).powi(2));
    let per: Vec<f64> = ra
        .iter()
        .zip(&rb)
        .map(|(u, v)| {
            let n = u.len() as f64;
            let (mu, mv) = (u.iter().sum::<f64>() / n, v.iter().sum::<f64>() / n);
            let var = |s: &[f64], m: f64| s.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n;
            let cov = u
                .iter()
                .zip(v)
                .map(|(x, y)| (x - mu) * (y - mv))
                .sum::<f64>()
                / n;
            ((2.0 * mu * mv + c1) * (2.0 * cov + c2))
                / ((mu * mu + mv * mv + c1) * (var(u, mu) + var(v, mv) + c2))
        })
        .collect();
    Ok(per.iter().sum::<f64>() / per.len() as f64)
}
