//! [`super::philox`]'s Gaussian noise as CUDA C: a device function computing block
//! `block` (values `4·block .. 4·block + 4`) of stream `stream`'s draw `draw` under `seed`
//! by the same Philox4x32-10 rounds, word pairs and double-precision Box–Muller as
//! [`block_normals`](super::philox::block_normals) on the CPU ([`device_functions`]); the
//! loop every noise kernel runs over the blocks of its rows ([`noise_loop`]: a thread a
//! block, one Philox call and two transforms for four values); and one kernel filling
//! `rows × per` f32 values with draw `draw` of streams `first_stream ..`. The fused step
//! kernels ([`super::fused_kernel`]) include the same function and loop, so noise
//! generated inside a step is these values. The constants are written in from
//! `philox.rs`, so the two cannot drift apart; the text is snapshotted and compiled with
//! NVRTC in CI (`scripts/nvrtc-check.py`).
//!
//! ```
//! use sbdm_runtime::sampling::philox_kernel::{module_source, KERNEL, NORMAL_BLOCK};
//! assert!(module_source().contains(&format!("void {KERNEL}(")));
//! assert!(module_source().contains(&format!("void {NORMAL_BLOCK}(")));
//! ```

use super::philox::{KEY_BUMPS, MULTIPLIERS, ROUNDS, TWO_PI, WORD_SCALE};

/// The name of the module.
pub const MODULE: &str = "sbdm_philox";
/// The kernel's name.
pub const KERNEL: &str = "sbdm_philox_normal_f32";
/// The device function computing one block's four values:
/// `void sbdm_normal_block(seed, stream, draw, block, float out[4])`, the CUDA form of
/// [`block_normals`](super::philox::block_normals).
pub const NORMAL_BLOCK: &str = "sbdm_normal_block";

/// The device functions: the Philox rounds and [`NORMAL_BLOCK`].
pub fn device_functions() -> String {
    format!(
        "__device__ static void sbdm_philox_block(unsigned int c[4], unsigned int k0, unsigned int k1) {{\n\
         \x20   for (int round = 0; round < {ROUNDS}; ++round) {{\n\
         \x20       if (round > 0) {{ k0 += {b0:#010x}u; k1 += {b1:#010x}u; }}\n\
         \x20       const unsigned long long p0 = (unsigned long long){m0:#010x}u * c[0];\n\
         \x20       const unsigned long long p1 = (unsigned long long){m1:#010x}u * c[2];\n\
         \x20       const unsigned int next[4] = {{\n\
         \x20           (unsigned int)(p1 >> 32) ^ c[1] ^ k0, (unsigned int)p1,\n\
         \x20           (unsigned int)(p0 >> 32) ^ c[3] ^ k1, (unsigned int)p0}};\n\
         \x20       c[0] = next[0]; c[1] = next[1]; c[2] = next[2]; c[3] = next[3];\n\
         \x20   }}\n\
         }}\n\
         \n\
         __device__ static void {NORMAL_BLOCK}(unsigned long long seed, unsigned long long stream, unsigned int draw, unsigned long long block, float out[4]) {{\n\
         \x20   unsigned int c[4] = {{(unsigned int)block, draw, (unsigned int)stream, (unsigned int)(stream >> 32)}};\n\
         \x20   sbdm_philox_block(c, (unsigned int)seed, (unsigned int)(seed >> 32));\n\
         \x20   for (int pair = 0; pair < 2; ++pair) {{\n\
         \x20       const double u1 = ((double)c[2 * pair] + 1.0) * {scale:e};\n\
         \x20       const double u2 = (double)c[2 * pair + 1] * {scale:e};\n\
         \x20       const double r = sqrt(-2.0 * log(u1));\n\
         \x20       double s, co;\n\
         \x20       sincos({two_pi:e} * u2, &s, &co);\n\
         \x20       out[2 * pair] = (float)(r * co);\n\
         \x20       out[2 * pair + 1] = (float)(r * s);\n\
         \x20   }}\n\
         }}\n",
        b0 = KEY_BUMPS[0],
        b1 = KEY_BUMPS[1],
        m0 = MULTIPLIERS[0],
        m1 = MULTIPLIERS[1],
        scale = WORD_SCALE,
        two_pi = TWO_PI,
    )
}

/// A kernel's grid-stride loop over the Philox blocks of `rows` rows of `per` values (the
/// last block of a row cut short), running `body` for every value with `i` its index in
/// the rows and `xi[lane]` its noise, value `i mod per` of stream
/// `first_stream + i / per`. `rows`, `per`, `seed`, `first_stream` and `draw` must be in
/// scope; `body` is written at the loop's innermost indentation. A thread computes a
/// whole block: one Philox call and two Box–Muller transforms for four values. Launch it
/// over `rows·⌈per/4⌉` items ([`items`]).
pub fn noise_loop(body: &str) -> String {
    let body: String = body.lines().map(|l| format!("            {l}\n")).collect();
    format!(
        "    const unsigned long long blocks = (per + 3) / 4;\n\
         \x20   for (unsigned long long q = blockIdx.x * (unsigned long long)blockDim.x + threadIdx.x;\n\
         \x20        q < rows * blocks; q += (unsigned long long)gridDim.x * blockDim.x) {{\n\
         \x20       const unsigned long long row = q / blocks, block = q % blocks;\n\
         \x20       float xi[4];\n\
         \x20       {NORMAL_BLOCK}(seed, first_stream + row, draw, block, xi);\n\
         \x20       const unsigned long long first = row * per + 4 * block;\n\
         \x20       const unsigned int lanes = per - 4 * block < 4 ? (unsigned int)(per - 4 * block) : 4u;\n\
         \x20       for (unsigned int lane = 0; lane < lanes; ++lane) {{\n\
         \x20           const unsigned long long i = first + lane;\n\
         {body}\
         \x20       }}\n\
         \x20   }}\n"
    )
}

/// The work items of [`noise_loop`] over `rows` rows of `per` values: one a Philox block.
pub fn items(rows: u64, per: u64) -> u64 {
    rows * per.div_ceil(4)
}

/// The CUDA C source of the module.
pub fn module_source() -> String {
    format!(
        "// Generated by sbdm (sampling/philox_kernel.rs): Philox4x32-{ROUNDS} Gaussian noise.\n\
         \n\
         {functions}\
         \n\
         extern \"C\" __global__ void {KERNEL}(float* __restrict__ out, unsigned long long rows, unsigned long long per, unsigned long long seed, unsigned long long first_stream, unsigned int draw) {{\n\
         {noise_loop}\
         }}\n",
        functions = device_functions(),
        noise_loop = noise_loop("out[i] = xi[lane];"),
    )
}
