//! Seeded Gaussian noise, one independent stream per sample.
//!
//! Candle's CPU RNG cannot be seeded, so noise is drawn here with a fixed algorithm, one
//! of two ([`NoiseKind`]): ChaCha8 streams drawn on the host and copied into tensors (the
//! default), or counter-based Philox4x32-10 ([`super::philox`]), computed where the tensor
//! lives (on a GPU, by a kernel: no host draw, no copy), with the same values on every
//! device. Either way sample `i` of a batch draws from stream `offset + i` of the seed, so
//! a sample drawn in a batch equals the same sample drawn alone with the same seed and
//! index.
//!
//! A draw that only enters a step linearly is taken as a [`NoiseDraw`]
//! ([`Noise::next_draw`]): under Philox it is not computed at all until the fused pass
//! that uses it generates it element by element ([`super::fused::combine_noisy`]), so
//! the noise is never stored or read from memory.

use candle_core::{Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use super::philox::PhiloxFill;
use super::step::Buffer;
use crate::error::Result;
use crate::parallel;

/// Rows below which drawing is not worth a thread of its own.
const MIN_ROWS_PER_THREAD: usize = 4096;

/// Stream `offset + i` of `seed`, at its start: the random stream of sample `offset + i`.
pub(crate) fn stream(seed: u64, offset: u64, i: usize) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(offset + i as u64);
    r
}

/// One draw from every live stream into its row of `data`, in `parts` parts.
fn draw_live(
    data: &mut [f32],
    per: usize,
    live: &mut [ChaCha8Rng],
    parts: usize,
    fill: impl Fn(&mut ChaCha8Rng, &mut [f32]) + Sync,
) -> Result<()> {
    if per == 0 {
        return Ok(());
    }
    parallel::fill_rows_with(data, per, live, parts, "noise", |_, rows, streams| {
        for (row, r) in rows.chunks_exact_mut(per).zip(streams) {
            fill(r, row);
        }
    })
}

/// The generator behind a [`Noise`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NoiseKind {
    /// ChaCha8 streams on the host, by rand's standard normal sampler (the default; the
    /// numbers every earlier release drew).
    #[default]
    ChaCha,
    /// Philox4x32-10 and Box–Muller ([`super::philox`]): each value a function of (seed,
    /// stream, draw, index), computed on the tensor's device.
    Philox,
}

impl NoiseKind {
    /// Every kind with its name and a description, for listings.
    pub const ALL: [(NoiseKind, &'static str, &'static str); 2] = [
        (
            NoiseKind::ChaCha,
            "chacha",
            "ChaCha8 streams drawn on the host (the default)",
        ),
        (
            NoiseKind::Philox,
            "philox",
            "counter-based Philox4x32-10, drawn on the device (a GPU's own kernel)",
        ),
    ];

    /// The name.
    pub fn name(self) -> &'static str {
        NoiseKind::ALL
            .iter()
            .find(|(k, _, _)| *k == self)
            .map_or("chacha", |(_, n, _)| n)
    }
}

impl std::str::FromStr for NoiseKind {
    type Err = crate::error::Error;

    fn from_str(s: &str) -> Result<Self> {
        NoiseKind::ALL
            .iter()
            .find(|(_, n, _)| *n == s.trim())
            .map(|(k, _, _)| *k)
            .ok_or_else(|| {
                let valid: Vec<&str> = NoiseKind::ALL.iter().map(|(_, n, _)| *n).collect();
                crate::error::invalid!("unknown noise `{s}`; valid: {}", valid.join(", "))
            })
    }
}

/// A standard-normal draw as it enters a sampler step (`σ·z`): a tensor, or Philox noise
/// left to be generated inside the fused pass that adds it (see the step algebra,
/// [`super::step`], where `f64 * &NoiseDraw` is a term of a combination).
#[derive(Clone, Debug)]
pub enum NoiseDraw {
    /// Drawn into a tensor (ChaCha8 streams, on the host).
    Tensor(Buffer),
    /// Philox noise of shape `dims`, generated where it is used.
    Generated(GeneratedNoise),
}

/// Philox noise not yet computed: its draw and its shape `[n, dims..]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GeneratedNoise {
    /// Which values: seed, first stream, draw, values per row.
    pub fill: PhiloxFill,
    /// The shape of the draw.
    pub dims: Vec<usize>,
}

impl GeneratedNoise {
    /// The values as a tensor of `dtype` on `device` (drawn as f32, then widened).
    pub fn materialise(&self, device: &Device, dtype: candle_core::DType) -> Result<Tensor> {
        let out = Tensor::zeros(self.dims.as_slice(), candle_core::DType::F32, device)?;
        out.inplace_op1(&self.fill)?;
        Ok(out.to_dtype(dtype)?)
    }
}

impl NoiseDraw {
    /// The shape of the draw.
    pub fn dims(&self) -> &[usize] {
        match self {
            NoiseDraw::Tensor(t) => t.dims(),
            NoiseDraw::Generated(g) => &g.dims,
        }
    }
}

/// Per-sample noise streams for a batch.
///
/// A live ChaCha8 stream holds about 320 bytes (its key and a 256-byte block of output),
/// 40 times a 2-D f32 sample. Deterministic samplers draw only the prior, so the streams
/// are not kept after the first draw: each is seeded, used and dropped. A second draw
/// (stochastic samplers draw every step) seeds them again, replays the first draw and
/// keeps them live from then on. Both give the numbers of streams kept live throughout.
#[derive(Clone, Debug)]
pub struct Noise {
    seed: u64,
    offset: u64,
    batch: usize,
    streams: Streams,
    /// With [`NoiseKind::Philox`], the draws made so far (the ChaCha streams unused).
    philox_draws: Option<u32>,
    dims: Vec<usize>,
    device: Device,
}

/// How far the streams are.
#[derive(Clone, Debug)]
enum Streams {
    /// Nothing drawn yet.
    Unused,
    /// One draw made; the streams were dropped.
    DrawnOnce,
    /// The streams themselves.
    Live(Vec<ChaCha8Rng>),
}

impl Noise {
    /// Streams `offset .. offset + n` of `seed`, each drawing tensors of shape `[n, dims..]`.
    pub fn new(seed: u64, offset: u64, n: usize, dims: &[usize], device: &Device) -> Self {
        Noise {
            seed,
            offset,
            batch: n,
            streams: Streams::Unused,
            philox_draws: None,
            dims: dims.to_vec(),
            device: device.clone(),
        }
    }

    /// [`Noise::new`] with the generator `kind`.
    pub fn with_kind(
        kind: NoiseKind,
        seed: u64,
        offset: u64,
        n: usize,
        dims: &[usize],
        device: &Device,
    ) -> Self {
        Noise {
            philox_draws: (kind == NoiseKind::Philox).then_some(0),
            ..Noise::new(seed, offset, n, dims, device)
        }
    }

    /// The generator.
    pub fn kind(&self) -> NoiseKind {
        match self.philox_draws {
            Some(_) => NoiseKind::Philox,
            None => NoiseKind::ChaCha,
        }
    }

    /// The batch size.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// The shape of one draw, `[n, dims..]`.
    pub fn shape(&self) -> Vec<usize> {
        let mut s = vec![self.batch()];
        s.extend(&self.dims);
        s
    }

    /// The next standard normal draw, shape `[n, dims..]`, f32 (see [`Noise::next_as`]).
    /// Large batches are drawn on the kept pool of threads ([`crate::parallel`]): each
    /// row from its own stream, so the numbers do not depend on the split.
    pub fn draw(&mut self) -> Result<Tensor> {
        if let Some(generated) = self.next_philox()? {
            // Computed where the tensor lives: a fresh buffer filled in place.
            return generated.materialise(&self.device, candle_core::DType::F32);
        }
        let per: usize = self.dims.iter().product();
        let fill = |r: &mut ChaCha8Rng, row: &mut [f32]| {
            for v in row {
                let z: f64 = StandardNormal.sample(r);
                *v = z as f32;
            }
        };
        let mut data = vec![0f32; per * self.batch];
        let parts = parallel::parts_for(self.batch, MIN_ROWS_PER_THREAD);
        let (seed, offset) = (self.seed, self.offset);
        match &mut self.streams {
            Streams::Unused => {
                parallel::fill_rows(&mut data, per, parts, "noise", |first, rows| {
                    for (i, row) in rows.chunks_exact_mut(per.max(1)).enumerate() {
                        fill(&mut stream(seed, offset, first + i), row);
                    }
                })?;
                self.streams = Streams::DrawnOnce;
            }
            Streams::DrawnOnce => {
                // Re-seed, replay the first draw, keep the streams from now on.
                let mut live: Vec<ChaCha8Rng> = Vec::with_capacity(self.batch);
                let mut replayed = vec![0f32; per];
                for i in 0..self.batch {
                    let mut r = stream(seed, offset, i);
                    fill(&mut r, &mut replayed);
                    live.push(r);
                }
                draw_live(&mut data, per, &mut live, parts, fill)?;
                self.streams = Streams::Live(live);
            }
            Streams::Live(live) => draw_live(&mut data, per, live, parts, fill)?,
        }
        Ok(Tensor::from_vec(data, self.shape(), &self.device)?)
    }

    /// The next draw in `dtype` (the f64 values are drawn as f32 then widened, so an f32
    /// and an f64 run see the same noise).
    pub fn next_as(&mut self, dtype: candle_core::DType) -> Result<Tensor> {
        Ok(self.draw()?.to_dtype(dtype)?)
    }

    /// The next draw for a step that uses it linearly: with [`NoiseKind::Philox`] the
    /// draw itself, to be generated inside the fused pass that adds it (the same values
    /// [`Noise::draw`] would give); with ChaCha the tensor [`Noise::next_as`] gives.
    pub fn next_draw(&mut self, dtype: candle_core::DType) -> Result<NoiseDraw> {
        match self.next_philox()? {
            Some(generated) => Ok(NoiseDraw::Generated(generated)),
            None => Ok(NoiseDraw::Tensor(Buffer::new(self.next_as(dtype)?)?)),
        }
    }

    /// With [`NoiseKind::Philox`], the next draw, counted; `None` under ChaCha.
    fn next_philox(&mut self) -> Result<Option<GeneratedNoise>> {
        let Some(draws) = &mut self.philox_draws else {
            return Ok(None);
        };
        let fill = PhiloxFill {
            seed: self.seed,
            first_stream: self.offset,
            draw: *draws,
            per: self.dims.iter().product(),
        };
        *draws = draws.checked_add(1).ok_or_else(|| {
            crate::error::invalid!("philox noise: more than 2^32 draws from one stream")
        })?;
        Ok(Some(GeneratedNoise {
            fill,
            dims: self.shape(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Streams dropped after the first draw and replayed at the second give the numbers
    /// of streams kept live from the start,
    /// over draws of different sizes that cross the streams' 64-word blocks.
    #[test]
    fn dropped_then_replayed_streams_match_live_streams() {
        let (seed, offset) = (42, 5);
        // 10 000 rows: drawn in parts on the pool threads where there are several cores.
        for (n, dims) in [(7, vec![1]), (7, vec![3]), (7, vec![37]), (10_000, vec![2])] {
            let mut noise = Noise::new(seed, offset, n, &dims, &Device::Cpu);
            let mut reference: Vec<ChaCha8Rng> = (0..n as u64)
                .map(|i| {
                    let mut r = ChaCha8Rng::seed_from_u64(seed);
                    r.set_stream(offset + i);
                    r
                })
                .collect();
            let per: usize = dims.iter().product();
            for _ in 0..4 {
                let got: Vec<f32> = noise
                    .draw()
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1()
                    .unwrap();
                let want: Vec<f32> = reference
                    .iter_mut()
                    .flat_map(|r| {
                        (0..per)
                            .map(|_| {
                                let z: f64 = StandardNormal.sample(r);
                                z as f32
                            })
                            .collect::<Vec<_>>()
                    })
                    .collect();
                assert_eq!(got, want, "dims {dims:?}");
            }
        }
    }
}
