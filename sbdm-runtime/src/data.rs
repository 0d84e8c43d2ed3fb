//! Training data generated in code (nothing is downloaded): the 2-D toy distributions
//! of the diffusion and flow literature, small synthetic images of shapes, and
//! `.npy` arrays, behind one [`Dataset`] that hands out seeded batches.
//!
//! Every generator is a pure function of its size and seed, drawn through
//! [`ChaCha8Rng`] (whose stream is stable across versions), so a dataset name and a
//! seed name the same data on every machine.
//!
//! ```
//! use candle_core::Device;
//! use rand::SeedableRng;
//! use rand_chacha::ChaCha8Rng;
//! use sbdm_runtime::data::{Dataset, Toy};
//! # fn main() -> sbdm_runtime::error::Result<()> {
//! let dev = Device::Cpu;
//! // A toy: infinite, each batch fresh samples.
//! let toy = Dataset::from_name("8gaussians", 0, 0, &dev)?;
//! let mut rng = ChaCha8Rng::seed_from_u64(1);
//! let (x, labels) = toy.batch(256, &mut rng, &dev)?;   // x: f32 [256, 2]
//! assert_eq!(x.dims(), &[256, 2]);
//! assert_eq!(labels.unwrap().dims(), &[256]);          // u32 component index
//! // Images: 100 of them generated once, batches drawn with replacement.
//! let shapes = Dataset::from_name("shapes16", 100, 0, &dev)?;
//! let (img, labels) = shapes.batch(8, &mut rng, &dev)?; // img: f32 [8, 1, 16, 16]
//! assert_eq!(img.dims(), &[8, 1, 16, 16]);
//! assert_eq!(shapes.num_classes(), 3);
//! assert_eq!(Toy::Moons.sample(10, 0).len(), 20);      // row-major [10, 2]
//! # Ok(()) }
//! ```

use std::f64::consts::PI;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::error::{invalid, Error, Result};
use crate::model::mixture::GaussianMixture;

// ---------------------------------------------------------------------------------
// 2-D toys
// ---------------------------------------------------------------------------------

/// A 2-D toy distribution. Every sample lies in the bounding box given in its
/// variant's documentation except with negligible (Gaussian-tail) probability.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Toy {
    /// Eight equal-weight Gaussians of std 0.5 with means at radius 4 on the angles
    /// `2πk/8`, `k = 0..8` (the first at `(4, 0)`): exactly
    /// [`GaussianMixture::ring(8, 4.0, 0.5)`](GaussianMixture::ring), see
    /// [`eight_gaussians`]. `E|x|² = 16 + 2·0.25 = 16.5`. Labelled by the component
    /// index. Box: `[−7, 7]²`.
    EightGaussians,
    /// FFJORD's checkerboard: uniform on the 8 "black" squares of a 4×4 board of
    /// 2×2 squares covering `[−4, 4]²`, those with `⌊(x+4)/2⌋ + ⌊(y+4)/2⌋` even (the
    /// corner square `[−4, −2]²` is black). No noise. Box: `[−4, 4]²`.
    Checkerboard,
    /// scikit-learn's two moons with noise 0.1 (outer arc `(cos t, sin t)`, inner arc
    /// `(1 − cos t, 0.5 − sin t)`, `t ~ U[0, π]`, each moon with probability ½, plus
    /// `N(0, 0.1² I)`), shifted by `(−0.5, −0.25)` and scaled by 2.5, so the arcs span
    /// `[−3.75, 3.75] × [−1.875, 1.875]` and the noise std is 0.25. Box: `[−5, 5] × [−3.5, 3.5]`.
    Moons,
    /// FFJORD's swiss roll rescaled: `t = 1.5π(1 + 2u)`, `u ~ U[0, 1)`,
    /// `x = (t cos t + ε₁, t sin t + ε₂) / 3.5` with `ε ~ N(0, I)` (scikit-learn's
    /// `make_swiss_roll(noise=1.0)`, coordinates x and z; FFJORD divides by 5, here 3.5
    /// so the outer end lies at radius ≈ 4.04). Box: `[−5.5, 5.5]²`.
    SwissRoll,
    /// Four concentric circles of radii 1, 2, 3, 4 (FFJORD's rings, scaled), each with
    /// probability ¼, uniform in angle, plus `N(0, 0.1² I)`. Box: `[−4.6, 4.6]²`.
    Rings,
    /// FFJORD's pinwheel with 5 arms: arm `a ~ U{0..5}`, `f = (1 + 0.3 z₁, 0.1 z₂)`,
    /// `θ = 2πa/5 + 0.25·exp(f₁)`, `x = 2·(f₁ cos θ + f₂ sin θ, −f₁ sin θ + f₂ cos θ)`
    /// (radial std 0.3, tangential std 0.1, rate 0.25). Box: `[−5.5, 5.5]²`.
    Pinwheel,
}

/// The toys' CLI names and one-line descriptions, in [`Toy`] order.
pub const TOYS: &[(&str, &str)] = &[
    (
        "8gaussians",
        "8 Gaussians (std 0.5) on a circle of radius 4, labelled by component",
    ),
    (
        "checkerboard",
        "uniform on the black squares of a 4x4 checkerboard on [-4,4]^2",
    ),
    (
        "moons",
        "two interleaved half-circles (noise 0.25), x in [-5,5]",
    ),
    (
        "swissroll",
        "a 2-D swiss-roll spiral out to radius 4 (noise 0.29)",
    ),
    ("rings", "4 concentric circles of radii 1..4 (noise 0.1)"),
    (
        "pinwheel",
        "a pinwheel with 5 curved arms, out to radius ~5",
    ),
];

const ALL_TOYS: [Toy; 6] = [
    Toy::EightGaussians,
    Toy::Checkerboard,
    Toy::Moons,
    Toy::SwissRoll,
    Toy::Rings,
    Toy::Pinwheel,
];

/// Lower case with `-` and `_` removed: how names are compared.
fn normalize(name: &str) -> String {
    name.chars()
        .filter(|c| *c != '-' && *c != '_')
        .flat_map(char::to_lowercase)
        .collect()
}

/// The mixture [`Toy::EightGaussians`] samples: `GaussianMixture::ring(8, 4.0, 0.5)`.
pub fn eight_gaussians() -> GaussianMixture {
    // Eight positive equal weights, finite means and std 0.5: always valid.
    GaussianMixture::ring(8, 4.0, 0.5).expect("ring(8, 4, 0.5) is a valid mixture")
}

fn normal<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    StandardNormal.sample(rng)
}

impl Toy {
    /// The toy with this CLI name (case-insensitive, `-` and `_` ignored), e.g.
    /// `"8gaussians"`, `"swiss-roll"`, `"Pin_Wheel"`. `"eightgaussians"` also works.
    pub fn from_name(name: &str) -> Option<Toy> {
        let n = normalize(name);
        if n == "eightgaussians" {
            return Some(Toy::EightGaussians);
        }
        ALL_TOYS.into_iter().find(|t| normalize(t.name()) == n)
    }

    /// The CLI name (the first column of [`TOYS`]).
    pub fn name(self) -> &'static str {
        TOYS[self as usize].0
    }

    /// A one-line description (the second column of [`TOYS`]).
    pub fn description(self) -> &'static str {
        TOYS[self as usize].1
    }

    /// Every toy, in [`TOYS`] order.
    pub fn all() -> [Toy; 6] {
        ALL_TOYS
    }

    /// The number of classes its labels take: 8 for [`Toy::EightGaussians`] (the
    /// component), 0 (unlabelled) for the others.
    pub fn num_classes(self) -> usize {
        match self {
            Toy::EightGaussians => 8,
            _ => 0,
        }
    }

    /// `n` samples, row-major `[n, 2]`, a pure function of `(n, seed)`: the same as
    /// [`fill`](Toy::fill) with `ChaCha8Rng::seed_from_u64(seed)`. A longer sample with
    /// the same seed starts with the shorter one.
    pub fn sample(self, n: usize, seed: u64) -> Vec<f32> {
        let mut out = vec![0f32; 2 * n];
        self.fill(&mut ChaCha8Rng::seed_from_u64(seed), &mut out, None);
        out
    }

    /// Fills `out` (row-major `[n, 2]`, `n = out.len() / 2`; an odd trailing element is
    /// left untouched) with `n` fresh samples drawn from `rng`. If `labels` is given and
    /// the toy is labelled ([`num_classes`](Toy::num_classes) > 0), its first `n`
    /// entries receive each sample's class; the draws do not depend on `labels`.
    /// Allocates nothing.
    pub fn fill<R: Rng + ?Sized>(self, rng: &mut R, out: &mut [f32], labels: Option<&mut [u32]>) {
        let mut labels = labels.unwrap_or(&mut []).iter_mut();
        match self {
            Toy::EightGaussians => {
                // The same expression as GaussianMixture::ring, so the means are equal.
                let mut means = [[0f64; 2]; 8];
                for (k, m) in means.iter_mut().enumerate() {
                    let a = 2.0 * PI * k as f64 / 8.0;
                    *m = [4.0 * a.cos(), 4.0 * a.sin()];
                }
                for p in out.chunks_exact_mut(2) {
                    let k = rng.random_range(0..8u32);
                    let m = means[k as usize];
                    p[0] = (m[0] + 0.5 * normal(rng)) as f32;
                    p[1] = (m[1] + 0.5 * normal(rng)) as f32;
                    if let Some(l) = labels.next() {
                        *l = k;
                    }
                }
            }
            Toy::Checkerboard => {
                for p in out.chunks_exact_mut(2) {
                    let r = rng.random_range(0..8u32);
                    let i = r & 3; // column 0..4
                    let j = 2 * (r >> 2) + (i & 1); // a row with i + j even
                    let u: f64 = rng.random();
                    let v: f64 = rng.random();
                    p[0] = (-4.0 + 2.0 * (i as f64 + u)) as f32;
                    p[1] = (-4.0 + 2.0 * (j as f64 + v)) as f32;
                }
            }
            Toy::Moons => {
                for p in out.chunks_exact_mut(2) {
                    let inner: bool = rng.random();
                    let t = PI * rng.random::<f64>();
                    let (x, y) = if inner {
                        (1.0 - t.cos(), 0.5 - t.sin())
                    } else {
                        (t.cos(), t.sin())
                    };
                    let x = x + 0.1 * normal(rng);
                    let y = y + 0.1 * normal(rng);
                    p[0] = (2.5 * (x - 0.5)) as f32;
                    p[1] = (2.5 * (y - 0.25)) as f32;
                }
            }
            Toy::SwissRoll => {
                for p in out.chunks_exact_mut(2) {
                    let t = 1.5 * PI * (1.0 + 2.0 * rng.random::<f64>());
                    let x = t * t.cos() + normal(rng);
                    let y = t * t.sin() + normal(rng);
                    p[0] = (x / 3.5) as f32;
                    p[1] = (y / 3.5) as f32;
                }
            }
            Toy::Rings => {
                for p in out.chunks_exact_mut(2) {
                    let r = (rng.random_range(0..4u32) + 1) as f64;
                    let a = 2.0 * PI * rng.random::<f64>();
                    p[0] = (r * a.cos() + 0.1 * normal(rng)) as f32;
                    p[1] = (r * a.sin() + 0.1 * normal(rng)) as f32;
                }
            }
            Toy::Pinwheel => {
                for p in out.chunks_exact_mut(2) {
                    let arm = rng.random_range(0..5u32) as f64;
                    let f1 = 1.0 + 0.3 * normal(rng);
                    let f2 = 0.1 * normal(rng);
                    let theta = 2.0 * PI * arm / 5.0 + 0.25 * f1.exp();
                    let (s, c) = theta.sin_cos();
                    p[0] = (2.0 * (f1 * c + f2 * s)) as f32;
                    p[1] = (2.0 * (-f1 * s + f2 * c)) as f32;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// Shapes
// ---------------------------------------------------------------------------------

/// The size of [`shapes`] images.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShapesConfig {
    /// Height and width in pixels (16 or 32 usually; any value ≥ 8).
    pub size: usize,
    /// 1 (grey) or 3 (RGB).
    pub channels: usize,
}

impl Default for ShapesConfig {
    fn default() -> Self {
        ShapesConfig {
            size: 16,
            channels: 1,
        }
    }
}

impl ShapesConfig {
    /// Checks `size` (8 to 1024) and `channels` (1 or 3).
    pub fn validate(&self) -> Result<()> {
        if !(8..=1024).contains(&self.size) {
            return Err(invalid!(
                "shapes: image size {} is out of range; use 8 to 1024 pixels (16 or 32 usually)",
                self.size
            ));
        }
        if self.channels != 1 && self.channels != 3 {
            return Err(invalid!(
                "shapes: {} channels; use 1 (grey) or 3 (RGB)",
                self.channels
            ));
        }
        Ok(())
    }
}

/// The [`shapes`] classes, indexed by label.
pub const SHAPE_CLASSES: [&str; 3] = ["circle", "square", "triangle"];

/// Subsamples per pixel side: each pixel's coverage is averaged over a 4×4 grid.
const SUPERSAMPLE: usize = 4;

/// `n` images `[n, C, H, W]` (row-major, values in `[−1, 1]`, background `−1`) of one
/// filled shape each, and their labels (indices into [`SHAPE_CLASSES`]), a pure
/// function of `(n, cfg, seed)`.
///
/// Each image draws, in order: the class (uniform), the shape's extent `s ~ U[0.3, 0.7]·W`
/// (the circle's diameter, the square's side, the side of an upright equilateral
/// triangle), the centre of its `s × s` bounding box, uniform such that the box lies
/// inside the image, and its colour: a grey level `U[0, 1]` (1 channel), or RGB
/// channels `U[−1, 1]` of which one random channel is redrawn `U[0.5, 1]` (3 channels).
/// Each pixel is `−1 + coverage·(colour + 1)`, with the coverage the fraction of a
/// 4×4 grid of subsamples inside the shape (anti-aliased edges). Pixel `(i, j)` covers
/// `[j, j+1) × [i, i+1)` with row `i` counted from the top; the triangle's apex points up.
pub fn shapes(n: usize, cfg: &ShapesConfig, seed: u64) -> Result<(Vec<f32>, Vec<u32>)> {
    cfg.validate()?;
    let (w, c) = (cfg.size, cfg.channels);
    let per = c * w * w;
    crate::limits::check(
        format_args!("shapes: {n} images of {c}x{w}x{w}"),
        crate::limits::bytes(&[n, per], 4),
    )?;
    let total = n
        .checked_mul(per)
        .ok_or_else(|| invalid!("shapes: {n} images of {c}x{w}x{w} do not fit in memory"))?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut images = vec![-1f32; total];
    let mut labels = Vec::with_capacity(n);
    let mut coverage = vec![0f32; w * w];
    for img in images.chunks_exact_mut(per) {
        let class = rng.random_range(0..3u32);
        let wf = w as f64;
        let s = wf * rng.random_range(0.3..0.7);
        let cx = rng.random_range(s / 2.0..=wf - s / 2.0);
        let cy = rng.random_range(s / 2.0..=wf - s / 2.0);
        let mut colour = [0f32; 3];
        if c == 1 {
            colour[0] = rng.random_range(0.0..=1.0);
        } else {
            for v in colour.iter_mut() {
                *v = rng.random_range(-1.0..=1.0);
            }
            let k = rng.random_range(0..3usize);
            colour[k] = rng.random_range(0.5..=1.0);
        }
        render_coverage(class, s, cx, cy, w, &mut coverage);
        for (ch, plane) in img.chunks_exact_mut(w * w).enumerate() {
            let fg = colour[ch];
            for (px, cov) in plane.iter_mut().zip(&coverage) {
                *px = -1.0 + cov * (fg + 1.0);
            }
        }
        labels.push(class);
    }
    Ok((images, labels))
}

/// The fraction of each pixel of a `w × w` image covered by a shape of class `class`,
/// extent `s`, bounding-box centre `(cx, cy)`.
fn render_coverage(class: u32, s: f64, cx: f64, cy: f64, w: usize, coverage: &mut [f32]) {
    let r = s / 2.0;
    let h = s * 3f64.sqrt() / 2.0; // the triangle's height
    let inside = |x: f64, y: f64| -> bool {
        match class {
            0 => (x - cx).powi(2) + (y - cy).powi(2) <= r * r,
            1 => (x - cx).abs() <= r && (y - cy).abs() <= r,
            _ => {
                let top = cy - h / 2.0;
                let bottom = cy + h / 2.0;
                y >= top && y <= bottom && (x - cx).abs() <= (y - top) / 3f64.sqrt()
            }
        }
    };
    coverage.fill(0.0);
    // Only the pixels the bounding box touches can be covered.
    let lo = |v: f64| (v.floor().max(0.0) as usize).min(w);
    let hi = |v: f64| (v.ceil().max(0.0) as usize).min(w);
    let step = 1.0 / SUPERSAMPLE as f64;
    for i in lo(cy - r)..hi(cy + r) {
        for j in lo(cx - r)..hi(cx + r) {
            let mut hits = 0u32;
            for a in 0..SUPERSAMPLE {
                let y = i as f64 + (a as f64 + 0.5) * step;
                for b in 0..SUPERSAMPLE {
                    let x = j as f64 + (b as f64 + 0.5) * step;
                    hits += inside(x, y) as u32;
                }
            }
            coverage[i * w + j] = hits as f32 / (SUPERSAMPLE * SUPERSAMPLE) as f32;
        }
    }
}

/// The image datasets [`Dataset::from_name`] knows besides the toys: name, size,
/// channels, description.
pub const SHAPES_DATASETS: &[(&str, usize, usize, &str)] = &[
    (
        "shapes",
        16,
        1,
        "circles, squares, triangles: 16x16 grey (= shapes16)",
    ),
    ("shapes16", 16, 1, "circles, squares, triangles: 16x16 grey"),
    ("shapes32", 32, 1, "circles, squares, triangles: 32x32 grey"),
    (
        "shapes-rgb16",
        16,
        3,
        "circles, squares, triangles: 16x16 RGB",
    ),
    (
        "shapes-rgb32",
        32,
        3,
        "circles, squares, triangles: 32x32 RGB",
    ),
];

/// Every name [`Dataset::from_name`] accepts, toys first.
pub fn dataset_names() -> Vec<&'static str> {
    TOYS.iter()
        .map(|t| t.0)
        .chain(SHAPES_DATASETS.iter().map(|s| s.0))
        .collect()
}

// ---------------------------------------------------------------------------------
// Datasets
// ---------------------------------------------------------------------------------

/// Training data: an infinite toy or a finite f32 tensor `[N, ...]` with optional labels.
#[derive(Clone, Debug)]
pub enum Dataset {
    /// Fresh samples of a 2-D toy on every batch.
    Toy(Toy),
    /// A finite set of samples; batches draw rows uniformly with replacement.
    Tensor {
        /// The samples, f32 `[N, ...]` with `N ≥ 1`.
        data: Tensor,
        /// One class per row (`N` entries), if labelled.
        labels: Option<Vec<u32>>,
    },
}

impl Dataset {
    /// A dataset by name: a toy from [`TOYS`] (infinite; `n_for_finite` and `seed`
    /// unused), or one of [`SHAPES_DATASETS`], for which `n_for_finite` images are
    /// generated once with `seed` and placed on `device`. Names are case-insensitive,
    /// `-` and `_` ignored. An unknown name is an error listing every valid name.
    pub fn from_name(
        name: &str,
        n_for_finite: usize,
        seed: u64,
        device: &Device,
    ) -> Result<Dataset> {
        if let Some(toy) = Toy::from_name(name) {
            return Ok(Dataset::Toy(toy));
        }
        let norm = normalize(name);
        let Some(&(canonical, size, channels, _)) =
            SHAPES_DATASETS.iter().find(|s| normalize(s.0) == norm)
        else {
            return Err(invalid!(
                "unknown dataset {name:?}; valid names: {} (or a .npy file)",
                dataset_names().join(", ")
            ));
        };
        if n_for_finite == 0 {
            return Err(invalid!(
                "dataset {canonical}: the number of images to generate must be at least 1"
            ));
        }
        let cfg = ShapesConfig { size, channels };
        let (images, labels) = shapes(n_for_finite, &cfg, seed)?;
        let data = Tensor::from_vec(images, (n_for_finite, channels, size, size), device)?;
        Ok(Dataset::Tensor {
            data,
            labels: Some(labels),
        })
    }

    /// A finite dataset from a tensor `[N, ...]`, checked: f32, rank ≥ 2, `N ≥ 1`,
    /// `labels` (if any) with `N` entries.
    pub fn from_tensor(data: Tensor, labels: Option<Vec<u32>>) -> Result<Dataset> {
        check_tensor(&data, labels.as_deref())?;
        Ok(Dataset::Tensor { data, labels })
    }

    /// This dataset with `labels` (one class index per sample; only a tensor dataset
    /// takes labels this way).
    pub fn with_labels(self, labels: Vec<u32>) -> Result<Dataset> {
        match self {
            Dataset::Tensor { data, .. } => Dataset::from_tensor(data, Some(labels)),
            _ => Err(invalid!(
                "labels can be given to a dataset read from a file, not to a generated one"
            )),
        }
    }

    /// A finite, unlabelled dataset from a float32 `.npy` file of shape `[N, D]` or
    /// `[N, C, H, W]`, placed on `device`. Another dtype or rank, `N = 0`, or a NaN or
    /// infinite value is an [`Error::Format`] naming the file and the problem.
    pub fn from_npy(path: impl AsRef<Path>, device: &Device) -> Result<Dataset> {
        let path = path.as_ref();
        let format = |message: String| Error::Format {
            path: path.display().to_string(),
            message,
        };
        let x = crate::io::read_npy_any(path)?;
        if x.dtype() != DType::F32 {
            return Err(format(format!(
                "dtype {} ({}), expected float32 (numpy: x.astype(np.float32))",
                crate::io::numpy_dtype(x.dtype()),
                x.dtype().as_str()
            )));
        }
        if x.rank() != 2 && x.rank() != 4 {
            return Err(format(format!(
                "shape {:?} has rank {}, expected rank 2 [N, D] or rank 4 [N, C, H, W]",
                x.dims(),
                x.rank()
            )));
        }
        let n = x.dim(0)?;
        let row: usize = x.dims()[1..].iter().product();
        if n == 0 || row == 0 {
            return Err(format(format!("shape {:?} holds no samples", x.dims())));
        }
        let values = x.flatten_all()?.to_vec1::<f32>()?;
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(format(format!(
                "sample {} (of {n}) contains a non-finite value ({}) at flat index {i}",
                i / row,
                values[i]
            )));
        }
        Ok(Dataset::Tensor {
            data: x.to_device(device)?,
            labels: None,
        })
    }

    /// The shape of one sample: `[2]` for toys, `[D]` or `[C, H, W]` otherwise.
    pub fn sample_shape(&self) -> Vec<usize> {
        match self {
            Dataset::Toy(_) => vec![2],
            Dataset::Tensor { data, .. } => data.dims().get(1..).unwrap_or(&[]).to_vec(),
        }
    }

    /// The number of classes: 0 if unlabelled, 8 for `8gaussians` (the component),
    /// otherwise the largest label + 1 (3 for shapes, unless so few images were
    /// generated that the last class never occurs).
    pub fn num_classes(&self) -> usize {
        match self {
            Dataset::Toy(t) => t.num_classes(),
            Dataset::Tensor { labels, .. } => labels
                .as_ref()
                .and_then(|l| l.iter().max())
                .map_or(0, |m| *m as usize + 1),
        }
    }

    /// The number of samples; `None` for an (infinite) toy.
    pub fn len(&self) -> Option<usize> {
        match self {
            Dataset::Toy(_) => None,
            Dataset::Tensor { data, .. } => data.dims().first().copied(),
        }
    }

    /// True for a finite dataset of no samples (which the constructors refuse).
    pub fn is_empty(&self) -> bool {
        self.len() == Some(0)
    }

    /// A training batch: f32 `[n, ...]` on `device` and, if labelled, u32 labels `[n]`.
    /// Toys draw `n` fresh samples from `rng` (only `8gaussians` is labelled); finite
    /// data draws `n` row indices uniformly with replacement from `rng`. Deterministic
    /// given the state of `rng`; for a toy, `batch(n, &mut seed_from_u64(s))` equals
    /// [`Toy::sample(n, s)`](Toy::sample).
    pub fn batch(
        &self,
        n: usize,
        rng: &mut ChaCha8Rng,
        device: &Device,
    ) -> Result<(Tensor, Option<Tensor>)> {
        match self {
            Dataset::Toy(toy) => {
                let mut x = vec![0f32; 2 * n];
                let labels = if toy.num_classes() > 0 {
                    let mut l = vec![0u32; n];
                    toy.fill(rng, &mut x, Some(&mut l));
                    Some(Tensor::from_vec(l, n, device)?)
                } else {
                    toy.fill(rng, &mut x, None);
                    None
                };
                Ok((Tensor::from_vec(x, (n, 2), device)?, labels))
            }
            Dataset::Tensor { data, labels } => {
                check_tensor(data, labels.as_deref())?;
                let len = data.dim(0)?;
                let len32 = u32::try_from(len).map_err(|_| {
                    invalid!("dataset: {len} samples is more than batches can index (2^32)")
                })?;
                let idx: Vec<u32> = (0..n).map(|_| rng.random_range(0..len32)).collect();
                let lab = match labels {
                    Some(l) => {
                        let picked: Vec<u32> = idx.iter().map(|&i| l[i as usize]).collect();
                        Some(Tensor::from_vec(picked, n, device)?)
                    }
                    None => None,
                };
                let idx = Tensor::from_vec(idx, n, data.device())?;
                let x = data.index_select(&idx, 0)?.to_device(device)?;
                Ok((x, lab))
            }
        }
    }

    /// `n` held-out samples on `device`: fresh samples drawn with `seed` for a toy
    /// (use a seed training does not), or the first `n` rows of finite data (an error
    /// if it has fewer).
    pub fn held_out(&self, n: usize, seed: u64, device: &Device) -> Result<Tensor> {
        match self {
            Dataset::Toy(toy) => Ok(Tensor::from_vec(toy.sample(n, seed), (n, 2), device)?),
            Dataset::Tensor { data, labels } => {
                check_tensor(data, labels.as_deref())?;
                let len = data.dim(0)?;
                if n > len {
                    return Err(invalid!(
                        "dataset: {n} held-out samples requested, but it holds only {len}"
                    ));
                }
                Ok(data.narrow(0, 0, n)?.to_device(device)?)
            }
        }
    }
}

fn check_tensor(data: &Tensor, labels: Option<&[u32]>) -> Result<()> {
    if data.dtype() != DType::F32 {
        return Err(invalid!(
            "dataset: samples must be float32, got {}",
            crate::io::numpy_dtype(data.dtype())
        ));
    }
    if data.rank() < 2 {
        return Err(invalid!(
            "dataset: samples must have shape [N, ...] of rank >= 2, got {:?}",
            data.dims()
        ));
    }
    let n = data.dim(0)?;
    if n == 0 {
        return Err(invalid!("dataset: no samples (shape {:?})", data.dims()));
    }
    if let Some(l) = labels {
        if l.len() != n {
            return Err(invalid!("dataset: {n} samples but {} labels", l.len()));
        }
    }
    Ok(())
}
