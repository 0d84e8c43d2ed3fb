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
#[derive(Clone, Debug)]
pub struct Noise {
    streams: Vec<ChaCha8Rng>,
    dims: Vec<usize>,
    device: Device,
}

impl Noise {
    /// Streams `offset .. offset + n` of `seed`, each drawing tensors of shape `[n, dims..]`.
    pub fn new(seed: u64, offset: u64, n: usize, dims: &[usize], device: &Device) -> Self {
        let streams = (0..n as u64)
            .map(|i| {
                let mut r = ChaCha8Rng::seed_from_u64(seed);
                r.set_stream(offset + i);
                r
            })
            .collect();
        Noise {
            streams,
            dims: dims.to_vec(),
            device: device.clone(),
        }
    }

    /// The batch size.
    pub fn batch(&self) -> usize {
        self.streams.len()
    }

    /// The shape of one draw, `[n, dims..]`.
    pub fn shape(&self) -> Vec<usize> {
        let mut s = vec![self.streams.len()];
        s.extend(&self.dims);
        s
    }

    /// The next standard normal draw, shape `[n, dims..]`, f32 (see [`Noise::next_as`]).
    pub fn draw(&mut self) -> Result<Tensor> {
        let per: usize = self.dims.iter().product();
        let mut data = Vec::with_capacity(per * self.streams.len());
        for r in &mut self.streams {
            for _ in 0..per {
                let z: f64 = StandardNormal.sample(r);
                data.push(z as f32);
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
