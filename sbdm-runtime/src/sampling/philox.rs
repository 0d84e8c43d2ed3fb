//! Counter-based Gaussian noise: Philox4x32-10 (Salmon, Moraes, Dror & Shaw, "Parallel
//! random numbers: as easy as 1, 2, 3", SC 2011) and the Box–Muller transform. Every value
//! is a function of its coordinates alone — seed, stream (the sample's row), draw (how
//! many draws that stream made before) and index within the row — so any part of a batch
//! can be computed anywhere, in any order: on the CPU by [`normal_at`], and on a GPU by
//! the generated kernel of [`super::philox_kernel`] with the same arithmetic, without
//! drawing on the host or copying noise to the device. [`super::noise::NoiseKind::Philox`]
//! draws through [`PhiloxFill`].
//!
//! ```
//! use sbdm_runtime::sampling::philox::{normal_at, philox4x32_10};
//! // Random123's known answer for a zero counter and key.
//! assert_eq!(philox4x32_10([0; 4], [0; 2]), [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]);
//! // A value depends on its coordinates only.
//! assert_eq!(normal_at(7, 3, 0, 5), normal_at(7, 3, 0, 5));
//! assert_ne!(normal_at(7, 3, 0, 5), normal_at(7, 3, 1, 5));
//! ```

use candle_core::{CpuStorage, Layout};

use crate::parallel;

/// The round multipliers.
pub const MULTIPLIERS: [u32; 2] = [0xD251_1F53, 0xCD9E_8D57];
/// The key schedule's increments (the golden ratio and √3 − 1, as 32-bit fractions).
pub const KEY_BUMPS: [u32; 2] = [0x9E37_79B9, 0xBB67_AE85];
/// Rounds.
pub const ROUNDS: usize = 10;
/// 2π, the Box–Muller angle's scale (written out so the kernel uses the same double).
pub const TWO_PI: f64 = std::f64::consts::TAU;
/// 2⁻³², a 32-bit word's scale to [0, 1).
pub const WORD_SCALE: f64 = 1.0 / 4_294_967_296.0;

/// Philox4x32 with [`ROUNDS`] rounds: the 4-word block of counter `ctr` under `key`.
pub fn philox4x32_10(mut ctr: [u32; 4], mut key: [u32; 2]) -> [u32; 4] {
    for round in 0..ROUNDS {
        if round > 0 {
            key = [
                key[0].wrapping_add(KEY_BUMPS[0]),
                key[1].wrapping_add(KEY_BUMPS[1]),
            ];
        }
        let p0 = u64::from(MULTIPLIERS[0]) * u64::from(ctr[0]);
        let p1 = u64::from(MULTIPLIERS[1]) * u64::from(ctr[2]);
        ctr = [
            (p1 >> 32) as u32 ^ ctr[1] ^ key[0],
            p1 as u32,
            (p0 >> 32) as u32 ^ ctr[3] ^ key[1],
            p0 as u32,
        ];
    }
    ctr
}

/// The counter and key of the block holding value `index` of stream `stream`'s draw
/// `draw` under `seed`: counter (block, draw, stream low, stream high), key the seed's
/// two halves; four values a block.
pub fn block_of(seed: u64, stream: u64, draw: u32, index: u64) -> ([u32; 4], [u32; 2]) {
    (
        [
            (index / 4) as u32,
            draw,
            stream as u32,
            (stream >> 32) as u32,
        ],
        [seed as u32, (seed >> 32) as u32],
    )
}

/// The two standard normals of a pair of words, by Box–Muller in f64:
/// `u1 = (w1 + 1)·2⁻³² ∈ (0, 1]`, `u2 = w2·2⁻³² ∈ [0, 1)`,
/// `(r cos θ, r sin θ)` with `r = √(−2 ln u1)`, `θ = 2π·u2`.
pub fn box_muller(w1: u32, w2: u32) -> (f64, f64) {
    let u1 = (f64::from(w1) + 1.0) * WORD_SCALE;
    let u2 = f64::from(w2) * WORD_SCALE;
    let r = (-2.0 * u1.ln()).sqrt();
    let (s, c) = (TWO_PI * u2).sin_cos();
    (r * c, r * s)
}

/// The four standard normals of block `block` (values `4·block .. 4·block + 4`) of stream
/// `stream`'s draw `draw` under `seed`, rounded to f32: words 0, 1 make the first pair,
/// words 2, 3 the second; each pair gives its cosine, then its sine.
pub fn block_normals(seed: u64, stream: u64, draw: u32, block: u64) -> [f32; 4] {
    let (ctr, key) = block_of(seed, stream, draw, 4 * block);
    let w = philox4x32_10(ctr, key);
    let (c0, s0) = box_muller(w[0], w[1]);
    let (c1, s1) = box_muller(w[2], w[3]);
    [c0 as f32, s0 as f32, c1 as f32, s1 as f32]
}

/// Value `index` of stream `stream`'s draw `draw` under `seed`, a standard normal
/// (rounded to f32): lane `index mod 4` of its block ([`block_normals`]).
pub fn normal_at(seed: u64, stream: u64, draw: u32, index: u64) -> f32 {
    block_normals(seed, stream, draw, index / 4)[(index % 4) as usize]
}

/// Fills rows `[rows, per]` of f32 with draw `draw` of streams `first_stream ..`: the op
/// [`Noise`](super::noise::Noise) applies to a fresh tensor, on the CPU through
/// [`normal_at`] (rows split over the kept pool of threads) and on CUDA through the
/// generated kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PhiloxFill {
    /// The seed.
    pub seed: u64,
    /// The first row's stream.
    pub first_stream: u64,
    /// Which draw of the streams.
    pub draw: u32,
    /// Values per row.
    pub per: usize,
}

/// Values below which generating noise is not worth a thread of its own (a value costs
/// ~30 ns on one core here: a share of a Philox block and of a Box–Muller transform).
const MIN_VALUES_PER_THREAD: usize = 4096;

/// How many parts to split `rows` rows of `per` values into when generating their noise
/// (the filled tensor's, or a fused pass's): at least [`MIN_VALUES_PER_THREAD`] values a
/// part, whole rows.
pub(crate) fn parts_for(rows: usize, per: usize) -> usize {
    parallel::parts_for_values(rows, per, MIN_VALUES_PER_THREAD)
}

impl PhiloxFill {
    /// The values of `out` (whole rows, row-major) on the CPU.
    pub fn fill(&self, out: &mut [f32]) -> crate::error::Result<()> {
        let per = self.per.max(1);
        let rows = out.len() / per;
        let parts = parts_for(rows, per);
        parallel::fill_rows(out, per, parts, "noise", |first, chunk| {
            for (i, row) in chunk.chunks_exact_mut(per).enumerate() {
                self.fill_row(first + i, row, |v| v);
            }
        })
    }

    /// Row `row` (stream `first_stream + row`) into `out`, each value through `map`: one
    /// Philox block for four values, the last block of the row cut short.
    pub(crate) fn fill_row<T>(&self, row: usize, out: &mut [T], map: impl Fn(f32) -> T) {
        let stream = self.first_stream + row as u64;
        for (block, values) in out.chunks_mut(4).enumerate() {
            let normals = block_normals(self.seed, stream, self.draw, block as u64);
            for (o, v) in values.iter_mut().zip(normals) {
                *o = map(v);
            }
        }
    }
}

impl candle_core::InplaceOp1 for PhiloxFill {
    fn name(&self) -> &'static str {
        "sbdm-philox"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
        let Some((a, b)) = layout.contiguous_offsets() else {
            candle_core::bail!("sbdm philox: the output must be contiguous");
        };
        let CpuStorage::F32(v) = storage else {
            candle_core::bail!("sbdm philox: the output must be f32");
        };
        self.fill(&mut v[a..b])
            .map_err(|e| candle_core::Error::Msg(e.to_string()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        storage: &mut candle_core::CudaStorage,
        layout: &Layout,
    ) -> candle_core::Result<()> {
        super::philox_cuda::fill(self, storage, layout)
    }
}
