//! Seeded Gaussian noise, one independent stream per sample.
//!
//! Candle's CPU RNG cannot be seeded, so noise is drawn here with ChaCha8 (a fixed
//! algorithm) and copied into tensors. Sample `i` of a batch draws from stream
//! `offset + i` of the seed, so a sample drawn in a batch equals the same sample drawn
//! alone with the same seed and index.

use candle_core::{Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::error::Result;

/// Per-sample noise streams for a batch.
///
/// A live ChaCha8 stream holds about 320 bytes (its key and a 256-byte block of output),
/// 40 times a 2-D f32 sample. Deterministic samplers draw only the prior, so the streams
/// start as positions (8 bytes each): a draw from a position seeds the stream, skips to
/// it and keeps only the new position. From the second draw on (stochastic samplers
/// draw every step) the streams are kept live. Both forms give the same numbers.
#[derive(Clone, Debug)]
pub struct Noise {
    seed: u64,
    offset: u64,
    streams: Streams,
    dims: Vec<usize>,
    device: Device,
}

/// Where each stream is.
#[derive(Clone, Debug)]
enum Streams {
    /// The position of each stream in its output, in 32-bit words.
    Positions(Vec<u64>),
    /// The streams themselves.
    Live(Vec<ChaCha8Rng>),
}

impl Noise {
    /// Streams `offset .. offset + n` of `seed`, each drawing tensors of shape `[n, dims..]`.
    pub fn new(seed: u64, offset: u64, n: usize, dims: &[usize], device: &Device) -> Self {
        Noise {
            seed,
            offset,
            streams: Streams::Positions(vec![0; n]),
            dims: dims.to_vec(),
            device: device.clone(),
        }
    }

    /// Stream `i` of the batch at word position `position`.
    fn stream_at(&self, i: usize, position: u64) -> ChaCha8Rng {
        let mut r = ChaCha8Rng::seed_from_u64(self.seed);
        r.set_stream(self.offset + i as u64);
        if position > 0 {
            r.set_word_pos(u128::from(position));
        }
        r
    }

    /// The batch size.
    pub fn batch(&self) -> usize {
        match &self.streams {
            Streams::Positions(p) => p.len(),
            Streams::Live(s) => s.len(),
        }
    }

    /// The shape of one draw, `[n, dims..]`.
    pub fn shape(&self) -> Vec<usize> {
        let mut s = vec![self.batch()];
        s.extend(&self.dims);
        s
    }

    /// The next standard normal draw, shape `[n, dims..]`, f32 (see [`Noise::next_as`]).
    pub fn draw(&mut self) -> Result<Tensor> {
        let per: usize = self.dims.iter().product();
        let mut data = Vec::with_capacity(per * self.batch());
        let mut draw_row = |r: &mut ChaCha8Rng| {
            for _ in 0..per {
                let z: f64 = StandardNormal.sample(r);
                data.push(z as f32);
            }
        };
        match &self.streams {
            Streams::Positions(positions) if positions.iter().all(|&p| p == 0) => {
                // The first draw: each stream seeded, used and dropped; its position kept.
                let next = (0..positions.len())
                    .map(|i| {
                        let mut r = self.stream_at(i, 0);
                        draw_row(&mut r);
                        // 2^64 words would take centuries to draw.
                        r.get_word_pos() as u64
                    })
                    .collect();
                self.streams = Streams::Positions(next);
            }
            Streams::Positions(positions) => {
                let mut live: Vec<ChaCha8Rng> = positions
                    .iter()
                    .enumerate()
                    .map(|(i, &p)| self.stream_at(i, p))
                    .collect();
                live.iter_mut().for_each(&mut draw_row);
                self.streams = Streams::Live(live);
            }
            Streams::Live(_) => {
                let Streams::Live(live) = &mut self.streams else {
                    unreachable!("matched above")
                };
                live.iter_mut().for_each(draw_row);
            }
        }
        Ok(Tensor::from_vec(data, self.shape(), &self.device)?)
    }

    /// The next draw in `dtype` (the f64 values are drawn as f32 then widened, so an f32
    /// and an f64 run see the same noise).
    pub fn next_as(&mut self, dtype: candle_core::DType) -> Result<Tensor> {
        Ok(self.draw()?.to_dtype(dtype)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Positions and live streams give the numbers of streams kept live from the start,
    /// over draws of different sizes that cross the streams' 64-word blocks.
    #[test]
    fn positions_then_live_streams_match_live_streams() {
        let (seed, offset, n) = (42, 5, 7);
        for dims in [vec![1], vec![3], vec![37]] {
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
